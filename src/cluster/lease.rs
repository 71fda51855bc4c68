//! The `coordination.k8s.io/v1` Leases leader election runs on: read, create and replace
//! with the `resourceVersion` read as precondition (a concurrent writer wins, the other
//! gets 409). The election logic itself is `controller::leader`'s.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{Api, ObjectMeta, PostParams};

use super::{Cluster, ClusterError};

/// One Lease, by namespace and name.
#[derive(Clone)]
pub struct LeaseApi {
    api: Api<Lease>,
    name: String,
    object: String,
}

impl std::fmt::Debug for LeaseApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseApi")
            .field("object", &self.object)
            .finish_non_exhaustive()
    }
}

/// A Lease as read: its spec, and the object to write back (carrying the
/// `resourceVersion` read).
#[derive(Debug, Clone)]
pub struct ReadLease {
    lease: Lease,
}

impl ReadLease {
    /// The Lease's spec (empty when it has none).
    pub fn spec(&self) -> LeaseSpec {
        self.lease.spec.clone().unwrap_or_default()
    }
}

impl Cluster {
    /// The Lease `name` in `namespace`.
    pub fn lease(&self, namespace: &str, name: &str) -> LeaseApi {
        LeaseApi {
            api: Api::namespaced(self.client.clone(), namespace),
            name: name.to_string(),
            object: format!("lease:{namespace}/{name}"),
        }
    }
}

impl LeaseApi {
    /// `lease:<namespace>/<name>`, for messages.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// Reads the Lease (`None`: it does not exist). One attempt: the election bounds and
    /// repeats its own steps.
    pub async fn get(&self) -> Result<Option<ReadLease>, kube::Error> {
        Ok(self
            .api
            .get_opt(&self.name)
            .await?
            .map(|lease| ReadLease { lease }))
    }

    /// Creates the Lease with `spec` (409 when another candidate created it first).
    pub async fn create(&self, spec: LeaseSpec) -> Result<(), kube::Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        };
        self.api
            .create(&PostParams::default(), &lease)
            .await
            .map(drop)
    }

    /// Writes `spec` over the Lease as `read`, with its `resourceVersion` as precondition:
    /// a concurrent writer wins, this one gets 409.
    pub async fn replace(&self, read: ReadLease, spec: LeaseSpec) -> Result<(), kube::Error> {
        let mut lease = read.lease;
        lease.spec = Some(spec);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(drop)
    }

    /// Turns a final kube error of `doing` into a [`ClusterError`] naming the Lease.
    pub fn error(&self, doing: &str, e: kube::Error) -> ClusterError {
        super::error(&self.object, doing, e)
    }
}
