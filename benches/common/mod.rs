//! Helpers shared by the `mirror` and `payload` benches: timed tool runs, registry access
//! logs, the 1 GiB layer and its pusher, tag verification against a live registry, and small
//! reporting helpers. Included by each bench as `mod common;` next to `mod util;` (this
//! folder is not a bench target of its own).

// Each bench uses a subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::Digest as _;

use crate::util::{Content, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, TestRegistry};

pub const BIG_LAYER: u64 = 1 << 30;
pub const BIG_CHUNK: usize = 4 << 20;

pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

// ---- timed runs --------------------------------------------------------------------------

/// One tool run: wall time, peak RSS (KiB) and CPU time (user + system) from
/// `/usr/bin/time -f '%M %U %S'`, exit code, output.
pub struct Outcome {
    pub wall: Duration,
    pub rss_kib: u64,
    pub cpu: Duration,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn last_line(&self) -> String {
        let s = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        s.lines().last().unwrap_or("").trim().to_string()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} (exit {:?}, CPU {}, peak RSS {:.1} MiB)",
            secs(self.wall),
            self.code,
            secs(self.cpu),
            self.rss_kib as f64 / 1024.0
        )
    }
}

/// Flushes dirty pages (earlier runs' registry writes) so that a timed run does not pay
/// for another's writeback, then lets the machine settle a moment.
pub fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_millis(500));
}

/// How [`run_timed_with`] runs a tool beyond the plain case.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Words put between `/usr/bin/time` and the program (a wrapper such as `strace -f`).
    pub wrap: Option<&'a str>,
    /// `RUST_LOG` for the tool (else it is removed from the environment).
    pub rust_log: Option<&'a str>,
    /// Called just before the tool starts and just after it ends.
    pub around: Option<fn()>,
}

/// Runs `program args` in `dir` under `/usr/bin/time` after [`settle`]; see [`Outcome`].
pub fn run_timed(program: &str, args: &[&str], dir: Option<&Path>) -> Outcome {
    run_timed_with(program, args, dir, &RunOptions::default()).0
}

/// [`run_timed`] with `options`; also returns the raw process output.
pub fn run_timed_with(
    program: &str,
    args: &[&str],
    dir: Option<&Path>,
    options: &RunOptions<'_>,
) -> (Outcome, Output) {
    let rss_file = tempfile::NamedTempFile::new().expect("temp file");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f").arg("%M %U %S").arg("-o").arg(rss_file.path());
    if let Some(wrap) = options.wrap {
        cmd.args(wrap.split_whitespace());
    }
    cmd.arg(program)
        .args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .envs(options.rust_log.map(|l| ("RUST_LOG", l)))
        .stdin(Stdio::null());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    settle();
    if let Some(around) = options.around {
        around();
    }
    let started = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run /usr/bin/time {program}: {e}"));
    let wall = started.elapsed();
    if let Some(around) = options.around {
        around();
    }
    let measured = std::fs::read_to_string(rss_file.path()).unwrap_or_default();
    let fields: Vec<f64> = measured
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let (rss_kib, cpu) = match fields[..] {
        [rss, user, system] => (rss as u64, Duration::from_secs_f64(user + system)),
        _ => (0, Duration::ZERO),
    };
    let outcome = Outcome {
        wall,
        rss_kib,
        cpu,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (outcome, out)
}

// ---- registry access logs ----------------------------------------------------------------

/// One line of a registry's access log.
#[derive(Debug, Clone)]
pub struct Access {
    pub method: String,
    pub path: String,
    pub bytes: u64,
}

/// The registry's access log (combined format: `"METHOD PATH PROTO" STATUS BYTES`).
pub fn access_log(registry: &TestRegistry) -> Vec<Access> {
    let log_path = registry
        .storage_dir()
        .parent()
        .expect("registry dir")
        .join("registry.log");
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    log.lines()
        .filter_map(|line| {
            let start = line.find('"')? + 1;
            let rest = &line[start..];
            let end = rest.find('"')?;
            let mut request = rest[..end].split_whitespace();
            let method = request.next()?.to_string();
            let path = request.next()?.to_string();
            if !matches!(
                method.as_str(),
                "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE"
            ) {
                return None;
            }
            let mut after = rest[end + 1..].split_whitespace();
            let _status = after.next()?;
            let bytes = after.next()?.parse().unwrap_or(0);
            Some(Access {
                method,
                path,
                bytes,
            })
        })
        .collect()
}

// ---- the 1 GiB layer ---------------------------------------------------------------------

/// The deterministic bytes of the 1 GiB layer, chunk by chunk.
pub fn big_chunks() -> impl Iterator<Item = Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(0x0b16_1a7e);
    let mut left = BIG_LAYER as usize;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(BIG_CHUNK);
        left -= n;
        let mut chunk = vec![0u8; n];
        rng.fill(&mut chunk);
        Some(chunk)
    })
}

pub fn descriptor(media_type: &str, digest: &str, size: u64) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
}

/// Streams the 1 GiB layer into `repo` (POST, one chunked PATCH, PUT `?digest=`) and pushes
/// a one-layer image manifest: with `tag`, tagged `tag` (and the config labelled
/// `io.openshift.release: tag`); without, by digest. Returns the manifest's digest. The
/// layer is generated twice (once to hash it, once to send it), never held whole.
pub async fn push_big_image(registry: &TestRegistry, repo: &str, tag: Option<&str>) -> String {
    let mut hasher = sha2::Sha256::new();
    for chunk in big_chunks() {
        hasher.update(&chunk);
    }
    let layer_digest = format!("sha256:{}", hex::encode(hasher.finalize()));

    let client = reqwest::Client::new();
    let base = registry.base_url();
    let start = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("upload POST");
    assert_eq!(start.status(), 202, "upload POST");
    let location = |resp: &reqwest::Response| {
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("upload Location");
        reqwest::Url::parse(&base)
            .and_then(|b| b.join(loc))
            .expect("upload URL")
    };
    let stream = futures_util::stream::iter(
        big_chunks().map(|c| Ok::<_, std::io::Error>(bytes::Bytes::from(c))),
    );
    let patch = client
        .patch(location(&start))
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("upload PATCH");
    assert_eq!(patch.status(), 202, "upload PATCH");
    let mut url = location(&patch);
    url.query_pairs_mut().append_pair("digest", &layer_digest);
    let put = client.put(url).send().await.expect("upload PUT");
    assert_eq!(put.status(), 201, "upload PUT");

    let pusher = registry.pusher();
    let config = match tag {
        Some(tag) => serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"io.openshift.release": tag}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }),
        None => serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }),
    };
    let config = serde_json::to_vec(&config).expect("json");
    let config_digest = pusher.push_blob(repo, &config).await.to_string();
    let manifest = Content {
        media_type: OCI_MANIFEST.to_string(),
        bytes: serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, &config_digest, config.len() as u64),
            "layers": [descriptor(OCI_LAYER, &layer_digest, BIG_LAYER)],
        }))
        .expect("json"),
    };
    match tag {
        Some(tag) => pusher.push_manifest(repo, tag, &manifest).await.to_string(),
        None => {
            let digest = manifest.digest().to_string();
            pusher.push_manifest(repo, &digest, &manifest).await;
            digest
        }
    }
}

// ---- verification ------------------------------------------------------------------------

/// Every tag of `repo` in `registry` with the digest a HEAD (four Accept types) answers.
pub async fn live_tags(registry: &TestRegistry, repo: &str) -> BTreeMap<String, String> {
    let tags = registry.pusher().tags(repo).await;
    let client = reqwest::Client::new();
    let base = registry.base_url();
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut set = tokio::task::JoinSet::new();
    for tag in tags {
        let (client, sem) = (client.clone(), sem.clone());
        let url = format!("{base}/v2/{repo}/manifests/{tag}");
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let resp = client
                .head(&url)
                .header("accept", ACCEPT)
                .send()
                .await
                .expect("manifest HEAD");
            let digest = resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or_else(|| format!("(HEAD answered {})", resp.status()));
            (tag, digest)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        let (tag, digest) = joined.expect("HEAD task");
        out.insert(tag, digest);
    }
    out
}

/// Checks that `repo` of `registry` holds exactly `expected`; returns the problems.
pub async fn verify(
    who: &str,
    registry: &TestRegistry,
    repo: &str,
    expected: &BTreeMap<String, String>,
) -> Vec<String> {
    let live = live_tags(registry, repo).await;
    let mut problems = Vec::new();
    for (tag, digest) in expected {
        match live.get(tag) {
            Some(d) if d == digest => {}
            Some(d) => problems.push(format!("{who}: {repo}:{tag} is {d}, want {digest}")),
            None => problems.push(format!("{who}: {repo}:{tag} is missing")),
        }
    }
    for tag in live.keys().filter(|t| !expected.contains_key(*t)) {
        problems.push(format!("{who}: {repo}:{tag} is unexpected"));
    }
    problems
}

// ---- reporting ---------------------------------------------------------------------------

pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Compilers running now (others share this machine).
pub fn compilers() -> usize {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Ok(comm) = std::fs::read_to_string(e.path().join("comm"))
                && matches!(comm.trim(), "rustc" | "clippy-driver" | "rustdoc")
            {
                n += 1;
            }
        }
    }
    n
}

pub fn load_note() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "load average {}; {} rustc/clippy process(es) running",
        load.join(" "),
        compilers()
    )
}

pub fn tool_version(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("{program}: {e}"))
}
