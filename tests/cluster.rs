//! ImageStreams as a second target: `plan`, `sync` and `drift` with the cluster on, against
//! the real kube-apiserver of tests/apiserver.rs (reached through its front, which logs
//! requests, injects the faults a real server does not produce on demand and plays
//! OpenShift's image import), with the bundled example's `oci:` layouts as registries. The
//! example publishes channel `4-scos-stable` into ImageStream `origin/release-scos`; each
//! test renames namespace `origin` to its own (`<prefix>-origin`) on the shared server.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::apiserver::{ImportMode, Resource, TestCluster, Write};
use crate::util::{Repo, Run};

const IS: &str = "release-scos";
const REPO: &str = "quay.io/okd/scos-release";
const V414: &str = "4.14.0-0.okd-scos-2023-10-11-084613";
const V415: &str = "4.15.0-0.okd-scos-2024-01-18-223523";
const D414: &str = "sha256:d64a2256a212759c01615fd1a2c1e8426e2417e8ef1951f8f841393935423a83";
const D415: &str = "sha256:ce5c67d67537572f0455aa30b5cc3bc87b938d9e10c70c9e010c24f448c27e9d";
const D416: &str = "sha256:5478f136ec9c7e80e30c93c0bb5ed506286f3c168dda42569cb2dde79f3305e8";
const STABLE: &str = "manifests/channels/4-scos-stable.yaml";

/// The example with `cluster.enabled: true`, its ImageStream namespace renamed to this
/// test's, and a kubeconfig for the front of the real server.
pub struct ClusterRepo {
    pub repo: Repo,
    pub api: TestCluster,
    /// The ImageStream's namespace (`<prefix>-origin`).
    pub ns: String,
    /// The kubeconfig context's namespace, where the state ConfigMap lives.
    pub home: String,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl ClusterRepo {
    pub fn new() -> ClusterRepo {
        let c = ClusterRepo::without_namespaces();
        c.api.add_namespace(&c.ns);
        c.api.add_namespace(&c.home);
        c
    }

    /// As [`ClusterRepo::new`], with neither namespace created.
    pub fn without_namespaces() -> ClusterRepo {
        let api = TestCluster::new();
        let (ns, home) = (api.ns("origin"), api.ns("relsync"));
        let repo = Repo::example();
        let config = repo.read("relsync.yaml");
        assert!(config.contains("cluster: {enabled: false}"));
        repo.write(
            "relsync.yaml",
            &config.replace("cluster: {enabled: false}", "cluster: {enabled: true}"),
        );
        let stable = repo.read(STABLE);
        assert!(stable.contains("    namespace: origin\n"));
        repo.write(
            STABLE,
            &stable.replace("    namespace: origin\n", &format!("    namespace: {ns}\n")),
        );
        repo.commit("cluster on");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api.write_kubeconfig(dir.path(), &home);
        ClusterRepo {
            repo,
            api,
            ns,
            home,
            kubeconfig,
            _dir: dir,
        }
    }

    /// `imagestream:<ns>/release-scos`.
    pub fn target(&self) -> String {
        format!("imagestream:{}/{IS}", self.ns)
    }

    pub fn relsync(&self, args: &[&str]) -> Run {
        self.relsync_env(args, &[])
    }

    pub fn relsync_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let kubeconfig = self.kubeconfig.to_str().unwrap();
        let mut all = vec![("KUBECONFIG", kubeconfig)];
        all.extend_from_slice(env);
        self.repo.relsync_env(args, &all)
    }

    fn image_stream(&self) -> Value {
        self.api
            .get(Resource::ImageStreams, &self.ns, IS)
            .expect("the ImageStream exists")
    }

    /// Spec tag name → `from.name`.
    fn spec_tags(&self) -> Vec<(String, String)> {
        self.image_stream()["spec"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_string(),
                    t["from"]["name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn applies(&self) -> usize {
        self.api
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count()
    }

    /// Withdraws 4.15 (the newest) from the stable channel, committed.
    fn withdraw_415_from_stable(&self) {
        let text = self.repo.read(STABLE);
        let edited = text.replace(&format!("    - {V415}\n"), "");
        assert_ne!(text, edited);
        self.repo.write(STABLE, &edited);
        self.repo.commit("stable: withdraw 4.15");
    }

    /// The drift items of the ImageStream, tag → (state, message).
    fn is_drift(&self, run: &Run) -> Vec<(String, String)> {
        let target = self.target();
        run.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["target"] == target.as_str())
            .map(|i| {
                (
                    i["tag"].as_str().unwrap().to_string(),
                    i["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn is_actions(&self, run: &Run) -> Vec<(String, String)> {
        let target = self.target();
        run.json()["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["target"] == target.as_str())
            .map(|a| {
                (
                    a["action"].as_str().unwrap().to_string(),
                    a["tag"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn pull(digest: &str) -> String {
    format!("{REPO}@{digest}")
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn sync_creates_the_imagestream_with_every_tag_and_a_second_sync_applies_nothing() {
    let c = ClusterRepo::new();
    let plan = c.relsync(&["plan", "-o", "json"]);
    plan.expect_code(2);
    assert_eq!(
        c.is_actions(&plan),
        pairs(&[("tag", "4-scos-stable"), ("tag", V414), ("tag", V415)])
    );
    // ImageStream actions come last.
    let targets: Vec<String> = plan.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["target"].as_str().unwrap().to_string())
        .collect();
    let first_is = targets.iter().position(|t| t == &c.target()).unwrap();
    assert!(
        targets[first_is..].iter().all(|t| t == &c.target()),
        "{targets:?}"
    );

    c.relsync(&["sync"]).expect_code(0);
    let is = c.image_stream();
    let mut tags = c.spec_tags();
    tags.sort();
    assert_eq!(
        tags,
        pairs(&[
            ("4-scos-stable", &pull(D415)),
            (V414, &pull(D414)),
            (V415, &pull(D415)),
        ])
    );
    for t in is["spec"]["tags"].as_array().unwrap() {
        assert_eq!(t["from"]["kind"], "DockerImage");
        assert_eq!(t["importPolicy"]["importMode"], "PreserveOriginal");
        assert_eq!(t["referencePolicy"]["type"], "Source");
    }
    // The import's status writes have their own manager (as OpenShift's controller does),
    // on the status subresource: the object itself is relsync's alone.
    let managers: Vec<(&str, &str)> = is["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["subresource"] != "status")
        .map(|m| {
            (
                m["manager"].as_str().unwrap(),
                m["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(managers, vec![("relsync", "Apply")]);
    let applies: Vec<_> = c
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(applies.len(), 1, "one apply per ImageStream");
    assert_eq!(
        applies[0].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(applies[0].param("fieldManager").as_deref(), Some("relsync"));
    assert_eq!(applies[0].param("force").as_deref(), Some("true"));

    let drift = c.relsync(&["drift", "-o", "json"]);
    drift.expect_code(0);
    let mut states = c.is_drift(&drift);
    states.sort();
    assert_eq!(
        states,
        pairs(&[("4-scos-stable", "ok"), (V414, "ok"), (V415, "ok")])
    );

    let before = c.applies();
    c.relsync(&["plan"]).expect_code(0);
    let again = c.relsync(&["sync"]);
    again.expect_code(0);
    assert_eq!(c.applies(), before, "a no-op sync applies nothing");
}

#[test]
fn a_tag_not_imported_yet_is_importing_not_drift() {
    let c = ClusterRepo::new();
    c.api.set_import_mode(ImportMode::Manual);
    c.relsync(&["sync"]).expect_code(0);
    let drift = c.relsync(&["drift", "-o", "json"]);
    drift.expect_code(0);
    assert!(
        c.is_drift(&drift).iter().all(|(_, s)| s == "importing"),
        "{:?}",
        c.is_drift(&drift)
    );
    assert_eq!(drift.json()["inSync"], true);
    c.api.import_now();
    let drift = c.relsync(&["drift", "-o", "json"]);
    drift.expect_code(0);
    assert!(c.is_drift(&drift).iter().all(|(_, s)| s == "ok"));
}

#[test]
fn a_failed_import_is_drift_with_the_conditions_message() {
    let c = ClusterRepo::new();
    let message = "Internal error occurred: quay.io/okd/scos-release: manifest unknown";
    c.api.fail_import(&c.ns, IS, "4-scos-stable", message);
    c.relsync(&["sync"]).expect_code(0);
    let drift = c.relsync(&["drift", "-o", "json"]);
    drift.expect_code(2);
    let failed: Vec<_> = drift.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] == "import-failed")
        .cloned()
        .collect();
    assert_eq!(failed.len(), 1, "{}", drift.stdout());
    assert_eq!(failed[0]["tag"], "4-scos-stable");
    let text = c.relsync(&["drift"]);
    text.expect_code(2);
    assert!(text.stdout().contains(message), "{}", text.stdout());
}

#[test]
fn a_moved_spec_tag_is_drift_and_restored_while_another_managers_tag_is_untouched() {
    let c = ClusterRepo::new();
    c.relsync(&["sync"]).expect_code(0);
    // Someone points the floating tag at 4.14 and adds a tag of their own.
    c.api
        .apply_as(
            Resource::ImageStreams,
            &c.ns,
            "oc",
            json!({
                "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                "metadata": {"name": IS, "namespace": c.ns},
                "spec": {"tags": [
                    {"name": "4-scos-stable", "from": {"kind": "DockerImage", "name": pull(D414)}},
                    {"name": "custom", "from": {"kind": "DockerImage", "name": pull(D416)}}
                ]}
            }),
            true,
        )
        .expect("oc's apply");
    let drift = c.relsync(&["drift", "-o", "json"]);
    drift.expect_code(2);
    let states = c.is_drift(&drift);
    assert!(states.contains(&("4-scos-stable".into(), "moved".into())));
    assert!(
        !states.iter().any(|(t, _)| t == "custom"),
        "another manager's tag is not relsync's extra: {states:?}"
    );
    let plan = c.relsync(&["plan", "-o", "json"]);
    assert_eq!(c.is_actions(&plan), pairs(&[("retag", "4-scos-stable")]));

    c.relsync(&["sync"]).expect_code(0);
    let tags = c.spec_tags();
    assert!(
        tags.contains(&("4-scos-stable".into(), pull(D415))),
        "{tags:?}"
    );
    assert!(tags.contains(&("custom".into(), pull(D416))), "{tags:?}");
    c.relsync(&["drift"]).expect_code(0);
}

#[test]
fn withdrawing_the_newest_version_rolls_back_and_drops_relsyncs_tag() {
    let c = ClusterRepo::new();
    c.relsync(&["sync"]).expect_code(0);
    c.withdraw_415_from_stable();
    let plan = c.relsync(&["plan", "-o", "json"]);
    plan.expect_code(2);
    assert_eq!(
        c.is_actions(&plan),
        pairs(&[("rollback", "4-scos-stable"), ("delete", V415)])
    );
    c.relsync(&["sync"]).expect_code(0);
    let mut tags = c.spec_tags();
    tags.sort();
    assert_eq!(
        tags,
        pairs(&[("4-scos-stable", &pull(D414)), (V414, &pull(D414))])
    );
    c.relsync(&["drift"]).expect_code(0);
}

#[test]
fn a_tag_changed_between_plan_and_apply_is_a_conflict_and_the_rest_is_applied() {
    let c = ClusterRepo::new();
    c.relsync(&["sync"]).expect_code(0);
    c.withdraw_415_from_stable();
    // Just before relsync's apply, someone moves the floating tag to 4.16: the apply,
    // carrying the plan's resourceVersion, gets 409.
    let body = json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": IS, "namespace": c.ns},
        "spec": {"tags": [
            {"name": "4-scos-stable", "from": {"kind": "DockerImage", "name": pull(D416)}}
        ]}
    });
    c.api
        .on_next_apply(Write::apply(Resource::ImageStreams, &c.ns, "someone", body));
    let sync = c.relsync(&["sync"]);
    sync.expect_code(1);
    assert!(
        sync.stderr()
            .contains(&format!("conflict: {} tag 4-scos-stable", c.target())),
        "{}",
        sync.stderr()
    );
    let tags = c.spec_tags();
    assert!(
        tags.contains(&("4-scos-stable".into(), pull(D416))),
        "someone's change is kept: {tags:?}"
    );
    assert!(
        !tags.iter().any(|(t, _)| t == V415),
        "the rest was applied: {tags:?}"
    );
    let patches: Vec<_> = c
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 3, "first sync, the 409, the second apply");
}

#[test]
fn transient_api_errors_are_retried() {
    let c = ClusterRepo::new();
    c.api.fail_next(3, 500);
    c.relsync(&["sync"]).expect_code(0);
    assert_eq!(c.spec_tags().len(), 3);
    c.api.fail_next(2, 429);
    c.relsync(&["drift"]).expect_code(0);
}

#[test]
fn a_missing_namespace_is_a_clear_error_and_the_registry_is_still_synced() {
    let c = ClusterRepo::without_namespaces();
    let sync = c.relsync(&["sync"]);
    sync.expect_code(1);
    assert!(
        sync.stderr()
            .contains(&format!("namespace {} does not exist", c.ns)),
        "{}",
        sync.stderr()
    );
    assert!(c.api.get(Resource::ImageStreams, &c.ns, IS).is_none());
    // The registry part converged: only the ImageStream is left to do.
    let plan = c.relsync(&["plan", "-o", "json"]);
    let actions = plan.json()["actions"].as_array().unwrap().clone();
    assert!(!actions.is_empty());
    assert!(
        actions.iter().all(|a| a["target"] == c.target().as_str()),
        "{actions:?}"
    );
}

#[test]
fn cluster_disabled_makes_no_cluster_call() {
    let c = ClusterRepo::new();
    let (api, repo) = (&c.api, Repo::example());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path(), &c.home);
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let plan = repo.relsync_env(&["plan", "-o", "json"], &env);
    plan.expect_code(2);
    assert!(c.is_actions(&plan).is_empty());
    repo.relsync_env(&["sync"], &env).expect_code(0);
    repo.relsync_env(&["drift"], &env).expect_code(0);
    assert!(api.requests().is_empty(), "{:?}", api.requests());
}

#[test]
fn registry_content_not_in_place_keeps_the_imagestream_tag_off_it() {
    let c = ClusterRepo::new();
    // 4.15's index is not in the target, and corrupt in the source: its mirror fails
    // its digest check.
    let blob = |layout: &str| {
        c.repo
            .path()
            .join("example")
            .join(layout)
            .join("blobs/sha256")
            .join(D415.trim_start_matches("sha256:"))
    };
    std::fs::remove_file(blob("quay.io/okd/scos-release")).unwrap();
    let source = blob("registry.ci.openshift.org/origin/release-scos");
    let mut bytes = std::fs::read(&source).unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&source, bytes).unwrap();
    c.repo
        .commit("4.15 missing in the target, corrupt in the source");
    let sync = c.relsync(&["sync"]);
    sync.expect_code(1);
    assert!(
        sync.stderr().contains("registry content is not in place"),
        "{}",
        sync.stderr()
    );
    let tags = c.spec_tags();
    assert_eq!(
        tags,
        pairs(&[(V414, &pull(D414))]),
        "only 4.14 is published"
    );
}

#[test]
fn the_kubeconfig_token_never_appears_in_output() {
    let c = ClusterRepo::new();
    let token = c.api.token();
    for args in [
        vec!["-vvv", "plan"],
        vec!["-vvv", "sync", "--dry-run"],
        vec!["-vvv", "sync"],
        vec!["-vvv", "drift", "-o", "json"],
    ] {
        // Every crate at trace level, kube and hyper included.
        let run = c.relsync_env(&args, &[("RUST_LOG", "trace")]);
        assert!(run.code() <= 2, "{args:?}: {}", run.stderr());
        assert!(
            !run.stdout().contains(&token) && !run.stderr().contains(&token),
            "{args:?} printed the token"
        );
    }
}

#[test]
fn other_api_errors_name_the_object_and_carry_the_apis_message_without_retry() {
    let c = ClusterRepo::new();
    // The fault is for the ImageStream read: without a payload stream, the plan reads no
    // payload cache ConfigMap before it.
    let stream = c.repo.read("manifests/streams/4-scos.yaml");
    let payload = stream
        .find("  payload:")
        .expect("the example is a payload stream");
    c.repo
        .write("manifests/streams/4-scos.yaml", &stream[..payload]);
    c.repo.commit("no payload");
    c.api.fail_next(1, 403);
    let plan = c.relsync(&["plan"]);
    plan.expect_code(1);
    assert!(
        plan.stderr()
            .contains(&format!("{}: read: injected fault 403", c.target())),
        "{}",
        plan.stderr()
    );
    // Not retried: the next request would have succeeded.
    c.relsync(&["plan"]).expect_code(2);
}

#[test]
fn history_lives_in_the_state_configmap_and_keeps_the_newest_entries_within_1_mib() {
    let c = ClusterRepo::new();
    // A long history already there, entries of about 1 KiB filling the state ConfigMap to
    // 100 bytes short of the 1 MiB a real API server accepts (it refuses a bigger one), so
    // that relsync's new entry only fits if it drops old ones.
    let entry = |n: usize, subject: usize| {
        json!({"revision": format!("{n:040}"), "time": "2026-01-01T00:00:00Z",
               "author": "Old <old@example.org>", "subject": "x".repeat(subject),
               "kind": "sync", "outcome": "succeeded", "summary": "synced"})
    };
    let state =
        |old: &[Value]| serde_json::to_string(&json!({"history": old, "holds": []})).unwrap();
    let mut old: Vec<Value> = Vec::new();
    while state(&old).len() < 1024 * 1024 - 2000 {
        old.push(entry(old.len(), 1000));
    }
    let last = old.len() - 1;
    let pad = 1024 * 1024 - 100 - state(&old).len();
    old[last] = entry(last, 1000 + pad);
    let seeded = state(&old);
    assert_eq!(seeded.len(), 1024 * 1024 - 100);
    c.api.insert(
        Resource::ConfigMaps,
        &c.home,
        "relsync",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "relsync-state", "namespace": c.home},
               "data": {"state.json": seeded}}),
    );
    c.relsync(&["sync"]).expect_code(0);
    let head = c.repo.git(&["rev-parse", "HEAD"]);
    let cm = c
        .api
        .get(Resource::ConfigMaps, &c.home, "relsync-state")
        .expect("the state ConfigMap");
    let text = cm["data"]["state.json"].as_str().unwrap();
    assert!(text.len() <= 1024 * 1024, "{} bytes", text.len());
    let state: Value = serde_json::from_str(text).unwrap();
    let entries = state["history"].as_array().unwrap();
    assert_eq!(entries[0]["revision"], head.as_str(), "newest first");
    assert_eq!(
        entries[1]["revision"],
        format!("{:040}", 0),
        "then the newest old one"
    );
    assert!(entries.len() < old.len() + 1, "old entries were dropped");
    assert!(
        !c.repo.path().join(".relsync").exists(),
        "no state file with the cluster on"
    );

    let history = c.relsync(&["history", "-o", "json"]);
    history.expect_code(0);
    assert_eq!(history.json()["history"][0]["revision"], head.as_str());
}

#[test]
fn two_channels_sharing_one_imagestream_are_applied_together_once() {
    let c = ClusterRepo::new();
    let next = "manifests/channels/4-scos-next.yaml";
    let text = c.repo.read(next);
    let edited = text.replace(
        "  tags: [4-scos-next]\n",
        &format!(
            "  tags: [4-scos-next]\n  imageStream:\n    namespace: {}\n    name: release-scos\n",
            c.ns
        ),
    );
    assert_ne!(text, edited);
    c.repo.write(next, &edited);
    c.repo.commit("next publishes into the same ImageStream");
    c.relsync(&["sync"]).expect_code(0);
    assert_eq!(c.applies(), 1, "one apply for both channels");
    let names: Vec<String> = c.spec_tags().into_iter().map(|(t, _)| t).collect();
    for tag in [
        "4-scos-next",
        "4-scos-stable",
        V414,
        V415,
        "4.16.0-0.okd-scos-2024-09-24-151747",
    ] {
        assert!(names.iter().any(|n| n == tag), "{tag} missing: {names:?}");
    }
    let tags = c.spec_tags();
    assert!(
        tags.contains(&("4-scos-next".into(), pull(D416))),
        "{tags:?}"
    );
}

#[test]
fn sync_of_one_channel_never_points_a_shared_imagestream_at_content_not_mirrored() {
    let c = ClusterRepo::new();
    let next = "manifests/channels/4-scos-next.yaml";
    let text = c.repo.read(next);
    c.repo.write(
        next,
        &text.replace(
            "  tags: [4-scos-next]\n",
            &format!("  tags: [4-scos-next]\n  imageStream:\n    namespace: {}\n    name: release-scos\n", c.ns),
        ),
    );
    c.repo.commit("next publishes into the same ImageStream");
    // 4.16 (next's newest) is not in the target yet; --channel 4-scos-stable leaves its
    // mirror out, but the ImageStream is applied whole.
    let run = c.relsync(&["sync", "--channel", "4-scos-stable"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("not in the target registry"),
        "{}",
        run.stderr()
    );
    let tags = c.spec_tags();
    assert!(
        !tags.iter().any(|(_, from)| from == &pull(D416)),
        "nothing points at 4.16: {tags:?}"
    );
    assert!(
        tags.contains(&("4-scos-stable".into(), pull(D415))),
        "{tags:?}"
    );
    c.relsync(&["sync"]).expect_code(0);
    assert!(c.spec_tags().contains(&("4-scos-next".into(), pull(D416))));
}
