//! The cluster adapter (kube): every Kubernetes call of relsync lives here. ImageStreams
//! (`image.openshift.io/v1`), read into the core's
//! [`ObservedImageStream`](crate::plan::ObservedImageStream) and written with server-side
//! apply under the field manager `relsync`; the state ConfigMap (`state`); the Leases of
//! leader election ([`lease`]).
//!
//! [`Cluster::connect`] reads `KUBECONFIG` (or `~/.kube/config`, or the in-cluster service
//! account) exactly as `kubectl` does; nothing here is made unless `cluster.enabled` is
//! true, so a disabled cluster costs no call at all. Every call is retried on transient
//! answers (408, 429, 5xx, connection errors and timeouts) by the registry client's one
//! retry policy ([`RetryPolicy`], [`retryable_status`]); other answers become a
//! [`ClusterError`] naming the object and carrying the API server's message.

mod image_stream;
pub mod lease;
mod state;

use std::future::Future;
use std::time::Duration;

pub use image_stream::{ImageStreamApplied, ImageStreamApply, TagConflict};

use crate::registry::{Outcome, RetryPolicy, retry, retryable_status};
pub use lease::{LeaseApi, ReadLease};

/// The field manager relsync applies under.
pub const FIELD_MANAGER: &str = "relsync";

/// Why a cluster call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No kubeconfig and no in-cluster service account, or an unreadable one.
    #[error("cannot load the cluster configuration (KUBECONFIG, ~/.kube/config or in-cluster)")]
    Config(#[source] kube::config::InferConfigError),
    /// The client could not be built from the configuration.
    #[error("cannot create the cluster client")]
    Client(#[source] kube::Error),
    /// The API server answered with an error status.
    #[error("{object}: {doing}: {message} ({reason}, HTTP {code})")]
    Api {
        /// The object, e.g. `imagestream:origin/release`.
        object: String,
        /// What was being done, e.g. `apply`.
        doing: String,
        /// The API server's message.
        message: String,
        /// The API server's reason, e.g. `Invalid`.
        reason: String,
        /// The HTTP status.
        code: u16,
    },
    /// The namespace of an object to create does not exist.
    #[error(
        "{object}: namespace {namespace} does not exist (create it, or fix the channel's imageStream)"
    )]
    NamespaceMissing {
        /// The object.
        object: String,
        /// The namespace.
        namespace: String,
    },
    /// The API server could not be reached, or its answer not read (after retries).
    #[error("{object}: {doing}")]
    Transport {
        /// The object.
        object: String,
        /// What was being done.
        doing: String,
        /// The last cause.
        #[source]
        source: kube::Error,
    },
    /// An object the API server sent does not have the expected shape.
    #[error("{object}: unreadable object from the API server")]
    Decode {
        /// The object.
        object: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl ClusterError {
    /// The HTTP status of an API error (`None` for other errors).
    pub fn code(&self) -> Option<u16> {
        match self {
            ClusterError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// How transient cluster calls are retried: the registry client's one policy
/// ([`RetryPolicy`]: exponential backoff with full jitter), with 5 tries and waits capped
/// at 5 s.
pub fn default_retry() -> RetryPolicy {
    RetryPolicy {
        cap: Duration::from_secs(5),
        ..RetryPolicy::default()
    }
}

/// A connection to the cluster's API server.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds credentials: print none of it.
        f.debug_struct("Cluster")
            .field("namespace", &self.client.default_namespace())
            .finish_non_exhaustive()
    }
}

/// Whether an API error or transport failure is worth another try: an API status as the
/// registry client judges one ([`retryable_status`]), or a connection that failed.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => retryable_status(s.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

impl Cluster {
    /// Connects through `KUBECONFIG` (else `~/.kube/config`, else the in-cluster service
    /// account), as `kubectl` would. No request is made yet.
    pub async fn connect() -> Result<Cluster, ClusterError> {
        Self::connect_as(None).await
    }

    /// [`Cluster::connect`], every request carrying the User-Agent
    /// `relsync/<version> (<identity>)` (`serve`'s replica identity; `None`:
    /// `relsync/<version>`).
    pub async fn connect_as(identity: Option<&str>) -> Result<Cluster, ClusterError> {
        let mut config = kube::Config::infer().await.map_err(ClusterError::Config)?;
        config.headers.push((
            reqwest::header::USER_AGENT,
            crate::registry::user_agent(identity),
        ));
        config.read_timeout = Some(Duration::from_secs(30));
        config.write_timeout = Some(Duration::from_secs(30));
        let client = kube::Client::try_from(config).map_err(ClusterError::Client)?;
        Ok(Cluster {
            client,
            retry: default_retry(),
        })
    }

    /// A cluster over an existing client (tests, or a caller with its own configuration).
    pub fn with_client(client: kube::Client) -> Cluster {
        Cluster {
            client,
            retry: default_retry(),
        }
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Cluster {
        self.retry = retry;
        self
    }

    /// The namespace of the kubeconfig's current context (or the pod's namespace in
    /// cluster); where relsync keeps its own state.
    pub fn default_namespace(&self) -> &str {
        self.client.default_namespace()
    }

    /// The underlying client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Runs `call` until it succeeds, fails for good, or the attempts are spent; the error
    /// names `object` and what was being done.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        object: &str,
        doing: &str,
        mut call: F,
    ) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let (result, _) = retry(&self.retry, |attempt| {
            let fut = call();
            async move {
                match fut.await {
                    Err(e) if transient(&e) => {
                        tracing::debug!(object, doing, attempt, error = %short(&e), "cluster call failed; worth another try");
                        Outcome::Retry {
                            value: Err(e),
                            retry_after: None,
                        }
                    }
                    done => Outcome::Done(done),
                }
            }
        })
        .await;
        result.map_err(|e| error(object, doing, e))
    }
}

/// A one-line description of a kube error (its `Display` dumps whole structures).
fn short(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({}, HTTP {})", s.message, s.reason, s.code),
        other => other.to_string(),
    }
}

/// Turns a final kube error into a [`ClusterError`].
pub(crate) fn error(object: &str, doing: &str, e: kube::Error) -> ClusterError {
    match e {
        kube::Error::Api(s) => {
            let namespace = s
                .details
                .as_ref()
                .filter(|d| s.code == 404 && d.kind == "namespaces")
                .map(|d| d.name.clone());
            match namespace {
                Some(namespace) => ClusterError::NamespaceMissing {
                    object: object.to_string(),
                    namespace,
                },
                None => ClusterError::Api {
                    object: object.to_string(),
                    doing: doing.to_string(),
                    message: s.message,
                    reason: s.reason,
                    code: s.code,
                },
            }
        }
        source => ClusterError::Transport {
            object: object.to_string(),
            doing: doing.to_string(),
            source,
        },
    }
}
