//! Outgoing notifications of `serve`, received by a real HTTP server in the test (axum on a
//! loopback port) that checks each body's signature; and a receiver that is down: the sync
//! goes on, and `relsync_notifications_total{result="failed"}` counts what was lost.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;

use crate::util::{
    Repo, ServerThread, TestRegistry, free_port, http_status, three_releases, write_channels,
};

const SECRET: &str = "notify-s3cret-for-tests";

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Received {
    signature: Option<String>,
    event_header: Option<String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A real HTTP receiver on a loopback port, keeping every POST to `/hook`.
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    port: u16,
    _server: ServerThread,
}

impl Receiver {
    fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let keep = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let keep = keep.clone();
                    async move {
                        let header = |n: &str| {
                            headers
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string)
                        };
                        keep.lock().unwrap().push(Received {
                            signature: header("x-relsync-signature-256"),
                            event_header: header("x-relsync-event"),
                            body: body.to_vec(),
                        });
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        Receiver {
            got,
            port,
            _server: ServerThread::serve(listener, app),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn events(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The events of `kind` for `channel`, as JSON.
    fn of(&self, kind: &str, channel: &str) -> Vec<Value> {
        self.events()
            .iter()
            .map(Received::json)
            .filter(|e| e["kind"] == kind && e["channel"] == channel)
            .collect()
    }
}

/// `relsync serve` in `dir`, killed on drop.
pub(crate) struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    fn start(dir: &std::path::Path) -> Serve {
        Serve::start_with(dir, &[])
    }

    /// `relsync serve` in `dir` with `env` added; returns once it is ready.
    pub(crate) fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Serve {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_relsync"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .env_remove("KUBECONFIG")
            .env("NO_COLOR", "1")
            .env("NOTIFY_SECRET", SECRET)
            .env("RELSYNC_CACHE_DIR", dir.join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start relsync serve");
        let serve = Serve { child, port };
        wait_until("serve ready", || http_status(port, "/readyz") == Some(200));
        serve
    }

    fn metrics(&self) -> String {
        crate::util::block_on(async {
            reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    }

    fn notifications(&self, result: &str) -> f64 {
        let name = format!("relsync_notifications_total{{result=\"{result}\"}}");
        self.metrics()
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not happen within 90 s");
}

fn signed(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn head(repo: &Repo) -> String {
    repo.git(&["rev-parse", "HEAD"]).trim().to_string()
}

#[test]
fn serve_posts_signed_events_for_promotions_failures_and_recovery_and_a_dead_receiver_costs_nothing()
 {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let receiver = Receiver::start();
    // Nothing listens on this port: every delivery to it fails.
    let dead = format!("http://127.0.0.1:{}/hook", free_port());
    let (repo, digests) = three_releases(&src, &dst.host(), "");
    let config = repo.read("relsync.yaml");
    repo.write(
        "relsync.yaml",
        &format!(
            "{config}  sync: {{interval: 1s}}\n  notifications:\n    - {{url: '{}', secretEnv: NOTIFY_SECRET}}\n    - {{url: '{dead}', events: [promoted, sync-failed]}}\n",
            receiver.url()
        ),
    );
    repo.commit("notifications");
    let target = format!("{}/okd/release", dst.host());
    let serve = Serve::start(repo.path());

    // The first sync creates both floating tags: one `promoted` per channel.
    wait_until("two promoted events", || {
        receiver
            .events()
            .iter()
            .filter(|e| e.json()["kind"] == "promoted")
            .count()
            >= 2
    });
    let revision = head(&repo);
    let next = receiver.of("promoted", "okd-next");
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0]["revision"], revision.as_str());
    assert_eq!(
        next[0]["tags"],
        serde_json::json!([{"target": target, "tag": "next", "from": null, "to": digests[2].to_string()}])
    );
    assert!(next[0]["error"].is_null());
    let text = next[0]["text"].as_str().unwrap();
    assert!(
        text.contains("okd-next") && text.contains("4.16.0") && !text.contains('\n'),
        "{text}"
    );
    // Every body is signed with the secret, and says its kind in a header.
    for e in receiver.events() {
        assert_eq!(
            e.signature.as_deref(),
            Some(signed(&e.body).as_str()),
            "{e:?}"
        );
        assert_eq!(
            e.event_header.as_deref(),
            e.json()["kind"].as_str(),
            "{e:?}"
        );
    }

    // A promotion merged: stable moves from 4.15.0 to 4.16.0.
    write_channels(
        &repo,
        &["4.14.0", "4.15.0", "4.16.0"],
        &["4.14.0", "4.15.0", "4.16.0"],
    );
    repo.commit("promote 4.16.0 to stable");
    wait_until("stable promoted", || {
        receiver.of("promoted", "okd-stable").len() >= 2
    });
    let moved = &receiver.of("promoted", "okd-stable")[1];
    assert_eq!(moved["revision"], head(&repo).as_str());
    assert_eq!(
        moved["tags"],
        serde_json::json!([{"target": target, "tag": "stable", "from": digests[1].to_string(), "to": digests[2].to_string()}])
    );

    // A release whose content the source does not have: its sync fails (once reported,
    // however many passes retry it) and the channel turns Degraded.
    let stream = repo.read("manifests/stream.yaml");
    let missing = format!("sha256:{}", "0".repeat(64));
    repo.write(
        "manifests/stream.yaml",
        &format!("{stream}    - {{version: 4.17.0, digest: '{missing}'}}\n"),
    );
    write_channels(
        &repo,
        &["4.14.0", "4.15.0", "4.16.0", "4.17.0"],
        &["4.14.0", "4.15.0", "4.16.0"],
    );
    repo.commit("4.17.0, not in the source");
    wait_until("sync-failed and out-of-sync", || {
        !receiver.of("sync-failed", "okd-next").is_empty()
            && !receiver.of("out-of-sync", "okd-next").is_empty()
    });
    let failed = &receiver.of("sync-failed", "okd-next")[0];
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    let out = &receiver.of("out-of-sync", "okd-next")[0];
    assert!(out["text"].as_str().unwrap().contains("Degraded"), "{out}");
    assert!(
        out["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["tag"] == "4.17.0"),
        "{out}"
    );
    // Three more passes retry it; the same failure is not sent again.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(receiver.of("sync-failed", "okd-next").len(), 1);
    assert_eq!(receiver.of("out-of-sync", "okd-next").len(), 1);
    assert!(receiver.of("out-of-sync", "okd-stable").is_empty());

    // Withdrawn again: back in sync.
    repo.write("manifests/stream.yaml", &stream);
    write_channels(
        &repo,
        &["4.14.0", "4.15.0", "4.16.0"],
        &["4.14.0", "4.15.0", "4.16.0"],
    );
    repo.commit("withdraw 4.17.0");
    wait_until("in-sync", || !receiver.of("in-sync", "okd-next").is_empty());
    assert!(receiver.of("in-sync", "okd-stable").is_empty());

    // The dead receiver cost the loop nothing (everything above happened), and its lost
    // events are counted: 3 promoted + 1 sync-failed, each after its retries.
    wait_until("failed deliveries counted", || {
        serve.notifications("failed") >= 4.0
    });
    assert_eq!(serve.notifications("failed"), 4.0);
    assert_eq!(
        serve.notifications("delivered"),
        receiver.events().len() as f64
    );
    assert_eq!(serve.notifications("dropped"), 0.0);
}
