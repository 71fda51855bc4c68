//! `relsync sync` under injected faults and crashes: through a fault-injection proxy
//! ([`crate::fault_proxy::FaultProxy`]) in front of real docker-registry processes, with one
//! blob that always fails, killed with SIGKILL at many moments of a copy into an `oci:`
//! layout, and two runs at once against one target.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relsync::digest::Digest;
use serde_json::Value;

use crate::fault_proxy::{ALL_FAULTS, FaultKind, FaultOptions, FaultProxy};
use crate::util::{PushedIndex, Repo, TestRegistry, block_on};

const SOURCE: &str = "okd/ci";
const TARGET: &str = "okd/release";
const VERSIONS: [&str; 3] = ["4.14.0", "4.15.0", "4.16.0"];
/// relsync's read timeout in these tests (seconds), shorter than the proxy's stalls.
const READ_TIMEOUT: &str = "1";

/// Multi-arch releases in a source registry (an index over amd64 with one layer and arm64
/// with three), and a Git repository whose channels publish them: next = all, stable =
/// all but the newest.
struct Setup {
    src: TestRegistry,
    repo: Repo,
    releases: Vec<(String, PushedIndex)>,
}

impl Setup {
    fn new() -> Setup {
        let src = TestRegistry::start();
        let pusher = src.pusher();
        let releases = block_on(async {
            let mut out = Vec::new();
            for v in VERSIONS {
                let pushed = pusher.push_index(SOURCE, v, &format!("release-{v}")).await;
                out.push((v.to_string(), pushed));
            }
            out
        });
        Setup {
            src,
            repo: Repo::new(),
            releases,
        }
    }

    fn digest_of(&self, version: &str) -> Digest {
        self.releases
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, p)| p.index.clone())
            .unwrap()
    }

    /// Writes relsync.yaml (these hosts, plain HTTP) and the manifests (source and target
    /// repository strings as given), and commits; returns the commit.
    fn write(&self, hosts: &[String], concurrency: usize, source: &str, target: &str) -> String {
        let registries: String = hosts
            .iter()
            .map(|h| format!("    - {{host: '{h}', insecure: true}}\n"))
            .collect();
        self.repo.write(
            "relsync.yaml",
            &format!(
                "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n{registries}  sync:\n    concurrency: {concurrency}\n"
            ),
        );
        let releases: String = self
            .releases
            .iter()
            .map(|(v, p)| format!("    - {{version: {v}, digest: '{}'}}\n", p.index))
            .collect();
        self.repo.write(
            "manifests/stream.yaml",
            &format!(
                "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {source}\n  target: {target}\n  releases:\n{releases}"
            ),
        );
        let channel = |name: &str, tag: &str, versions: &[&str]| {
            format!(
                "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: {name}}}\nspec:\n  stream: okd\n  tags: [{tag}]\n  versions: [{}]\n",
                versions.join(", ")
            )
        };
        self.repo.write(
            "manifests/next.yaml",
            &channel("okd-next", "next", &VERSIONS),
        );
        self.repo.write(
            "manifests/stable.yaml",
            &channel("okd-stable", "stable", &VERSIONS[..2]),
        );
        self.repo.commit(&format!("{source} -> {target}"))
    }

    /// Every tag Git wants in the target, with its digest.
    fn desired(&self) -> BTreeMap<String, Digest> {
        let mut out: BTreeMap<String, Digest> = VERSIONS
            .iter()
            .map(|v| (v.to_string(), self.digest_of(v)))
            .collect();
        out.insert("next".into(), self.digest_of("4.16.0"));
        out.insert("stable".into(), self.digest_of("4.15.0"));
        out
    }

    /// `relsync ARGS` with a short registry read timeout.
    fn relsync(&self, args: &[&str]) -> crate::util::Run {
        self.repo
            .relsync_env(args, &[("RELSYNC_READ_TIMEOUT", READ_TIMEOUT)])
    }

    /// `relsync sync` started in the background.
    fn spawn_sync(&self, revision: Option<&str>) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_relsync"));
        if let Some(r) = revision {
            cmd.args(["--revision", r]);
        }
        cmd.arg("sync")
            .current_dir(self.repo.path())
            .env_remove("RUST_LOG")
            .env_remove("KUBECONFIG")
            .env("NO_COLOR", "1")
            .env("RELSYNC_READ_TIMEOUT", READ_TIMEOUT)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Every tag of `repo` on the registry at `host`, read directly (no proxy), with the
/// sha256 of the manifest it serves.
fn registry_tags(host: &str, repo: &str) -> BTreeMap<String, Digest> {
    let base = format!("http://{host}");
    let tags = block_on(crate::util::Pusher::new(&base, None).tags(repo));
    block_on(async {
        let client = reqwest::Client::new();
        let mut out = BTreeMap::new();
        for tag in tags {
            let resp = client
                .get(format!("{base}/v2/{repo}/manifests/{tag}"))
                .header(
                    "accept",
                    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                     application/vnd.docker.distribution.manifest.list.v2+json, \
                     application/vnd.docker.distribution.manifest.v2+json",
                )
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{repo}:{tag}");
            let body = resp.bytes().await.unwrap();
            out.insert(tag, Digest::sha256_of(&body));
        }
        out
    })
}

/// The checks on an `oci:` layout that hold at every moment, even right after a SIGKILL:
/// every file under a final blob name is true to its digest, and every tag in index.json
/// names content that is all there (index → children → config and layers). Returns the
/// tags.
pub(crate) fn check_layout(dir: &Path) -> BTreeMap<String, Digest> {
    let blobs = dir.join("blobs/sha256");
    if let Ok(entries) = std::fs::read_dir(&blobs) {
        for e in entries {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                continue;
            }
            let bytes = std::fs::read(blobs.join(&name)).unwrap();
            assert_eq!(
                Digest::sha256_of(&bytes).hex(),
                name,
                "a blob file under its final name is digest-false (half written?)"
            );
        }
    }
    let index_path = dir.join("index.json");
    if !index_path.exists() {
        return BTreeMap::new();
    }
    let index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap())
        .expect("index.json is always whole JSON");
    let blob = |d: &str| -> Vec<u8> {
        let digest = Digest::parse(d).unwrap();
        let bytes = std::fs::read(blobs.join(digest.hex()))
            .unwrap_or_else(|e| panic!("{d} is referenced by a tag but missing ({e})"));
        assert_eq!(Digest::sha256_of(&bytes), digest, "{d} is digest-false");
        bytes
    };
    fn walk(manifest: &[u8], blob: &dyn Fn(&str) -> Vec<u8>) {
        let m: Value = serde_json::from_slice(manifest).unwrap();
        if let Some(children) = m["manifests"].as_array() {
            for c in children {
                walk(&blob(c["digest"].as_str().unwrap()), blob);
            }
        } else {
            blob(m["config"]["digest"].as_str().unwrap());
            for l in m["layers"].as_array().unwrap() {
                blob(l["digest"].as_str().unwrap());
            }
        }
    }
    let mut tags = BTreeMap::new();
    for entry in index["manifests"].as_array().unwrap() {
        let d = entry["digest"].as_str().unwrap();
        walk(&blob(d), &blob);
        let tag = entry["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .expect("every entry relsync writes is tagged")
            .to_string();
        assert!(
            tags.insert(tag.clone(), Digest::parse(d).unwrap())
                .is_none(),
            "tag {tag} twice in index.json"
        );
    }
    tags
}

/// With 15% of the requests to both registries faulted (every kind of fault, fixed seeds),
/// `sync` converges: every tag read directly from the target registry holds Git's digest,
/// and a second sync is a no-op that writes nothing.
///
/// A fault can, rarely, outlast the retries of one request or blob (5 tries each); `sync`
/// then exits 1 having copied the rest, and the next run picks up from there. Convergence
/// is therefore asserted within three runs, and each failed run must fail cleanly (exit 1).
#[test]
fn sync_converges_through_15_percent_injected_faults() {
    let s = Setup::new();
    let dst = TestRegistry::start();
    let options = |seed| FaultOptions {
        seed,
        rate: 0.15,
        kinds: ALL_FAULTS.to_vec(),
        retry_after: "1".to_string(),
        stall: Duration::from_secs(2),
        ..Default::default()
    };
    let src_proxy = FaultProxy::start(&s.src.host(), options(7));
    let dst_proxy = FaultProxy::start(&dst.host(), options(11));
    s.write(
        &[src_proxy.host(), dst_proxy.host()],
        8,
        &format!("{}/{SOURCE}", src_proxy.host()),
        &format!("{}/{TARGET}", dst_proxy.host()),
    );

    let started = Instant::now();
    let mut runs = Vec::new();
    loop {
        let run = s.relsync(&["sync"]);
        let code = run.code();
        runs.push(run);
        if code == 0 {
            break;
        }
        assert_eq!(
            code,
            1,
            "a failed sync exits 1:\n{}",
            runs.last().unwrap().stderr()
        );
        assert!(
            runs.len() < 3,
            "no convergence in 3 runs; last stderr:\n{}\nsource proxy:\n{}\ntarget proxy:\n{}",
            runs.last().unwrap().stderr(),
            src_proxy.log().join("\n"),
            dst_proxy.log().join("\n"),
        );
    }
    eprintln!(
        "converged in {} run(s), {:?}; injected: source {:?}, target {:?}",
        runs.len(),
        started.elapsed(),
        src_proxy.injected(),
        dst_proxy.injected()
    );

    // Every kind of fault actually happened, on both sides together.
    let mut injected = src_proxy.injected();
    for (k, n) in dst_proxy.injected() {
        *injected.entry(k).or_insert(0) += n;
    }
    for kind in ALL_FAULTS {
        assert!(
            injected.get(&kind).copied().unwrap_or(0) > 0,
            "{kind:?} never injected: {injected:?}"
        );
    }
    assert!(
        src_proxy.cut_in_body() > 0,
        "no answer was broken off inside its body"
    );
    assert!(
        dst_proxy
            .log()
            .iter()
            .any(|l| l.starts_with("PUT /v2/okd/release/blobs/uploads/") && l.ends_with("-> ok")),
        "uploads did not go through the proxy (Location not rewritten?)"
    );

    // Read directly from the registry, not through the proxy.
    assert_eq!(registry_tags(&dst.host(), TARGET), s.desired());

    // A second sync, still through the faults, is a no-op: no write reaches the registry.
    let writes = dst.served_writes().len();
    let again = s.relsync(&["sync"]);
    again.expect_code(0);
    assert!(
        again.stderr().contains("0 created, 0 moved, 0 deleted"),
        "{}",
        again.stderr()
    );
    assert_eq!(
        dst.served_writes()[writes..],
        [] as [String; 0],
        "the second sync wrote"
    );
    assert_eq!(registry_tags(&dst.host(), TARGET), s.desired());
}

/// One blob of one release fails every time (503 on every request that names it): `sync`
/// copies and tags every other release, exits 1 with an error naming the release, the blob
/// and the last cause, and leaves no tag on the incomplete release (its floating tag
/// included).
#[test]
fn a_blob_that_always_fails_leaves_its_release_untagged_and_the_rest_synced() {
    let s = Setup::new();
    let dst = TestRegistry::start();
    let (_, broken) = s.releases.iter().find(|(v, _)| v == "4.15.0").unwrap();
    let bad_blob = broken.children[1].layers[1].clone();
    let dst_proxy = FaultProxy::start(
        &dst.host(),
        FaultOptions {
            always: vec![(bad_blob.to_string(), FaultKind::Status503)],
            ..Default::default()
        },
    );
    s.write(
        &[s.src.host(), dst_proxy.host()],
        8,
        &format!("{}/{SOURCE}", s.src.host()),
        &format!("{}/{TARGET}", dst_proxy.host()),
    );
    let started = Instant::now();
    let run = s.relsync(&["sync"]);
    run.expect_code(1);
    let stderr = run.stderr();
    eprintln!(
        "failed in {:?}, {} requests naming the blob:\n{stderr}",
        started.elapsed(),
        dst_proxy.injected_total()
    );
    let line = stderr
        .lines()
        .find(|l| l.contains(&bad_blob.to_string()))
        .unwrap_or_else(|| panic!("no error names the blob {bad_blob}:\n{stderr}"));
    assert!(line.contains("4.15.0"), "the release is not named: {line}");
    assert!(line.contains("503"), "the last cause is not named: {line}");
    assert!(
        dst_proxy
            .injected()
            .get(&FaultKind::Status503)
            .copied()
            .unwrap_or(0)
            >= 2,
        "the blob was not retried: {:?}",
        dst_proxy.injected()
    );
    // Regression: the HTTP layer's tries (5) were multiplied by the mirror's redoing the
    // whole blob around them (5 × 5 = 25 requests for one blob).
    assert_eq!(
        dst_proxy.injected().get(&FaultKind::Status503).copied(),
        Some(5),
        "one request's tries, not multiplied"
    );

    let mut want = s.desired();
    want.remove("4.15.0");
    want.remove("stable"); // stable's newest is 4.15.0
    assert_eq!(registry_tags(&dst.host(), TARGET), want);
    // Everything else of the broken release is there; only the bad blob is not.
    block_on(async {
        let client = reqwest::Client::new();
        let has = |d: Digest| {
            let client = client.clone();
            let url = format!("{}/v2/{TARGET}/blobs/{d}", dst.base_url());
            async move { client.head(url).send().await.unwrap().status() == 200 }
        };
        assert!(!has(bad_blob.clone()).await);
        assert!(has(broken.children[1].layers[0].clone()).await);
        assert!(has(broken.children[0].config.clone()).await);
    });
}

/// How far a sync into an `oci:` layout (one transfer at a time) has come, as seen on disk:
/// twice the blob files in place plus the tags, plus one while a blob file is being
/// written. Every write raises it by one (a temporary blob file appears: odd; it is renamed
/// into place, or a tag is added: even), so each value is one moment of the run.
pub(crate) fn progress(dir: &Path) -> usize {
    let (mut done, mut tmp) = (0, 0);
    if let Ok(entries) = std::fs::read_dir(dir.join("blobs/sha256")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                tmp += 1;
            } else {
                done += 1;
            }
        }
    }
    let tags = std::fs::read(dir.join("index.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["manifests"].as_array().map(Vec::len))
        .unwrap_or(0);
    2 * (done + tags) + tmp.min(1)
}

/// `sync` into an `oci:` layout killed with SIGKILL at 22 moments spread evenly over one
/// run (each from an empty layout; a moment is a [`progress`] value: while the n-th file is
/// being written, right after it is in place, right after a tag is written). After every
/// kill, no tag names incomplete or digest-false content and no file under a final blob
/// name is digest-false; a rerun then converges to exactly Git's tags.
#[test]
fn sync_into_an_oci_layout_killed_at_22_moments_never_tags_incomplete_content() {
    let s = Setup::new();
    // The killed runs read through a proxy that paces answers (a pause in the middle of
    // every body, so that each file spends a while half written); the reruns read directly.
    let slow = FaultProxy::start(
        &s.src.host(),
        FaultOptions {
            latency: Some(Duration::from_millis(1)),
            body_pause: Some(Duration::from_millis(6)),
            ..Default::default()
        },
    );
    let hosts = [s.src.host(), slow.host()];
    let killed_rev = s.write(
        &hosts,
        1,
        &format!("{}/{SOURCE}", slow.host()),
        "oci:live/okd",
    );
    let rerun_rev = s.write(
        &hosts,
        1,
        &format!("{}/{SOURCE}", s.src.host()),
        "oci:live/okd",
    );
    let layout = s.repo.path().join("live/okd");
    let desired = s.desired();
    // The reruns copy eight at a time.
    let fast = s
        .repo
        .read("relsync.yaml")
        .replace("concurrency: 1", "concurrency: 8");
    s.repo.write("fast.yaml", &fast);

    // Index, two children, two configs and four layers per release, and the tags.
    let end = 2 * (9 * VERSIONS.len() + desired.len());
    // The last moment is one write before the end (right before the last tag), so that
    // every run is still going when it is killed.
    let moments: Vec<usize> = (0..22).map(|i| 1 + i * (end - 3) / 21).collect();
    assert_eq!((moments[0], moments[21]), (1, end - 2));

    let started = Instant::now();
    let (mut exact, mut mid_write, mut partly_tagged) = (0, 0, 0);
    let mut distinct = std::collections::BTreeSet::new();
    let mut leftovers = 0;
    for &moment in &moments {
        let _ = std::fs::remove_dir_all(&layout);
        let mut child = s.spawn_sync(Some(&killed_rev));
        let deadline = Instant::now() + Duration::from_secs(20);
        let seen = loop {
            let p = progress(&layout);
            if p >= moment {
                break p;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("moment {moment}: the run ended ({status}) before it came, at {p}");
            }
            assert!(Instant::now() < deadline, "moment {moment} never came");
            std::thread::sleep(Duration::from_micros(200));
        };
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "moment {moment}: the run had finished before the kill"
        );
        exact += usize::from(seen == moment);
        distinct.insert(seen);
        mid_write += progress(&layout) % 2;
        let tags = check_layout(&layout);
        if !tags.is_empty() && tags.len() < desired.len() {
            partly_tagged += 1;
        }
        for (tag, digest) in &tags {
            assert_eq!(desired.get(tag), Some(digest), "moment {moment}: {tag}");
        }

        let rerun = s.relsync(&["--config", "fast.yaml", "--revision", &rerun_rev, "sync"]);
        rerun.expect_code(0);
        assert_eq!(check_layout(&layout), desired, "moment {moment}: rerun");
        leftovers += progress(&layout) % 2;
    }
    eprintln!(
        "{} kills in {:?}: {exact} exactly at their moment, {} distinct moments, {mid_write} mid-write, {partly_tagged} partly tagged, {leftovers} with a temporary file left after the rerun",
        moments.len(),
        started.elapsed(),
        distinct.len()
    );
    assert!(
        distinct.len() >= 20,
        "the kills landed at only {} different moments: {distinct:?}",
        distinct.len()
    );
    assert!(mid_write >= 5, "only {mid_write} kills landed mid-write");
    assert_eq!(
        leftovers, 0,
        "a rerun left a killed writer's temporary file in the layout"
    );
    assert!(
        partly_tagged >= 8,
        "only {partly_tagged} kills landed between tag writes"
    );

    // Converged: a further run writes nothing.
    let index = std::fs::read(layout.join("index.json")).unwrap();
    let again = s.relsync(&["sync"]);
    again.expect_code(0);
    assert!(again.stderr().contains("0 created, 0 moved, 0 deleted"));
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), index);
}

/// Two `sync` runs at once: each exits 0, or 1 reporting a conflict; the target then holds
/// exactly Git's tags, and a further run is a no-op.
fn check_two_runs(runs: [Child; 2]) {
    for child in runs {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("exit {:?}:\n{stderr}", out.status.code());
        match out.status.code() {
            Some(0) => {}
            Some(1) => assert!(
                stderr.contains("conflict") && !stderr.contains("0 conflicts"),
                "a racing run failed, and not on a conflict:\n{stderr}"
            ),
            other => panic!("exit {other:?}:\n{stderr}"),
        }
    }
}

/// Two runs started together (reading through a proxy that holds every answer 5 ms, so
/// that each takes a while and their writes interleave) into one `oci:` layout: the layout
/// lock and the compare-and-swap tag writes lose no tag and write no wrong one.
#[test]
fn two_syncs_at_once_into_one_oci_layout_converge() {
    let s = Setup::new();
    let slow = FaultProxy::start(
        &s.src.host(),
        FaultOptions {
            latency: Some(Duration::from_millis(5)),
            ..Default::default()
        },
    );
    s.write(
        &[slow.host()],
        4,
        &format!("{}/{SOURCE}", slow.host()),
        "oci:live/okd",
    );
    let layout = s.repo.path().join("live/okd");
    let runs = [s.spawn_sync(None), s.spawn_sync(None)];
    check_two_runs(runs);
    assert_eq!(check_layout(&layout), s.desired());

    let index = std::fs::read(layout.join("index.json")).unwrap();
    let blobs = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .count();
    let again = s.relsync(&["sync"]);
    again.expect_code(0);
    assert!(
        again.stderr().contains("0 created, 0 moved, 0 deleted"),
        "{}",
        again.stderr()
    );
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), index);
    assert_eq!(
        std::fs::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .count(),
        blobs
    );
}

/// Two runs started together into one registry: every tag right, and a third run writes
/// nothing (the registry's own access log).
#[test]
fn two_syncs_at_once_into_one_registry_converge() {
    let s = Setup::new();
    let dst = TestRegistry::start();
    let slow = FaultProxy::start(
        &s.src.host(),
        FaultOptions {
            latency: Some(Duration::from_millis(5)),
            ..Default::default()
        },
    );
    s.write(
        &[slow.host(), dst.host()],
        4,
        &format!("{}/{SOURCE}", slow.host()),
        &format!("{}/{TARGET}", dst.host()),
    );
    let runs = [s.spawn_sync(None), s.spawn_sync(None)];
    check_two_runs(runs);
    assert_eq!(registry_tags(&dst.host(), TARGET), s.desired());

    let writes = dst.served_writes().len();
    let again = s.relsync(&["sync"]);
    again.expect_code(0);
    assert!(
        again.stderr().contains("0 created, 0 moved, 0 deleted"),
        "{}",
        again.stderr()
    );
    assert_eq!(dst.served_writes()[writes..], [] as [String; 0]);
    assert_eq!(registry_tags(&dst.host(), TARGET), s.desired());
}

/// Regression: a tag list (or manifest) whose answer broke off mid-body was a final error
/// ("error decoding response body"): the body was read after the retry loop, and reqwest
/// files a broken body under "decode", which counted as not retryable.
#[test]
fn a_tag_list_and_a_manifest_cut_mid_body_are_read_again() {
    let s = Setup::new();
    let dst = TestRegistry::start();
    let src_proxy = FaultProxy::start(
        &s.src.host(),
        FaultOptions {
            once: vec![(
                format!("GET /v2/{SOURCE}/manifests/{}", s.digest_of("4.14.0")),
                FaultKind::Cut,
            )],
            ..Default::default()
        },
    );
    let dst_proxy = FaultProxy::start(
        &dst.host(),
        FaultOptions {
            once: vec![(format!("GET /v2/{TARGET}/tags/list"), FaultKind::Cut)],
            ..Default::default()
        },
    );
    s.write(
        &[src_proxy.host(), dst_proxy.host()],
        8,
        &format!("{}/{SOURCE}", src_proxy.host()),
        &format!("{}/{TARGET}", dst_proxy.host()),
    );
    s.relsync(&["sync"]).expect_code(0);
    assert_eq!(src_proxy.cut_in_body(), 1, "{:?}", src_proxy.log());
    assert_eq!(dst_proxy.cut_in_body(), 1, "{:?}", dst_proxy.log());
    assert_eq!(registry_tags(&dst.host(), TARGET), s.desired());
}

/// Regression: a blob whose download broke off mid-body was not copied again (the broken
/// body counted as a decoding error, not retryable), so one cut connection failed a
/// release.
#[test]
fn a_blob_cut_mid_body_is_copied_again() {
    let s = Setup::new();
    let dst = TestRegistry::start();
    let blob = s.releases[0].1.children[1].layers[2].clone();
    let src_proxy = FaultProxy::start(
        &s.src.host(),
        FaultOptions {
            once: vec![(format!("GET /v2/{SOURCE}/blobs/{blob}"), FaultKind::Cut)],
            ..Default::default()
        },
    );
    s.write(
        &[src_proxy.host(), dst.host()],
        8,
        &format!("{}/{SOURCE}", src_proxy.host()),
        &format!("{}/{TARGET}", dst.host()),
    );
    let run = s.relsync(&["sync"]);
    run.expect_code(0);
    assert_eq!(src_proxy.cut_in_body(), 1, "{:?}", src_proxy.log());
    assert_eq!(
        src_proxy
            .log()
            .iter()
            .filter(|l| l.starts_with(&format!("GET /v2/{SOURCE}/blobs/{blob}")))
            .count(),
        2,
        "read once more after the cut"
    );
    assert_eq!(registry_tags(&dst.host(), TARGET), s.desired());
}

/// An answer that stalls (before its head, or in the middle of a blob) is given up after
/// relsync's read timeout (`RELSYNC_READ_TIMEOUT`, here 1 s) and tried again, instead of
/// hanging the sync.
#[test]
fn stalled_answers_time_out_and_are_tried_again() {
    let s = Setup::new();
    let dst = TestRegistry::start();
    let blob = s.releases[1].1.children[0].layers[0].clone();
    let src_proxy = FaultProxy::start(
        &s.src.host(),
        FaultOptions {
            once: vec![
                (
                    format!("GET /v2/{SOURCE}/blobs/{blob}"),
                    FaultKind::StallBody,
                ),
                (
                    format!("GET /v2/{SOURCE}/manifests/{}", s.digest_of("4.16.0")),
                    FaultKind::Stall,
                ),
            ],
            stall: Duration::from_secs(30),
            ..Default::default()
        },
    );
    s.write(
        &[src_proxy.host(), dst.host()],
        8,
        &format!("{}/{SOURCE}", src_proxy.host()),
        &format!("{}/{TARGET}", dst.host()),
    );
    let started = Instant::now();
    s.relsync(&["sync"]).expect_code(0);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the stalls were waited out: {:?}",
        started.elapsed()
    );
    assert_eq!(
        src_proxy.injected(),
        BTreeMap::from([(FaultKind::Stall, 1), (FaultKind::StallBody, 1)])
    );
    assert_eq!(registry_tags(&dst.host(), TARGET), s.desired());

    // A bad value is refused up front, naming the variable.
    let bad = s
        .repo
        .relsync_env(&["plan"], &[("RELSYNC_READ_TIMEOUT", "soon")]);
    bad.expect_code(1);
    assert!(
        bad.stderr().contains("RELSYNC_READ_TIMEOUT"),
        "{}",
        bad.stderr()
    );
}

/// Regression: two syncs pushing the same release to one docker-registry at once failed
/// now and then with `writing manifest …:next: registry answered 400 Bad Request
/// (DIGEST_INVALID …)`: distribution's filesystem storage rewrites a link file in place,
/// and a manifest write whose check reads it meanwhile is refused. relsync computed the
/// digest from the bytes it sends, so the answer is the registry's race, and the write is
/// tried again.
#[test]
fn a_manifest_write_refused_with_digest_invalid_is_tried_again() {
    let s = Setup::new();
    let dst = TestRegistry::start();
    let dst_proxy = FaultProxy::start(
        &dst.host(),
        FaultOptions {
            once: vec![
                (
                    format!("PUT /v2/{TARGET}/manifests/next"),
                    FaultKind::DigestInvalid,
                ),
                (
                    format!("PUT /v2/{TARGET}/manifests/sha256:"),
                    FaultKind::DigestInvalid,
                ),
            ],
            ..Default::default()
        },
    );
    s.write(
        &[s.src.host(), dst_proxy.host()],
        8,
        &format!("{}/{SOURCE}", s.src.host()),
        &format!("{}/{TARGET}", dst_proxy.host()),
    );
    s.relsync(&["sync"]).expect_code(0);
    assert_eq!(
        dst_proxy.injected(),
        BTreeMap::from([(FaultKind::DigestInvalid, 2)])
    );
    let puts_of_next = dst_proxy
        .log()
        .iter()
        .filter(|l| l.starts_with(&format!("PUT /v2/{TARGET}/manifests/next ")))
        .count();
    assert_eq!(puts_of_next, 2, "refused, then written");
    assert_eq!(registry_tags(&dst.host(), TARGET), s.desired());
}
