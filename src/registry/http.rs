//! The distribution HTTP client: one [`HttpRegistry`] per host (its reqwest client, its
//! credentials and token cache, its request limit), and [`HttpRepository`] for one
//! repository on it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, LINK, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;
use url::Url;

use super::auth::{Challenge, Credentials, Token, TokenAnswer, parse_challenges};
use super::{MANIFEST_MEDIA_TYPES, RegistryError, TargetReader, is_valid_tag};
use crate::digest::Digest;

/// Pages of one tag list followed at most.
pub const MAX_TAG_PAGES: usize = 10_000;
/// Tags in one repository accepted at most.
pub const MAX_TAGS: usize = 1_000_000;
/// The largest manifest read when a registry does not send `Docker-Content-Digest`.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The largest tag-list page read.
const MAX_TAG_PAGE_BYTES: u64 = 32 * 1024 * 1024;
/// The largest error or token answer read.
const MAX_SMALL_BYTES: u64 = 1024 * 1024;
/// Tags asked for per page (registries may send fewer, and distribution 2.8 ignores it).
const PAGE_SIZE: usize = 1000;

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
}

impl HttpRegistry {
    /// A client for `host`: plain HTTP when `insecure`, else HTTPS with the system roots
    /// plus the certificates of `ca_file`; at most `concurrency` requests in flight; every
    /// request counted in `requests`.
    pub fn new(
        host: &str,
        insecure: bool,
        ca_file: Option<&Path>,
        credentials: Option<Credentials>,
        concurrency: usize,
        requests: Arc<AtomicU64>,
    ) -> Result<HttpRegistry, RegistryError> {
        let scheme = if insecure { "http" } else { "https" };
        let base_str = format!("{scheme}://{host}");
        let base = Url::parse(&format!("{base_str}/")).map_err(|e| RegistryError::Settings {
            host: host.to_string(),
            message: format!("not a usable host ({e})"),
        })?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("relsync/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(120));
        if insecure {
            builder = builder.https_only(false);
        }
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
        let client = builder.build().map_err(|source| RegistryError::Client {
            host: host.to_string(),
            source,
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
        })
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

    /// Sends one request, counted and logged; retries once on a connection error.
    async fn execute(
        &self,
        method: &Method,
        url: &Url,
        build: impl Fn() -> reqwest::RequestBuilder,
        context: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            match build().send().await {
                Ok(resp) => {
                    tracing::debug!(
                        method = %method,
                        url = %url,
                        status = resp.status().as_u16(),
                        "registry request"
                    );
                    return Ok(resp);
                }
                Err(e) => {
                    tracing::debug!(method = %method, url = %url, error = %e, "registry request failed");
                    if attempt == 1 && e.is_connect() {
                        continue;
                    }
                    return Err(RegistryError::Transport {
                        context: context.to_string(),
                        source: e.without_url(),
                    });
                }
            }
        }
    }

    /// Sends `method url` for `scope` (`repository:<path>:pull`), authenticating as the host
    /// asks: anonymous first; on 401, Basic with the credentials, or a Bearer token fetched
    /// from the challenge's realm (cached per scope), then one retry.
    async fn send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        scope: &str,
        context: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| RegistryError::Auth {
                context: context.to_string(),
                reason: "the request limiter was closed".to_string(),
            })?;
        let mut auth = self.authorization(scope, context, false).await?;
        let mut retried = false;
        loop {
            let build = || {
                let mut rb = self
                    .client
                    .request(method.clone(), url.clone())
                    .headers(headers.clone());
                if let Some(a) = &auth {
                    rb = rb.header(AUTHORIZATION, a.as_str());
                }
                rb
            };
            let resp = self.execute(&method, &url, build, context).await?;
            if resp.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(resp);
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
                    let wanted = challenge_scope.unwrap_or_else(|| scope.to_string());
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
            match &self.credentials {
                Some(c) => rb.header(AUTHORIZATION, basic_header(c)),
                None => rb,
            }
        };
        let token_context = format!("{context}: token request");
        let resp = self
            .execute(&Method::GET, &url, build, &token_context)
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
    match serde_json::from_slice::<ErrorBody>(&body) {
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
}

impl HttpRepository {
    /// Repository `path` on `registry`; `name` is the repository string as written in the
    /// stream's target (for messages). `path` must be a valid repository path.
    pub fn new(registry: Arc<HttpRegistry>, name: &str, path: String) -> Self {
        HttpRepository {
            registry,
            name: name.to_string(),
            scope: format!("repository:{path}:pull"),
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
        let base = &self.registry.base;
        next.scheme() == base.scheme()
            && next.host_str() == base.host_str()
            && next.port_or_known_default() == base.port_or_known_default()
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
        let resp = self
            .registry
            .send(
                Method::GET,
                url,
                Self::accept_manifests(),
                &self.scope,
                context,
            )
            .await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(status_error(resp, context).await),
        }
        let body = read_bounded(resp, MAX_MANIFEST_BYTES, context).await?;
        Ok(Some(Digest::sha256_of(&body)))
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
            let resp = self
                .registry
                .send(
                    Method::GET,
                    url.clone(),
                    HeaderMap::new(),
                    &self.scope,
                    &context,
                )
                .await?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND && page == 0 {
                let (code, message) = error_of(resp).await;
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
                return Err(status_error(resp, &context).await);
            }
            let next = next_link(resp.headers());
            let body = read_bounded(resp, MAX_TAG_PAGE_BYTES, &context).await?;
            let list: TagList =
                serde_json::from_slice(&body).map_err(|source| RegistryError::Json {
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
        if !is_valid_tag(tag) {
            return Err(RegistryError::InvalidTag {
                repo: self.name.clone(),
                tag: tag.to_string(),
            });
        }
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
