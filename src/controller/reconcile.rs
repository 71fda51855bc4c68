//! One reconcile of `serve`, a plain function of what Git says and what is live:
//!
//! 1. read Git (a remote is fetched first) and recompute the whole desired state — cheap,
//!    and streams, policies and floating tags span files;
//! 2. honour a rollback hold (DESIGN.md "Rollback"): while the branch tip is the one the
//!    hold recorded, keep the held revision's desired state (judged by the tip's
//!    policies), or leave a held channel's tags alone; once the tip moves, the hold ends;
//! 3. observe the targets and the cluster, plan, and compute each channel's drift. A
//!    webhook pass that finds a new revision observes only the target repositories and
//!    ImageStreams whose desired state changed (the rest keep the last pass's
//!    observation); every other pass — start, interval (the self-heal pass), retry, a
//!    webhook with Git unchanged — observes everything;
//! 4. apply — only when leading, with `sync.auto`, and when Git changed since the last
//!    successful sync or `sync.selfHeal` is on (a failed sync is retried on the next
//!    pass either way) — then record the sync in the history and observe again;
//! 5. publish each channel's state (Synced / OutOfSync / Degraded / Unknown) with its
//!    revision, last sync, last error and drift, and the metrics.
//!
//! A failure to read Git or observe makes every channel `Unknown` and is returned to the
//! loop, whose error policy backs off.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Shared;
use super::leader::Leadership;
use super::schedule::{Reconcile, Trigger};
use super::status::{ChannelState, ChannelStatus};
use crate::apply;
use crate::cluster::Cluster;
use crate::desired::DesiredState;
use crate::git;
use crate::ops::sync::{self as ops_sync, SyncOptions};
use crate::ops::{self, Context, Loaded, OpsError, Settings, Warnings, Workspace, rollback};
use crate::plan::{self, Action, ObservedState, Plan, PlanOptions};
use crate::registry::Registries;
use crate::store::{EntryKind, StateStore, SyncOutcome, SyncState};

/// How many history entries the status page shows.
const RECENT_HISTORY: usize = 20;

/// Why a reconcile failed as a whole.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReconcileError(String);

/// What one channel's status remembers between passes.
#[derive(Debug, Default, Clone)]
struct ChannelMemory {
    last_sync: Option<String>,
    last_error: Option<String>,
}

/// What the reconciler remembers between passes.
#[derive(Debug, Default)]
struct Memory {
    /// The revision last synced with success.
    synced: Option<String>,
    channels: BTreeMap<String, ChannelMemory>,
    /// Registry requests by status already counted into the metrics.
    counted_requests: BTreeMap<String, u64>,
    /// The last pass: what it read and observed (for scoped passes).
    last: Option<LastPass>,
    /// Signature verdicts of the syncs so far (with signatures required).
    signatures: super::signatures::Verdicts,
}

/// What the last pass read and observed.
#[derive(Debug, Clone)]
struct LastPass {
    revision: String,
    leader: bool,
    desired: DesiredState,
    observed: ObservedState,
}

/// The part of `next` that differs from `prev`: repositories and ImageStreams whose
/// desired state changed or is new.
fn changed_scope(prev: &DesiredState, next: &DesiredState) -> DesiredState {
    let mut scope = DesiredState {
        channel_claims: next.channel_claims.clone(),
        ..DesiredState::default()
    };
    for (name, repo) in &next.repos {
        if prev.repos.get(name) != Some(repo) {
            scope.repos.insert(name.clone(), repo.clone());
        }
    }
    for (is, tags) in &next.image_streams {
        if prev.image_streams.get(is) != Some(tags) {
            scope.image_streams.insert(is.clone(), tags.clone());
        }
    }
    scope
}

/// `last` with the scoped observation laid over it, and what `next` no longer names
/// dropped.
fn merge_observed(
    last: &ObservedState,
    scoped: ObservedState,
    next: &DesiredState,
) -> ObservedState {
    let mut merged = last.clone();
    merged.repos.retain(|name, _| next.repos.contains_key(name));
    merged.repos.extend(scoped.repos);
    match (&mut merged.image_streams, scoped.image_streams) {
        (Some(all), Some(fresh)) => {
            all.retain(|is, _| next.image_streams.contains_key(is));
            all.extend(fresh);
        }
        (slot, fresh) => *slot = fresh,
    }
    merged
}

/// The GitOps reconciler of `serve`.
pub struct GitOps {
    settings: Settings,
    shared: Arc<Shared>,
    leadership: Leadership,
    registries: Arc<Registries>,
    cluster: Option<Cluster>,
    memory: Mutex<Memory>,
}

impl std::fmt::Debug for GitOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitOps").finish_non_exhaustive()
    }
}

/// What a pass read from Git.
struct Read {
    workspace: Workspace,
    loaded: Loaded,
    /// The history and holds as read at the start of the pass (updated by its sync).
    state: SyncState,
    /// `(target, tag)` pairs a channel hold keeps as the rollback left them.
    held: BTreeSet<(String, String)>,
}

impl GitOps {
    /// A reconciler reading Git as `settings` say, writing through `registries` and
    /// `cluster`, publishing into `shared`, writing only while `leadership` says so.
    pub fn new(
        settings: Settings,
        shared: Arc<Shared>,
        leadership: Leadership,
        registries: Arc<Registries>,
        cluster: Option<Cluster>,
    ) -> GitOps {
        GitOps {
            settings,
            shared,
            leadership,
            registries,
            cluster,
            memory: Mutex::new(Memory::default()),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads Git, with the hold in force applied.
    async fn read(&self) -> Result<Read, ReconcileError> {
        let settings = self.settings.clone();
        let (ctx, tip) = tokio::task::spawn_blocking(move || {
            let ctx = Context::load(&settings)?;
            let branch = settings
                .revision
                .clone()
                .unwrap_or_else(|| ctx.config.git.revision.clone());
            let tip = git::commit_info(&ctx.repo, &branch)?;
            Ok::<_, OpsError>((ctx, tip))
        })
        .await
        .map_err(|e| ReconcileError(format!("reading Git failed: {e}")))?
        .map_err(|e| ReconcileError(e.to_string()))?;

        let store = StateStore::new(&ctx.config_dir, self.cluster.clone());
        let mut state = store
            .load()
            .await
            .map_err(|e| ReconcileError(e.to_string()))?;
        if self.leadership.is_leader() {
            match rollback::release_moved(&store, &state, &tip.sha).await {
                Ok(Some(s)) => {
                    tracing::info!(tip = tip.sha, "the branch moved: rollback holds ended");
                    state = s;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot end the rollback holds"),
            }
        }
        let (whole, channel_holds) = rollback::in_force(&state, &tip.sha);
        let settings = Settings {
            revision: Some(whole.clone().unwrap_or(tip.sha.clone())),
            ..self.settings.clone()
        };
        let policies_at = whole.as_ref().map(|_| tip.sha.clone());
        let tip_sha = tip.sha.clone();
        let (warnings, read) = tokio::task::spawn_blocking(move || {
            let mut warnings = Warnings::new();
            let read = (|| {
                let loaded =
                    ctx.desired_with(&settings, false, policies_at.as_deref(), &mut warnings)?;
                // What a held channel claims, at the tip and at the held revision: none of
                // it is touched while the hold lasts.
                let mut held = BTreeSet::new();
                for (channel, revision) in &channel_holds {
                    let at = Settings {
                        revision: Some(revision.clone()),
                        ..settings.clone()
                    };
                    let then = ctx.desired_with(&at, false, Some(&tip_sha), &mut warnings)?;
                    for desired in [&loaded.desired, &then.desired] {
                        if let Some(claims) = desired.channel_claims.get(channel) {
                            held.extend(claims.iter().cloned());
                        }
                    }
                }
                Ok::<_, OpsError>((loaded, held))
            })();
            (warnings, read.map(|(loaded, held)| (ctx, loaded, held)))
        })
        .await
        .map_err(|e| ReconcileError(format!("reading Git failed: {e}")))?;
        log_warnings(&warnings);
        let (ctx, mut loaded, held) = read.map_err(|e| ReconcileError(e.to_string()))?;
        let workspace = Workspace {
            ctx,
            registries: self.registries.clone(),
            cluster: self.cluster.clone(),
        };
        // Payload streams: the component tags of each release (the leader, which syncs,
        // reads the lists it has not cached from the sources).
        let mut payload_warnings = Warnings::new();
        ops::payload::prepare(
            &workspace,
            &mut loaded,
            self.leadership.is_leader(),
            &mut payload_warnings,
        )
        .await;
        log_warnings(&payload_warnings);
        Ok(Read {
            workspace,
            loaded,
            state,
            held,
        })
    }

    /// Observes the registries and the cluster for `desired`.
    async fn observe(
        &self,
        read: &Read,
        desired: &DesiredState,
    ) -> Result<ObservedState, ReconcileError> {
        ops::observe::observe_targets(&read.workspace, desired, true)
            .await
            .map_err(|e| ReconcileError(e.to_string()))
    }

    /// Applies `plan`, records it, and notes per channel what went wrong.
    async fn apply(&self, read: &mut Read, plan: &Plan, observed: &ObservedState) -> SyncOutcome {
        let options = SyncOptions {
            collapse_repeats: true,
            may_write: Some({
                let leadership = self.leadership.clone();
                apply::WriteGuard::new(move || leadership.is_leader())
            }),
            ..SyncOptions::new(EntryKind::Sync)
        };
        let synced = ops_sync::sync(&read.workspace, &read.loaded, observed, plan, &options).await;
        let outcome = synced.outcome;
        let metrics = &self.shared.metrics;
        metrics.synced(&outcome.to_string());
        let (images, bytes) = synced
            .report
            .as_ref()
            .map_or((0, 0), |r| (r.stats.images, r.stats.bytes_copied));
        metrics.mirrored(images, bytes);
        if let Some(report) = &synced.report
            && read.loaded.manifests.policy.signatures.required()
        {
            let verdicts = super::signatures::Verdicts::of(report);
            metrics.signature_failed(verdicts.refused.len() as u64);
            self.memory().signatures.update(verdicts);
        }
        metrics.components_mirrored(synced.report.as_ref().map_or(0, |r| {
            super::payload_status::components_mirrored(&r.results)
        }));
        tracing::info!(outcome = %outcome, summary = synced.summary, "synced");
        {
            let now = crate::store::now();
            let mut memory = self.memory();
            let channels: BTreeSet<&String> =
                plan.actions.iter().flat_map(|a| &a.channels).collect();
            for c in channels {
                let m = memory.channels.entry(c.clone()).or_default();
                m.last_sync = Some(now.clone());
                m.last_error = None;
            }
            for r in synced.report.iter().flat_map(|r| &r.results) {
                if let Some(problem) = r.problem() {
                    for c in &r.action.channels {
                        memory.channels.entry(c.clone()).or_default().last_error =
                            Some(problem.clone());
                    }
                }
            }
            if let Some(refusal) = &plan.refusal {
                for c in read.loaded.manifests.channels.keys() {
                    memory.channels.entry(c.clone()).or_default().last_error =
                        Some(format!("plan refused: {refusal}"));
                }
            }
            if outcome == SyncOutcome::Succeeded {
                memory.synced = Some(read.loaded.revision.clone());
            }
        }
        if let Some(n) = &self.shared.notifier {
            notify_sync(n, read, plan, synced.report.as_ref());
        }
        match synced.state {
            Some(state) => read.state = state,
            None => {
                for w in &synced.warnings {
                    tracing::warn!("{}", w.trim_start_matches("warning: "));
                }
            }
        }
        outcome
    }

    /// Publishes the status of every channel and the metrics.
    fn publish(&self, read: &Read, observed: &ObservedState, options: &PlanOptions) {
        let desired = &read.loaded.desired;
        let memory = self.memory().channels.clone();
        let verdicts = self.memory().signatures.clone();
        let mut channels = Vec::new();
        for name in read.loaded.manifests.channels.keys() {
            let narrowed = PlanOptions {
                channel: Some(name.clone()),
                ..options.clone()
            };
            let mut drift = plan::drift(&read.loaded.revision, desired, observed, &narrowed);
            if read.loaded.manifests.policy.signatures.required() {
                plan::mark_unsigned(&mut drift, observed);
            }
            let counted = drift.items.iter().filter(|i| i.counts).count();
            let mut m = memory.get(name).cloned().unwrap_or_default();
            let state = if counted == 0 {
                // In sync: whatever went wrong before is over.
                m.last_error = None;
                ChannelState::Synced
            } else if m.last_error.is_some() {
                ChannelState::Degraded
            } else {
                ChannelState::OutOfSync
            };
            if counted == 0 {
                self.memory()
                    .channels
                    .entry(name.clone())
                    .or_default()
                    .last_error = None;
            }
            self.shared.metrics.set_drift(name, counted);
            channels.push(ChannelStatus {
                name: name.clone(),
                state,
                revision: Some(read.loaded.revision.clone()),
                last_sync: m.last_sync,
                last_error: m.last_error,
                payloads: super::payload_status::channel_payloads(
                    &read.loaded.manifests,
                    desired,
                    name,
                    &drift.items,
                ),
                drift: drift.items,
                releases: super::signatures::releases(&read.loaded, name, observed, &verdicts),
            });
        }
        if let Some(n) = &self.shared.notifier {
            n.states(&self.shared.status().channels, &channels);
        }
        let state = read.state.clone();
        let leader = self.leadership.is_leader();
        self.shared.update_status(|s| {
            s.revision = Some(read.loaded.revision.clone());
            s.channels = channels;
            s.history = state.history.into_iter().take(RECENT_HISTORY).collect();
            s.holds = state.holds;
            s.leader = leader;
            s.last_reconcile = Some(crate::store::now());
            s.last_error = None;
        });
        self.count_requests();
    }

    /// Feeds the registry requests made since the last count into the metrics.
    fn count_requests(&self) {
        let now = self.registries.requests_by_status();
        let mut memory = self.memory();
        for (status, n) in &now {
            let before = memory.counted_requests.get(status).copied().unwrap_or(0);
            if *n > before {
                self.shared.metrics.registry_requests(status, n - before);
            }
        }
        memory.counted_requests = now;
    }

    /// Marks every channel Unknown after a failed pass.
    fn publish_failure(&self, error: &ReconcileError) {
        if let Some(n) = &self.shared.notifier {
            n.sync_failed(None, None, &error.to_string());
        }
        let leader = self.leadership.is_leader();
        self.shared.update_status(|s| {
            for c in &mut s.channels {
                c.state = ChannelState::Unknown;
                c.last_error = Some(error.to_string());
            }
            s.leader = leader;
            s.last_reconcile = Some(crate::store::now());
            s.last_error = Some(error.to_string());
        });
    }

    async fn pass(&self, trigger: Trigger) -> Result<(), ReconcileError> {
        let mut read = self.read().await?;
        let config = &read.workspace.ctx.config;
        let options = PlanOptions {
            prune: config.sync.prune,
            allow_deletes: None,
            channel: None,
        };
        let git_changed = self.memory().synced.as_deref() != Some(&read.loaded.revision);
        let mut observed = self.observe_for(&read, trigger).await?;
        let mut plan = plan::plan(
            &read.loaded.revision,
            &read.loaded.desired,
            &observed,
            &read.loaded.manifests.policy,
            &options,
        );
        // A held channel's tags stay as the rollback left them; an ImageStream is applied
        // whole, so one holding any of them is left alone altogether.
        let held_image_streams: BTreeSet<&str> = read
            .held
            .iter()
            .map(|(target, _)| target.as_str())
            .filter(|t| t.starts_with("imagestream:"))
            .collect();
        plan.actions.retain(|a: &Action| {
            let target = a.target.to_string();
            !held_image_streams.contains(target.as_str())
                && !read.held.contains(&(target, a.tag.clone()))
        });
        let leader = self.leadership.is_leader();
        let wanted = config.sync.auto && (git_changed || config.sync.self_heal);
        tracing::info!(
            revision = read.loaded.revision,
            actions = plan.actions.len(),
            git_changed,
            leader,
            ?trigger,
            "planned"
        );
        if (!plan.actions.is_empty() || plan.refusal.is_some()) && wanted && leader {
            self.apply(&mut read, &plan, &observed).await;
            observed = self.observe_for(&read, trigger).await?;
        } else if plan.actions.is_empty() && plan.refusal.is_none() {
            let mut memory = self.memory();
            memory.synced = Some(read.loaded.revision.clone());
            // In sync: what was wrong is over.
            for m in memory.channels.values_mut() {
                m.last_error = None;
            }
        }
        self.publish(&read, &observed, &options);
        self.memory().last = Some(LastPass {
            revision: read.loaded.revision.clone(),
            leader,
            desired: read.loaded.desired.clone(),
            observed,
        });
        Ok(())
    }

    /// Observes what this pass needs: on a webhook pass with a new revision, only what
    /// changed since the last pass (laid over its observation); else everything.
    async fn observe_for(
        &self,
        read: &Read,
        trigger: Trigger,
    ) -> Result<ObservedState, ReconcileError> {
        let desired = &read.loaded.desired;
        let leader = self.leadership.is_leader();
        // Scoped only when the last pass observed everything else under the same
        // leadership at another revision; a replica that just became leader, or a webhook
        // with Git unchanged, observes everything.
        let last = match trigger {
            Trigger::Webhook => self
                .memory()
                .last
                .clone()
                .filter(|l| l.revision != read.loaded.revision && l.leader == leader),
            _ => None,
        };
        let Some(last) = last else {
            return self.observe(read, desired).await;
        };
        let (last_desired, last_observed) = (last.desired, last.observed);
        let scope = changed_scope(&last_desired, desired);
        tracing::info!(
            repos = scope.repos.len(),
            image_streams = scope.image_streams.len(),
            "observing what changed in Git"
        );
        let scoped = self.observe(read, &scope).await?;
        Ok(merge_observed(&last_observed, scoped, desired))
    }
}

/// Logs the warnings of reading Git (serve prints nothing of its own on stderr).
/// What a sync tells the notifier: per channel, its failures and its floating tags moved.
fn notify_sync(
    n: &super::notify::Notifier,
    read: &Read,
    plan: &Plan,
    report: Option<&apply::ApplyReport>,
) {
    let revision = &read.loaded.revision;
    if let Some(refusal) = &plan.refusal {
        n.sync_failed(None, Some(revision), &format!("plan refused: {refusal}"));
        return;
    }
    let Some(report) = report else {
        return;
    };
    let mut failed: BTreeMap<&String, Vec<String>> = BTreeMap::new();
    let mut promoted: BTreeMap<&String, (Vec<super::notify::TagMove>, BTreeSet<String>)> =
        BTreeMap::new();
    for r in &report.results {
        if let Some(problem) = r.problem() {
            for c in &r.action.channels {
                failed.entry(c).or_default().push(problem.clone());
            }
            continue;
        }
        let a = &r.action;
        if !matches!(r.outcome, apply::Outcome::Done) || a.to.is_none() {
            continue;
        }
        for c in &a.channels {
            let floating = read
                .loaded
                .manifests
                .channels
                .get(c)
                .is_some_and(|ch| ch.tags.iter().any(|t| t.value == a.tag));
            if floating {
                let entry = promoted.entry(c).or_default();
                entry.0.push(super::notify::TagMove {
                    target: a.target.to_string(),
                    tag: a.tag.clone(),
                    from: a.from.as_ref().map(ToString::to_string),
                    to: a.to.as_ref().map(ToString::to_string),
                });
                if let Some(v) = &a.to_version {
                    entry.1.insert(v.clone());
                }
            }
        }
    }
    for (c, problems) in failed {
        n.sync_failed(Some(c), Some(revision), &problems.join("; "));
    }
    for (c, (tags, versions)) in promoted {
        let versions: Vec<String> = versions.into_iter().collect();
        n.promoted(c, revision, tags, &versions.join(", "));
    }
}

fn log_warnings(warnings: &Warnings) {
    for w in warnings {
        tracing::warn!("{}", w.trim_start_matches("warning: "));
    }
}

impl Reconcile for GitOps {
    type Error = ReconcileError;

    async fn reconcile(&self, trigger: Trigger) -> Result<(), ReconcileError> {
        let started = Instant::now();
        let result = self.pass(trigger).await;
        self.shared
            .metrics
            .reconciled(started.elapsed().as_secs_f64());
        self.shared.metrics.set_leader(self.leadership.is_leader());
        match &result {
            Ok(()) => self.shared.set_ready(true),
            Err(e) => self.publish_failure(e),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::controller::schedule::{self, Timing};
    use crate::ops::testing::{example_repo, settings};

    /// The loop of `serve` on tokio's paused clock, against the example's `oci:` layouts
    /// and a local Git repository: a sync at start, a self-heal on the next interval after
    /// the target is wiped, nothing to do on the one after, and a stop on shutdown.
    #[tokio::test(start_paused = true)]
    async fn the_loop_syncs_at_start_heals_on_the_interval_and_stops_on_shutdown() {
        let (dir, sha) = example_repo();
        let settings = settings(dir.path());
        let ctx = Context::load(&settings).unwrap();
        let interval = Duration::from_secs(ctx.config.sync.interval_seconds);
        assert!(ctx.config.sync.auto && ctx.config.sync.self_heal);
        let workspace = Workspace::connect(ctx).await.unwrap();
        let shared = Arc::new(Shared::default());
        let reconciler = GitOps::new(
            settings,
            shared.clone(),
            Leadership::always(),
            workspace.registries.clone(),
            None,
        );
        let timing = Timing::for_interval(interval);
        let target = dir.path().join("example/quay.io/okd/scos-release");

        // Between the first and the second pass, someone wipes the target.
        let wipe = {
            let target = target.clone();
            tokio::spawn(async move {
                tokio::time::sleep(interval / 2).await;
                assert!(target.join("index.json").is_file(), "the first pass synced");
                std::fs::remove_dir_all(&target).unwrap();
            })
        };
        let started = tokio::time::Instant::now();
        let passes = schedule::run(
            &reconciler,
            &shared,
            timing,
            fastrand::Rng::with_seed(7),
            tokio::time::sleep(interval * 5 / 2),
        )
        .await;
        wipe.await.unwrap();
        assert_eq!(passes, 3, "at start, then after each jittered interval");
        assert!(started.elapsed() >= interval * 5 / 2);
        assert!(shared.is_ready());

        let status = shared.status();
        assert_eq!(status.revision.as_deref(), Some(sha.as_str()));
        assert!(!status.channels.is_empty());
        for c in &status.channels {
            assert_eq!(
                c.state,
                ChannelState::Synced,
                "{}: {:?}",
                c.name,
                c.last_error
            );
        }
        // Two syncs (start, self-heal), both recorded; the third pass had nothing to do.
        let outcomes: Vec<(SyncOutcome, &str)> = status
            .history
            .iter()
            .map(|e| (e.outcome, e.revision.as_str()))
            .collect();
        assert_eq!(
            outcomes,
            [
                (SyncOutcome::Succeeded, sha.as_str()),
                (SyncOutcome::Succeeded, sha.as_str())
            ]
        );
        assert!(
            target.join("index.json").is_file(),
            "the self-heal restored it"
        );
        let metrics = shared.metrics.render();
        assert!(
            metrics.contains("outcome=\"succeeded\"} 2"),
            "two successful syncs counted:\n{metrics}"
        );
    }
}
