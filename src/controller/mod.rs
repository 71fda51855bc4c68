//! `relsync serve`: the controller, Argo CD style — a front end like the command line: it
//! calls the use cases of [`crate::ops`] and never the command line. [`run`] is the whole
//! controller, on a bound listener until a shutdown future completes.
//!
//! # Layout
//!
//! - [`schedule`]: the loop: when to reconcile (every `sync.interval`, jittered; at once on
//!   a webhook; backing off on repeated failure) and when to stop. Generic over
//!   [`schedule::Reconcile`], so it is tested with tokio's paused clock.
//! - [`reconcile`]: one reconcile, a plain function: read Git, observe, plan, apply (when
//!   `sync.auto` and leading), record history, update the [`Status`].
//! - [`leader`]: leader election on a `coordination.k8s.io` Lease when the cluster is on
//!   (the Lease calls are [`crate::cluster`]'s).
//! - [`server`]: the HTTP surface (health, readiness, metrics, status API and page,
//!   webhooks), an axum router served on a bound listener until a shutdown future ends.
//! - [`webhook`]: GitHub and GitLab push signature checks.
//! - [`notify`]: outgoing notifications (sync failed, out of sync, in sync, promoted),
//!   signed, queued and retried off the loop.
//! - [`page`]: the server-rendered status page.
//! - [`metrics`], [`status`]: what the HTTP surface shows.

pub mod leader;
pub mod metrics;
pub mod notify;
pub mod page;
mod payload_status;
pub mod reconcile;
pub mod schedule;
pub mod server;
mod signatures;
pub mod status;
pub mod webhook;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::ops::{Settings, Workspace};
use leader::{Election, Leadership, LeaseSettings};
use reconcile::GitOps;
use schedule::Timing;

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
    /// Outgoing notifications (`None`: none configured).
    pub notifier: Option<notify::Notifier>,
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

    /// Whether `/readyz` answers 200 now.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Sets what `/readyz` answers: ready after a reconcile, not ready once shutdown begins.
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

/// What the controller runs with, loaded and connected by the caller.
#[derive(Debug)]
pub struct Config {
    /// Where each pass reads Git from: the config file and the revision followed.
    pub settings: Settings,
    /// The repository, the registry routes and the cluster, connected once for every pass
    /// (each pass reads the config and Git afresh).
    pub workspace: Workspace,
    /// The webhook secret (`None`: webhooks are refused).
    pub webhook_secret: Option<Secret>,
    /// The Lease to elect a leader on (`None`: no election, this replica always leads).
    pub lease: Option<LeaseSettings>,
    /// How long a reconcile under way may go on after shutdown begins.
    pub grace: Duration,
}

/// Runs the controller until `shutdown` completes: the reconcile loop, leader election on
/// the Lease when one is given, and the HTTP surface on `listener`. A reconcile under way
/// when `shutdown` completes may finish within `config.grace`; then the Lease is given up
/// and the server lets requests in flight finish, until the same grace period (counted
/// from `shutdown`) ends: the connections still open then are closed, whatever their
/// clients do. Returns how many reconciles ran.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> u64 {
    let Config {
        settings,
        workspace,
        webhook_secret,
        lease,
        grace,
    } = config;
    let notifications = &workspace.ctx.config.notifications;
    let metrics = Metrics::default();
    let notifier = (!notifications.is_empty()).then(|| {
        notify::Notifier::start(
            notifications,
            |name| std::env::var(name).ok(),
            metrics.notify_counter(),
        )
    });
    let shared = Arc::new(Shared {
        webhook_secret,
        metrics,
        notifier,
        ..Shared::default()
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let (leadership, election) = match (&workspace.cluster, lease) {
        (Some(c), Some(lease)) => {
            let leadership = Leadership::default();
            let election = Election::new(c.clone(), lease, leadership.clone());
            (leadership, Some(election))
        }
        _ => (Leadership::always(), None),
    };
    let interval = workspace.ctx.config.sync.interval_seconds.max(1);
    let timing = Timing {
        grace,
        ..Timing::for_interval(Duration::from_secs(interval))
    };
    let reconciler = GitOps::new(
        settings,
        shared.clone(),
        leadership,
        workspace.registries.clone(),
        workspace.cluster.clone(),
    );

    // When the shutdown signal came plus the grace: the HTTP connections still open then
    // are closed, whatever their clients do (a half-sent request cannot hold the stop).
    let (deadline_tx, mut deadline_rx) = tokio::sync::watch::channel(None);
    let http_deadline = async move {
        let at = match deadline_rx.wait_for(Option::is_some).await {
            Ok(at) => *at,
            Err(_) => None,
        };
        match at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let http = tokio::spawn(server::serve_within(
        listener,
        shared.clone(),
        server::Limits::default(),
        stopped(stop_rx.clone()),
        http_deadline,
    ));
    let election_task = election.map(|e| {
        let rx = stop_rx.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let on_change = |leading: bool| {
                shared.metrics.set_leader(leading);
                shared.update_status(|s| s.leader = leading);
                if leading {
                    // A new leader reconciles at once instead of at the next interval.
                    shared.refresh.notify_one();
                }
            };
            e.run(stopped(rx), on_change).await
        })
    });
    let loop_stop = {
        let shared = shared.clone();
        async move {
            shutdown.await;
            let _ = deadline_tx.send(Some(tokio::time::Instant::now() + grace));
            tracing::info!("stopping: no new work; a reconcile under way finishes first");
            shared.set_ready(false);
        }
    };
    let passes = schedule::run(
        &reconciler,
        &shared,
        timing,
        fastrand::Rng::new(),
        loop_stop,
    )
    .await;
    let _ = stop_tx.send(true);
    if let Some(task) = election_task {
        let _ = task.await;
    }
    if let Err(e) = http.await {
        tracing::warn!(error = %e, "the HTTP server task failed");
    }
    passes
}
