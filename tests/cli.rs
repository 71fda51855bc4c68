//! End-to-end tests of the `relsync` binary: real Git repositories built in temp dirs, the
//! bundled example's OCI layouts, and real docker-registry processes.

use serde_json::Value;

use crate::util::Repo;

const R1: &str = "4.14.0-0.okd-scos-2023-09-29-232633";
const R2: &str = "4.14.0-0.okd-scos-2023-10-11-084613";
const R3: &str = "4.15.0-0.okd-scos-2024-01-18-223523";
const R4: &str = "4.16.0-0.okd-scos-2024-09-24-151747";
const TARGET: &str = "quay.io/okd/scos-release";
const PAYLOAD_TARGET: &str = "quay.io/okd/scos-content";

/// (action, tag, fromVersion, toVersion, copy) of each action of the release target, in
/// output order (the payload target's component tags left out).
fn actions(plan: &Value) -> Vec<(String, String, Value, Value, bool)> {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["target"] != PAYLOAD_TARGET)
        .map(|a| {
            assert_eq!(a["target"], TARGET);
            (
                a["action"].as_str().unwrap().to_string(),
                a["tag"].as_str().unwrap().to_string(),
                a["fromVersion"].clone(),
                a["toVersion"].clone(),
                a["copy"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn bundled_example_validates_plans_and_drifts() {
    let repo = Repo::example();
    let head = repo.git(&["rev-parse", "HEAD"]);

    let v = repo.relsync(&["validate"]);
    v.expect_code(0);
    assert!(
        v.stdout().contains("1 stream, 2 channels, 4 releases"),
        "{}",
        v.stdout()
    );

    let plan = repo.relsync(&["plan", "-o", "json"]);
    plan.expect_code(2);
    let json = plan.json();
    assert_eq!(json["revision"], head.as_str());
    let s = |x: &str| Value::String(x.to_string());
    assert_eq!(
        actions(&json),
        vec![
            ("tag".into(), R3.into(), Value::Null, s(R3), false),
            (
                "tag".into(),
                "4.15.0-okd-scos.0".into(),
                Value::Null,
                s(R3),
                false
            ),
            ("mirror".into(), R4.into(), Value::Null, s(R4), true),
            ("retag".into(), "4-scos-next".into(), s(R2), s(R4), false),
            ("retag".into(), "4-scos-stable".into(), s(R2), s(R3), false),
            ("delete".into(), R1.into(), s(R1), Value::Null, false),
        ]
    );
    // The JSON contract: exactly these keys.
    let keys: Vec<&str> = json["actions"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = [
        "action",
        "target",
        "tag",
        "from",
        "to",
        "fromVersion",
        "toVersion",
        "copy",
        "channels",
        "reason",
    ];
    want.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, want);
    assert_eq!(
        json["actions"][2]["channels"],
        serde_json::json!(["4-scos-next"])
    );
    assert_eq!(
        json["actions"][0]["channels"],
        serde_json::json!(["4-scos-next", "4-scos-stable"])
    );

    let drift = repo.relsync(&["drift", "-o", "json"]);
    drift.expect_code(2);
    let d = drift.json();
    assert_eq!(d["inSync"], false);
    let state = |tag: &str| {
        d["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["tag"] == tag)
            .unwrap_or_else(|| panic!("no drift item for {tag}: {d}"))["state"]
            .clone()
    };
    assert_eq!(state(R2), "ok");
    assert_eq!(state(R4), "missing");
    assert_eq!(state("4-scos-stable"), "moved");
    assert_eq!(state("latest"), "extra");
    assert_eq!(state(R1), "extra");

    // The text drift has a unified diff of `tag digest` lines.
    let text = repo.relsync(&["drift"]);
    text.expect_code(2);
    assert!(
        text.stdout().contains("+latest sha256:"),
        "{}",
        text.stdout()
    );
}

#[test]
fn plan_narrowed_to_a_channel_keeps_shared_tags_only() {
    let repo = Repo::example();
    let plan = repo.relsync(&["plan", "-o", "json", "--channel", "4-scos-stable"]);
    plan.expect_code(2);
    let tags: Vec<String> = actions(&plan.json()).into_iter().map(|a| a.1).collect();
    assert_eq!(tags, [R3, "4.15.0-okd-scos.0", "4-scos-stable"]);

    let bad = repo.relsync(&["plan", "--channel", "nope"]);
    bad.expect_code(1);
    assert!(
        bad.stderr().contains("--channel nope: no such channel"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn in_sync_target_exits_zero_and_extras_count_only_with_prune() {
    let repo = Repo::example();
    // Make Git match the live target: next = stable = R2 only, R1 no longer tombstoned,
    // R3/R4 still in the stream but unpublished.
    let channel = |name: &str| {
        format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: {name}\nspec:\n  stream: 4-scos\n  tags: [{name}]\n  versions: [{R2}]\n"
        )
    };
    repo.write(
        "manifests/channels/4-scos-next.yaml",
        &channel("4-scos-next"),
    );
    repo.write(
        "manifests/channels/4-scos-stable.yaml",
        &channel("4-scos-stable"),
    );
    repo.commit("match live");
    repo.relsync(&["plan"]).expect_code(0);
    let drift = repo.relsync(&["drift", "-o", "json"]);
    drift.expect_code(0);
    assert_eq!(drift.json()["inSync"], true);
    // `latest` and R1 (with R1's 4 component tags in the payload target) are extra; with
    // prune they count, and the plan deletes them: 6 deletes, over the cap of 5.
    repo.relsync(&["drift", "--prune"]).expect_code(2);
    repo.relsync(&["plan", "--prune"]).expect_code(1);
    let plan = repo.relsync(&["plan", "-o", "json", "--prune", "--allow-deletes", "6"]);
    plan.expect_code(2);
    let deletes: Vec<(String, String)> = plan.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["target"].as_str().unwrap().to_string(),
                a["tag"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut want: Vec<(String, String)> = ["cli", "cluster-version-operator", "etcd", "installer"]
        .iter()
        .map(|c| (PAYLOAD_TARGET.to_string(), format!("{R1}-{c}")))
        .collect();
    want.extend([
        (TARGET.to_string(), R1.to_string()),
        (TARGET.to_string(), "latest".to_string()),
    ]);
    assert_eq!(deletes, want);
}

#[test]
fn invalid_manifests_exit_one_with_file_line_col() {
    let repo = Repo::example();
    let stream = repo.read("manifests/streams/4-scos.yaml");
    repo.write(
        "manifests/streams/4-scos.yaml",
        &stream
            .replace("digest: sha256:ff47", "digest: sha256:ZZ47")
            .replace("order: semver", "ordr: semver"),
    );
    // validate checks the working tree without a commit ...
    let v = repo.relsync(&["validate"]);
    v.expect_code(1);
    let err = v.stderr();
    assert!(
        err.contains("manifests/streams/4-scos.yaml:10:3: "),
        "{err}"
    );
    assert!(err.contains("ordr"), "{err}");
    // ... while plan reads HEAD (still valid) and warns about the uncommitted change.
    let plan = repo.relsync(&["plan"]);
    plan.expect_code(2);
    assert!(
        plan.stderr()
            .contains("uncommitted changes are not desired state"),
        "{}",
        plan.stderr()
    );
    assert!(
        plan.stderr().contains("manifests/streams/4-scos.yaml"),
        "{}",
        plan.stderr()
    );
    // Once committed, every command refuses it.
    repo.commit("break it");
    let plan = repo.relsync(&["plan"]);
    plan.expect_code(1);
    assert!(
        plan.stderr()
            .contains("manifests/streams/4-scos.yaml:10:3: "),
        "{}",
        plan.stderr()
    );
    assert!(
        plan.stdout().is_empty(),
        "nothing planned: {}",
        plan.stdout()
    );
}

#[test]
fn revision_flag_reads_an_earlier_commit() {
    let repo = Repo::example();
    let first = repo.git(&["rev-parse", "HEAD"]);
    repo.write("manifests/channels/4-scos-next.yaml", "not: [valid\n");
    repo.commit("broken");
    repo.relsync(&["validate", "--revision", "HEAD"])
        .expect_code(1);
    let v = repo.relsync(&["validate", "--revision", &first]);
    v.expect_code(0);
    assert!(v.stdout().contains(&first), "{}", v.stdout());
    let plan = repo.relsync(&["plan", "-o", "json", "--revision", "HEAD~1"]);
    plan.expect_code(2);
    assert_eq!(plan.json()["revision"], first.as_str());
    let missing = repo.relsync(&["plan", "--revision", "no-such-rev"]);
    missing.expect_code(1);
    assert!(
        missing.stderr().contains("no-such-rev"),
        "{}",
        missing.stderr()
    );
}

#[test]
fn immutable_tag_moved_live_is_a_conflict_and_exit_one() {
    let repo = Repo::example();
    // Point R2's version tag at R1 in the live layout: the policy makes version tags
    // immutable, so relsync must report it and never plan a move.
    let index_path = "example/quay.io/okd/scos-release/index.json";
    let mut index: Value = serde_json::from_str(&repo.read(index_path)).unwrap();
    let r1_digest = index["manifests"][0]["digest"].clone();
    for m in index["manifests"].as_array_mut().unwrap() {
        if m["annotations"]["org.opencontainers.image.ref.name"] == R2 {
            m["digest"] = r1_digest.clone();
        }
    }
    repo.write(index_path, &serde_json::to_string_pretty(&index).unwrap());
    repo.commit("someone moved a version tag");
    let plan = repo.relsync(&["plan", "-o", "json"]);
    plan.expect_code(1);
    assert!(
        !actions(&plan.json()).iter().any(|a| a.1 == R2),
        "an immutable tag is never an action: {}",
        plan.stdout()
    );
    assert!(plan.stderr().contains(R2), "{}", plan.stderr());
}

#[test]
fn delete_cap_refuses_the_whole_plan_unless_allowed() {
    let repo = Repo::example();
    let policy = repo.read("policies/default.yaml");
    repo.write(
        "policies/default.yaml",
        &policy.replace("maxDeletesPerSync: 5", "maxDeletesPerSync: 0"),
    );
    repo.commit("no deletes");
    let plan = repo.relsync(&["plan"]);
    plan.expect_code(1);
    assert!(
        plan.stderr().contains("--allow-deletes 1"),
        "{}",
        plan.stderr()
    );
    repo.relsync(&["plan", "--allow-deletes", "1"])
        .expect_code(2);
}

#[test]
fn missing_explicit_config_is_an_error() {
    let repo = Repo::example();
    let run = repo.relsync(&["--config", "nope.yaml", "plan"]);
    run.expect_code(1);
    assert!(run.stderr().contains("nope.yaml"), "{}", run.stderr());
}

/// Two streams publishing into two real registries: the plan covers both, in DESIGN order,
/// with a rollback decided by semver and a mirror into the empty registry.
#[test]
fn plan_and_drift_against_two_real_registries() {
    use crate::util::{TestRegistry, block_on};
    let (reg1, reg2) = (TestRegistry::start(), TestRegistry::start());
    let (h1, h2) = (reg1.host(), reg2.host());
    let p1 = reg1.pusher();
    let (v14, v15, f39) = block_on(async {
        let v14 = p1.push_index("okd/release", "4.14.0", "okd-4.14.0").await;
        let v15 = p1.push_index("okd/release", "4.15.0", "okd-4.15.0").await;
        // Someone tagged `stable` with 4.15.0 ahead of Git.
        p1.push_manifest(
            "okd/release",
            "stable",
            &crate::util::Content {
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                bytes: v15.index_bytes.clone(),
            },
        )
        .await;
        let f39 = p1.push_index("fcos/source", "39.0.0", "fcos-39").await;
        (v14.index, v15.index, f39.index)
    });

    let repo = Repo::new();
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {{host: '{h1}', insecure: true}}\n    - {{host: '{h2}', insecure: true}}\n"
        ),
    );
    repo.write(
        "manifests/streams.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1
kind: ReleaseStream
metadata: {{name: okd}}
spec:
  source: {h1}/okd/ci
  target: {h1}/okd/release
  releases:
    - {{version: 4.14.0, digest: '{v14}'}}
    - {{version: 4.15.0, digest: '{v15}'}}
---
apiVersion: relsync.dev/v1alpha1
kind: ReleaseStream
metadata: {{name: fcos}}
spec:
  source: {h1}/fcos/source
  target: {h2}/fcos/release
  releases:
    - {{version: 39.0.0, digest: '{f39}'}}
"
        ),
    );
    repo.write(
        "manifests/channels.yaml",
        "apiVersion: relsync.dev/v1alpha1
kind: ReleaseChannel
metadata: {name: okd-stable}
spec: {stream: okd, tags: [stable], versions: [4.14.0]}
---
apiVersion: relsync.dev/v1alpha1
kind: ReleaseChannel
metadata: {name: okd-next}
spec: {stream: okd, tags: [next], versions: [4.14.0, 4.15.0]}
---
apiVersion: relsync.dev/v1alpha1
kind: ReleaseChannel
metadata: {name: fcos}
spec: {stream: fcos, versions: [39.0.0]}
",
    );
    repo.commit("two registries");

    let plan = repo.relsync(&["plan", "-o", "json"]);
    plan.expect_code(2);
    let got: Vec<(String, String, String, Value, bool)> = plan.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["target"].as_str().unwrap().to_string(),
                a["action"].as_str().unwrap().to_string(),
                a["tag"].as_str().unwrap().to_string(),
                a["to"].clone(),
                a["copy"].as_bool().unwrap(),
            )
        })
        .collect();
    let (t1, t2) = (format!("{h1}/okd/release"), format!("{h2}/fcos/release"));
    let mut want = vec![
        (
            t1.clone(),
            "tag".to_string(),
            "next".to_string(),
            Value::from(v15.to_string()),
            false,
        ),
        (
            t1.clone(),
            "rollback".into(),
            "stable".into(),
            Value::from(v14.to_string()),
            false,
        ),
        (
            t2.clone(),
            "mirror".into(),
            "39.0.0".into(),
            Value::from(f39.to_string()),
            true,
        ),
    ];
    // Targets sort as strings; the two ports decide which registry comes first.
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);

    let drift = repo.relsync(&["drift", "-o", "json"]);
    drift.expect_code(2);
    let items = drift.json()["items"].as_array().unwrap().clone();
    let find = |target: &str, tag: &str| {
        items
            .iter()
            .find(|i| i["target"] == target && i["tag"] == tag)
            .unwrap_or_else(|| panic!("no item {target} {tag}"))["state"]
            .clone()
    };
    assert_eq!(find(&t1, "4.14.0"), "ok");
    assert_eq!(find(&t1, "4.15.0"), "ok");
    assert_eq!(find(&t1, "stable"), "moved");
    assert_eq!(find(&t1, "next"), "missing");
    assert_eq!(find(&t2, "39.0.0"), "missing");

    // Narrowed to one channel, only its tags (4.14.0 is shared but already in place).
    let narrowed = repo.relsync(&["plan", "-o", "json", "--channel", "okd-stable"]);
    narrowed.expect_code(2);
    let tags: Vec<String> = narrowed.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["tag"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tags, ["stable"]);
}

/// Regression: logs piped to a file carried ANSI colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes_and_name_target_and_tag() {
    let repo = Repo::example();
    // Without NO_COLOR (which the `relsync` helper sets): only the pipe must turn colour off.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relsync"))
        .args(["-v", "sync"])
        .current_dir(repo.path())
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\u{1b}'), "ANSI escape in piped logs: {err}");
    assert!(
        err.contains("action{action=delete target=quay.io/okd/scos-release tag=4.14.0-0.okd-scos-2023-09-29-232633"),
        "a span per action with target and tag: {err}"
    );
}

/// Exit code 2 means "changes pending": a usage error must never look like drift to a CI
/// job. Every usage error exits 1, says what is wrong and writes nothing.
#[test]
fn usage_errors_exit_one_never_two_and_write_nothing() {
    let repo = Repo::example();
    let index = "example/quay.io/okd/scos-release/index.json";
    let before = repo.read(index);
    let cases: &[(&[&str], &str)] = &[
        (&["plan", "-o", "yaml"], "invalid value 'yaml'"),
        (&["drift", "--output", "yaml"], "invalid value 'yaml'"),
        (
            &["sync", "--dry-run", "--bogus"],
            "unexpected argument '--bogus'",
        ),
        (&["sync", "--allow-deletes", "many"], "invalid value 'many'"),
        (&["plna"], "unrecognized subcommand 'plna'"),
        (&["promote", R4], "--to <CHANNEL>"),
        (&["add", R4, "--from", R4], "--stream <S>"),
        (&["check"], "--base <REV>"),
        (&["rollback"], "--to-revision <REV>"),
        (&[], "Usage: relsync"),
        (
            &["--config", "nope.yaml", "plan"],
            "config file nope.yaml not found",
        ),
    ];
    for (args, message) in cases {
        let run = repo.relsync(args);
        assert_eq!(
            run.code(),
            1,
            "relsync {args:?}: usage errors exit 1\n{}",
            run.stderr()
        );
        assert!(
            run.stderr().contains(message),
            "relsync {args:?}: stderr names the problem ({message}):\n{}",
            run.stderr()
        );
        assert_eq!(run.stdout(), "", "relsync {args:?}: nothing on stdout");
    }
    assert_eq!(
        repo.read(index),
        before,
        "a usage error wrote to the target"
    );
    assert!(
        !repo.path().join(".relsync").exists(),
        "a usage error recorded history"
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "", "nothing written");
}

/// Asking for help or the version is not an error: exit 0, on stdout.
#[test]
fn help_and_version_exit_zero_on_stdout() {
    let repo = Repo::example();
    let cases: &[(&[&str], &str)] = &[
        (&["--help"], "Usage: relsync"),
        (&["-h"], "Usage: relsync"),
        (&["help"], "Usage: relsync"),
        (&["help", "plan"], "Usage: relsync plan"),
        (&["plan", "--help"], "--output <OUTPUT>"),
        (
            &["--version"],
            concat!("relsync ", env!("CARGO_PKG_VERSION")),
        ),
        (&["-V"], concat!("relsync ", env!("CARGO_PKG_VERSION"))),
    ];
    for (args, expected) in cases {
        let run = repo.relsync(args);
        run.expect_code(0);
        assert!(
            run.stdout().contains(expected),
            "relsync {args:?}: stdout has {expected:?}:\n{}",
            run.stdout()
        );
    }
}
