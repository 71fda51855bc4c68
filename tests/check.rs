//! `relsync check`, the PR gate, end to end: real Git repositories with dated commits (a
//! base branch `main` and a pull-request branch `pr`), a shallow clone, a registry host
//! with no server behind it, and the bundled example's OCI layouts as the live registry.
//! Goldens: `tests/golden/check-*` (regenerate with `UPDATE_GOLDEN=1`).

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::util::{Repo, Run, free_port, project};

const R1: &str = "4.14.0-0.okd-scos-2023-09-29-232633";
const R2: &str = "4.14.0-0.okd-scos-2023-10-11-084613";
const R3: &str = "4.15.0-0.okd-scos-2024-01-18-223523";
const R4: &str = "4.16.0-0.okd-scos-2024-09-24-151747";
const STABLE: &str = "manifests/channels/4-scos-stable.yaml";
const NEXT: &str = "manifests/channels/4-scos-next.yaml";
const STREAM: &str = "manifests/streams/4-scos.yaml";
const POLICY: &str = "policies/default.yaml";
/// Long enough ago for any feeder delay.
const PAST: &str = "2020-01-01T00:00:00Z";

/// The bundled example on `main`, committed at `date`, after `edit` of the files.
fn example_on_main(date: &str, edit: impl FnOnce(&Repo)) -> Repo {
    let repo = Repo::new();
    repo.copy_example();
    edit(&repo);
    repo.commit_dated("example", date);
    repo
}

/// Switches to a new branch `pr`.
fn pr_branch(repo: &Repo) {
    repo.git(&["switch", "-q", "-c", "pr"]);
}

/// `file` with `from` replaced by `to` (which must change it).
fn replace(repo: &Repo, file: &str, from: &str, to: &str) {
    let before = repo.read(file);
    let after = before.replacen(from, to, 1);
    assert_ne!(before, after, "`{from}` not in {file}");
    repo.write(file, &after);
}

/// Adds `version` to channel `file` after its last listed version `after`.
fn list_after(repo: &Repo, file: &str, after: &str, version: &str) {
    replace(
        repo,
        file,
        &format!("    - {after}\n"),
        &format!("    - {after}\n    - {version}\n"),
    );
}

/// The 1-based line of `text` in `file` (which must occur once).
fn line_of(repo: &Repo, file: &str, text: &str) -> usize {
    let contents = repo.read(file);
    let lines: Vec<usize> = contents
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(text))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "`{text}` once in {file}");
    lines[0]
}

fn relsync_in(dir: &Path, args: &[&str]) -> Run {
    crate::util::relsync_in(dir, args, &[])
}

fn check(repo: &Repo, extra: &[&str]) -> Run {
    let mut args = vec!["check", "--base", "main"];
    args.extend_from_slice(extra);
    relsync_in(repo.path(), &args)
}

/// `out` with the base and head commit ids (full and short) written `<base>` and `<head>`.
fn normalized(repo: &Repo, out: &str) -> String {
    let base = repo.git(&["rev-parse", "main"]);
    let head = repo.git(&["rev-parse", "HEAD"]);
    out.replace(&base, "<base>")
        .replace(&head, "<head>")
        .replace(&base[..12], "<base>")
        .replace(&head[..12], "<head>")
}

fn golden(name: &str, actual: &str) {
    let path: PathBuf = project().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_GOLDEN=1 to accept)",
        path.display()
    );
}

/// The base: the example, committed long ago; the PR: 4.16 promoted to stable, just now.
fn old_enough_promotion() -> Repo {
    let repo = example_on_main(PAST, |_| {});
    pr_branch(&repo);
    list_after(&repo, STABLE, R3, R4);
    repo.commit("promote 4.16 to stable");
    repo
}

#[test]
fn check_passes_a_promotion_whose_feeder_listing_is_old_enough() {
    let repo = old_enough_promotion();
    let run = check(&repo, &["-o", "markdown", "--offline"]);
    run.expect_code(0);
    let md = normalized(&repo, &run.stdout());
    assert!(
        md.contains("**✅ check passed: 1 tag change in quay.io/okd/scos-release**"),
        "{md}"
    );
    golden("check-pass.md", &md);

    let text = check(&repo, &["--offline"]);
    text.expect_code(0);
    golden("check-pass.txt", &normalized(&repo, &text.stdout()));

    let json = check(&repo, &["-o", "json", "--offline"]);
    json.expect_code(0);
    let j = json.json();
    assert_eq!(j["passed"], true);
    assert_eq!(j["violations"], 0);
    assert_eq!(j["base"], repo.git(&["rev-parse", "main"]));
    assert_eq!(j["head"], repo.git(&["rev-parse", "HEAD"]));
    assert_eq!(j["actions"].as_array().unwrap().len(), 1);
    assert_eq!(j["actions"][0]["action"], "retag");
    assert_eq!(j["actions"][0]["tag"], "4-scos-stable");
    assert_eq!(j["actions"][0]["fromVersion"], R3);
    assert_eq!(j["actions"][0]["toVersion"], R4);
    let rules: Vec<&str> = j["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "feeder",
            "channelSubsets",
            "immutableTags",
            "allowedSources",
            "maxDeletesPerSync",
            "payload"
        ]
    );
    assert_eq!(j["liveDrift"], serde_json::json!({"checked": false}));
}

#[test]
fn check_head_flag_judges_a_revision_other_than_head() {
    let repo = old_enough_promotion();
    repo.git(&["switch", "-q", "main"]);
    // HEAD is the base itself: nothing changes.
    let same = check(&repo, &["--offline"]);
    same.expect_code(0);
    assert!(
        same.stdout()
            .starts_with("✅ check passed: no tag changes\n")
    );
    let pr = check(&repo, &["--head", "pr", "--offline"]);
    pr.expect_code(0);
    assert!(
        pr.stdout().contains(&format!(
            "retag    quay.io/okd/scos-release:4-scos-stable  {R3} → {R4}"
        )),
        "{}",
        pr.stdout()
    );
}

/// The base lists 4.16 in next only since a commit made just now (committer time), though
/// its author date, and a comment in the file, say 2020.
fn recent_feeder_listing(comment: &str) -> Repo {
    let repo = example_on_main(PAST, |repo| {
        replace(repo, NEXT, &format!("    - {R4}\n"), "");
    });
    list_after(&repo, NEXT, R3, R4);
    if !comment.is_empty() {
        replace(
            &repo,
            NEXT,
            &format!("    - {R4}\n"),
            &format!("    - {R4}{comment}\n"),
        );
    }
    repo.commit_at("next: 4.16", PAST, None);
    pr_branch(&repo);
    list_after(&repo, STABLE, R3, R4);
    repo.commit("promote 4.16 to stable");
    repo
}

/// Whether `out` says, after `prefix`, that 3d (listed this second) or 2d23h59m… (a few
/// seconds ago) are to go.
fn remaining_about_3d(out: &str, prefix: &str) -> bool {
    out.contains(&format!("{prefix}3d to go)")) || out.contains(&format!("{prefix}2d23h59m"))
}

#[test]
fn check_fails_a_feeder_listing_younger_than_the_delay() {
    let repo = recent_feeder_listing("");
    let run = check(&repo, &["--offline"]);
    run.expect_code(1);
    let out = run.stdout();
    let line = line_of(&repo, STABLE, R4);
    assert!(
        out.starts_with("❌ check failed: 1 violation (feeder)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "FAIL  feeder: {STABLE}:{line}:7: {R4} entered channel 4-scos-next in commit "
        )) && remaining_about_3d(&out, "channel 4-scos-stable requires 3d in 4-scos-next (")
            && out.contains(" to go)"),
        "{out}"
    );
}

#[test]
fn check_is_not_fooled_by_a_date_written_in_the_file_or_an_old_author_date() {
    let repo = recent_feeder_listing("   # in 4-scos-next since 2020-01-01T00:00:00Z");
    // The author date is 2020 (1577836800 = 2020-01-01T00:00:00Z, compared as a Unix time
    // because git 2.39 writes UTC as `+00:00` in `%aI` and newer gits as `Z`): only the
    // committer time counts.
    assert_eq!(
        repo.git(&["log", "-1", "--format=%at", "main"]),
        "1577836800"
    );
    let run = check(&repo, &["-o", "markdown", "--offline"]);
    run.expect_code(1);
    let md = run.stdout();
    assert!(
        md.contains("**❌ check failed: 1 violation (feeder)"),
        "{md}"
    );
    assert!(
        md.contains(&format!("| `feeder` | ❌ fail | `{STABLE}:"))
            && remaining_about_3d(&md, "requires 3d in 4-scos-next ("),
        "{md}"
    );
}

#[test]
fn check_fails_a_version_not_yet_in_the_feeder_on_the_base() {
    // The PR adds 4.16 to next and stable at once: the base never listed it in next.
    let repo = example_on_main(PAST, |repo| {
        replace(repo, NEXT, &format!("    - {R4}\n"), "");
    });
    pr_branch(&repo);
    list_after(&repo, NEXT, R3, R4);
    list_after(&repo, STABLE, R3, R4);
    repo.commit("4.16 to next and stable");
    let run = check(&repo, &["--offline"]);
    run.expect_code(1);
    assert!(
        run.stdout()
            .contains(&format!("{R4} is not in channel 4-scos-next on the base ("))
            && run.stdout().contains("promote it to 4-scos-next first"),
        "{}",
        run.stdout()
    );
}

#[test]
fn check_measures_the_feeder_delay_on_the_base_first_parent_chain_only() {
    // A side branch listed 4.16 in next long ago (committer time 2020), merged into main
    // just now: on main's first-parent chain it is listed only since the merge.
    let repo = example_on_main(PAST, |repo| {
        replace(repo, NEXT, &format!("    - {R4}\n"), "");
    });
    repo.git(&["switch", "-q", "-c", "side"]);
    list_after(&repo, NEXT, R3, R4);
    repo.commit_dated("next: 4.16 (side)", PAST);
    repo.git(&["switch", "-q", "main"]);
    repo.git(&["merge", "-q", "--no-ff", "-m", "merge side", "side"]);
    pr_branch(&repo);
    list_after(&repo, STABLE, R3, R4);
    repo.commit("promote 4.16 to stable");
    let run = check(&repo, &["--offline"]);
    run.expect_code(1);
    let merge = repo.git(&["rev-parse", "main"]);
    assert!(
        run.stdout().contains(&format!(
            "entered channel 4-scos-next in commit {}",
            &merge[..12]
        )),
        "{}",
        run.stdout()
    );
}

#[test]
fn check_judges_a_pr_that_relaxes_a_policy_with_the_base_policy() {
    let repo = example_on_main(PAST, |_| {});
    pr_branch(&repo);
    // The PR allows another source and uses it: valid by its own policy, not by the base's.
    replace(
        &repo,
        POLICY,
        r#"allowedSources: ["registry.ci.openshift.org/origin/*"]"#,
        r#"allowedSources: ["registry.ci.openshift.org/origin/*", "docker.io/someone/*"]"#,
    );
    replace(
        &repo,
        STREAM,
        "source: registry.ci.openshift.org/origin/release-scos",
        "source: docker.io/someone/release-scos",
    );
    repo.commit("relax allowedSources");
    relsync_in(repo.path(), &["validate", "--revision", "HEAD"]).expect_code(0);
    let run = check(&repo, &["--offline"]);
    run.expect_code(1);
    let out = run.stdout();
    let line = line_of(&repo, STREAM, "source:");
    assert!(
        out.contains(&format!(
            "FAIL  allowedSources: {STREAM}:{line}:11: source `docker.io/someone/release-scos` of stream `4-scos` is not allowed by policy `default`"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "needs review (policy changes are judged by the base's copy):\n  {POLICY} (modified)\n"
        )),
        "{out}"
    );
    let md = normalized(
        &repo,
        &check(&repo, &["--offline", "-o", "markdown"]).stdout(),
    );
    assert!(md.contains(&format!("- `{POLICY}` (modified)")), "{md}");
    golden("check-fail.md", &md);

    // A policy edit alone needs review but passes.
    let repo = example_on_main(PAST, |_| {});
    pr_branch(&repo);
    replace(
        &repo,
        POLICY,
        "maxDeletesPerSync: 5",
        "maxDeletesPerSync: 50",
    );
    repo.write(
        "policies/extra.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: extra\nspec: {}\n",
    );
    repo.commit("policy edits");
    let run = check(&repo, &["-o", "json", "--offline"]);
    run.expect_code(0);
    assert_eq!(
        run.json()["review"],
        serde_json::json!([
            {"path": POLICY, "change": "modified"},
            {"path": "policies/extra.yaml", "change": "added"}
        ])
    );
}

#[test]
fn check_fails_a_pr_that_moves_an_immutable_tag() {
    let repo = example_on_main(PAST, |_| {});
    pr_branch(&repo);
    let other = format!("sha256:{}", "ab".repeat(32));
    replace(
        &repo,
        STREAM,
        "digest: sha256:d64a2256a212759c01615fd1a2c1e8426e2417e8ef1951f8f841393935423a83",
        &format!("digest: {other}"),
    );
    repo.commit("re-pin 4.14.0 GA");
    let run = check(&repo, &["-o", "json", "--offline"]);
    run.expect_code(1);
    let j = run.json();
    let immutable = &j["policies"][2];
    assert_eq!(immutable["rule"], "immutableTags");
    assert_eq!(immutable["passed"], false);
    let messages: Vec<&str> = immutable["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&format!(
            "would move immutable tag quay.io/okd/scos-release:{R2} from {R2} (sha256:d64a2256a212) to {R2} (sha256:abababababab)"
        ).as_str()),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains(":4.14.0-okd-scos.0 from")),
        "{messages:?}"
    );
    // Only tags the re-pinned release holds are named.
    assert!(
        !messages.iter().any(|m| m.contains(":4-scos-")),
        "{messages:?}"
    );
}

#[test]
fn check_fails_a_channel_subsets_violation_at_the_entry() {
    // The PR drops 4.14 from next while stable keeps it.
    let repo = example_on_main(PAST, |_| {});
    pr_branch(&repo);
    replace(&repo, NEXT, &format!("    - {R2}\n"), "");
    repo.commit("drop 4.14 from next");
    let run = check(&repo, &["--offline"]);
    run.expect_code(1);
    let line = line_of(&repo, STABLE, R2);
    let out = run.stdout();
    assert!(
        out.starts_with("❌ check failed: 1 violation (channelSubsets)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "FAIL  channelSubsets: {STABLE}:{line}:7: version {R2} is in channel 4-scos-stable but not in 4-scos-next (policy channelSubsets [4-scos-stable, 4-scos-next])"
        )),
        "{out}"
    );
}

#[test]
fn check_fails_a_change_over_the_delete_cap_of_the_base() {
    // The base allows no delete at all; the PR withdraws 4.16 from next (a tombstone:
    // an explicit delete) and raises the cap, which does not count.
    let repo = example_on_main(PAST, |repo| {
        replace(repo, POLICY, "maxDeletesPerSync: 5", "maxDeletesPerSync: 0");
    });
    pr_branch(&repo);
    replace(&repo, NEXT, &format!("    - {R4}\n"), "");
    replace(
        &repo,
        NEXT,
        &format!("    - {R1}\n"),
        &format!("    - {R1}\n    - {R4}\n"),
    );
    replace(
        &repo,
        POLICY,
        "maxDeletesPerSync: 0",
        "maxDeletesPerSync: 9",
    );
    repo.commit("withdraw 4.16");
    let run = check(&repo, &["--offline"]);
    run.expect_code(1);
    let out = run.stdout();
    let line = line_of(&repo, POLICY, "maxDeletesPerSync");
    assert!(
        out.contains(&format!(
            "FAIL  maxDeletesPerSync: {POLICY}:{line}:22: merging would delete 1 tags and the base's maxDeletesPerSync allows 0"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("delete   quay.io/okd/scos-release:{R4}  {R4} → -")),
        "{out}"
    );
    assert!(out.contains(&format!("  {POLICY} (modified)")), "{out}");
}

#[test]
fn check_fails_an_invalid_head_with_its_diagnostics() {
    let repo = example_on_main(PAST, |_| {});
    pr_branch(&repo);
    list_after(&repo, STABLE, R3, "4.99.0-not-in-the-stream");
    repo.commit("bad version");
    let run = check(&repo, &["-o", "markdown", "--offline"]);
    run.expect_code(1);
    let line = line_of(&repo, STABLE, "4.99.0");
    let diag = format!(
        "{STABLE}:{line}:7: version `4.99.0-not-in-the-stream` of channel `4-scos-stable` is not in stream `4-scos`"
    );
    assert!(run.stderr().contains(&diag), "{}", run.stderr());
    assert!(
        run.stdout()
            .contains("**❌ check failed: the head is invalid")
    );
    assert!(run.stdout().contains(&diag), "{}", run.stdout());
}

#[test]
fn check_fails_a_head_that_breaks_a_rule_only_its_own_policies_add() {
    // Tightening is allowed, but a head its own policies reject would fail `validate` and
    // `sync` once merged.
    let repo = example_on_main(PAST, |_| {});
    pr_branch(&repo);
    replace(
        &repo,
        POLICY,
        "    - [4-scos-stable, 4-scos-next]   # stable only ever holds what next held\n",
        "    - [4-scos-stable, 4-scos-next]   # stable only ever holds what next held\n    - [4-scos-next, 4-scos-stable]\n",
    );
    repo.commit("next must be a subset of stable too");
    let run = check(&repo, &["--offline"]);
    run.expect_code(1);
    let line = line_of(&repo, NEXT, R4);
    let diag = format!(
        "{NEXT}:{line}:7: version {R4} is in channel 4-scos-next but not in 4-scos-stable (policy channelSubsets [4-scos-next, 4-scos-stable])"
    );
    assert!(run.stderr().contains(&diag), "{}", run.stderr());
    assert!(
        run.stdout()
            .starts_with("❌ check failed: the head is invalid"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains(&format!("  {POLICY} (modified)")),
        "{}",
        run.stdout()
    );
}

#[test]
fn check_refuses_the_global_revision_flag() {
    let repo = old_enough_promotion();
    let run = relsync_in(
        repo.path(),
        &["--revision", "pr", "check", "--base", "main"],
    );
    run.expect_code(1);
    assert!(
        run.stderr().contains("use --base and --head"),
        "{}",
        run.stderr()
    );
}

#[test]
fn check_refuses_a_shallow_clone() {
    let repo = old_enough_promotion();
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", repo.path().display());
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--depth", "1", "--no-single-branch", &url])
        .arg(clone.path().join("c"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = clone.path().join("c");
    let run = relsync_in(
        &dir,
        &[
            "check",
            "--base",
            "origin/main",
            "--head",
            "origin/pr",
            "--offline",
        ],
    );
    run.expect_code(1);
    assert!(
        run.stderr().contains("is a shallow clone") && run.stderr().contains("--unshallow"),
        "{}",
        run.stderr()
    );
    assert!(!run.stdout().contains("passed"), "{}", run.stdout());
}

/// The example with the target on `127.0.0.1:port` (plain HTTP), the PR promoting 4.16.
fn example_on_a_network_registry(port: u16) -> Repo {
    let target = format!("127.0.0.1:{port}/okd/scos-release");
    let repo = example_on_main(PAST, |repo| {
        replace(
            repo,
            STREAM,
            "target: quay.io/okd/scos-release",
            &format!("target: {target}"),
        );
        replace(
            repo,
            "relsync.yaml",
            "  registries:\n",
            &format!("  registries:\n    - host: 127.0.0.1:{port}\n      insecure: true\n"),
        );
    });
    pr_branch(&repo);
    list_after(&repo, STABLE, R3, R4);
    repo.commit("promote 4.16 to stable");
    repo
}

#[test]
fn check_offline_contacts_no_registry() {
    // A listener that would see any connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let repo = example_on_a_network_registry(port);
    let run = check(&repo, &["--offline"]);
    run.expect_code(0);
    assert!(run.stdout().contains("live drift: not checked (--offline)"));
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("check --offline connected to the registry: {other:?}"),
    }

    // Without --offline, the same check contacts it (connections are closed unanswered).
    listener.set_nonblocking(false).unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    let run = check(&repo, &["-o", "json"]);
    run.expect_code(0);
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "check without --offline did not contact the registry"
    );
    assert!(
        run.json()["liveDrift"]["error"].is_string(),
        "{}",
        run.stdout()
    );
}

#[test]
fn check_reports_an_unreachable_registry_apart_without_failing() {
    let port = free_port();
    let repo = example_on_a_network_registry(port);
    let run = check(&repo, &["-o", "markdown"]);
    run.expect_code(0);
    let md = run.stdout();
    assert!(md.contains("**✅ check passed: 1 tag change in "), "{md}");
    assert!(
        md.contains("##### Live drift\n\ncould not observe the registry: "),
        "{md}"
    );
}

#[test]
fn check_shows_live_drift_apart_without_changing_the_exit_code() {
    // The example's OCI layout for quay.io is behind Git: 4-scos-stable holds 4.14.
    let repo = old_enough_promotion();
    let run = check(&repo, &["-o", "markdown"]);
    run.expect_code(0);
    let md = run.stdout();
    assert!(
        md.contains("**✅ check passed: 1 tag change in quay.io/okd/scos-release**"),
        "{md}"
    );
    let live = md
        .split("##### Live drift")
        .nth(1)
        .expect("a live drift section");
    assert!(live.contains("\ndrift: "), "{live}");
    assert!(
        live.contains("| moved | `quay.io/okd/scos-release` | `4-scos-stable` | `sha256:ce5c67d67537` | `sha256:d64a2256a212` |"),
        "{live}"
    );
    // The tag changes section is the plan base → head, not the live difference.
    let changes = md.split("##### Live drift").next().unwrap();
    assert!(
        !changes.contains(&format!("`{R3}` (`sha256:ce5c67d67537`) |\n| mirror")),
        "{changes}"
    );

    let j = check(&repo, &["-o", "json"]).json();
    assert_eq!(j["passed"], true);
    assert_eq!(j["liveDrift"]["checked"], true);
    assert_eq!(j["liveDrift"]["inSync"], false);
    assert!(
        j["liveDrift"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["tag"] == "4-scos-stable" && i["state"] == "moved")
    );
}
