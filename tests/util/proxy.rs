//! A paging (and token-issuing, fault-injecting) proxy in front of a real registry.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ServerThread;

/// Where a paging proxy's `Link` headers point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkStyle {
    /// `</v2/NAME/tags/list?n=N&last=T>` (what distribution 3 sends).
    #[default]
    Relative,
    /// `<http://127.0.0.1:PORT/v2/...>`: absolute, same origin.
    Absolute,
    /// `<http://localhost:PORT/v2/...>`: another host (the same server under another
    /// name), which a client must refuse to follow.
    ForeignHost,
    /// Every page after the first links to itself: an endless loop.
    Loop,
}

/// Bearer-token auth demanded by the proxy.
#[derive(Debug, Clone, Default)]
pub struct BearerAuth {
    /// Credentials the token endpoint requires (anonymous tokens when `None`).
    pub credentials: Option<(String, String)>,
    /// Answer with `access_token` instead of `token`.
    pub access_token_field: bool,
}

/// How a [`PagingProxy`] rewrites answers.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Page tag lists with at most this many tags per page (also honouring a smaller `n`).
    pub page_size: Option<usize>,
    /// Where `Link` points.
    pub link: LinkStyle,
    /// Demand bearer tokens issued by the proxy's `/token` endpoint.
    pub bearer: Option<BearerAuth>,
    /// Drop `Docker-Content-Digest` from manifest answers (clients must hash the body).
    pub strip_digest_header: bool,
    /// Hold every answer this long (to make concurrent requests overlap).
    pub delay: Option<Duration>,
    /// Answer requests with these faults first, in order (see [`Fault`]).
    pub faults: Vec<Fault>,
    /// Answer blob GETs with a 307 to another host name of the proxy
    /// (`http://localhost:PORT/_storage/...`), which serves the blob without auth and
    /// records the `Authorization` header it was sent (see
    /// [`PagingProxy::storage_authorizations`]).
    pub redirect_blobs: bool,
    /// Append this many spaces to every manifest GET answer (a digest-false body; past
    /// 4 MiB, an oversized one).
    pub manifest_padding: Option<usize>,
    /// Answer tag lists with a list that never ends: every page holds `page_size` (default
    /// 1000) new tags and a relative `Link` to the next page.
    pub endless_tags: bool,
    /// Bearer tokens stop being accepted this long after they were issued, although the
    /// token endpoint still announces `expires_in: 300` (a token revoked early): a client
    /// must fetch a new one when a request with its cached token gets 401.
    pub token_ttl: Option<Duration>,
    /// Headers added to every answer forwarded from the registry (rate-limit headers...).
    pub answer_headers: Vec<(String, String)>,
}

/// A failure the proxy answers instead of forwarding, for `times` requests (of `method`
/// only, when given) to `/v2/`, after reading their bodies.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The status to answer (503, 429...).
    pub status: u16,
    /// How many requests get it.
    pub times: u64,
    /// A `Retry-After` header to send.
    pub retry_after: Option<String>,
    /// Only requests of this method (`PUT`...) get it; others pass.
    pub method: Option<String>,
}

struct ProxyState {
    upstream: String,
    self_base: String,
    port: u16,
    options: ProxyOptions,
    client: reqwest::Client,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    token_requests: AtomicU64,
    log: Mutex<Vec<String>>,
    tokens: Mutex<HashSet<String>>,
    token_issued: Mutex<HashMap<String, Instant>>,
    faults: Mutex<std::collections::VecDeque<Fault>>,
    faults_served: AtomicU64,
    storage_auth: Mutex<Vec<Option<String>>>,
    times: Mutex<Vec<Instant>>,
}

/// A proxy in front of a real registry that forwards every request and rewrites answers:
/// pages `/tags/list` with `Link` headers (distribution 2.8 ignores `n` and sends no
/// `Link`), optionally demands bearer tokens it issues itself, and counts what it sees.
/// Runs on its own thread; stopped on drop.
pub struct PagingProxy {
    state: Arc<ProxyState>,
    _server: ServerThread,
}

impl PagingProxy {
    /// Starts a proxy for the registry at `upstream` (`http://host:port`).
    pub fn start(upstream: &str, options: ProxyOptions) -> PagingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let faults = options.faults.iter().cloned().collect();
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            self_base: format!("http://127.0.0.1:{port}"),
            port,
            options,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            tokens: Mutex::new(HashSet::new()),
            token_issued: Mutex::new(HashMap::new()),
            faults: Mutex::new(faults),
            faults_served: AtomicU64::new(0),
            storage_auth: Mutex::new(Vec::new()),
            times: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(proxy_handler)
            .with_state(state.clone());
        PagingProxy {
            state,
            _server: ServerThread::serve(listener, app),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.state.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.state.self_base.clone()
    }

    /// Requests received (token requests included).
    pub fn request_count(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The most requests that were being answered at once.
    pub fn max_in_flight(&self) -> u64 {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests received by the token endpoint.
    pub fn token_request_count(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Requests answered with an injected [`Fault`].
    pub fn faults_served(&self) -> u64 {
        self.state.faults_served.load(Ordering::SeqCst)
    }

    /// The `Authorization` header (if any) of every request to the redirect target of
    /// [`ProxyOptions::redirect_blobs`].
    pub fn storage_authorizations(&self) -> Vec<Option<String>> {
        self.state.storage_auth.lock().expect("storage log").clone()
    }

    /// Every bearer token the token endpoint issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state
            .tokens
            .lock()
            .expect("tokens")
            .iter()
            .cloned()
            .collect()
    }

    /// When each request was received, in order.
    pub fn request_times(&self) -> Vec<Instant> {
        self.state.times.lock().expect("times").clone()
    }

    /// `METHOD path?query` of every request received, in order.
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().expect("log").clone()
    }
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    let q = query?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn respond(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> axum::response::Response {
    let mut b = axum::response::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(axum::body::Body::from(body)).expect("response")
}

async fn proxy_handler(
    axum::extract::State(st): axum::extract::State<Arc<ProxyState>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if let Some(d) = st.options.delay {
        tokio::time::sleep(d).await;
    }
    let resp = proxy_answer(&st, req).await;
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    resp
}

async fn proxy_answer(st: &ProxyState, req: axum::extract::Request) -> axum::response::Response {
    st.requests.fetch_add(1, Ordering::SeqCst);
    st.times.lock().expect("times").push(Instant::now());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    st.log.lock().expect("log").push(match &query {
        Some(q) => format!("{method} {path}?{q}"),
        None => format!("{method} {path}"),
    });

    // The token endpoint.
    if path == "/token" {
        st.token_requests.fetch_add(1, Ordering::SeqCst);
        let Some(bearer) = &st.options.bearer else {
            return respond(404, vec![], vec![]);
        };
        if let Some((user, pass)) = &bearer.credentials {
            use base64::Engine as _;
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            );
            let given = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if given != Some(expected.as_str()) {
                return respond(
                    401,
                    vec![("content-type".into(), "application/json".into())],
                    br#"{"details":"bad credentials"}"#.to_vec(),
                );
            }
        }
        let scope = query_param(query.as_deref(), "scope").unwrap_or_default();
        let token = format!(
            "tok-{}-{}",
            st.token_requests.load(Ordering::SeqCst),
            scope.replace([':', '/'], "_")
        );
        st.tokens.lock().expect("tokens").insert(token.clone());
        st.token_issued
            .lock()
            .expect("tokens")
            .insert(token.clone(), Instant::now());
        let field = if bearer.access_token_field {
            "access_token"
        } else {
            "token"
        };
        let body = serde_json::json!({ field: token, "expires_in": 300 });
        return respond(
            200,
            vec![("content-type".into(), "application/json".into())],
            serde_json::to_vec(&body).expect("json"),
        );
    }

    // The redirect target of blob GETs: another host name, no auth.
    let storage = path.starts_with("/_storage/v2/");
    let path = if storage {
        st.storage_auth.lock().expect("storage log").push(
            req.headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        );
        path["/_storage".len()..].to_string()
    } else {
        path
    };

    // Bearer auth in front of /v2/.
    if st.options.bearer.is_some() && path.starts_with("/v2/") && !storage {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let live = |t: &String| match st.options.token_ttl {
            None => true,
            Some(ttl) => st
                .token_issued
                .lock()
                .expect("tokens")
                .get(t)
                .is_some_and(|at| at.elapsed() < ttl),
        };
        let ok = given.is_some_and(|t| st.tokens.lock().expect("tokens").contains(&t) && live(&t));
        if !ok {
            let name = repo_of(&path).unwrap_or_default();
            let challenge = format!(
                r#"Bearer realm="{}/token",service="relsync-test",scope="repository:{name}:pull""#,
                st.self_base
            );
            return respond(
                401,
                vec![
                    ("www-authenticate".into(), challenge),
                    ("content-type".into(), "application/json".into()),
                ],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                    .to_vec(),
            );
        }
    }

    if st.options.redirect_blobs
        && !storage
        && method == axum::http::Method::GET
        && path.contains("/blobs/")
        && !path.contains("/blobs/uploads")
    {
        return respond(
            307,
            vec![(
                "location".into(),
                format!("http://localhost:{}/_storage{path}", st.port),
            )],
            vec![],
        );
    }

    if st.options.endless_tags && method == axum::http::Method::GET && path.ends_with("/tags/list")
    {
        let n = st.options.page_size.unwrap_or(1000);
        let start = query_param(query.as_deref(), "last")
            .and_then(|l| l.strip_prefix('t').and_then(|i| i.parse::<usize>().ok()))
            .map_or(0, |i| i + 1);
        let tags: Vec<String> = (start..start + n).map(|i| format!("t{i:09}")).collect();
        let link = format!(
            "<{path}?n={n}&last={}>; rel=\"next\"",
            tags.last().cloned().unwrap_or_default()
        );
        let body = serde_json::json!({"name": repo_of(&path), "tags": tags});
        return respond(
            200,
            vec![
                ("content-type".into(), "application/json".into()),
                ("link".into(), link),
            ],
            serde_json::to_vec(&body).expect("json"),
        );
    }

    // Forward upstream.
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 256 * 1024 * 1024)
        .await
        .unwrap_or_default();
    if path.starts_with("/v2/") && !storage {
        let fault = {
            let mut faults = st.faults.lock().expect("faults");
            let applies = faults
                .front()
                .is_some_and(|f| f.method.as_deref().is_none_or(|m| m == method.as_str()));
            if applies {
                let f = faults.front_mut().expect("front");
                f.times = f.times.saturating_sub(1);
                let answer = f.clone();
                if f.times == 0 {
                    faults.pop_front();
                }
                Some(answer)
            } else {
                None
            }
        };
        if let Some(f) = fault {
            st.faults_served.fetch_add(1, Ordering::SeqCst);
            let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
            if let Some(ra) = f.retry_after {
                headers.push(("retry-after".into(), ra));
            }
            return respond(
                f.status,
                headers,
                br#"{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}"#.to_vec(),
            );
        }
    }
    let is_tag_list = method == axum::http::Method::GET && path.ends_with("/tags/list");
    // Tag lists are fetched whole (without paging parameters) and paged here.
    let upstream_url = if is_tag_list && st.options.page_size.is_some() {
        format!("{}{path}", st.upstream)
    } else {
        match &query {
            Some(q) => format!("{}{path}?{q}", st.upstream),
            None => format!("{}{path}", st.upstream),
        }
    };
    let mut rb = st.client.request(method.clone(), &upstream_url);
    for (k, v) in headers.iter() {
        let name = k.as_str();
        if matches!(
            name,
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) || (name == "authorization" && st.options.bearer.is_some())
        {
            continue;
        }
        rb = rb.header(k.clone(), v.clone());
    }
    let resp = match rb.body(body.to_vec()).send().await {
        Ok(r) => r,
        Err(e) => return respond(502, vec![], format!("upstream: {e}").into_bytes()),
    };
    let status = resp.status().as_u16();
    let mut out_headers: Vec<(String, String)> = Vec::new();
    for (k, v) in resp.headers() {
        let name = k.as_str();
        if matches!(name, "connection" | "transfer-encoding") {
            continue;
        }
        if st.options.strip_digest_header && name == "docker-content-digest" {
            continue;
        }
        let Ok(v) = v.to_str() else { continue };
        let v = if name == "location" {
            v.replace(&st.upstream, &st.self_base)
        } else {
            v.to_string()
        };
        out_headers.push((name.to_string(), v));
    }
    let mut bytes = resp.bytes().await.unwrap_or_default().to_vec();
    if let (Some(n), 200, true) = (
        st.options.manifest_padding,
        status,
        method == axum::http::Method::GET && path.contains("/manifests/"),
    ) {
        bytes.resize(bytes.len() + n, b' ');
        out_headers.retain(|(k, _)| k != "content-length");
    }

    if let (true, 200, Some(page_size)) = (is_tag_list, status, st.options.page_size) {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        let n = query_param(query.as_deref(), "n")
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(page_size, |n| n.min(page_size))
            .max(1);
        let last = query_param(query.as_deref(), "last");
        let rest: Vec<String> = tags
            .into_iter()
            .filter(|t| last.as_ref().is_none_or(|l| t > l))
            .collect();
        let page: Vec<String> = rest.iter().take(n).cloned().collect();
        let mut headers: Vec<(String, String)> = out_headers
            .into_iter()
            .filter(|(k, _)| k != "content-length" && k != "link")
            .collect();
        if rest.len() > page.len() {
            let page_last = page.last().cloned().unwrap_or_default();
            let link_last = match st.options.link {
                // Page 2 onwards links to itself.
                LinkStyle::Loop => last.clone().unwrap_or(page_last),
                _ => page_last,
            };
            let rel = format!("{path}?n={n}&last={link_last}");
            let target = match st.options.link {
                LinkStyle::Relative | LinkStyle::Loop => rel,
                LinkStyle::Absolute => format!("{}{rel}", st.self_base),
                LinkStyle::ForeignHost => format!("http://localhost:{}{rel}", st.port),
            };
            headers.push(("link".into(), format!("<{target}>; rel=\"next\"")));
        }
        let body = serde_json::json!({"name": v["name"], "tags": page});
        return respond(status, headers, serde_json::to_vec(&body).expect("json"));
    }
    out_headers.extend(st.options.answer_headers.iter().cloned());
    respond(status, out_headers, bytes)
}

/// The repository name of a `/v2/<name>/(tags|manifests|blobs)/...` path.
fn repo_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    for marker in ["/tags/", "/manifests/", "/blobs/"] {
        if let Some(i) = rest.find(marker) {
            return Some(rest[..i].to_string());
        }
    }
    None
}
