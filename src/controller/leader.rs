//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does
//! it: the leader renews the Lease every `renew` period; a candidate takes it over once
//! `renewTime + leaseDurationSeconds` has passed; every write carries the
//! `resourceVersion` read, so of two candidates only one wins (the other gets 409). Only
//! the leader writes; a replica that cannot renew stops leading before its lease runs
//! out. On shutdown the leader gives the Lease up, so a successor takes over at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::cluster::{Cluster, ClusterError};

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
    /// How often the leader renews (and a candidate retries).
    pub renew: Duration,
}

impl LeaseSettings {
    /// The defaults: 15 s leases renewed every 5 s.
    pub fn new(name: String, namespace: String, identity: String) -> LeaseSettings {
        LeaseSettings {
            name,
            namespace,
            identity,
            duration: Duration::from_secs(15),
            renew: Duration::from_secs(5),
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

/// One election step's view of the Lease.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renewed
        .checked_add(jiff::SignedDuration::from_secs(duration))
        .map_or(true, |until| until <= now)
}

/// The election.
pub struct Election {
    api: Api<Lease>,
    settings: LeaseSettings,
    cluster: Cluster,
    leadership: Leadership,
}

impl Election {
    /// An election for `settings` on `cluster`, reporting into `leadership`.
    pub fn new(cluster: Cluster, settings: LeaseSettings, leadership: Leadership) -> Election {
        let api = Api::namespaced(cluster.client().clone(), &settings.namespace);
        Election {
            api,
            settings,
            cluster,
            leadership,
        }
    }

    fn object(&self) -> String {
        format!("lease:{}/{}", self.settings.namespace, self.settings.name)
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

    /// One step: create, renew or take over the Lease when allowed. Returns whether this
    /// replica leads after it. A lost race (409) is "not leading", not an error.
    pub async fn step(&self) -> Result<bool, ClusterError> {
        let object = self.object();
        let now = Timestamp::now();
        let name = self.settings.name.as_str();
        let current = self
            .cluster
            .retrying(&object, "read", || self.api.get_opt(name))
            .await?;
        let pp = PostParams::default();
        let written = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.to_string()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(now, None, 0)),
                };
                self.cluster
                    .retrying(&object, "create", || self.api.create(&pp, &lease))
                    .await
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let mine = spec.holder_identity.as_deref() == Some(&self.settings.identity);
                let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
                if !mine && !free && !expired(&spec, now) {
                    return Ok(false);
                }
                let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
                let acquired = if mine {
                    spec.acquire_time.clone()
                } else {
                    None
                };
                lease.spec = Some(self.spec(now, acquired, transitions));
                // `replace` carries the resourceVersion read: a concurrent writer wins, we 409.
                self.cluster
                    .retrying(&object, "update", || self.api.replace(name, &pp, &lease))
                    .await
            }
        };
        match written {
            Ok(_) => Ok(true),
            Err(ClusterError::Api { code: 409, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this replica holds it (on shutdown).
    pub async fn release(&self) -> Result<(), ClusterError> {
        let object = self.object();
        let name = self.settings.name.as_str();
        let Some(mut lease) = self
            .cluster
            .retrying(&object, "read", || self.api.get_opt(name))
            .await?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.settings.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        let pp = PostParams::default();
        match self
            .cluster
            .retrying(&object, "release", || self.api.replace(name, &pp, &lease))
            .await
        {
            Ok(_) | Err(ClusterError::Api { code: 409, .. }) => Ok(()),
            Err(e) => Err(e),
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
        loop {
            let leading = match self.step().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election step failed");
                    false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_after_its_duration_from_the_last_renewal() {
        let now: Timestamp = "2026-11-24T01:00:00Z".parse().unwrap();
        let spec = |renewed: &str, secs| LeaseSpec {
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            lease_duration_seconds: Some(secs),
            ..LeaseSpec::default()
        };
        assert!(!expired(&spec("2026-11-24T00:59:50Z", 15), now));
        assert!(expired(&spec("2026-11-24T00:59:45Z", 15), now));
        assert!(expired(&spec("2026-11-24T00:59:00Z", 15), now));
        assert!(expired(&LeaseSpec::default(), now), "never renewed");
    }
}
