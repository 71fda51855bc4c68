//! Executes a [`Plan`] through the registry adapters, in the order docs/reference.md requires.
//!
//! Per target repository (targets in parallel):
//! 1. every tag that must be created or moved (`mirror`, `tag`, `retag`, `rollback`), in
//!    parallel: the content first (a `mirror` copies the image from its source with the
//!    [`Mirror`] engine; the others read the manifest already in the target, copying it
//!    first when it is missing there), then, just before the write, a compare-and-swap
//!    check of the tag (it must still hold what the plan saw: absent for `mirror` and
//!    `tag`, `from` for `retag` and `rollback`), then the tag, byte-exact; in an `oci:`
//!    layout the check and the write are one step under the layout's file lock
//!    ([`ContentStore::put_manifest_if`](crate::registry::ContentStore::put_manifest_if)),
//!    so another process cannot move the tag in between; on a registry it is best effort;
//! 2. then the deletes, one by one, each CAS-checked (atomically in a layout): tag DELETE
//!    where the registry supports it; where it does not (distribution 2.8), the manifest
//!    by digest only when no other live tag (tags the plan deletes aside) and no tag the
//!    plan writes holds that digest, else the tag is left and the reason reported.
//!
//! Payload releases widen the first rule (`payload`): every component tag of a release is
//! created or moved (content first) before any other action, a release whose payload is
//! refused or incomplete gets none of its own tags, and a tombstoned release's component
//! tags are deleted after everything else.
//!
//! Then, once every registry target is done, the ImageStreams (`image_stream`): each
//! ImageStream with an action is applied once, with its whole desired tag set, by
//! server-side apply; a tag whose registry content did not get in place in this run keeps
//! what it pointed to (or stays absent) and its action fails.
//!
//! A plan with a refusal writes nothing. An action that fails (after retries) or meets a
//! conflict is reported and the others proceed; tags are only written on content that was
//! fully copied. A second run after success has an empty plan, so it writes nothing.
//!
//! Here: the options and the run over every target; `write` creates or moves one tag,
//! `delete` deletes one, `image_stream` applies the ImageStreams, and `report` is what the
//! run did ([`Outcome`], [`ApplyReport`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::desired::DesiredState;
use crate::digest::Digest;
use crate::manifest::ImageStreamRef;
use crate::plan::{Action, ActionKind, ObservedState, Plan, Target};
use crate::progress::Progress;
use crate::registry::mirror::{Mirror, MirrorEndpoint, MirrorError};
use crate::registry::{Registries, RegistryError, RetryPolicy};

mod delete;
mod image_stream;
mod payload;
mod report;
#[cfg(test)]
mod tests;
mod write;

pub use image_stream::{ImageStreamTargets, live_content};
pub use report::{ActionResult, ApplyReport, Outcome, human_bytes};

use delete::DeleteState;

/// How to apply a plan.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// How a blob transfer that failed with a retryable error is redone (requests without a
    /// streamed body are retried by the HTTP client itself).
    pub retry: RetryPolicy,
    /// Draw progress bars on stderr (only on a terminal).
    pub progress: bool,
    /// Target → digest → source repository: where content may be copied from when a tag
    /// move finds its content missing in the target ([`content_sources`]). `mirror` actions
    /// carry their own source.
    pub sources: BTreeMap<String, BTreeMap<Digest, String>>,
    /// The cluster and what its ImageStream actions need (`None`: the cluster is off, and
    /// a plan then has no ImageStream action).
    pub image_streams: Option<ImageStreamTargets>,
    /// Asked just before every name is written (a tag created, moved or deleted, an
    /// ImageStream applied): `false` stops the writes of the run from there (`serve` stops
    /// writing the moment it loses leadership). `None`: always allowed.
    pub may_write: Option<WriteGuard>,
    /// Payload releases refused before the apply (release digest → why: unreadable or
    /// malformed image-references, a component source not allowed): their tags are not
    /// written ([`payload::held`]).
    pub payload_refused: BTreeMap<Digest, String>,
}

/// Whether writes may go on; see [`ApplyOptions::may_write`].
#[derive(Clone)]
pub struct WriteGuard(Arc<dyn Fn() -> bool + Send + Sync>);

impl WriteGuard {
    /// A guard asking `allowed`.
    pub fn new(allowed: impl Fn() -> bool + Send + Sync + 'static) -> WriteGuard {
        WriteGuard(Arc::new(allowed))
    }

    /// Whether writes may go on.
    pub fn allowed(&self) -> bool {
        (self.0)()
    }
}

impl std::fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteGuard(..)")
    }
}

impl ApplyOptions {
    /// The options to apply a plan made from `desired` and `observed`: where content may
    /// be copied from and, with a `cluster`, what its ImageStream actions need.
    pub fn for_plan(
        desired: &DesiredState,
        observed: &ObservedState,
        cluster: Option<crate::cluster::Cluster>,
    ) -> ApplyOptions {
        ApplyOptions {
            sources: content_sources(desired),
            payload_refused: desired.payloads.refused.clone(),
            image_streams: cluster.map(|cluster| ImageStreamTargets {
                cluster,
                desired: desired.image_streams.clone(),
                observed: observed.image_streams.clone().unwrap_or_default(),
                live: live_content(observed),
            }),
            ..ApplyOptions::default()
        }
    }
}

/// For each target repository, where Git says each desired digest comes from.
pub fn content_sources(desired: &DesiredState) -> BTreeMap<String, BTreeMap<Digest, String>> {
    desired
        .repos
        .iter()
        .map(|(target, repo)| {
            let sources = repo
                .tags
                .values()
                .map(|t| (t.digest.clone(), t.source.clone()))
                .collect();
            (target.clone(), sources)
        })
        .collect()
}

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Copying the content failed.
    #[error(transparent)]
    Copy(Arc<MirrorError>),
    /// A request to the target failed.
    #[error("{context}")]
    Registry {
        /// What was being done, naming the repository and tag.
        context: String,
        /// The last cause.
        #[source]
        source: RegistryError,
    },
    /// A repository string that cannot be used.
    #[error(transparent)]
    Repository(RegistryError),
    /// Content absent from the target with no source to copy it from.
    #[error(
        "{target}: content {digest} is not in the target and no source is known to copy it from"
    )]
    NoSource {
        /// The target repository that lacks the content.
        target: String,
        /// The digest of the missing manifest.
        digest: Digest,
    },
    /// An action this version cannot carry out.
    #[error("{0}")]
    Unsupported(String),
    /// Writes were stopped (the write guard said no: `serve` lost its leadership).
    #[error("not written: this replica stopped leading")]
    Stopped,
    /// The cluster refused or could not be reached (shared by every tag of one apply).
    #[error(transparent)]
    Cluster(Arc<crate::cluster::ClusterError>),
    /// A release tag of a payload release whose payload is not complete: not written.
    #[error("release {version}: not written: its payload is incomplete ({why})")]
    PayloadIncomplete {
        /// The release's version.
        version: String,
        /// Which component is missing, or that the payload was refused.
        why: String,
    },
    /// An ImageStream tag whose registry content did not get in place in this run.
    #[error("not pointed at {pull_spec}: the registry content is not in place ({why})")]
    ContentNotInPlace {
        /// The pull spec the tag would point to.
        pull_spec: String,
        /// What went wrong in the registry.
        why: String,
    },
}

/// Applies `plan` through `registries`. A plan with a refusal writes nothing and comes back
/// with [`ApplyReport::refused`] set. Never stops at the first failure: every action gets
/// an outcome.
pub async fn apply(plan: &Plan, registries: &Registries, options: &ApplyOptions) -> ApplyReport {
    let open = |name: &str| registries.repository(name);
    apply_with(plan, &open, registries.concurrency(), options).await
}

/// [`apply`] over any backend: `open` gives the repository of a repository string;
/// `concurrency` bounds blob transfers per registry host.
pub async fn apply_with<E: MirrorEndpoint>(
    plan: &Plan,
    open: &(dyn Fn(&str) -> Result<E, RegistryError> + Sync),
    concurrency: usize,
    options: &ApplyOptions,
) -> ApplyReport {
    let start = Instant::now();
    if let Some(r) = &plan.refusal {
        return ApplyReport {
            refused: Some(r.clone()),
            elapsed: start.elapsed(),
            ..ApplyReport::default()
        };
    }
    let to_copy: HashSet<(String, &Digest)> = plan
        .actions
        .iter()
        .filter(|a| a.action == ActionKind::Mirror)
        .filter_map(|a| a.to.as_ref().map(|d| (a.target.to_string(), d)))
        .collect();
    let progress = Arc::new(Progress::new(options.progress, to_copy.len() as u64));
    let mirror = Arc::new(Mirror::new(concurrency, options.retry).with_observer(progress.clone()));
    let run = Run {
        open,
        mirror: mirror.clone(),
        progress: progress.clone(),
        options,
        concurrency: concurrency.max(1),
        plan_sources: plan
            .actions
            .iter()
            .filter_map(|a| match (&a.target, &a.to, &a.source) {
                (Target::Repo(t), Some(d), Some(s)) => Some(((t.clone(), d.clone()), s.clone())),
                _ => None,
            })
            .collect(),
    };

    // Payload releases: every component and component tag before any tag of its release
    // (`payload`); without payload streams all three phases but the middle one are empty.
    let phases = payload::phases(plan);
    let mut outcomes = run.targets(phases.components).await;
    let blocked = payload::blocked(plan, &outcomes, &options.payload_refused);
    let (held, go) = payload::held(phases.rest, &blocked);
    outcomes.extend(held);
    let mut by_image_stream: BTreeMap<&ImageStreamRef, Vec<(usize, &Action)>> = BTreeMap::new();
    let mut repo_actions = Vec::new();
    for (i, a) in go {
        match &a.target {
            Target::ImageStream(is) => by_image_stream.entry(is).or_default().push((i, a)),
            Target::Repo(_) => repo_actions.push((i, a)),
        }
    }
    outcomes.extend(run.targets(repo_actions).await);
    // A tombstoned release's component tags go once its own tags are gone.
    outcomes.extend(run.targets(phases.component_deletes).await);
    // ImageStreams last: a tag only points at registry content once it is in place.
    if !by_image_stream.is_empty() {
        let content = image_stream::content_check(plan, &outcomes);
        outcomes.extend(
            image_stream::apply(
                options.image_streams.as_ref(),
                by_image_stream,
                &content,
                options.may_write.as_ref(),
            )
            .await,
        );
    }
    outcomes.sort_by_key(|(i, _)| *i);
    progress.finish();
    let results = outcomes
        .into_iter()
        .map(|(i, outcome)| ActionResult {
            action: plan.actions[i].clone(),
            outcome,
        })
        .collect();
    ApplyReport {
        results,
        stats: mirror.stats(),
        elapsed: start.elapsed(),
        refused: None,
        immutable: plan.conflicts.len(),
        payload_refusals: options.payload_refused.values().cloned().collect(),
    }
}

/// One apply run: what every action needs.
struct Run<'a, E> {
    open: &'a (dyn Fn(&str) -> Result<E, RegistryError> + Sync),
    mirror: Arc<Mirror>,
    progress: Arc<Progress>,
    options: &'a ApplyOptions,
    concurrency: usize,
    /// (target, digest) → source, from the plan's mirror actions.
    plan_sources: HashMap<(String, Digest), String>,
}

impl<E: MirrorEndpoint> Run<'_, E> {
    /// Fails with [`ApplyError::Stopped`] once the write guard says no.
    fn may_write(&self) -> Result<(), ApplyError> {
        match &self.options.may_write {
            Some(g) if !g.allowed() => Err(ApplyError::Stopped),
            _ => Ok(()),
        }
    }
}

/// The tracing span of an action.
fn span_of(a: &Action) -> tracing::Span {
    tracing::info_span!(
        "action",
        action = %a.action,
        target = %a.target,
        tag = %a.tag,
        channels = %a.channels.join(","),
    )
}

impl<E: MirrorEndpoint> Run<'_, E> {
    /// The actions of every repository target, targets in parallel.
    async fn targets(&self, actions: Vec<(usize, &Action)>) -> Vec<(usize, Outcome)> {
        let mut by_target: BTreeMap<&Target, Vec<(usize, &Action)>> = BTreeMap::new();
        for (i, a) in actions {
            by_target.entry(&a.target).or_default().push((i, a));
        }
        let per_target = by_target
            .into_iter()
            .map(|(target, actions)| self.target(target, actions));
        futures_util::future::join_all(per_target)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn target(
        &self,
        target: &Target,
        actions: Vec<(usize, &Action)>,
    ) -> Vec<(usize, Outcome)> {
        let name = match target {
            Target::Repo(name) => name,
            Target::ImageStream(_) => unreachable!("ImageStreams are applied after registries"),
        };
        let repo = match (self.open)(name) {
            Ok(r) => r,
            Err(e) => {
                let msg = e.to_string();
                return actions
                    .into_iter()
                    .map(|(i, _)| {
                        (
                            i,
                            Outcome::Failed(ApplyError::Unsupported(format!(
                                "cannot open {name}: {msg}"
                            ))),
                        )
                    })
                    .collect();
            }
        };
        // A layout's index.json is rewritten whole by each tag write: one at a time.
        let tag_lock = tokio::sync::Mutex::new(());
        let (deletes, writes): (Vec<_>, Vec<_>) = actions
            .into_iter()
            .partition(|(_, a)| a.action == ActionKind::Delete);

        let mut state = DeleteState {
            deleted_by_plan: deletes.iter().map(|(_, a)| a.tag.clone()).collect(),
            written: writes
                .iter()
                .filter_map(|(_, a)| a.to.clone().map(|d| (d, a.tag.clone())))
                .collect(),
            holders: None,
            children: BTreeSet::new(),
            deleted_manifests: HashSet::new(),
        };

        let mut outcomes: Vec<(usize, Outcome)> =
            futures_util::future::join_all(writes.into_iter().map(|(i, a)| {
                let (repo, tag_lock) = (&repo, &tag_lock);
                async move {
                    let outcome = match self.write_tag(name, repo, a, tag_lock).await {
                        Ok(o) => o,
                        Err(e) => Outcome::Failed(e),
                    };
                    log_outcome(a, &outcome);
                    (i, outcome)
                }
                .instrument(span_of(a))
            }))
            .await;

        for (i, a) in deletes {
            let outcome = match self
                .delete_tag(&repo, a, &mut state)
                .instrument(span_of(a))
                .await
            {
                Ok(o) => o,
                Err(e) => Outcome::Failed(e),
            };
            span_of(a).in_scope(|| log_outcome(a, &outcome));
            outcomes.push((i, outcome));
        }
        outcomes
    }

    /// A request to the target, its failure as an [`ApplyError`].
    async fn request<R>(
        &self,
        context: impl Fn() -> String,
        request: impl std::future::Future<Output = Result<R, RegistryError>>,
    ) -> Result<R, ApplyError> {
        request.await.map_err(|source| ApplyError::Registry {
            context: context(),
            source,
        })
    }
}

/// Logs an outcome in the action's span.
fn log_outcome(a: &Action, outcome: &Outcome) {
    match outcome {
        Outcome::Done => tracing::info!(
            from = %a.from.as_ref().map_or("-".to_string(), Digest::short),
            to = %a.to.as_ref().map_or("-".to_string(), Digest::short),
            "done"
        ),
        Outcome::Unchanged => tracing::info!("already as planned"),
        Outcome::Conflict { actual, .. } => tracing::info!(
            actual = %actual.as_ref().map_or("-".to_string(), Digest::short),
            "changed since the plan; left alone"
        ),
        Outcome::Left { reason } => tracing::info!(reason, "left"),
        Outcome::Failed(e) => tracing::info!(error = %e, "failed"),
    }
}
