//! `relsync serve` end to end: a real docker-registry, a `git daemon` remote, webhooks,
//! self-heal, status, metrics and a graceful stop; and leader hand-over on a Lease. The
//! cluster tests run against the real kube-apiserver (`crate::apiserver`), except the
//! clock-skew one, which needs an API server that fails on demand (the in-process stand-in
//! `crate::kube_api`, `fail_next`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;

use crate::git_remote::GitDaemon;
use crate::kube_api::KubeApi;
use crate::util::{Content, Repo, TestRegistry, block_on, free_port, http_status};

const SECRET: &str = "webhook-s3cret-for-tests";

/// A running `relsync serve`, stopped (SIGKILL) on drop if still running.
pub(crate) struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    pub(crate) fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Serve {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_relsync"));
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .env_remove("KUBECONFIG")
            .env("NO_COLOR", "1")
            .env("RELSYNC_WEBHOOK_SECRET", SECRET)
            .env("RELSYNC_CACHE_DIR", dir.join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start relsync serve");
        let serve = Serve { child, port };
        serve.wait_until("ready", |s| http_status(s.port, "/readyz") == Some(200));
        serve
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn get(&self, path: &str) -> String {
        block_on(async {
            reqwest::get(self.url(path))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    }

    pub(crate) fn status(&self) -> Value {
        serde_json::from_str(&self.get("/api/v1/status")).unwrap()
    }

    /// Sends a signed GitHub push webhook; returns the HTTP status.
    fn push_hook(&self) -> u16 {
        let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        block_on(async {
            reqwest::Client::new()
                .post(self.url("/api/v1/webhook"))
                .header("X-GitHub-Event", "push")
                .header("X-Hub-Signature-256", signature)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    }

    #[track_caller]
    pub(crate) fn wait_until(&self, what: &str, mut done: impl FnMut(&Serve) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("serve: {what} did not happen within 60 s");
    }

    /// SIGTERM, then the exit code.
    fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("serve did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_converges_a_pushed_promotion_on_webhook_heals_a_moved_tag_and_stops_gracefully() {
    let registry = TestRegistry::start();
    let pusher = registry.pusher();
    let host = registry.host();
    let (v1, v2) = block_on(async {
        (
            pusher.push_index("src/release", "4.1.0", "serve-v1").await,
            pusher.push_index("src/release", "4.2.0", "serve-v2").await,
        )
    });

    // The desired state, pushed to a bare repository served by git daemon.
    let work = Repo::new();
    work.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: rel\nspec:\n  source: {host}/src/release\n  target: {host}/dst/release\n  releases:\n    - version: 4.1.0\n      digest: {}\n    - version: 4.2.0\n      digest: {}\n",
            v1.index, v2.index
        ),
    );
    let channel = |versions: &str| {
        format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: stable\nspec:\n  stream: rel\n  tags: [stable]\n  versions:\n{versions}"
        )
    };
    work.write("manifests/stable.yaml", &channel("    - 4.1.0\n"));
    // A second stream in another target repository, which the promotion does not touch.
    work.write(
        "manifests/other.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: other\nspec:\n  source: {host}/src/release\n  target: {host}/dst/other\n  releases:\n    - version: 4.1.0\n      digest: {}\n---\napiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: other\nspec:\n  stream: other\n  versions: [4.1.0]\n",
            v1.index
        ),
    );
    work.commit("stable: 4.1.0");
    let other_lists = || {
        registry
            .served_requests()
            .iter()
            .filter(|r| r.starts_with("GET /v2/dst/other/tags/list"))
            .count()
    };
    let base = tempfile::tempdir().unwrap();
    let bare = base.path().join("repo.git");
    work.git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
    work.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
    let daemon = GitDaemon::start(base.path());

    let site = tempfile::tempdir().unwrap();
    std::fs::write(
        site.path().join("relsync.yaml"),
        format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  git: {{repo: \"{}\"}}\n  registries:\n    - host: {host}\n      insecure: true\n  sync: {{interval: 1h, auto: true, selfHeal: true}}\n  webhook: {{secretEnv: RELSYNC_WEBHOOK_SECRET}}\n",
            daemon.url("repo.git")
        ),
    )
    .unwrap();

    let serve = Serve::start(site.path(), &[]);
    // The first reconcile (at start) mirrors 4.1.0 and tags stable.
    let v1s = v1.index.to_string();
    let v2s = v2.index.to_string();
    serve.wait_until("stable → 4.1.0", |_| {
        registry.tag_digest("dst/release", "stable").as_deref() == Some(&v1s)
    });
    assert_eq!(serve.status()["channels"][1]["state"], "Synced");
    let before_promotion = other_lists();
    assert!(before_promotion > 0);

    // A promotion pushed to the remote, then the webhook: converges without waiting 1h.
    work.write(
        "manifests/stable.yaml",
        &channel("    - 4.1.0\n    - 4.2.0\n"),
    );
    let promoted = work.commit("stable: promote 4.2.0");
    work.git(&["push", "-q", "origin", "main"]);
    assert_eq!(serve.push_hook(), 202);
    serve.wait_until("stable → 4.2.0", |_| {
        registry.tag_digest("dst/release", "stable").as_deref() == Some(&v2s)
    });
    assert_eq!(
        registry.tag_digest("dst/release", "4.2.0").as_deref(),
        Some(v2s.as_str())
    );
    serve.wait_until("status at the promoted revision", |s| {
        s.status()["revision"] == promoted.as_str()
    });
    assert_eq!(
        other_lists(),
        before_promotion,
        "a webhook pass with a new revision observes only what changed in Git"
    );
    let status = serve.status();
    let stable = &status["channels"][1];
    assert_eq!(stable["name"], "stable");
    assert_eq!(stable["state"], "Synced", "{status}");
    assert_eq!(stable["revision"], promoted.as_str());
    assert!(stable["lastSync"].is_string());
    assert!(
        stable["drift"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "ok")
    );

    // Moved behind its back: a webhook (Git unchanged) heals it, since selfHeal is on.
    block_on(pusher.push_manifest(
        "dst/release",
        "stable",
        &Content {
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            bytes: v1.index_bytes.clone(),
        },
    ));
    assert_eq!(
        registry.tag_digest("dst/release", "stable").as_deref(),
        Some(v1s.as_str())
    );
    assert_eq!(serve.push_hook(), 202);
    serve.wait_until("stable healed", |_| {
        registry.tag_digest("dst/release", "stable").as_deref() == Some(&v2s)
    });
    assert!(
        other_lists() > before_promotion,
        "a pass with Git unchanged observes everything"
    );

    // A rollback to the first revision holds it: serve keeps stable at 4.1.0 while the
    // branch tip is unchanged, even on a webhook with self-heal on...
    let first = work.git(&["rev-parse", "HEAD~1"]);
    let rollback = Command::new(env!("CARGO_BIN_EXE_relsync"))
        .args(["rollback", "--to-revision", &first])
        .current_dir(site.path())
        .env("RELSYNC_CACHE_DIR", site.path().join("cache"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(rollback.status.success(), "{rollback:?}");
    assert_eq!(
        registry.tag_digest("dst/release", "stable").as_deref(),
        Some(v1s.as_str())
    );
    assert_eq!(serve.push_hook(), 202);
    serve.wait_until("a reconcile at the held revision", |s| {
        s.status()["revision"] == first.as_str()
    });
    assert_eq!(
        registry.tag_digest("dst/release", "stable").as_deref(),
        Some(v1s.as_str()),
        "the hold keeps the rolled-back state"
    );
    // ...until the branch moves on (a fix), when it follows Git again.
    work.write("manifests/README.md", "fixed\n");
    let fix = work.commit("fix: the 4.2.0 problem");
    work.git(&["push", "-q", "origin", "main"]);
    assert_eq!(serve.push_hook(), 202);
    serve.wait_until("stable back on 4.2.0 after the fix", |_| {
        registry.tag_digest("dst/release", "stable").as_deref() == Some(&v2s)
    });
    serve.wait_until("status at the fix", |s| {
        s.status()["revision"] == fix.as_str()
    });

    let metrics = serve.get("/metrics");
    assert!(
        metrics.contains("relsync_syncs_total{outcome=\"succeeded\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("relsync_reconcile_duration_seconds"),
        "{metrics}"
    );
    let history: Value = serde_json::from_str(
        &std::fs::read_to_string(site.path().join(".relsync/state.json")).unwrap(),
    )
    .unwrap();
    let entries: Vec<(&str, &str)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["revision"].as_str().unwrap()))
        .collect();
    let first_commit = work.git(&["rev-parse", "HEAD~2"]);
    assert_eq!(
        entries,
        vec![
            ("sync", fix.as_str()),
            ("rollback", first.as_str()),
            ("sync", promoted.as_str()),
            ("sync", promoted.as_str()),
            ("sync", first_commit.as_str()),
        ],
        "newest first"
    );
    assert!(
        history["holds"].as_array().unwrap().is_empty(),
        "the hold ended"
    );

    assert_eq!(serve.terminate(), Some(0), "a graceful stop exits 0");
}

#[test]
fn a_second_replica_takes_the_lease_when_the_leader_stops() {
    use relsync::cluster::Cluster;
    use relsync::controller::leader::{Election, Leadership, LeaseSettings};

    // Against the real kube-apiserver, in this test's namespace `<prefix>-relsync`.
    let api = crate::apiserver::TestCluster::new();
    let home = api.ns("relsync");
    api.add_namespace(&home);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path(), &home);
    block_on(async {
        let client = || async {
            let config = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
            let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
                .await
                .unwrap();
            Cluster::with_client(kube::Client::try_from(config).unwrap())
        };
        let settings = |who: &str| LeaseSettings {
            duration: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(1),
            renew: Duration::from_millis(200),
            ..LeaseSettings::new("relsync-leader".into(), home.clone(), who.into())
        };
        let a = Election::new(client().await, settings("a"), Leadership::default());
        let b = Election::new(client().await, settings("b"), Leadership::default());
        assert!(a.step().await.unwrap(), "a creates the lease");
        assert!(!b.step().await.unwrap(), "b waits while a renews");
        assert!(a.step().await.unwrap(), "a renews");
        assert!(!b.step().await.unwrap());

        // a stops without releasing (a crash): b takes over once the lease runs out.
        let start = Instant::now();
        while !b.step().await.unwrap() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "b never took over"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(1500),
            "not before the lease ran out"
        );
        assert!(!a.step().await.unwrap(), "a, back, is no longer the leader");

        // b stops gracefully: it releases, and a takes over at once.
        b.release().await.unwrap();
        assert!(a.step().await.unwrap());
    });
    let lease = api
        .get(crate::apiserver::Resource::Leases, &home, "relsync-leader")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "a");
    assert_eq!(lease["spec"]["leaseTransitions"], 2);
}

/// A metric's value in a `/metrics` text (`None`: absent).
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[test]
fn only_the_leader_syncs_and_a_standby_takes_over_when_it_stops() {
    // Against the real kube-apiserver: the example's namespaces are this test's own.
    let cluster = crate::cluster::ClusterRepo::new();
    let (repo, api, home) = (&cluster.repo, &cluster.api, cluster.home.as_str());
    let config = repo.read("relsync.yaml");
    repo.write(
        "relsync.yaml",
        &config.replace("    prune: false\n", "    prune: false\n    interval: 1h\n"),
    );
    repo.commit("hourly");
    let kubeconfig = cluster.kubeconfig.to_str().unwrap();
    let env = |who: &'static str| {
        vec![
            ("KUBECONFIG", kubeconfig),
            ("POD_NAME", who),
            ("POD_NAMESPACE", home),
        ]
    };
    let a = Serve::start(repo.path(), &env("replica-a"));
    let b = Serve::start(repo.path(), &env("replica-b"));
    let lease = || {
        api.get(crate::apiserver::Resource::Leases, home, "relsync-leader")
            .map(|l| {
                l["spec"]["holderIdentity"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
    };
    assert_eq!(lease().as_deref(), Some("replica-a"));
    a.wait_until("a synced", |a| {
        metric(
            &a.get("/metrics"),
            "relsync_syncs_total{outcome=\"succeeded\"}",
        )
        .is_some()
    });
    let a_metrics = a.get("/metrics");
    let b_metrics = b.get("/metrics");
    assert_eq!(
        metric(&a_metrics, "relsync_leader"),
        Some(1.0),
        "{a_metrics}"
    );
    assert_eq!(
        metric(&b_metrics, "relsync_leader"),
        Some(0.0),
        "{b_metrics}"
    );
    assert!(
        metric(&a_metrics, "relsync_syncs_total{outcome=\"succeeded\"}").is_some(),
        "the leader synced: {a_metrics}"
    );
    assert!(
        !b_metrics.contains("relsync_syncs_total{"),
        "a standby never writes: {b_metrics}"
    );
    // The standby observes and reports all the same.
    assert_eq!(b.status()["channels"][1]["name"], "4-scos-stable");

    assert_eq!(a.terminate(), Some(0));
    b.wait_until("b leads", |b| {
        metric(&b.get("/metrics"), "relsync_leader") == Some(1.0)
    });
    assert_eq!(lease().as_deref(), Some("replica-b"));
    assert_eq!(b.terminate(), Some(0));
    assert_eq!(lease().as_deref(), Some(""), "released on a graceful stop");
}

#[test]
fn a_lease_is_taken_over_by_the_candidates_clock_not_the_holders_renew_time() {
    use relsync::cluster::Cluster;
    use relsync::controller::leader::{Election, Leadership, LeaseSettings};

    let api = KubeApi::start();
    api.add_namespace("relsync");
    // A holder whose clock is an hour behind: its renewTime looks long expired.
    api.insert(
        crate::kube_api::Resource::Leases,
        "relsync",
        "other",
        serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "relsync-leader", "namespace": "relsync"},
            "spec": {"holderIdentity": "skewed", "leaseDurationSeconds": 2,
                     "renewTime": "2026-01-01T00:00:00.000000Z"}
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path(), "relsync");
    block_on(async {
        let config = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .unwrap();
        let cluster = Cluster::with_client(kube::Client::try_from(config).unwrap());
        let settings = LeaseSettings {
            duration: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(1),
            renew: Duration::from_millis(200),
            ..LeaseSettings::new("relsync-leader".into(), "relsync".into(), "b".into())
        };
        let b = Election::new(cluster, settings, Leadership::default());
        let start = Instant::now();
        assert!(
            !b.step().await.unwrap(),
            "an old renewTime is not trusted at first sight"
        );
        while !b.step().await.unwrap() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            start.elapsed() >= Duration::from_secs(2),
            "taken over only after a full lease duration on b's clock: {:?}",
            start.elapsed()
        );

        // An API server that does not answer in time: one bounded attempt, no retries.
        api.fail_next(50, 500);
        let t = Instant::now();
        assert!(b.step().await.is_err());
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    });
}

#[test]
fn sigterm_during_the_first_reconcile_stops_gracefully_after_the_grace_period() {
    // A "registry" that accepts connections and never answers: the first pass hangs.
    let stall = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", stall.local_addr().unwrap().port());
    let work = Repo::new();
    work.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: rel\nspec:\n  source: {host}/src/release\n  target: {host}/dst/release\n  releases:\n    - version: 4.1.0\n      digest: sha256:{}\n---\napiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: stable\nspec:\n  stream: rel\n  versions: [4.1.0]\n",
            "a".repeat(64)
        ),
    );
    work.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - host: {host}\n      insecure: true\n"
        ),
    );
    work.commit("stalling registry");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_relsync"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(work.path())
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("RELSYNC_READ_TIMEOUT", "60")
        .env("RELSYNC_SHUTDOWN_GRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let serve = Serve { child, port };
    serve.wait_until("listening", |s| {
        http_status(s.port, "/healthz") == Some(200)
    });
    assert_eq!(
        http_status(port, "/readyz"),
        Some(503),
        "the first pass is under way"
    );
    let started = Instant::now();
    assert_eq!(
        serve.terminate(),
        Some(0),
        "SIGTERM mid-pass is a graceful stop"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(stall);
}

#[test]
fn serve_keeps_a_channel_holds_tags_and_imagestream_until_the_branch_moves() {
    // Against the real kube-apiserver: the example's ImageStream namespace is this test's
    // (`<prefix>-origin`), the state ConfigMap in `<prefix>-relsync`.
    let cluster = crate::cluster::ClusterRepo::new();
    let (repo, api) = (&cluster.repo, &cluster.api);
    let config = repo.read("relsync.yaml");
    repo.write(
        "relsync.yaml",
        &config.replace("    prune: false\n", "    prune: false\n    interval: 1h\n"),
    );
    let config = repo.read("relsync.yaml");
    repo.write(
        "relsync.yaml",
        &format!("{config}  webhook: {{secretEnv: RELSYNC_WEBHOOK_SECRET}}\n"),
    );
    let first = repo.commit("webhook, hourly");
    let kubeconfig = cluster.kubeconfig.to_str().unwrap().to_string();
    let env = [
        ("KUBECONFIG", kubeconfig.as_str()),
        ("RELSYNC_LEADER_ELECTION", "false"),
    ];
    let stable_is = || {
        api.get(
            crate::apiserver::Resource::ImageStreams,
            &cluster.ns,
            "release-scos",
        )
        .and_then(|is| {
            is["spec"]["tags"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == "4-scos-stable")
                .map(|t| t["from"]["name"].as_str().unwrap().to_string())
        })
    };
    let d415 = "sha256:ce5c67d67537572f0455aa30b5cc3bc87b938d9e10c70c9e010c24f448c27e9d";
    let d416 = "sha256:5478f136ec9c7e80e30c93c0bb5ed506286f3c168dda42569cb2dde79f3305e8";
    let serve = Serve::start(repo.path(), &env);
    assert!(stable_is().unwrap().ends_with(d415));

    // Promote 4.16 into stable: the webhook moves the ImageStream's floating tag.
    let stable = "manifests/channels/4-scos-stable.yaml";
    let text = repo.read(stable);
    repo.write(
        stable,
        &text.replace(
            "    - 4.15.0-0.okd-scos-2024-01-18-223523\n",
            "    - 4.15.0-0.okd-scos-2024-01-18-223523\n    - 4.16.0-0.okd-scos-2024-09-24-151747\n",
        ),
    );
    repo.commit("stable: promote 4.16");
    assert_eq!(serve.push_hook(), 202);
    serve.wait_until("stable on 4.16", |_| stable_is().unwrap().ends_with(d416));

    // Roll stable back: the hold keeps it (registry and ImageStream) through webhooks.
    repo.relsync_env(
        &[
            "rollback",
            "--to-revision",
            &first,
            "--channel",
            "4-scos-stable",
        ],
        &env,
    )
    .expect_code(0);
    assert!(stable_is().unwrap().ends_with(d415));
    let passes = || {
        metric(
            &serve.get("/metrics"),
            "relsync_reconcile_duration_seconds_count",
        )
    };
    let before = passes().unwrap();
    assert_eq!(serve.push_hook(), 202);
    serve.wait_until("a pass after the rollback", |_| passes().unwrap() > before);
    assert!(
        stable_is().unwrap().ends_with(d415),
        "the hold keeps the ImageStream as the rollback left it"
    );

    // The branch moves on: serve follows Git again.
    repo.write("manifests/NOTES.md", "4.16 fixed\n");
    repo.commit("fix");
    assert_eq!(serve.push_hook(), 202);
    serve.wait_until("stable back on 4.16", |_| {
        stable_is().unwrap().ends_with(d416)
    });
    assert_eq!(serve.terminate(), Some(0));
}
