//! The HTTP surface of `serve`: an axum router over the [`Shared`] state, served on a bound
//! listener until a shutdown future ends.
//!
//! | route | answers |
//! |---|---|
//! | `GET /healthz` | 200 `ok` while the process runs |
//! | `GET /readyz` | 200 once ready ([`Shared::is_ready`]), else 503 |
//! | `GET /metrics` | the Prometheus metrics, OpenMetrics text |
//! | `GET /api/v1/status` | the status as JSON (DESIGN.md, "serve's status API") |
//! | `GET /` | the status page ([`super::page`]) |
//! | `POST /api/v1/webhook` | push webhooks ([`super::webhook`]) |
//!
//! Unknown paths get 404, known paths with another method 405.
//!
//! No client can hold the server (DESIGN.md: serve stops within its grace period whatever
//! clients do): a request's head must arrive within [`Limits::header_read`] (an idle
//! kept-alive connection is closed after it too), a request must be read and answered
//! within [`Limits::request`] (else 408), at most [`Limits::connections`] connections are
//! open at once (more wait in the listen backlog), and at shutdown the connections still
//! open when the deadline comes are closed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::{Shared, page, webhook};

/// The content type of `/metrics`: prometheus-client writes OpenMetrics text (ending in
/// `# EOF`), which Prometheus scrapes as such.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The router of every route above.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status_json))
        .route(
            "/api/v1/webhook",
            post(webhook::handle).layer(DefaultBodyLimit::max(webhook::MAX_BODY_BYTES)),
        )
        .with_state(shared)
}

/// What a client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's line and headers must arrive within this, and a kept-alive connection
    /// idle this long is closed.
    pub header_read: Duration,
    /// A request must be read (its body included) and answered within this; else it gets
    /// `408 Request Timeout` and its connection is closed.
    pub request: Duration,
    /// The most connections open at once; more wait in the listen backlog (so the file
    /// descriptors a flood of clients costs are bounded).
    pub connections: usize,
}

impl Default for Limits {
    /// 10 s for a head, 15 s for a whole request (a 1 MiB webhook at 70 KB/s), 256
    /// connections.
    fn default() -> Limits {
        Limits {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(15),
            connections: 256,
        }
    }
}

/// Serves [`router`] on `listener` with the default [`Limits`] until `shutdown` completes,
/// then lets requests in flight finish (each bounded by the limits) and closes idle
/// connections. Never fails: accept errors are waited out (see [`serve_within`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_within(
        listener,
        shared,
        Limits::default(),
        shutdown,
        std::future::pending(),
    )
    .await;
    Ok(())
}

/// Serves [`router`] on `listener` within `limits` until `shutdown` completes; then stops
/// accepting, lets requests in flight finish and closes idle connections, and when
/// `deadline` completes closes every connection still open, whatever its client does.
/// Accept errors (a full file table, a connection reset before it was accepted) are
/// logged and waited out, never the end of the server.
pub async fn serve_within(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    deadline: impl Future<Output = ()>,
) {
    let app = router(shared).layer(middleware::from_fn_with_state(
        limits.request,
        within_time_limit,
    ));
    let slots = Arc::new(Semaphore::new(limits.connections.max(1)));
    let (close_tx, close_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    if !is_connection_error(&e) {
                        tracing::warn!(error = %e, "cannot accept a connection; waiting a second");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let service = TowerToHyperService::new(app.clone());
        let mut close = close_rx.clone();
        let closing = async move {
            let _ = close.wait_for(|c| *c).await;
        };
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let served = tokio::select! {
                r = conn.as_mut() => r,
                () = closing => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = close_tx.send(true);
    let open = connections.len();
    let drained = async { while connections.join_next().await.is_some() {} };
    tokio::select! {
        () = drained => {}
        () = deadline => {
            tracing::warn!(
                open,
                "stopping: closing the HTTP connections still open at the end of the grace period"
            );
        }
    }
    // Dropping the set aborts what is left.
}

/// Errors of one connection that `accept` reports (the listener itself is fine).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset | K::Interrupted
    )
}

/// Answers `408 Request Timeout` to a request not read and answered within `limit`.
async fn within_time_limit(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            "request not received in time\n",
        )
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    if shared.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        shared.metrics.render(),
    )
        .into_response()
}

async fn status_json(State(shared): State<Arc<Shared>>) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(shared.status())).into_response()
}

async fn status_page(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(page::render(&shared.status())),
    )
        .into_response()
}
