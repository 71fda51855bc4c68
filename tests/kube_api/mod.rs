//! A small in-process Kubernetes API server for tests: ConfigMaps, Leases and OpenShift
//! ImageStreams, reached through a kubeconfig exactly as a cluster would be.
//!
//! It implements, following Kubernetes API conventions:
//! - paths `/api/v1/namespaces/{ns}/configmaps[/{name}]`,
//!   `/apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]`,
//!   `/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams[/{name}]` and the
//!   all-namespaces list `/apis/{group}/v1/{plural}`;
//! - GET, LIST (`fieldSelector=metadata.name=X` only), POST (409 AlreadyExists), PUT
//!   (404 if absent, 409 Conflict on a stale `metadata.resourceVersion`), DELETE (Status
//!   Success), PATCH `application/merge-patch+json` (RFC 7386, operation Update) and
//!   `application/apply-patch+yaml` (server-side apply; body JSON or YAML), WATCH
//!   (`?watch=true|1`, optional `resourceVersion`, `timeoutSeconds`) as newline-delimited
//!   `{"type","object"}` events; errors are `Status` objects (NotFound, AlreadyExists,
//!   Conflict, BadRequest, UnsupportedMediaType, Unauthorized);
//! - metadata: global `resourceVersion` counter, `uid`, `creationTimestamp`, and for
//!   ImageStreams `generation` (+1 when `spec` changes); `managedFields` in the real
//!   FieldsV1 format, one entry per manager and operation;
//! - server-side apply: leaf field sets where maps recurse and lists are atomic, except
//!   the associative lists `spec.tags` (key `name`) and `status.tags` (key `tag`) of
//!   ImageStreams; conflicts with other managers' differing values (409 Conflict listing
//!   them in the message and in `details.causes`) unless `force=true`, which moves
//!   ownership; fields the applier owned and now omits are removed when nobody else owns
//!   them; a `resourceVersion` in the body is a precondition (409 when stale, and 409 when
//!   the object is absent: real servers differ per resource, kubernetes#106745);
//! - OpenShift ImageStream behaviour: a spec tag created or with a changed `from` gets the
//!   new `metadata.generation`; the "import" fills `status.tags[]` (newest item first) for
//!   `DockerImage` tags pinned by digest, or sets an `ImportSuccess=False` condition when a
//!   test asked for a failure (see [`ImportMode`], [`KubeApi::fail_import`]). The import is
//!   a separate write after the request's own (its own resourceVersion and MODIFIED event),
//!   so a write's response still shows the old status, as on OpenShift.
//! - a bearer token is required (401 otherwise); faults ([`KubeApi::fail_next`]), a hook
//!   run before the next apply ([`KubeApi::on_next_apply`]) and a request log.
//!
//! It does not implement: other resources, label selectors, `dryRun` (refused with 400),
//! JSON patch and strategic merge patch (415), subresources (`/status`), finalizers,
//! admission or validation beyond names, 410 Gone for old watch versions (the whole
//! history is kept), bookmarks, `managedFields` for the import's status writes, list
//! chunking, and non-`DockerImage` tag sources (never imported).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

mod http;
mod ownership;
mod store;

use http::*;
use ownership::*;
#[allow(unused_imports)]
use store::*;

/// The three resources the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// `v1` ConfigMaps.
    ConfigMaps,
    /// `coordination.k8s.io/v1` Leases.
    Leases,
    /// `image.openshift.io/v1` ImageStreams.
    ImageStreams,
}

impl Resource {
    const ALL: [Resource; 3] = [Self::ConfigMaps, Self::Leases, Self::ImageStreams];

    /// `(group, kind, plural)`.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Resource::ConfigMaps => ("", "ConfigMap", "configmaps"),
            Resource::Leases => ("coordination.k8s.io", "Lease", "leases"),
            Resource::ImageStreams => ("image.openshift.io", "ImageStream", "imagestreams"),
        }
    }
    /// The API group (`""` for core).
    pub fn group(self) -> &'static str {
        self.names().0
    }
    /// `kind` of its objects.
    pub fn kind(self) -> &'static str {
        self.names().1
    }
    /// The plural path segment.
    pub fn plural(self) -> &'static str {
        self.names().2
    }
    /// `apiVersion` of its objects.
    pub fn api_version(self) -> String {
        match self.group() {
            "" => "v1".to_string(),
            g => format!("{g}/v1"),
        }
    }
    fn prefix(self) -> String {
        match self.group() {
            "" => "/api/v1".to_string(),
            g => format!("/apis/{g}/v1"),
        }
    }
    /// `imagestreams.image.openshift.io`, as in error messages.
    fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_string(),
            g => format!("{}.{g}", self.plural()),
        }
    }
    /// The key of an associative list at `path` (FieldsV1 elements), if it is one.
    fn list_key(self, path: &[String]) -> Option<&'static str> {
        match (self, path) {
            (Resource::ImageStreams, [a, b]) if a == "f:spec" && b == "f:tags" => Some("name"),
            (Resource::ImageStreams, [a, b]) if a == "f:status" && b == "f:tags" => Some("tag"),
            _ => None,
        }
    }
}

/// When ImageStream spec tags are "imported" into `status.tags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Right after every write (the default).
    Auto,
    /// Only when a test calls [`KubeApi::import_now`].
    Manual,
}

/// One request as received.
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
    /// The body parsed as JSON or YAML, if it had one.
    pub body: Option<Value>,
}

impl LoggedRequest {
    /// The value of query parameter `name`, if present.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A hook run on the store just before the next apply is processed.
pub type ApplyHook = Box<dyn FnOnce(&mut Store) + Send>;

#[derive(Clone)]
struct Event {
    resource: Resource,
    ns: String,
    rv: u64,
    json: Value,
}

type Key = (Resource, String, String);
type FieldPath = Vec<String>;
type Outcome = Result<Value, Value>;
type Query = BTreeMap<String, String>;

/// The server's state: objects, namespaces, history and test knobs. Tests reach it through
/// [`KubeApi`] or inside an [`ApplyHook`].
pub struct Store {
    objects: BTreeMap<Key, Value>,
    namespaces: BTreeSet<String>,
    rv: u64,
    history: Vec<Event>,
    events: broadcast::Sender<Event>,
    import_mode: ImportMode,
    import_failures: BTreeMap<(String, String, String), String>,
    faults: VecDeque<u16>,
    hook: Option<ApplyHook>,
    requests: Vec<LoggedRequest>,
}

/// The running server; shut down on drop.
pub struct KubeApi {
    shared: Arc<Shared>,
    port: u16,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    store: Mutex<Store>,
    token: String,
    shutdown: watch::Receiver<bool>,
}

impl KubeApi {
    /// Starts a server on a free loopback port, on its own thread and runtime.
    pub fn start() -> KubeApi {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind kube api");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let token = format!("sha256~{:032x}", fastrand::u128(..));
        let store = Store {
            objects: BTreeMap::new(),
            namespaces: BTreeSet::new(),
            rv: 1000,
            history: Vec::new(),
            events: broadcast::channel(1024).0,
            import_mode: ImportMode::Auto,
            import_failures: BTreeMap::new(),
            faults: VecDeque::new(),
            hook: None,
            requests: Vec::new(),
        };
        let (store, shutdown_rx) = (Mutex::new(store), shutdown_rx);
        let shared = Arc::new(Shared {
            store,
            token,
            shutdown: shutdown_rx,
        });
        let (st, mut stop) = (shared.clone(), shared.shutdown.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            rt.expect("runtime").block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new().fallback(handle).with_state(st);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await
                    .expect("kube api server");
            });
        });
        KubeApi {
            shared,
            port,
            shutdown,
            thread: Some(thread),
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.shared.store.lock().expect("store lock")
    }
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    /// The bearer token the kubeconfig carries (to prove it never leaks into output).
    pub fn token(&self) -> String {
        self.shared.token.clone()
    }
    /// Writes `dir/kubeconfig` (server, token user, context with `namespace`, current).
    pub fn write_kubeconfig(&self, dir: &Path, namespace: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: relsync-test\n  cluster:\n    server: {}\n\
             users:\n- name: relsync-test\n  user:\n    token: {}\n\
             contexts:\n- name: relsync-test\n  context:\n    cluster: relsync-test\n    user: relsync-test\n    namespace: {namespace}\n\
             current-context: relsync-test\n",
            self.url(),
            self.shared.token
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }
    /// Makes namespace `ns` exist.
    pub fn add_namespace(&self, ns: &str) {
        self.store().namespaces.insert(ns.to_string());
    }
    /// The stored object, if any.
    pub fn get(&self, r: Resource, ns: &str, name: &str) -> Option<Value> {
        self.store().get(r, ns, name)
    }
    /// Seeds `obj` by a forced server-side apply as `manager` (creating `ns` if needed),
    /// so `manager` owns its fields; returns the stored object.
    pub fn insert(&self, r: Resource, ns: &str, manager: &str, obj: Value) -> Value {
        let (mut store, name) = (self.store(), name_of(&obj));
        store.namespaces.insert(ns.to_string());
        store.apply(r, ns, &name, manager, obj, true).expect("seed");
        store.get(r, ns, &name).expect("seeded")
    }
    /// Server-side apply as `manager` (what another client would do).
    pub fn apply_as(
        &self,
        r: Resource,
        ns: &str,
        manager: &str,
        obj: Value,
        force: bool,
    ) -> Outcome {
        self.store()
            .apply(r, ns, &name_of(&obj), manager, obj, force)
    }
    /// A JSON merge patch as `manager` (operation Update).
    pub fn merge_patch_as(
        &self,
        r: Resource,
        ns: &str,
        name: &str,
        by: &str,
        patch: Value,
    ) -> Outcome {
        self.store().merge_patch(r, ns, name, by, patch)
    }
    /// Deletes an object; `false` if it was absent.
    pub fn delete(&self, r: Resource, ns: &str, name: &str) -> bool {
        self.store().delete(r, ns, name).is_ok()
    }
    /// Sets when imports happen.
    pub fn set_import_mode(&self, mode: ImportMode) {
        self.store().import_mode = mode;
    }
    /// Makes every import of tag `tag` of ImageStream `ns/name` fail with `message`.
    pub fn fail_import(&self, ns: &str, name: &str, tag: &str, message: &str) {
        let key = (ns.to_string(), name.to_string(), tag.to_string());
        self.store().import_failures.insert(key, message.into());
    }
    /// Undoes [`KubeApi::fail_import`] for that tag.
    pub fn clear_import_failure(&self, ns: &str, name: &str, tag: &str) {
        let key = (ns.to_string(), name.to_string(), tag.to_string());
        self.store().import_failures.remove(&key);
    }
    /// Imports every ImageStream tag that is behind its spec, now.
    pub fn import_now(&self) {
        self.store().import_all();
    }
    /// The next `n` requests answer `status` (429 with `Retry-After: 0`, others as a
    /// `Status` object). Note: the kube client itself retries 429, 503 and 504 (3 times).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.store().faults.extend(std::iter::repeat_n(status, n));
    }
    /// Runs `hook` on the store just before the next server-side apply request (with the
    /// store locked: the hook uses the `Store` it is given, never this `KubeApi`).
    pub fn on_next_apply(&self, hook: ApplyHook) {
        self.store().hook = Some(hook);
    }
    /// Every request received so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.store().requests.clone()
    }
    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store().rv
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn now() -> String {
    format!("{:.0}", k8s_openapi::jiff::Timestamp::now())
}

/// A `Status` failure object; `of` names the object in `details`.
fn status(code: u16, reason: &str, message: impl ToString, of: Option<(Resource, &str)>) -> Value {
    let details = of.map_or(
        json!({}),
        |(r, name)| json!({"name": name, "group": r.group(), "kind": r.plural()}),
    );
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message.to_string(), "reason": reason, "details": details, "code": code})
}

fn not_found(r: Resource, name: &str) -> Value {
    let message = format!("{} \"{name}\" not found", r.qualified());
    status(404, "NotFound", message, Some((r, name)))
}

fn conflict(r: Resource, name: &str) -> Value {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": {STALE}",
        r.qualified()
    );
    status(409, "Conflict", message, Some((r, name)))
}

fn bad_request(message: &str) -> Value {
    status(400, "BadRequest", message, None)
}
