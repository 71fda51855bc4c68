//! `relsync sync` against `skopeo sync --all --preserve-digests`, `crane cp --all-tags` and
//! `regsync once`, side by side in the same run, between real `docker-registry`
//! (distribution 2.8) processes on loopback.
//!
//! Run: `cargo bench --bench mirror` (needs `/usr/bin/docker-registry`, `skopeo`, `git`,
//! `/usr/bin/time`, and for workloads 4 and 5 `crane` and `regsync` in the folder
//! `RELSYNC_TEST_DEPS` names, as `scripts/test-deps.sh` prints it). Results go to BENCHMARKS.md ("Mirror against skopeo").
//!
//! Workloads (issue 3, "Performance"):
//! 1. initial mirror of 40 multi-arch releases into empty targets (goal: relsync ≥ 3x
//!    faster than skopeo), every tag's digest compared across both targets;
//! 2. no-op re-sync of 1,000 tags (goal: ≥ 20x faster, 0 writes, ≤ 1 tag list + 1 HEAD per
//!    tag = 1,001 requests, counted by the target registry's own access log);
//! 3. one release with a single 1 GiB layer (goal: relsync's peak RSS < 64 MiB);
//! 4. and 5. all peers side by side (issue 15): relsync, skopeo, `crane cp --all-tags` and
//!    `regsync once` (binaries from `RELSYNC_TEST_DEPS`), each into its own fresh target,
//!    on the 40 release tags (4) and on the 1,000 tags of workload 2 (5): one initial
//!    mirror each, then `MIRROR_BENCH_RUNS` no-op re-syncs each, in rotating order (goals:
//!    relsync's no-op ≥ 10x skopeo's on 40 tags, ≥ 50x on 1,000 tags).
//!
//! Knobs (environment): `MIRROR_BENCH_WORKLOADS=1,2,3,4,5` (which to run), `MIRROR_BENCH_RUNS=3`
//! (runs per timed figure), `MIRROR_BENCH_SKOPEO_ONLY=1` (measure skopeo alone, for a
//! baseline of the peer), `MIRROR_BENCH_CONCURRENCY=N`
//! (relsync's `sync.concurrency` and the plain copy's parallelism; default 8). For
//! looking inside relsync's runs: `MIRROR_BENCH_WRAP="perf record -g -o relsync.data --"`
//! (a command prefixed to each relsync run), `MIRROR_BENCH_RUST_LOG=relsync=debug` (its
//! `RUST_LOG`; each run's log is then kept in `target/mirror-bench-relsync-N.log`). The
//! registries keep their storage under `TMPDIR` (e.g. `TMPDIR=/dev/shm` to leave the disk
//! out of the measurement).
//!
//! Data scheme (deterministic, the same on every run):
//! - release r = 0..40 has version `4.20.r`, an OCI image index with two platform images
//!   (linux/amd64, linux/arm64); each platform image has its own small JSON config and 3
//!   layers, so a release has 6 layer slots s = 0..6 (amd64: 0..3, arm64: 3..6);
//! - slot s of release r holds layer generation g = r when (r + s) is even, else g = r - 1;
//!   layer (g, s) has id (g + 1) * 6 + s. So every release brings 3 new layers and shares the
//!   other 3 with the previous release; 6 + 39 * 3 = 123 distinct layers in all;
//! - a layer's size is 1 MiB plus splitmix64(id) mod (3 MiB + 1), i.e. 1–4 MiB, and its bytes
//!   come from fastrand seeded by the id: incompressible and reproducible. Layers carry the
//!   OCI tar media type; neither tool looks inside them;
//! - workload 2 adds 24 pinned extra tags `4.20.r-pinKK` per release (40 + 960 = 1,000 tags),
//!   pushed to the source too so that skopeo copies the same tag set;
//! - workload 3: one OCI image manifest (not an index) `5.0.0` with a config and one layer of
//!   exactly 1 GiB of fastrand bytes, streamed into the source with one chunked PATCH.

#[path = "../tests/util/mod.rs"]
mod util;

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Access, BIG_LAYER, Outcome, access_log, compilers, descriptor, load_note, push_big_image, secs,
    settle, tool_version, verify,
};

use util::{Content, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Repo, TestRegistry};

const RELEASES: usize = 40;
const PLATFORMS: [&str; 2] = ["amd64", "arm64"];
const LAYERS_PER_IMAGE: usize = 3;
const SLOTS: usize = PLATFORMS.len() * LAYERS_PER_IMAGE;
const EXTRA_TAGS: usize = 24;
const MIB: u64 = 1 << 20;
/// The source repository of workloads 1 and 2; the targets use the same path.
const REPO: &str = "bench/okd";
/// The source repository of workload 3.
const BIG_REPO: &str = "bench/big";
/// skopeo's destination namespace: `skopeo sync SRC/bench/okd DST/bench` writes
/// `DST/bench/okd`, the same path relsync writes.
const NAMESPACE: &str = "bench";

// ---- data ------------------------------------------------------------------------------

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn version(r: usize) -> String {
    format!("4.20.{r}")
}

fn extra_tags(r: usize) -> Vec<String> {
    (1..=EXTRA_TAGS)
        .map(|k| format!("4.20.{r}-pin{k:02}"))
        .collect()
}

/// The layer id in slot `s` of release `r` (see the module doc).
fn layer_id(r: usize, s: usize) -> u64 {
    let generation = if (r + s).is_multiple_of(2) {
        r as i64
    } else {
        r as i64 - 1
    };
    ((generation + 1) as u64) * SLOTS as u64 + s as u64
}

fn layer_size(id: u64) -> usize {
    (MIB + splitmix64(id) % (3 * MIB + 1)) as usize
}

fn layer_bytes(id: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; layer_size(id)];
    fastrand::Rng::with_seed(splitmix64(id ^ 0x6c61_7965_7200_0000)).fill(&mut bytes);
    bytes
}

/// What was pushed to the source: per release, the index (bytes and digest).
struct Source {
    registry: TestRegistry,
    indexes: Vec<Content>,
    /// The child (platform) manifests, pushed by digest.
    children: Vec<Content>,
    /// Every distinct blob (layers and configs): digest and size.
    blobs: Vec<(String, u64)>,
    /// Bytes of every distinct blob (layers and configs) and manifest of the 40 releases.
    content_bytes: u64,
    layer_count: usize,
}

/// Pushes the 40 releases into `registry` under `REPO`: distinct layers first (4 uploads
/// in flight), then per release the configs, the child manifests by digest and the index
/// under its version tag.
async fn fill_source(registry: TestRegistry) -> Source {
    let pusher = registry.pusher();
    let ids: BTreeSet<u64> = (0..RELEASES)
        .flat_map(|r| (0..SLOTS).map(move |s| layer_id(r, s)))
        .collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(4));
    let mut set = tokio::task::JoinSet::new();
    for &id in &ids {
        let (pusher, sem) = (pusher.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let bytes = layer_bytes(id);
            let digest = pusher.push_blob(REPO, &bytes).await;
            (id, (digest.to_string(), bytes.len() as u64))
        });
    }
    let mut layers: HashMap<u64, (String, u64)> = HashMap::new();
    while let Some(joined) = set.join_next().await {
        let (id, d) = joined.expect("layer push");
        layers.insert(id, d);
    }
    let mut content_bytes: u64 = layers.values().map(|(_, n)| n).sum();
    let mut blobs: Vec<(String, u64)> = layers.values().cloned().collect();
    let layers = Arc::new(layers);

    let mut set = tokio::task::JoinSet::new();
    for r in 0..RELEASES {
        let (pusher, sem, layers) = (pusher.clone(), sem.clone(), layers.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let mut children = Vec::new();
            let mut pushed = Vec::new();
            let mut bytes = 0u64;
            for (p, arch) in PLATFORMS.iter().enumerate() {
                let slots = p * LAYERS_PER_IMAGE..(p + 1) * LAYERS_PER_IMAGE;
                let image_layers: Vec<&(String, u64)> =
                    slots.map(|s| &layers[&layer_id(r, s)]).collect();
                let config = serde_json::json!({
                    "architecture": arch,
                    "os": "linux",
                    "config": {"Labels": {"io.openshift.release": version(r)}},
                    "rootfs": {
                        "type": "layers",
                        "diff_ids": image_layers.iter().map(|(d, _)| d).collect::<Vec<_>>(),
                    },
                });
                let config = serde_json::to_vec(&config).expect("json");
                let config_digest = pusher.push_blob(REPO, &config).await.to_string();
                let manifest = Content {
                    media_type: OCI_MANIFEST.to_string(),
                    bytes: serde_json::to_vec(&serde_json::json!({
                        "schemaVersion": 2,
                        "mediaType": OCI_MANIFEST,
                        "config": descriptor(OCI_CONFIG, &config_digest, config.len() as u64),
                        "layers": image_layers
                            .iter()
                            .map(|(d, n)| descriptor(OCI_LAYER, d, *n))
                            .collect::<Vec<_>>(),
                    }))
                    .expect("json"),
                };
                let digest = manifest.digest().to_string();
                pusher.push_manifest(REPO, &digest, &manifest).await;
                bytes += config.len() as u64 + manifest.bytes.len() as u64;
                pushed.push((
                    (config_digest.clone(), config.len() as u64),
                    manifest.clone(),
                ));
                let mut d = descriptor(OCI_MANIFEST, &digest, manifest.bytes.len() as u64);
                d["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
                children.push(d);
            }
            let index = Content {
                media_type: OCI_INDEX.to_string(),
                bytes: serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": children,
                }))
                .expect("json"),
            };
            pusher.push_manifest(REPO, &version(r), &index).await;
            bytes += index.bytes.len() as u64;
            (r, index, bytes, pushed)
        });
    }
    let mut indexes = Vec::new();
    let mut children = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (r, index, bytes, pushed) = joined.expect("release push");
        content_bytes += bytes;
        indexes.push((r, index));
        for (config, manifest) in pushed {
            blobs.push(config);
            children.push(manifest);
        }
    }
    blobs.sort();
    blobs.dedup();
    indexes.sort_by_key(|(r, _)| *r);
    Source {
        registry,
        indexes: indexes.into_iter().map(|(_, i)| i).collect(),
        children,
        blobs,
        content_bytes,
        layer_count: ids.len(),
    }
}

/// Tags the 24 extra tags of every release in the source (8 PUTs in flight).
async fn push_extra_tags(source: &Source) {
    let pusher = source.registry.pusher();
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for (r, index) in source.indexes.iter().enumerate() {
        for tag in extra_tags(r) {
            let (pusher, sem, index) = (pusher.clone(), sem.clone(), index.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore");
                pusher.push_manifest(REPO, &tag, &index).await;
            });
        }
    }
    while let Some(joined) = set.join_next().await {
        joined.expect("tag push");
    }
}

/// The floor for workload 1: what a minimal client costs against these two registries.
/// Every distinct blob is streamed from the source's GET straight into a monolithic upload
/// (POST, then PUT `?digest=` with the GET's body; no client-side hashing, no existence
/// checks), [`concurrency`] (8) blobs in flight; then the child manifests by digest and the
/// indexes by tag, as many in flight. Returns the wall time.
async fn plain_copy(source: &Source, dst: &TestRegistry) -> Duration {
    let started = Instant::now();
    let client = reqwest::Client::new();
    let (src_base, dst_base) = (source.registry.base_url(), dst.base_url());
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency().unwrap_or(8)));
    let mut set = tokio::task::JoinSet::new();
    for (digest, size) in source.blobs.clone() {
        let (client, sem) = (client.clone(), sem.clone());
        let (src_base, dst_base) = (src_base.clone(), dst_base.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let get = client
                .get(format!("{src_base}/v2/{REPO}/blobs/{digest}"))
                .send()
                .await
                .expect("blob GET");
            assert_eq!(get.status(), 200, "blob GET {digest}");
            let start = client
                .post(format!("{dst_base}/v2/{REPO}/blobs/uploads/"))
                .send()
                .await
                .expect("upload POST");
            assert_eq!(start.status(), 202, "upload POST");
            let location = start
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("upload Location");
            let mut url = reqwest::Url::parse(&dst_base)
                .and_then(|b| b.join(location))
                .expect("upload URL");
            url.query_pairs_mut().append_pair("digest", &digest);
            let put = client
                .put(url)
                .header("content-type", "application/octet-stream")
                .header("content-length", size)
                .body(reqwest::Body::wrap_stream(get.bytes_stream()))
                .send()
                .await
                .expect("upload PUT");
            assert_eq!(put.status(), 201, "upload PUT {digest}");
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.expect("blob copy");
    }
    let pusher = dst.pusher();
    for batch in [
        source
            .children
            .iter()
            .map(|m| (m.digest().to_string(), m.clone()))
            .collect::<Vec<_>>(),
        source
            .indexes
            .iter()
            .enumerate()
            .map(|(r, m)| (version(r), m.clone()))
            .collect(),
    ] {
        let mut set = tokio::task::JoinSet::new();
        for (reference, manifest) in batch {
            let (pusher, sem) = (pusher.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore");
                pusher.push_manifest(REPO, &reference, &manifest).await;
            });
        }
        while let Some(joined) = set.join_next().await {
            joined.expect("manifest PUT");
        }
    }
    started.elapsed()
}

/// `MIRROR_BENCH_CONCURRENCY`: relsync's `sync.concurrency` and the plain copy's
/// parallelism (default: relsync's default, 8).
fn concurrency() -> Option<usize> {
    std::env::var("MIRROR_BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
}

// ---- Git repositories --------------------------------------------------------------------

/// A release of a stream file: version, digest, extra tags.
struct Release {
    version: String,
    digest: String,
    tags: Vec<String>,
}

/// A Git repository with relsync.yaml (both hosts insecure), one stream `src/repo` →
/// `dst/repo` and one channel listing every release (no floating tags, so that the tag set
/// is exactly the source's, as skopeo copies it).
fn git_repo(src: &TestRegistry, dst: &TestRegistry, repo_path: &str, releases: &[Release]) -> Repo {
    let repo = Repo::new();
    let sync = concurrency().map_or(String::new(), |n| format!("  sync: {{concurrency: {n}}}\n"));
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {{host: '{}', insecure: true}}\n    - {{host: '{}', insecure: true}}\n{sync}",
            src.host(),
            dst.host()
        ),
    );
    let mut stream = format!(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: bench}}\nspec:\n  source: {}/{repo_path}\n  target: {}/{repo_path}\n  releases:\n",
        src.host(),
        dst.host()
    );
    for r in releases {
        let _ = write!(
            stream,
            "    - {{version: '{}', digest: '{}'",
            r.version, r.digest
        );
        if !r.tags.is_empty() {
            let _ = write!(stream, ", tags: [{}]", r.tags.join(", "));
        }
        stream.push_str("}\n");
    }
    repo.write("manifests/stream.yaml", &stream);
    let versions: Vec<&str> = releases.iter().map(|r| r.version.as_str()).collect();
    repo.write(
        "manifests/channel.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: bench}}\nspec:\n  stream: bench\n  versions: ['{}']\n",
            versions.join("', '")
        ),
    );
    repo.commit("bench releases");
    repo
}

fn releases(source: &Source, with_extra_tags: bool) -> Vec<Release> {
    source
        .indexes
        .iter()
        .enumerate()
        .map(|(r, index)| Release {
            version: version(r),
            digest: index.digest().to_string(),
            tags: if with_extra_tags {
                extra_tags(r)
            } else {
                Vec::new()
            },
        })
        .collect()
}

/// Every tag of the releases with its digest.
fn expected_tags(releases: &[Release]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in releases {
        out.insert(r.version.clone(), r.digest.clone());
        for t in &r.tags {
            out.insert(t.clone(), r.digest.clone());
        }
    }
    out
}

// ---- running the tools -------------------------------------------------------------------

/// [`common::run_timed`] with the relsync-only knobs `MIRROR_BENCH_WRAP` (a wrapper
/// command) and `MIRROR_BENCH_RUST_LOG` (relsync's log, kept under `target/`), noting the
/// compilers running at the start and end.
fn run_timed(program: &str, args: &[&str], dir: Option<&Path>) -> Outcome {
    let relsync = program == env!("CARGO_BIN_EXE_relsync");
    let knob = |name: &str| std::env::var(name).ok().filter(|_| relsync);
    let wrap = knob("MIRROR_BENCH_WRAP");
    let rust_log = knob("MIRROR_BENCH_RUST_LOG");
    let options = common::RunOptions {
        wrap: wrap.as_deref(),
        rust_log: rust_log.as_deref(),
        around: Some(note_compilers),
    };
    let (outcome, out) = common::run_timed_with(program, args, dir, &options);
    if rust_log.is_some() {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("target/mirror-bench-relsync-{n}.log"));
        std::fs::write(&log, &out.stderr).expect("relsync log");
        println!("    relsync's log: {}", log.display());
    }
    outcome
}

fn relsync_sync(repo: &Repo) -> Outcome {
    run_timed(env!("CARGO_BIN_EXE_relsync"), &["sync"], Some(repo.path()))
}

fn skopeo_sync(src: &TestRegistry, dst: &TestRegistry, repo_path: &str) -> Outcome {
    let source = format!("{}/{repo_path}", src.host());
    let dest = format!("{}/{NAMESPACE}", dst.host());
    run_timed(
        "skopeo",
        &[
            "sync",
            "--all",
            "--preserve-digests",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &source,
            &dest,
        ],
        None,
    )
}

// ---- registry access logs ----------------------------------------------------------------

/// Requests a registry served between two marks.
#[derive(Debug, Clone, Default)]
struct Traffic {
    requests: usize,
    writes: usize,
    heads: usize,
    tag_lists: usize,
    /// Bytes of GET answers (what a reader pulled).
    bytes_out: u64,
    by_kind: BTreeMap<String, usize>,
    /// CPU time (user + system) the registry process spent meanwhile.
    cpu: Duration,
}

/// CPU time (user + system) used so far by the `docker-registry` process serving
/// `registry` (found through /proc by its config path), or zero if it cannot be read.
fn registry_cpu(registry: &TestRegistry) -> Duration {
    let config = registry
        .storage_dir()
        .parent()
        .expect("registry dir")
        .join("config.yml");
    let config = config.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    for e in entries.flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if !args.contains(&config.as_bytes()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
        if let (Some(user), Some(system)) = (ticks(14), ticks(15)) {
            // USER_HZ is 100 on Linux.
            return Duration::from_millis((user + system) * 10);
        }
    }
    Duration::ZERO
}

fn traffic(entries: &[Access]) -> Traffic {
    let mut t = Traffic::default();
    for a in entries {
        t.requests += 1;
        match a.method.as_str() {
            "GET" => t.bytes_out += a.bytes,
            "HEAD" => t.heads += 1,
            _ => t.writes += 1,
        }
        if a.method == "GET" && a.path.contains("/tags/list") {
            t.tag_lists += 1;
        }
        let what = if a.path == "/v2/" || a.path == "/v2" {
            "/v2/ (ping)"
        } else if a.path.contains("/tags/list") {
            "tags"
        } else if a.path.contains("/blobs/uploads") {
            "uploads"
        } else if a.path.contains("/blobs/") {
            "blobs"
        } else if a.path.contains("/manifests/sha256:") {
            "manifests by digest"
        } else if a.path.contains("/manifests/") {
            "manifests by tag"
        } else {
            "other"
        };
        *t.by_kind.entry(format!("{} {what}", a.method)).or_default() += 1;
    }
    t
}

/// Runs `f` and returns its result with what `registries` served meanwhile.
fn observed<T>(registries: &[&TestRegistry], f: impl FnOnce() -> T) -> (T, Vec<Traffic>) {
    let marks: Vec<(usize, Duration)> = registries
        .iter()
        .map(|r| (access_log(r).len(), registry_cpu(r)))
        .collect();
    let out = f();
    // The registry logs a request after answering it: give the last lines a moment.
    std::thread::sleep(Duration::from_millis(300));
    let traffic = registries
        .iter()
        .zip(marks)
        .map(|(r, (m, cpu))| Traffic {
            cpu: registry_cpu(r).saturating_sub(cpu),
            ..traffic(access_log(r).get(m..).unwrap_or_default())
        })
        .collect();
    (out, traffic)
}

fn describe(t: &Traffic) -> String {
    let kinds: Vec<String> = t.by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!("{} (registry CPU {})", kinds.join(", "), secs(t.cpu))
}

/// Bytes of the blob data files in a registry's storage.
fn stored_blob_bytes(registry: &TestRegistry) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(p) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| {
                let path = e.path();
                match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&path),
                    Ok(_) if path.file_name().is_some_and(|n| n == "data") => {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                    _ => 0,
                }
            })
            .sum()
    }
    walk(&registry.storage_dir().join("docker/registry/v2/blobs"))
}

// ---- reporting ---------------------------------------------------------------------------

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

fn ratio(skopeo: Duration, relsync: Duration) -> String {
    if relsync.is_zero() {
        return "n/a".into();
    }
    format!("{:.1}x", skopeo.as_secs_f64() / relsync.as_secs_f64())
}

/// The most compilers seen at the start or end of a timed tool run.
static MAX_COMPILERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn note_compilers() {
    MAX_COMPILERS.fetch_max(compilers(), std::sync::atomic::Ordering::Relaxed);
}

/// (steal, total) jiffies of all CPUs so far, from /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total = fields.iter().take(8).sum();
    (fields.get(7).copied().unwrap_or(0), total)
}

/// The final table: (row, relsync, skopeo, ratio, goal).
#[derive(Default)]
struct Table(Vec<[String; 5]>);

impl Table {
    fn row(&mut self, cells: [&str; 5]) {
        self.0.push(cells.map(str::to_string));
    }

    fn print(&self) {
        let header = ["", "relsync", "skopeo", "skopeo/relsync", "goal"];
        let mut widths = header.map(str::len);
        for r in &self.0 {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String; 5]| {
            let mut s = String::from("|");
            for (c, w) in cells.iter().zip(widths) {
                let _ = write!(s, " {c:<w$} |");
            }
            s
        };
        println!("{}", line(&header.map(str::to_string)));
        println!(
            "|{}",
            widths
                .iter()
                .map(|w| format!("{}|", "-".repeat(w + 2)))
                .collect::<String>()
        );
        for r in &self.0 {
            println!("{}", line(r));
        }
    }
}

struct Bench {
    runs: usize,
    skopeo_only: bool,
    failures: Vec<String>,
    table: Table,
    /// The peers table: (tags: tool, first sync, ratio, no-op median, ratio, requests).
    peers: Vec<[String; 6]>,
}

impl Bench {
    fn check_relsync(&mut self, what: &str, out: &Outcome) {
        if !out.ok() {
            self.failures.push(format!(
                "{what}: relsync sync exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
                out.code, out.stdout, out.stderr
            ));
        }
    }

    fn check_skopeo(&mut self, what: &str, out: &Outcome) {
        if !out.ok() {
            self.failures.push(format!(
                "{what}: skopeo sync exited {:?}\n--- stderr\n{}",
                out.code, out.stderr
            ));
        }
    }
}

// ---- the other peers: crane and regsync ------------------------------------------------

/// The folder of the Go-built peers (`crane`, `regsync`): `RELSYNC_TEST_DEPS`, as printed
/// by `scripts/test-deps.sh`.
fn test_deps_bin(name: &str) -> String {
    let dir = std::env::var("RELSYNC_TEST_DEPS").unwrap_or_else(|_| {
        panic!("RELSYNC_TEST_DEPS is not set: run scripts/test-deps.sh and set it to the folder it prints (needed for {name})")
    });
    let bin = Path::new(&dir).join(name);
    assert!(
        bin.is_file(),
        "{} is missing (RELSYNC_TEST_DEPS={dir})",
        bin.display()
    );
    bin.to_string_lossy().into_owned()
}

/// The tools compared on the peers workloads.
#[derive(Clone, Copy, PartialEq)]
enum Tool {
    Relsync,
    Skopeo,
    Crane,
    Regsync,
}

impl Tool {
    const ALL: [Tool; 4] = [Tool::Relsync, Tool::Skopeo, Tool::Crane, Tool::Regsync];

    fn name(self) -> &'static str {
        match self {
            Tool::Relsync => "relsync sync",
            Tool::Skopeo => "skopeo sync --all",
            Tool::Crane => "crane cp --all-tags",
            Tool::Regsync => "regsync once",
        }
    }
}

/// `crane copy --all-tags --insecure SRC/repo DST/repo` (crane's default `--jobs`, GOMAXPROCS).
fn crane_copy(src: &TestRegistry, dst: &TestRegistry, repo_path: &str) -> Outcome {
    let source = format!("{}/{repo_path}", src.host());
    let dest = format!("{}/{repo_path}", dst.host());
    run_timed(
        &test_deps_bin("crane"),
        &["copy", "--all-tags", "--insecure", &source, &dest],
        None,
    )
}

/// `regsync once -c CONFIG` with a config naming the same repositories (both hosts plain
/// HTTP, `type: repository`: every tag; regsync's defaults otherwise).
fn regsync_once(src: &TestRegistry, dst: &TestRegistry, repo_path: &str, dir: &Path) -> Outcome {
    let config = dir.join("regsync.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\ncreds:\n  - registry: {s}\n    tls: disabled\n  - registry: {d}\n    tls: disabled\nsync:\n  - source: {s}/{repo_path}\n    target: {d}/{repo_path}\n    type: repository\n",
            s = src.host(),
            d = dst.host()
        ),
    )
    .expect("regsync config");
    let config = config.to_string_lossy().into_owned();
    // regsync keeps its state (none needed here) under HOME.
    run_timed(
        &test_deps_bin("regsync"),
        &["once", "-c", &config, "-v", "warn"],
        Some(dir),
    )
}

/// The peers workloads: for the `tags` of the source (40 releases, or 1,000 tags with the
/// pinned ones), every tool gets a fresh empty target, copies everything once (the initial
/// mirror, timed), then re-syncs `bench.runs` times with nothing to do (the no-op, timed),
/// the tools taking turns in a rotating order; every target is verified tag by tag.
fn workload_peers(
    bench: &mut Bench,
    rt: &tokio::runtime::Runtime,
    source: &Source,
    with_extra_tags: bool,
) {
    if with_extra_tags {
        rt.block_on(push_extra_tags(source));
    }
    let releases = releases(source, with_extra_tags);
    let expected = expected_tags(&releases);
    let n = expected.len();
    println!("\n== peers on {n} tags: relsync, skopeo, crane, regsync (fresh targets each)");
    let scratch = tempfile::tempdir().expect("scratch dir");
    let targets: Vec<TestRegistry> = Tool::ALL.iter().map(|_| TestRegistry::start()).collect();
    let repo = git_repo(&source.registry, &targets[0], REPO, &releases);
    let run_tool = |tool: Tool| -> (Outcome, Vec<Traffic>) {
        let dst = &targets[Tool::ALL.iter().position(|t| *t == tool).unwrap()];
        observed(&[&source.registry, dst], || match tool {
            Tool::Relsync => relsync_sync(&repo),
            Tool::Skopeo => skopeo_sync(&source.registry, dst, REPO),
            Tool::Crane => crane_copy(&source.registry, dst, REPO),
            Tool::Regsync => regsync_once(&source.registry, dst, REPO, scratch.path()),
        })
    };
    let mut first: Vec<Duration> = Vec::new();
    let mut noop: Vec<Vec<Duration>> = vec![Vec::new(); Tool::ALL.len()];
    let mut noop_traffic: Vec<Traffic> = vec![Traffic::default(); Tool::ALL.len()];
    for tool in Tool::ALL {
        let (out, t) = run_tool(tool);
        check_peer(
            bench,
            &format!("peers {n} tags, first {}", tool.name()),
            &out,
        );
        println!(
            "  first sync, {:<20} {} (CPU {}) — target: {} requests ({} writes)",
            tool.name(),
            secs(out.wall),
            secs(out.cpu),
            t[1].requests,
            t[1].writes
        );
        first.push(out.wall);
    }
    for run in 0..bench.runs {
        for k in 0..Tool::ALL.len() {
            let i = (k + run) % Tool::ALL.len();
            let tool = Tool::ALL[i];
            let (out, t) = run_tool(tool);
            check_peer(
                bench,
                &format!("peers {n} tags, no-op run {run} {}", tool.name()),
                &out,
            );
            println!(
                "  no-op run {run} {:<20} {} (CPU {}) — target: {} requests ({} writes); source: {} requests",
                tool.name(),
                secs(out.wall),
                secs(out.cpu),
                t[1].requests,
                t[1].writes,
                t[0].requests
            );
            if tool == Tool::Relsync && t[1].writes > 0 {
                bench.failures.push(format!(
                    "peers {n} tags: a no-op relsync sync wrote to the target"
                ));
            }
            noop[i].push(out.wall);
            noop_traffic[i] = t[1].clone();
        }
    }
    for (tool, dst) in Tool::ALL.iter().zip(&targets) {
        let problems = rt.block_on(verify(tool.name(), dst, REPO, &expected));
        bench.failures.extend(problems);
    }
    let relsync_first = first[0];
    let relsync_noop = median(&noop[0]);
    for (i, tool) in Tool::ALL.into_iter().enumerate() {
        let med = median(&noop[i]);
        bench.peers.push([
            format!("{n} tags: {}", tool.name()),
            secs(first[i]),
            if i == 0 {
                "1.0x".into()
            } else {
                ratio(first[i], relsync_first)
            },
            format!(
                "{} ({})",
                secs(med),
                noop[i]
                    .iter()
                    .map(|d| secs(*d))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            if i == 0 {
                "1.0x".into()
            } else {
                ratio(med, relsync_noop)
            },
            format!("{} / {}", noop_traffic[i].requests, noop_traffic[i].writes),
        ]);
    }
    let goal = if with_extra_tags { 50.0 } else { 10.0 };
    let skopeo_noop = median(&noop[1]);
    let met = skopeo_noop.as_secs_f64() >= goal * relsync_noop.as_secs_f64();
    bench.peers.push([
        format!("{n} tags: no-op goal ≥ {goal}x skopeo"),
        String::new(),
        String::new(),
        String::new(),
        ratio(skopeo_noop, relsync_noop),
        if met { "met".into() } else { "NOT MET".into() },
    ]);
}

fn check_peer(bench: &mut Bench, what: &str, out: &Outcome) {
    if !out.ok() {
        bench.failures.push(format!(
            "{what}: exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
            out.code, out.stdout, out.stderr
        ));
    }
}

fn print_peers(rows: &[[String; 6]]) {
    if rows.is_empty() {
        return;
    }
    println!(
        "\n| tags: tool | first sync (initial mirror) | ÷ relsync | no-op re-sync, median (runs) | ÷ relsync | no-op target requests / writes |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("| {} |", r.join(" | "));
    }
}

// ---- workloads ---------------------------------------------------------------------------

fn workload_initial(bench: &mut Bench, rt: &tokio::runtime::Runtime, source: &Source) {
    let releases = releases(source, false);
    let expected = expected_tags(&releases);
    println!(
        "\n== 1. initial mirror of {RELEASES} releases ({} distinct layers, {} of content, {} runs, fresh targets per run)",
        source.layer_count,
        mib(source.content_bytes),
        bench.runs
    );
    let (mut relsync_times, mut skopeo_times) = (Vec::new(), Vec::new());
    let mut floor_times = Vec::new();
    // The registries' own CPU time during each plain copy, divided by the cores: the wall
    // time under which no client can copy this data between these two registries.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let mut bound_times = Vec::new();
    let mut last = None;
    for run in 0..bench.runs {
        // The floor: a plain streaming copy by this process into a third fresh registry.
        let dst_floor = TestRegistry::start();
        settle();
        let (floor, ft) = observed(&[&source.registry, &dst_floor], || {
            rt.block_on(plain_copy(source, &dst_floor))
        });
        let problems = rt.block_on(verify("plain-copy target", &dst_floor, REPO, &expected));
        println!(
            "  run {run} plain streaming copy (no client-side hashing, {} in flight): {}{}\n    source {} | target {}",
            concurrency().unwrap_or(8),
            secs(floor),
            if problems.is_empty() {
                ""
            } else {
                " [incomplete!]"
            },
            describe(&ft[0]),
            describe(&ft[1])
        );
        bench.failures.extend(problems);
        floor_times.push(floor);
        bound_times.push((ft[0].cpu + ft[1].cpu) / cores);
        drop(dst_floor);
        let dst_relsync = TestRegistry::start();
        let dst_skopeo = TestRegistry::start();
        let repo = git_repo(&source.registry, &dst_relsync, REPO, &releases);
        let do_relsync = |bench: &mut Bench| {
            if bench.skopeo_only {
                return None;
            }
            let (out, t) = observed(&[&source.registry, &dst_relsync], || relsync_sync(&repo));
            bench.check_relsync(&format!("workload 1 run {run}"), &out);
            println!(
                "  run {run} relsync: {} (exit {:?}, CPU {}, peak RSS {} KiB) — source: {} requests, {} read, CPU {}; target: {} requests ({} writes), CPU {}\n    relsync: {}",
                secs(out.wall),
                out.code,
                secs(out.cpu),
                out.rss_kib,
                t[0].requests,
                mib(t[0].bytes_out),
                secs(t[0].cpu),
                t[1].requests,
                t[1].writes,
                secs(t[1].cpu),
                out.last_line()
            );
            Some((out, t))
        };
        let do_skopeo = |bench: &mut Bench| {
            let (out, t) = observed(&[&source.registry, &dst_skopeo], || {
                skopeo_sync(&source.registry, &dst_skopeo, REPO)
            });
            bench.check_skopeo(&format!("workload 1 run {run}"), &out);
            println!(
                "  run {run} skopeo:  {} (exit {:?}, CPU {}, peak RSS {} KiB) — source: {} requests, {} read, CPU {}; target: {} requests ({} writes), CPU {}",
                secs(out.wall),
                out.code,
                secs(out.cpu),
                out.rss_kib,
                t[0].requests,
                mib(t[0].bytes_out),
                secs(t[0].cpu),
                t[1].requests,
                t[1].writes,
                secs(t[1].cpu),
            );
            (out, t)
        };
        // Alternate which tool goes first, so neither always meets a colder page cache.
        let (r, s) = if run % 2 == 0 {
            let s = do_skopeo(bench);
            (do_relsync(bench), s)
        } else {
            let r = do_relsync(bench);
            (r, do_skopeo(bench))
        };
        skopeo_times.push(s.0.wall);
        let mut problems = rt.block_on(verify("skopeo target", &dst_skopeo, REPO, &expected));
        if let Some((out, _)) = &r {
            relsync_times.push(out.wall);
            problems.extend(rt.block_on(verify("relsync target", &dst_relsync, REPO, &expected)));
        }
        if problems.is_empty() {
            println!(
                "    verified: all {} tags hold the source's digest in {}",
                expected.len(),
                if r.is_some() {
                    "both targets"
                } else {
                    "skopeo's target"
                }
            );
        }
        bench.failures.extend(problems);
        last = Some((
            r.map(|(o, t)| (o, t, stored_blob_bytes(&dst_relsync))),
            (s.0, s.1, stored_blob_bytes(&dst_skopeo)),
        ));
    }
    let (r_med, s_med) = (median(&relsync_times), median(&skopeo_times));
    let goal_met = |r: Duration| {
        if s_med.as_secs_f64() >= 3.0 * r.as_secs_f64() {
            "met"
        } else {
            "NOT MET"
        }
    };
    bench.table.row([
        &format!(
            "1. initial mirror, {RELEASES} releases (median of {})",
            bench.runs
        ),
        &if bench.skopeo_only {
            "pending".into()
        } else {
            secs(r_med)
        },
        &secs(s_med),
        &if bench.skopeo_only {
            "pending".into()
        } else {
            ratio(s_med, r_med)
        },
        &if bench.skopeo_only {
            "≥ 3x".to_string()
        } else {
            format!("≥ 3x: {}", goal_met(r_med))
        },
    ]);
    bench.table.row([
        "   plain streaming copy, same data (median; the floor)",
        &secs(median(&floor_times)),
        "",
        &ratio(s_med, median(&floor_times)),
        "",
    ]);
    bench.table.row([
        &format!(
            "   registries' own CPU in the plain copy / {cores} cores (median; no client is faster)"
        ),
        &secs(median(&bound_times)),
        "",
        &ratio(s_med, median(&bound_times)),
        "",
    ]);
    if let Some((r, (_, s_t, s_stored))) = last {
        let r_cell = r.as_ref().map_or("pending".into(), |(_, t, stored)| {
            format!("{} read, {} stored", mib(t[0].bytes_out), mib(*stored))
        });
        bench.table.row([
            "   bytes read from source / stored in target (last run)",
            &r_cell,
            &format!("{} read, {} stored", mib(s_t[0].bytes_out), mib(s_stored)),
            "",
            &format!("content: {}", mib(source.content_bytes)),
        ]);
        if let Some((_, t, _)) = &r {
            println!(
                "  last run, relsync: source {} | target {}",
                describe(&t[0]),
                describe(&t[1])
            );
        }
        println!(
            "  last run, skopeo:  source {} | target {}",
            describe(&s_t[0]),
            describe(&s_t[1])
        );
    }
}

fn workload_noop(bench: &mut Bench, rt: &tokio::runtime::Runtime, source: &Source) {
    let started = Instant::now();
    rt.block_on(push_extra_tags(source));
    let releases = releases(source, true);
    let expected = expected_tags(&releases);
    println!(
        "\n== 2. no-op re-sync of {} tags ({RELEASES} releases x (1 + {EXTRA_TAGS} pinned tags); extra tags pushed to the source in {})",
        expected.len(),
        secs(started.elapsed())
    );
    let dst_relsync = TestRegistry::start();
    let dst_skopeo = TestRegistry::start();
    let repo = git_repo(&source.registry, &dst_relsync, REPO, &releases);

    // The first sync fills the targets (timed for information only).
    let first_skopeo = skopeo_sync(&source.registry, &dst_skopeo, REPO);
    bench.check_skopeo("workload 2 first sync", &first_skopeo);
    println!("  first sync, skopeo:  {}", secs(first_skopeo.wall));
    if !bench.skopeo_only {
        let first = relsync_sync(&repo);
        bench.check_relsync("workload 2 first sync", &first);
        println!(
            "  first sync, relsync: {} — {}",
            secs(first.wall),
            first.last_line()
        );
    }

    let (mut relsync_times, mut skopeo_times) = (Vec::new(), Vec::new());
    let mut relsync_target = Vec::new();
    let mut relsync_source = Vec::new();
    let mut skopeo_target = Traffic::default();
    let mut skopeo_source = Traffic::default();
    for run in 0..bench.runs {
        let mut do_relsync = |bench: &mut Bench| {
            if bench.skopeo_only {
                return;
            }
            let (out, t) = observed(&[&source.registry, &dst_relsync], || relsync_sync(&repo));
            bench.check_relsync(&format!("workload 2 no-op run {run}"), &out);
            println!(
                "  no-op run {run} relsync: {} (exit {:?}, CPU {}) — target: {} requests ({} tag lists, {} HEADs, {} writes); source: {} requests\n    target: {}\n    relsync: {}",
                secs(out.wall),
                out.code,
                secs(out.cpu),
                t[1].requests,
                t[1].tag_lists,
                t[1].heads,
                t[1].writes,
                t[0].requests,
                describe(&t[1]),
                out.last_line()
            );
            relsync_times.push(out.wall);
            relsync_target.push(t[1].clone());
            relsync_source.push(t[0].clone());
        };
        let mut do_skopeo = |bench: &mut Bench| {
            let (out, t) = observed(&[&source.registry, &dst_skopeo], || {
                skopeo_sync(&source.registry, &dst_skopeo, REPO)
            });
            bench.check_skopeo(&format!("workload 2 no-op run {run}"), &out);
            println!(
                "  no-op run {run} skopeo:  {} (exit {:?}, CPU {}) — target: {} requests ({} writes); source: {} requests",
                secs(out.wall),
                out.code,
                secs(out.cpu),
                t[1].requests,
                t[1].writes,
                t[0].requests,
            );
            skopeo_times.push(out.wall);
            skopeo_target = t[1].clone();
            skopeo_source = t[0].clone();
        };
        if run % 2 == 0 {
            do_skopeo(bench);
            do_relsync(bench);
        } else {
            do_relsync(bench);
            do_skopeo(bench);
        }
    }
    let mut problems = rt.block_on(verify("skopeo target", &dst_skopeo, REPO, &expected));
    if !bench.skopeo_only {
        problems.extend(rt.block_on(verify("relsync target", &dst_relsync, REPO, &expected)));
    }
    if problems.is_empty() {
        println!(
            "  verified: all {} tags hold the source's digest",
            expected.len()
        );
    }
    bench.failures.extend(problems);
    println!("  skopeo target (last run): {}", describe(&skopeo_target));

    let request_goal = 1 + expected.len();
    let (r_med, s_med) = (median(&relsync_times), median(&skopeo_times));
    if bench.skopeo_only {
        bench.table.row([
            &format!(
                "2. no-op re-sync, {} tags (median of {})",
                expected.len(),
                bench.runs
            ),
            "pending",
            &secs(s_med),
            "pending",
            "≥ 20x",
        ]);
        bench.table.row([
            "   target requests / writes",
            "pending",
            &format!("{} / {}", skopeo_target.requests, skopeo_target.writes),
            "",
            &format!("≤ {request_goal} / 0"),
        ]);
        return;
    }
    let max_requests = relsync_target.iter().map(|t| t.requests).max().unwrap_or(0);
    let max_writes = relsync_target.iter().map(|t| t.writes).max().unwrap_or(0);
    let source_requests = relsync_source.iter().map(|t| t.requests).max().unwrap_or(0);
    if max_writes > 0 {
        bench.failures.push(format!(
            "workload 2: a no-op relsync sync wrote to the target: {:?}",
            relsync_target.iter().map(describe).collect::<Vec<_>>()
        ));
    }
    bench.table.row([
        &format!(
            "2. no-op re-sync, {} tags (median of {})",
            expected.len(),
            bench.runs
        ),
        &secs(r_med),
        &secs(s_med),
        &ratio(s_med, r_med),
        &format!(
            "≥ 20x: {}",
            if s_med.as_secs_f64() >= 20.0 * r_med.as_secs_f64() {
                "met"
            } else {
                "NOT MET"
            }
        ),
    ]);
    bench.table.row([
        "   target requests / writes (worst run)",
        &format!("{max_requests} / {max_writes}"),
        &format!("{} / {}", skopeo_target.requests, skopeo_target.writes),
        "",
        &format!(
            "≤ {request_goal} / 0: {}",
            if max_requests <= request_goal && max_writes == 0 {
                "met"
            } else {
                "NOT MET"
            }
        ),
    ]);
    bench.table.row([
        "   source requests (worst run)",
        &source_requests.to_string(),
        &skopeo_source.requests.to_string(),
        "",
        "",
    ]);
}

fn workload_big(bench: &mut Bench, rt: &tokio::runtime::Runtime, source: &Source) {
    let started = Instant::now();
    let digest = rt.block_on(push_big_image(&source.registry, BIG_REPO, Some("5.0.0")));
    println!(
        "\n== 3. one release with a single 1 GiB layer (streamed into the source in {})",
        secs(started.elapsed())
    );
    let releases = [Release {
        version: "5.0.0".into(),
        digest,
        tags: Vec::new(),
    }];
    let expected = expected_tags(&releases);
    let dst_relsync = TestRegistry::start();
    let dst_skopeo = TestRegistry::start();
    let repo = git_repo(&source.registry, &dst_relsync, BIG_REPO, &releases);

    let r = if bench.skopeo_only {
        None
    } else {
        let (out, t) = observed(&[&source.registry, &dst_relsync], || relsync_sync(&repo));
        bench.check_relsync("workload 3", &out);
        println!(
            "  relsync: {} (exit {:?}, CPU {}), peak RSS {} KiB = {:.1} MiB\n    relsync: {}\n    source {} | target {}",
            secs(out.wall),
            out.code,
            secs(out.cpu),
            out.rss_kib,
            out.rss_kib as f64 / 1024.0,
            out.last_line(),
            describe(&t[0]),
            describe(&t[1])
        );
        Some(out)
    };
    let (s, t) = observed(&[&source.registry, &dst_skopeo], || {
        skopeo_sync(&source.registry, &dst_skopeo, BIG_REPO)
    });
    bench.check_skopeo("workload 3", &s);
    println!(
        "  skopeo:  {} (exit {:?}, CPU {}), peak RSS {} KiB = {:.1} MiB\n    source {} | target {}",
        secs(s.wall),
        s.code,
        secs(s.cpu),
        s.rss_kib,
        s.rss_kib as f64 / 1024.0,
        describe(&t[0]),
        describe(&t[1])
    );
    let mut problems = rt.block_on(verify("skopeo target", &dst_skopeo, BIG_REPO, &expected));
    if r.is_some() {
        problems.extend(rt.block_on(verify("relsync target", &dst_relsync, BIG_REPO, &expected)));
        let stored = stored_blob_bytes(&dst_relsync);
        if stored < BIG_LAYER {
            problems.push(format!(
                "relsync target: only {} of blobs stored",
                mib(stored)
            ));
        }
    }
    if problems.is_empty() {
        println!("  verified: 5.0.0 holds the source's digest");
    }
    bench.failures.extend(problems);
    let rss = |kib: u64| format!("{kib} KiB ({:.1} MiB)", kib as f64 / 1024.0);
    match &r {
        Some(r) => {
            bench.table.row([
                "3. 1 GiB layer: wall time (one run)",
                &secs(r.wall),
                &secs(s.wall),
                &ratio(s.wall, r.wall),
                "",
            ]);
            bench.table.row([
                "   peak RSS",
                &rss(r.rss_kib),
                &rss(s.rss_kib),
                "",
                &format!(
                    "< 64 MiB: {}",
                    if r.rss_kib < 64 * 1024 {
                        "met"
                    } else {
                        "NOT MET"
                    }
                ),
            ]);
        }
        None => {
            bench.table.row([
                "3. 1 GiB layer: wall time (one run)",
                "pending",
                &secs(s.wall),
                "pending",
                "",
            ]);
            bench
                .table
                .row(["   peak RSS", "pending", &rss(s.rss_kib), "", "< 64 MiB"]);
        }
    }
}

fn main() {
    let workloads: BTreeSet<String> = std::env::var("MIRROR_BENCH_WORKLOADS")
        .unwrap_or_else(|_| "1,2,3,4,5".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let runs: usize = std::env::var("MIRROR_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let skopeo_only = std::env::var("MIRROR_BENCH_SKOPEO_ONLY").is_ok_and(|v| v == "1");
    let relsync_bin = PathBuf::from(env!("CARGO_BIN_EXE_relsync"));
    if !skopeo_only {
        let help = Command::new(&relsync_bin)
            .args(["sync", "--help"])
            .output()
            .expect("run relsync");
        assert!(
            help.status.success(),
            "`relsync sync --help` failed: this relsync has no `sync` command yet (set MIRROR_BENCH_SKOPEO_ONLY=1 for a skopeo baseline)\n{}",
            String::from_utf8_lossy(&help.stderr)
        );
    }
    println!(
        "mirror: relsync sync vs {} sync --all --preserve-digests; docker-registry {}; {} cores; {}",
        tool_version("skopeo", &["--version"]),
        tool_version(util::DOCKER_REGISTRY, &["--version"]),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_note()
    );
    if skopeo_only {
        println!("MIRROR_BENCH_SKOPEO_ONLY=1: relsync's side is not run");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let jiffies = cpu_jiffies();
    let source = rt.block_on(fill_source(TestRegistry::start()));
    println!(
        "source filled: {RELEASES} releases, {} distinct layers, {} in {}",
        source.layer_count,
        mib(source.content_bytes),
        secs(started.elapsed())
    );
    let mut bench = Bench {
        runs,
        skopeo_only,
        failures: Vec::new(),
        table: Table::default(),
        peers: Vec::new(),
    };
    if workloads.contains("1") {
        workload_initial(&mut bench, &rt, &source);
    }
    if workloads.contains("4") {
        workload_peers(&mut bench, &rt, &source, false);
    }
    if workloads.contains("2") {
        workload_noop(&mut bench, &rt, &source);
    }
    if workloads.contains("5") {
        workload_peers(&mut bench, &rt, &source, true);
    }
    if workloads.contains("3") {
        workload_big(&mut bench, &rt, &source);
    }
    let (steal, total) = cpu_jiffies();
    let steal = (steal - jiffies.0) as f64 * 100.0 / (total - jiffies.1).max(1) as f64;
    println!(
        "\nmirror: done in {}; {}; at most {} rustc/clippy process(es) seen around timed runs; CPU steal {steal:.1}%\n",
        secs(started.elapsed()),
        load_note(),
        MAX_COMPILERS.load(std::sync::atomic::Ordering::Relaxed)
    );
    bench.table.print();
    print_peers(&bench.peers);
    if !bench.failures.is_empty() {
        eprintln!("\nmirror: {} problem(s):", bench.failures.len());
        for f in &bench.failures {
            eprintln!("- {f}");
        }
        std::process::exit(1);
    }
}
