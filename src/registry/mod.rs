//! Adapter: reading and writing OCI registries and `oci:` image layouts.
//!
//! Everything that talks to a registry lives here: the distribution HTTP client on reqwest
//! (tag lists following `Link`, HEAD with all four manifest media types, auth), and the
//! `oci:` layout store. [`Registries`] routes each target repository to its backend
//! according to `relsync.yaml` (`insecure`, `caFile`, credentials, `mapTo`).
//!
//! Both backends implement [`TargetReader`] and [`ContentStore`]; [`Repository`] dispatches
//! to the right one. Every HTTP request is retried on transient failures ([`RetryPolicy`]);
//! the layout store re-reads `index.json` whenever the file changed.

mod auth;
mod content;
mod credential_helper;
mod error;
pub mod format;
mod http;
mod layout;
#[cfg(test)]
pub(crate) mod memory;
pub mod mirror;
pub mod referrers;
mod retry;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use auth::{CredentialLookup, Credentials, EnvLookup};
pub use content::{
    BlobStream, ByteStream, CasDeletion, CasWrite, ContentStore, MAX_MANIFEST_BYTES, RawManifest,
    TagDeletion,
};
pub use error::RegistryError;
pub(crate) use error::error_detail;
pub use http::{HttpRegistry, HttpRepository, USER_AGENT_PREFIX, user_agent};
pub use layout::LayoutRepository;
pub(crate) use retry::{Outcome, retry};
pub use retry::{RetryPolicy, parse_retry_after, retryable_status};

use crate::config::Config;
use crate::digest::Digest;

/// The four manifest media types a resolving HEAD accepts (with fewer, distribution 2.8
/// answers 404 or the digest of one platform's child).
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The annotation that names a tag in an OCI image layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Reading a target repository: what a plan or a drift report needs. Implemented by the
/// HTTP client ([`HttpRepository`]), the layout store ([`LayoutRepository`]) and the
/// dispatching [`Repository`]. Writing (manifest GET, blob streaming, uploads, DELETE) is
/// the separate trait [`ContentStore`].
pub trait TargetReader {
    /// The repository as written in the stream's `target`, for messages.
    fn name(&self) -> &str;

    /// Every tag of the repository, sorted and without duplicates; empty when the
    /// repository does not exist.
    fn list_tags(&self) -> impl Future<Output = Result<Vec<String>, RegistryError>> + Send;

    /// [`TargetReader::list_tags`], or `None` when the store says the repository does not
    /// exist (a registry's 404 `NAME_UNKNOWN`): then nothing is in it, not even untagged
    /// content, and nothing needs resolving. An empty list is no such proof (a repository
    /// may hold untagged manifests). By default the tags, never `None`.
    fn list_tags_if_exists(
        &self,
    ) -> impl Future<Output = Result<Option<Vec<String>>, RegistryError>> + Send
    where
        Self: Sync,
    {
        async { self.list_tags().await.map(Some) }
    }

    /// The digest `tag` holds (for an image index, the index's own digest), or `None` when
    /// the tag does not exist.
    fn resolve_tag(
        &self,
        tag: &str,
    ) -> impl Future<Output = Result<Option<Digest>, RegistryError>> + Send;

    /// Whether the manifest `digest` is in the repository.
    fn has_manifest(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<bool, RegistryError>> + Send;
}

/// One target repository, on a registry or in an OCI image layout.
#[derive(Debug, Clone)]
pub enum Repository {
    /// A repository of a distribution registry, over HTTP(S).
    Registry(HttpRepository),
    /// An OCI image layout directory (`oci:PATH`, or a host mapped with `mapTo`).
    Layout(LayoutRepository),
}

impl Repository {
    /// The HTTP host key this repository is reached through (`None` for a layout).
    pub fn host(&self) -> Option<&str> {
        match self {
            Repository::Registry(r) => Some(r.host()),
            Repository::Layout(_) => None,
        }
    }
}

impl TargetReader for Repository {
    fn name(&self) -> &str {
        match self {
            Repository::Registry(r) => r.name(),
            Repository::Layout(l) => l.name(),
        }
    }

    async fn list_tags(&self) -> Result<Vec<String>, RegistryError> {
        match self {
            Repository::Registry(r) => r.list_tags().await,
            Repository::Layout(l) => l.list_tags().await,
        }
    }

    async fn list_tags_if_exists(&self) -> Result<Option<Vec<String>>, RegistryError> {
        match self {
            Repository::Registry(r) => HttpRepository::list_tags_if_exists(r).await,
            Repository::Layout(l) => l.list_tags_if_exists().await,
        }
    }

    async fn resolve_tag(&self, tag: &str) -> Result<Option<Digest>, RegistryError> {
        match self {
            Repository::Registry(r) => r.resolve_tag(tag).await,
            Repository::Layout(l) => l.resolve_tag(tag).await,
        }
    }

    async fn has_manifest(&self, digest: &Digest) -> Result<bool, RegistryError> {
        match self {
            Repository::Registry(r) => r.has_manifest(digest).await,
            Repository::Layout(l) => l.has_manifest(digest).await,
        }
    }
}

impl ContentStore for Repository {
    async fn get_manifest(&self, reference: &str) -> Result<Option<RawManifest>, RegistryError> {
        match self {
            Repository::Registry(r) => r.get_manifest(reference).await,
            Repository::Layout(l) => l.get_manifest(reference).await,
        }
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool, RegistryError> {
        match self {
            Repository::Registry(r) => r.has_blob(digest).await,
            Repository::Layout(l) => l.has_blob(digest).await,
        }
    }

    async fn open_blob(&self, digest: &Digest) -> Result<BlobStream, RegistryError> {
        match self {
            Repository::Registry(r) => r.open_blob(digest).await,
            Repository::Layout(l) => l.open_blob(digest).await,
        }
    }

    async fn put_blob(&self, digest: &Digest, blob: BlobStream) -> Result<u64, RegistryError> {
        match self {
            Repository::Registry(r) => r.put_blob(digest, blob).await,
            Repository::Layout(l) => l.put_blob(digest, blob).await,
        }
    }

    async fn mount_blob(&self, digest: &Digest, from_path: &str) -> Result<bool, RegistryError> {
        match self {
            Repository::Registry(r) => r.mount_blob(digest, from_path).await,
            Repository::Layout(l) => l.mount_blob(digest, from_path).await,
        }
    }

    async fn put_manifest(
        &self,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError> {
        match self {
            Repository::Registry(r) => r.put_manifest(reference, manifest).await,
            Repository::Layout(l) => l.put_manifest(reference, manifest).await,
        }
    }

    async fn delete_tag(&self, tag: &str) -> Result<TagDeletion, RegistryError> {
        match self {
            Repository::Registry(r) => r.delete_tag(tag).await,
            Repository::Layout(l) => l.delete_tag(tag).await,
        }
    }

    async fn put_manifest_if(
        &self,
        tag: &str,
        manifest: &RawManifest,
        expected: Option<&Digest>,
    ) -> Result<CasWrite, RegistryError> {
        match self {
            Repository::Registry(r) => r.put_manifest_if(tag, manifest, expected).await,
            Repository::Layout(l) => l.put_manifest_if(tag, manifest, expected).await,
        }
    }

    async fn delete_tag_if(
        &self,
        tag: &str,
        expected: &Digest,
    ) -> Result<CasDeletion, RegistryError> {
        match self {
            Repository::Registry(r) => r.delete_tag_if(tag, expected).await,
            Repository::Layout(l) => l.delete_tag_if(tag, expected).await,
        }
    }

    async fn delete_manifest(&self, digest: &Digest) -> Result<(), RegistryError> {
        match self {
            Repository::Registry(r) => r.delete_manifest(digest).await,
            Repository::Layout(l) => l.delete_manifest(digest).await,
        }
    }
}

/// Registry answers counted by HTTP status (`"200"`, `"404"`, …) and `"error"` for requests
/// that got no answer (connection refused, timeout, TLS). Shared by every client of a
/// [`Registries`]; each try of a retried request counts.
#[derive(Debug, Default)]
pub(crate) struct StatusCounts {
    by_status: Mutex<BTreeMap<u16, u64>>,
    errors: AtomicU64,
}

impl StatusCounts {
    /// Counts an answer with `status`.
    pub(crate) fn answered(&self, status: u16) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(status)
            .or_insert(0) += 1;
    }

    /// Counts a request that got no answer.
    pub(crate) fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far, keyed by status code (as text) and `error`.
    fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = self
            .by_status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(status, n)| (status.to_string(), *n))
            .collect();
        let errors = self.errors.load(Ordering::Relaxed);
        if errors > 0 {
            out.insert("error".to_string(), errors);
        }
        out
    }
}

/// Connection settings of one host, resolved against relsync.yaml's directory.
#[derive(Debug, Clone, Default)]
struct HostSettings {
    insecure: bool,
    ca_file: Option<PathBuf>,
    username_env: Option<String>,
    password_env: Option<String>,
    /// `mapTo: oci:DIR`, DIR resolved.
    map_to: Option<PathBuf>,
    /// `tokenRealms`: other hosts whose HTTPS token realm may get the credentials.
    token_realms: Vec<String>,
    /// `deleteByDigest: true`.
    delete_by_digest: bool,
    /// `rateLimit`.
    rate_limit: Option<crate::config::RateLimit>,
}

/// Routes repository strings to backends: HTTP clients per registry host (with their
/// settings, credentials and request limits) and `oci:` layouts.
#[derive(Debug)]
pub struct Registries {
    config_dir: PathBuf,
    hosts: HashMap<String, HostSettings>,
    clients: Mutex<HashMap<String, Arc<HttpRegistry>>>,
    /// reqwest clients by `caFile` (`None`: the system roots only), shared by the hosts
    /// with that setting: each one loads the certificate store once.
    http_clients: Mutex<HashMap<Option<PathBuf>, reqwest::Client>>,
    lookup: CredentialLookup,
    concurrency: usize,
    requests: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    statuses: Arc<StatusCounts>,
    /// The User-Agent of every request ([`user_agent`]).
    user_agent: reqwest::header::HeaderValue,
}

impl Registries {
    /// Builds the router from `relsync.yaml`'s settings; relative paths (`caFile`, `mapTo`,
    /// `oci:` targets) resolve from `config_dir`. Credentials come from the process
    /// environment and the usual auth files ([`CredentialLookup::from_process_env`]).
    pub fn from_config(config: &Config, config_dir: &Path) -> Result<Registries, RegistryError> {
        Self::from_config_with(config, config_dir, CredentialLookup::from_process_env())
    }

    /// Like [`Registries::from_config`], every request carrying the User-Agent
    /// `relsync/<version> (<identity>)` (`serve` passes its replica identity; `None`:
    /// `relsync/<version>`).
    pub fn from_config_as(
        config: &Config,
        config_dir: &Path,
        identity: Option<&str>,
    ) -> Result<Registries, RegistryError> {
        Self::build(
            config,
            config_dir,
            CredentialLookup::from_process_env(),
            user_agent(identity),
        )
    }

    /// Like [`Registries::from_config`], with an explicit credential lookup.
    pub fn from_config_with(
        config: &Config,
        config_dir: &Path,
        lookup: CredentialLookup,
    ) -> Result<Registries, RegistryError> {
        Self::build(config, config_dir, lookup, user_agent(None))
    }

    fn build(
        config: &Config,
        config_dir: &Path,
        lookup: CredentialLookup,
        user_agent: reqwest::header::HeaderValue,
    ) -> Result<Registries, RegistryError> {
        let mut hosts = HashMap::new();
        for r in &config.registries {
            let host = normalize_host(&r.host.value).to_string();
            let map_to = match &r.map_to {
                None => None,
                Some(m) => match m.value.strip_prefix("oci:") {
                    Some(dir) if !dir.is_empty() => Some(config_dir.join(dir)),
                    _ => {
                        return Err(RegistryError::Settings {
                            host,
                            message: format!(
                                "mapTo `{}` must be `oci:DIR` (at {})",
                                m.value, m.span
                            ),
                        });
                    }
                },
            };
            hosts.insert(
                host,
                HostSettings {
                    insecure: r.insecure,
                    ca_file: r.ca_file.as_ref().map(|f| config_dir.join(f)),
                    username_env: r.username_env.clone(),
                    password_env: r.password_env.clone(),
                    map_to,
                    token_realms: r.token_realms.clone(),
                    delete_by_digest: r.delete_by_digest,
                    rate_limit: r.rate_limit,
                },
            );
        }
        let registries = Registries {
            config_dir: config_dir.to_path_buf(),
            hosts,
            clients: Mutex::new(HashMap::new()),
            http_clients: Mutex::new(HashMap::new()),
            lookup,
            concurrency: config.sync.concurrency.max(1),
            requests: Arc::new(AtomicU64::new(0)),
            writes: Arc::new(AtomicU64::new(0)),
            statuses: Arc::new(StatusCounts::default()),
            user_agent,
        };
        // Set up the configured hosts now, so that a bad CA file or auth file is reported
        // before any work starts.
        let configured: Vec<String> = registries
            .hosts
            .iter()
            .filter(|(_, s)| s.map_to.is_none())
            .map(|(h, _)| h.clone())
            .collect();
        for host in configured {
            registries.client(&host)?;
        }
        Ok(registries)
    }

    /// The total number of HTTP requests sent so far (token requests included).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The number of HTTP requests sent so far that write (POST, PUT, PATCH, DELETE).
    pub fn write_count(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Registry answers so far by HTTP status (`"200"`, `"404"`, …), plus `"error"` for
    /// requests that got no answer; each try of a retried request counts once. Totals
    /// since this router was made (`serve` feeds the differences into its metrics).
    pub fn requests_by_status(&self) -> BTreeMap<String, u64> {
        self.statuses.snapshot()
    }

    /// How many requests may be in flight at once to one registry host.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The backend of a repository string: `host/path` (host = the part before the first
    /// `/`; `docker.io` means `registry-1.docker.io`, where a one-segment path gets
    /// `library/`), or `oci:PATH` (an OCI image layout; a relative PATH resolves from
    /// relsync.yaml's directory). A host with `mapTo: oci:DIR` maps `host/REPO` to the
    /// layout `DIR/REPO`.
    pub fn repository(&self, reference: &str) -> Result<Repository, RegistryError> {
        let invalid = |reason: &str| RegistryError::InvalidRepository {
            repo: reference.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = reference.strip_prefix("oci:") {
            if path.is_empty() {
                return Err(invalid("`oci:` needs a directory"));
            }
            return Ok(Repository::Layout(LayoutRepository::new(
                reference,
                self.config_dir.join(path),
            )));
        }
        let Some((host, path)) = reference.split_once('/') else {
            return Err(invalid(
                "expected `host/path` or `oci:PATH` (the registry host is missing)",
            ));
        };
        if host.is_empty() {
            return Err(invalid("the registry host is empty"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        {
            return Err(invalid(
                "the registry host has characters a host cannot have",
            ));
        }
        check_repository_path(path).map_err(|reason| invalid(&reason))?;
        let key = normalize_host(host);
        let path = if key == "registry-1.docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if let Some(dir) = self.hosts.get(key).and_then(|s| s.map_to.as_ref()) {
            return Ok(Repository::Layout(LayoutRepository::new(
                reference,
                dir.join(&path),
            )));
        }
        let client = self.client(key)?;
        Ok(Repository::Registry(HttpRepository::new(
            client, reference, path,
        )))
    }

    /// The HTTP client of `host` (normalized), made on first use.
    fn client(&self, host: &str) -> Result<Arc<HttpRegistry>, RegistryError> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = clients.get(host)
            // Credentials from a helper expire: a client made with old ones is made again.
            && !self.lookup.helper_answer_stale(host)
        {
            return Ok(c.clone());
        }
        let settings = self.hosts.get(host).cloned().unwrap_or_default();
        let credentials = self.lookup.credentials_for(
            host,
            settings.username_env.as_deref(),
            settings.password_env.as_deref(),
        )?;
        let http = {
            let mut http_clients = self
                .http_clients
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match http_clients.get(&settings.ca_file) {
                Some(c) => c.clone(),
                None => {
                    let (_, c) = http::shared_http_client(host, settings.ca_file.as_deref())?;
                    http_clients.insert(settings.ca_file.clone(), c.clone());
                    c
                }
            }
        };
        let client = Arc::new(
            HttpRegistry::with_client(
                host,
                settings.insecure,
                http,
                credentials,
                self.concurrency,
                self.requests.clone(),
                self.writes.clone(),
            )?
            .with_status_counts(self.statuses.clone())
            .with_token_realms(token_realms(host, &settings.token_realms))
            .with_delete_by_digest(settings.delete_by_digest)
            .with_user_agent(self.user_agent.clone())
            .with_rate_limit(settings.rate_limit),
        );
        clients.insert(host.to_string(), client.clone());
        Ok(client)
    }
}

/// `docker.io` (and `index.docker.io`) are served by `registry-1.docker.io`.
fn normalize_host(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        h => h,
    }
}

/// The hosts besides `host` itself whose HTTPS token realm may receive `host`'s
/// credentials: its `tokenRealms`, plus `auth.docker.io` for Docker Hub.
fn token_realms(host: &str, configured: &[String]) -> Vec<String> {
    let mut realms = configured.to_vec();
    if host == "registry-1.docker.io" {
        realms.push("auth.docker.io".to_string());
    }
    realms
}

/// Checks a repository path against the distribution grammar: `/`-separated components of
/// lowercase letters and digits, separated inside by `.`, `_`, `__` or dashes.
fn check_repository_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository path is empty".to_string());
    }
    if path.len() > 255 {
        return Err("the repository path is longer than 255 characters".to_string());
    }
    for component in path.split('/') {
        let b = component.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        let ok = !b.is_empty()
            && alnum(b[0])
            && alnum(b[b.len() - 1])
            && b.iter()
                .all(|&c| alnum(c) || matches!(c, b'.' | b'_' | b'-'))
            && !component.contains("..")
            && !component.contains("___")
            && !component.contains(".-")
            && !component.contains("-.")
            && !component.contains("._")
            && !component.contains("_.")
            && !component.contains("_-")
            && !component.contains("-_");
        if !ok {
            return Err(format!(
                "path component `{component}` is not lowercase letters and digits separated by `.`, `_`, `__` or `-`"
            ));
        }
    }
    Ok(())
}

use crate::tag::is_valid_tag;

/// `Ok` when `tag` fits the distribution grammar, else [`RegistryError::InvalidTag`] naming
/// the repository: every backend checks a tag before it reaches a URL or `index.json`.
pub(crate) fn check_tag(repo: &str, tag: &str) -> Result<(), RegistryError> {
    if is_valid_tag(tag) {
        Ok(())
    } else {
        Err(RegistryError::InvalidTag {
            repo: repo.to_string(),
            tag: tag.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegistrySettings;
    use crate::manifest::{Located, Span};

    fn settings(host: &str) -> RegistrySettings {
        RegistrySettings {
            host: Located::new(host.to_string(), Span::file("relsync.yaml")),
            insecure: false,
            ca_file: None,
            username_env: None,
            password_env: None,
            map_to: None,
            token_realms: Vec::new(),
            delete_by_digest: false,
            rate_limit: None,
        }
    }

    fn config_with(registries: Vec<RegistrySettings>) -> Config {
        Config {
            registries,
            ..Default::default()
        }
    }

    fn no_creds() -> CredentialLookup {
        CredentialLookup::new(Arc::new(|_: &str| None), Vec::new())
    }

    #[test]
    fn routes_repository_strings() {
        let mut mapped = settings("mirror.example");
        mapped.map_to = Some(Located::new(
            "oci:layouts".to_string(),
            Span::file("relsync.yaml"),
        ));
        let mut local = settings("127.0.0.1:5000");
        local.insecure = true;
        let config = config_with(vec![mapped, local]);
        let r = Registries::from_config_with(&config, Path::new("/cfg"), no_creds()).unwrap();

        match r.repository("oci:demo/okd").unwrap() {
            Repository::Layout(l) => assert_eq!(l.dir(), Path::new("/cfg/demo/okd")),
            other => panic!("{other:?}"),
        }
        match r.repository("oci:/abs/x").unwrap() {
            Repository::Layout(l) => assert_eq!(l.dir(), Path::new("/abs/x")),
            other => panic!("{other:?}"),
        }
        match r.repository("mirror.example/okd/scos-release").unwrap() {
            Repository::Layout(l) => {
                assert_eq!(l.dir(), Path::new("/cfg/layouts/okd/scos-release"));
                assert_eq!(l.name(), "mirror.example/okd/scos-release");
            }
            other => panic!("{other:?}"),
        }
        match r.repository("docker.io/nginx").unwrap() {
            Repository::Registry(h) => {
                assert_eq!(h.host(), "registry-1.docker.io");
                assert_eq!(h.path(), "library/nginx");
                assert_eq!(h.base_url(), "https://registry-1.docker.io");
            }
            other => panic!("{other:?}"),
        }
        match r.repository("127.0.0.1:5000/a/b").unwrap() {
            Repository::Registry(h) => {
                assert_eq!(h.base_url(), "http://127.0.0.1:5000");
                assert_eq!(h.path(), "a/b");
            }
            other => panic!("{other:?}"),
        }
        match r.repository("quay.io/okd/scos-release").unwrap() {
            Repository::Registry(h) => assert_eq!(h.base_url(), "https://quay.io"),
            other => panic!("{other:?}"),
        }
        for bad in [
            "nohost",
            "quay.io/",
            "quay.io/Upper",
            "quay.io/a/../b",
            "quay.io/a//b",
            "oci:",
            "/x",
            "quay.io/a..b",
        ] {
            assert!(
                matches!(
                    r.repository(bad),
                    Err(RegistryError::InvalidRepository { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_map_to_other_than_oci() {
        let mut s = settings("quay.io");
        s.map_to = Some(Located::new(
            "/srv".to_string(),
            Span::new("relsync.yaml", 3, 5),
        ));
        let config = config_with(vec![s]);
        let e = Registries::from_config_with(&config, Path::new("/cfg"), no_creds()).unwrap_err();
        assert!(e.to_string().contains("relsync.yaml:3:5"), "{e}");
    }

    #[test]
    fn missing_ca_file_is_reported_at_setup() {
        let mut s = settings("quay.io");
        s.ca_file = Some("nope/ca.pem".to_string());
        let config = config_with(vec![s]);
        let e = Registries::from_config_with(&config, Path::new("/nonexistent"), no_creds())
            .unwrap_err();
        assert!(matches!(e, RegistryError::CaFile { .. }), "{e}");
    }

    #[test]
    fn status_errors_name_the_code_and_message() {
        let e = RegistryError::Status {
            context: "listing tags of quay.io/okd/x".into(),
            status: 403,
            code: Some("DENIED".into()),
            message: Some("requested access to the resource is denied".into()),
        };
        assert_eq!(
            e.to_string(),
            "listing tags of quay.io/okd/x: registry answered 403 Forbidden (DENIED: requested access to the resource is denied)"
        );
    }

    #[test]
    fn tag_grammar() {
        assert!(is_valid_tag("4.14.0-0.okd-scos-2023-10-11-084613"));
        assert!(is_valid_tag("4.2.14_amd64"));
        assert!(is_valid_tag("_x"));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag("a/b"));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn hosts_with_the_same_ca_file_share_one_http_client() {
        // Each client reads the system certificate store at its first HTTPS handshake: one
        // client per caFile, so one read each.
        let mut plain = settings("127.0.0.1:5000");
        plain.insecure = true;
        let mut with_ca = settings("registry.internal");
        with_ca.ca_file = Some("tests/data/registry-tls/ca.pem".to_string());
        let config = config_with(vec![plain, settings("quay.io"), with_ca]);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let r = Registries::from_config_with(&config, dir, no_creds()).unwrap();
        for repo in [
            "127.0.0.1:5000/a/b",
            "quay.io/okd/scos-release",
            "ghcr.io/x/y",
            "registry.internal/c/d",
            "quay.io/other/repo",
        ] {
            r.repository(repo).unwrap();
        }
        let clients = r.http_clients.lock().unwrap();
        assert_eq!(clients.len(), 2, "{:?}", clients.keys().collect::<Vec<_>>());
        assert!(clients.contains_key(&Some(dir.join("tests/data/registry-tls/ca.pem"))));
        assert_eq!(
            r.clients.lock().unwrap().len(),
            4,
            "one HttpRegistry per host"
        );
    }
}
