//! `relsync serve [--listen ADDR]`: the controller. Wires the reconcile loop, leader
//! election (cluster on), the HTTP surface and graceful shutdown; the logic lives in
//! [`crate::controller`].
//!
//! Environment (set by the Helm chart): `POD_NAME` (this replica's identity in the Lease;
//! default: host name and process id), `POD_NAMESPACE` (the Lease's namespace; default:
//! the kubeconfig context's), `RELSYNC_LEADER_ELECTION=false` (no election: one replica
//! only), `RELSYNC_LEASE_NAME` (default `relsync-leader`), `RELSYNC_SHUTDOWN_GRACE` (how
//! long a reconcile under way may go on after SIGTERM, in seconds; default 20, within
//! Kubernetes' default 30 s termination grace period).

use std::sync::Arc;
use std::time::Duration;

use super::{CliError, Context, ServeArgs, Settings};
use crate::cluster::Cluster;
use crate::controller::leader::{Election, Leadership, LeaseSettings};
use crate::controller::reconcile::GitOps;
use crate::controller::schedule::{self, Timing};
use crate::controller::{Secret, Shared, http};
use crate::registry::Registries;

/// Runs until SIGTERM or Ctrl-C; exit 0 after a graceful stop.
pub fn run(settings: &Settings, args: &ServeArgs) -> Result<i32, CliError> {
    let runtime = super::runtime()?;
    runtime.block_on(serve(settings, args))
}

/// This replica's identity.
fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "relsync".to_string());
            format!("{host}-{}", std::process::id())
        })
}

/// A future that completes on SIGTERM or Ctrl-C. The handlers are installed now, not
/// when the future is first polled, so a signal during the first reconcile is not the
/// default "die at once".
fn signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `RELSYNC_SHUTDOWN_GRACE` (seconds), else 20 s.
fn grace() -> Result<Duration, CliError> {
    match std::env::var("RELSYNC_SHUTDOWN_GRACE") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| {
                CliError::Usage(format!(
                    "RELSYNC_SHUTDOWN_GRACE: `{v}` is not a number of seconds"
                ))
            }),
        Err(_) => Ok(Duration::from_secs(20)),
    }
}

async fn serve(settings: &Settings, args: &ServeArgs) -> Result<i32, CliError> {
    let ctx = {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || Context::load(&settings))
            .await
            .map_err(|e| CliError::Usage(format!("cannot read the config: {e}")))??
    };
    let config = &ctx.config;
    let registries = Registries::from_config(config, &ctx.config_dir)?;
    let cluster = match config.cluster.enabled {
        true => Some(Cluster::connect().await?),
        false => None,
    };
    let webhook_secret = match &config.webhook.secret_env {
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(Secret::new(v)),
            _ => {
                tracing::warn!(
                    var,
                    "webhook secret variable unset: webhooks will be refused"
                );
                None
            }
        },
        None => None,
    };
    let shared = Arc::new(Shared {
        webhook_secret,
        ..Shared::default()
    });
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    eprintln!("relsync serve: listening on http://{addr}");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let election_wanted = std::env::var("RELSYNC_LEADER_ELECTION")
        .map(|v| v != "false")
        .unwrap_or(true);
    let (leadership, election) = match (&cluster, election_wanted) {
        (Some(c), true) => {
            let namespace = std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| c.default_namespace().to_string());
            let name = std::env::var("RELSYNC_LEASE_NAME")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "relsync-leader".to_string());
            let leadership = Leadership::default();
            let election = Election::new(
                c.clone(),
                LeaseSettings::new(name, namespace, identity()),
                leadership.clone(),
            );
            (leadership, Some(election))
        }
        _ => (Leadership::always(), None),
    };

    let timing = Timing {
        grace: grace()?,
        ..Timing::for_interval(Duration::from_secs(config.sync.interval_seconds.max(1)))
    };
    let reconciler = GitOps::new(
        settings.clone(),
        shared.clone(),
        leadership,
        registries,
        cluster,
    );

    let http = tokio::spawn(http::serve(
        listener,
        shared.clone(),
        stopped(stop_rx.clone()),
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
    let stop_signal = signal();
    let loop_stop = {
        let shared = shared.clone();
        async move {
            stop_signal.await;
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
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the HTTP server stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "the HTTP server task failed"),
    }
    eprintln!("relsync serve: stopped after {passes} reconciles");
    Ok(0)
}
