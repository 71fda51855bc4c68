//! The HTTP surface of `relsync serve` (health, readiness, metrics, status API, status page,
//! webhooks), served on a loopback port from a hand-made [`Shared`] state; the page is
//! loaded in headless Chromium (Debian's `chromium`), its rendered DOM checked and a
//! screenshot kept in `target/test-artifacts/status-page.png`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use relsync::config::{Config, RegistrySettings};
use relsync::controller::server::{METRICS_CONTENT_TYPE, serve};
use relsync::controller::{ChannelState, ChannelStatus, Secret, Shared, Status};
use relsync::digest::Digest;
use relsync::manifest::{ImageStreamRef, Located, Span};
use relsync::plan::{DriftItem, DriftState, Target};
use relsync::registry::{CredentialLookup, Registries, TargetReader};
use relsync::store::{EntryKind, HistoryEntry, Hold, SyncOutcome};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::util::{TestRegistry, free_port};

const SECRET: &str = "webhook-s3cret-for-tests";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A running server: its base URL and what stops it.
struct Server {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(shared: Arc<Shared>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, shared, async move {
            let _ = stopped.await;
        }));
        Server {
            base,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server and checks that `serve` returned `Ok`.
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve returns after its shutdown future completes")
            .expect("serve task not panicked");
        result.expect("serve ends with Ok");
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn shared_with_secret(secret: Option<&str>) -> Arc<Shared> {
    Arc::new(Shared {
        webhook_secret: secret.map(|s| Secret::new(s.to_string())),
        ..Default::default()
    })
}

fn digest(seed: &str) -> Digest {
    Digest::sha256_of(seed.as_bytes())
}

fn item(target: Target, tag: &str, desired: Option<&str>, actual: Option<&str>) -> DriftItem {
    let desired = desired.map(digest);
    let actual = actual.map(digest);
    let state = match (&desired, &actual) {
        (Some(_), None) => DriftState::Missing,
        (None, Some(_)) => DriftState::Extra,
        (Some(d), Some(a)) if d == a => DriftState::Ok,
        _ => DriftState::Moved,
    };
    DriftItem {
        target,
        tag: tag.to_string(),
        desired,
        actual,
        state,
        message: None,
        counts: state != DriftState::Ok,
        release: None,
    }
}

fn repo(name: &str) -> Target {
    Target::Repo(name.to_string())
}

const REV: &str = "3f2a9c1e5b7d4a6f8e0c2b4d6f8a0c2e4b6d8f0a";
const OLD_REV: &str = "91c0ffee5b7d4a6f8e0c2b4d6f8a0c2e4b6d8f0b";

/// Four channels, one in each state, with drift rows of every kind, three history entries
/// (given out of order) and one hold.
fn sample_status() -> Status {
    let quay = "quay.io/okd/scos-release";
    let is = Target::ImageStream(ImageStreamRef {
        namespace: "origin".to_string(),
        name: "release-scos".to_string(),
    });
    let mut failed_import = item(is.clone(), "4-scos-next", Some("v2"), Some("v1"));
    failed_import.state = DriftState::ImportFailed;
    failed_import.message = Some("import failed: manifest unknown <sha256:...>".to_string());
    let mut importing = item(is, "4.15.0-okd-scos.ec.1", Some("v3"), None);
    importing.state = DriftState::Importing;
    Status {
        revision: Some(REV.to_string()),
        channels: vec![
            ChannelStatus {
                name: "4-scos-stable".to_string(),
                state: ChannelState::Synced,
                revision: Some(REV.to_string()),
                last_sync: Some("2026-11-24T01:10:00Z".to_string()),
                last_error: None,
                drift: vec![
                    item(repo(quay), "4-scos-stable", Some("v1"), Some("v1")),
                    item(
                        repo(quay),
                        "4.14.0-0.okd-scos-2023-10-11-084613",
                        Some("v1"),
                        Some("v1"),
                    ),
                ],
                payloads: Vec::new(),
                releases: Vec::new(),
            },
            ChannelStatus {
                name: "4-scos-next".to_string(),
                state: ChannelState::OutOfSync,
                revision: Some(REV.to_string()),
                last_sync: Some("2026-11-24T00:40:00Z".to_string()),
                last_error: None,
                drift: vec![
                    item(repo(quay), "4-scos-next", Some("v2"), Some("v1")),
                    item(repo(quay), "4.15.0-okd-scos.ec.0", Some("v2"), Some("v2")),
                    item(repo(quay), "4.15.0-okd-scos.ec.1", Some("v3"), None),
                    item(repo(quay), "scratch", None, Some("junk")),
                ],
                payloads: Vec::new(),
                releases: Vec::new(),
            },
            ChannelStatus {
                name: "4-scos-imagestream".to_string(),
                state: ChannelState::Degraded,
                revision: Some(OLD_REV.to_string()),
                last_sync: Some("2026-11-23T23:55:00Z".to_string()),
                last_error: Some(
                    "imagestream:origin/release-scos: tag 4-scos-next: <conflict> & retry"
                        .to_string(),
                ),
                drift: vec![failed_import, importing],
                payloads: Vec::new(),
                releases: Vec::new(),
            },
            ChannelStatus {
                name: "4-scos-candidate".to_string(),
                state: ChannelState::Unknown,
                revision: None,
                last_sync: None,
                last_error: None,
                drift: Vec::new(),
                payloads: Vec::new(),
                releases: Vec::new(),
            },
        ],
        history: vec![
            history_entry(
                OLD_REV,
                "2026-11-23T23:55:00Z",
                SyncOutcome::Failed,
                "first",
            ),
            history_entry(
                REV,
                "2026-11-24T01:10:00Z",
                SyncOutcome::Succeeded,
                "newest",
            ),
            history_entry(
                OLD_REV,
                "2026-11-24T00:40:00Z",
                SyncOutcome::Refused,
                "middle",
            ),
        ],
        holds: vec![Hold {
            revision: OLD_REV.to_string(),
            branch: "main".to_string(),
            tip: REV.to_string(),
            channel: Some("4-scos-imagestream".to_string()),
            time: "2026-11-23T23:50:00Z".to_string(),
        }],
        leader: true,
        last_reconcile: Some("2026-11-24T01:10:02Z".to_string()),
        last_error: None,
    }
}

fn history_entry(rev: &str, time: &str, outcome: SyncOutcome, summary: &str) -> HistoryEntry {
    HistoryEntry {
        revision: rev.to_string(),
        time: time.to_string(),
        author: "Ops Person <ops@example.com>".to_string(),
        subject: format!("promote ({summary})"),
        kind: if outcome == SyncOutcome::Refused {
            EntryKind::Rollback
        } else {
            EntryKind::Sync
        },
        channel: None,
        outcome,
        summary: summary.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_ok_and_readyz_follows_readiness() {
    let shared = shared_with_secret(None);
    let server = Server::start(shared.clone()).await;
    let c = client();
    let health = c.get(server.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("body").trim(), "ok");

    let ready = c.get(server.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 503, "not ready before the first reconcile");
    shared.set_ready(true);
    let ready = c.get(server.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 200);
    shared.set_ready(false);
    let ready = c.get(server.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 503, "not ready once shutdown begins");
    // Health does not depend on readiness.
    let health = c.get(server.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_get_404_and_wrong_methods_405() {
    let server = Server::start(shared_with_secret(Some(SECRET))).await;
    let c = client();
    for path in ["/nope", "/api/v1/statuses", "/api/v2/status", "/healthz/x"] {
        let r = c.get(server.url(path)).send().await.expect("request");
        assert_eq!(r.status(), 404, "GET {path}");
    }
    let r = c
        .get(server.url("/api/v1/webhook"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 405, "GET on the webhook");
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/status", "/"] {
        let r = c.post(server.url(path)).send().await.expect("post");
        assert_eq!(r.status(), 405, "POST {path}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_has_exactly_the_design_shape() {
    let shared = shared_with_secret(None);
    shared.update_status(|s| *s = sample_status());
    let server = Server::start(shared).await;
    let r = client()
        .get(server.url("/api/v1/status"))
        .send()
        .await
        .expect("status");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    let json: Value = serde_json::from_str(&r.text().await.expect("body")).expect("JSON");
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object().expect("an object").keys().cloned().collect()
    };
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| s.to_string()).collect() };
    assert_eq!(keys(&json), set(&["revision", "channels"]));
    assert_eq!(json["revision"], REV);
    let channels = json["channels"].as_array().expect("channels array");
    assert_eq!(channels.len(), 4);
    for c in channels {
        assert_eq!(
            keys(c),
            set(&[
                "name",
                "state",
                "revision",
                "lastSync",
                "lastError",
                "drift"
            ])
        );
        for d in c["drift"].as_array().expect("drift array") {
            assert_eq!(
                keys(d),
                set(&["target", "tag", "desired", "actual", "state"])
            );
        }
    }
    let names: Vec<&str> = channels
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "4-scos-stable",
            "4-scos-next",
            "4-scos-imagestream",
            "4-scos-candidate"
        ]
    );
    let states: Vec<&str> = channels
        .iter()
        .map(|c| c["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, ["Synced", "OutOfSync", "Degraded", "Unknown"]);

    let next = &channels[1];
    assert_eq!(next["revision"], REV);
    assert_eq!(next["lastSync"], "2026-11-24T00:40:00Z");
    assert_eq!(next["lastError"], Value::Null);
    assert_eq!(
        next["drift"][0],
        serde_json::json!({
            "target": "quay.io/okd/scos-release",
            "tag": "4-scos-next",
            "desired": digest("v2").as_str(),
            "actual": digest("v1").as_str(),
            "state": "moved",
        })
    );
    let drift_states: Vec<&str> = next["drift"]
        .as_array()
        .expect("drift")
        .iter()
        .map(|d| d["state"].as_str().expect("state"))
        .collect();
    assert_eq!(drift_states, ["moved", "ok", "missing", "extra"]);
    assert_eq!(next["drift"][2]["actual"], Value::Null);
    assert_eq!(next["drift"][3]["desired"], Value::Null);

    let degraded = &channels[2];
    assert_eq!(
        degraded["lastError"],
        "imagestream:origin/release-scos: tag 4-scos-next: <conflict> & retry"
    );
    assert_eq!(
        degraded["drift"][0]["target"],
        "imagestream:origin/release-scos"
    );
    assert_eq!(degraded["drift"][0]["state"], "import-failed");
    assert_eq!(degraded["drift"][1]["state"], "importing");

    let unknown = &channels[3];
    assert_eq!(unknown["revision"], Value::Null);
    assert_eq!(unknown["lastSync"], Value::Null);
    assert_eq!(unknown["drift"], serde_json::json!([]));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_before_the_first_reconcile() {
    let server = Server::start(shared_with_secret(None)).await;
    let json: Value = client()
        .get(server.url("/api/v1/status"))
        .send()
        .await
        .expect("status")
        .text()
        .await
        .map(|t| serde_json::from_str(&t).expect("JSON"))
        .expect("body");
    assert_eq!(json, serde_json::json!({"revision": null, "channels": []}));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_text_carries_every_family() {
    let shared = shared_with_secret(None);
    shared.metrics.reconciled(0.3);
    shared.metrics.reconciled(4.0);
    shared.metrics.synced("succeeded");
    shared.metrics.synced("succeeded");
    shared.metrics.synced("failed");
    shared.metrics.set_drift("4-scos-next", 3);
    shared.metrics.set_drift("4-scos-stable", 0);
    shared.metrics.mirrored(2, 123_456);
    shared.metrics.registry_requests("200", 17);
    shared.metrics.registry_requests("404", 2);
    shared.metrics.registry_requests("error", 1);
    let server = Server::start(shared).await;
    let r = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .expect("ascii"),
        METRICS_CONTENT_TYPE
    );
    let text = r.text().await.expect("body");
    for line in [
        "# TYPE relsync_reconcile_duration_seconds histogram",
        "relsync_reconcile_duration_seconds_count 2",
        "relsync_reconcile_duration_seconds_sum 4.3",
        "relsync_reconcile_duration_seconds_bucket{le=\"0.5\"} 1",
        "relsync_reconcile_duration_seconds_bucket{le=\"5.0\"} 2",
        "relsync_syncs_total{outcome=\"succeeded\"} 2",
        "relsync_syncs_total{outcome=\"failed\"} 1",
        "relsync_drift_items{channel=\"4-scos-next\"} 3",
        "relsync_drift_items{channel=\"4-scos-stable\"} 0",
        "relsync_mirrored_bytes_total 123456",
        "relsync_registry_requests_total{status=\"200\"} 17",
        "relsync_registry_requests_total{status=\"404\"} 2",
        "relsync_registry_requests_total{status=\"error\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "/metrics lacks the line `{line}`:\n{text}"
        );
    }
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            l.starts_with("relsync_"),
            "metric not prefixed relsync_: {l}"
        );
    }
    server.shutdown().await;
}

/// `sha256=<hex>` of the body keyed with `secret`, as GitHub signs.
fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

const PUSH_BODY: &[u8] = br#"{"ref":"refs/heads/main","after":"3f2a9c1e"}"#;

async fn github(
    server: &Server,
    event: &str,
    signature: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = client()
        .post(server.url("/api/v1/webhook"))
        .header("X-GitHub-Event", event)
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(sig) = signature {
        req = req.header("X-Hub-Signature-256", sig);
    }
    let r = req.send().await.expect("webhook");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

async fn gitlab(server: &Server, event: &str, token: Option<&str>) -> u16 {
    let mut req = client()
        .post(server.url("/api/v1/webhook"))
        .header("X-Gitlab-Event", event)
        .body(PUSH_BODY.to_vec());
    if let Some(t) = token {
        req = req.header("X-Gitlab-Token", t);
    }
    req.send().await.expect("webhook").status().as_u16()
}

/// Whether a refresh permit is stored: `notified()` resolves at once when one is (and
/// consumes it); nothing else notifies in these tests, so a pending one stays pending.
async fn refresh_pending(shared: &Shared) -> bool {
    tokio::time::timeout(Duration::from_millis(300), shared.refresh.notified())
        .await
        .is_ok()
}

fn webhook_count(text: &str, result: &str) -> u64 {
    let prefix = format!("relsync_webhooks_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|n| n.parse().expect("a count"))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_push_with_a_good_signature_refreshes_and_a_burst_refreshes_once() {
    let shared = shared_with_secret(Some(SECRET));
    let server = Server::start(shared.clone()).await;
    let sig = github_signature(SECRET, PUSH_BODY);
    let (status, _) = github(&server, "push", Some(&sig), PUSH_BODY.to_vec()).await;
    assert_eq!(status, 202);
    assert!(refresh_pending(&shared).await, "a push asks for a refresh");
    assert!(!refresh_pending(&shared).await, "one push, one refresh");

    for _ in 0..5 {
        let (status, _) = github(&server, "push", Some(&sig), PUSH_BODY.to_vec()).await;
        assert_eq!(status, 202);
    }
    assert!(
        refresh_pending(&shared).await,
        "the burst asks for a refresh"
    );
    assert!(
        !refresh_pending(&shared).await,
        "a burst of five hooks is one refresh, not five"
    );
    let metrics = shared.metrics.render();
    assert_eq!(webhook_count(&metrics, "accepted"), 6);
    assert!(
        !metrics.contains(SECRET) && !metrics.contains(&sig),
        "neither the secret nor a signature shows in metrics"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_bad_or_missing_signature_gets_401_and_no_refresh() {
    let shared = shared_with_secret(Some(SECRET));
    let server = Server::start(shared.clone()).await;
    let cases: Vec<(&str, Option<String>, Vec<u8>)> = vec![
        ("missing", None, PUSH_BODY.to_vec()),
        (
            "signed with another secret",
            Some(github_signature("not-the-secret", PUSH_BODY)),
            PUSH_BODY.to_vec(),
        ),
        (
            "signature of another body",
            Some(github_signature(SECRET, b"{}")),
            PUSH_BODY.to_vec(),
        ),
        (
            "bare hex without sha256=",
            Some(github_signature(SECRET, PUSH_BODY)[7..].to_string()),
            PUSH_BODY.to_vec(),
        ),
        (
            "sha1 form",
            Some(format!("sha1={}", "0".repeat(40))),
            PUSH_BODY.to_vec(),
        ),
        (
            "not hex",
            Some("sha256=zzzz".to_string()),
            PUSH_BODY.to_vec(),
        ),
        ("empty", Some(String::new()), PUSH_BODY.to_vec()),
    ];
    for (case, sig, body) in cases {
        let (status, text) = github(&server, "push", sig.as_deref(), body).await;
        assert_eq!(status, 401, "{case}");
        assert!(!text.contains(SECRET), "{case}: the secret is not echoed");
    }
    // A signed ping without X-GitHub-Event's push is unauthorized all the same when the
    // signature is wrong.
    let (status, _) = github(&server, "ping", Some("sha256=00"), PUSH_BODY.to_vec()).await;
    assert_eq!(status, 401);
    assert!(
        !refresh_pending(&shared).await,
        "no refresh from a refused hook"
    );
    let metrics = shared.metrics.render();
    assert_eq!(webhook_count(&metrics, "unauthorized"), 8);
    assert_eq!(webhook_count(&metrics, "accepted"), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_ping_gets_200_without_refresh() {
    let shared = shared_with_secret(Some(SECRET));
    let server = Server::start(shared.clone()).await;
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#.to_vec();
    let sig = github_signature(SECRET, &body);
    let (status, _) = github(&server, "ping", Some(&sig), body.clone()).await;
    assert_eq!(status, 200);
    let (status, _) = github(&server, "issues", Some(&sig), body).await;
    assert_eq!(
        status, 200,
        "another signed event is answered, not refreshed"
    );
    assert!(
        !refresh_pending(&shared).await,
        "ping and other events do not refresh"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_push_with_the_right_token_refreshes_and_a_wrong_one_gets_401() {
    let shared = shared_with_secret(Some(SECRET));
    let server = Server::start(shared.clone()).await;
    assert_eq!(gitlab(&server, "Push Hook", Some("wrong-token")).await, 401);
    assert_eq!(
        gitlab(&server, "Push Hook", Some(&SECRET[..SECRET.len() - 1])).await,
        401,
        "a prefix of the secret is not the secret"
    );
    assert_eq!(
        gitlab(&server, "Push Hook", Some(&format!("{SECRET}x"))).await,
        401
    );
    assert!(!refresh_pending(&shared).await);
    assert_eq!(gitlab(&server, "Push Hook", Some(SECRET)).await, 202);
    assert!(
        refresh_pending(&shared).await,
        "a GitLab push asks for a refresh"
    );
    assert_eq!(
        gitlab(&server, "Merge Request Hook", Some(SECRET)).await,
        200
    );
    assert!(!refresh_pending(&shared).await, "only push hooks refresh");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_with_neither_signature_nor_token_gets_401() {
    let shared = shared_with_secret(Some(SECRET));
    let server = Server::start(shared.clone()).await;
    let r = client()
        .post(server.url("/api/v1/webhook"))
        .body(PUSH_BODY.to_vec())
        .send()
        .await
        .expect("webhook");
    assert_eq!(r.status(), 401);
    assert_eq!(gitlab(&server, "Push Hook", None).await, 401);
    assert!(!refresh_pending(&shared).await);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_secret_every_hook_gets_401() {
    for secret in [None, Some("")] {
        let shared = shared_with_secret(secret);
        let server = Server::start(shared.clone()).await;
        // Signed with the empty key, the only one a missing secret could mean.
        let sig = github_signature("", PUSH_BODY);
        let (status, text) = github(&server, "push", Some(&sig), PUSH_BODY.to_vec()).await;
        assert_eq!(status, 401, "secret {secret:?}");
        assert!(text.contains("no webhook secret"), "{text}");
        let (status, _) = github(&server, "push", None, PUSH_BODY.to_vec()).await;
        assert_eq!(status, 401);
        assert_eq!(gitlab(&server, "Push Hook", Some("")).await, 401);
        assert_eq!(gitlab(&server, "Push Hook", Some(SECRET)).await, 401);
        assert!(!refresh_pending(&shared).await);
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_1_mib_gets_413_and_one_of_exactly_1_mib_is_accepted() {
    let shared = shared_with_secret(Some(SECRET));
    let server = Server::start(shared.clone()).await;
    let big = vec![b' '; 1024 * 1024 + 1];
    let sig = github_signature(SECRET, &big);
    let (status, _) = github(&server, "push", Some(&sig), big).await;
    assert_eq!(status, 413);
    // Sent chunked (no Content-Length), the limit holds all the same.
    let big = vec![b' '; 1024 * 1024 + 1];
    let sig = github_signature(SECRET, &big);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let r = client()
        .post(server.url("/api/v1/webhook"))
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", sig)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("webhook");
    assert_eq!(r.status(), 413, "chunked body over the limit");
    assert!(
        !refresh_pending(&shared).await,
        "no refresh from a refused body"
    );

    let max = vec![b' '; 1024 * 1024];
    let sig = github_signature(SECRET, &max);
    let (status, _) = github(&server, "push", Some(&sig), max).await;
    assert_eq!(status, 202, "exactly 1 MiB is within the limit");
    assert!(refresh_pending(&shared).await);
    assert_eq!(webhook_count(&shared.metrics.render(), "rejected"), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_count_requests_by_status() {
    let reg = TestRegistry::start();
    let dead = format!("127.0.0.1:{}", free_port());
    let settings = |host: &str| RegistrySettings {
        host: Located::new(host.to_string(), Span::file("relsync.yaml")),
        insecure: true,
        ca_file: None,
        username_env: None,
        password_env: None,
        map_to: None,
        token_realms: Vec::new(),
        delete_by_digest: false,
        rate_limit: None,
    };
    let config = Config {
        registries: vec![settings(&reg.host()), settings(&dead)],
        ..Default::default()
    };
    let none = CredentialLookup::new(Arc::new(|_: &str| None), Vec::new());
    let registries =
        Registries::from_config_with(&config, Path::new("/nonexistent"), none).expect("router");
    assert!(registries.requests_by_status().is_empty());

    let pushed = reg
        .pusher()
        .push_image("okd/release", Some("v1"), "counted")
        .await;
    let live = registries
        .repository(&format!("{}/okd/release", reg.host()))
        .expect("repository");
    assert_eq!(
        live.resolve_tag("v1").await.expect("resolve"),
        Some(pushed.manifest.clone())
    );
    assert_eq!(live.resolve_tag("absent").await.expect("resolve"), None);
    assert_eq!(live.resolve_tag("absent2").await.expect("resolve"), None);
    let counts = registries.requests_by_status();
    assert!(counts.get("200").copied().unwrap_or(0) >= 1, "{counts:?}");
    assert_eq!(counts.get("404").copied(), Some(2), "{counts:?}");
    assert_eq!(counts.get("error"), None);
    assert_eq!(
        counts.values().sum::<u64>(),
        registries.request_count(),
        "every request counted once by status"
    );

    let unreachable = registries
        .repository(&format!("{dead}/okd/release"))
        .expect("repository");
    unreachable
        .list_tags()
        .await
        .expect_err("nothing listens there");
    let counts = registries.requests_by_status();
    let errors = counts.get("error").copied().unwrap_or(0);
    assert!(
        errors >= 1,
        "unanswered requests count as error: {counts:?}"
    );
    assert_eq!(counts.values().sum::<u64>(), registries.request_count());
}

/// Runs headless Chromium with `args` and the URL; its stdout.
async fn chromium(profile: &Path, args: &[String], url: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does)"
    );
    let mut cmd = tokio::process::Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .kill_on_drop(true)
    .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("chromium finishes within 2 minutes")
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 DOM")
}

fn texts(el: scraper::ElementRef<'_>) -> String {
    el.text().collect::<String>().trim().to_string()
}

fn sel(s: &str) -> scraper::Selector {
    scraper::Selector::parse(s).expect("selector")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_in_headless_chromium() {
    let shared = shared_with_secret(None);
    shared.update_status(|s| *s = sample_status());
    let server = Server::start(shared).await;
    let profile = tempfile::tempdir().expect("profile dir");
    let dom = chromium(
        profile.path(),
        &["--dump-dom".to_string()],
        &server.url("/"),
    )
    .await;
    let doc = scraper::Html::parse_document(&dom);

    let title = doc.select(&sel("title")).next().expect("a title");
    assert_eq!(texts(title), "relsync: 1 of 4 channels synced");
    let revision = doc.select(&sel("#revision code")).next().expect("revision");
    assert_eq!(texts(revision), &REV[..12]);
    assert_eq!(revision.value().attr("title"), Some(REV));
    let role = doc.select(&sel("[data-role]")).next().expect("role");
    assert_eq!(role.value().attr("data-role"), Some("leader"));
    assert_eq!(
        doc.select(&sel("#last-reconcile time"))
            .next()
            .map(texts)
            .as_deref(),
        Some("2026-11-24 01:10:02 UTC")
    );
    assert!(doc.select(&sel("#last-error")).next().is_none());

    // One section per channel, in order, each with its state badge.
    let sections: Vec<_> = doc.select(&sel("section.channel")).collect();
    let seen: Vec<(&str, String, String)> = sections
        .iter()
        .map(|s| {
            let badge = s
                .select(&sel("header span.state"))
                .next()
                .expect("a state badge");
            (
                s.value().attr("data-channel").expect("data-channel"),
                badge
                    .value()
                    .attr("data-state")
                    .expect("data-state")
                    .to_string(),
                texts(badge),
            )
        })
        .collect();
    let expected: Vec<(&str, String, String)> = [
        ("4-scos-stable", "Synced"),
        ("4-scos-next", "OutOfSync"),
        ("4-scos-imagestream", "Degraded"),
        ("4-scos-candidate", "Unknown"),
    ]
    .iter()
    .map(|(n, s)| (*n, s.to_string(), s.to_string()))
    .collect();
    assert_eq!(seen, expected);

    // Drift rows, inside each channel's table, with their states and cells.
    let rows_of = |name: &str| -> Vec<(String, Vec<String>)> {
        let section = sections
            .iter()
            .find(|s| s.value().attr("data-channel") == Some(name))
            .expect("section");
        section
            .select(&sel("table.drift > tbody > tr"))
            .map(|tr| {
                (
                    tr.value()
                        .attr("data-state")
                        .expect("row state")
                        .to_string(),
                    tr.select(&sel("td")).map(texts).collect(),
                )
            })
            .collect()
    };
    let next = rows_of("4-scos-next");
    let states: Vec<&str> = next.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["moved", "ok", "missing", "extra"]);
    assert_eq!(
        next[0].1,
        [
            "quay.io/okd/scos-release",
            "4-scos-next",
            &digest("v2").short(),
            &digest("v1").short(),
            "moved"
        ]
    );
    assert_eq!(next[2].1[3], "—", "a missing tag has no actual digest");
    assert_eq!(next[3].1[2], "—", "an extra tag has no desired digest");
    let stable = rows_of("4-scos-stable");
    assert_eq!(stable.len(), 2);
    assert!(stable.iter().all(|(s, _)| s == "ok"));
    let degraded = rows_of("4-scos-imagestream");
    let states: Vec<&str> = degraded.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["import-failed", "importing"]);
    assert_eq!(degraded[0].1[0], "imagestream:origin/release-scos");
    assert!(
        degraded[0].1[4].contains("import failed: manifest unknown <sha256:...>"),
        "the import failure's message, escaped and shown: {:?}",
        degraded[0].1
    );
    assert!(rows_of("4-scos-candidate").is_empty());

    // The Degraded channel's error, escaped text in the DOM.
    let degraded_section = sections[2];
    let error = degraded_section
        .select(&sel(".last-error"))
        .next()
        .expect("the channel's last error");
    assert_eq!(
        texts(error),
        "imagestream:origin/release-scos: tag 4-scos-next: <conflict> & retry"
    );
    assert!(sections[0].select(&sel(".last-error")).next().is_none());

    // The hold.
    let holds: Vec<Vec<String>> = doc
        .select(&sel("table.holds > tbody > tr"))
        .map(|tr| tr.select(&sel("td")).map(texts).collect())
        .collect();
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0][0], "4-scos-imagestream");
    assert_eq!(holds[0][1], &OLD_REV[..12]);
    assert_eq!(holds[0][2], "main");

    // History, newest first whatever the order given.
    let history: Vec<(String, Vec<String>)> = doc
        .select(&sel("table.history > tbody > tr"))
        .map(|tr| {
            (
                tr.value()
                    .attr("data-outcome")
                    .expect("outcome")
                    .to_string(),
                tr.select(&sel("td")).map(texts).collect(),
            )
        })
        .collect();
    let summaries: Vec<&str> = history.iter().map(|(_, c)| c[6].as_str()).collect();
    assert_eq!(summaries, ["newest", "middle", "first"]);
    let outcomes: Vec<&str> = history.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(outcomes, ["succeeded", "refused", "failed"]);
    assert_eq!(
        history[0].1[..6],
        [
            "2026-11-24 01:10:00 UTC",
            &REV[..12],
            "sync",
            "all",
            "succeeded",
            "Ops Person <ops@example.com>"
        ]
    );
    assert_eq!(history[1].1[2], "rollback");

    // No script anywhere: the page needs none.
    assert!(doc.select(&sel("script")).next().is_none());

    // A screenshot, kept as a test artifact.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let png = dir.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir().expect("profile dir");
    chromium(
        profile.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,1600".to_string(),
        ],
        &server.url("/"),
    )
    .await;
    let bytes = std::fs::read(&png).expect("the screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        bytes.len() > 20_000,
        "a screenshot of a full page, not a blank one ({} bytes)",
        bytes.len()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_before_the_first_reconcile() {
    let shared = shared_with_secret(None);
    shared.update_status(|s| s.last_error = Some("git fetch failed: <timeout>".to_string()));
    let server = Server::start(shared).await;
    let r = client().get(server.url("/")).send().await.expect("page");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let html = r.text().await.expect("body");
    let doc = scraper::Html::parse_document(&html);
    assert!(doc.select(&sel("section.channel")).next().is_none());
    assert!(doc.select(&sel("#no-channels")).next().is_some());
    assert_eq!(
        doc.select(&sel("#last-error")).next().map(texts).as_deref(),
        Some("Last reconcile failed: git fetch failed: <timeout>")
    );
    assert_eq!(
        doc.select(&sel("[data-role]"))
            .next()
            .and_then(|r| r.value().attr("data-role")),
        Some("standby")
    );
    server.shutdown().await;
}

/// Log lines written by `tracing` while a test runs, on the test's own thread.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn webhook_logs_never_show_the_secret_or_a_signature() {
    use axum::extract::State;
    use axum::http::{HeaderMap, HeaderValue};
    use relsync::controller::webhook::handle;

    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let shared = shared_with_secret(Some(SECRET));
    let good = github_signature(SECRET, PUSH_BODY);
    let bad = github_signature("guess", PUSH_BODY);
    let mut answers = Vec::new();
    for (name, value, event) in [
        (
            "x-hub-signature-256",
            good.as_str(),
            ("x-github-event", "push"),
        ),
        (
            "x-hub-signature-256",
            bad.as_str(),
            ("x-github-event", "push"),
        ),
        ("x-gitlab-token", SECRET, ("x-gitlab-event", "Push Hook")),
        (
            "x-gitlab-token",
            "a-wrong-token",
            ("x-gitlab-event", "Push Hook"),
        ),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).expect("header"));
        headers.insert(event.0, HeaderValue::from_static(event.1));
        let (status, _) = handle(
            State(shared.clone()),
            headers,
            Ok(axum::body::Bytes::from_static(PUSH_BODY)),
        )
        .await;
        answers.push(status.as_u16());
    }
    assert_eq!(answers, [202, 401, 202, 401]);
    let text = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("UTF-8");
    assert!(
        text.contains("webhook"),
        "the deliveries were logged at all: {text:?}"
    );
    for needle in [SECRET, &good[7..], &bad[7..], "a-wrong-token"] {
        assert!(
            !text.contains(needle),
            "`{needle}` leaked into logs:\n{text}"
        );
    }
}
