//! `relsync sync` of a release-payload stream against what a user scripts today, `skopeo
//! copy --all --preserve-digests` of each component and release, 8 at a time
//! (`xargs -P 8`), side by side in the same run, between real `docker-registry`
//! (distribution 2.8) processes on loopback (issue 13, "Performance").
//!
//! Run: `cargo bench --bench payload` (needs `/usr/bin/docker-registry`, `skopeo`, `git`,
//! `xargs`, `/usr/bin/time`). Results go to BENCHMARKS.md ("Payload mirror").
//!
//! Workload: 10 nightly releases × 190 components (1–3 small layers each, built by
//! `tests/util/payload.rs` as `oc adm release new` lays them out), 85% of the components
//! unchanged between consecutive releases (each release changes 15%, rounded up), the
//! components in `okd/content` and the release images (by digest) in `okd/release` of one
//! source registry. Measured:
//! 1. initial payload mirror into empty targets: one `relsync sync` of the payload stream
//!    (10 releases) vs the skopeo script (every component of every release to
//!    `<version>-<name>`, then every release to `<version>`); wall time, CPU (user + system,
//!    children included), ratio (goal ≥ 3x); every tag's digest checked on both targets;
//! 2. no-op re-sync vs the same skopeo script again (goal ≥ 20x); relsync's requests and
//!    writes as the target registry's access log counts them (goal: zero writes; requests =
//!    one tag list per repository + one HEAD per release and component tag);
//! 3. peak RSS of relsync mirroring a release whose component holds one 1 GiB layer (goal
//!    < 64 MiB).
//!
//! Knobs (environment): `PAYLOAD_BENCH_COMPONENTS=190`, `PAYLOAD_BENCH_RELEASES=10` (a
//! smaller workload for a quick run), `PAYLOAD_BENCH_BIG=0` (skip workload 3). The
//! registries keep their storage under `TMPDIR`.

#[path = "../tests/util/mod.rs"]
mod util;

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Access, Outcome, access_log, load_note, push_big_image, run_timed, secs, tool_version, verify,
};

use util::{
    BuiltRelease, Repo, TestRegistry, component_image, payload_releases, push_built_image,
    release_image, release_layer,
};

/// Source and target repositories (the same paths on both sides).
const RELEASES: &str = "okd/release";
const CONTENT: &str = "okd/content";
/// The source repository of the 1 GiB component.
const BIG: &str = "okd/big";

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// The nightly versions, oldest first.
fn versions(n: usize) -> Vec<String> {
    (1..=n)
        .map(|d| format!("4.15.0-0.okd-2026-12-{d:02}-000000"))
        .collect()
}

// ---- source ------------------------------------------------------------------------------

/// Pushes every distinct component image (8 in flight), then each release image by digest.
async fn fill_source(src: &TestRegistry, releases: &[BuiltRelease]) -> usize {
    let pusher = src.pusher();
    let mut distinct = HashMap::new();
    for r in releases {
        for c in &r.components {
            distinct.insert(c.image.digest(), c.image.clone());
        }
    }
    let count = distinct.len();
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for image in distinct.into_values() {
        let (pusher, sem) = (pusher.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            push_built_image(&pusher, CONTENT, None, &image).await;
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.expect("component push");
    }
    for r in releases {
        push_built_image(&pusher, RELEASES, None, &r.images[0].0).await;
    }
    count
}

// ---- the Git repository ------------------------------------------------------------------

/// A repository whose stream `okd` mirrors `releases` (version, digest) from `src` to `dst`,
/// payload into `dst/okd/content`, one channel listing every release (no floating tag).
fn git_repo(src: &TestRegistry, dst: &TestRegistry, releases: &[(String, String)]) -> Repo {
    let repo = Repo::new();
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {{host: '{}', insecure: true}}\n    - {{host: '{}', insecure: true}}\n",
            src.host(),
            dst.host()
        ),
    );
    let mut list = String::new();
    for (v, d) in releases {
        let _ = writeln!(list, "    - {{version: '{v}', digest: '{d}'}}");
    }
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {}/{RELEASES}\n  target: {}/{RELEASES}\n  order: listed\n  payload:\n    target: {}/{CONTENT}\n  releases:\n{list}",
            src.host(),
            dst.host(),
            dst.host()
        ),
    );
    let versions: Vec<&str> = releases.iter().map(|(v, _)| v.as_str()).collect();
    repo.write(
        "manifests/channel.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: nightly}}\nspec:\n  stream: okd\n  versions: ['{}']\n",
            versions.join("', '")
        ),
    );
    repo.commit("payload bench");
    repo
}

// ---- running the tools -------------------------------------------------------------------

fn relsync_sync(repo: &Repo) -> Outcome {
    run_timed(env!("CARGO_BIN_EXE_relsync"), &["sync"], Some(repo.path()))
}

/// The user's script: `skopeo copy --all --preserve-digests` of every component (8 at a
/// time), then of every release (8 at a time), by digest from the source to its tag.
fn skopeo_script(src: &TestRegistry, dst: &TestRegistry, releases: &[BuiltRelease]) -> Outcome {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut comps = String::new();
    let mut rels = String::new();
    for r in releases {
        for (tag, digest) in r.component_tags() {
            let _ = writeln!(
                comps,
                "docker://{}/{CONTENT}@{digest} docker://{}/{CONTENT}:{tag}",
                src.host(),
                dst.host()
            );
        }
        let _ = writeln!(
            rels,
            "docker://{}/{RELEASES}@{} docker://{}/{RELEASES}:{}",
            src.host(),
            r.digest(),
            dst.host(),
            r.version.replace('+', "_")
        );
    }
    std::fs::write(dir.path().join("components"), comps).expect("write list");
    std::fs::write(dir.path().join("releases"), rels).expect("write list");
    let copy =
        "skopeo copy -q --all --preserve-digests --src-tls-verify=false --dest-tls-verify=false";
    let script =
        format!("set -e; xargs -a components -P 8 -n 2 {copy}; xargs -a releases -P 8 -n 2 {copy}");
    run_timed("sh", &["-c", &script], Some(dir.path()))
}

// ---- registry access logs ----------------------------------------------------------------

/// Requests a registry served during a run, by kind.
#[derive(Default)]
struct Traffic {
    requests: usize,
    writes: usize,
    heads: usize,
    tag_lists: usize,
    by_kind: BTreeMap<String, usize>,
}

impl Traffic {
    fn of(entries: &[Access]) -> Traffic {
        let mut t = Traffic::default();
        for Access { method, path, .. } in entries {
            t.requests += 1;
            match method.as_str() {
                "GET" if path.contains("/tags/list") => t.tag_lists += 1,
                "GET" => {}
                "HEAD" => t.heads += 1,
                _ => t.writes += 1,
            }
            let what = if path == "/v2/" || path == "/v2" {
                "/v2/ (ping)"
            } else if path.contains("/tags/list") {
                "tags"
            } else if path.contains("/blobs/uploads") {
                "uploads"
            } else if path.contains("/blobs/") {
                "blobs"
            } else if path.contains("/manifests/sha256:") {
                "manifests by digest"
            } else if path.contains("/manifests/") {
                "manifests by tag"
            } else {
                "other"
            };
            *t.by_kind.entry(format!("{method} {what}")).or_default() += 1;
        }
        t
    }

    fn describe(&self) -> String {
        if self.by_kind.is_empty() {
            return "none".into();
        }
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        format!("{} requests: {}", self.requests, kinds.join(", "))
    }
}

/// Runs `f` and returns its result with what `registries` served meanwhile.
fn observed<T>(registries: &[&TestRegistry], f: impl FnOnce() -> T) -> (T, Vec<Traffic>) {
    let marks: Vec<usize> = registries.iter().map(|r| access_log(r).len()).collect();
    let out = f();
    // The registry logs a request after answering it: give the last lines a moment.
    std::thread::sleep(Duration::from_millis(300));
    let traffic = registries
        .iter()
        .zip(marks)
        .map(|(r, m)| Traffic::of(access_log(r).get(m..).unwrap_or_default()))
        .collect();
    (out, traffic)
}

// ---- verification ------------------------------------------------------------------------

/// (release repository, content repository) tags every release must leave on a target.
fn expected_tags(
    releases: &[BuiltRelease],
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut rel = BTreeMap::new();
    let mut content = BTreeMap::new();
    for r in releases {
        rel.insert(r.version.replace('+', "_"), r.digest().to_string());
        for (tag, d) in r.component_tags() {
            content.insert(tag, d.to_string());
        }
    }
    (rel, content)
}

// ---- reporting ---------------------------------------------------------------------------

fn ratio(peer: Duration, relsync: Duration) -> f64 {
    if relsync.is_zero() {
        return f64::INFINITY;
    }
    peer.as_secs_f64() / relsync.as_secs_f64()
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}

#[derive(Default)]
struct Bench {
    failures: Vec<String>,
    rows: Vec<[String; 5]>,
}

impl Bench {
    fn row(&mut self, cells: [&str; 5]) {
        self.rows.push(cells.map(str::to_string));
    }

    fn check(&mut self, what: &str, out: &Outcome) {
        if !out.ok() {
            self.failures.push(format!(
                "{what} exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
                out.code,
                out.stdout,
                out.stderr.chars().take(4000).collect::<String>()
            ));
        }
    }

    fn print(&self) {
        println!("| | relsync | skopeo script | skopeo/relsync | goal |");
        println!("|---|---|---|---|---|");
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
    }
}

// ---- workloads ---------------------------------------------------------------------------

/// Workloads 1 and 2.
fn mirror_and_noop(
    bench: &mut Bench,
    rt: &tokio::runtime::Runtime,
    src: &TestRegistry,
    releases: &[BuiltRelease],
) {
    let dst_relsync = TestRegistry::start();
    let dst_skopeo = TestRegistry::start();
    let pins: Vec<(String, String)> = releases
        .iter()
        .map(|r| (r.version.clone(), r.digest().to_string()))
        .collect();
    let repo = git_repo(src, &dst_relsync, &pins);
    let component_tags: usize = releases.iter().map(|r| r.component_tags().len()).sum();

    println!("\n== 1. initial payload mirror into empty targets");
    let (r1, t) = observed(&[src, &dst_relsync], || relsync_sync(&repo));
    bench.check("initial relsync sync", &r1);
    println!(
        "  relsync: {}\n    source: {}\n    target: {}",
        r1.summary(),
        t[0].describe(),
        t[1].describe()
    );
    let (s1, t) = observed(&[src, &dst_skopeo], || {
        skopeo_script(src, &dst_skopeo, releases)
    });
    bench.check("initial skopeo script", &s1);
    println!(
        "  skopeo:  {}\n    source: {}\n    target: {}",
        s1.summary(),
        t[0].describe(),
        t[1].describe()
    );
    let (rel, content) = expected_tags(releases);
    let mut problems = Vec::new();
    for (who, dst) in [
        ("relsync target", &dst_relsync),
        ("skopeo target", &dst_skopeo),
    ] {
        problems.extend(rt.block_on(verify(who, dst, RELEASES, &rel)));
        problems.extend(rt.block_on(verify(who, dst, CONTENT, &content)));
    }
    if problems.is_empty() {
        println!(
            "  verified: both targets hold the {} release tags and {} component tags with the source's digests",
            rel.len(),
            content.len()
        );
    }
    bench.failures.extend(problems.into_iter().take(20));
    let r = ratio(s1.wall, r1.wall);
    bench.row([
        "1. initial mirror: wall time",
        &secs(r1.wall),
        &secs(s1.wall),
        &format!("{r:.1}x"),
        &format!("≥ 3x: {}", met(r >= 3.0)),
    ]);
    bench.row([
        "   CPU (user + system)",
        &secs(r1.cpu),
        &secs(s1.cpu),
        &format!("{:.1}x", ratio(s1.cpu, r1.cpu)),
        "",
    ]);

    println!("\n== 2. no-op re-sync of the same targets");
    let (r2, t) = observed(&[src, &dst_relsync], || relsync_sync(&repo));
    bench.check("no-op relsync sync", &r2);
    let (source_t, target_t) = (&t[0], &t[1]);
    println!(
        "  relsync: {}\n    source: {}\n    target: {}",
        r2.summary(),
        source_t.describe(),
        target_t.describe()
    );
    let (s2, t) = observed(&[src, &dst_skopeo], || {
        skopeo_script(src, &dst_skopeo, releases)
    });
    bench.check("no-op skopeo script", &s2);
    println!(
        "  skopeo:  {}\n    source: {}\n    target: {}",
        s2.summary(),
        t[0].describe(),
        t[1].describe()
    );
    let expected_requests = 2 + releases.len() + component_tags;
    let requests = source_t.requests + target_t.requests;
    let writes = source_t.writes + target_t.writes;
    println!(
        "  relsync's requests: expected {expected_requests} (2 tag lists + {} release HEADs + {component_tags} component tag HEADs), actual {requests} ({} tag lists, {} HEADs, {} other; {} at the source); writes: expected 0, actual {writes}",
        releases.len(),
        source_t.tag_lists + target_t.tag_lists,
        source_t.heads + target_t.heads,
        requests
            - source_t.tag_lists
            - target_t.tag_lists
            - source_t.heads
            - target_t.heads
            - writes,
        source_t.requests,
    );
    let r = ratio(s2.wall, r2.wall);
    bench.row([
        "2. no-op re-sync: wall time",
        &secs(r2.wall),
        &secs(s2.wall),
        &format!("{r:.1}x"),
        &format!("≥ 20x: {}", met(r >= 20.0)),
    ]);
    bench.row([
        "   CPU (user + system)",
        &secs(r2.cpu),
        &secs(s2.cpu),
        &format!("{:.1}x", ratio(s2.cpu, r2.cpu)),
        "",
    ]);
    bench.row([
        "   requests (source + target)",
        &requests.to_string(),
        &(t[0].requests + t[1].requests).to_string(),
        "",
        &format!(
            "= {expected_requests}: {}",
            met(requests == expected_requests)
        ),
    ]);
    bench.row([
        "   writes",
        &writes.to_string(),
        &(t[0].writes + t[1].writes).to_string(),
        "",
        &format!("0: {}", met(writes == 0)),
    ]);
}

/// Workload 3: one release whose component `big` holds a single 1 GiB layer, beside two
/// small components.
fn big_layer(bench: &mut Bench, rt: &tokio::runtime::Runtime, src: &TestRegistry) {
    let started = Instant::now();
    let big = rt.block_on(push_big_image(src, BIG, None));
    let small: Vec<_> = (0..2)
        .map(|i| component_image(&format!("big-release-small-{i}"), "amd64", 1))
        .collect();
    let mut entries = vec![("big".to_string(), format!("{}/{BIG}@{big}", src.host()))];
    for (i, image) in small.iter().enumerate() {
        entries.push((
            format!("small-{i}"),
            format!("{}/{CONTENT}@{}", src.host(), image.digest()),
        ));
    }
    let version = "4.16.0-0.okd-2026-12-31-000000";
    let release = release_image(version, "amd64", release_layer(version, &entries));
    rt.block_on(async {
        let pusher = src.pusher();
        for image in &small {
            push_built_image(&pusher, CONTENT, None, image).await;
        }
        push_built_image(&pusher, RELEASES, None, &release).await;
    });
    println!(
        "\n== 3. one release whose component holds a 1 GiB layer (pushed to the source in {})",
        secs(started.elapsed())
    );
    let dst = TestRegistry::start();
    let repo = git_repo(
        src,
        &dst,
        &[(version.to_string(), release.digest().to_string())],
    );
    let (out, t) = observed(&[src, &dst], || relsync_sync(&repo));
    bench.check("1 GiB relsync sync", &out);
    println!(
        "  relsync: {}\n    source: {}\n    target: {}",
        out.summary(),
        t[0].describe(),
        t[1].describe()
    );
    let got = rt.block_on(util::head_tag_digest(
        &dst.base_url(),
        CONTENT,
        &format!("{version}-big"),
    ));
    if got.as_deref() != Some(big.as_str()) {
        bench.failures.push(format!(
            "1 GiB: {CONTENT}:{version}-big is {got:?}, want {big}"
        ));
    }
    let mib = out.rss_kib as f64 / 1024.0;
    bench.row([
        "3. 1 GiB layer: peak RSS",
        &format!("{mib:.1} MiB"),
        "",
        "",
        &format!("< 64 MiB: {}", met(out.rss_kib < 64 * 1024)),
    ]);
    bench.row(["   wall time", &secs(out.wall), "", "", ""]);
}

fn main() {
    let components = knob("PAYLOAD_BENCH_COMPONENTS", 190);
    let release_count = knob("PAYLOAD_BENCH_RELEASES", 10);
    let changed = (components * 15).div_ceil(100).clamp(1, components);
    let big = std::env::var("PAYLOAD_BENCH_BIG").as_deref() != Ok("0");
    println!(
        "payload: relsync sync vs {} copy --all --preserve-digests (xargs -P 8); docker-registry {}; {} cores; {}",
        tool_version("skopeo", &["--version"]),
        tool_version(util::DOCKER_REGISTRY, &["--version"]),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_note()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let src = TestRegistry::start();
    let versions = versions(release_count);
    let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
    let releases = payload_releases(
        &versions,
        components,
        changed,
        &format!("{}/{CONTENT}", src.host()),
    );
    let distinct = rt.block_on(fill_source(&src, &releases));
    println!(
        "source filled: {release_count} releases × {components} components ({changed} changed per release), {distinct} distinct component images, in {}",
        secs(started.elapsed())
    );
    let mut bench = Bench::default();
    mirror_and_noop(&mut bench, &rt, &src, &releases);
    if big {
        big_layer(&mut bench, &rt, &src);
    }
    println!(
        "\npayload: done in {}; {}\n",
        secs(started.elapsed()),
        load_note()
    );
    bench.print();
    if !bench.failures.is_empty() {
        eprintln!("\npayload: {} problem(s):", bench.failures.len());
        for f in &bench.failures {
            eprintln!("- {f}");
        }
        std::process::exit(1);
    }
}
