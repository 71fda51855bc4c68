//! `relsync serve [--listen ADDR]`: the controller. Loads the config, connects, binds the
//! listener and reads the environment below, then hands over to [`controller::run`] until
//! SIGTERM or Ctrl-C; the logic lives in [`crate::controller`].
//!
//! Environment (set by the Helm chart): `POD_NAME` (this replica's identity in the Lease;
//! default: host name and process id), `POD_NAMESPACE` (the Lease's namespace; default:
//! the kubeconfig context's), `RELSYNC_LEADER_ELECTION=false` (no election: one replica
//! only), `RELSYNC_LEASE_NAME` (default `relsync-leader`), `RELSYNC_SHUTDOWN_GRACE` (how
//! long a reconcile under way may go on after SIGTERM, in seconds; default 20, within
//! Kubernetes' default 30 s termination grace period).

use std::time::Duration;

use super::{CliError, ServeArgs, Settings};
use crate::controller::leader::LeaseSettings;
use crate::controller::{self, Secret};
use crate::ops::{Context, Workspace};

/// Runs until SIGTERM or Ctrl-C; exit 0 after a graceful stop.
pub fn run(settings: &Settings, args: &ServeArgs) -> Result<i32, CliError> {
    let runtime = crate::ops::runtime()?;
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
        let settings = settings.load.clone();
        tokio::task::spawn_blocking(move || Context::load(&settings))
            .await
            .map_err(|e| CliError::Usage(format!("cannot read the config: {e}")))??
    };
    let webhook_var = ctx.config.webhook.secret_env.clone();
    // Every registry and cluster request names this replica in its User-Agent.
    let identity = identity();
    let workspace = Workspace::connect_as(ctx, Some(&identity)).await?;
    let webhook_secret = match &webhook_var {
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
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    eprintln!("relsync serve: listening on http://{addr}");

    let election_wanted = std::env::var("RELSYNC_LEADER_ELECTION")
        .map(|v| v != "false")
        .unwrap_or(true);
    let lease = match (&workspace.cluster, election_wanted) {
        (Some(c), true) => {
            let namespace = std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| c.default_namespace().to_string());
            let name = std::env::var("RELSYNC_LEASE_NAME")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "relsync-leader".to_string());
            Some(LeaseSettings::new(name, namespace, identity.clone()))
        }
        _ => None,
    };
    let config = controller::Config {
        settings: settings.load.clone(),
        workspace,
        webhook_secret,
        lease,
        grace: grace()?,
    };
    let passes = controller::run(listener, config, signal()).await;
    eprintln!(
        "relsync serve: stopped after {}",
        super::counted(passes, "reconcile", "reconciles")
    );
    Ok(0)
}
