//! A fault-injection proxy in front of a real registry: it forwards every request over a
//! fresh upstream connection and, for a seeded random share of them (or always, for the
//! requests a rule targets), answers 500, 503 or 429 with `Retry-After`, cuts the answer in
//! the middle, drops the connection, or stalls. It works on raw HTTP/1.1 bytes (one request
//! per connection, `Connection: close` both ways), so that it can break a connection at any
//! byte, which no HTTP server library lets a handler do.
//!
//! What it injected is counted by kind, so a test can prove each kind actually happened.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A fault a [`FaultProxy`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Answer `500 Internal Server Error` (without forwarding).
    Status500,
    /// Answer `503 Service Unavailable` (without forwarding).
    Status503,
    /// Answer `429 Too Many Requests` with [`FaultOptions::retry_after`] (without forwarding).
    Status429,
    /// Forward, then send the answer's head and the first half of its body, and close the
    /// connection (an answer without a body is cut in the middle of its head).
    Cut,
    /// Close the connection after reading the request head, without forwarding or answering.
    Drop,
    /// Answer `400 Bad Request` with the code `DIGEST_INVALID` (without forwarding), as
    /// distribution's filesystem storage does to a manifest write whose check reads a link
    /// another client is rewriting.
    DigestInvalid,
    /// Send nothing for [`FaultOptions::stall`], then close the connection (not forwarded).
    Stall,
    /// Forward, send the head and the first half of the body, then stay silent for
    /// [`FaultOptions::stall`] and close (a stream that stops mid-way).
    StallBody,
}

/// Every kind a registry may answer any request with, in the order [`FaultOptions::default`]
/// takes them ([`FaultKind::DigestInvalid`] only makes sense for manifest writes).
pub const ALL_FAULTS: [FaultKind; 7] = [
    FaultKind::Status500,
    FaultKind::Status503,
    FaultKind::Status429,
    FaultKind::Cut,
    FaultKind::Drop,
    FaultKind::Stall,
    FaultKind::StallBody,
];

/// What a [`FaultProxy`] injects, and how it paces answers.
#[derive(Debug, Clone)]
pub struct FaultOptions {
    /// Seed of the generator that decides, request by request in arrival order, whether to
    /// inject a fault and which.
    pub seed: u64,
    /// The share of `/v2/` requests that get a fault (0.15: about one in seven).
    pub rate: f64,
    /// The kinds a faulted request gets, in turn (the n-th random fault is
    /// `kinds[n % kinds.len()]`), so that every kind happens once a few faults have.
    pub kinds: Vec<FaultKind>,
    /// Requests whose `METHOD path?query` contains the string always get the fault (checked
    /// before the random draw, which is still made so that the sequence stays the same).
    pub always: Vec<(String, FaultKind)>,
    /// The first request whose `METHOD path?query` contains the string gets the fault;
    /// later ones pass (unless another rule or the draw faults them).
    pub once: Vec<(String, FaultKind)>,
    /// The `Retry-After` value sent with 429.
    pub retry_after: String,
    /// How long [`FaultKind::Stall`] and [`FaultKind::StallBody`] stay silent.
    pub stall: Duration,
    /// Hold every forwarded answer this long before its head.
    pub latency: Option<Duration>,
    /// Pause this long halfway through every forwarded body that has at least two bytes
    /// (so that a copy spends time mid-blob).
    pub body_pause: Option<Duration>,
}

impl Default for FaultOptions {
    fn default() -> Self {
        FaultOptions {
            seed: 0,
            rate: 0.0,
            kinds: ALL_FAULTS.to_vec(),
            always: Vec::new(),
            once: Vec::new(),
            retry_after: "1".to_string(),
            stall: Duration::from_secs(3),
            latency: None,
            body_pause: None,
        }
    }
}

struct FaultState {
    upstream: String,
    upstream_base: String,
    self_base: String,
    options: FaultOptions,
    rng: Mutex<fastrand::Rng>,
    drawn: AtomicU64,
    once_used: Mutex<Vec<bool>>,
    injected: Mutex<BTreeMap<FaultKind, u64>>,
    log: Mutex<Vec<String>>,
    requests: AtomicU64,
    cut_in_body: AtomicU64,
}

/// The proxy: its own thread and runtime, stopped on drop.
pub struct FaultProxy {
    state: Arc<FaultState>,
    port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy for the registry at `upstream` (`127.0.0.1:PORT`, plain HTTP).
    pub fn start(upstream: &str, options: FaultOptions) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let once_len = options.once.len();
        let state = Arc::new(FaultState {
            upstream: upstream.to_string(),
            upstream_base: format!("http://{upstream}"),
            self_base: format!("http://127.0.0.1:{port}"),
            rng: Mutex::new(fastrand::Rng::with_seed(options.seed)),
            drawn: AtomicU64::new(0),
            once_used: Mutex::new(vec![false; once_len]),
            options,
            injected: Mutex::new(BTreeMap::new()),
            log: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            cut_in_body: AtomicU64::new(0),
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            if let Ok((conn, _)) = accepted {
                                tokio::spawn(connection(st.clone(), conn));
                            }
                        }
                    }
                }
            });
        });
        FaultProxy {
            state,
            port,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Faults injected so far, by kind.
    pub fn injected(&self) -> BTreeMap<FaultKind, u64> {
        self.state.injected.lock().expect("injected").clone()
    }

    /// All faults injected so far.
    pub fn injected_total(&self) -> u64 {
        self.injected().values().sum()
    }

    /// [`FaultKind::Cut`] and [`FaultKind::StallBody`] faults that broke off inside a body
    /// (rather than inside a head, for answers without a body).
    pub fn cut_in_body(&self) -> u64 {
        self.state.cut_in_body.load(Ordering::SeqCst)
    }

    /// Requests received.
    pub fn request_count(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// `METHOD path?query -> fault` (or `-> ok`) of every request received, in order.
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().expect("log").clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads up to the end of an HTTP head; returns the head (with its blank line) and any
/// bytes read past it, or `None` when the peer closed first.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Some((buf, rest));
        }
        if buf.len() > 256 * 1024 {
            return None;
        }
        let n = r.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The first line and the header fields of a head.
fn parse_head(head: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let fields = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    (first, fields)
}

/// A head from its first line and fields, with `Connection: close`.
fn build_head(first: &str, fields: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("{first}\r\n");
    for (k, v) in fields {
        if matches!(
            k.to_ascii_lowercase().as_str(),
            "connection" | "keep-alive" | "proxy-connection"
        ) {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

impl FaultState {
    /// The fault for `request` (`METHOD path?query`), if any, counted.
    fn decide(&self, request: &str, path: &str) -> Option<FaultKind> {
        if !path.starts_with("/v2/") {
            return None;
        }
        let draw = self.rng.lock().expect("rng").f64();
        let fault = self
            .options
            .always
            .iter()
            .find(|(needle, _)| request.contains(needle.as_str()))
            .map(|(_, k)| *k)
            .or_else(|| {
                let mut used = self.once_used.lock().expect("once");
                let i = self
                    .options
                    .once
                    .iter()
                    .enumerate()
                    .position(|(i, (needle, _))| !used[i] && request.contains(needle.as_str()))?;
                used[i] = true;
                Some(self.options.once[i].1)
            })
            .or_else(|| {
                if draw >= self.options.rate || self.options.kinds.is_empty() {
                    return None;
                }
                let n = self.drawn.fetch_add(1, Ordering::SeqCst) as usize;
                Some(self.options.kinds[n % self.options.kinds.len()])
            });
        if let Some(k) = fault {
            *self
                .injected
                .lock()
                .expect("injected")
                .entry(k)
                .or_insert(0) += 1;
        }
        fault
    }
}

async fn connection(st: Arc<FaultState>, mut client: TcpStream) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    st.requests.fetch_add(1, Ordering::SeqCst);
    let (first, fields) = parse_head(&head);
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let path = target.split('?').next().unwrap_or_default().to_string();
    let request = format!("{method} {target}");
    let fault = st.decide(&request, &path);
    st.log.lock().expect("log").push(match fault {
        Some(k) => format!("{request} -> {k:?}"),
        None => format!("{request} -> ok"),
    });

    match fault {
        Some(
            k @ (FaultKind::Status500
            | FaultKind::Status503
            | FaultKind::Status429
            | FaultKind::DigestInvalid),
        ) => {
            let (status, reason, code) = match k {
                FaultKind::Status500 => (500, "Internal Server Error", "UNAVAILABLE"),
                FaultKind::Status503 => (503, "Service Unavailable", "UNAVAILABLE"),
                FaultKind::DigestInvalid => (400, "Bad Request", "DIGEST_INVALID"),
                _ => (429, "Too Many Requests", "TOOMANYREQUESTS"),
            };
            let body =
                format!(r#"{{"errors":[{{"code":"{code}","message":"injected {status}"}}]}}"#);
            let mut fields = vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("Content-Length".to_string(), body.len().to_string()),
            ];
            if status == 429 {
                fields.push(("Retry-After".to_string(), st.options.retry_after.clone()));
            }
            let mut out = build_head(&format!("HTTP/1.1 {status} {reason}"), &fields);
            out.extend_from_slice(body.as_bytes());
            let _ = client.write_all(&out).await;
            let _ = client.flush().await;
            let _ = client.shutdown().await;
            // Read what the client still sends (a request body) until it closes, so that
            // closing does not reset the connection under the answer.
            let mut sink = tokio::io::sink();
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                tokio::io::copy(&mut client, &mut sink),
            )
            .await;
            return;
        }
        Some(FaultKind::Drop) => return,
        Some(FaultKind::Stall) => {
            tokio::time::sleep(st.options.stall).await;
            return;
        }
        _ => {}
    }

    // Forward over a fresh upstream connection.
    let Ok(mut up) = TcpStream::connect(&st.upstream).await else {
        let _ = client
            .write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return;
    };
    let fields: Vec<(String, String)> = fields
        .into_iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("host") {
                (k, st.upstream.clone())
            } else {
                (k, v)
            }
        })
        .collect();
    if up.write_all(&build_head(&first, &fields)).await.is_err()
        || up.write_all(&rest).await.is_err()
    {
        return;
    }
    let (mut up_r, mut up_w) = up.into_split();
    let (mut cl_r, mut cl_w) = client.into_split();
    // The rest of the request body, as it comes.
    let pump = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cl_r, &mut up_w).await;
        cl_r
    });
    let Some((rhead, rrest)) = read_head(&mut up_r).await else {
        pump.abort();
        return;
    };
    let (status_line, rfields) = parse_head(&rhead);
    let rfields: Vec<(String, String)> = rfields
        .into_iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("location") {
                let v = v.replace(&st.upstream_base, &st.self_base);
                (k, v)
            } else {
                (k, v)
            }
        })
        .collect();
    let rhead = build_head(&status_line, &rfields);
    if let Some(d) = st.options.latency {
        tokio::time::sleep(d).await;
    }
    let broken = matches!(fault, Some(FaultKind::Cut | FaultKind::StallBody));
    if broken || st.options.body_pause.is_some() {
        // Answers are small in tests: read the whole body (the upstream closes after it).
        let mut body = rrest;
        let _ = up_r.read_to_end(&mut body).await;
        let half = body.len() / 2;
        if broken {
            if body.len() >= 2 {
                st.cut_in_body.fetch_add(1, Ordering::SeqCst);
                let _ = cl_w.write_all(&rhead).await;
                let _ = cl_w.write_all(&body[..half]).await;
            } else {
                let _ = cl_w.write_all(&rhead[..rhead.len() / 2]).await;
            }
            let _ = cl_w.flush().await;
            if fault == Some(FaultKind::StallBody) {
                tokio::time::sleep(st.options.stall).await;
            }
        } else {
            let _ = cl_w.write_all(&rhead).await;
            if let (Some(pause), true) = (st.options.body_pause, body.len() >= 2) {
                let _ = cl_w.write_all(&body[..half]).await;
                let _ = cl_w.flush().await;
                tokio::time::sleep(pause).await;
                let _ = cl_w.write_all(&body[half..]).await;
            } else {
                let _ = cl_w.write_all(&body).await;
            }
            let _ = cl_w.flush().await;
            let _ = cl_w.shutdown().await;
            // Let the client close first (no reset under the answer).
            if let Ok(Ok(mut cl_r)) = tokio::time::timeout(Duration::from_secs(10), pump).await {
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    tokio::io::copy(&mut cl_r, &mut tokio::io::sink()),
                )
                .await;
            }
            return;
        }
        pump.abort();
        return;
    }
    let _ = cl_w.write_all(&rhead).await;
    let _ = cl_w.write_all(&rrest).await;
    let _ = tokio::io::copy(&mut up_r, &mut cl_w).await;
    let _ = cl_w.flush().await;
    let _ = cl_w.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), pump).await;
}
