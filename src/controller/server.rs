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

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};

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

/// Serves [`router`] on `listener` until `shutdown` completes, then lets requests in flight
/// finish. Errors only when the listener itself fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
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
