//! The transport of one registry host: [`HttpRegistry`] holds its reqwest client, base URL,
//! credentials and request limit, and sends every request, counted, logged and retried by
//! the one [`RetryPolicy`], authenticating as the host's challenge asks ([`super::token`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::sync::Semaphore;
use url::Url;

use super::answer::*;
use super::budget::{self, Budget};
use super::limits::{MinRate, is_blob_read, min_blob_rate, read_idle_timeout, request_deadline};
use super::token::*;
use crate::config::RateLimit;
use crate::registry::auth::{Challenge, Credentials, Token, parse_challenges};
use crate::registry::content::MAX_MANIFEST_BYTES;
use crate::registry::retry::{
    Outcome, RetryPolicy, parse_retry_after, retry, retryable_status, retryable_transport,
};
use crate::registry::{RegistryError, StatusCounts};

/// Pages of one tag list followed at most.
pub const MAX_TAG_PAGES: usize = 10_000;
/// Tags in one repository accepted at most.
pub const MAX_TAGS: usize = 1_000_000;
/// The largest manifest read, as a byte count of an answer.
pub(super) const MAX_MANIFEST: u64 = MAX_MANIFEST_BYTES as u64;
/// Connecting to a registry gives up after this long.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest tag-list page read.
pub(super) const MAX_TAG_PAGE_BYTES: u64 = 32 * 1024 * 1024;
/// The largest error or token answer read.
pub(super) const MAX_SMALL_BYTES: u64 = 1024 * 1024;
/// Tags asked for per page (registries may send fewer, and distribution 2.8 ignores it).
pub(super) const PAGE_SIZE: usize = 1000;

/// `relsync/<version>`: the User-Agent of every request relsync makes outside `serve`.
pub const USER_AGENT_PREFIX: &str = concat!("relsync/", env!("CARGO_PKG_VERSION"));

/// The User-Agent relsync sends: `relsync/<version>`, or in `serve`
/// `relsync/<version> (<identity>)` with the replica's identity (its Lease holder name), so
/// that a registry's access log shows which replica made each request. Characters a header
/// value cannot hold, and parentheses, are written `_`.
pub fn user_agent(identity: Option<&str>) -> HeaderValue {
    let text = match identity {
        None => USER_AGENT_PREFIX.to_string(),
        Some(id) => {
            let id: String = id
                .chars()
                .map(|c| match c {
                    '(' | ')' => '_',
                    c if c.is_ascii_graphic() || c == ' ' => c,
                    _ => '_',
                })
                .collect();
            format!("{USER_AGENT_PREFIX} ({id})")
        }
    };
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(USER_AGENT_PREFIX))
}

/// One registry host: its HTTP client, base URL, credentials, token cache and request
/// limit. Shared by every [`HttpRepository`] on the host.
#[derive(Debug)]
pub struct HttpRegistry {
    pub(super) host: String,
    pub(super) base: Url,
    pub(super) base_str: String,
    pub(super) client: reqwest::Client,
    pub(super) credentials: Option<Credentials>,
    pub(super) scheme: std::sync::Mutex<Scheme>,
    pub(super) tokens: std::sync::Mutex<HashMap<String, Token>>,
    pub(super) token_fetch: tokio::sync::Mutex<()>,
    pub(super) limit: Semaphore,
    pub(super) requests: Arc<AtomicU64>,
    pub(super) writes: Arc<AtomicU64>,
    pub(super) statuses: Arc<StatusCounts>,
    pub(super) retry: RetryPolicy,
    /// Hosts (`host` or `host:port`) besides this one whose HTTPS token realm may receive
    /// the credentials (`tokenRealms`).
    pub(super) token_realms: Vec<String>,
    /// `deleteByDigest: true`: manifests may be deleted by digest.
    pub(super) delete_by_digest: bool,
    /// The total deadline of every request but blob bodies.
    pub(super) deadline: Duration,
    /// The slowest blob body accepted (`None`: no floor).
    pub(super) min_blob_rate: Option<MinRate>,
    /// The User-Agent of every request ([`user_agent`]).
    pub(super) user_agent: HeaderValue,
    /// The host's request budget (`rateLimit`) and the pace its rate-limit headers ask.
    pub(super) budget: Arc<Budget>,
}

/// What a reqwest client is built from: the PEM bytes of a `caFile` (`None`: the system
/// roots only) and the read timeout. Clients built from equal settings are interchangeable.
type ClientKey = (Option<Vec<u8>>, Duration);

/// The reqwest clients of this process by [`ClientKey`], each with the serial number of
/// its build (see [`shared_http_client`]).
static CLIENTS: std::sync::LazyLock<std::sync::Mutex<HashMap<ClientKey, (u64, reqwest::Client)>>> =
    std::sync::LazyLock::new(Default::default);

/// Clients built so far by [`shared_http_client`]; the serial number of the next one.
static CLIENT_BUILDS: AtomicU64 = AtomicU64::new(0);

/// The reqwest client for hosts that trust the system roots plus the certificates of
/// `ca_file`, shared by the whole process, and the serial number of its build (equal
/// serials: the same client).
///
/// TLS is rustls configured by [`super::tls`], which reads the system certificate store
/// lazily, at the first certificate it has to check: building a client, and every request
/// to a plain-HTTP (`insecure`) host, never reads the store (with the native-tls backend
/// each build parsed it twice, tens of milliseconds of CPU, most of a short no-op run).
/// Each client's verifier loads the store once, at its first HTTPS handshake, so a client
/// is built once per process for each distinct `caFile` content (and read timeout), and
/// every [`super::Registries`] made later (one per `serve` pass, for one) reuses it; the
/// `caFile` is still read each time, so a rotated file gets a new client. Connections are
/// pooled per host inside a client, so sharing one between hosts changes nothing on the
/// wire. `host` only names the host in errors.
pub(crate) fn shared_http_client(
    host: &str,
    ca_file: Option<&Path>,
) -> Result<(u64, reqwest::Client), RegistryError> {
    let pem = match ca_file {
        None => None,
        Some(ca) => Some(std::fs::read(ca).map_err(|source| RegistryError::CaFile {
            host: host.to_string(),
            path: ca.to_path_buf(),
            source,
        })?),
    };
    let timeout = read_idle_timeout(host)?;
    let key = (pem, timeout);
    let mut clients = CLIENTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((serial, client)) = clients.get(&key) {
        return Ok((*serial, client.clone()));
    }
    let client = build_http_client(host, ca_file, key.0.as_deref(), timeout)?;
    let serial = CLIENT_BUILDS.fetch_add(1, Ordering::Relaxed);
    clients.insert(key, (serial, client.clone()));
    Ok((serial, client))
}

/// A new reqwest client trusting the system roots plus the certificates in `pem` (read
/// from `ca_file`, named in errors), with the given read timeout.
fn build_http_client(
    host: &str,
    ca_file: Option<&Path>,
    pem: Option<&[u8]>,
    read_timeout: Duration,
) -> Result<reqwest::Client, RegistryError> {
    let builder = reqwest::Client::builder()
        .user_agent(USER_AGENT_PREFIX)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(read_timeout);
    let mut extra = Vec::new();
    if let Some(pem) = pem {
        let path = ca_file.map(|p| p.display().to_string()).unwrap_or_default();
        for cert in CertificateDer::pem_slice_iter(pem) {
            extra.push(cert.map_err(|e| RegistryError::Settings {
                host: host.to_string(),
                message: format!("caFile {path} is not a PEM bundle ({e})"),
            })?);
        }
        if extra.is_empty() {
            return Err(RegistryError::Settings {
                host: host.to_string(),
                message: format!("caFile {path} holds no PEM certificate"),
            });
        }
    }
    let builder = builder.tls_backend_preconfigured(super::tls::client_config(extra));
    builder.build().map_err(|source| RegistryError::Client {
        host: host.to_string(),
        source,
    })
}

impl HttpRegistry {
    /// A client for `host`: plain HTTP when `insecure`, else HTTPS with the system roots
    /// plus the certificates of `ca_file`; at most `concurrency` requests in flight; every
    /// request counted in `requests`, and those that write (POST, PUT, PATCH, DELETE) in
    /// `writes` too. Requests are retried by the default [`RetryPolicy`].
    pub fn new(
        host: &str,
        insecure: bool,
        ca_file: Option<&Path>,
        credentials: Option<Credentials>,
        concurrency: usize,
        requests: Arc<AtomicU64>,
        writes: Arc<AtomicU64>,
    ) -> Result<HttpRegistry, RegistryError> {
        let (_, client) = shared_http_client(host, ca_file)?;
        HttpRegistry::with_client(
            host,
            insecure,
            client,
            credentials,
            concurrency,
            requests,
            writes,
        )
    }

    /// [`HttpRegistry::new`] with a reqwest client made beforehand, possibly shared with
    /// other hosts (their connections are still pooled per host).
    pub fn with_client(
        host: &str,
        insecure: bool,
        client: reqwest::Client,
        credentials: Option<Credentials>,
        concurrency: usize,
        requests: Arc<AtomicU64>,
        writes: Arc<AtomicU64>,
    ) -> Result<HttpRegistry, RegistryError> {
        let scheme = if insecure { "http" } else { "https" };
        let base_str = format!("{scheme}://{host}");
        let base = Url::parse(&format!("{base_str}/")).map_err(|e| RegistryError::Settings {
            host: host.to_string(),
            message: format!("not a usable host ({e})"),
        })?;
        Ok(HttpRegistry {
            host: host.to_string(),
            base,
            base_str,
            client,
            credentials,
            scheme: std::sync::Mutex::new(Scheme::Anonymous),
            tokens: std::sync::Mutex::new(HashMap::new()),
            token_fetch: tokio::sync::Mutex::new(()),
            limit: Semaphore::new(concurrency.max(1)),
            requests,
            writes,
            statuses: Arc::new(StatusCounts::default()),
            retry: RetryPolicy::default(),
            token_realms: Vec::new(),
            delete_by_digest: false,
            deadline: request_deadline(host)?,
            min_blob_rate: min_blob_rate(host)?,
            user_agent: user_agent(None),
            budget: Budget::unshared(),
        })
    }

    /// Sends `agent` as the User-Agent of every request (see [`user_agent`]).
    pub fn with_user_agent(mut self, agent: HeaderValue) -> HttpRegistry {
        self.user_agent = agent;
        self
    }

    /// Makes every request wait for the host's budget, shared by the whole process (every
    /// client of this host, every `serve` pass); `None`: paced by the host's rate-limit
    /// headers only.
    pub fn with_rate_limit(mut self, limit: Option<RateLimit>) -> HttpRegistry {
        self.budget = budget::for_host(&self.host, limit);
        self
    }

    /// Replaces the retry policy (tests use short waits).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> HttpRegistry {
        self.retry = policy;
        self
    }

    /// Counts this client's answers by status into `counts` (shared by a [`Registries`]).
    pub(crate) fn with_status_counts(mut self, counts: Arc<StatusCounts>) -> HttpRegistry {
        self.statuses = counts;
        self
    }

    /// Lets the HTTPS token realms on `hosts` (`host` or `host:port`) receive this
    /// registry's credentials, besides a realm on the registry host itself.
    pub fn with_token_realms(mut self, hosts: Vec<String>) -> HttpRegistry {
        self.token_realms = hosts;
        self
    }

    /// Allows deleting manifests by digest (`deleteByDigest: true`).
    pub fn with_delete_by_digest(mut self, allowed: bool) -> HttpRegistry {
        self.delete_by_digest = allowed;
        self
    }

    /// Whether manifests may be deleted by digest on this registry (`deleteByDigest`).
    pub fn deletes_by_digest(&self) -> bool {
        self.delete_by_digest
    }

    /// Whether `url` is on this registry: same scheme, host and port.
    pub(super) fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    /// The host (and port), e.g. `quay.io` or `127.0.0.1:5000`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://host` or `https://host`.
    pub fn base_url(&self) -> &str {
        &self.base_str
    }

    pub(super) fn count(&self, method: &Method) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends a request built by `build`, counted and logged, trying up to `tries` times
    /// (see [`RetryPolicy`]) on connection errors, timeouts, 408, 429 and 5xx. After the
    /// last try a retryable status becomes a [`RegistryError::Status`] whose context says
    /// how many tries were made; a transport failure a [`RegistryError::Transport`].
    pub(super) async fn execute(
        &self,
        method: &Method,
        url: &Url,
        mut build: impl FnMut() -> Option<reqwest::RequestBuilder>,
        tries: u32,
        context: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let policy = RetryPolicy {
            tries,
            ..self.retry
        };
        let (result, made) = retry(&policy, |_attempt| {
            let request = build();
            if request.is_some() {
                self.count(method);
            }
            let method = method.clone();
            let statuses = self.statuses.clone();
            let budget = self.budget.clone();
            // Logged without its query, which may hold a signature (pre-signed uploads).
            let url = format!(
                "{}://{}{}",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ) + url.path();
            async move {
                let Some(request) = request else {
                    return Outcome::Done(Err(None));
                };
                budget.acquire().await;
                match request.send().await {
                    Ok(resp) => {
                        budget.observe(resp.headers());
                        let status = resp.status().as_u16();
                        statuses.answered(status);
                        tracing::debug!(method = %method, url = %url, status, "registry request");
                        if retryable_status(status) {
                            let retry_after = resp
                                .headers()
                                .get(RETRY_AFTER)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| parse_retry_after(v, SystemTime::now()));
                            Outcome::Retry {
                                value: Ok(resp),
                                retry_after,
                            }
                        } else {
                            Outcome::Done(Ok(resp))
                        }
                    }
                    Err(e) => {
                        statuses.failed();
                        tracing::debug!(method = %method, url = %url, error = %e, "registry request failed");
                        if retryable_transport(&e) {
                            Outcome::Retry {
                                value: Err(Some(e)),
                                retry_after: None,
                            }
                        } else {
                            Outcome::Done(Err(Some(e)))
                        }
                    }
                }
            }
        })
        .await;
        let context = if made > 1 {
            format!("{context} (gave up after {made} tries)")
        } else {
            context.to_string()
        };
        // Retried here already: the caller must not redo the operation around it.
        let gave_up = |e: RegistryError| {
            if made > 1 {
                RegistryError::GaveUp(Box::new(e))
            } else {
                e
            }
        };
        match result {
            Ok(resp) if retryable_status(resp.status().as_u16()) => {
                Err(gave_up(status_error(resp, &context).await))
            }
            Ok(resp) => Ok(resp),
            Err(Some(e)) if retryable_transport(&e) => Err(gave_up(RegistryError::Transport {
                context,
                source: e.without_url(),
            })),
            Err(Some(e)) => Err(RegistryError::Transport {
                context,
                source: e.without_url(),
            }),
            Err(None) => Err(RegistryError::Auth {
                context,
                reason: "a streamed request cannot be sent twice".to_string(),
            }),
        }
    }

    pub(super) async fn permit(
        &self,
        context: &str,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, RegistryError> {
        self.limit.acquire().await.map_err(|_| RegistryError::Auth {
            context: context.to_string(),
            reason: "the request limiter was closed".to_string(),
        })
    }

    /// A request to `url` with `headers`, carrying `auth` only when `url` is on this
    /// registry (an upload `Location` may point elsewhere), abandoned when not answered
    /// whole within `deadline`.
    pub(super) fn request(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        auth: Option<&str>,
        deadline: Option<Duration>,
    ) -> reqwest::RequestBuilder {
        let mut rb = self
            .client
            .request(method.clone(), url.clone())
            .headers(headers.clone())
            .header(USER_AGENT, self.user_agent.clone());
        if let Some(d) = deadline {
            rb = rb.timeout(d);
        }
        if let Some(a) = auth
            && self.same_origin(url)
        {
            rb = with_authorization(rb, a);
        }
        rb
    }

    /// Sends `method url` (with `body`, when given) for `scope` (`repository:<path>:pull`,
    /// space-separated scopes for several), authenticating as the host asks: anonymous
    /// first; on 401, Basic with the credentials, or a Bearer token fetched from the
    /// challenge's realm (cached per scope), then one more time. Each sending is retried
    /// on transient failures.
    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
        scope: &str,
        context: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        self.send_held(false, method, url, headers, body, scope, context)
            .await
    }

    /// [`HttpRegistry::send`]; `held`: the caller holds a request permit already (for a
    /// check and a write sent back to back), so none is waited for here.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn send_held(
        &self,
        held: bool,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
        scope: &str,
        context: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let _permit = if held {
            None
        } else {
            Some(self.permit(context).await?)
        };
        let mut auth = self.authorization(scope, context, false).await?;
        let mut retried = false;
        // A blob body is bounded by its rate (see `MinRate`), not by a total deadline.
        let deadline = (!is_blob_read(&method, &url)).then_some(self.deadline);
        loop {
            let build = || {
                let rb = self.request(&method, &url, &headers, auth.as_deref(), deadline);
                Some(match &body {
                    Some(b) => rb.body(b.clone()),
                    None => rb,
                })
            };
            let resp = self
                .execute(&method, &url, build, self.retry.tries, context)
                .await?;
            if resp.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(resp);
            }
            // A challenge from another origin (a redirect to blob storage or a CDN) must
            // never choose where this registry's credentials go.
            if !self.same_origin(resp.url()) {
                return Err(RegistryError::Auth {
                    context: context.to_string(),
                    reason: format!(
                        "redirected host {} asks for authentication; credentials are only sent to the registry itself",
                        origin_of(resp.url())
                    ),
                });
            }
            let challenge = parse_challenges(
                resp.headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            match challenge {
                None => return Ok(resp),
                Some(Challenge::Basic) => {
                    if self.credentials.is_none() {
                        return Ok(resp);
                    }
                    self.set_scheme(Scheme::Basic);
                }
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: challenge_scope,
                }) => {
                    self.set_scheme(Scheme::Bearer { realm, service });
                    // Forget a token the registry no longer takes.
                    self.tokens
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(scope);
                    let wanted = merge_scopes(challenge_scope.as_deref(), scope);
                    let token = self.fetch_token(scope, &wanted, context).await?;
                    auth = Some(format!("Bearer {}", token.value));
                    retried = true;
                    continue;
                }
            }
            auth = self.authorization(scope, context, true).await?;
            retried = true;
        }
    }

    /// [`HttpRegistry::send`] a bodiless request and read its whole answer (at most `limit`
    /// bytes). An answer that breaks off mid-body (a cut connection, a read timeout) is a
    /// failed try like any other: the request is sent again, within the retry policy.
    pub(super) async fn send_read(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        scope: &str,
        context: &str,
        limit: u64,
    ) -> Result<Answer, RegistryError> {
        self.send_read_held(false, method, url, headers, scope, context, limit)
            .await
    }

    /// [`HttpRegistry::send_read`]; `held` as for [`HttpRegistry::send_held`].
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn send_read_held(
        &self,
        held: bool,
        method: Method,
        url: Url,
        headers: HeaderMap,
        scope: &str,
        context: &str,
        limit: u64,
    ) -> Result<Answer, RegistryError> {
        let (result, _) = retry(&self.retry, |attempt| {
            let (method, url, headers) = (method.clone(), url.clone(), headers.clone());
            async move {
                let sent = self
                    .send_held(held, method, url, headers, None, scope, context)
                    .await;
                let resp = match sent {
                    Ok(resp) => resp,
                    // Retried inside already, or not worth it.
                    Err(e) => return Outcome::Done(Err(e)),
                };
                let status = resp.status();
                let answer_headers = resp.headers().clone();
                match read_bounded(resp, limit, context).await {
                    Ok(body) => Outcome::Done(Ok(Answer {
                        status,
                        headers: answer_headers,
                        body: Bytes::from(body),
                    })),
                    Err(e) if e.is_retryable() => {
                        tracing::debug!(context, attempt, error = %e, "answer broke off");
                        Outcome::Retry {
                            value: Err(e),
                            retry_after: None,
                        }
                    }
                    Err(e) => Outcome::Done(Err(e)),
                }
            }
        })
        .await;
        result
    }

    /// Sends a request whose body is a stream, once: a stream cannot be replayed, so
    /// neither a retry nor an authentication challenge can be answered here. Callers
    /// authenticate for `scope` first (with a [`HttpRegistry::send`] of their own) and
    /// redo the whole operation when [`RegistryError::is_retryable`] says so. A bearer
    /// token refused here (revoked before its announced expiry) is forgotten and reported
    /// as [`RegistryError::TokenRevoked`], which is retryable: the redo fetches a new one.
    pub(super) async fn send_stream(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: reqwest::Body,
        scope: &str,
        context: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let _permit = self.permit(context).await?;
        let auth = self.authorization(scope, context, false).await?;
        let mut body = Some(body);
        let build = || {
            body.take().map(|b| {
                self.request(&method, &url, &headers, auth.as_deref(), None)
                    .body(b)
            })
        };
        let resp = self.execute(&method, &url, build, 1, context).await?;
        if resp.status() == StatusCode::UNAUTHORIZED
            && matches!(self.scheme(), Scheme::Bearer { .. })
            && auth.is_some()
            && self.same_origin(resp.url())
        {
            self.tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(scope);
            return Err(RegistryError::TokenRevoked {
                context: context.to_string(),
            });
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reqwest_client_per_ca_file_content_in_the_whole_process() {
        // Each client reads the system certificate store at its first HTTPS handshake:
        // later calls (a new `Registries` per serve pass) must reuse the first client.
        let (plain, _) = shared_http_client("127.0.0.1:5000", None).unwrap();
        let (again, _) = shared_http_client("127.0.0.1:5001", None).unwrap();
        assert_eq!(plain, again, "the same settings share one client");

        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/registry-tls");
        let ca = dir.join("ca.pem");
        let (with_ca, _) = shared_http_client("registry.internal", Some(&ca)).unwrap();
        assert_ne!(with_ca, plain, "a caFile gets its own client");
        let (with_ca_again, _) = shared_http_client("other.internal", Some(&ca)).unwrap();
        assert_eq!(with_ca, with_ca_again);

        // A caFile whose content changed (rotated) is a different client, at the same path.
        let scratch = std::env::temp_dir().join(format!("relsync-ca-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).unwrap();
        let rotated = scratch.join("ca.pem");
        let mut pem = std::fs::read(&ca).unwrap();
        std::fs::write(&rotated, &pem).unwrap();
        let (before, _) = shared_http_client("registry.internal", Some(&rotated)).unwrap();
        assert_eq!(before, with_ca, "keyed by content, not by path");
        pem.extend_from_slice(&std::fs::read(dir.join("server.pem")).unwrap());
        std::fs::write(&rotated, &pem).unwrap();
        let (after, _) = shared_http_client("registry.internal", Some(&rotated)).unwrap();
        std::fs::remove_dir_all(&scratch).unwrap();
        assert_ne!(after, before, "a rotated caFile is read again");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_and_not_cached() {
        let scratch = std::env::temp_dir().join(format!("relsync-noca-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).unwrap();
        let empty = scratch.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let first = shared_http_client("registry.internal", Some(&empty)).unwrap_err();
        let second = shared_http_client("registry.internal", Some(&empty)).unwrap_err();
        std::fs::remove_dir_all(&scratch).unwrap();
        for e in [first, second] {
            assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        }
    }
}
