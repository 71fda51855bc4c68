//! Executes a [`Plan`] through the registry adapters, in the order DESIGN.md requires.
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
//! Then, once every registry target is done, the ImageStreams (`image_stream`): each
//! ImageStream with an action is applied once, with its whole desired tag set, by
//! server-side apply; a tag whose registry content did not get in place in this run keeps
//! what it pointed to (or stays absent) and its action fails.
//!
//! A plan with a refusal writes nothing. An action that fails (after retries) or meets a
//! conflict is reported and the others proceed; tags are only written on content that was
//! fully copied. A second run after success has an empty plan, so it writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tracing::Instrument;

use crate::desired::DesiredState;
use crate::digest::Digest;
use crate::manifest::ImageStreamRef;
use crate::plan::{Action, ActionKind, ObservedState, Plan, Refusal, Target};
use crate::progress::Progress;
use crate::registry::mirror::{Mirror, MirrorEndpoint, MirrorError, MirrorStats, parse_manifest};
use crate::registry::{CasDeletion, CasWrite, RawManifest, Registries, RegistryError, RetryPolicy};
use crate::tag::is_signature_tag;

mod image_stream;

pub use image_stream::{ImageStreamTargets, live_content};

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
        /// The target.
        target: String,
        /// The content.
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
    /// An ImageStream tag whose registry content did not get in place in this run.
    #[error("not pointed at {pull_spec}: the registry content is not in place ({why})")]
    ContentNotInPlace {
        /// The pull spec the tag would point to.
        pull_spec: String,
        /// What went wrong in the registry.
        why: String,
    },
}

/// What became of one action.
#[derive(Debug)]
pub enum Outcome {
    /// Written (a tag created or moved) or deleted, as planned.
    Done,
    /// Nothing to write: the tag already was as the plan wants (changed meanwhile by
    /// someone else, or written by an earlier action of this run).
    Unchanged,
    /// The tag changed since the plan: left alone.
    Conflict {
        /// What the plan saw.
        expected: Option<Digest>,
        /// What the tag holds now.
        actual: Option<Digest>,
    },
    /// A delete that cannot be made safely: the tag is left.
    Left {
        /// Why.
        reason: String,
    },
    /// The action failed.
    Failed(ApplyError),
}

/// One action and its outcome.
#[derive(Debug)]
pub struct ActionResult {
    /// The action, as planned.
    pub action: Action,
    /// What became of it.
    pub outcome: Outcome,
}

impl ActionResult {
    /// A one-line message for an outcome that makes the run fail (`None` otherwise).
    pub fn problem(&self) -> Option<String> {
        let a = &self.action;
        let short = |d: &Option<Digest>| d.as_ref().map_or("nothing".to_string(), Digest::short);
        match &self.outcome {
            Outcome::Done | Outcome::Unchanged => None,
            Outcome::Conflict { expected, actual } => Some(format!(
                "conflict: {} tag {}: changed since the plan (plan saw {}, now {}); left alone",
                a.target,
                a.tag,
                short(expected),
                short(actual)
            )),
            Outcome::Left { reason } => Some(format!(
                "error: {} tag {}: not deleted: {reason}",
                a.target, a.tag
            )),
            Outcome::Failed(e) => {
                let mut msg = format!("error: {} {} {}: {e}", a.action, a.target, a.tag);
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    source = s.source();
                }
                Some(msg)
            }
        }
    }
}

/// What a sync did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Every action of the plan, in plan order, with its outcome.
    pub results: Vec<ActionResult>,
    /// What the mirror engine did.
    pub stats: MirrorStats,
    /// How long it took.
    pub elapsed: Duration,
    /// Set when the plan was refused (nothing written).
    pub refused: Option<Refusal>,
}

impl ApplyReport {
    fn count(&self, f: impl Fn(&ActionResult) -> bool) -> usize {
        self.results.iter().filter(|r| f(r)).count()
    }

    fn done(&self, kinds: &[ActionKind]) -> usize {
        self.count(|r| matches!(r.outcome, Outcome::Done) && kinds.contains(&r.action.action))
    }

    /// Tags created (`mirror`, `tag`).
    pub fn tags_created(&self) -> usize {
        self.done(&[ActionKind::Mirror, ActionKind::Tag])
    }

    /// Tags moved (`retag`, `rollback`).
    pub fn tags_moved(&self) -> usize {
        self.done(&[ActionKind::Retag, ActionKind::Rollback])
    }

    /// Tags deleted.
    pub fn tags_deleted(&self) -> usize {
        self.done(&[ActionKind::Delete])
    }

    /// Actions that failed.
    pub fn failed(&self) -> usize {
        self.count(|r| matches!(r.outcome, Outcome::Failed(_)))
    }

    /// Tags left alone because they changed since the plan.
    pub fn conflicts(&self) -> usize {
        self.count(|r| matches!(r.outcome, Outcome::Conflict { .. }))
    }

    /// Deletes left because the registry cannot make them safely.
    pub fn left(&self) -> usize {
        self.count(|r| matches!(r.outcome, Outcome::Left { .. }))
    }

    /// Whether every action succeeded (and the plan was not refused).
    pub fn succeeded(&self) -> bool {
        self.refused.is_none() && self.failed() == 0 && self.conflicts() == 0 && self.left() == 0
    }

    /// One line per action that makes the run fail.
    pub fn problems(&self) -> Vec<String> {
        self.results
            .iter()
            .filter_map(ActionResult::problem)
            .collect()
    }

    /// The final summary line, e.g. `synced in 3.2s: 4 images mirrored (12 blobs, 38.1 MiB
    /// copied, 3 mounted, 9 skipped), tags: 5 created, 2 moved, 1 deleted; 0 failed, 0
    /// conflicts`.
    pub fn summary(&self) -> String {
        if let Some(r) = &self.refused {
            return format!("nothing synced: {r}");
        }
        let s = &self.stats;
        let mut line = format!(
            "synced in {:.1}s: {} images mirrored ({} blobs, {} copied, {} mounted, {} skipped), tags: {} created, {} moved, {} deleted; {} failed, {} conflicts",
            self.elapsed.as_secs_f64(),
            s.images,
            s.blobs_copied,
            human_bytes(s.bytes_copied),
            s.blobs_mounted,
            s.blobs_skipped,
            self.tags_created(),
            self.tags_moved(),
            self.tags_deleted(),
            self.failed(),
            self.conflicts(),
        );
        if self.left() > 0 {
            line.push_str(&format!(", {} not deleted", self.left()));
        }
        if s.retries > 0 {
            line.push_str(&format!(" ({} retries)", s.retries));
        }
        line
    }
}

/// `1.5 KiB`, `38.1 MiB`: binary units, one decimal.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
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

    let mut by_target: BTreeMap<&Target, Vec<(usize, &Action)>> = BTreeMap::new();
    let mut by_image_stream: BTreeMap<&ImageStreamRef, Vec<(usize, &Action)>> = BTreeMap::new();
    for (i, a) in plan.actions.iter().enumerate() {
        match &a.target {
            Target::ImageStream(is) => by_image_stream.entry(is).or_default().push((i, a)),
            Target::Repo(_) => by_target.entry(&a.target).or_default().push((i, a)),
        }
    }
    let per_target = by_target
        .into_iter()
        .map(|(target, actions)| run.target(target, actions));
    let mut outcomes: Vec<(usize, Outcome)> = futures_util::future::join_all(per_target)
        .await
        .into_iter()
        .flatten()
        .collect();
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

/// What the deletes of one target share: the plan's view and what was learnt so far.
struct DeleteState {
    /// Tags the plan deletes in this target.
    deleted_by_plan: BTreeSet<String>,
    /// Digests the plan writes under some tag of this target → one such tag.
    written: BTreeMap<Digest, String>,
    /// Live tag → digest (every tag but signature tags and the plan's deletes), read once
    /// when a registry first refuses a tag DELETE.
    holders: Option<BTreeMap<String, Digest>>,
    /// Child manifests of every index a live tag holds, read with `holders`: deleting one
    /// by digest would break that index.
    children: BTreeSet<Digest>,
    /// Manifests deleted by digest in this run.
    deleted_manifests: HashSet<Digest>,
}

impl<E: MirrorEndpoint> Run<'_, E> {
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

    /// Copies what `digest` names into `target` from `source` (a repository string), and
    /// returns its manifest, which the caller writes under its tag (one request for the
    /// manifest and the tag). Both callers know `target` lacks `digest` (the plan observed
    /// it, or a read just now).
    async fn copy(
        &self,
        source: &str,
        target: &E,
        digest: &Digest,
        label: &str,
    ) -> Result<RawManifest, ApplyError> {
        let source = (self.open)(source).map_err(ApplyError::Repository)?;
        let raw = self
            .mirror
            .copy_image_content(&source, target, digest, label, true)
            .await
            .map_err(ApplyError::Copy)?;
        self.progress.image_done(target.name(), digest, label);
        Ok(raw)
    }

    /// Creates or moves one tag: content, CAS check, tag.
    async fn write_tag(
        &self,
        name: &str,
        repo: &E,
        a: &Action,
        tag_lock: &tokio::sync::Mutex<()>,
    ) -> Result<Outcome, ApplyError> {
        let Some(to) = &a.to else {
            return Err(ApplyError::Unsupported(format!(
                "{} {name} {}: no digest to write",
                a.action, a.tag
            )));
        };
        let label = match &a.to_version {
            Some(v) if *v != a.tag => format!("{name}:{} ({v})", a.tag),
            _ => format!("{name}:{}", a.tag),
        };
        // The action's own source, else that of a mirror of the same content in this plan
        // (whose copy this one then joins), else what Git says.
        let known_source = || {
            a.source
                .clone()
                .or_else(|| {
                    self.plan_sources
                        .get(&(name.to_string(), to.clone()))
                        .cloned()
                })
                .or_else(|| {
                    self.options
                        .sources
                        .get(name)
                        .and_then(|m| m.get(to))
                        .cloned()
                })
        };

        // Content first.
        let raw = if a.action == ActionKind::Mirror {
            let Some(source) = known_source() else {
                return Err(ApplyError::NoSource {
                    target: name.to_string(),
                    digest: to.clone(),
                });
            };
            self.copy(&source, repo, to, &label).await?
        } else {
            let present = self
                .request(
                    || format!("reading {name}@{to}"),
                    repo.get_manifest(to.as_str()),
                )
                .await?;
            match present {
                Some(raw) => raw,
                None => {
                    let Some(source) = known_source() else {
                        return Err(ApplyError::NoSource {
                            target: name.to_string(),
                            digest: to.clone(),
                        });
                    };
                    tracing::info!(%source, "content missing in the target; copying it first");
                    self.copy(&source, repo, to, &label).await?
                }
            }
        };
        // The manifest goes out under its own format's media type, bytes untouched.
        let raw = match parse_manifest(&raw.media_type, &raw.bytes) {
            Ok(p) => RawManifest {
                media_type: p.kind.media_type().to_string(),
                ..raw
            },
            Err(_) => raw,
        };

        // Then the tag, if it still holds what the plan saw (and writes may go on).
        self.may_write()?;
        let _guard = if repo.registry_host().is_none() {
            Some(tag_lock.lock().await)
        } else {
            None
        };
        let live = repo.fresh();
        let expected = match a.action {
            ActionKind::Mirror | ActionKind::Tag => None,
            _ => a.from.clone(),
        };
        let checked = matches!(a.action, ActionKind::Mirror | ActionKind::Tag) || a.from.is_some();
        if checked {
            // Compare-and-swap: atomic in a layout (checked under its lock), resolve then
            // write on a registry.
            let written = self
                .request(
                    || format!("writing {name}:{}", a.tag),
                    live.put_manifest_if(&a.tag, &raw, expected.as_ref()),
                )
                .await?;
            return Ok(match written {
                CasWrite::Written => Outcome::Done,
                CasWrite::Conflict { actual } if actual.as_ref() == Some(to) => Outcome::Unchanged,
                CasWrite::Conflict { actual } => Outcome::Conflict { expected, actual },
            });
        }
        let current = self
            .request(
                || format!("resolving {name}:{}", a.tag),
                live.resolve_tag(&a.tag),
            )
            .await?;
        if current.as_ref() == Some(to) {
            return Ok(Outcome::Unchanged);
        }
        self.request(
            || format!("writing {name}:{}", a.tag),
            live.put_manifest(&a.tag, &raw),
        )
        .await?;
        Ok(Outcome::Done)
    }

    /// Deletes one tag: CAS check, tag DELETE, else the manifest by digest when safe.
    async fn delete_tag(
        &self,
        repo: &E,
        a: &Action,
        state: &mut DeleteState,
    ) -> Result<Outcome, ApplyError> {
        self.may_write()?;
        let name = repo.name().to_string();
        let live = repo.fresh();
        // Gone already: by an earlier delete by digest of this run, or by someone else.
        let gone = |state: &DeleteState| match a
            .from
            .as_ref()
            .filter(|d| state.deleted_manifests.contains(*d))
        {
            Some(_) => Outcome::Done,
            None => Outcome::Unchanged,
        };
        // A plan that saw no digest cannot delete blindly: report what the tag holds.
        let Some(digest) = a.from.clone() else {
            let current = self
                .request(
                    || format!("resolving {name}:{}", a.tag),
                    live.resolve_tag(&a.tag),
                )
                .await?;
            return Ok(match current {
                None => gone(state),
                Some(actual) => Outcome::Conflict {
                    expected: None,
                    actual: Some(actual),
                },
            });
        };
        // Compare-and-swap with the delete itself: atomic in a layout, resolve-then-delete
        // on a registry.
        let deletion = self
            .request(
                || format!("deleting {name}:{}", a.tag),
                live.delete_tag_if(&a.tag, &digest),
            )
            .await?;
        match deletion {
            CasDeletion::Deleted => return Ok(Outcome::Done),
            CasDeletion::Conflict { actual: None } => return Ok(gone(state)),
            CasDeletion::Conflict { actual } => {
                return Ok(Outcome::Conflict {
                    expected: a.from.clone(),
                    actual,
                });
            }
            CasDeletion::Unsupported => {}
        }

        // The registry cannot delete a tag by name: by digest, only when that removes no
        // other tag and no tag Git wants on it.
        if let Some(wanted) = state.written.get(&digest) {
            return Ok(Outcome::Left {
                reason: format!(
                    "the registry cannot delete a tag by name, and deleting manifest {} would also remove tag {wanted}, which Git wants on it",
                    digest.short()
                ),
            });
        }
        if self
            .options
            .sources
            .get(&name)
            .is_some_and(|wanted| wanted.contains_key(&digest))
        {
            return Ok(Outcome::Left {
                reason: format!(
                    "the registry cannot delete a tag by name, and Git wants manifest {} in this repository",
                    digest.short()
                ),
            });
        }
        if state.holders.is_none() {
            let holders = self.holders(&live, &state.deleted_by_plan).await?;
            state.children = self.index_children(&live, &holders).await?;
            state.holders = Some(holders);
        }
        if state.children.contains(&digest) {
            return Ok(Outcome::Left {
                reason: format!(
                    "the registry cannot delete a tag by name, and manifest {} is a platform image of an index another tag holds",
                    digest.short()
                ),
            });
        }
        let others: Vec<&str> = state
            .holders
            .iter()
            .flatten()
            .filter(|(t, d)| **d == digest && **t != a.tag)
            .map(|(t, _)| t.as_str())
            .collect();
        if !others.is_empty() {
            return Ok(Outcome::Left {
                reason: format!(
                    "the registry cannot delete a tag by name, and deleting manifest {} would also remove tag{} {}",
                    digest.short(),
                    if others.len() > 1 { "s" } else { "" },
                    others.join(", ")
                ),
            });
        }
        self.request(
            || format!("deleting {name}@{digest}"),
            live.delete_manifest(&digest),
        )
        .await?;
        state.deleted_manifests.insert(digest);
        Ok(Outcome::Done)
    }

    /// The child manifests of every index among `holders`' digests.
    async fn index_children(
        &self,
        repo: &E,
        holders: &BTreeMap<String, Digest>,
    ) -> Result<BTreeSet<Digest>, ApplyError> {
        let name = repo.name().to_string();
        let digests: BTreeSet<&Digest> = holders.values().collect();
        let mut children = BTreeSet::new();
        for d in digests {
            let raw = self
                .request(
                    || format!("reading {name}@{d}"),
                    repo.get_manifest(d.as_str()),
                )
                .await?;
            let Some(raw) = raw else { continue };
            // A manifest relsync cannot parse names no children it could break.
            if let Ok(parsed) = parse_manifest(&raw.media_type, &raw.bytes) {
                children.extend(parsed.children.into_iter().map(|c| c.digest));
            }
        }
        Ok(children)
    }

    /// Every live tag of `repo` → its digest, except signature tags and `except`.
    async fn holders(
        &self,
        repo: &E,
        except: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Digest>, ApplyError> {
        let name = repo.name().to_string();
        let tags = self
            .request(|| format!("listing tags of {name}"), repo.list_tags())
            .await?;
        let resolved: Vec<Result<(String, Option<Digest>), ApplyError>> =
            futures_util::stream::iter(
                tags.into_iter()
                    .filter(|t| !except.contains(t) && !is_signature_tag(t)),
            )
            .map(|tag| {
                let name = &name;
                async move {
                    let d = self
                        .request(|| format!("resolving {name}:{tag}"), repo.resolve_tag(&tag))
                        .await?;
                    Ok((tag, d))
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut holders = BTreeMap::new();
        for r in resolved {
            if let (tag, Some(d)) = r? {
                holders.insert(tag, d);
            }
        }
        Ok(holders)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::mirror::testing::{Mem, State, seed_index};
    use std::sync::Mutex;

    const SRC: &str = "src/rel";
    const DST: &str = "dst/rel";

    fn opener(reg: &Arc<Mutex<State>>) -> impl Fn(&str) -> Result<Mem, RegistryError> + Sync {
        let reg = reg.clone();
        move |name: &str| Ok(Mem::new(&reg, Some(name.split('/').next().unwrap()), name))
    }

    fn options() -> ApplyOptions {
        ApplyOptions {
            retry: RetryPolicy {
                tries: 3,
                base: Duration::from_millis(1),
                cap: Duration::from_millis(2),
                max_retry_after: Duration::from_millis(2),
            },
            ..ApplyOptions::default()
        }
    }

    fn action(kind: ActionKind, tag: &str, from: Option<&Digest>, to: Option<&Digest>) -> Action {
        Action {
            action: kind,
            target: Target::Repo(DST.to_string()),
            tag: tag.to_string(),
            from: from.cloned(),
            to: to.cloned(),
            from_version: None,
            to_version: None,
            copy: kind == ActionKind::Mirror,
            channels: vec!["c".to_string()],
            reason: String::new(),
            source: (kind == ActionKind::Mirror).then(|| SRC.to_string()),
        }
    }

    fn plan(actions: Vec<Action>) -> Plan {
        Plan {
            revision: "abc".to_string(),
            actions,
            conflicts: Vec::new(),
            refusal: None,
        }
    }

    fn writes(reg: &Arc<Mutex<State>>) -> Vec<String> {
        reg.lock().unwrap().writes.clone()
    }

    /// A source with releases r1..rN (sharing one layer), a target holding r1 under `1.0`,
    /// `stable` and `old`.
    fn setup(n: usize) -> (Arc<Mutex<State>>, Mem, Mem, Vec<Digest>) {
        let reg = Mem::registry();
        let src = Mem::new(&reg, Some("src"), SRC);
        let dst = Mem::new(&reg, Some("dst"), DST);
        let releases: Vec<Digest> = (1..=n)
            .map(|i| seed_index(&src, &format!("r{i}"), b"shared", None).0)
            .collect();
        let seeding = Arc::new(Mirror::new(2, options().retry));
        crate::registry::mirror::testing::block(async {
            seeding
                .copy_image(&src, &dst, &releases[0], "seed")
                .await
                .unwrap();
        });
        let raw = dst.manifest_bytes(&releases[0]).unwrap();
        for t in ["1.0", "stable", "old"] {
            dst.seed_manifest(crate::registry::mirror::testing::OCI_INDEX, &raw, Some(t));
        }
        reg.lock().unwrap().writes.clear();
        (reg, src, dst, releases)
    }

    #[test]
    fn mirrors_then_tags_moves_and_deletes() {
        let (reg, _src, dst, r) = setup(2);
        let p = plan(vec![
            action(ActionKind::Mirror, "2.0", None, Some(&r[1])),
            action(ActionKind::Tag, "1.0-alias", None, Some(&r[0])),
            action(ActionKind::Retag, "stable", Some(&r[0]), Some(&r[1])),
            action(ActionKind::Delete, "old", Some(&r[0]), None),
        ]);
        let open = opener(&reg);
        let report = crate::registry::mirror::testing::block(apply_with(&p, &open, 4, &options()));
        assert!(report.succeeded(), "{:?}", report.problems());
        assert_eq!(dst.tag("2.0"), Some(r[1].clone()));
        assert_eq!(dst.tag("1.0-alias"), Some(r[0].clone()));
        assert_eq!(dst.tag("stable"), Some(r[1].clone()));
        assert_eq!(dst.tag("old"), None);
        assert_eq!(dst.tag("1.0"), Some(r[0].clone()));
        let w = writes(&reg);
        let pos = |s: &str| {
            w.iter()
                .position(|x| x == s)
                .unwrap_or_else(|| panic!("{s} in {w:?}"))
        };
        // The index is written once, under its tag (no PUT by digest first), after every
        // blob and child manifest.
        let last_content = w
            .iter()
            .rposition(|x| {
                x.starts_with("blob ") || x.starts_with(&format!("manifest {DST} sha256:"))
            })
            .unwrap();
        assert!(!w.contains(&format!("manifest {DST} {}", r[1])), "{w:?}");
        assert!(pos(&format!("manifest {DST} 2.0")) > last_content, "{w:?}");
        assert!(
            pos(&format!("manifest {DST} stable")) > last_content,
            "{w:?}"
        );
        assert!(pos(&format!("delete-tag {DST} old")) > pos(&format!("manifest {DST} stable")));
        assert_eq!(
            (
                report.tags_created(),
                report.tags_moved(),
                report.tags_deleted()
            ),
            (2, 1, 1)
        );
        // Only r2's own blobs travel: its shared layer is in the target already.
        assert_eq!(report.stats.images, 1);
        assert_eq!(report.stats.blobs_copied, 4);
        assert_eq!(report.stats.blobs_skipped, 1);
        let summary = report.summary();
        assert!(
            summary.contains("1 images mirrored (4 blobs")
                && summary.contains("tags: 2 created, 1 moved, 1 deleted; 0 failed, 0 conflicts"),
            "{summary}"
        );
    }

    #[test]
    fn a_write_guard_saying_no_stops_every_name_write_but_content_may_land() {
        let (reg, _src, dst, r) = setup(2);
        let p = plan(vec![
            action(ActionKind::Mirror, "2.0", None, Some(&r[1])),
            action(ActionKind::Retag, "stable", Some(&r[0]), Some(&r[1])),
            action(ActionKind::Delete, "old", Some(&r[0]), None),
        ]);
        let open = opener(&reg);
        let options = ApplyOptions {
            may_write: Some(WriteGuard::new(|| false)),
            ..options()
        };
        let report = crate::registry::mirror::testing::block(apply_with(&p, &open, 4, &options));
        assert_eq!(report.failed(), 3, "{:?}", report.problems());
        assert!(
            report
                .results
                .iter()
                .all(|r| matches!(r.outcome, Outcome::Failed(ApplyError::Stopped)))
        );
        assert_eq!(dst.tag("2.0"), None);
        assert_eq!(dst.tag("stable"), Some(r[0].clone()));
        assert_eq!(dst.tag("old"), Some(r[0].clone()));
        assert!(
            !writes(&reg)
                .iter()
                .any(|w| w.starts_with("delete") || w.ends_with(" 2.0") || w.ends_with(" stable")),
            "{:?}",
            writes(&reg)
        );
    }

    #[test]
    fn a_tag_changed_since_the_plan_is_a_conflict_and_the_rest_proceeds() {
        let (reg, src, dst, r) = setup(3);
        let _ = src;
        // Someone moved `stable` to r3 after the plan saw r1.
        let raw = {
            let m = Arc::new(Mirror::new(2, options().retry));
            crate::registry::mirror::testing::block(m.copy_image(&src, &dst, &r[2], "x")).unwrap()
        };
        dst.seed_manifest(&raw.media_type, &raw.bytes, Some("stable"));
        // ... and created `new` before relsync could.
        dst.seed_manifest(&raw.media_type, &raw.bytes, Some("new"));
        reg.lock().unwrap().writes.clear();
        let p = plan(vec![
            action(ActionKind::Mirror, "2.0", None, Some(&r[1])),
            action(ActionKind::Mirror, "new", None, Some(&r[1])),
            action(ActionKind::Retag, "stable", Some(&r[0]), Some(&r[1])),
            action(ActionKind::Delete, "1.0", Some(&r[1]), None),
        ]);
        let open = opener(&reg);
        let report = crate::registry::mirror::testing::block(apply_with(&p, &open, 4, &options()));
        assert!(!report.succeeded());
        assert_eq!(report.conflicts(), 3, "{:?}", report.problems());
        assert_eq!(dst.tag("stable"), Some(r[2].clone()), "left alone");
        assert_eq!(dst.tag("new"), Some(r[2].clone()), "left alone");
        assert_eq!(
            dst.tag("1.0"),
            Some(r[0].clone()),
            "not deleted: it holds r1, not r2"
        );
        assert_eq!(dst.tag("2.0"), Some(r[1].clone()), "the rest proceeds");
        let problems = report.problems();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("conflict: dst/rel tag stable: changed since the plan")),
            "{problems:?}"
        );
        assert!(
            !writes(&reg)
                .iter()
                .any(|w| w.ends_with(" stable") || w.ends_with(" new"))
        );
    }

    #[test]
    fn a_failing_release_does_not_stop_the_others() {
        let (reg, src, dst, r) = setup(3);
        // r2's own amd64 layer never comes.
        let blobs_r2 = {
            let st = reg.lock().unwrap();
            let r1_blobs: Vec<Digest> = st.repos[DST].blobs.keys().cloned().collect();
            st.repos[SRC]
                .blobs
                .keys()
                .filter(|b| !r1_blobs.contains(b))
                .cloned()
                .collect::<Vec<_>>()
        };
        let _ = &src;
        let bad = blobs_r2
            .iter()
            .find(|b| {
                let st = reg.lock().unwrap();
                let bytes = &st.repos[SRC].blobs[*b];
                bytes.as_ref() == b"r2 amd64 layer"
            })
            .unwrap()
            .clone();
        reg.lock().unwrap().failing_opens.insert(bad.clone(), 1000);
        let p = plan(vec![
            action(ActionKind::Mirror, "2.0", None, Some(&r[1])),
            action(ActionKind::Mirror, "3.0", None, Some(&r[2])),
            action(ActionKind::Retag, "stable", Some(&r[0]), Some(&r[1])),
        ]);
        let open = opener(&reg);
        let report = crate::registry::mirror::testing::block(apply_with(&p, &open, 4, &options()));
        assert_eq!(report.failed(), 2);
        assert_eq!(dst.tag("3.0"), Some(r[2].clone()));
        assert_eq!(dst.tag("2.0"), None, "no tag on incomplete content");
        assert!(!dst.has(&r[1]));
        assert_eq!(dst.tag("stable"), Some(r[0].clone()));
        let problems = report.problems();
        let p2 = problems.iter().find(|p| p.contains(" 2.0")).unwrap();
        assert!(
            p2.contains("dst/rel:2.0")
                && p2.contains(bad.as_str())
                && p2.contains("after 3 tries")
                && p2.contains("503"),
            "{p2}"
        );
        assert_eq!(
            reg.lock().unwrap().opens[&bad],
            3,
            "one transfer for both actions"
        );
        assert!(
            report.summary().contains("2 failed"),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn deletes_by_digest_only_when_nothing_else_holds_it() {
        let (reg, src, dst, r) = setup(4);
        reg.lock().unwrap().no_tag_delete = true;
        let m = Arc::new(Mirror::new(2, options().retry));
        let mut raws = Vec::new();
        for d in &r[1..] {
            raws.push(
                crate::registry::mirror::testing::block(m.copy_image(&src, &dst, d, "x")).unwrap(),
            );
        }
        // r2: `b` and `c`, both deleted by the plan. r3: `d` (deleted) and `keep`. r4: `e`
        // (deleted) while the plan writes `f` on r4.
        for (raw, tag) in [(0, "b"), (0, "c"), (1, "d"), (1, "keep"), (2, "e")] {
            dst.seed_manifest(&raws[raw].media_type, &raws[raw].bytes, Some(tag));
        }
        reg.lock().unwrap().writes.clear();
        let p = plan(vec![
            action(ActionKind::Tag, "f", None, Some(&r[3])),
            action(ActionKind::Delete, "b", Some(&r[1]), None),
            action(ActionKind::Delete, "c", Some(&r[1]), None),
            action(ActionKind::Delete, "d", Some(&r[2]), None),
            action(ActionKind::Delete, "e", Some(&r[3]), None),
            action(ActionKind::Delete, "old", Some(&r[0]), None),
        ]);
        let open = opener(&reg);
        let report = crate::registry::mirror::testing::block(apply_with(&p, &open, 4, &options()));
        let outcome = |tag: &str| {
            &report
                .results
                .iter()
                .find(|x| x.action.tag == tag)
                .unwrap()
                .outcome
        };
        assert!(matches!(outcome("b"), Outcome::Done));
        assert!(matches!(outcome("c"), Outcome::Done));
        assert!(matches!(outcome("f"), Outcome::Done));
        assert!(
            matches!(outcome("d"), Outcome::Left { reason } if reason.contains("also remove tag keep")),
            "{:?}",
            outcome("d")
        );
        assert!(
            matches!(outcome("e"), Outcome::Left { reason } if reason.contains("tag f, which Git wants")),
            "{:?}",
            outcome("e")
        );
        // `old` shares r1 with `1.0` and `stable`, which the plan keeps.
        assert!(
            matches!(outcome("old"), Outcome::Left { reason } if reason.contains("1.0, stable")),
            "{:?}",
            outcome("old")
        );
        assert_eq!(dst.tag("d"), Some(r[2].clone()));
        assert_eq!(dst.tag("keep"), Some(r[2].clone()));
        assert_eq!(dst.tag("e"), Some(r[3].clone()));
        assert_eq!(dst.tag("b"), None);
        let w = writes(&reg);
        assert_eq!(
            w.iter()
                .filter(|x| x.starts_with("delete-manifest"))
                .count(),
            1,
            "{w:?}"
        );
        assert_eq!(report.left(), 3);
        assert!(!report.succeeded());
        assert!(
            report.summary().ends_with(", 3 not deleted"),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn human_bytes_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(38 * 1024 * 1024 + 100 * 1024), "38.1 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn a_refused_plan_writes_nothing() {
        let (reg, _src, _dst, r) = setup(2);
        let mut p = plan(vec![
            action(ActionKind::Mirror, "2.0", None, Some(&r[1])),
            action(ActionKind::Delete, "old", Some(&r[0]), None),
        ]);
        p.refusal = Some(Refusal::DeleteCap { deletes: 1, max: 0 });
        let open = opener(&reg);
        let report = crate::registry::mirror::testing::block(apply_with(&p, &open, 4, &options()));
        assert!(!report.succeeded());
        assert!(report.results.is_empty());
        assert!(writes(&reg).is_empty());
        assert!(report.summary().starts_with("nothing synced: plan refused"));
    }

    #[test]
    fn a_move_onto_missing_content_copies_it_first_and_a_done_tag_is_not_rewritten() {
        let (reg, src, dst, r) = setup(3);
        let mut options = options();
        options.sources.insert(
            DST.to_string(),
            [(r[1].clone(), SRC.to_string())].into_iter().collect(),
        );
        // `1.0` already holds r1: a mirror of it is a no-op (someone did it).
        let p = plan(vec![
            action(ActionKind::Mirror, "1.0", None, Some(&r[0])),
            action(ActionKind::Rollback, "stable", Some(&r[0]), Some(&r[1])),
            action(ActionKind::Retag, "old", Some(&r[0]), Some(&r[2])),
        ]);
        let open = opener(&reg);
        let report = crate::registry::mirror::testing::block(apply_with(&p, &open, 4, &options));
        let _ = &src;
        assert!(matches!(report.results[0].outcome, Outcome::Unchanged));
        assert!(matches!(report.results[1].outcome, Outcome::Done));
        assert!(
            matches!(
                &report.results[2].outcome,
                Outcome::Failed(ApplyError::NoSource { .. })
            ),
            "{:?}",
            report.results[2].outcome
        );
        assert_eq!(dst.tag("stable"), Some(r[1].clone()));
        assert_eq!(dst.tag("old"), Some(r[0].clone()));
        assert!(!writes(&reg).iter().any(|w| w.ends_with(" 1.0")));
        assert_eq!(dst.manifest_bytes(&r[1]), src.manifest_bytes(&r[1]));
    }

    /// Two apply runs (separate threads and runtimes, as two relsync processes) with
    /// different plans race on one `oci:` layout tag: the compare-and-swap is made under
    /// the layout's lock, so exactly one wins and the other reports a conflict naming the
    /// winner's digest; no write is lost or made blind.
    #[test]
    fn two_runs_racing_on_one_layout_tag_never_overwrite_each_other() {
        use crate::registry::{ContentStore, LayoutRepository, Repository, TargetReader};
        for round in 0..6 {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("layout");
            let reg = Mem::registry();
            let src = Mem::new(&reg, Some("src"), SRC);
            let r: Vec<Digest> = (1..=3)
                .map(|i| seed_index(&src, &format!("r{i}"), b"shared", None).0)
                .collect();
            let layout = Repository::Layout(LayoutRepository::new("oci:layout", dir.clone()));
            crate::registry::mirror::testing::block(async {
                let m = Arc::new(Mirror::new(2, options().retry));
                for d in &r {
                    let raw = m.copy_image(&src, &layout, d, "seed").await.unwrap();
                    if *d == r[0] {
                        for t in ["stable", "old"] {
                            layout.put_manifest(t, &raw).await.unwrap();
                        }
                    }
                }
            });
            let on_layout = |mut a: Action| {
                a.target = Target::Repo("oci:layout".to_string());
                a
            };
            // Run A moves `stable` to r2 and deletes `old`; run B moves both to r3.
            let plans = [
                plan(vec![
                    on_layout(action(
                        ActionKind::Retag,
                        "stable",
                        Some(&r[0]),
                        Some(&r[1]),
                    )),
                    on_layout(action(ActionKind::Delete, "old", Some(&r[0]), None)),
                ]),
                plan(vec![
                    on_layout(action(
                        ActionKind::Retag,
                        "stable",
                        Some(&r[0]),
                        Some(&r[2]),
                    )),
                    on_layout(action(ActionKind::Retag, "old", Some(&r[0]), Some(&r[2]))),
                ]),
            ];
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let runs: Vec<_> = plans
                .into_iter()
                .map(|p| {
                    let (dir, barrier) = (dir.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let open = move |name: &str| {
                            Ok(Repository::Layout(LayoutRepository::new(name, dir.clone())))
                        };
                        barrier.wait();
                        let report = crate::registry::mirror::testing::block(apply_with(
                            &p,
                            &open,
                            2,
                            &options(),
                        ));
                        report
                            .results
                            .into_iter()
                            .map(|x| (x.action.tag, x.outcome))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let outcomes: Vec<Vec<(String, Outcome)>> =
                runs.into_iter().map(|t| t.join().unwrap()).collect();
            let reader = LayoutRepository::new("oci:layout", dir.clone());
            let live = |tag: &str| {
                crate::registry::mirror::testing::block(reader.resolve_tag(tag)).unwrap()
            };
            for (tag, wants) in [
                ("stable", [Some(r[1].clone()), Some(r[2].clone())]),
                ("old", [None, Some(r[2].clone())]),
            ] {
                let of = |run: usize| {
                    &outcomes[run]
                        .iter()
                        .find(|(t, _)| t == tag)
                        .unwrap_or_else(|| panic!("{tag} in {outcomes:?}"))
                        .1
                };
                let now = live(tag);
                let winner = match (of(0), of(1)) {
                    (Outcome::Done, Outcome::Conflict { expected, actual }) => {
                        assert_eq!(expected.as_ref(), Some(&r[0]));
                        assert_eq!(*actual, wants[0], "round {round}: {tag}");
                        0
                    }
                    (Outcome::Conflict { expected, actual }, Outcome::Done) => {
                        assert_eq!(expected.as_ref(), Some(&r[0]));
                        assert_eq!(*actual, wants[1], "round {round}: {tag}");
                        1
                    }
                    other => panic!("round {round}: {tag}: one run must win: {other:?}"),
                };
                assert_eq!(
                    now, wants[winner],
                    "round {round}: {tag}: the winner's write stands"
                );
            }
        }
    }
}
