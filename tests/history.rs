//! `history` and `rollback`: every sync is recorded (revision, time, author, outcome),
//! newest first; a rollback syncs an earlier revision, judged by the tip's policies, and
//! holds it until the branch moves. State in `.relsync/state.json` (cluster off); the
//! ConfigMap backend is covered in tests/cluster.rs.

use serde_json::Value;

use crate::util::Repo;

const V415: &str = "4.15.0-0.okd-scos-2024-01-18-223523";
const V416: &str = "4.16.0-0.okd-scos-2024-09-24-151747";
const D415: &str = "sha256:ce5c67d67537572f0455aa30b5cc3bc87b938d9e10c70c9e010c24f448c27e9d";
const D416: &str = "sha256:5478f136ec9c7e80e30c93c0bb5ed506286f3c168dda42569cb2dde79f3305e8";
const STABLE: &str = "manifests/channels/4-scos-stable.yaml";

/// The digest tag `tag` holds in the example's target layout.
fn live_tag(repo: &Repo, tag: &str) -> Option<String> {
    let index: Value =
        serde_json::from_str(&repo.read("example/quay.io/okd/scos-release/index.json")).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .map(|m| m["digest"].as_str().unwrap().to_string())
}

fn history(repo: &Repo) -> Value {
    let run = repo.relsync(&["history", "-o", "json"]);
    run.expect_code(0);
    run.json()
}

/// Adds 4.16 to the stable channel, committed.
fn promote_416(repo: &Repo) -> String {
    let text = repo.read(STABLE);
    let edited = text.replace(
        &format!("    - {V415}\n"),
        &format!("    - {V415}\n    - {V416}\n"),
    );
    assert_ne!(text, edited);
    repo.write(STABLE, &edited);
    repo.commit("stable: promote 4.16")
}

#[test]
fn every_sync_is_recorded_newest_first_with_revision_author_and_outcome() {
    let repo = Repo::example();
    let empty = repo.relsync(&["history"]);
    empty.expect_code(0);
    assert!(empty.stdout().contains("no sync recorded yet"));

    let first = repo.git(&["rev-parse", "HEAD"]);
    repo.relsync(&["sync"]).expect_code(0);
    repo.relsync(&["sync", "--dry-run"]).expect_code(0);
    let second = promote_416(&repo);
    repo.relsync(&["sync"]).expect_code(0);

    let h = history(&repo);
    let entries = h["history"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "a dry run is not recorded: {h}");
    assert_eq!(entries[0]["revision"], second.as_str());
    assert_eq!(entries[1]["revision"], first.as_str());
    for e in entries {
        assert_eq!(e["outcome"], "succeeded");
        assert_eq!(e["kind"], "sync");
        assert_eq!(e["author"], "Test Author <author@example.org>");
        assert!(e["summary"].as_str().unwrap().starts_with("synced in"));
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(entries[0]["subject"], "stable: promote 4.16");

    let run = repo.relsync(&["history"]);
    run.expect_code(0);
    let text = run.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{text}");
    assert!(lines[1].contains(&second[..12]) && lines[2].contains(&first[..12]));
    assert!(lines[1].contains("succeeded") && lines[1].contains("Test Author"));
}

#[test]
fn a_failed_sync_is_recorded_as_failed() {
    let repo = Repo::example();
    // The source of 4.16 (only in the source layout) is corrupt: its mirror fails.
    let blob = repo
        .path()
        .join("example/registry.ci.openshift.org/origin/release-scos/blobs/sha256")
        .join(D416.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes.push(b'\n');
    std::fs::write(&blob, bytes).unwrap();
    repo.commit("corrupt 4.16 in the source");
    repo.relsync(&["sync"]).expect_code(1);
    let h = history(&repo);
    assert_eq!(h["history"][0]["outcome"], "failed");
}

#[test]
fn rollback_moves_floating_tags_back_and_holds_until_the_branch_moves() {
    let repo = Repo::example();
    let before = repo.git(&["rev-parse", "HEAD"]);
    repo.relsync(&["sync"]).expect_code(0);
    let tip = promote_416(&repo);
    repo.relsync(&["sync"]).expect_code(0);
    assert_eq!(live_tag(&repo, "4-scos-stable").as_deref(), Some(D416));

    let rb = repo.relsync(&["rollback", "--to-revision", &before]);
    rb.expect_code(0);
    assert!(
        rb.stdout()
            .lines()
            .any(|l| l.starts_with("rollback") && l.contains("4-scos-stable")),
        "{}",
        rb.stdout()
    );
    assert!(
        rb.stderr().contains("held until HEAD moves from"),
        "{}",
        rb.stderr()
    );
    assert_eq!(live_tag(&repo, "4-scos-stable").as_deref(), Some(D415));

    let h = history(&repo);
    assert_eq!(h["history"][0]["kind"], "rollback");
    assert_eq!(h["history"][0]["revision"], before.as_str());
    let holds = h["holds"].as_array().unwrap();
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0]["revision"], before.as_str());
    assert_eq!(holds[0]["tip"], tip.as_str());
    assert_eq!(holds[0]["branch"], "HEAD");
    let text = repo.relsync(&["history"]).stdout();
    assert!(
        text.starts_with(&format!("hold: every channel kept at {}", &before[..12])),
        "{text}"
    );

    // A sync of the branch is an explicit "follow Git again": the hold ends.
    repo.relsync(&["sync"]).expect_code(0);
    assert_eq!(live_tag(&repo, "4-scos-stable").as_deref(), Some(D416));
    assert!(history(&repo)["holds"].as_array().unwrap().is_empty());
}

#[test]
fn rollback_is_judged_by_the_policies_of_the_tip() {
    let repo = Repo::example();
    let before = repo.git(&["rev-parse", "HEAD"]);
    repo.relsync(&["sync"]).expect_code(0);
    // The tip narrows the allowed sources so that no stream of the old revision fits.
    let policy = repo.read("policies/default.yaml");
    let edited = policy.replace(
        "registry.ci.openshift.org/origin/*",
        "registry.example.org/elsewhere/*",
    );
    assert_ne!(policy, edited, "{policy}");
    repo.write("policies/default.yaml", &edited);
    repo.commit("policy: only elsewhere");
    let index_before = repo.read("example/quay.io/okd/scos-release/index.json");

    let rb = repo.relsync(&["rollback", "--to-revision", &before]);
    rb.expect_code(1);
    assert!(
        rb.stderr().contains("allowedSources") || rb.stderr().contains("not allowed"),
        "{}",
        rb.stderr()
    );
    assert_eq!(
        repo.read("example/quay.io/okd/scos-release/index.json"),
        index_before,
        "nothing written"
    );
    assert!(history(&repo)["holds"].as_array().unwrap().is_empty());
}
