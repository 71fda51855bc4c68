//! `relsync add` and `relsync promote` end to end: real Git repositories (dated commits for
//! feeder delays, a shallow clone), the bundled example's OCI layouts as the source, a real
//! docker-registry, and a real cincinnati channel file.

use std::path::Path;

use crate::util::{Content, Repo, TestRegistry, block_on, image_index, project};

const R1: &str = "4.14.0-0.okd-scos-2023-09-29-232633";
const R2: &str = "4.14.0-0.okd-scos-2023-10-11-084613";
const R3: &str = "4.15.0-0.okd-scos-2024-01-18-223523";
const R4: &str = "4.16.0-0.okd-scos-2024-09-24-151747";
const R4_DIGEST: &str = "sha256:5478f136ec9c7e80e30c93c0bb5ed506286f3c168dda42569cb2dde79f3305e8";
const STABLE: &str = "manifests/channels/4-scos-stable.yaml";
const NEXT: &str = "manifests/channels/4-scos-next.yaml";
const STREAM: &str = "manifests/streams/4-scos.yaml";
const SOURCE_LAYOUT: &str = "example/registry.ci.openshift.org/origin/release-scos";
/// Long enough ago for any feeder delay.
const PAST: &str = "2020-01-01T00:00:00Z";

/// The bundled example in a new repository, committed at `date`.
fn example_at(date: &str) -> Repo {
    let repo = Repo::new();
    repo.copy_example();
    repo.commit_dated("example", date);
    repo
}

fn relsync_in(dir: &Path, args: &[&str]) -> crate::util::Run {
    crate::util::relsync_in(dir, args, &[])
}

/// `text` with the line `line` inserted before the line that is exactly `before` (which must
/// occur once).
fn insert_before(text: &str, before: &str, line: &str) -> String {
    assert_eq!(
        text.matches(&format!("{before}\n")).count(),
        1,
        "`{before}` once in:\n{text}"
    );
    text.replacen(&format!("{before}\n"), &format!("{line}\n{before}\n"), 1)
}

// ---------------------------------------------------------------------------------------------
// promote

#[test]
fn promote_appends_the_newest_version_keeping_every_other_byte() {
    let repo = example_at(PAST);
    let before = repo.read(STABLE);
    let run = relsync_in(repo.path(), &["promote", R4, "--to", "4-scos-stable"]);
    run.expect_code(0);
    assert_eq!(
        run.stdout(),
        format!("promoted {R4} to 4-scos-stable ({STABLE}:18)\n")
    );
    let expected = before.replace(
        &format!("    - {R3}\n"),
        &format!("    - {R3}\n    - {R4}\n"),
    );
    assert_ne!(expected, before);
    assert_eq!(repo.read(STABLE), expected);
    // Only that file changed, and the result validates.
    assert_eq!(repo.git(&["status", "--porcelain"]), format!("M {STABLE}"));
    relsync_in(repo.path(), &["validate"]).expect_code(0);
}

#[test]
fn promote_lands_at_its_semver_position() {
    let repo = example_at(PAST);
    let stable = repo
        .read(STABLE)
        .replace(&format!("    - {R3}\n"), &format!("    - {R4}\n"));
    repo.write(STABLE, &stable);
    repo.commit_dated("stable: 4.16 without 4.15", PAST);
    relsync_in(repo.path(), &["promote", R3, "--to", "4-scos-stable"]).expect_code(0);
    assert_eq!(
        repo.read(STABLE),
        insert_before(&stable, &format!("    - {R4}"), &format!("    - {R3}"))
    );
}

#[test]
fn promote_under_listed_order_follows_the_stream_listing() {
    // Under semver `.0` sorts before `.ec.1`; under `order: listed` the stream's order wins.
    let repo = example_at(PAST);
    let (ec1, ec2, ga) = (
        "4.15.0-okd-scos.ec.1",
        "4.15.0-okd-scos.ec.2",
        "4.15.0-okd-scos.0",
    );
    let digest = |n: u8| format!("sha256:{}", format!("{n:x}").repeat(64));
    repo.write(
        "manifests/streams/4-scos-ga.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: ga\nspec:\n  source: registry.ci.openshift.org/origin/release-scos\n  target: quay.io/okd/scos-ga\n  order: listed\n  releases:\n    - version: {ec1}\n      digest: {}\n    - version: {ec2}\n      digest: {}\n    - version: {ga}\n      digest: {}\n",
            digest(1),
            digest(2),
            digest(3)
        ),
    );
    let channel = format!(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: ga\nspec:\n  stream: ga\n  versions:\n  - '{ec1}'   # quoted on purpose\n  - '{ga}'\n"
    );
    repo.write("manifests/channels/ga.yaml", &channel);
    repo.commit_dated("ga stream", PAST);
    let run = relsync_in(repo.path(), &["promote", ec2, "--to", "ga"]);
    run.expect_code(0);
    assert_eq!(
        run.stdout(),
        format!("promoted {ec2} to ga (manifests/channels/ga.yaml:9)\n")
    );
    assert_eq!(
        repo.read("manifests/channels/ga.yaml"),
        insert_before(&channel, &format!("  - '{ga}'"), &format!("  - '{ec2}'"))
    );
}

#[test]
fn promote_refuses_a_feeder_listing_younger_than_the_delay() {
    // Committed just now: 4.16 has been in 4-scos-next for seconds, stable wants 72h.
    let repo = Repo::example();
    let before = repo.read(STABLE);
    let run = relsync_in(repo.path(), &["promote", R4, "--to", "4-scos-stable"]);
    run.expect_code(1);
    let err = run.stderr();
    assert!(
        err.contains(&format!("{R4} entered channel 4-scos-next in commit "))
            && err.contains("on branch main")
            && err.contains("channel 4-scos-stable requires 3d in 4-scos-next"),
        "{err}"
    );
    assert_eq!(repo.read(STABLE), before, "nothing written on refusal");
}

#[test]
fn feeder_delay_runs_from_the_first_first_parent_commit_listing_the_version() {
    // Listed long ago, touched again just now: the delay counts from the first listing.
    let repo = example_at(PAST);
    let next = repo.read(NEXT);
    repo.write(NEXT, &format!("{next}# touched\n"));
    repo.commit("next: a comment");
    relsync_in(repo.path(), &["promote", R4, "--to", "4-scos-stable"]).expect_code(0);

    // Not listed in the past, listed only now: refused.
    let repo = Repo::new();
    repo.copy_example();
    let next = repo.read(NEXT);
    let without = next.replace(&format!("    - {R4}\n"), "");
    assert_ne!(without, next);
    repo.write(NEXT, &without);
    repo.commit_dated("example without 4.16 in next", PAST);
    // In the working tree only: not committed, so not on the branch.
    repo.write(NEXT, &next);
    let run = relsync_in(repo.path(), &["promote", R4, "--to", "4-scos-stable"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "{R4} is not in channel 4-scos-next on branch main (committed)"
        )),
        "{}",
        run.stderr()
    );
    repo.commit("next: 4.16");
    let before = repo.read(STABLE);
    let run = relsync_in(repo.path(), &["promote", R4, "--to", "4-scos-stable"]);
    run.expect_code(1);
    assert!(run.stderr().contains("requires 3d"), "{}", run.stderr());
    assert_eq!(repo.read(STABLE), before);
}

#[test]
fn promote_refuses_a_shallow_clone() {
    let origin = example_at(PAST);
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone");
    let url = format!("file://{}", origin.path().display());
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--depth", "1", &url])
        .arg(&clone)
        .output()
        .expect("git must be installed to run these tests");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = std::fs::read(clone.join(STABLE)).unwrap();
    let run = relsync_in(&clone, &["promote", R4, "--to", "4-scos-stable"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("is a shallow clone"),
        "{}",
        run.stderr()
    );
    assert_eq!(std::fs::read(clone.join(STABLE)).unwrap(), before);
}

#[test]
fn promote_refuses_a_channel_subsets_violation_at_the_new_entry() {
    let repo = example_at(PAST);
    let stable = repo.read(STABLE);
    let no_feeder = stable.replace("  feeder:\n    channel: 4-scos-next\n    delay: 72h\n", "");
    assert_ne!(no_feeder, stable);
    repo.write(STABLE, &no_feeder);
    repo.write(NEXT, &repo.read(NEXT).replace(&format!("    - {R4}\n"), ""));
    repo.commit_dated("stable without feeder, next without 4.16", PAST);
    let run = relsync_in(repo.path(), &["promote", R4, "--to", "4-scos-stable"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "{STABLE}:15:7: version {R4} is in channel 4-scos-stable but not in 4-scos-next (policy channelSubsets [4-scos-stable, 4-scos-next])"
        )),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("nothing was written"),
        "{}",
        run.stderr()
    );
    assert_eq!(repo.read(STABLE), no_feeder);
}

#[test]
fn promote_refuses_to_move_an_immutable_floating_tag() {
    let repo = example_at(PAST);
    let policy = repo.read("policies/default.yaml");
    repo.write(
        "policies/default.yaml",
        &policy.replace(
            r"immutableTags: '^\d+\.\d+\.\d+'",
            "immutableTags: '^4-scos-stable$'",
        ),
    );
    repo.commit_dated("stable's floating tag is immutable", PAST);
    let before = repo.read(STABLE);
    let run = relsync_in(repo.path(), &["promote", R4, "--to", "4-scos-stable"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "promoting {R4} to 4-scos-stable would move immutable tag quay.io/okd/scos-release:4-scos-stable from {R3}"
        )),
        "{}",
        run.stderr()
    );
    assert_eq!(repo.read(STABLE), before);
}

#[test]
fn promote_refuses_tombstoned_and_unknown_versions_and_notes_listed_ones() {
    let repo = example_at(PAST);
    let next = repo.read(NEXT);
    let run = relsync_in(repo.path(), &["promote", R1, "--to", "4-scos-next"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "{NEXT}:15:7: {R1} is tombstoned in channel 4-scos-next; remove the tombstone first"
        )),
        "{}",
        run.stderr()
    );
    let run = relsync_in(repo.path(), &["promote", "4.99.0", "--to", "4-scos-next"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains(
            "4.99.0 is not a release of stream 4-scos, which channel 4-scos-next follows"
        ),
        "{}",
        run.stderr()
    );
    let run = relsync_in(repo.path(), &["promote", R4, "--to", "nope"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("no channel `nope`"),
        "{}",
        run.stderr()
    );
    let run = relsync_in(repo.path(), &["promote", R2, "--to", "4-scos-next"]);
    run.expect_code(0);
    assert_eq!(
        run.stdout(),
        format!("{R2} is already in 4-scos-next ({NEXT}:10:7); nothing to do\n")
    );
    assert_eq!(repo.read(NEXT), next);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn promote_commit_makes_a_branch_and_a_conventional_commit() {
    let repo = example_at(PAST);
    repo.git(&["config", "user.name", "Release Bot"]);
    repo.git(&["config", "user.email", "bot@example.org"]);
    let base = repo.git(&["rev-parse", "HEAD"]);
    // An unrelated uncommitted change is carried over, not committed.
    repo.write("notes.txt", "scratch\n");
    let run = relsync_in(
        repo.path(),
        &["promote", R4, "--to", "4-scos-stable", "--commit"],
    );
    run.expect_code(0);
    let branch = format!("promote/4-scos-stable/{R4}");
    assert!(
        run.stdout().starts_with(&format!(
            "promoted {R4} to 4-scos-stable ({STABLE}:18), committed "
        )) && run.stdout().ends_with(&format!(" on branch {branch}\n")),
        "{}",
        run.stdout()
    );
    assert_eq!(repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]), branch);
    assert_eq!(repo.git(&["rev-parse", "HEAD~1"]), base);
    assert_eq!(
        repo.git(&["log", "-1", "--format=%s"]),
        format!("promote(4-scos-stable): {R4}")
    );
    let body = repo.git(&["log", "-1", "--format=%b"]);
    assert!(
        body.contains("stream 4-scos") && body.contains(R4_DIGEST),
        "{body}"
    );
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an <%ae>"]),
        "Release Bot <bot@example.org>"
    );
    assert_eq!(
        repo.git(&["show", "--name-only", "--format=", "HEAD"]),
        STABLE
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "?? notes.txt");
    assert!(repo.read(STABLE).contains(&format!("    - {R4}\n")));

    // Back on main: the branch exists, so a second --commit is refused and writes nothing.
    repo.git(&["switch", "-q", "main"]);
    let before = repo.read(STABLE);
    let run = relsync_in(
        repo.path(),
        &["promote", R4, "--to", "4-scos-stable", "--commit"],
    );
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains(&format!("branch `{branch}` already exists")),
        "{}",
        run.stderr()
    );
    assert_eq!(repo.read(STABLE), before);

    // A channel file with uncommitted changes is refused too.
    repo.git(&["branch", "-q", "-D", &branch]);
    let dirty = format!("{before}# local note\n");
    repo.write(STABLE, &dirty);
    let run = relsync_in(
        repo.path(),
        &["promote", R4, "--to", "4-scos-stable", "--commit"],
    );
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains(&format!("{STABLE} has uncommitted changes")),
        "{}",
        run.stderr()
    );
    assert_eq!(repo.read(STABLE), dirty);
    assert_eq!(repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]), "main");
}

// ---------------------------------------------------------------------------------------------
// promote on a real cincinnati channel file

/// The `versions` of a cincinnati channel file, as written.
fn real_versions(name: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct File {
        versions: Vec<String>,
    }
    let path = project().join(format!(
        "tests/data/cincinnati-graph-data/channels/{name}.yaml"
    ));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("real data at {}: {e}", path.display()));
    let f: File = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    f.versions
}

#[test]
fn promote_on_a_real_cincinnati_channel_inserts_one_line_in_order() {
    let fast = real_versions("fast-4.14");
    let stable = real_versions("stable-4.14");
    let mut all: Vec<&String> = fast.iter().chain(&stable).collect();
    all.sort();
    all.dedup();
    let repo = Repo::new();
    let mut stream = String::from(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: ocp\nspec:\n  source: quay.io/openshift-release-dev/ocp-release\n  target: registry.example.com/ocp/release\n  releases:\n",
    );
    for v in &all {
        stream.push_str(&format!(
            "  - version: {v}\n    digest: {}\n",
            relsync::digest::Digest::sha256_of(v.as_bytes())
        ));
    }
    repo.write("manifests/streams/ocp.yaml", &stream);
    // The channel files keep cincinnati's layout: an indentless `- x` list.
    let channel = |name: &str, versions: &[String], feeder: &str| {
        let mut y = format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: {name}\nspec:\n  stream: ocp\n  tags: [{name}]\n{feeder}  versions:\n"
        );
        for v in versions {
            y.push_str(&format!("  - {v}\n"));
        }
        y
    };
    repo.write(
        "manifests/channels/fast-4.14.yaml",
        &channel("fast-4.14", &fast, ""),
    );
    let stable_text = channel(
        "stable-4.14",
        &stable,
        "  feeder:\n    channel: fast-4.14\n    delay: PT48H\n",
    );
    repo.write("manifests/channels/stable-4.14.yaml", &stable_text);
    // relsync needs its config (issue 16: no silent defaults); the defaults are enough.
    repo.write(
        "relsync.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec: {}\n",
    );
    repo.commit_dated("real channels", PAST);

    let version = fast
        .iter()
        .find(|v| !stable.contains(v))
        .expect("fast-4.14 has versions stable-4.14 lacks");
    let run = relsync_in(repo.path(), &["promote", version, "--to", "stable-4.14"]);
    run.expect_code(0);
    let after = repo.read("manifests/channels/stable-4.14.yaml");
    // Exactly one line more, and removing it gives the old file byte for byte.
    let new_line = format!("  - {version}\n");
    let at = after.find(&new_line).expect("the new entry");
    assert_eq!(
        format!("{}{}", &after[..at], &after[at + new_line.len()..]),
        stable_text
    );
    // Its neighbours are its semver predecessor and successor in the channel.
    let parse = |v: &str| semver::Version::parse(v).unwrap();
    let new = parse(version);
    let lines: Vec<&str> = after.lines().collect();
    let i = lines
        .iter()
        .position(|l| *l == new_line.trim_end())
        .unwrap();
    let before_v = lines[i - 1].trim_start_matches("  - ");
    let after_v = lines[i + 1].trim_start_matches("  - ");
    assert_eq!(
        parse(before_v).cmp_precedence(&new),
        std::cmp::Ordering::Less
    );
    assert_eq!(
        parse(after_v).cmp_precedence(&new),
        std::cmp::Ordering::Greater
    );
    assert_eq!(
        run.stdout(),
        format!(
            "promoted {version} to stable-4.14 (manifests/channels/stable-4.14.yaml:{})\n",
            i + 1
        )
    );
}

// ---------------------------------------------------------------------------------------------
// add

/// Tags a new (empty) image index in the example's source layout; returns its
/// digest.
fn tag_in_source_layout(repo: &Repo, tag: &str, seed: &str) -> String {
    let layout = repo.path().join(SOURCE_LAYOUT);
    let mut index = image_index(&[]);
    // A distinct index per seed.
    let mut v: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
    v["annotations"] = serde_json::json!({"seed": seed});
    index = Content {
        media_type: index.media_type,
        bytes: serde_json::to_vec(&v).unwrap(),
    };
    let digest = index.digest();
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), &index.bytes).unwrap();
    let path = layout.join("index.json");
    let mut top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut desc = index.descriptor();
    desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    // A tag names one manifest: one the layout already has (the example's source ships the
    // nightly of the README's `add` example) is moved, as a registry would.
    let manifests = top["manifests"].as_array_mut().unwrap();
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != tag);
    manifests.push(desc);
    std::fs::write(&path, serde_json::to_vec_pretty(&top).unwrap()).unwrap();
    digest.to_string()
}

#[test]
fn add_resolves_a_tag_in_the_source_and_writes_the_release_block() {
    let repo = Repo::example();
    let newest = "4.17.0-0.okd-scos-2024-12-01-000000";
    let middle = "4.15.0-0.okd-scos-2024-03-01-000000";
    let d_newest = tag_in_source_layout(&repo, newest, "newest");
    let d_middle = tag_in_source_layout(&repo, middle, "middle");
    let stream = repo.read(STREAM);

    let run = relsync_in(
        repo.path(),
        &["add", newest, "--stream", "4-scos", "--from", newest],
    );
    run.expect_code(0);
    assert_eq!(
        run.stdout(),
        format!(
            "added {newest} to stream 4-scos ({STREAM}:22): {d_newest} from registry.ci.openshift.org/origin/release-scos\n"
        )
    );
    // At the end of `releases`, before the stream's `payload` block.
    let (releases, payload) = stream.split_at(stream.find("  payload:").unwrap_or(stream.len()));
    let appended =
        format!("{releases}    - version: {newest}\n      digest: {d_newest}\n{payload}");
    assert_eq!(repo.read(STREAM), appended);

    // In precedence order: before 4.16's block, after 4.15's (whose `tags:` line stays put).
    let run = relsync_in(
        repo.path(),
        &["add", middle, "--stream", "4-scos", "--from", &d_middle],
    );
    run.expect_code(0);
    assert_eq!(
        repo.read(STREAM),
        insert_before(
            &appended,
            &format!("    - version: {R4}"),
            &format!("    - version: {middle}\n      digest: {d_middle}")
        )
    );
    relsync_in(repo.path(), &["validate"]).expect_code(0);

    // Again with the same digest: nothing to do.
    let written = repo.read(STREAM);
    let run = relsync_in(
        repo.path(),
        &["add", newest, "--stream", "4-scos", "--from", newest],
    );
    run.expect_code(0);
    assert!(
        run.stdout().contains("already in stream 4-scos"),
        "{}",
        run.stdout()
    );
    // The same version from another digest: refused.
    let run = relsync_in(
        repo.path(),
        &["add", newest, "--stream", "4-scos", "--from", R4],
    );
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "version {newest} is already in stream 4-scos with digest {d_newest}, but {R4} is {R4_DIGEST}"
        )),
        "{}",
        run.stderr()
    );
    assert_eq!(repo.read(STREAM), written);
}

#[test]
fn add_refuses_unknown_references_and_bad_versions_writing_nothing() {
    let repo = Repo::example();
    let stream = repo.read(STREAM);
    let run = relsync_in(
        repo.path(),
        &[
            "add",
            "4.18.0",
            "--stream",
            "4-scos",
            "--from",
            "4.18.0-nope",
        ],
    );
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains("tag 4.18.0-nope not found in registry.ci.openshift.org/origin/release-scos"),
        "{}",
        run.stderr()
    );
    let missing = format!("sha256:{}", "e".repeat(64));
    let run = relsync_in(
        repo.path(),
        &["add", "4.18.0", "--stream", "4-scos", "--from", &missing],
    );
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "digest {missing} not found in registry.ci.openshift.org/origin/release-scos"
        )),
        "{}",
        run.stderr()
    );
    let run = relsync_in(
        repo.path(),
        &["add", "v4.18", "--stream", "4-scos", "--from", R4],
    );
    run.expect_code(1);
    assert!(
        run.stderr().contains("version `v4.18` is not semver"),
        "{}",
        run.stderr()
    );
    let run = relsync_in(
        repo.path(),
        &["add", "4.18.0", "--stream", "nope", "--from", R4],
    );
    run.expect_code(1);
    assert!(
        run.stderr().contains("no stream `nope` (streams: 4-scos)"),
        "{}",
        run.stderr()
    );
    // A source the policy does not allow: the manifests are refused as they stand.
    let policy = repo.read("policies/default.yaml");
    repo.write(
        "policies/default.yaml",
        &policy.replace("registry.ci.openshift.org/origin/*", "quay.io/okd/*"),
    );
    let run = relsync_in(
        repo.path(),
        &["add", "4.18.0", "--stream", "4-scos", "--from", R4],
    );
    run.expect_code(1);
    assert!(
        run.stderr().contains("is not allowed by policy `default`"),
        "{}",
        run.stderr()
    );
    assert_eq!(repo.read(STREAM), stream);
}

#[test]
fn add_resolves_a_tag_on_a_real_registry() {
    let registry = TestRegistry::start();
    let pushed = block_on(
        registry
            .pusher()
            .push_index("origin/release", "nightly-1", "add"),
    );
    let repo = Repo::new();
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - host: {}\n      insecure: true\n",
            registry.host()
        ),
    );
    let stream = format!(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: app\nspec:\n  source: {}/origin/release\n  target: {}/pub/release\n  order: listed\n  releases: []   # none yet\n",
        registry.host(),
        registry.host()
    );
    repo.write("manifests/app.yaml", &stream);
    repo.commit("stream");
    let run = relsync_in(
        repo.path(),
        &["add", "nightly-1", "--stream", "app", "--from", "nightly-1"],
    );
    run.expect_code(0);
    assert_eq!(
        repo.read("manifests/app.yaml"),
        stream.replace(
            "  releases: []   # none yet\n",
            &format!(
                "  releases:   # none yet\n    - version: nightly-1\n      digest: {}\n",
                pushed.index
            )
        )
    );
    let run = relsync_in(
        repo.path(),
        &["add", "nightly-2", "--stream", "app", "--from", "nightly-2"],
    );
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "tag nightly-2 not found in {}/origin/release",
            registry.host()
        )),
        "{}",
        run.stderr()
    );
}

#[test]
fn feeder_delay_counts_first_parent_commits_only() {
    // 4.16 entered next on a side branch long ago, but reached main only with today's merge:
    // on main's first-parent history it has been in next since the merge.
    let repo = Repo::new();
    repo.copy_example();
    let next = repo.read(NEXT);
    repo.write(NEXT, &next.replace(&format!("    - {R4}\n"), ""));
    repo.commit_dated("example without 4.16 in next", "2019-12-01T00:00:00Z");
    repo.git(&["switch", "-q", "-c", "side"]);
    repo.write(NEXT, &next);
    repo.commit_dated("next: 4.16", PAST);
    repo.git(&["switch", "-q", "main"]);
    repo.git(&["merge", "-q", "--no-ff", "-m", "merge side", "side"]);
    let run = relsync_in(repo.path(), &["promote", R4, "--to", "4-scos-stable"]);
    run.expect_code(1);
    let merge = repo.git(&["rev-parse", "HEAD"]);
    assert!(
        run.stderr().contains(&format!(
            "{R4} entered channel 4-scos-next in commit {} on branch main",
            &merge[..12]
        )),
        "{}",
        run.stderr()
    );
    // On the side branch itself, the listing is old enough.
    repo.git(&["switch", "-q", "side"]);
    relsync_in(repo.path(), &["promote", R4, "--to", "4-scos-stable"]).expect_code(0);
    // --revision does not apply to a working-tree edit.
    let run = relsync_in(
        repo.path(),
        &["--revision", "main", "promote", R4, "--to", "4-scos-next"],
    );
    run.expect_code(1);
    assert!(
        run.stderr().contains("`promote` edits the working tree"),
        "{}",
        run.stderr()
    );
}
