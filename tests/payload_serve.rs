//! `relsync serve` and payloads, on the bundled example (its stream `4-scos` is a payload
//! stream, offline): the status API and page say per channel whether each published
//! release's payload is complete, and `/metrics` counts the component tags a sync put in
//! place.

use serde_json::Value;

use crate::serve::{Serve, metric};
use crate::util::Repo;

const R2: &str = "4.14.0-0.okd-scos-2023-10-11-084613";
const R3: &str = "4.15.0-0.okd-scos-2024-01-18-223523";
const R4: &str = "4.16.0-0.okd-scos-2024-09-24-151747";

/// `version → (complete, components, missing)` of one channel in the status.
fn payloads(status: &Value, channel: &str) -> Vec<(String, bool, Option<u64>, u64)> {
    let c = status["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == channel)
        .unwrap_or_else(|| panic!("no channel {channel} in {status}"));
    c["payloads"]
        .as_array()
        .unwrap_or_else(|| panic!("no payloads for {channel}: {c}"))
        .iter()
        .map(|p| {
            (
                p["version"].as_str().unwrap().to_string(),
                p["complete"].as_bool().unwrap(),
                p["components"].as_u64(),
                p["missing"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn with_sync(repo: &Repo, auto: bool) {
    let config = repo
        .read("relsync.yaml")
        .replace("    auto: true\n", "")
        .replace("    auto: false\n", "")
        .replace(
            "  sync:\n    concurrency: 8\n",
            &format!("  sync:\n    auto: {auto}\n    concurrency: 8\n"),
        );
    assert!(config.contains(&format!("auto: {auto}")), "{config}");
    repo.write("relsync.yaml", &config);
}

/// With `sync.auto: false`, serve only reports: the release whose components are tagged
/// is complete, the untagged and the unmirrored ones are not (with how many component tags
/// are missing). With auto sync on, every published payload becomes complete, the page
/// says so, and the metric counts the 8 component tags the sync put in place.
#[test]
fn serve_shows_per_channel_whether_each_published_payload_is_complete() {
    let repo = Repo::example();
    with_sync(&repo, false);
    let serve = Serve::start(repo.path(), &[("RELSYNC_LEADER_ELECTION", "false")]);
    serve.wait_until("a first status", |s| s.status()["revision"].is_string());
    let status = serve.status();
    assert_eq!(
        payloads(&status, "4-scos-next"),
        vec![
            (R2.to_string(), true, Some(4), 0),
            (R3.to_string(), false, Some(4), 4),
            (R4.to_string(), false, Some(4), 4),
        ],
        "{status}"
    );
    assert_eq!(
        payloads(&status, "4-scos-stable"),
        vec![
            (R2.to_string(), true, Some(4), 0),
            (R3.to_string(), false, Some(4), 4),
        ]
    );
    let metrics = serve.get("/metrics");
    assert_eq!(
        metric(&metrics, "relsync_payload_components_mirrored_total"),
        Some(0.0),
        "{metrics}"
    );
    let page = serve.get("/");
    assert!(page.contains("<h3>Payloads</h3>"), "{page}");
    assert!(
        page.contains(&format!(
            "<tr data-version=\"{R4}\" data-payload=\"incomplete\">"
        )),
        "{page}"
    );
    drop(serve);

    with_sync(&repo, true);
    let serve = Serve::start(repo.path(), &[("RELSYNC_LEADER_ELECTION", "false")]);
    serve.wait_until("every payload complete", |s| {
        payloads(&s.status(), "4-scos-next")
            .iter()
            .all(|(_, complete, _, _)| *complete)
    });
    let metrics = serve.get("/metrics");
    assert_eq!(
        metric(&metrics, "relsync_payload_components_mirrored_total"),
        Some(8.0),
        "4 component tags of 4.15 and 4 of 4.16: {metrics}"
    );
    let page = serve.get("/");
    assert!(
        page.contains(&format!(
            "<tr data-version=\"{R4}\" data-payload=\"complete\">"
        )),
        "{page}"
    );
    assert!(!page.contains("data-payload=\"incomplete\""), "{page}");
}
