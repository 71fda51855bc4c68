//! The whole controller in-process: `relsync::controller::run` on a listener bound to port
//! 0, against a real docker-registry and a local Git repository, stopped by its shutdown
//! future.

use std::time::{Duration, Instant};

use relsync::controller::{self, Config};
use relsync::ops::{Context, Settings, Workspace};
use serde_json::Value;

use crate::util::{Repo, TestRegistry, head_tag_digest};

#[test]
fn the_controller_runs_in_process_syncs_serves_its_status_and_stops_on_its_shutdown_future() {
    let registry = TestRegistry::start();
    let host = registry.host();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pushed = runtime.block_on(registry.pusher().push_index(
        "src/release",
        "4.1.0",
        "in-process",
    ));

    let repo = Repo::new();
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: rel\nspec:\n  source: {host}/src/release\n  target: {host}/dst/release\n  releases:\n    - version: 4.1.0\n      digest: {}\n---\napiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: stable\nspec:\n  stream: rel\n  tags: [stable]\n  versions: [4.1.0]\n",
            pushed.index
        ),
    );
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  git: {{repo: ., revision: main}}\n  registries:\n    - host: {host}\n      insecure: true\n  sync: {{interval: 1h, auto: true}}\n"
        ),
    );
    let sha = repo.commit("stable: 4.1.0");

    let settings = Settings {
        config: Some(repo.path().join("relsync.yaml")),
        revision: None,
    };
    let ctx = Context::load(&settings).unwrap();
    let base = registry.base_url();
    runtime.block_on(async {
        let workspace = Workspace::connect(ctx).await.unwrap();
        assert!(workspace.cluster.is_none(), "the cluster is off");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            settings,
            workspace,
            webhook_secret: None,
            lease: None,
            grace: Duration::from_secs(5),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let controller = tokio::spawn(controller::run(listener, config, async {
            let _ = stop_rx.await;
        }));
        let url = |path: &str| format!("http://{addr}{path}");
        let client = reqwest::Client::new();

        // Ready after the first reconcile, which synced the channel.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client.get(url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            head_tag_digest(&base, "dst/release", "stable")
                .await
                .as_deref(),
            Some(pushed.index.to_string().as_str()),
            "the first reconcile tagged stable"
        );
        let status = client
            .get(url("/api/v1/status"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let status: Value = serde_json::from_str(&status).unwrap();
        assert_eq!(status["revision"], sha);
        assert_eq!(status["channels"][0]["name"], "stable");
        assert_eq!(status["channels"][0]["state"], "Synced");

        // The shutdown future stops it: the loop ends, the server lets go of the port.
        stop_tx.send(()).unwrap();
        let passes = tokio::time::timeout(Duration::from_secs(30), controller)
            .await
            .expect("the controller stops after its shutdown future")
            .unwrap();
        assert_eq!(passes, 1, "one reconcile at start; the interval is an hour");
        assert!(
            client.get(url("/healthz")).send().await.is_err(),
            "the server still answers after shutdown"
        );
    });
    let state: Value =
        serde_json::from_slice(&std::fs::read(repo.path().join(".relsync/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["history"].as_array().unwrap().len(), 1);
    assert_eq!(state["history"][0]["outcome"], "succeeded");
    assert_eq!(state["history"][0]["revision"], sha);
    assert_eq!(
        state["history"][0]["author"],
        "Test Author <author@example.org>"
    );
}
