//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does
//! it:
//!
//! - the leader renews the Lease every `renew` period; every write carries the
//!   `resourceVersion` read, so of two candidates only one wins (the other gets 409);
//! - a candidate takes the Lease over once its record (holder, renew time) has not changed
//!   for `leaseDurationSeconds` *as measured on the candidate's own clock* from when it
//!   first saw that record — the holder's `renewTime` is never compared with the local
//!   clock, so clock skew between replicas cannot hand the Lease over early;
//! - each step is one attempt bounded by `renew_deadline` (less than the lease duration);
//!   a leader that has not renewed within `renew_deadline` stops leading, before any
//!   standby can take over;
//! - on shutdown the leader gives the Lease up, so a successor takes over at once.
//!
//! Only the leader writes. The Lease calls themselves are [`crate::cluster::lease`]'s.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use crate::cluster::{Cluster, ClusterError, LeaseApi};

/// How the election runs.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// The Lease's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub duration: Duration,
    /// How long a leader keeps leading without a successful renewal (less than
    /// `duration`), and the bound of each step.
    pub renew_deadline: Duration,
    /// How often the leader renews (and a candidate retries).
    pub renew: Duration,
}

impl LeaseSettings {
    /// client-go's defaults: 15 s leases, a 10 s renew deadline, a step every 2 s.
    pub fn new(name: String, namespace: String, identity: String) -> LeaseSettings {
        LeaseSettings {
            name,
            namespace,
            identity,
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew: Duration::from_secs(2),
        }
    }
}

/// Whether this replica leads; shared with the loop.
#[derive(Debug, Clone, Default)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    /// Leading from the start (no election: the cluster is off).
    pub fn always() -> Leadership {
        Leadership(Arc::new(AtomicBool::new(true)))
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self, leading: bool) -> bool {
        self.0.swap(leading, Ordering::SeqCst) != leading
    }
}

/// The Lease record as this replica last saw it, and when (on its own clock).
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    holder: Option<String>,
    renew: Option<Timestamp>,
    at: Instant,
}

/// The election.
pub struct Election {
    api: LeaseApi,
    settings: LeaseSettings,
    leadership: Leadership,
    seen: Mutex<Option<Seen>>,
}

impl Election {
    /// An election for `settings` on `cluster`, reporting into `leadership`.
    pub fn new(cluster: Cluster, settings: LeaseSettings, leadership: Leadership) -> Election {
        let api = cluster.lease(&settings.namespace, &settings.name);
        Election {
            api,
            settings,
            leadership,
            seen: Mutex::new(None),
        }
    }

    fn object(&self) -> String {
        self.api.object().to_string()
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: Some(self.settings.duration.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Whether the record `spec` has stood unchanged for its lease duration since this
    /// replica first saw it (measured on the local clock).
    fn expired(&self, spec: &LeaseSpec) -> bool {
        let holder = spec.holder_identity.clone();
        let renew = spec.renew_time.as_ref().map(|t| t.0);
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match &*seen {
            Some(s) if s.holder == holder && s.renew == renew => s.at.elapsed() >= duration,
            _ => {
                *seen = Some(Seen {
                    holder,
                    renew,
                    at: Instant::now(),
                });
                false
            }
        }
    }

    /// One step: create, renew or take over the Lease when allowed, in one attempt
    /// bounded by the renew deadline. Returns whether this replica leads after it. A lost
    /// race (409) is "not leading", not an error.
    pub async fn step(&self) -> Result<bool, ClusterError> {
        let object = self.object();
        match tokio::time::timeout(self.settings.renew_deadline, self.attempt()).await {
            Ok(Ok(leading)) => Ok(leading),
            Ok(Err(e)) => match self.api.error("renew", e) {
                ClusterError::Api { code: 409, .. } => Ok(false),
                e => Err(e),
            },
            Err(_) => Err(ClusterError::Api {
                object,
                doing: "renew".to_string(),
                message: format!(
                    "no answer within the renew deadline ({:?})",
                    self.settings.renew_deadline
                ),
                reason: "Timeout".to_string(),
                code: 504,
            }),
        }
    }

    async fn attempt(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get().await? else {
            self.api.create(self.spec(now, None, 0)).await?;
            return Ok(true);
        };
        let spec = lease.spec();
        let mine = spec.holder_identity.as_deref() == Some(&self.settings.identity);
        let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
        if !mine && !free && !self.expired(&spec) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine {
            spec.acquire_time.clone()
        } else {
            None
        };
        // The write carries the resourceVersion read: a concurrent writer wins, we 409.
        self.api
            .replace(lease, self.spec(now, acquired, transitions))
            .await?;
        Ok(true)
    }

    /// Gives the Lease up if this replica holds it (on shutdown).
    pub async fn release(&self) -> Result<(), ClusterError> {
        let attempt = async {
            let Some(lease) = self.api.get().await? else {
                return Ok(());
            };
            let mut spec = lease.spec();
            if spec.holder_identity.as_deref() != Some(&self.settings.identity) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            self.api.replace(lease, spec).await
        };
        match tokio::time::timeout(self.settings.renew_deadline, attempt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => match self.api.error("release", e) {
                ClusterError::Api { code: 409, .. } => Ok(()),
                e => Err(e),
            },
            // Not released: the standby takes over when the lease runs out.
            Err(_) => Ok(()),
        }
    }

    /// Runs the election until `shutdown`, then releases the Lease. A replica that fails
    /// to renew stops leading at once (before its lease could have run out elsewhere).
    /// `on_change` is called with the new value whenever leadership changes.
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
        on_change: impl Fn(bool),
    ) {
        tokio::pin!(shutdown);
        let mut renewed: Option<Instant> = None;
        loop {
            let leading = match self.step().await {
                Ok(true) => {
                    renewed = Some(Instant::now());
                    true
                }
                Ok(false) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election step failed");
                    // A leader keeps leading until its renew deadline passes.
                    self.leadership.is_leader()
                        && renewed.is_some_and(|r| r.elapsed() < self.settings.renew_deadline)
                }
            };
            if self.leadership.set(leading) {
                on_change(leading);
                tracing::info!(
                    identity = self.settings.identity,
                    lease = self.object(),
                    leading,
                    "leadership changed"
                );
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.settings.renew) => {}
            }
        }
        if self.leadership.is_leader() {
            self.leadership.set(false);
            on_change(false);
            if let Err(e) = self.release().await {
                tracing::warn!(error = %e, "cannot release the lease");
            }
        }
    }

    /// The shared leadership flag.
    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }
}
