//! How many registry requests a `plan` makes, and how long it takes, against a real
//! registry holding 5,000 tags in 50 repositories, 1,000 of them named in Git.
//!
//! Run: `cargo bench --bench plan_requests` (needs `/usr/bin/docker-registry`).
//! The goal: one tag list per repository plus one HEAD per tag Git names, 50 + 1,000 =
//! 1,050 requests. Results go to BENCHMARKS.md.

#[path = "../tests/util/mod.rs"]
mod util;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use relsync::config::{Config, RegistrySettings};
use relsync::manifest::{Located, SourceFile, Span};
use relsync::observe::{ObserveOptions, observe};
use relsync::plan::PlanOptions;
use relsync::registry::Registries;

const REPOS: usize = 50;
const TAGS_PER_REPO: usize = 100;
const NAMED_PER_REPO: usize = 20;
const RUNS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run() {
    let registry = util::TestRegistry::start();
    let host = registry.host();
    let pusher = registry.pusher();

    // Fill: 50 repositories x 100 tags, distinct small manifests sharing one config and
    // one layer per repository, pushed concurrently over HTTP.
    let started = Instant::now();
    let mut fills = tokio::task::JoinSet::new();
    for r in 0..REPOS {
        let pusher = pusher.clone();
        fills.spawn(async move {
            let repo = format!("bench/repo-{r:02}");
            let tags: Vec<String> = (0..TAGS_PER_REPO).map(|i| format!("4.{r}.{i}")).collect();
            let digests = pusher.push_many(&repo, &tags, 4).await;
            (r, digests)
        });
    }
    let mut pushed = Vec::new();
    while let Some(joined) = fills.join_next().await {
        pushed.push(joined.expect("fill task"));
    }
    pushed.sort_by_key(|(r, _)| *r);
    let fill_time = started.elapsed();
    let total_tags: usize = pushed.iter().map(|(_, d)| d.len()).sum();
    assert_eq!(total_tags, REPOS * TAGS_PER_REPO);

    // Git: one stream and one channel per repository naming 20 of its 100 tags, loaded and
    // derived through the library's public API.
    let mut files = Vec::new();
    for (r, digests) in &pushed {
        let mut stream = format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: s{r:02}\nspec:\n  source: registry.ci.openshift.org/origin/bench-{r:02}\n  target: {host}/bench/repo-{r:02}\n  releases:\n"
        );
        let mut channel = format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: c{r:02}\nspec:\n  stream: s{r:02}\n  versions:\n"
        );
        for i in 0..NAMED_PER_REPO {
            let version = format!("4.{r}.{i}");
            let _ = writeln!(
                stream,
                "    - version: {version}\n      digest: {}",
                digests[&version]
            );
            let _ = writeln!(channel, "    - {version}");
        }
        files.push(SourceFile {
            path: format!("manifests/streams/s{r:02}.yaml"),
            contents: stream.into_bytes(),
        });
        files.push(SourceFile {
            path: format!("manifests/channels/c{r:02}.yaml"),
            contents: channel.into_bytes(),
        });
    }
    let manifests = relsync::desired::load(&files, "policies").unwrap_or_else(|d| {
        panic!(
            "bench manifests invalid: {:?}",
            d.iter().map(|x| x.to_string()).collect::<Vec<_>>()
        )
    });
    let desired = relsync::desired::derive(&manifests).unwrap_or_else(|d| {
        panic!(
            "bench desired state: {:?}",
            d.iter().map(|x| x.to_string()).collect::<Vec<_>>()
        )
    });
    let named: usize = desired.repos.values().map(|r| r.tags.len()).sum();
    assert_eq!(desired.repos.len(), REPOS);
    assert_eq!(named, REPOS * NAMED_PER_REPO);

    let config = Config {
        registries: vec![RegistrySettings {
            host: Located::new(host.clone(), Span::file("relsync.yaml")),
            insecure: true,
            ca_file: None,
            username_env: None,
            password_env: None,
            map_to: None,
            token_realms: Vec::new(),
            delete_by_digest: false,
            rate_limit: None,
        }],
        ..Default::default()
    };
    let config_dir = std::env::temp_dir();
    let goal = (REPOS + named) as u64;

    println!(
        "plan_requests: {REPOS} repositories, {total_tags} tags, {named} named in Git; sync.concurrency = {}",
        config.sync.concurrency
    );
    println!("  fill (push {total_tags} manifests over HTTP): {fill_time:.2?}");

    let plan_goal = format!("goal: {REPOS} tag lists + {named} HEADs = {goal}");
    let drift_goal = format!(
        "expected: {REPOS} tag lists + {total_tags} HEADs = {}",
        REPOS + total_tags
    );
    for (label, options, expected, why) in [
        (
            "plan (observe + plan)",
            ObserveOptions::default(),
            goal,
            plan_goal,
        ),
        (
            "drift / plan --prune (observe resolving every tag + plan)",
            ObserveOptions {
                resolve_unclaimed: true,
            },
            (REPOS + total_tags) as u64,
            drift_goal,
        ),
    ] {
        let mut times = Vec::new();
        let mut requests = Vec::new();
        let mut actions = 0;
        for _ in 0..RUNS {
            let registries = Registries::from_config(&config, &config_dir).expect("registries");
            let started = Instant::now();
            let observed = observe(&desired, &registries, &options)
                .await
                .expect("observe");
            let plan = relsync::plan::plan(
                "bench",
                &desired,
                &observed,
                &manifests.policy,
                &PlanOptions {
                    prune: false,
                    ..Default::default()
                },
            );
            times.push(started.elapsed());
            requests.push(registries.request_count());
            actions = plan.actions.len();
        }
        let all_same = requests.iter().all(|&r| r == requests[0]);
        println!(
            "  {label}: {} requests ({why}){}, {actions} actions; wall time over {RUNS} runs: median {:.2?}, min {:.2?}",
            requests[0],
            if all_same {
                ""
            } else {
                " [request counts varied between runs!]"
            },
            median(times.clone()),
            times.iter().min().copied().unwrap_or_default(),
        );
        assert!(all_same, "request counts varied: {requests:?}");
        assert_eq!(requests[0], expected, "{label}");
    }
}
