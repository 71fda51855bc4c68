//! The User-Agent relsync sends (issue 18, item 3), read back from the real registries' own
//! access logs: `relsync/<version> (<identity>)` on every request `serve` makes, so that a
//! registry shows which replica wrote; `relsync/<version>` from the other commands.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{TestRegistry, VERSIONS, free_port, http_status, three_releases};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The requests `registry` served after the first `from`, with their agents.
fn agents_since(registry: &TestRegistry, from: usize) -> Vec<(String, String)> {
    registry.served_user_agents()[from..].to_vec()
}

#[test]
fn serve_names_its_replica_in_every_request_and_other_commands_send_the_bare_version() {
    let (src, dst) = (TestRegistry::start(), TestRegistry::start());
    let (repo, digests) = three_releases(&src, &dst.host(), "");
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {{host: '{}', insecure: true}}\n    - {{host: '{}', insecure: true}}\n  sync: {{interval: 1h, auto: true, selfHeal: true}}\n",
            src.host(),
            dst.host()
        ),
    );
    repo.commit("serve syncs on its own");

    // `serve` as replica `relsync-7f9c-2` (the pod name the chart passes).
    // (The helper's own start-up probes of `/v2/` carry no agent: counted from here.)
    let (src_before, dst_before) = (
        src.served_user_agents().len(),
        dst.served_user_agents().len(),
    );
    let identity = "relsync-7f9c-2";
    let port = free_port();
    let cache = tempfile::tempdir().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_relsync"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(repo.path())
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG")
        .env("POD_NAME", identity)
        .env("RELSYNC_CACHE_DIR", cache.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start relsync serve");
    let stable = digests[1].to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while dst.tag_digest(crate::util::TARGET, "stable").as_deref() != Some(&stable) {
        assert!(Instant::now() < deadline, "serve did not sync within 60 s");
        assert!(serve.try_wait().unwrap().is_none(), "serve exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The tag lands before the pass ends (history, status): ready follows within the pass.
    while http_status(port, "/readyz") != Some(200) {
        assert!(Instant::now() < deadline, "serve not ready within 60 s");
        assert!(serve.try_wait().unwrap().is_none(), "serve exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = serve.kill();
    let _ = serve.wait();
    let want = format!("relsync/{VERSION} ({identity})");
    // Every request the source served after the fixture's pushes, and every one the target
    // served since it started but the test's own reads of `stable` (reqwest's, with no
    // agent), came from serve and names the replica.
    let src_seen = agents_since(&src, src_before);
    let dst_seen: Vec<(String, String)> = agents_since(&dst, dst_before)
        .into_iter()
        .filter(|(r, _)| r != &format!("HEAD /v2/{}/manifests/stable", crate::util::TARGET))
        .collect();
    // The source gave the three releases (index, 2 children, 6 blobs each); the target
    // took them.
    assert!(src_seen.len() >= 3 * 9, "{src_seen:?}");
    assert!(
        dst_seen.iter().any(|(r, _)| r.starts_with("PUT ")),
        "{dst_seen:?}"
    );
    for (request, agent) in src_seen.iter().chain(&dst_seen) {
        assert_eq!(agent, &want, "{request}");
    }

    // Any other command: the bare version.
    let before = dst.served_user_agents().len();
    repo.relsync(&["sync"]).expect_code(0);
    repo.relsync(&["drift"]).expect_code(0);
    let cli = agents_since(&dst, before);
    assert!(cli.len() >= 2 * (VERSIONS.len() + 3), "{cli:?}");
    for (request, agent) in &cli {
        assert_eq!(agent, &format!("relsync/{VERSION}"), "{request}");
    }
}
