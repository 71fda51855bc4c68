//! `relsync serve`: the controller, Argo CD style.
//!
//! # Layout
//!
//! - [`schedule`]: the loop: when to reconcile (every `sync.interval`, jittered; at once on
//!   a webhook; backing off on repeated failure) and when to stop. Generic over
//!   [`schedule::Reconcile`], so it is tested with tokio's paused clock.
//! - [`reconcile`]: one reconcile, a plain function: read Git, observe, plan, apply (when
//!   `sync.auto` and leading), record history, update the [`Status`].
//! - [`leader`]: leader election on a `coordination.k8s.io` Lease when the cluster is on.
//! - [`http`]: the HTTP surface (health, readiness, metrics, status API and page,
//!   webhooks), an axum router served on a bound listener until a shutdown future ends.
//! - [`webhook`]: GitHub and GitLab push signature checks.
//! - [`page`]: the server-rendered status page.
//! - [`metrics`], [`status`]: what the HTTP surface shows.

pub mod http;
pub mod leader;
pub mod metrics;
pub mod page;
pub mod reconcile;
pub mod schedule;
pub mod status;
pub mod webhook;

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

pub use metrics::Metrics;
pub use status::{ChannelState, ChannelStatus, Status};

/// What the loop and the HTTP surface share.
#[derive(Debug, Default)]
pub struct Shared {
    /// The last status.
    pub status: RwLock<Status>,
    /// The metrics.
    pub metrics: Metrics,
    /// Woken by a webhook: a refresh now. `Notify` keeps one permit, so a burst of hooks
    /// causes one refresh, not many.
    pub refresh: tokio::sync::Notify,
    /// Whether `/readyz` answers 200: after the first reconcile, until shutdown begins.
    pub ready: AtomicBool,
    /// The webhook secret (from `webhook.secretEnv`); `None`: webhooks are refused.
    /// Never logged.
    pub webhook_secret: Option<Secret>,
}

impl Shared {
    /// A copy of the status.
    pub fn status(&self) -> Status {
        self.status
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Changes the status.
    pub fn update_status(&self, change: impl FnOnce(&mut Status)) {
        let mut guard = self.status.write().unwrap_or_else(|e| e.into_inner());
        change(&mut guard);
    }

    /// Whether ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Sets readiness.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

/// A secret string whose `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret itself, for comparing; never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}
