//! `charts/relsync` on the real kube-apiserver (tests/apiserver.rs): every object it renders
//! passes a strict server-side dry run, and relsync under the chart's RBAC (a token of the
//! chart's ServiceAccount, straight to the server over HTTPS) can do its job — sync the
//! ImageStream, write the state ConfigMap, hold the leader Lease and take it over when the
//! leading `relsync serve` replica is killed — and
//! nothing more: an ImageStream outside `imageStreamNamespaces` is refused by the server and
//! reported as such.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::apiserver::{Resource, TestCluster};
use crate::chart::{objects, render_and_lint};
use crate::cluster::ClusterRepo;
use crate::util::block_on;

/// The release name and namespace `render_and_lint` renders with.
const RELEASE_NAMESPACE: &str = "relsync-system";
/// `<release>-relsync`: the ServiceAccount, the Roles and the Lease prefix.
const FULLNAME: &str = "okd-relsync";

/// The chart's objects for this test: the release namespace renamed to `release` and
/// ImageStreams allowed in `imagestreams`.
fn chart_objects(release: &str, imagestreams: &str) -> Vec<Value> {
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/relsync");
    let helm = render_and_lint(&chart, &json!({"imageStreamNamespaces": [imagestreams]}));
    let text = serde_json::to_string(&objects(&helm)).unwrap();
    let text = text.replace(
        &format!("\"{RELEASE_NAMESPACE}\""),
        &format!("\"{release}\""),
    );
    serde_json::from_str(&text).unwrap()
}

/// The collection path of a rendered object.
fn collection(obj: &Value) -> String {
    let (api_version, kind) = (
        obj["apiVersion"].as_str().unwrap(),
        obj["kind"].as_str().unwrap(),
    );
    let ns = obj["metadata"]["namespace"].as_str().unwrap();
    let plural = match kind {
        "ServiceAccount" => "serviceaccounts",
        "ConfigMap" => "configmaps",
        "Service" => "services",
        "Deployment" => "deployments",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        other => panic!("the chart renders a {other}: add its plural here"),
    };
    let prefix = if api_version == "v1" {
        "/api/v1".to_string()
    } else {
        format!("/apis/{api_version}")
    };
    format!("{prefix}/namespaces/{ns}/{plural}")
}

#[test]
fn every_object_of_the_chart_passes_a_strict_server_side_dry_run() {
    let api = TestCluster::new();
    let (release, origin) = (api.ns("relsync-system"), api.ns("origin"));
    api.add_namespace(&release);
    api.add_namespace(&origin);
    let objects = chart_objects(&release, &origin);
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "Deployment",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "ConfigMap",
    ] {
        assert!(
            kinds.contains(&kind),
            "the chart renders a {kind}: {kinds:?}"
        );
    }
    for obj in &objects {
        let name = obj["metadata"]["name"].as_str().unwrap();
        let path = format!(
            "{}?dryRun=All&fieldValidation=Strict&fieldManager=helm",
            collection(obj)
        );
        let (code, body) = api.admin("POST", &path, "application/json", Some(obj));
        assert!(
            code == 201,
            "{} {name} refused by a strict dry run: {code} {body}",
            obj["kind"]
        );
        // A dry run stores nothing.
        let (code, _) = api.admin("GET", &format!("{}/{name}", collection(obj)), "", None);
        assert_eq!(code, 404, "{} {name} was stored by a dry run", obj["kind"]);
    }
    // The check is strict: an unknown field in the Deployment is refused.
    let mut deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap()
        .clone();
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = json!("Always");
    let path = format!(
        "{}?dryRun=All&fieldValidation=Strict&fieldManager=helm",
        collection(&deployment)
    );
    let (code, body) = api.admin("POST", &path, "application/json", Some(&deployment));
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("imagePullPolcy"),
        "{body}"
    );
}

/// Creates the chart's ServiceAccount, Roles and RoleBindings for real; returns a token of
/// the ServiceAccount.
fn install_rbac(api: &TestCluster, release: &str, imagestreams: &str) -> String {
    for obj in chart_objects(release, imagestreams).iter().filter(|o| {
        ["ServiceAccount", "Role", "RoleBinding"].contains(&o["kind"].as_str().unwrap())
    }) {
        let name = obj["metadata"]["name"].as_str().unwrap();
        let path = format!("{}/{name}?fieldManager=helm&force=true", collection(obj));
        let (code, body) = api.admin("PATCH", &path, "application/apply-patch+yaml", Some(obj));
        assert!(code == 201, "{} {name}: {code} {body}", obj["kind"]);
    }
    api.service_account_token(release, FULLNAME)
}

#[test]
fn relsync_under_the_charts_role_syncs_and_is_refused_outside_it() {
    let c = ClusterRepo::new();
    let token = install_rbac(&c.api, &c.home, &c.ns);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = c.api.write_direct_kubeconfig(dir.path(), &c.home, &token);
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];

    // Its job: the ImageStream in an allowed namespace and the state ConfigMap at home.
    let sync = c.repo.relsync_env(&["sync"], &env);
    sync.expect_code(0);
    let is = c
        .api
        .get(Resource::ImageStreams, &c.ns, "release-scos")
        .expect("synced");
    assert_eq!(is["spec"]["tags"].as_array().unwrap().len(), 3, "{is}");
    let state = c
        .api
        .get(Resource::ConfigMaps, &c.home, "relsync-state")
        .expect("the state ConfigMap");
    assert!(
        state["data"]["state.json"]
            .as_str()
            .unwrap()
            .contains("history")
    );
    // A second sync updates the ConfigMap it now finds (get/update by name).
    c.repo.relsync_env(&["sync"], &env).expect_code(0);
    c.repo.relsync_env(&["drift"], &env).expect_code(0);

    // Nothing more: an ImageStream in a namespace the chart was not given.
    let other = c.api.ns("other");
    c.api.add_namespace(&other);
    let next = "manifests/channels/4-scos-next.yaml";
    let text = c.repo.read(next);
    c.repo.write(
        next,
        &text.replace(
            "  tags: [4-scos-next]\n",
            &format!("  tags: [4-scos-next]\n  imageStream:\n    namespace: {other}\n    name: release-scos\n"),
        ),
    );
    c.repo
        .commit("next publishes into a namespace outside the chart's RBAC");
    let sync = c.repo.relsync_env(&["sync"], &env);
    sync.expect_code(1);
    let stderr = sync.stderr();
    assert!(
        stderr.contains(&format!("imagestream:{other}/release-scos"))
            && stderr.contains("forbidden"),
        "the refusal names the ImageStream and says forbidden: {stderr}"
    );
    assert!(
        stderr.contains(&format!("system:serviceaccount:{}:{FULLNAME}", c.home)),
        "the refusal names who was refused: {stderr}"
    );
    assert!(
        c.api
            .get(Resource::ImageStreams, &other, "release-scos")
            .is_none()
    );
    assert!(
        !stderr.contains(&token),
        "the token never appears in output"
    );
}

#[test]
fn the_lease_under_the_charts_role_is_taken_over_when_the_leader_dies() {
    use relsync::cluster::Cluster;
    use relsync::controller::leader::{Election, Leadership, LeaseSettings};

    let api = TestCluster::new();
    let (home, origin) = (api.ns("relsync"), api.ns("origin"));
    api.add_namespace(&home);
    api.add_namespace(&origin);
    let token = install_rbac(&api, &home, &origin);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_direct_kubeconfig(dir.path(), &home, &token);
    let lease = format!("{FULLNAME}-leader");
    block_on(async {
        let client = || async {
            let config = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
            let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
                .await
                .unwrap();
            Cluster::with_client(kube::Client::try_from(config).unwrap())
        };
        let settings = |who: &str| LeaseSettings {
            duration: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(1),
            renew: Duration::from_millis(200),
            ..LeaseSettings::new(lease.clone(), home.clone(), who.into())
        };
        let a = Election::new(client().await, settings("a"), Leadership::default());
        let b = Election::new(client().await, settings("b"), Leadership::default());
        assert!(a.step().await.unwrap(), "a creates the lease");
        assert!(!b.step().await.unwrap(), "b waits while a renews");
        assert!(a.step().await.unwrap(), "a renews");
        assert!(!b.step().await.unwrap());

        // a dies without releasing: b takes over once the lease runs out.
        drop(a);
        let start = Instant::now();
        while !b.step().await.unwrap() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "b never took over"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(1500),
            "not before the lease ran out"
        );
        assert!(b.step().await.unwrap(), "b renews");

        // The Role allows this one Lease by name, nothing else.
        let other = Election::new(
            client().await,
            LeaseSettings::new("someone-elses-lease".into(), home.clone(), "c".into()),
            Leadership::default(),
        );
        // create is allowed without a name (RBAC cannot restrict it), get is not.
        let refused = other.step().await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("forbidden")),
            "another Lease is refused: {refused:?}"
        );
    });
    let lease = api.get(Resource::Leases, &home, &lease).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}

/// A `relsync serve` replica; killed (SIGKILL) on drop.
struct Replica {
    child: std::process::Child,
    port: u16,
}

impl Replica {
    fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Replica {
        let port = crate::util::free_port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_relsync"));
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .env("RELSYNC_CACHE_DIR", dir.join("cache"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let replica = Replica {
            child: cmd.spawn().expect("start relsync serve"),
            port,
        };
        replica.wait_until("ready", |r| {
            crate::util::http_status(r.port, "/readyz") == Some(200)
        });
        replica
    }

    fn leader(&self) -> Option<f64> {
        let text = block_on(async {
            reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
                .await
                .ok()?
                .text()
                .await
                .ok()
        })?;
        text.lines()
            .find(|l| l.split_whitespace().next() == Some("relsync_leader"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut(&Replica) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("serve: {what} did not happen within 60 s");
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_standby_replica_under_the_charts_role_takes_the_lease_when_the_leader_is_killed() {
    let c = ClusterRepo::new();
    let token = install_rbac(&c.api, &c.home, &c.ns);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = c.api.write_direct_kubeconfig(dir.path(), &c.home, &token);
    let config = c.repo.read("relsync.yaml");
    c.repo.write(
        "relsync.yaml",
        &config.replace("    prune: false\n", "    prune: false\n    interval: 1h\n"),
    );
    c.repo.commit("hourly");
    let lease_name = format!("{FULLNAME}-leader");
    let env = |who: &'static str| {
        vec![
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("POD_NAME", who),
            ("POD_NAMESPACE", c.home.as_str()),
            ("RELSYNC_LEASE_NAME", lease_name.as_str()),
            ("RELSYNC_WEBHOOK_SECRET", "a-webhook-secret-for-the-test"),
        ]
    };
    let holder = || {
        c.api.get(Resource::Leases, &c.home, &lease_name).map(|l| {
            l["spec"]["holderIdentity"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
    };
    let a = Replica::start(c.repo.path(), &env("replica-a"));
    a.wait_until("a leads", |a| a.leader() == Some(1.0));
    let b = Replica::start(c.repo.path(), &env("replica-b"));
    assert_eq!(holder().as_deref(), Some("replica-a"));
    b.wait_until("b reports", |b| b.leader().is_some());
    assert_eq!(b.leader(), Some(0.0), "b stands by");
    // The leader synced under the chart's Role.
    a.wait_until("a synced", |_| {
        c.api
            .get(Resource::ImageStreams, &c.ns, "release-scos")
            .is_some()
    });

    // The leader dies without releasing the Lease: b takes it once it runs out.
    let killed = Instant::now();
    drop(a);
    b.wait_until("b leads", |b| b.leader() == Some(1.0));
    assert!(
        killed.elapsed() >= Duration::from_secs(5),
        "not before the Lease ran out: {:?}",
        killed.elapsed()
    );
    assert_eq!(holder().as_deref(), Some("replica-b"));
    let lease = c.api.get(Resource::Leases, &c.home, &lease_name).unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
}
