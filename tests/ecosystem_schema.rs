//! `relsync schema` judged by an independent validator (Python's `jsonschema`, draft
//! 2020-12): the bundled example, relsync.yaml and the real cincinnati channel data (as the
//! manifest tests convert it) are valid; documents `relsync validate` refuses for their
//! shape (unknown fields, a field of another kind, a missing required one) are not.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::util::relsync_in;

/// The schema `relsync schema` prints.
fn schema() -> Value {
    let dir = tempfile::tempdir().unwrap();
    let run = relsync_in(dir.path(), &["schema"], &[]);
    run.expect_code(0);
    run.json()
}

/// Every YAML document of `text` as JSON, named `file#n`.
fn documents(name: &str, text: &str) -> Vec<(String, Value)> {
    let docs: Vec<Value> =
        serde_saphyr::from_str_multiple(text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
    docs.into_iter()
        .enumerate()
        .map(|(i, d)| (format!("{name}#{i}"), d))
        .collect()
}

/// `{name: (valid, errors)}` from `python3 tests/schema_validate.py`.
fn judge(schema: &Value, docs: &[(String, Value)]) -> Vec<(String, bool, Vec<String>)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schema_validate.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): the schema tests need python3 with jsonschema (.ci/run installs both)")
        });
    let request = json!({
        "schema": schema,
        "documents": docs.iter().map(|(n, d)| json!({"name": n, "document": d})).collect::<Vec<_>>(),
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&request).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "schema_validate.py failed ({}): {}\ninstall jsonschema with `python3 -m pip install jsonschema`",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["valid"].as_bool().unwrap(),
                r["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<(String, Value)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&p).unwrap();
            out.extend(documents(&p.display().to_string(), &text));
        }
    }
}

#[test]
fn the_example_its_config_and_the_real_channel_data_validate_against_the_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = Vec::new();
    yaml_files(&root.join("manifests"), &mut docs);
    yaml_files(&root.join("policies"), &mut docs);
    docs.extend(documents(
        "relsync.yaml",
        &std::fs::read_to_string(root.join("relsync.yaml")).unwrap(),
    ));
    let (files, channels, _) = crate::manifests::real_manifests();
    assert!(
        channels.len() > 50,
        "the real data: {} channels",
        channels.len()
    );
    for f in &files {
        docs.extend(documents(
            &f.path,
            std::str::from_utf8(&f.contents).unwrap(),
        ));
    }
    // The generated large channels of the scaling tests (tombstones, a policy).
    for f in crate::large_channels::large_channels(20) {
        docs.extend(documents(
            &f.path,
            std::str::from_utf8(&f.contents).unwrap(),
        ));
    }
    // A config with every setting the schema knows.
    docs.extend(documents(
        "full-config.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: Config\nmetadata: {name: c}\nspec:\n  git: {repo: ., revision: HEAD, path: manifests, policies: policies}\n  registries:\n    - {host: '127.0.0.1:5000', insecure: true}\n    - host: quay.io\n      caFile: ca.pem\n      usernameEnv: QUAY_USER\n      passwordEnv: QUAY_TOKEN\n      tokenRealms: [auth.quay.io]\n      deleteByDigest: true\n      rateLimit: {requestsPerSecond: 2.5, burst: 5}\n  cluster: {enabled: false}\n  sync: {concurrency: 8, prune: false, auto: true, selfHeal: true, interval: 3m}\n  webhook: {secretEnv: HOOK_SECRET}\n  notifications:\n    - {url: 'https://hooks.example.com/x', secretEnv: NOTIFY_SECRET, events: [sync-failed, promoted]}\n",
    ));
    assert!(docs.len() > 80, "{} documents", docs.len());
    let results = judge(&schema(), &docs);
    let invalid: Vec<_> = results.iter().filter(|(_, valid, _)| !valid).collect();
    assert!(invalid.is_empty(), "refused by the schema: {invalid:#?}");
    assert_eq!(results.len(), docs.len());
}

#[test]
fn documents_validate_refuses_for_their_shape_fail_the_schema_too() {
    let head = "apiVersion: relsync.dev/v1alpha1\n";
    let cases = [
        // An unknown field in a channel's spec.
        (
            "unknown spec field",
            format!(
                "{head}kind: ReleaseChannel\nmetadata: {{name: c}}\nspec:\n  stream: s\n  versions: [a]\n  tombstone: [b]\n"
            ),
        ),
        // A field of another kind.
        (
            "a stream's field in a channel",
            format!(
                "{head}kind: ReleaseChannel\nmetadata: {{name: c}}\nspec:\n  stream: s\n  source: r.example/a\n"
            ),
        ),
        // An unknown field in a release entry.
        (
            "unknown release field",
            format!(
                "{head}kind: ReleaseStream\nmetadata: {{name: s}}\nspec:\n  source: a/b\n  target: c/d\n  releases:\n    - {{version: 1.0.0, digest: 'sha256:{}', tag: x}}\n",
                "0".repeat(64)
            ),
        ),
        // A required field missing.
        (
            "a stream without target",
            format!("{head}kind: ReleaseStream\nmetadata: {{name: s}}\nspec:\n  source: a/b\n"),
        ),
        // An unknown top-level field, an unknown kind, a wrong apiVersion.
        (
            "unknown top-level field",
            format!("{head}kind: Policy\nmetadata: {{name: p}}\nspec: {{}}\nstatus: {{}}\n"),
        ),
        (
            "unknown kind",
            format!("{head}kind: ReleaseTrain\nmetadata: {{name: t}}\nspec: {{}}\n"),
        ),
        (
            "wrong apiVersion",
            "apiVersion: relsync.dev/v2\nkind: Policy\nmetadata: {name: p}\nspec: {}\n".to_string(),
        ),
        // relsync.yaml: an unknown field in a registry entry, and in rateLimit.
        (
            "unknown registry field",
            format!(
                "{head}kind: Config\nspec:\n  registries:\n    - {{host: quay.io, insecur: true}}\n"
            ),
        ),
        (
            "unknown rateLimit field",
            format!(
                "{head}kind: Config\nspec:\n  registries:\n    - {{host: quay.io, rateLimit: {{requestsPerSecond: 1, burts: 2}}}}\n"
            ),
        ),
        (
            "wrong type",
            format!("{head}kind: Config\nspec:\n  sync: {{concurrency: many}}\n"),
        ),
    ];
    let docs: Vec<(String, Value)> = cases
        .iter()
        .flat_map(|(name, text)| documents(name, text))
        .collect();
    assert_eq!(docs.len(), cases.len());
    for (name, valid, errors) in judge(&schema(), &docs) {
        assert!(!valid, "{name}: accepted by the schema");
        assert!(!errors.is_empty(), "{name}");
    }
    // And relsync itself refuses each of them (while it accepts a valid one set up the
    // same way: the refusals are about the documents).
    let valid = format!(
        "{head}kind: ReleaseStream\nmetadata: {{name: s}}\nspec:\n  source: a.example/b\n  target: c.example/d\n"
    );
    for (name, text) in std::iter::once(&("valid", valid)).chain(&cases) {
        let dir = tempfile::tempdir().unwrap();
        let is_config = text.contains("kind: Config");
        let manifest_dir = dir.path().join("manifests");
        std::fs::create_dir_all(&manifest_dir).unwrap();
        let config = if is_config {
            text.clone()
        } else {
            std::fs::write(manifest_dir.join("doc.yaml"), text).unwrap();
            format!("{head}kind: Config\nspec: {{}}\n")
        };
        std::fs::write(dir.path().join("relsync.yaml"), config).unwrap();
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}");
        };
        git(&["init", "-q"]);
        let run = relsync_in(dir.path(), &["validate"], &[]);
        let expected = if *name == "valid" { 0 } else { 1 };
        assert_eq!(
            run.code(),
            expected,
            "{name}: relsync validate: {}{}",
            run.stdout(),
            run.stderr()
        );
    }
}
