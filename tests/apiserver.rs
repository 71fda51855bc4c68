//! A real Kubernetes API server for the cluster tests: `etcd` and `kube-apiserver` built by
//! `scripts/test-deps.sh`, started once per test binary run on free loopback ports (HTTPS
//! with the test CA of `tests/data/registry-tls`, a static token file, `RBAC` authorization,
//! service-account keys made for the run) with the ImageStream CRD of
//! `tests/data/imagestream-crd.yaml` installed. Each test takes a [`TestCluster`]: its own
//! namespaces (prefixed, deleted on drop) and its own front.
//!
//! The front is a small HTTP proxy in front of the real server that relsync reaches through
//! its kubeconfig. It logs every request ([`TestCluster::requests`]), answers the next
//! requests with an injected status when a test asks ([`TestCluster::fail_next`]: a real
//! server does not fail on demand), sends a conflicting write of another client to the real
//! server just before the next server-side apply ([`TestCluster::on_next_apply`], so the 409
//! comes from the real server), and plays OpenShift's image import: after a write to an
//! ImageStream it writes `status.tags` through the status subresource for every tag pinned
//! by digest, or the `ImportSuccess=False` condition a test asked for
//! ([`TestCluster::fail_import`]; [`ImportMode::Manual`] holds imports back until
//! [`TestCluster::import_now`]).
//!
//! Everything is forwarded with the client's own `Authorization` header, so authentication
//! and RBAC are the real server's.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{Value, json};

use crate::test_deps;
use crate::util::{ServerThread, block_on, free_port, http_status};

/// The kinds of objects the tests read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// Core `v1` ConfigMaps.
    ConfigMaps,
    /// `coordination.k8s.io/v1` Leases.
    Leases,
    /// `image.openshift.io/v1` ImageStreams (the CRD).
    ImageStreams,
}

impl Resource {
    /// The collection path in namespace `ns`.
    pub fn collection(self, ns: &str) -> String {
        match self {
            Resource::ConfigMaps => format!("/api/v1/namespaces/{ns}/configmaps"),
            Resource::Leases => format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"),
            Resource::ImageStreams => {
                format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams")
            }
        }
    }
    /// The path of object `name` in namespace `ns`.
    pub fn path(self, ns: &str, name: &str) -> String {
        format!("{}/{name}", self.collection(ns))
    }
}

/// When the front plays the image import of ImageStream tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Right after every ImageStream write through the front or the test's helpers.
    Auto,
    /// Only when a test calls [`TestCluster::import_now`].
    Manual,
}

/// One request the front received.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query (`""` when none).
    pub query: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
}

impl LoggedRequest {
    /// The value of query parameter `name`, if present.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A write another client makes: method, path, content type and body.
#[derive(Debug, Clone)]
pub struct Write {
    /// `PATCH`, `PUT`, `POST` or `DELETE`.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body (JSON).
    pub body: Value,
}

impl Write {
    /// A forced server-side apply of `obj` as `manager`.
    pub fn apply(r: Resource, ns: &str, manager: &str, obj: Value) -> Write {
        let name = obj["metadata"]["name"].as_str().expect("metadata.name");
        Write {
            method: "PATCH",
            path: format!("{}?fieldManager={manager}&force=true", r.path(ns, name)),
            content_type: "application/apply-patch+yaml",
            body: obj,
        }
    }
}

/// The etcd and kube-apiserver processes of this test binary run.
pub struct Apiserver {
    /// `https://127.0.0.1:PORT`.
    url: String,
    admin_token: String,
    dir: PathBuf,
    children: Mutex<Vec<Child>>,
}

static SHARED: OnceLock<Apiserver> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The test CA that signed the server certificate both servers use.
pub fn ca_pem() -> PathBuf {
    crate::util::tls_dir().join("ca.pem")
}

impl Apiserver {
    /// The one server of this run, started on first use.
    pub fn shared() -> &'static Apiserver {
        SHARED.get_or_init(Apiserver::start)
    }

    fn start() -> Apiserver {
        let etcd_bin = test_deps::binary("etcd");
        let apiserver_bin = test_deps::binary("kube-apiserver");
        let dir = tempfile::Builder::new()
            .prefix("relsync-apiserver-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let admin_token = format!("admin-{:032x}", fastrand::u128(..));
        std::fs::write(
            dir.join("tokens.csv"),
            format!("{admin_token},admin,admin-uid,\"system:masters\"\n"),
        )
        .expect("token file");
        let key = dir.join("sa.key");
        let public = dir.join("sa.pub");
        openssl(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
        openssl(&[
            "rsa",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ]);

        let mut children = Vec::new();
        let etcd_port = start_etcd(&etcd_bin, &dir, &mut children);
        let tls = crate::util::tls_dir();
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(dir.join("kube-apiserver.log")).expect("log");
            let mut child = Command::new(&apiserver_bin)
                .args([
                    format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
                    "--bind-address=127.0.0.1".into(),
                    "--advertise-address=127.0.0.1".into(),
                    format!("--secure-port={port}"),
                    format!("--tls-cert-file={}", tls.join("server.pem").display()),
                    format!(
                        "--tls-private-key-file={}",
                        tls.join("server.key").display()
                    ),
                    format!("--cert-dir={}", dir.join("certs").display()),
                    format!("--token-auth-file={}", dir.join("tokens.csv").display()),
                    "--authorization-mode=RBAC".into(),
                    "--anonymous-auth=false".into(),
                    "--service-account-issuer=https://kubernetes.default.svc".into(),
                    format!("--service-account-key-file={}", public.display()),
                    format!("--service-account-signing-key-file={}", key.display()),
                    "--service-cluster-ip-range=10.0.0.0/24".into(),
                    "--endpoint-reconciler-type=none".into(),
                    "--enable-priority-and-fairness=false".into(),
                    "--profiling=false".into(),
                    "--v=0".into(),
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", apiserver_bin.display()));
            let url = format!("https://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(180);
            let mut ready = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let status = off_thread(async {
                    client()
                        .get(format!("{url}/readyz"))
                        .bearer_auth(&admin_token)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                });
                if status.is_ok_and(|s| s == 200) {
                    ready = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            if ready {
                children.push(child);
                let server = Apiserver {
                    url,
                    admin_token,
                    dir: dir.clone(),
                    children: Mutex::new(children),
                };
                server.watchdog();
                server.install_crd();
                return server;
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(dir.join("kube-apiserver.log")).unwrap_or_default();
        }
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let tail: String = last_log
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n");
        panic!("kube-apiserver did not become ready; the end of its log (newest first):\n{tail}");
    }

    /// The processes live as long as this test binary: a shell waits for it to exit, then
    /// ends them and removes their folder.
    fn watchdog(&self) {
        let pids: Vec<String> = self
            .children
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.id().to_string())
            .collect();
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill {pids} 2>/dev/null; \
             sleep 2; kill -9 {pids} 2>/dev/null; rm -rf '{dir}'",
            me = std::process::id(),
            pids = pids.join(" "),
            dir = self.dir.display()
        );
        // Never waited for: it outlives this process by design, and init reaps it.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watchdog shell");
    }

    fn install_crd(&self) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/imagestream-crd.yaml");
        let text = std::fs::read_to_string(&path).expect("the ImageStream CRD");
        let crd: Value = serde_saphyr::from_str(&text).expect("CRD YAML");
        let (code, body) = self.admin(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "application/json",
            Some(&crd),
        );
        assert!(code == 201 || code == 409, "CRD install: {code} {body}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, _) = self.admin("GET", "/apis/image.openshift.io/v1/imagestreams", "", None);
            if code == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the ImageStream CRD is not served: {code}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `https://127.0.0.1:PORT` of the real server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A token of group `system:masters`.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// One request as the admin: the status and the body parsed as JSON (`Null` if not).
    pub fn admin(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        off_thread(request(
            &self.url,
            &self.admin_token,
            method,
            path_and_query,
            content_type,
            body,
        ))
    }
}

/// Runs `fut` to completion on its own runtime on another thread, so that the helpers
/// work from synchronous tests and from inside `#[tokio::test]` alike.
fn off_thread<F>(fut: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| s.spawn(|| block_on(fut)).join().expect("helper thread"))
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (apt-get install openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_etcd(bin: &Path, dir: &Path, children: &mut Vec<Child>) -> u16 {
    let mut last_log = String::new();
    for attempt in 0..3 {
        let (client, peer) = (free_port(), free_port());
        let log_path = dir.join("etcd.log");
        let log = std::fs::File::create(&log_path).expect("etcd log");
        let mut child = Command::new(bin)
            .args([
                "--name=relsync-test".to_string(),
                format!(
                    "--data-dir={}",
                    dir.join(format!("etcd-{attempt}")).display()
                ),
                format!("--listen-client-urls=http://127.0.0.1:{client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster=relsync-test=http://127.0.0.1:{peer}"),
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if http_status(client, "/health") == Some(200) {
                children.push(child);
                return client;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    panic!("etcd did not come up on a loopback port; its log:\n{last_log}");
}

/// An HTTP client that trusts the test CA (no connection pool: each test runtime is short).
fn client() -> reqwest::Client {
    let ca = std::fs::read(ca_pem()).expect("test CA");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

async fn request(
    base: &str,
    token: &str,
    method: &str,
    path_and_query: &str,
    content_type: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client()
        .request(method, format!("{base}{path_and_query}"))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req
            .header("content-type", content_type)
            .body(serde_json::to_vec(body).expect("JSON"));
    }
    let resp = req.send().await.expect("request to kube-apiserver");
    let code = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// What the front shares between the test and its handler.
struct FrontState {
    upstream: String,
    admin_token: String,
    faults: Mutex<VecDeque<u16>>,
    hook: Mutex<Option<Write>>,
    requests: Mutex<Vec<LoggedRequest>>,
    import_mode: Mutex<ImportMode>,
    /// `(namespace, ImageStream, tag)` → the message of a failing import.
    import_failures: Mutex<BTreeMap<(String, String, String), String>>,
}

/// One test's view of the shared server: its namespaces and its front.
pub struct TestCluster {
    server: &'static Apiserver,
    prefix: String,
    state: Arc<FrontState>,
    front_port: u16,
    _front: ServerThread,
    namespaces: Mutex<Vec<String>>,
}

impl TestCluster {
    /// A fresh view with its own namespace prefix and front.
    pub fn new() -> TestCluster {
        let server = Apiserver::shared();
        let prefix = format!(
            "t{}-{}",
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..) % 100_000
        );
        let state = Arc::new(FrontState {
            upstream: server.url.clone(),
            admin_token: server.admin_token.clone(),
            faults: Mutex::new(VecDeque::new()),
            hook: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            import_mode: Mutex::new(ImportMode::Auto),
            import_failures: Mutex::new(BTreeMap::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind front");
        listener.set_nonblocking(true).expect("nonblocking");
        let front_port = listener.local_addr().expect("addr").port();
        let app = axum::Router::new()
            .fallback(front)
            .with_state(state.clone());
        TestCluster {
            server,
            prefix,
            state,
            front_port,
            _front: ServerThread::serve(listener, app),
            namespaces: Mutex::new(Vec::new()),
        }
    }

    /// The shared server.
    pub fn server(&self) -> &'static Apiserver {
        self.server
    }

    /// This test's name for namespace `name` (`<prefix>-<name>`).
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// `http://127.0.0.1:PORT` of the front.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.front_port)
    }

    /// The admin token (to prove it never leaks into output).
    pub fn token(&self) -> String {
        self.server.admin_token.clone()
    }

    /// Creates namespace `ns` (a full name, see [`TestCluster::ns`]); deleted on drop.
    pub fn add_namespace(&self, ns: &str) {
        let (code, body) = self.server.admin(
            "POST",
            "/api/v1/namespaces",
            "application/json",
            Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
        );
        assert!(
            code == 201 || code == 409,
            "create namespace {ns}: {code} {body}"
        );
        self.namespaces.lock().unwrap().push(ns.to_string());
    }

    /// Writes `dir/kubeconfig` for the front as the admin, context namespace `namespace`.
    pub fn write_kubeconfig(&self, dir: &Path, namespace: &str) -> PathBuf {
        write_kubeconfig(dir, &self.url(), None, &self.server.admin_token, namespace)
    }

    /// Writes `dir/kubeconfig` for the real server itself (HTTPS, the test CA) as the
    /// holder of `token`.
    pub fn write_direct_kubeconfig(&self, dir: &Path, namespace: &str, token: &str) -> PathBuf {
        write_kubeconfig(dir, &self.server.url, Some(&ca_pem()), token, namespace)
    }

    /// A request as the admin, straight to the real server.
    pub fn admin(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.server
            .admin(method, path_and_query, content_type, body)
    }

    /// The object, if it exists.
    pub fn get(&self, r: Resource, ns: &str, name: &str) -> Option<Value> {
        let (code, body) = self.admin("GET", &r.path(ns, name), "", None);
        match code {
            200 => Some(body),
            404 => None,
            _ => panic!("GET {ns}/{name}: {code} {body}"),
        }
    }

    /// Creates `obj` as `manager` (a forced server-side apply, so `manager` owns its
    /// fields); returns the stored object.
    pub fn insert(&self, r: Resource, ns: &str, manager: &str, obj: Value) -> Value {
        self.apply_as(r, ns, manager, obj, true).expect("seed")
    }

    /// Server-side apply as `manager` (what another client would do); the status and
    /// `Status` object on failure.
    pub fn apply_as(
        &self,
        r: Resource,
        ns: &str,
        manager: &str,
        obj: Value,
        force: bool,
    ) -> Result<Value, (u16, Value)> {
        let name = obj["metadata"]["name"].as_str().expect("metadata.name");
        let path = format!("{}?fieldManager={manager}&force={force}", r.path(ns, name));
        let (code, body) = self.admin("PATCH", &path, "application/apply-patch+yaml", Some(&obj));
        self.after_write(r, ns, name, code)?;
        Ok(body)
    }

    /// A JSON merge patch as `manager` (operation Update).
    pub fn merge_patch_as(
        &self,
        r: Resource,
        ns: &str,
        name: &str,
        manager: &str,
        patch: Value,
    ) -> Result<Value, (u16, Value)> {
        let path = format!("{}?fieldManager={manager}", r.path(ns, name));
        let (code, body) = self.admin("PATCH", &path, "application/merge-patch+json", Some(&patch));
        self.after_write(r, ns, name, code)
            .map_err(|(c, _)| (c, body.clone()))?;
        Ok(body)
    }

    fn after_write(
        &self,
        r: Resource,
        ns: &str,
        name: &str,
        code: u16,
    ) -> Result<(), (u16, Value)> {
        if !(200..300).contains(&code) {
            return Err((code, Value::Null));
        }
        if r == Resource::ImageStreams
            && *self.state.import_mode.lock().unwrap() == ImportMode::Auto
        {
            off_thread(import(&self.state, ns, name));
        }
        Ok(())
    }

    /// Deletes an object; `false` if it was absent.
    pub fn delete(&self, r: Resource, ns: &str, name: &str) -> bool {
        let (code, body) = self.admin("DELETE", &r.path(ns, name), "", None);
        assert!(
            code == 200 || code == 404,
            "DELETE {ns}/{name}: {code} {body}"
        );
        code == 200
    }

    /// Sets when imports happen.
    pub fn set_import_mode(&self, mode: ImportMode) {
        *self.state.import_mode.lock().unwrap() = mode;
    }

    /// Makes every import of tag `tag` of ImageStream `ns/name` fail with `message`.
    pub fn fail_import(&self, ns: &str, name: &str, tag: &str, message: &str) {
        let key = (ns.to_string(), name.to_string(), tag.to_string());
        self.state
            .import_failures
            .lock()
            .unwrap()
            .insert(key, message.into());
    }

    /// Imports every tag behind its spec of every ImageStream in this test's namespaces.
    pub fn import_now(&self) {
        for ns in self.namespaces.lock().unwrap().clone() {
            let (code, list) = self.admin("GET", &Resource::ImageStreams.collection(&ns), "", None);
            assert_eq!(code, 200, "{list}");
            for is in list["items"].as_array().cloned().unwrap_or_default() {
                let name = is["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                off_thread(import(&self.state, &ns, &name));
            }
        }
    }

    /// The next `n` requests through the front answer `status` (429 with `Retry-After: 0`,
    /// others with a `Status` object naming an injected fault).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state
            .faults
            .lock()
            .unwrap()
            .extend(std::iter::repeat_n(status, n));
    }

    /// Sends `write` to the real server (as the admin) just before the front forwards the
    /// next server-side apply.
    pub fn on_next_apply(&self, write: Write) {
        *self.state.hook.lock().unwrap() = Some(write);
    }

    /// Every request the front received so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// A token of ServiceAccount `ns/name` (created if needed), from the TokenRequest API.
    pub fn service_account_token(&self, ns: &str, name: &str) -> String {
        let (code, body) = self.admin(
            "POST",
            &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            "application/json",
            Some(
                &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
            ),
        );
        assert!(
            code == 201 || code == 409,
            "ServiceAccount {ns}/{name}: {code} {body}"
        );
        let (code, body) = self.admin(
            "POST",
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/{name}/token"),
            "application/json",
            Some(
                &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": 3600}}),
            ),
        );
        assert_eq!(code, 201, "TokenRequest for {ns}/{name}: {body}");
        body["status"]["token"].as_str().expect("token").to_string()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for ns in self.namespaces.lock().unwrap().drain(..) {
            let _ = self
                .server
                .admin("DELETE", &format!("/api/v1/namespaces/{ns}"), "", None);
        }
    }
}

fn write_kubeconfig(
    dir: &Path,
    server: &str,
    ca: Option<&Path>,
    token: &str,
    namespace: &str,
) -> PathBuf {
    let path = dir.join("kubeconfig");
    let ca = ca.map_or(String::new(), |ca| {
        format!("    certificate-authority: {}\n", ca.display())
    });
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: relsync-test\n  cluster:\n    server: {server}\n{ca}\
         users:\n- name: relsync-test\n  user:\n    token: {token}\n\
         contexts:\n- name: relsync-test\n  context:\n    cluster: relsync-test\n    user: relsync-test\n    namespace: {namespace}\n\
         current-context: relsync-test\n"
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// The front's handler: log, inject, hook, forward, import.
async fn front(State(st): State<Arc<FrontState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    st.requests.lock().unwrap().push(LoggedRequest {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
    });
    let fault = st.faults.lock().unwrap().pop_front();
    if let Some(code) = fault {
        let mut resp = Response::builder()
            .status(code)
            .header("content-type", "application/json");
        if code == 429 {
            resp = resp.header("retry-after", "0");
        }
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("injected fault {code}"), "reason": "InternalError", "code": code});
        return resp.body(Body::from(status.to_string())).expect("response");
    }
    let is_apply = method == "PATCH"
        && content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/apply-patch"));
    if is_apply {
        let hook = st.hook.lock().unwrap().take();
        if let Some(w) = hook {
            let (code, body) = request(
                &st.upstream,
                &st.admin_token,
                w.method,
                &w.path,
                w.content_type,
                Some(&w.body),
            )
            .await;
            assert!(
                (200..300).contains(&code),
                "the hook's write: {code} {body}"
            );
        }
    }
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .expect("request body");
    let target = if query.is_empty() {
        format!("{}{path}", st.upstream)
    } else {
        format!("{}{path}?{query}", st.upstream)
    };
    let mut up = client().request(parts.method.clone(), target);
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" && k != "connection" {
            up = up.header(k, v);
        }
    }
    let resp = match up.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Body::from(format!("front: {e}")))
                .expect("response");
        }
    };
    let code = resp.status();
    let mut out = Response::builder().status(code);
    for (k, v) in resp.headers() {
        if k != "transfer-encoding" && k != "connection" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    let watch = url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    if watch {
        return out
            .body(Body::from_stream(resp.bytes_stream()))
            .expect("response");
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    // An ImageStream write (not one to its status) is followed by OpenShift's import.
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if code.is_success()
        && method != "GET"
        && method != "DELETE"
        && *st.import_mode.lock().unwrap() == ImportMode::Auto
        && let [
            "apis",
            "image.openshift.io",
            "v1",
            "namespaces",
            ns,
            "imagestreams",
            name,
        ] = segments[..]
    {
        import(&st, ns, name).await;
    }
    out.body(Body::from(bytes)).expect("response")
}

fn now() -> String {
    format!("{:.0}", k8s_openapi::jiff::Timestamp::now())
}

/// OpenShift's image import for ImageStream `ns/name`, as its controller writes it: the
/// status subresource gets, per spec tag from a `DockerImage` pinned by digest, an item
/// with that digest (newest first), or the test's failure as an `ImportSuccess=False`
/// condition. Tags already imported at the same reference are left as they are.
async fn import(st: &FrontState, ns: &str, name: &str) {
    let path = Resource::ImageStreams.path(ns, name);
    let (code, obj) = request(&st.upstream, &st.admin_token, "GET", &path, "", None).await;
    if code != 200 {
        return;
    }
    let old = obj["status"]["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut tags = Vec::new();
    for spec in obj["spec"]["tags"].as_array().cloned().unwrap_or_default() {
        let tag = spec["name"].as_str().unwrap_or_default().to_string();
        let reference = spec["from"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut entry = old
            .iter()
            .find(|t| t["tag"] == spec["name"])
            .cloned()
            .unwrap_or_else(|| json!({"tag": tag, "items": []}));
        if spec["from"]["kind"] != "DockerImage" {
            tags.push(entry);
            continue;
        }
        let failure = st
            .import_failures
            .lock()
            .unwrap()
            .get(&(ns.to_string(), name.to_string(), tag.clone()))
            .cloned();
        let current = entry["items"][0]["dockerImageReference"] == reference.as_str();
        match (failure, reference.split_once('@')) {
            (None, Some(_)) if current => {}
            (None, Some((_, digest))) => {
                let item =
                    json!({"created": now(), "dockerImageReference": reference, "image": digest});
                let mut items = entry["items"].as_array().cloned().unwrap_or_default();
                items.insert(0, item);
                entry = json!({"tag": tag, "items": items});
            }
            (failure, _) => {
                let message = failure.unwrap_or_else(|| {
                    format!(
                        "the test import takes only references pinned by digest, not {reference}"
                    )
                });
                entry["conditions"] = json!([{"type": "ImportSuccess", "status": "False",
                    "reason": "NotFound", "message": message, "lastTransitionTime": now()}]);
            }
        }
        tags.push(entry);
    }
    if Value::Array(tags.clone()) == obj["status"]["tags"] {
        return;
    }
    let patch = json!({"status": {"tags": tags}});
    let (code, body) = request(
        &st.upstream,
        &st.admin_token,
        "PATCH",
        &format!("{path}/status?fieldManager=openshift-image-import"),
        "application/merge-patch+json",
        Some(&patch),
    )
    .await;
    assert!(
        code == 200 || code == 404,
        "the import's status write: {code} {body}"
    );
}
