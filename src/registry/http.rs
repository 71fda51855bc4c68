//! The distribution HTTP client: one [`HttpRegistry`] per host (its reqwest client, its
//! credentials and token cache, its request limit), and [`HttpRepository`] for one
//! repository on it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LINK, LOCATION,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;
use url::Url;

use super::auth::{Challenge, Credentials, Token, TokenAnswer, parse_challenges};
use super::content::{BlobStream, ContentStore, MAX_MANIFEST_BYTES, RawManifest, TagDeletion};
use super::retry::{
    Outcome, RetryPolicy, parse_retry_after, retry, retryable_status, retryable_transport,
};
use super::verify::{check_manifest, digest_like, sniff_media_type, verifying};
use super::{
    MANIFEST_MEDIA_TYPES, RegistryError, StatusCounts, TargetReader, check_repository_path,
    check_tag,
};
use crate::digest::Digest;

/// Pages of one tag list followed at most.
pub const MAX_TAG_PAGES: usize = 10_000;
/// Tags in one repository accepted at most.
pub const MAX_TAGS: usize = 1_000_000;
/// The largest manifest read, as a byte count of an answer.
const MAX_MANIFEST: u64 = MAX_MANIFEST_BYTES as u64;
/// Connecting to a registry gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A request whose answer stays silent this long (between chunks too) is abandoned.
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Overrides [`READ_IDLE_TIMEOUT`]: seconds, fractions allowed (for slow links, and for
/// tests that stall answers without waiting a minute).
const READ_TIMEOUT_ENV: &str = "RELSYNC_READ_TIMEOUT";
/// The largest tag-list page read.
const MAX_TAG_PAGE_BYTES: u64 = 32 * 1024 * 1024;
/// The largest error or token answer read.
const MAX_SMALL_BYTES: u64 = 1024 * 1024;
/// Tags asked for per page (registries may send fewer, and distribution 2.8 ignores it).
const PAGE_SIZE: usize = 1000;

/// The read timeout: [`READ_TIMEOUT_ENV`] when set, else [`READ_IDLE_TIMEOUT`].
fn read_idle_timeout(host: &str) -> Result<Duration, RegistryError> {
    let Ok(value) = std::env::var(READ_TIMEOUT_ENV) else {
        return Ok(READ_IDLE_TIMEOUT);
    };
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| RegistryError::Settings {
            host: host.to_string(),
            message: format!("{READ_TIMEOUT_ENV}={value:?} is not a positive number of seconds"),
        })
}

/// How a host wants to be authenticated, learnt from its first challenge.
#[derive(Debug, Clone)]
enum Scheme {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// One registry host: its HTTP client, base URL, credentials, token cache and request
/// limit. Shared by every [`HttpRepository`] on the host.
#[derive(Debug)]
pub struct HttpRegistry {
    host: String,
    base: Url,
    base_str: String,
    client: reqwest::Client,
    credentials: Option<Credentials>,
    scheme: std::sync::Mutex<Scheme>,
    tokens: std::sync::Mutex<HashMap<String, Token>>,
    token_fetch: tokio::sync::Mutex<()>,
    limit: Semaphore,
    requests: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    statuses: Arc<StatusCounts>,
    retry: RetryPolicy,
}

/// The reqwest client for hosts that trust the system roots plus the certificates of
/// `ca_file`. Building one loads the system's certificate store, which takes a noticeable
/// part of a short run's start, so [`super::Registries`] makes one per `ca_file` and every
/// host that shares the setting shares it (connections are still pooled per host).
/// `host` only names the host in errors.
pub(crate) fn http_client(
    host: &str,
    ca_file: Option<&Path>,
) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("relsync/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(read_idle_timeout(host)?);
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca).map_err(|source| RegistryError::CaFile {
            host: host.to_string(),
            path: ca.to_path_buf(),
            source,
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
            RegistryError::Client {
                host: host.to_string(),
                source,
            }
        })?;
        if certs.is_empty() {
            return Err(RegistryError::Settings {
                host: host.to_string(),
                message: format!("caFile {} holds no PEM certificate", ca.display()),
            });
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
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
        let client = http_client(host, ca_file)?;
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
        })
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

    /// Whether `url` is on this registry: same scheme, host and port.
    fn same_origin(&self, url: &Url) -> bool {
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

    fn scheme(&self) -> Scheme {
        self.scheme
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_scheme(&self, s: Scheme) {
        *self.scheme.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    fn cached_token(&self, scope: &str) -> Option<Token> {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
            .filter(|t| t.is_fresh())
            .cloned()
    }

    fn count(&self, method: &Method) {
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
    async fn execute(
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
                match request.send().await {
                    Ok(resp) => {
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

    async fn permit(
        &self,
        context: &str,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, RegistryError> {
        self.limit.acquire().await.map_err(|_| RegistryError::Auth {
            context: context.to_string(),
            reason: "the request limiter was closed".to_string(),
        })
    }

    /// A request to `url` with `headers`, carrying `auth` only when `url` is on this
    /// registry (an upload `Location` may point elsewhere).
    fn request(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        auth: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut rb = self
            .client
            .request(method.clone(), url.clone())
            .headers(headers.clone());
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
    async fn send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
        scope: &str,
        context: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let _permit = self.permit(context).await?;
        let mut auth = self.authorization(scope, context, false).await?;
        let mut retried = false;
        loop {
            let build = || {
                let rb = self.request(&method, &url, &headers, auth.as_deref());
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
    async fn send_read(
        &self,
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
                let resp = match self.send(method, url, headers, None, scope, context).await {
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
    async fn send_stream(
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
                self.request(&method, &url, &headers, auth.as_deref())
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

    /// The `Authorization` header value to send for `scope` given what the host asked for
    /// before (`None`: anonymous).
    async fn authorization(
        &self,
        scope: &str,
        context: &str,
        after_challenge: bool,
    ) -> Result<Option<String>, RegistryError> {
        match self.scheme() {
            Scheme::Anonymous => Ok(None),
            Scheme::Basic => Ok(self.credentials.as_ref().map(basic_header)),
            Scheme::Bearer { .. } => {
                if let Some(t) = self.cached_token(scope) {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                if after_challenge {
                    return Ok(None);
                }
                // The host wants tokens: fetch one for this scope before asking.
                let token = self.fetch_token(scope, scope, context).await?;
                Ok(Some(format!("Bearer {}", token.value)))
            }
        }
    }

    /// Fetches a token for `wanted` from the realm the host named, with basic credentials
    /// when there are some (anonymous otherwise), and caches it under `scope`. One fetch at
    /// a time per host, so concurrent requests share a token.
    async fn fetch_token(
        &self,
        scope: &str,
        wanted: &str,
        context: &str,
    ) -> Result<Token, RegistryError> {
        let _guard = self.token_fetch.lock().await;
        if let Some(t) = self.cached_token(scope) {
            return Ok(t);
        }
        let Scheme::Bearer { realm, service } = self.scheme() else {
            return Err(RegistryError::Auth {
                context: context.to_string(),
                reason: "no bearer challenge to answer".to_string(),
            });
        };
        let mut url = Url::parse(&realm).map_err(|e| RegistryError::Auth {
            context: context.to_string(),
            reason: format!("the token realm `{realm}` is not a URL ({e})"),
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(RegistryError::Auth {
                context: context.to_string(),
                reason: format!("the token realm `{realm}` is not http(s)"),
            });
        }
        if url.scheme() == "http" && self.base.scheme() == "https" && self.credentials.is_some() {
            return Err(RegistryError::Auth {
                context: context.to_string(),
                reason: format!(
                    "refusing to send credentials to the plain-HTTP token realm `{realm}` of an HTTPS registry"
                ),
            });
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &service {
                q.append_pair("service", s);
            }
            for s in wanted.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        let build = || {
            let rb = self.client.get(url.clone());
            Some(match &self.credentials {
                Some(c) => with_authorization(rb, &basic_header(c)),
                None => rb,
            })
        };
        let token_context = format!("{context}: token request");
        let resp = self
            .execute(&Method::GET, &url, build, self.retry.tries, &token_context)
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let (code, message) = error_of(resp).await;
            return Err(RegistryError::Auth {
                context: context.to_string(),
                reason: format!(
                    "the token endpoint answered {status}{}",
                    super::error_detail(code.as_deref(), message.as_deref())
                ),
            });
        }
        let body = read_bounded(resp, MAX_SMALL_BYTES, &token_context).await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|source| RegistryError::Json {
                context: token_context.clone(),
                source,
            })?;
        let token = Token::from_answer(answer).ok_or_else(|| RegistryError::Auth {
            context: context.to_string(),
            reason: "the token endpoint sent no token".to_string(),
        })?;
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope.to_string(), token.clone());
        Ok(token)
    }
}

/// The scopes to ask a token for: those the challenge names plus those the request needs
/// (a push, or a mount's source), each once.
fn merge_scopes(challenge: Option<&str>, wanted: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in challenge
        .unwrap_or("")
        .split(' ')
        .chain(wanted.split(' '))
        .filter(|s| !s.is_empty())
    {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(" ")
}

/// Adds `Authorization: value`, marked sensitive so that no `Debug` of the request and no
/// HTTP/2 header table ever shows or indexes it.
fn with_authorization(rb: reqwest::RequestBuilder, value: &str) -> reqwest::RequestBuilder {
    match HeaderValue::from_str(value) {
        Ok(mut v) => {
            v.set_sensitive(true);
            rb.header(AUTHORIZATION, v)
        }
        // Not a valid header value (a token with control characters): the builder reports
        // the error when the request is built, without the value.
        Err(_) => rb.header(AUTHORIZATION, value),
    }
}

fn basic_header(c: &Credentials) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            c.username(),
            c.password()
        ))
    )
}

/// A whole answer, read by [`HttpRegistry::send_read`].
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    /// The error for an answer with an unexpected status.
    fn status_error(&self, context: &str) -> RegistryError {
        let (code, message) = error_in(&self.body);
        RegistryError::Status {
            context: context.to_string(),
            status: self.status.as_u16(),
            code,
            message,
        }
    }
}

/// Reads a body of at most `limit` bytes.
async fn read_bounded(
    mut resp: reqwest::Response,
    limit: u64,
    context: &str,
) -> Result<Vec<u8>, RegistryError> {
    if resp.content_length().is_some_and(|l| l > limit) {
        return Err(RegistryError::TooLarge {
            context: context.to_string(),
            limit,
        });
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(RegistryError::TooLarge {
                        context: context.to_string(),
                        limit,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(RegistryError::Transport {
                    context: context.to_string(),
                    source: e.without_url(),
                });
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(serde::Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The registry's first error code and message, when the answer carries them.
async fn error_of(resp: reqwest::Response) -> (Option<String>, Option<String>) {
    let Ok(body) = read_bounded(resp, MAX_SMALL_BYTES, "").await else {
        return (None, None);
    };
    error_in(&body)
}

/// The first error code and message of an error answer's body, when it carries them.
fn error_in(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => match b.errors.into_iter().next() {
            Some(e) => (e.code, e.message),
            None => (None, None),
        },
        Err(_) => (None, None),
    }
}

async fn status_error(resp: reqwest::Response, context: &str) -> RegistryError {
    let status = resp.status().as_u16();
    let (code, message) = error_of(resp).await;
    RegistryError::Status {
        context: context.to_string(),
        status,
        code,
        message,
    }
}

/// The target of the first `rel="next"` link in `Link` headers.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK).iter() {
        let Ok(value) = value.to_str() else { continue };
        let mut rest = value;
        while let Some(start) = rest.find('<') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('>') else { break };
            let target = &after[..end];
            let params_and_more = &after[end + 1..];
            // Parameters run until the next link (`, <`).
            let params_end = params_and_more.find(", <").unwrap_or(params_and_more.len());
            let params = &params_and_more[..params_end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim();
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                })
            });
            if is_next {
                return Some(target.to_string());
            }
            rest = &params_and_more[params_end..];
        }
    }
    None
}

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// One repository on a registry host.
#[derive(Debug, Clone)]
pub struct HttpRepository {
    registry: Arc<HttpRegistry>,
    name: String,
    path: String,
    scope: String,
    push_scope: String,
}

impl HttpRepository {
    /// Repository `path` on `registry`; `name` is the repository string as written in the
    /// stream's target (for messages). `path` must be a valid repository path.
    pub fn new(registry: Arc<HttpRegistry>, name: &str, path: String) -> Self {
        HttpRepository {
            registry,
            name: name.to_string(),
            scope: format!("repository:{path}:pull"),
            push_scope: format!("repository:{path}:pull,push"),
            path,
        }
    }

    /// The normalized host.
    pub fn host(&self) -> &str {
        self.registry.host()
    }

    /// The repository path on the host (`library/nginx` for `docker.io/nginx`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `http://host` or `https://host`.
    pub fn base_url(&self) -> &str {
        self.registry.base_url()
    }

    fn url(&self, rest: &str) -> Result<Url, RegistryError> {
        self.registry
            .base
            .join(&format!("/v2/{}/{rest}", self.path))
            .map_err(|e| RegistryError::InvalidRepository {
                repo: self.name.clone(),
                reason: format!("cannot make a URL ({e})"),
            })
    }

    fn accept_manifests() -> HeaderMap {
        static ACCEPT_ALL: std::sync::LazyLock<reqwest::header::HeaderValue> =
            std::sync::LazyLock::new(|| {
                reqwest::header::HeaderValue::from_str(&MANIFEST_MEDIA_TYPES.join(", "))
                    .expect("media types are valid header text")
            });
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, ACCEPT_ALL.clone());
        h
    }

    /// Whether `next` may be followed from this registry: same scheme, host and port.
    fn same_origin(&self, next: &Url) -> bool {
        self.registry.same_origin(next)
    }

    /// Sends a request with no extra headers and no body.
    async fn send_bare(
        &self,
        method: Method,
        url: Url,
        scope: &str,
        context: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        self.registry
            .send(method, url, HeaderMap::new(), None, scope, context)
            .await
    }

    /// HEADs (or GETs) `manifests/<reference>`: `Some(digest)` when present, `None` on 404.
    async fn head_manifest(
        &self,
        reference: &str,
        context: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let resp = self
            .registry
            .send(
                Method::HEAD,
                url.clone(),
                Self::accept_manifests(),
                None,
                &self.scope,
                context,
            )
            .await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(status_error(resp, context).await),
        }
        if let Some(value) = resp.headers().get("docker-content-digest") {
            let value = value.to_str().unwrap_or("");
            return Digest::parse(value.trim()).map(Some).map_err(|source| {
                RegistryError::BadDigest {
                    context: format!("{context}: Docker-Content-Digest"),
                    source,
                }
            });
        }
        // No digest header: read the manifest and hash it.
        let answer = self
            .registry
            .send_read(
                Method::GET,
                url,
                Self::accept_manifests(),
                &self.scope,
                context,
                MAX_MANIFEST,
            )
            .await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(answer.status_error(context)),
        }
        Ok(Some(Digest::sha256_of(&answer.body)))
    }
}

impl TargetReader for HttpRepository {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self) -> Result<Vec<String>, RegistryError> {
        let context = format!("listing tags of {}", self.name);
        let mut url = self.url(&format!("tags/list?n={PAGE_SIZE}"))?;
        let mut seen: HashSet<Url> = HashSet::new();
        let mut tags: BTreeSet<String> = BTreeSet::new();
        let mut received = 0usize;
        for page in 0.. {
            if page >= MAX_TAG_PAGES {
                return Err(RegistryError::Pagination {
                    context,
                    reason: format!("more than {MAX_TAG_PAGES} pages of tags; giving up"),
                });
            }
            if !seen.insert(url.clone()) {
                return Err(RegistryError::Pagination {
                    context,
                    reason: format!("the Link header leads back to {url} (a loop)"),
                });
            }
            let answer = self
                .registry
                .send_read(
                    Method::GET,
                    url.clone(),
                    HeaderMap::new(),
                    &self.scope,
                    &context,
                    MAX_TAG_PAGE_BYTES,
                )
                .await?;
            let status = answer.status;
            if status == StatusCode::NOT_FOUND && page == 0 {
                let (code, message) = error_in(&answer.body);
                return match code.as_deref() {
                    None | Some("NAME_UNKNOWN") => Ok(Vec::new()),
                    Some(_) => Err(RegistryError::Status {
                        context,
                        status: status.as_u16(),
                        code,
                        message,
                    }),
                };
            }
            if status != StatusCode::OK {
                return Err(answer.status_error(&context));
            }
            let next = next_link(&answer.headers);
            let list: TagList =
                serde_json::from_slice(&answer.body).map_err(|source| RegistryError::Json {
                    context: context.clone(),
                    source,
                })?;
            let page_tags = list.tags.unwrap_or_default();
            received += page_tags.len();
            if received > MAX_TAGS {
                return Err(RegistryError::Pagination {
                    context,
                    reason: format!("more than {MAX_TAGS} tags; giving up"),
                });
            }
            tags.extend(page_tags);
            let Some(next) = next else { break };
            let next_url =
                self.registry
                    .base
                    .join(&next)
                    .map_err(|e| RegistryError::Pagination {
                        context: context.clone(),
                        reason: format!("the Link header `{next}` is not a URL ({e})"),
                    })?;
            if !self.same_origin(&next_url) {
                return Err(RegistryError::Pagination {
                    context,
                    reason: format!(
                        "refusing to follow a Link to {next_url}: not {}",
                        self.registry.base_url()
                    ),
                });
            }
            url = next_url;
        }
        Ok(tags.into_iter().collect())
    }

    async fn resolve_tag(&self, tag: &str) -> Result<Option<Digest>, RegistryError> {
        check_tag(&self.name, tag)?;
        let context = format!("resolving {}:{tag}", self.name);
        self.head_manifest(tag, &context).await
    }

    async fn has_manifest(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let context = format!("checking {}@{digest}", self.name);
        match self.head_manifest(digest.as_str(), &context).await? {
            None => Ok(false),
            Some(d) if d == *digest => Ok(true),
            Some(other) => Err(RegistryError::Status {
                context,
                status: 200,
                code: None,
                message: Some(format!(
                    "the registry answered with the digest {other} for this digest"
                )),
            }),
        }
    }
}

/// A manifest reference: a tag or a digest.
enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    /// Parses `reference` (a digest when it holds `:`, else a tag), for repository `repo`.
    fn parse(repo: &str, reference: &str) -> Result<Reference, RegistryError> {
        if reference.contains(':') {
            Digest::parse(reference)
                .map(Reference::Digest)
                .map_err(|source| RegistryError::BadDigest {
                    context: format!("{repo}@{reference}"),
                    source,
                })
        } else {
            check_tag(repo, reference)?;
            Ok(Reference::Tag(reference.to_string()))
        }
    }

    /// `repo:tag` or `repo@digest`.
    fn display(&self, repo: &str) -> String {
        match self {
            Reference::Tag(t) => format!("{repo}:{t}"),
            Reference::Digest(d) => format!("{repo}@{d}"),
        }
    }
}

/// The media type of a `Content-Type` value without parameters; `None` when absent or
/// generic (`application/json`, `text/plain`, `application/octet-stream`).
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next().unwrap_or("").trim();
    match media {
        "" | "application/json" | "text/plain" | "application/octet-stream" => None,
        m => Some(m.to_string()),
    }
}

/// The `Docker-Content-Digest` of an answer, when present and valid.
fn content_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok())
}

impl HttpRepository {
    /// The scope a mount needs: push here, pull from `from`.
    fn mount_scope(&self, from: &str) -> String {
        format!("{} repository:{from}:pull", self.push_scope)
    }

    /// The upload URL of a `Location` answer to `request`.
    fn location(
        &self,
        resp: &reqwest::Response,
        request: &Url,
        context: &str,
    ) -> Result<Url, RegistryError> {
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Status {
                context: context.to_string(),
                status: resp.status().as_u16(),
                code: None,
                message: Some("the answer has no Location".to_string()),
            })?;
        let url = request.join(location).map_err(|e| RegistryError::Status {
            context: context.to_string(),
            status: resp.status().as_u16(),
            code: None,
            message: Some(format!("the Location `{location}` is not a URL ({e})")),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RegistryError::Status {
                context: context.to_string(),
                status: resp.status().as_u16(),
                code: None,
                message: Some(format!("the Location `{location}` is not http(s)")),
            });
        }
        Ok(url)
    }

    /// Starts an upload session: POST `blobs/uploads/` (with `query`), for `scope`.
    async fn start_upload(
        &self,
        query: Option<&[(&str, &str)]>,
        scope: &str,
        context: &str,
    ) -> Result<(reqwest::Response, Url), RegistryError> {
        let mut url = self.url("blobs/uploads/")?;
        if let Some(q) = query {
            url.query_pairs_mut().extend_pairs(q);
        }
        let resp = self
            .send_bare(Method::POST, url.clone(), scope, context)
            .await?;
        Ok((resp, url))
    }

    /// Cancels an upload session, best effort.
    async fn cancel_upload(&self, url: Url, scope: &str, context: &str) {
        let context = format!("{context}: cancelling the upload session");
        match self.send_bare(Method::DELETE, url, scope, &context).await {
            Ok(resp) => {
                tracing::debug!(status = resp.status().as_u16(), "{context}");
            }
            Err(e) => tracing::debug!(error = %e, "{context}"),
        }
    }
}

impl ContentStore for HttpRepository {
    async fn get_manifest(&self, reference: &str) -> Result<Option<RawManifest>, RegistryError> {
        let parsed = Reference::parse(&self.name, reference)?;
        let context = format!("reading manifest {}", parsed.display(&self.name));
        let url = self.url(&format!("manifests/{reference}"))?;
        let answer = self
            .registry
            .send_read(
                Method::GET,
                url,
                Self::accept_manifests(),
                &self.scope,
                &context,
                MAX_MANIFEST,
            )
            .await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(answer.status_error(&context)),
        }
        let declared_type = content_type(&answer.headers);
        let header_digest = content_digest(&answer.headers);
        let bytes = answer.body;
        let digest = match &parsed {
            Reference::Digest(d) => {
                let actual = digest_like(d, &bytes);
                if actual != d.as_str() {
                    return Err(RegistryError::DigestMismatch {
                        context,
                        expected: d.to_string(),
                        actual,
                    });
                }
                d.clone()
            }
            Reference::Tag(_) => {
                let computed = Digest::sha256_of(&bytes);
                if let Some(h) = header_digest.filter(|h| h.algorithm() == "sha256")
                    && h != computed
                {
                    return Err(RegistryError::DigestMismatch {
                        context: format!("{context} (Docker-Content-Digest)"),
                        expected: h.to_string(),
                        actual: computed.to_string(),
                    });
                }
                computed
            }
        };
        let media_type = declared_type
            .or_else(|| sniff_media_type(&bytes))
            .ok_or_else(|| RegistryError::Status {
                context: context.clone(),
                status: 200,
                code: None,
                message: Some(
                    "the manifest has no media type (no Content-Type, no mediaType)".to_string(),
                ),
            })?;
        Ok(Some(RawManifest {
            media_type,
            bytes,
            digest,
        }))
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let context = format!("checking blob {digest} in {}", self.name);
        let url = self.url(&format!("blobs/{digest}"))?;
        let resp = self
            .send_bare(Method::HEAD, url, &self.scope, &context)
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(resp, &context).await),
        }
    }

    async fn open_blob(&self, digest: &Digest) -> Result<BlobStream, RegistryError> {
        let context = format!("reading blob {digest} from {}", self.name);
        let url = self.url(&format!("blobs/{digest}"))?;
        // Redirects to storage are followed by the client, which drops `Authorization`
        // when the redirect leaves this host.
        let resp = self
            .send_bare(Method::GET, url, &self.scope, &context)
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(status_error(resp, &context).await);
        }
        let size = resp.content_length();
        let chunks = resp
            .bytes_stream()
            .map_err(move |e| RegistryError::Transport {
                context: context.clone(),
                source: e.without_url(),
            });
        Ok(BlobStream {
            size,
            chunks: Box::pin(chunks),
        })
    }

    async fn put_blob(&self, digest: &Digest, blob: BlobStream) -> Result<u64, RegistryError> {
        let context = format!("uploading blob {digest} to {}", self.name);
        // An empty body is never polled, so check an announced empty blob here.
        if blob.size == Some(0) {
            let empty = digest_like(digest, b"");
            if empty != digest.as_str() {
                return Err(RegistryError::DigestMismatch {
                    context,
                    expected: digest.to_string(),
                    actual: empty,
                });
            }
        }
        let (resp, request) = self.start_upload(None, &self.push_scope, &context).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(resp, &context).await);
        }
        let mut url = self.location(&resp, &request, &context)?;
        drop(resp);
        url.query_pairs_mut().append_pair("digest", digest.as_str());

        let (stream, handle) = verifying(blob.chunks, digest, blob.size, &context);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if let Some(size) = blob.size {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
        }
        let sent = self
            .registry
            .send_stream(
                Method::PUT,
                url,
                headers,
                reqwest::Body::wrap_stream(stream),
                &self.push_scope,
                &context,
            )
            .await;
        // A lying or failing source is the cause, whatever the transport made of it.
        if let Some(e) = handle.take_error() {
            return Err(e);
        }
        let resp = sent?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(resp, &context).await);
        }
        if let Some(stored) = content_digest(resp.headers())
            && stored != *digest
        {
            return Err(RegistryError::DigestMismatch {
                context: format!("{context}: the registry stored another digest"),
                expected: digest.to_string(),
                actual: stored.to_string(),
            });
        }
        Ok(handle.verified().unwrap_or(0))
    }

    async fn mount_blob(&self, digest: &Digest, from_path: &str) -> Result<bool, RegistryError> {
        check_repository_path(from_path).map_err(|reason| RegistryError::InvalidRepository {
            repo: from_path.to_string(),
            reason,
        })?;
        if from_path == self.path {
            return self.has_blob(digest).await;
        }
        let context = format!("mounting blob {digest} from {from_path} into {}", self.name);
        let scope = self.mount_scope(from_path);
        let (resp, request) = self
            .start_upload(
                Some(&[("mount", digest.as_str()), ("from", from_path)]),
                &scope,
                &context,
            )
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry opened an upload session instead: close it.
                if let Ok(url) = self.location(&resp, &request, &context) {
                    drop(resp);
                    self.cancel_upload(url, &scope, &context).await;
                }
                Ok(false)
            }
            _ => Err(status_error(resp, &context).await),
        }
    }

    async fn put_manifest(
        &self,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError> {
        let parsed = Reference::parse(&self.name, reference)?;
        let context = format!("writing manifest {}", parsed.display(&self.name));
        check_manifest(&context, manifest)?;
        if let Reference::Digest(d) = &parsed
            && *d != manifest.digest
        {
            return Err(RegistryError::DigestMismatch {
                context,
                expected: d.to_string(),
                actual: manifest.digest.to_string(),
            });
        }
        let mut headers = HeaderMap::new();
        let ct = HeaderValue::from_str(&manifest.media_type).map_err(|_| {
            RegistryError::InvalidRepository {
                repo: self.name.clone(),
                reason: format!(
                    "the media type `{}` cannot be sent as Content-Type",
                    manifest.media_type
                ),
            }
        })?;
        headers.insert(CONTENT_TYPE, ct);
        let url = self.url(&format!("manifests/{reference}"))?;
        let (result, _) = retry(&self.registry.retry, |attempt| {
            let (url, headers, context) = (url.clone(), headers.clone(), context.as_str());
            async move {
                let sent = self
                    .registry
                    .send(
                        Method::PUT,
                        url,
                        headers,
                        Some(manifest.bytes.clone()),
                        &self.push_scope,
                        context,
                    )
                    .await;
                let resp = match sent {
                    Ok(resp) if matches!(resp.status(), StatusCode::CREATED | StatusCode::OK) => {
                        return Outcome::Done(Ok(resp));
                    }
                    Ok(resp) => resp,
                    Err(e) => return Outcome::Done(Err(e)),
                };
                let err = status_error(resp, context).await;
                // relsync computed the digest from these very bytes, so DIGEST_INVALID is
                // never about the request: distribution's filesystem storage answers it while
                // another client rewrites a link this manifest's check reads (two syncs
                // pushing the same content). Worth another try, like a 5xx.
                let racing = matches!(&err, RegistryError::Status { status: 400, code: Some(c), .. } if c == "DIGEST_INVALID");
                if racing {
                    tracing::debug!(%context, attempt, "DIGEST_INVALID on a manifest write");
                    Outcome::Retry {
                        value: Err(err),
                        retry_after: None,
                    }
                } else {
                    Outcome::Done(Err(err))
                }
            }
        })
        .await;
        let resp = result?;
        if let Some(stored) = content_digest(resp.headers())
            && stored.algorithm() == manifest.digest.algorithm()
            && stored != manifest.digest
        {
            return Err(RegistryError::DigestMismatch {
                context: format!("{context}: the registry stored another digest"),
                expected: manifest.digest.to_string(),
                actual: stored.to_string(),
            });
        }
        Ok(())
    }

    async fn delete_tag(&self, tag: &str) -> Result<TagDeletion, RegistryError> {
        check_tag(&self.name, tag)?;
        let context = format!("deleting tag {}:{tag}", self.name);
        let url = self.url(&format!("manifests/{tag}"))?;
        let resp = self
            .send_bare(Method::DELETE, url, &self.push_scope, &context)
            .await?;
        let status = resp.status();
        match status {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => {
                Ok(TagDeletion::Deleted)
            }
            StatusCode::NOT_FOUND => {
                let (code, message) = error_of(resp).await;
                match code.as_deref() {
                    None | Some("MANIFEST_UNKNOWN") | Some("NAME_UNKNOWN") => {
                        Ok(TagDeletion::Deleted)
                    }
                    Some(_) => Err(RegistryError::Status {
                        context,
                        status: status.as_u16(),
                        code,
                        message,
                    }),
                }
            }
            StatusCode::METHOD_NOT_ALLOWED => Ok(TagDeletion::Unsupported),
            StatusCode::BAD_REQUEST => {
                let (code, message) = error_of(resp).await;
                match code.as_deref() {
                    Some("UNSUPPORTED") | Some("DIGEST_INVALID") => Ok(TagDeletion::Unsupported),
                    _ => Err(RegistryError::Status {
                        context,
                        status: status.as_u16(),
                        code,
                        message,
                    }),
                }
            }
            _ => Err(status_error(resp, &context).await),
        }
    }

    async fn delete_manifest(&self, digest: &Digest) -> Result<(), RegistryError> {
        let context = format!("deleting manifest {}@{digest}", self.name);
        let url = self.url(&format!("manifests/{digest}"))?;
        let resp = self
            .send_bare(Method::DELETE, url, &self.push_scope, &context)
            .await?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::NOT_FOUND => Ok(()),
            StatusCode::METHOD_NOT_ALLOWED => {
                let (code, _) = error_of(resp).await;
                Err(RegistryError::Status {
                    context,
                    status: 405,
                    code,
                    message: Some("deletes are disabled on this registry".to_string()),
                })
            }
            _ => Err(status_error(resp, &context).await),
        }
    }
}

/// `scheme://host:port` of a URL, for messages (never its path or query).
fn origin_of(u: &Url) -> String {
    format!(
        "{}://{}{}",
        u.scheme(),
        u.host_str().unwrap_or(""),
        u.port().map(|p| format!(":{p}")).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn links(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(LINK, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn finds_next_links() {
        assert_eq!(
            next_link(&links(&[r#"</v2/a/tags/list?last=x&n=2>; rel="next""#])),
            Some("/v2/a/tags/list?last=x&n=2".to_string())
        );
        assert_eq!(
            next_link(&links(&[
                r#"<https://h/first>; rel="prev", <https://h/v2/a/tags/list?n=1&last=b>; rel=next"#
            ])),
            Some("https://h/v2/a/tags/list?n=1&last=b".to_string())
        );
        assert_eq!(
            next_link(&links(&[r#"</p>; rel="prev""#, r#"</n>; rel="next""#])),
            Some("/n".to_string())
        );
        assert_eq!(next_link(&links(&[r#"</p>; rel="prev""#])), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
