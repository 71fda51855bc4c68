//! `charts/relsync`, rendered and linted with helm-python-sdk (Helm v4's Go SDK behind a C
//! ABI, so no `helm` binary): the objects of the default values and of a non-default set,
//! RBAC without wildcards, probes, securityContext, the relsync.yaml it ships (parsed by
//! relsync's own config parser), the value combinations the chart (and its values schema)
//! refuses, and lint.
//!
//! The rendering runs in `python3 tests/chart_render.py`. A missing python3 or a missing
//! helm-python-sdk is a test failure that says how to install it, never a skip.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// The pinned SDK (also installed by `.ci/run`).
const SDK: &str = "helm-python-sdk==0.2.2";
const RELEASE: &str = "okd";
const NAMESPACE: &str = "relsync-system";

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/relsync")
}

/// What `tests/chart_render.py` reports for one chart and one set of values.
pub(crate) struct Helm {
    /// Helm SDK version compiled into libhelm_c.
    version: String,
    /// Template path → rendered text, or the render error.
    rendered: Result<serde_json::Map<String, Value>, String>,
    /// `helm lint --strict` report for the same values.
    lint: Value,
}

/// Renders and lints `chart` with `values` through helm-python-sdk.
pub(crate) fn render_and_lint(chart: &Path, values: &Value) -> Helm {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chart_render.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 ({e}): the chart tests need python3 with {SDK} \
                 (`python3 -m pip install {SDK}`; .ci/run installs both)"
            )
        });
    let request = json!({
        "chart": chart,
        "release": RELEASE,
        "namespace": NAMESPACE,
        "values": values,
    });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the request to chart_render.py");
    let out = child.wait_with_output().expect("wait for chart_render.py");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "{SDK} is not installed for python3: {stderr}\ninstall it with \
             `python3 -m pip install {SDK}` (.ci/run does)"
        ),
        _ => panic!("chart_render.py failed ({}): {stderr}", out.status),
    }
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "chart_render.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let rendered = match (&report["manifests"], &report["renderError"]) {
        (Value::Object(m), Value::Null) => Ok(m.clone()),
        (Value::Null, Value::String(e)) => Err(e.clone()),
        other => panic!("unexpected render report {other:?}"),
    };
    Helm {
        version: report["helm"].as_str().unwrap_or_default().to_string(),
        rendered,
        lint: report["lint"].clone(),
    }
}

/// Every Kubernetes object the chart renders (NOTES.txt left out), parsed from YAML.
pub(crate) fn objects(helm: &Helm) -> Vec<Value> {
    let manifests = match &helm.rendered {
        Ok(m) => m,
        Err(e) => panic!("the chart did not render: {e}"),
    };
    let mut objects = Vec::new();
    for (path, text) in manifests {
        if path.ends_with("NOTES.txt") {
            continue;
        }
        let text = text.as_str().expect("rendered text");
        let docs: Vec<Value> = serde_saphyr::from_multiple(text)
            .unwrap_or_else(|e| panic!("{path} is not YAML: {e}\n{text}"));
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "{path}: a document without apiVersion/kind: {doc}"
            );
            objects.push(doc);
        }
    }
    objects
}

/// Asserts that lint ran on the chart and found no error and no warning.
fn assert_lint_clean(helm: &Helm) {
    assert_eq!(helm.lint["total_charts_linted"], json!(1), "{}", helm.lint);
    assert_eq!(helm.lint["errors"], json!([]), "lint errors: {}", helm.lint);
    let messages = helm.lint["messages"].as_array().expect("lint messages");
    let bad: Vec<&Value> = messages
        .iter()
        .filter(|m| m["severity"].as_i64().unwrap_or(3) >= 2)
        .collect();
    assert!(bad.is_empty(), "lint warnings or errors: {bad:?}");
}

/// (kind, namespace, name) of every object.
fn inventory(objects: &[Value]) -> BTreeSet<(String, String, String)> {
    objects
        .iter()
        .map(|o| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&o["kind"]),
                s(&o["metadata"]["namespace"]),
                s(&o["metadata"]["name"]),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(k, ns, n)| (k.to_string(), ns.to_string(), n.to_string()))
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, namespace: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["namespace"] == namespace
                && o["metadata"]["name"] == name
        })
        .unwrap_or_else(|| panic!("no {kind} {namespace}/{name} in {:?}", inventory(objects)))
}

/// The rules every Role must consist of, and the binding of each Role to the ServiceAccount.
fn assert_rbac(objects: &[Value], lease: &str, imagestream_namespaces: &[&str]) {
    let sa = json!([{"kind": "ServiceAccount", "name": "okd-relsync", "namespace": NAMESPACE}]);
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or_default();
        assert!(
            kind != "ClusterRole" && kind != "ClusterRoleBinding",
            "the chart must not grant cluster-wide rights: {o}"
        );
        for rule in o["rules"].as_array().into_iter().flatten() {
            for field in [
                "verbs",
                "resources",
                "apiGroups",
                "resourceNames",
                "nonResourceURLs",
            ] {
                for item in rule[field].as_array().into_iter().flatten() {
                    let item = item.as_str().expect("RBAC list items are strings");
                    assert!(!item.contains('*'), "wildcard in {field} of {o}");
                }
            }
        }
    }
    let main = find(objects, "Role", NAMESPACE, "okd-relsync");
    assert_eq!(
        main["rules"],
        json!([
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["relsync-state", "relsync-payloads"],
             "verbs": ["get", "update", "patch"]},
            // create cannot be limited by name in Kubernetes RBAC
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": [lease], "verbs": ["get", "update"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        ]),
        "release-namespace Role"
    );
    let binding = find(objects, "RoleBinding", NAMESPACE, "okd-relsync");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "okd-relsync"})
    );
    assert_eq!(binding["subjects"], sa);
    for ns in imagestream_namespaces {
        let role = find(objects, "Role", ns, "okd-relsync-imagestreams");
        assert_eq!(
            role["rules"],
            json!([{"apiGroups": ["image.openshift.io"], "resources": ["imagestreams"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update"]}]),
            "ImageStream Role in {ns}"
        );
        let binding = find(objects, "RoleBinding", ns, "okd-relsync-imagestreams");
        assert_eq!(binding["roleRef"]["name"], "okd-relsync-imagestreams");
        assert_eq!(binding["roleRef"]["kind"], "Role");
        assert_eq!(binding["subjects"], sa);
    }
    let roles = objects.iter().filter(|o| o["kind"] == "Role").count();
    let bindings = objects
        .iter()
        .filter(|o| o["kind"] == "RoleBinding")
        .count();
    assert_eq!(roles, 1 + imagestream_namespaces.len(), "Roles");
    assert_eq!(bindings, roles, "one RoleBinding per Role");
}

/// Deployment checks shared by every value set; returns the relsync container.
fn assert_deployment<'a>(objects: &'a [Value], replicas: u64, image: &str) -> &'a Value {
    let deploy = find(objects, "Deployment", NAMESPACE, "okd-relsync");
    assert_eq!(deploy["apiVersion"], "apps/v1");
    assert_eq!(deploy["spec"]["replicas"], json!(replicas));
    let selector = deploy["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector");
    let pod = &deploy["spec"]["template"];
    for (k, v) in selector {
        assert_eq!(&pod["metadata"]["labels"][k], v, "pod label {k}");
    }
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "okd-relsync");
    let psc = &spec["securityContext"];
    assert_eq!(psc["runAsNonRoot"], json!(true));
    let uid = psc["runAsUser"].as_u64().expect("a fixed runAsUser");
    assert!(uid > 0, "runAsUser must not be root");
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");

    let containers = spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["image"], image);
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], json!(true));
    assert_eq!(sc["readOnlyRootFilesystem"], json!(true));
    assert_eq!(sc["allowPrivilegeEscalation"], json!(false));
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"]["add"].is_null(), "no capability added");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(sc["privileged"].is_null() || sc["privileged"] == json!(false));

    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect();
    assert_eq!(c["command"], json!(["relsync"]));
    let serve = args
        .iter()
        .position(|a| *a == "serve")
        .expect("serve command");
    assert_eq!(&args[serve..], ["serve", "--listen", "0.0.0.0:8080"]);
    assert_eq!(&args[..2], ["--config", "/etc/relsync/relsync.yaml"]);

    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            c[probe]["httpGet"],
            json!({"path": path, "port": "http"}),
            "{probe}"
        );
        assert!(
            c[probe]["periodSeconds"].as_u64().unwrap_or(0) > 0,
            "{probe}"
        );
    }

    // relsync.yaml from the chart's ConfigMap, the cache on an emptyDir (the root
    // filesystem is read-only).
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    let mount = |path: &str| {
        mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("nothing mounted at {path}: {mounts:?}"))
    };
    let volume = |name: &Value| {
        spec["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| &v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let config = mount("/etc/relsync/relsync.yaml");
    assert_eq!(config["readOnly"], json!(true));
    assert_eq!(config["subPath"], "relsync.yaml");
    assert_eq!(
        volume(&config["name"])["configMap"]["name"],
        "okd-relsync-config"
    );
    let cache = mount("/var/cache/relsync");
    assert!(
        volume(&cache["name"])["emptyDir"].is_object(),
        "cache is an emptyDir"
    );
    let tmp = mount("/tmp");
    assert!(
        volume(&tmp["name"])["emptyDir"].is_object(),
        "/tmp is an emptyDir"
    );
    assert_eq!(
        env_value(c, "XDG_CACHE_HOME"),
        json!({"value": "/var/cache/relsync"})
    );
    c
}

/// The env entry `name` of container `c`, without its name.
fn env_value(c: &Value, name: &str) -> Value {
    let mut entry = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name} in {}", c["env"]))
        .clone();
    entry.as_object_mut().expect("env entry").remove("name");
    entry
}

fn env_names(c: &Value) -> Vec<String> {
    c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| e["name"].as_str().expect("env name").to_string())
        .collect()
}

/// relsync.yaml from the chart's ConfigMap, through relsync's own (strict) config parser.
fn shipped_config(objects: &[Value]) -> relsync::config::Config {
    let cm = find(objects, "ConfigMap", NAMESPACE, "okd-relsync-config");
    let text = cm["data"]["relsync.yaml"]
        .as_str()
        .expect("data relsync.yaml");
    relsync::config::load("relsync.yaml", text.as_bytes())
        .unwrap_or_else(|d| panic!("the chart's relsync.yaml is refused by relsync: {d}\n{text}"))
}

#[test]
fn chart_default_values_render_lint_and_hold_the_rules() {
    let helm = render_and_lint(&chart_dir(), &json!({}));
    assert!(
        helm.version.starts_with("v4."),
        "helm-python-sdk should embed Helm v4, found {:?}",
        helm.version
    );
    assert_lint_clean(&helm);
    let objects = objects(&helm);
    assert_eq!(
        inventory(&objects),
        set(&[
            ("ConfigMap", NAMESPACE, "okd-relsync-config"),
            ("Deployment", NAMESPACE, "okd-relsync"),
            ("Role", NAMESPACE, "okd-relsync"),
            ("RoleBinding", NAMESPACE, "okd-relsync"),
            ("Service", NAMESPACE, "okd-relsync"),
            ("ServiceAccount", NAMESPACE, "okd-relsync"),
        ])
    );
    assert_rbac(&objects, "okd-relsync-leader", &[]);

    let app_version = find_chart_app_version();
    let c = assert_deployment(
        &objects,
        1,
        &format!("quay.io/relsync/relsync:{app_version}"),
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "100m", "memory": "128Mi"},
               "limits": {"cpu": "1", "memory": "512Mi"}})
    );
    assert_eq!(
        env_value(c, "RELSYNC_LEADER_ELECTION"),
        json!({"value": "true"})
    );
    assert_eq!(
        env_value(c, "RELSYNC_LEASE_NAME"),
        json!({"value": "okd-relsync-leader"})
    );
    // No credentials are named by the default config, so none are read from a Secret.
    assert!(
        c["env"]
            .as_array()
            .expect("env")
            .iter()
            .all(|e| e["valueFrom"]["secretKeyRef"].is_null()),
        "{}",
        c["env"]
    );

    let sa = find(&objects, "ServiceAccount", NAMESPACE, "okd-relsync");
    assert_eq!(sa["automountServiceAccountToken"], json!(true));

    let svc = find(&objects, "Service", NAMESPACE, "okd-relsync");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}])
    );
    assert_eq!(
        svc["spec"]["selector"],
        find(&objects, "Deployment", NAMESPACE, "okd-relsync")["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        svc["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    assert_eq!(svc["metadata"]["annotations"]["prometheus.io/port"], "8080");
    assert_eq!(
        svc["metadata"]["annotations"]["prometheus.io/path"],
        "/metrics"
    );

    let config = shipped_config(&objects);
    assert!(config.cluster.enabled);
    assert!(config.sync.auto);
    assert!(config.sync.self_heal);
    assert!(!config.sync.prune);
    assert_eq!(config.sync.interval_seconds, 180);
    assert_eq!(config.sync.concurrency, 8);
    assert_eq!(
        config.git.repo.value,
        "https://git.example.com/release-manifests.git"
    );
    assert!(config.registries.is_empty());
    assert!(config.webhook.secret_env.is_none());
}

#[test]
fn chart_non_default_values_render_lint_and_hold_the_rules() {
    let values = json!({
        "replicas": 2,
        "image": {"tag": "4.15.0"},
        "imageStreamNamespaces": ["origin", "okd-release"],
        "leaderElection": {"leaseName": "okd-relsync-lock"},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                      "limits": {"cpu": "2", "memory": "1Gi"}},
        "existingSecret": "relsync-credentials",
        "secretKeys": {"QUAY_TOKEN": "token"},
        "service": {"prometheusScrape": false, "annotations": {"team": "okd"}},
        "config": {
            "git": {"repo": "https://github.com/okd-project/okd-releases.git", "revision": "main"},
            "registries": [
                {"host": "quay.io", "usernameEnv": "QUAY_USER", "passwordEnv": "QUAY_TOKEN"},
                {"host": "registry.ci.openshift.org"}
            ],
            "sync": {"interval": "10m", "prune": true},
            "webhook": {"secretEnv": "RELSYNC_WEBHOOK_SECRET"}
        }
    });
    let helm = render_and_lint(&chart_dir(), &values);
    assert_lint_clean(&helm);
    let objects = objects(&helm);
    assert_eq!(
        inventory(&objects),
        set(&[
            ("ConfigMap", NAMESPACE, "okd-relsync-config"),
            ("Deployment", NAMESPACE, "okd-relsync"),
            ("Role", NAMESPACE, "okd-relsync"),
            ("RoleBinding", NAMESPACE, "okd-relsync"),
            ("Role", "origin", "okd-relsync-imagestreams"),
            ("RoleBinding", "origin", "okd-relsync-imagestreams"),
            ("Role", "okd-release", "okd-relsync-imagestreams"),
            ("RoleBinding", "okd-release", "okd-relsync-imagestreams"),
            ("Service", NAMESPACE, "okd-relsync"),
            ("ServiceAccount", NAMESPACE, "okd-relsync"),
        ])
    );
    assert_rbac(&objects, "okd-relsync-lock", &["origin", "okd-release"]);

    let c = assert_deployment(&objects, 2, "quay.io/relsync/relsync:4.15.0");
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "250m", "memory": "256Mi"},
               "limits": {"cpu": "2", "memory": "1Gi"}})
    );
    assert_eq!(
        env_value(c, "RELSYNC_LEASE_NAME"),
        json!({"value": "okd-relsync-lock"})
    );
    // Every variable the config names comes from the existing Secret; QUAY_TOKEN from the
    // key secretKeys maps it to.
    for (var, key) in [
        ("QUAY_USER", "QUAY_USER"),
        ("QUAY_TOKEN", "token"),
        ("RELSYNC_WEBHOOK_SECRET", "RELSYNC_WEBHOOK_SECRET"),
    ] {
        assert_eq!(
            env_value(c, var),
            json!({"valueFrom": {"secretKeyRef": {"name": "relsync-credentials", "key": key}}}),
            "{var}"
        );
    }
    let names = env_names(c);
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "duplicate env vars: {names:?}");

    let svc = find(&objects, "Service", NAMESPACE, "okd-relsync");
    assert_eq!(svc["metadata"]["annotations"], json!({"team": "okd"}));

    // The partial `config.sync` is merged with the chart's defaults.
    let config = shipped_config(&objects);
    assert!(config.cluster.enabled);
    assert!(config.sync.auto);
    assert!(config.sync.self_heal);
    assert!(config.sync.prune);
    assert_eq!(config.sync.interval_seconds, 600);
    assert_eq!(config.git.revision, "main");
    assert_eq!(config.git.path, "manifests");
    assert_eq!(
        config.webhook.secret_env.as_deref(),
        Some("RELSYNC_WEBHOOK_SECRET")
    );
    let quay = config.registry("quay.io").expect("quay.io settings");
    assert_eq!(quay.username_env.as_deref(), Some("QUAY_USER"));
    assert_eq!(quay.password_env.as_deref(), Some("QUAY_TOKEN"));
    assert!(config.registry("registry.ci.openshift.org").is_some());
}

#[test]
fn chart_refuses_values_that_cannot_work() {
    for (values, message) in [
        (
            json!({"replicas": 2, "leaderElection": {"enabled": false}}),
            "leaderElection.enabled is false",
        ),
        (
            json!({"config": {"registries": [{"host": "quay.io", "passwordEnv": "QUAY_TOKEN"}]}}),
            "QUAY_TOKEN for credentials; set existingSecret",
        ),
        (
            json!({"config": {"cluster": {"enabled": false}}}),
            "config.cluster.enabled must be true",
        ),
        (
            json!({"imageStreamNamespaces": ["Not_A_Namespace"]}),
            "is not a valid namespace name",
        ),
    ] {
        let helm = render_and_lint(&chart_dir(), &values);
        match helm.rendered {
            Ok(_) => panic!("{values} rendered; expected a refusal saying {message:?}"),
            Err(e) => assert!(e.contains(message), "{values}: {e}"),
        }
    }
    // values.schema.json mirrors relsync's strict Config: a misspelt field is refused by
    // the render and by lint, before relsync would refuse to start.
    let helm = render_and_lint(
        &chart_dir(),
        &json!({"config": {"sync": {"selfheal": false}}}),
    );
    match &helm.rendered {
        Ok(_) => panic!("a misspelt config field rendered"),
        Err(e) => assert!(
            e.contains("additional properties 'selfheal' not allowed"),
            "{e}"
        ),
    }
    assert!(
        helm.lint["messages"]
            .as_array()
            .expect("lint messages")
            .iter()
            .any(|m| m["severity"] == 3 && m["path"] == "values.yaml"),
        "lint did not flag the misspelt value: {}",
        helm.lint
    );
    let helm = render_and_lint(&chart_dir(), &json!({"replicas": "two"}));
    assert!(
        matches!(&helm.rendered, Err(e) if e.contains("/replicas")),
        "replicas: \"two\" was not refused"
    );

    // One replica without leader election renders, with the Recreate strategy and no Lease
    // rights at all.
    let helm = render_and_lint(&chart_dir(), &json!({"leaderElection": {"enabled": false}}));
    let objects = objects(&helm);
    let deploy = find(&objects, "Deployment", NAMESPACE, "okd-relsync");
    assert_eq!(deploy["spec"]["strategy"]["type"], "Recreate");
    let role = find(&objects, "Role", NAMESPACE, "okd-relsync");
    let rules = role["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(
        rules
            .iter()
            .all(|r| r["resources"] == json!(["configmaps"]))
    );
}

#[test]
fn chart_lint_reports_a_broken_template() {
    // The lint check above must be able to fail: the same chart plus one template that
    // dereferences a missing value is reported as an error.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("relsync");
    copy_dir(&chart_dir(), &copy);
    std::fs::write(
        copy.join("templates/broken.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata: {{ .Values.missing.deeper }}\n",
    )
    .expect("write broken template");
    let helm = render_and_lint(&copy, &json!({}));
    let errors = helm.lint["errors"].as_array().expect("lint errors");
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap_or_default().contains("broken.yaml")),
        "lint did not report the broken template: {}",
        helm.lint
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read chart dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `appVersion` from Chart.yaml: the default image tag.
fn find_chart_app_version() -> String {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_saphyr::from_str(&text).expect("Chart.yaml is YAML");
    assert_eq!(chart["apiVersion"], "v2", "a Helm 3+ chart");
    chart["appVersion"]
        .as_str()
        .expect("appVersion is a string")
        .to_string()
}

#[test]
fn chart_readme_documents_every_value() {
    // values.schema.json lists every value (it refuses others, and the default values render
    // against it above); the README's table must have a row for each.
    let dir = chart_dir();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("values.schema.json")).expect("values.schema.json"),
    )
    .expect("values.schema.json is JSON");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md");
    // A value is documented by its own row, or (an object of values) by rows for each of
    // its values.
    fn documented(node: &Value, path: &str, readme: &str, missing: &mut Vec<String>) -> bool {
        if readme.contains(&format!("| `{path}` |")) {
            return true;
        }
        match node["properties"].as_object() {
            Some(children) => {
                let mut all = true;
                for (key, sub) in children {
                    all &= documented(sub, &format!("{path}.{key}"), readme, missing);
                }
                all
            }
            None => {
                missing.push(path.to_string());
                false
            }
        }
    }
    let mut missing = Vec::new();
    let mut count = 0;
    for (key, sub) in schema["properties"].as_object().expect("schema properties") {
        if key != "global" {
            count += 1;
            documented(sub, key, &readme, &mut missing);
        }
    }
    assert!(count > 25, "the schema lists only {count} top-level values");
    assert!(
        missing.is_empty(),
        "values missing from README.md: {missing:?}"
    );
}

#[test]
fn chart_optional_values_render() {
    // OpenShift (UID from the SCC), an existing ServiceAccount with RBAC managed elsewhere,
    // an image pinned by digest, a registry auth file, extra flags and volumes.
    let digest = format!("sha256:{}", "ab".repeat(32));
    let values = json!({
        "rbac": {"create": false},
        "serviceAccount": {"create": false, "name": "relsync-bot"},
        "image": {"digest": digest, "tag": "ignored"},
        "registryAuthSecret": "pull-secret",
        "podSecurityContext": {"runAsUser": null, "runAsGroup": null, "fsGroup": null},
        "extraArgs": ["-v"],
        "extraVolumes": [{"name": "mirror", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "mirror", "mountPath": "/srv/mirror"}],
    });
    let helm = render_and_lint(&chart_dir(), &values);
    assert_lint_clean(&helm);
    let objects = objects(&helm);
    assert_eq!(
        inventory(&objects),
        set(&[
            ("ConfigMap", NAMESPACE, "okd-relsync-config"),
            ("Deployment", NAMESPACE, "okd-relsync"),
            ("Service", NAMESPACE, "okd-relsync"),
        ])
    );
    let deploy = find(&objects, "Deployment", NAMESPACE, "okd-relsync");
    let spec = &deploy["spec"]["template"]["spec"];
    assert_eq!(spec["serviceAccountName"], "relsync-bot");
    let psc = &spec["securityContext"];
    assert_eq!(psc["runAsNonRoot"], json!(true));
    for field in ["runAsUser", "runAsGroup", "fsGroup"] {
        assert!(psc[field].is_null(), "{field} left to the SCC: {psc}");
    }
    let c = &spec["containers"][0];
    assert_eq!(c["image"], format!("quay.io/relsync/relsync@{digest}"));
    assert_eq!(
        c["args"],
        json!([
            "--config",
            "/etc/relsync/relsync.yaml",
            "-v",
            "serve",
            "--listen",
            "0.0.0.0:8080"
        ])
    );
    assert_eq!(
        env_value(c, "REGISTRY_AUTH_FILE"),
        json!({"value": "/etc/relsync/auth/config.json"})
    );
    let volumes = spec["volumes"].as_array().expect("volumes");
    assert!(
        volumes.contains(&json!({"name": "registry-auth", "secret": {
        "secretName": "pull-secret",
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}}))
    );
    assert!(volumes.contains(&json!({"name": "mirror", "emptyDir": {}})));
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    assert!(mounts.contains(&json!({"name": "mirror", "mountPath": "/srv/mirror"})));
    assert!(mounts.contains(
        &json!({"name": "registry-auth", "mountPath": "/etc/relsync/auth", "readOnly": true})
    ));
    // The container-level hardening does not depend on the pod-level UID.
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], json!(true));
    assert_eq!(c["securityContext"]["runAsNonRoot"], json!(true));
}
