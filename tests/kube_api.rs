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
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};

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

const STALE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

impl Store {
    /// The stored object, if any.
    pub fn get(&self, r: Resource, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(r, ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Makes namespace `ns` exist.
    pub fn add_namespace(&mut self, ns: &str) {
        self.namespaces.insert(ns.to_string());
    }

    fn check_namespace(&self, ns: &str) -> Result<(), Value> {
        if self.namespaces.contains(ns) {
            return Ok(());
        }
        let mut s = status(
            404,
            "NotFound",
            format!("namespaces \"{ns}\" not found"),
            None,
        );
        s["details"] = json!({"name": ns, "kind": "namespaces"});
        Err(s)
    }

    /// POST: creates `obj` as `manager` (operation Update).
    pub fn create(&mut self, r: Resource, ns: &str, manager: &str, obj: Value) -> Outcome {
        self.check_namespace(ns)?;
        let name = name_of(&obj);
        if name.is_empty() {
            let message = format!(
                "{} \"\" is invalid: metadata.name: Required value",
                r.kind()
            );
            return Err(status(422, "Invalid", message, Some((r, ""))));
        }
        if self.get(r, ns, &name).is_some() {
            let message = format!("{} \"{name}\" already exists", r.qualified());
            return Err(status(409, "AlreadyExists", message, Some((r, &name))));
        }
        if has_resource_version(&obj) {
            return Err(bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        Ok(self.update(r, ns, &name, manager, None, obj))
    }

    /// PUT: replaces the object as `manager` (409 when `metadata.resourceVersion` is stale;
    /// 404 when absent, except that a Lease is created by an unconditional PUT).
    pub fn replace(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        manager: &str,
        obj: Value,
    ) -> Outcome {
        let Some(old) = self.get(r, ns, name) else {
            // Leases allow create-on-update (unconditional only); other kinds do not.
            let creatable = r == Resource::Leases && !has_resource_version(&obj);
            if creatable && obj["metadata"]["name"] == name {
                return self.create(r, ns, manager, obj);
            }
            return Err(not_found(r, name));
        };
        check_precondition(r, name, &obj, &old)?;
        Ok(self.update(r, ns, name, manager, Some(old), obj))
    }

    /// JSON merge patch (RFC 7386) as `manager` (operation Update).
    pub fn merge_patch(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        manager: &str,
        patch: Value,
    ) -> Outcome {
        let old = self.get(r, ns, name).ok_or_else(|| not_found(r, name))?;
        check_precondition(r, name, &patch, &old)?;
        let mut obj = old.clone();
        json_merge_patch(&mut obj, &patch);
        Ok(self.update(r, ns, name, manager, Some(old), obj))
    }

    /// A write with operation Update: changed fields move to `manager`.
    fn update(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        manager: &str,
        old: Option<Value>,
        mut obj: Value,
    ) -> Value {
        clear_server_fields(&mut obj);
        obj["metadata"]["managedFields"] = old
            .as_ref()
            .map_or(json!([]), |o| o["metadata"]["managedFields"].clone());
        update_owners(r, old.as_ref(), &mut obj, manager);
        self.store_write(r, ns, name, old, obj)
    }

    /// Server-side apply of `applied` as `manager`; creates the object when absent.
    pub fn apply(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        manager: &str,
        applied: Value,
        force: bool,
    ) -> Outcome {
        let body_name = applied["metadata"]["name"].as_str().unwrap_or_default();
        if body_name != name {
            let message =
                format!("the name of the object ({body_name}) does not match the URL ({name})");
            return Err(bad_request(&message));
        }
        let old = self.get(r, ns, name);
        match &old {
            Some(old) => check_precondition(r, name, &applied, old)?,
            None if has_resource_version(&applied) => return Err(conflict(r, name)),
            None => self.check_namespace(ns)?,
        }
        let live = old
            .clone()
            .unwrap_or_else(|| json!({"metadata": {"name": name}}));
        let applied_view = owned_view(r, &applied);
        let live_view = owned_view(r, &live);
        let applied_set = leaves(r, &applied_view);
        let mut entries = managers(&live);
        let is_mine = |e: &Entry| e.manager == manager && e.operation == "Apply";
        let mut conflicts: BTreeMap<String, Vec<FieldPath>> = BTreeMap::new();
        for e in entries.iter().filter(|e| !is_mine(e)) {
            for p in e.fields.intersection(&applied_set) {
                if !is_item(p) && value_at(&live_view, p) != value_at(&applied_view, p) {
                    conflicts
                        .entry(e.manager.clone())
                        .or_default()
                        .push(p.clone());
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(apply_conflict(r, name, &conflicts));
        }
        for e in entries.iter_mut().filter(|e| !is_mine(e)) {
            if let Some(lost) = conflicts.get(&e.manager) {
                e.fields.retain(|p| !lost.contains(p));
            }
        }
        let previous = entries
            .iter()
            .find(|e| is_mine(e))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let mut obj = live.clone();
        merge_applied(r, &mut obj, &applied, &mut Vec::new());
        let others: Vec<&FieldPath> = entries
            .iter()
            .filter(|e| !is_mine(e))
            .flat_map(|e| e.fields.iter())
            .collect();
        let mut removed: Vec<&FieldPath> = previous.difference(&applied_set).collect();
        removed.sort_by_key(|p| p.len());
        for p in removed {
            if !others.iter().any(|q| q.starts_with(p)) && !is_item_key(p) {
                remove_at(&mut obj, p, &applied_set, &others);
            }
        }
        entries.retain(|e| !is_mine(e));
        entries.push(Entry {
            manager: manager.into(),
            operation: "Apply".into(),
            api_version: r.api_version(),
            time: now(),
            fields: applied_set,
        });
        set_managers(r, &mut obj, entries);
        clear_server_fields(&mut obj);
        Ok(self.store_write(r, ns, name, old, obj))
    }

    /// Deletes the object, answering a `Status` Success.
    pub fn delete(&mut self, r: Resource, ns: &str, name: &str) -> Outcome {
        let obj = self
            .objects
            .remove(&(r, ns.to_string(), name.to_string()))
            .ok_or_else(|| not_found(r, name))?;
        self.rv += 1;
        self.emit(r, ns, "DELETED", obj.clone());
        let details = json!({"name": name, "group": r.group(), "kind": r.plural(), "uid": obj["metadata"]["uid"]});
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
        )
    }

    fn emit(&mut self, r: Resource, ns: &str, kind: &str, object: Value) {
        let event = Event {
            resource: r,
            ns: ns.to_string(),
            rv: self.rv,
            json: json!({"type": kind, "object": object}),
        };
        self.history.push(event.clone());
        let _ = self.events.send(event);
    }

    /// Sets server-owned metadata, stores `obj`, emits the event, then imports (Auto mode).
    fn store_write(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        old: Option<Value>,
        mut obj: Value,
    ) -> Value {
        self.rv += 1;
        obj["apiVersion"] = json!(r.api_version());
        obj["kind"] = json!(r.kind());
        let meta = &mut obj["metadata"];
        meta["name"] = json!(name);
        meta["namespace"] = json!(ns);
        meta["resourceVersion"] = json!(self.rv.to_string());
        let old_meta = old.as_ref().map(|o| o["metadata"].clone());
        let random_uid = || {
            format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                fastrand::u32(..),
                fastrand::u16(..),
                fastrand::u16(..4096),
                fastrand::u16(..4096),
                fastrand::u64(..1 << 48)
            )
        };
        meta["uid"] = old_meta
            .as_ref()
            .map_or_else(|| json!(random_uid()), |m| m["uid"].clone());
        meta["creationTimestamp"] = old_meta
            .as_ref()
            .map_or_else(|| json!(now()), |m| m["creationTimestamp"].clone());
        if r == Resource::ImageStreams {
            let old_gen = old_meta.as_ref().and_then(|m| m["generation"].as_u64());
            let spec_changed = old
                .as_ref()
                .is_none_or(|o| o.get("spec") != obj.get("spec"));
            let generation = match old_gen {
                Some(g) if spec_changed => g + 1,
                Some(g) => g,
                None => 1,
            };
            obj["metadata"]["generation"] = json!(generation);
            let old_tags = old
                .as_ref()
                .map(|o| o["spec"]["tags"].clone())
                .unwrap_or(Value::Null);
            if let Some(tags) = obj["spec"]["tags"].as_array_mut() {
                for tag in tags {
                    let before = find_item(&old_tags, "name", &tag["name"]);
                    if before.is_none_or(|b| b["from"] != tag["from"])
                        || tag["generation"].is_null()
                    {
                        tag["generation"] = json!(generation);
                    }
                }
            }
            obj["status"] = old
                .as_ref()
                .map(|o| o["status"].clone())
                .unwrap_or(Value::Null);
            if obj["status"].is_null() {
                obj["status"] = json!({"dockerImageRepository": format!("image-registry.openshift-image-registry.svc:5000/{ns}/{name}")});
            }
        }
        self.objects
            .insert((r, ns.into(), name.into()), obj.clone());
        self.emit(
            r,
            ns,
            if old.is_some() { "MODIFIED" } else { "ADDED" },
            obj.clone(),
        );
        if r == Resource::ImageStreams && self.import_mode == ImportMode::Auto {
            self.import(ns, name);
        }
        obj
    }

    /// Imports every ImageStream tag that is behind its spec.
    pub fn import_all(&mut self) {
        let keys: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| k.0 == Resource::ImageStreams)
            .cloned()
            .collect();
        for (_, ns, name) in keys {
            self.import(&ns, &name);
        }
    }

    /// The OpenShift image import for one ImageStream, as a separate status write.
    fn import(&mut self, ns: &str, name: &str) {
        let key = (Resource::ImageStreams, ns.to_string(), name.to_string());
        let Some(mut obj) = self.objects.get(&key).cloned() else {
            return;
        };
        let old_status = obj["status"]["tags"].clone();
        let mut status_tags = Vec::new();
        for spec in obj["spec"]["tags"].as_array().cloned().unwrap_or_default() {
            let tag = spec["name"].as_str().unwrap_or_default().to_string();
            let tag_gen = spec["generation"].as_u64().unwrap_or(0);
            let mut entry = find_item(&old_status, "tag", &spec["name"])
                .cloned()
                .unwrap_or_else(|| json!({"tag": tag, "items": []}));
            let seen = |v: &Value| v["generation"].as_u64().is_some_and(|g| g >= tag_gen);
            let done = entry["items"].get(0).is_some_and(seen)
                || entry["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(seen));
            if done || spec["from"]["kind"] != "DockerImage" {
                status_tags.push(entry);
                continue;
            }
            let reference = spec["from"]["name"].as_str().unwrap_or_default();
            let failure = match (
                self.import_failures
                    .get(&(ns.into(), name.into(), tag.clone())),
                reference.split_once('@'),
            ) {
                (Some(message), _) => Some(message.clone()),
                (None, None) => Some(format!(
                    "the test API server imports only references pinned by digest, not {reference}"
                )),
                (None, Some((_, digest))) => {
                    let item = json!({"created": now(), "dockerImageReference": reference, "image": digest, "generation": tag_gen});
                    entry["items"]
                        .as_array_mut()
                        .expect("items")
                        .insert(0, item);
                    entry
                        .as_object_mut()
                        .expect("status tag")
                        .remove("conditions");
                    None
                }
            };
            if let Some(message) = failure {
                entry["conditions"] = json!([{"type": "ImportSuccess", "status": "False", "reason": "NotFound",
                    "message": message, "generation": tag_gen, "lastTransitionTime": now()}]);
            }
            status_tags.push(entry);
        }
        let new_status = Value::Array(status_tags);
        if new_status == old_status || (old_status.is_null() && new_status == json!([])) {
            return;
        }
        self.rv += 1;
        obj["status"]["tags"] = new_status;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key, obj.clone());
        self.emit(Resource::ImageStreams, ns, "MODIFIED", obj);
    }
}

fn has_resource_version(obj: &Value) -> bool {
    obj["metadata"]
        .get("resourceVersion")
        .is_some_and(|v| !v.is_null())
}

fn check_precondition(r: Resource, name: &str, body: &Value, old: &Value) -> Result<(), Value> {
    match body["metadata"]
        .get("resourceVersion")
        .and_then(Value::as_str)
    {
        Some(rv)
            if rv
                != old["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default() =>
        {
            Err(conflict(r, name))
        }
        _ => Ok(()),
    }
}

fn clear_server_fields(obj: &mut Value) {
    if let Some(m) = obj["metadata"].as_object_mut() {
        for f in [
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
            "selfLink",
        ] {
            m.remove(f);
        }
    }
}

fn json_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            json_merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

// ---- field ownership (FieldsV1) ----

struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    fields: BTreeSet<FieldPath>,
}

/// The part of an object whose fields managers own (not apiVersion, kind, server metadata,
/// nor an ImageStream's status).
fn owned_view(r: Resource, obj: &Value) -> Value {
    let mut view = obj.clone();
    if let Some(o) = view.as_object_mut() {
        for f in ["apiVersion", "kind"] {
            o.remove(f);
        }
        if r == Resource::ImageStreams {
            o.remove("status");
        }
        if let Some(Value::Object(m)) = o.get_mut("metadata") {
            m.retain(|k, _| k == "labels" || k == "annotations");
        }
        if o.get("metadata")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            o.remove("metadata");
        }
    }
    view
}

/// Whether `p` is the key field of a list item (never removed on its own).
fn is_item_key(p: &FieldPath) -> bool {
    let n = p.len();
    n >= 2 && key_of(&p[n - 2]).is_some_and(|(k, _)| p[n - 1] == format!("f:{k}"))
}

fn is_item(p: &FieldPath) -> bool {
    p.last().is_some_and(|e| e.starts_with("k:"))
}

/// Leaf field paths of `v`: maps recurse, associative list items are keyed (the item's own
/// path is included), anything else is a leaf.
fn leaves(r: Resource, v: &Value) -> BTreeSet<FieldPath> {
    fn walk(r: Resource, v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match v {
            Value::Object(m) if !m.is_empty() || path.is_empty() => {
                for (k, child) in m.iter().filter(|(_, c)| !c.is_null()) {
                    path.push(format!("f:{k}"));
                    walk(r, child, path, out);
                    path.pop();
                }
            }
            Value::Array(items) if r.list_key(path).is_some() => {
                let key = r.list_key(path).expect("key");
                for item in items {
                    path.push(format!("k:{}", json!({key: item[key]})));
                    out.insert(path.clone());
                    walk(r, item, path, out);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(r, v, &mut Vec::new(), &mut out);
    out
}

fn find_item<'a>(list: &'a Value, key: &str, want: &Value) -> Option<&'a Value> {
    list.as_array()?.iter().find(|i| &i[key] == want)
}

fn key_of(elem: &str) -> Option<(String, Value)> {
    let m: Map<String, Value> = serde_json::from_str(elem.strip_prefix("k:")?).ok()?;
    m.into_iter().next()
}

fn value_at<'a>(mut v: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    for elem in path {
        v = match elem.strip_prefix("f:") {
            Some(f) => v.get(f)?,
            None => {
                let (k, want) = key_of(elem)?;
                find_item(v, &k, &want)?
            }
        };
    }
    Some(v)
}

/// Removes the field at `path`, then parents left empty that nobody owns.
fn remove_at(obj: &mut Value, path: &FieldPath, kept: &BTreeSet<FieldPath>, others: &[&FieldPath]) {
    for depth in (1..=path.len()).rev() {
        let (parent, last) = (&path[..depth - 1], &path[depth - 1]);
        let owned = |p: &[String]| {
            kept.iter()
                .chain(others.iter().copied())
                .any(|q| q.starts_with(p))
        };
        if depth < path.len()
            && (owned(&path[..depth])
                || value_at(obj, &path[..depth].to_vec())
                    .is_none_or(|v| v.as_object().is_none_or(|m| !m.is_empty())))
        {
            return;
        }
        let Some(p) = value_at_mut(obj, parent) else {
            return;
        };
        match (last.strip_prefix("f:"), p) {
            (Some(f), Value::Object(m)) => {
                m.remove(f);
            }
            (None, Value::Array(items)) => {
                if let Some((k, want)) = key_of(last) {
                    items.retain(|i| i[&k] != want);
                }
            }
            _ => return,
        }
    }
}

fn value_at_mut<'a>(mut v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    for elem in path {
        v = match elem.strip_prefix("f:") {
            Some(f) => v.get_mut(f)?,
            None => {
                let (k, want) = key_of(elem)?;
                v.as_array_mut()?.iter_mut().find(|i| i[&k] == want)?
            }
        };
    }
    Some(v)
}

/// Merges an applied configuration into the live object: maps recursively, associative
/// lists by key, everything else replaced.
fn merge_applied(r: Resource, live: &mut Value, applied: &Value, path: &mut FieldPath) {
    let (Value::Object(l), Value::Object(a)) = (&mut *live, applied) else {
        *live = applied.clone();
        return;
    };
    for (k, av) in a.iter().filter(|(_, v)| !v.is_null()) {
        path.push(format!("f:{k}"));
        let lv = l.entry(k.clone()).or_insert(Value::Null);
        match (r.list_key(path), &mut *lv, av) {
            (Some(key), Value::Array(litems), Value::Array(aitems)) => {
                for ai in aitems {
                    match litems.iter_mut().find(|li| li[key] == ai[key]) {
                        Some(li) => merge_applied(r, li, ai, &mut path.clone()),
                        None => litems.push(ai.clone()),
                    }
                }
            }
            (_, Value::Object(_), Value::Object(_)) => merge_applied(r, lv, av, path),
            _ => *lv = av.clone(),
        }
        path.pop();
    }
}

fn managers(obj: &Value) -> Vec<Entry> {
    fn walk(node: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        for (k, child) in node.as_object().into_iter().flatten() {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            if child.as_object().is_some_and(|m| m.is_empty()) {
                out.insert(path.clone());
            }
            walk(child, path, out);
            path.pop();
        }
    }
    let list = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.iter()
        .map(|e| {
            let mut fields = BTreeSet::new();
            walk(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            let s = |f: &str| e[f].as_str().unwrap_or_default().to_string();
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                fields,
            }
        })
        .collect()
}

fn set_managers(r: Resource, obj: &mut Value, entries: Vec<Entry>) {
    let present = leaves(r, &owned_view(r, obj));
    let list: Vec<Value> = entries
        .into_iter()
        .filter_map(|mut e| {
            e.fields.retain(|p| present.contains(p));
            if e.fields.is_empty() {
                return None;
            }
            let mut tree = json!({});
            for p in &e.fields {
                let mut node = &mut tree;
                for elem in p {
                    node = node
                        .as_object_mut()
                        .expect("node")
                        .entry(elem.clone())
                        .or_insert(json!({}));
                }
                if is_item(p) {
                    node[".".to_string()] = json!({});
                }
            }
            Some(
                json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                        "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": tree}),
            )
        })
        .collect();
    obj["metadata"]["managedFields"] = Value::Array(list);
}

/// Ownership for an Update (create, replace, merge patch): changed fields move to `manager`.
fn update_owners(r: Resource, old: Option<&Value>, new: &mut Value, manager: &str) {
    let old_view = old.map(|o| owned_view(r, o)).unwrap_or(Value::Null);
    let new_view = owned_view(r, new);
    let changed: BTreeSet<FieldPath> = leaves(r, &new_view)
        .into_iter()
        .filter(|p| {
            if is_item(p) {
                value_at(&old_view, p).is_none()
            } else {
                value_at(&old_view, p) != value_at(&new_view, p)
            }
        })
        .collect();
    let mut entries = managers(new);
    for e in &mut entries {
        e.fields.retain(|p| !changed.contains(p));
    }
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update")
    {
        Some(e) => {
            e.fields.extend(changed);
            e.time = now();
        }
        None => entries.push(Entry {
            manager: manager.into(),
            operation: "Update".into(),
            api_version: r.api_version(),
            time: now(),
            fields: changed,
        }),
    }
    set_managers(r, new, entries);
}

fn display_path(p: &FieldPath) -> String {
    p.iter()
        .map(|e| match e.strip_prefix("f:") {
            Some(f) => format!(".{f}"),
            None => key_of(e)
                .map(|(k, v)| format!("[{k}={v}]"))
                .unwrap_or_default(),
        })
        .collect()
}

fn apply_conflict(r: Resource, name: &str, conflicts: &BTreeMap<String, Vec<FieldPath>>) -> Value {
    let total: usize = conflicts.values().map(Vec::len).sum();
    let mut lines = Vec::new();
    let mut causes = Vec::new();
    for (manager, paths) in conflicts {
        // As apimachinery words it: one field inline, several as a list.
        let using = format!("conflict with \"{manager}\" using {}", r.api_version());
        match paths.as_slice() {
            [one] => lines.push(format!("{using}: {}", display_path(one))),
            _ => {
                lines.push(format!("{}:", using.replacen("conflict", "conflicts", 1)));
                lines.extend(paths.iter().map(|p| format!("- {}", display_path(p))));
            }
        }
        for p in paths {
            let field = display_path(p);
            causes
                .push(json!({"reason": "FieldManagerConflict", "message": using, "field": field}));
        }
    }
    let s = if total == 1 { "" } else { "s" };
    let message = format!(
        "Apply failed with {total} conflict{s}: {}",
        lines.join("\n")
    );
    let mut s = status(409, "Conflict", message, Some((r, name)));
    s["details"]["causes"] = Value::Array(causes);
    s
}

// ---- HTTP ----

fn respond(code: u16, body: &Value) -> Response {
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = StatusCode::from_u16(code).expect("status code");
    res.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    res
}

fn parse_body(bytes: &Bytes) -> Option<Value> {
    let text = std::str::from_utf8(bytes).ok().filter(|t| !t.is_empty())?;
    serde_json::from_str(text)
        .ok()
        .or_else(|| serde_saphyr::from_str::<Value>(text).ok())
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_query = uri.query().unwrap_or("");
    let query: Query = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, parsed) = (header("content-type"), parse_body(&body));
    let mut store = shared.store.lock().expect("store lock");
    store.requests.push(LoggedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: raw_query.to_string(),
        content_type: content_type.clone(),
        body: parsed.clone(),
    });
    let fail = |s: Value| respond(s["code"].as_u64().unwrap_or(500) as u16, &s);
    if let Some(code) = store.faults.pop_front() {
        let reason = match code {
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        let mut res = fail(status(code, reason, format!("injected fault {code}"), None));
        res.headers_mut()
            .insert("retry-after", HeaderValue::from_static("0"));
        return res;
    }
    if header("authorization") != Some(format!("Bearer {}", shared.token)) {
        return fail(status(401, "Unauthorized", "Unauthorized", None));
    }
    let Some((r, ns, name)) = route(uri.path()) else {
        return fail(status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        ));
    };
    if query.contains_key("dryRun") {
        return fail(bad_request(
            "dryRun is not supported by the test API server",
        ));
    }
    let user_agent = header("user-agent").unwrap_or_default();
    let default_manager = user_agent
        .split('/')
        .next()
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown");
    let manager = query
        .get("fieldManager")
        .map_or(default_manager, String::as_str)
        .to_string();
    let needs_body = matches!(method, Method::POST | Method::PUT | Method::PATCH);
    if needs_body && !parsed.as_ref().is_some_and(Value::is_object) {
        return fail(bad_request("the request body is not a JSON or YAML object"));
    }
    let body = parsed.unwrap_or(Value::Null);
    let ok = |v: Value| (200, v);
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let result = match (&method, ns.as_deref(), name.as_deref()) {
        (&Method::GET, _, None) if watch => return watch_response(&shared, &store, r, ns, &query),
        (&Method::GET, _, None) => Ok(ok(list(&store, r, ns.as_deref(), &query))),
        (&Method::GET, Some(ns), Some(name)) => store
            .get(r, ns, name)
            .map(ok)
            .ok_or_else(|| not_found(r, name)),
        (&Method::POST, Some(ns), None) => store.create(r, ns, &manager, body).map(|o| (201, o)),
        (&Method::PUT, Some(ns), Some(name)) => {
            let code = if store.get(r, ns, name).is_some() {
                200
            } else {
                201
            };
            store
                .replace(r, ns, name, &manager, body)
                .map(|o| (code, o))
        }
        (&Method::DELETE, Some(ns), Some(name)) => store.delete(r, ns, name).map(ok),
        (&Method::PATCH, Some(ns), Some(name)) => {
            let (force, content_type) = (
                query.get("force").is_some_and(|f| f == "true"),
                content_type.unwrap_or_default(),
            );
            match content_type.split(';').next().unwrap_or_default().trim() {
                "application/apply-patch+yaml"
                    if query.get("fieldManager").is_none_or(String::is_empty) =>
                {
                    Err(status(
                        422,
                        "Invalid",
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                        None,
                    ))
                }
                "application/apply-patch+yaml" => {
                    if let Some(hook) = store.hook.take() {
                        hook(&mut store);
                    }
                    let code = if store.get(r, ns, name).is_some() {
                        200
                    } else {
                        201
                    };
                    store
                        .apply(r, ns, name, &manager, body, force)
                        .map(|o| (code, o))
                }
                _ if force => Err(bad_request(
                    "force: Forbidden: may not be specified for non-apply patch",
                )),
                "application/merge-patch+json" => {
                    store.merge_patch(r, ns, name, &manager, body).map(ok)
                }
                other => Err(status(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "unsupported patch type {other:?}: this test server accepts application/merge-patch+json and application/apply-patch+yaml"
                    ),
                    None,
                )),
            }
        }
        _ => Err(status(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {}", uri.path()),
            None,
        )),
    };
    match result {
        Ok((code, v)) => respond(code, &v),
        Err(s) => fail(s),
    }
}

/// `(resource, namespace, name)` of an API path.
fn route(path: &str) -> Option<(Resource, Option<String>, Option<String>)> {
    Resource::ALL.into_iter().find_map(|r| {
        let rest = path.strip_prefix(&r.prefix())?.strip_prefix('/')?;
        let segs: Vec<&str> = rest.split('/').collect();
        let own = |s: &str| Some(s.to_string());
        match segs.as_slice() {
            [p] if *p == r.plural() => Some((r, None, None)),
            ["namespaces", ns, p] if *p == r.plural() => Some((r, own(ns), None)),
            ["namespaces", ns, p, name] if *p == r.plural() => Some((r, own(ns), own(name))),
            _ => None,
        }
    })
}

fn selected(query: &Query, obj: &Value) -> bool {
    match query
        .get("fieldSelector")
        .and_then(|s| s.strip_prefix("metadata.name="))
    {
        Some(name) => obj["metadata"]["name"] == name,
        None => true,
    }
}

fn list(store: &Store, r: Resource, ns: Option<&str>, query: &Query) -> Value {
    let items: Vec<Value> = store
        .objects
        .iter()
        .filter(|((res, n, _), o)| *res == r && ns.is_none_or(|ns| ns == n) && selected(query, o))
        .map(|(_, o)| o.clone())
        .collect();
    json!({"kind": format!("{}List", r.kind()), "apiVersion": r.api_version(),
           "metadata": {"resourceVersion": store.rv.to_string()}, "items": items})
}

fn watch_response(
    shared: &Shared,
    store: &Store,
    r: Resource,
    ns: Option<String>,
    query: &Query,
) -> Response {
    let rx = store.events.subscribe();
    let matches = {
        let (ns, query) = (ns.clone(), query.clone());
        move |e: &Event| {
            e.resource == r
                && ns.as_ref().is_none_or(|n| *n == e.ns)
                && selected(&query, &e.json["object"])
        }
    };
    let since = query
        .get("resourceVersion")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let initial: VecDeque<Value> = if since == 0 {
        let objects = list(store, r, ns.as_deref(), query)["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        objects
            .into_iter()
            .map(|o| json!({"type": "ADDED", "object": o}))
            .collect()
    } else {
        store
            .history
            .iter()
            .filter(|e| e.rv > since && matches(e))
            .map(|e| e.json.clone())
            .collect()
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1800);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let stop = shared.shutdown.clone();
    let live = futures_util::stream::unfold((rx, stop), move |(mut rx, mut stop)| {
        let matches = matches.clone();
        async move {
            loop {
                let event = tokio::select! {
                    ev = rx.recv() => ev,
                    _ = stop.wait_for(|s| *s) => return None,
                    _ = tokio::time::sleep_until(deadline) => return None,
                };
                match event {
                    Ok(e) if matches(&e) => return Some((e.json, (rx, stop))),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    let lines = futures_util::stream::iter(initial)
        .chain(live)
        .map(|ev| Ok::<_, std::convert::Infallible>(Bytes::from(format!("{ev}\n"))));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(lines))
        .expect("watch response")
}
