//! The manifest model: a corpus of bad inputs with their exact diagnostics, warnings, good
//! inputs (the bundled example), `relsync.yaml` parsing, and the real cincinnati-graph-data
//! channels converted into one stream and 76 channels.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use relsync::config;
use relsync::desired;
use relsync::digest::Digest;
use relsync::manifest::{self, Diagnostics, Severity, SourceFile};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file below `dir`, with paths relative to `dir` (`/`-separated), sorted.
fn read_tree(dir: &Path) -> Vec<SourceFile> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("below root");
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(SourceFile {
                    path: rel.join("/"),
                    contents: std::fs::read(&path).expect("read file"),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// Loads a corpus case: the manifests and policies (`load`), and `relsync.yaml` when present
/// (`config::load`). Returns all diagnostics, sorted, and whether each load failed.
fn load_case(dir: &Path) -> (Diagnostics, bool) {
    let files: Vec<SourceFile> = read_tree(dir)
        .into_iter()
        .filter(|f| f.path != "expected.txt")
        .collect();
    let (config, manifests): (Vec<_>, Vec<_>) =
        files.into_iter().partition(|f| f.path == "relsync.yaml");
    let mut all = Diagnostics::default();
    let mut failed = true;
    if !manifests.is_empty() {
        match desired::load(&manifests, "policies") {
            Ok(m) => {
                failed = false;
                all.0.extend(m.warnings.0);
            }
            Err(d) => all.0.extend(d.0),
        }
    }
    if let Some(cfg) = config.first() {
        match config::load(&cfg.path, &cfg.contents) {
            Ok(_) => failed = false,
            Err(d) => all.0.extend(d.0),
        }
    }
    all.sort();
    (all, failed)
}

#[test]
fn bad_corpus_reports_exact_diagnostics() {
    let root = crate_dir().join("tests/data/bad");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/data/bad exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 22, "corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let expected = std::fs::read_to_string(case.join("expected.txt"))
            .unwrap_or_else(|e| panic!("{name}: expected.txt: {e}"));
        let (diags, failed) = load_case(case);
        if !failed || !diags.has_errors() {
            failures.push(format!("{name}: the input was accepted:\n{diags}"));
            continue;
        }
        let actual = diags.to_string();
        if actual != expected {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Good inputs and warnings.

const STREAM: &str = "\
apiVersion: relsync.dev/v1alpha1
kind: ReleaseStream
metadata:
  name: app
spec:
  source: registry.example.com/src/app
  target: quay.example.com/app
  releases:
    - version: 1.0.0
      digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
    - version: 1.1.0
      digest: sha256:2222222222222222222222222222222222222222222222222222222222222222
      tags: [one-one]
    - version: 1.1.0+amd64
      digest: sha256:3333333333333333333333333333333333333333333333333333333333333333
";

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.to_string(),
        contents: text.as_bytes().to_vec(),
    }
}

#[test]
fn listed_and_tombstoned_is_a_warning_and_the_tombstone_wins() {
    let channel = "\
apiVersion: relsync.dev/v1alpha1
kind: ReleaseChannel
metadata:
  name: stable
spec:
  stream: app
  tags: [stable]
  versions:
    - 1.0.0
    - 1.1.0
  tombstones:
    - 1.1.0
";
    let m = desired::load(
        &[
            file("manifests/app.yaml", STREAM),
            file("manifests/stable.yaml", channel),
        ],
        "policies",
    )
    .unwrap_or_else(|d| panic!("should validate:\n{d}"));
    assert_eq!(
        m.warnings.to_string(),
        "manifests/stable.yaml:12:7: warning: version `1.1.0` is both listed (at manifests/stable.yaml:10:7) and tombstoned in channel `stable`; the tombstone wins\n"
    );
    assert!(m.warnings.iter().all(|w| w.severity == Severity::Warning));
    let published: Vec<&str> = m.channels["stable"]
        .published()
        .map(|v| v.value.as_str())
        .collect();
    assert_eq!(published, ["1.0.0"]);
}

#[test]
fn a_valid_set_loads_with_spans_defaults_and_merged_policies() {
    let channels = "\
apiVersion: relsync.dev/v1alpha1
kind: ReleaseChannel
metadata:
  name: next
spec:
  stream: app
  tags: [next]
  versions: [1.0.0, 1.1.0, 1.1.0+amd64]
---
# the second document of the same file
apiVersion: relsync.dev/v1alpha1
kind: ReleaseChannel
metadata:
  name: stable
spec:
  stream: app
  imageStream: {namespace: apps, name: app-release}
  feeder: {channel: next, delay: P3D}
  versions:
    - 1.0.0
";
    let p1 = "\
apiVersion: relsync.dev/v1alpha1
kind: Policy
metadata: {name: a}
spec:
  allowedSources: ['registry.example.com/src/*']
  maxDeletesPerSync: 9
  channelSubsets: [[stable, next]]
";
    let p2 = "\
apiVersion: relsync.dev/v1alpha1
kind: Policy
metadata: {name: b}
spec:
  allowedSources: ['registry.example.com/**']
  immutableTags: '^\\d+\\.\\d+\\.\\d+$'
  maxDeletesPerSync: 3
";
    let m = desired::load(
        &[
            file("manifests/app.yaml", STREAM),
            file("manifests/channels.yml", channels),
            file("policies/a.yaml", p1),
            file("policies/sub/b.yaml", p2),
        ],
        "policies",
    )
    .unwrap_or_else(|d| panic!("should validate:\n{d}"));
    assert!(m.warnings.is_empty(), "{}", m.warnings);
    let s = &m.streams["app"];
    assert_eq!(s.order, manifest::Order::Semver);
    assert_eq!(s.releases.len(), 3);
    assert_eq!(s.releases[1].tags[0].value, "one-one");
    assert_eq!(s.releases[2].version.value, "1.1.0+amd64");
    assert_eq!(
        s.releases[2].version.span.to_string(),
        "manifests/app.yaml:14:16"
    );
    assert_eq!(
        s.releases[2].digest.span.to_string(),
        "manifests/app.yaml:15:15"
    );
    let stable = &m.channels["stable"];
    assert_eq!(stable.name.span.to_string(), "manifests/channels.yml:14:9");
    assert_eq!(
        stable.versions[0].span.to_string(),
        "manifests/channels.yml:20:7"
    );
    let feeder = stable.feeder.as_ref().expect("feeder");
    assert_eq!(
        (feeder.channel.value.as_str(), feeder.delay_seconds),
        ("next", 3 * 86_400)
    );
    let is = stable.image_stream.as_ref().expect("imageStream");
    assert_eq!(
        (is.namespace.as_str(), is.name.as_str()),
        ("apps", "app-release")
    );
    assert!(m.channels["next"].feeder.is_none());
    let names: Vec<&str> = m.policy.names.iter().map(|n| n.value.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(m.policy.allowed_sources.len(), 2);
    assert_eq!(
        m.policy.max_deletes_per_sync.as_ref().map(|m| m.value),
        Some(3)
    );
    assert_eq!(m.policy.channel_subsets.len(), 1);
    assert!(m.policy.is_immutable("1.1.0"));
    assert!(!m.policy.is_immutable("next"));
}

#[test]
fn the_bundled_example_validates() {
    let root = crate_dir();
    let mut files = Vec::new();
    for dir in ["manifests", "policies"] {
        for mut f in read_tree(&root.join(dir)) {
            f.path = format!("{dir}/{}", f.path);
            files.push(f);
        }
    }
    assert!(
        files.iter().any(|f| f.path.starts_with("policies/")),
        "the example has a policy"
    );
    let m = desired::load(&files, "policies").unwrap_or_else(|d| panic!("{d}"));
    assert!(m.streams.contains_key("4-scos"));
    assert!(m.channels.contains_key("4-scos-next"));
    assert!(m.channels.contains_key("4-scos-stable"));
    assert!(!m.policy.names.is_empty());
    let config = std::fs::read(root.join("relsync.yaml")).expect("relsync.yaml");
    let c = config::load("relsync.yaml", &config).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(c.git.path, "manifests");
    assert_eq!(c.git.policies, "policies");
}

#[test]
fn an_empty_set_and_empty_files_are_valid() {
    let m = desired::load(
        &[
            file("manifests/empty.yaml", ""),
            file(
                "manifests/comments.yaml",
                "# nothing here\n---\n# nor here\n",
            ),
        ],
        "policies",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    assert!(m.streams.is_empty() && m.channels.is_empty());
    assert!(m.policy.names.is_empty());
}

// ---------------------------------------------------------------------------------------------
// relsync.yaml

#[test]
fn config_good_with_defaults() {
    let text = "\
apiVersion: relsync.dev/v1alpha1
kind: Config
spec:
  git: {repo: ../state, path: ./deploy/manifests/, policies: rules}
  registries:
    - host: 127.0.0.1:5000
      insecure: true
    - host: quay.io
      caFile: /etc/pki/ca.pem
      usernameEnv: QUAY_USER
      passwordEnv: QUAY_TOKEN
      mapTo: oci:/srv/mirror/quay
  cluster: {enabled: true}
  sync:
    concurrency: 3
    selfHeal: false
    interval: 1h30m
  webhook: {secretEnv: HOOK_SECRET}
";
    let c = config::load("conf/relsync.yaml", text.as_bytes()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(c.git.repo.value, "../state");
    assert_eq!(c.git.repo.span.to_string(), "conf/relsync.yaml:4:15");
    assert_eq!(c.git.revision, "HEAD");
    assert_eq!(c.git.path, "deploy/manifests");
    assert_eq!(c.git.policies, "rules");
    assert_eq!(c.registries.len(), 2);
    assert!(c.registries[0].insecure);
    let quay = c.registry("quay.io").expect("quay.io");
    assert!(!quay.insecure);
    assert_eq!(quay.ca_file.as_deref(), Some("/etc/pki/ca.pem"));
    assert_eq!(quay.username_env.as_deref(), Some("QUAY_USER"));
    assert_eq!(quay.password_env.as_deref(), Some("QUAY_TOKEN"));
    assert_eq!(
        quay.map_to.as_ref().map(|m| m.value.as_str()),
        Some("oci:/srv/mirror/quay")
    );
    assert!(c.cluster.enabled);
    assert_eq!(c.sync.concurrency, 3);
    assert!(!c.sync.prune);
    assert!(c.sync.auto);
    assert!(!c.sync.self_heal);
    assert_eq!(c.sync.interval_seconds, 5400);
    assert_eq!(c.webhook.secret_env.as_deref(), Some("HOOK_SECRET"));

    let minimal = "apiVersion: relsync.dev/v1alpha1\nkind: Config\n";
    let c = config::load("relsync.yaml", minimal.as_bytes()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(c.git.repo.value, ".");
    assert_eq!(c.git.path, "manifests");
    assert_eq!(c.sync.concurrency, 8);
    assert_eq!(c.sync.interval_seconds, 180);
    assert!(c.sync.auto && c.sync.self_heal && !c.sync.prune);
    assert!(c.registries.is_empty() && !c.cluster.enabled);
}

fn config_errors(text: &str) -> String {
    match config::load("relsync.yaml", text.as_bytes()) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn config_bad() {
    assert_eq!(
        config_errors(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  sync:\n    intervall: 3m\n"
        ),
        "relsync.yaml:5:5: unknown field `intervall` in `spec.sync` (hint: did you mean `interval`?)\n"
    );
    assert_eq!(
        config_errors(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  cluster: {enabled: yes}\n"
        ),
        "relsync.yaml:4:22: `spec.cluster.enabled` must be true or false, found `yes`\n"
    );
    assert_eq!(
        config_errors(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  versions: [1.0.0]\n"
        ),
        "relsync.yaml:4:3: unknown field `versions` in Config spec\n"
    );
    assert_eq!(
        config_errors(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {name: x}\nspec: {}\n"
        ),
        "relsync.yaml:2:7: expected `kind: Config` in relsync.yaml, found a manifest kind\n"
    );
    assert_eq!(
        config_errors(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\n---\napiVersion: relsync.dev/v1alpha1\nkind: Config\n"
        ),
        "relsync.yaml:4:1: a config file holds one document (found a second one)\n"
    );
    assert_eq!(
        config_errors("# only a comment\n"),
        "relsync.yaml: no Config document found (expected `kind: Config`)\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Budgets beyond the corpus: an alias bomb that expands scalars, and the file size cap.

#[test]
fn scalar_alias_amplification_fails_fast() {
    let long = "x".repeat(64 * 1024);
    let mut text = format!(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: c}}\nspec:\n  stream: s\n  versions:\n    - &v {long}\n"
    );
    for _ in 0..300 {
        text.push_str("    - *v\n");
    }
    let started = std::time::Instant::now();
    let err = desired::load(&[file("manifests/bomb.yaml", &text)], "policies")
        .expect_err("an alias bomb is refused");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let msg = err.to_string();
    assert!(
        msg.starts_with("manifests/bomb.yaml:")
            && msg.contains(
                "document expands to more than 16 MiB of text (counting alias expansions)"
            ),
        "{msg}"
    );
    assert_eq!(err.len(), 1, "{msg}");
}

#[test]
fn files_over_16_mib_are_refused_before_parsing() {
    let big = vec![b'#'; 16 * 1024 * 1024 + 1];
    let err = desired::load(
        &[SourceFile {
            path: "manifests/big.yaml".into(),
            contents: big,
        }],
        "policies",
    )
    .expect_err("too big");
    assert_eq!(
        err.to_string(),
        "manifests/big.yaml: file is 16777217 bytes, larger than the 16 MiB limit; refusing to parse it\n"
    );
}

/// Regression (found by the scaling checks of RELIABILITY.md): a channel with `n`
/// versions and `n` tombstones looked every version up in the tombstone list (O(n²): a
/// 10 MB channel took 19 s to validate). How load and derive scale is measured by
/// `cargo bench --bench manifest_scaling`, not timed here; this checks that such channels
/// load and derive right.
#[test]
fn large_channels_with_as_many_tombstones_load_and_derive() {
    let n = 2_000;
    let files = crate::large_channels::large_channels(n);
    let m = desired::load(&files, "policies").expect("large channels are valid");
    let d = desired::derive(&m).expect("large channels derive");
    let repo = &d.repos["q.example/a"];
    assert_eq!(repo.tags.len(), n + 2, "n versions and two floating tags");
    assert_eq!(
        repo.absent.len(),
        n,
        "every tombstone is an explicit delete"
    );
    assert_eq!(repo.tags["a"].version, format!("1.{}.0", n - 1));
}

// ---------------------------------------------------------------------------------------------
// Real data: cincinnati-graph-data's 76 channel files as one stream and 76 channels.

pub(crate) struct RealChannel {
    pub(crate) name: String,
    versions: Vec<String>,
    tombstones: Vec<String>,
    feeder: Option<(String, Option<String>)>,
}

/// Reads a cincinnati channel file: `name`, `versions`, `tombstones`, `feeder {name, delay,
/// filter}`. The files are simple block YAML; read them with serde-saphyr into a loose shape.
fn read_real_channel(path: &Path) -> RealChannel {
    /// Also carries `filter` and `errata`, which relsync has no use for.
    #[derive(serde::Deserialize)]
    struct Feeder {
        name: String,
        delay: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        name: String,
        versions: Vec<String>,
        #[serde(default)]
        tombstones: Vec<String>,
        feeder: Option<Feeder>,
    }
    let text = std::fs::read_to_string(path).expect("read channel file");
    let f: File =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    RealChannel {
        name: f.name,
        versions: f.versions,
        tombstones: f.tombstones,
        feeder: f.feeder.map(|fd| (fd.name, fd.delay)),
    }
}

fn real_data_dir() -> PathBuf {
    crate_dir().join("tests/data/cincinnati-graph-data/channels")
}

fn synthetic_digest(version: &str) -> Digest {
    Digest::sha256_of(version.as_bytes())
}

/// The real channels as manifests: one ReleaseStream (`ocp`) with every distinct version, and
/// one ReleaseChannel per file, floating tag = the channel name.
pub(crate) fn real_manifests() -> (Vec<SourceFile>, Vec<RealChannel>, BTreeSet<String>) {
    let dir = real_data_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("real data at {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    let channels: Vec<RealChannel> = paths.iter().map(|p| read_real_channel(p)).collect();
    let all: BTreeSet<String> = channels
        .iter()
        .flat_map(|c| c.versions.iter().chain(&c.tombstones).cloned())
        .collect();
    let names: BTreeSet<&str> = channels.iter().map(|c| c.name.as_str()).collect();

    let mut stream = String::from(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: ocp\nspec:\n  source: quay.io/openshift-release-dev/ocp-release\n  target: registry.example.com/ocp/release\n  order: semver\n  releases:\n",
    );
    for v in &all {
        stream.push_str(&format!(
            "    - version: {v}\n      digest: {}\n",
            synthetic_digest(v)
        ));
    }
    let mut files = vec![SourceFile {
        path: "manifests/streams/ocp.yaml".into(),
        contents: stream.into_bytes(),
    }];
    for c in &channels {
        let mut y = format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: {0}\nspec:\n  stream: ocp\n  tags: [{0}]\n",
            c.name
        );
        if let Some((feeder, delay)) = &c.feeder {
            // cincinnati names either a channel or a channel family (`fast` = fast-<minor>).
            let minor = c.name.rsplit_once('-').map(|(_, m)| m).unwrap_or("");
            let candidate = format!("{feeder}-{minor}");
            let target = if names.contains(feeder.as_str()) {
                Some(feeder.clone())
            } else if names.contains(candidate.as_str()) && candidate != c.name {
                Some(candidate)
            } else {
                None
            };
            if let Some(t) = target {
                y.push_str(&format!("  feeder:\n    channel: {t}\n"));
                if let Some(d) = delay {
                    y.push_str(&format!("    delay: {d}\n"));
                }
            }
        }
        y.push_str("  versions:\n");
        for v in &c.versions {
            y.push_str(&format!("    - {v}\n"));
        }
        if !c.tombstones.is_empty() {
            y.push_str("  tombstones:\n");
            for v in &c.tombstones {
                y.push_str(&format!("    - {v}\n"));
            }
        }
        files.push(SourceFile {
            path: format!("manifests/channels/{}.yaml", c.name),
            contents: y.into_bytes(),
        });
    }
    (files, channels, all)
}

#[test]
fn real_cincinnati_channels_validate_and_newest_versions_are_right() {
    let (files, channels, all) = real_manifests();
    assert_eq!(channels.len(), 76);
    assert_eq!(all.len(), 1_384, "README: 1,384 distinct versions");
    let plus: Vec<&String> = all.iter().filter(|v| v.contains('+')).collect();
    assert!(
        plus.iter()
            .all(|v| all.contains(v.split('+').next().unwrap_or(""))),
        "every +build version has its plain twin: {plus:?}"
    );
    assert_eq!(plus.len(), 14, "README/issue: 14 such pairs");

    let m = desired::load(&files, "policies").unwrap_or_else(|d| panic!("real data:\n{d}"));
    assert_eq!(m.streams["ocp"].releases.len(), 1_384);
    assert_eq!(m.channels.len(), 76);
    let with_feeder = m.channels.values().filter(|c| c.feeder.is_some()).count();
    assert!(with_feeder >= 10, "feeders mapped: {with_feeder}");
    // stable-4.3 is fed by fast-4.3 after PT48H; eus-4.14 by the `stable` family, i.e.
    // stable-4.14, after PT0H; fast-4.14 names its own family, which maps to no channel.
    let feeder = |c: &str| {
        m.channels[c]
            .feeder
            .as_ref()
            .map(|f| (f.channel.value.clone(), f.delay_seconds))
    };
    assert_eq!(
        feeder("stable-4.3"),
        Some(("fast-4.3".to_string(), 48 * 3600))
    );
    assert_eq!(feeder("eus-4.14"), Some(("stable-4.14".to_string(), 0)));
    assert_eq!(feeder("fast-4.3"), Some(("candidate-4.3".to_string(), 0)));
    assert_eq!(feeder("fast-4.14"), None);
    // Warnings: versions both listed and tombstoned, if any, are warnings only.
    assert!(m.warnings.iter().all(|w| w.severity == Severity::Warning));

    // Expected newest per channel, computed independently with semver precedence.
    let mut expected: BTreeMap<String, semver::Version> = BTreeMap::new();
    for c in &channels {
        let newest = c
            .versions
            .iter()
            .filter(|v| !c.tombstones.contains(v))
            .map(|v| semver::Version::parse(v).expect("real versions are semver"))
            .max_by(|a, b| a.cmp_precedence(b));
        if let Some(n) = newest {
            expected.insert(c.name.clone(), n);
        }
    }
    // A few read off the files by hand.
    assert_eq!(expected["stable-4.14"].to_string(), "4.14.58");
    assert_eq!(expected["candidate-4.3"].to_string(), "4.3.40");

    let desired = desired::derive(&m).unwrap_or_else(|d| panic!("derive:\n{d}"));
    let repo = &desired.repos["registry.example.com/ocp/release"];
    for (name, newest) in &expected {
        let tag = repo
            .tags
            .get(name)
            .unwrap_or_else(|| panic!("floating tag {name} is desired"));
        let got = semver::Version::parse(&tag.version).expect("semver");
        assert_eq!(
            got.cmp_precedence(newest),
            std::cmp::Ordering::Equal,
            "{name}: newest {} but derived {}",
            newest,
            tag.version
        );
        assert_eq!(tag.digest, synthetic_digest(&tag.version));
    }
    assert_eq!(repo.tags["stable-4.14"].version, "4.14.58");
    assert_eq!(repo.tags["candidate-4.3"].version, "4.3.40");
}

#[test]
fn odd_yaml_is_reported_cleanly() {
    let errors = |text: &str| match desired::load(&[file("manifests/x.yaml", text)], "policies") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(d) => d.to_string(),
    };
    assert_eq!(
        errors("hello\n"),
        "manifests/x.yaml:1:1: a document must be a mapping with apiVersion, kind, metadata and spec, found `hello`\n"
    );
    assert_eq!(
        errors("- a\n- b\n"),
        "manifests/x.yaml:1:1: a document must be a mapping with apiVersion, kind, metadata and spec, found a list\n"
    );
    // CRLF line ends and a byte-order mark do not shift lines or columns.
    assert_eq!(
        errors(
            &STREAM
                .replace('\n', "\r\n")
                .replace("version: 1.1.0\r", "version: v1\r")
        ),
        "manifests/x.yaml:11:16: version `v1` of stream `app` is not semver: unexpected character 'v' while parsing major version number (hint: versions that are not semver need `order: listed` in the stream)\n"
    );
    assert_eq!(
        errors(&format!("\u{feff}{}", STREAM.replace("target:", "targt:"))),
        "manifests/x.yaml:7:3: unknown field `targt` in ReleaseStream spec (hint: did you mean `target`?)\n"
    );
    assert_eq!(
        errors(&STREAM.replace("source: ", "source: !foo ")),
        "manifests/x.yaml:6:16: unsupported yaml tag `!foo`\n"
    );
    assert_eq!(
        errors("apiVersion: relsync.dev/v1alpha1\napiVersion: relsync.dev/v1alpha1\n"),
        "manifests/x.yaml:2:1: duplicate field `apiVersion`\n"
    );
    assert_eq!(
        errors("apiVersion: relsync.dev/v1alpha1\n? [a]\n: b\n"),
        "manifests/x.yaml:2:3: keys must be field names, found a list as a key\n"
    );
    // Found by the scan and again by serde-saphyr: reported once.
    assert_eq!(
        errors("apiVersion: *nope\n"),
        "manifests/x.yaml:1:13: yaml syntax error: while parsing node, found unknown anchor\n"
    );
    assert_eq!(
        errors(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: &m {name: x}\nspec:\n  stream: app\n  versions: *m\n"
        ),
        "manifests/x.yaml:6:13: `spec.versions` must be a list, found an alias\n"
    );
    // Aliases that fit the schema are fine; an explicit `...` end and empty documents too.
    let ok = format!(
        "{STREAM}...\n# trailing\n---\n---\napiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: &n next}}\nspec:\n  stream: app\n  tags: [*n]\n  versions: [1.0.0]\n"
    );
    let m = desired::load(&[file("manifests/x.yaml", &ok)], "policies")
        .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(m.channels["next"].tags[0].value, "next");
    assert_eq!(
        m.channels["next"].versions[0].span.to_string(),
        "manifests/x.yaml:26:14"
    );
}
