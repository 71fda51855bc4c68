//! A sync, once for `relsync sync`, `relsync rollback` and `serve`: apply the plan through
//! the workspace's adapters, decide its outcome, record it in the history, and end the
//! rollback holds a sync of the followed branch ends.
//!
//! - A refused plan writes nothing: outcome `refused`, summary `nothing synced: …`.
//! - Otherwise the outcome is `succeeded` when every action succeeded and no tag is in
//!   conflict, else `failed` (the other actions still ran).
//! - Every sync that gets as far as a plan is recorded. A failure to record is a warning:
//!   the sync itself is done.
//! - A successful sync of the followed branch (no `--revision`) ends the rollback holds of
//!   what it synced: it is an explicit "follow Git again" (every hold, or with a channel,
//!   that channel's).

use std::time::Instant;

use super::{Loaded, Warnings, Workspace};
use crate::apply::{self, ApplyOptions, ApplyReport, WriteGuard};
use crate::git;
use crate::plan::{ObservedState, Plan};
use crate::state::{EntryKind, HistoryEntry, StateStore, SyncOutcome, SyncState};

/// How a sync runs and is recorded.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Sync or rollback, as the history shows it.
    pub kind: EntryKind,
    /// `--channel`, when the sync is narrowed to one (recorded, and the hold it ends).
    pub channel: Option<String>,
    /// A failure repeated at the same revision replaces the newest history entry instead
    /// of adding one (`serve`, which retries a failing sync every few seconds).
    pub collapse_repeats: bool,
    /// End the rollback holds of what was synced when it succeeds (a sync of the followed
    /// branch).
    pub release_holds: bool,
    /// Draw progress bars on stderr.
    pub progress: bool,
    /// Asked before every name is written (`serve`: while leading).
    pub may_write: Option<WriteGuard>,
    /// When the run began: the summary's duration counts from here (a command's whole run:
    /// reading Git, observing and planning too). `None`: from the start of the apply.
    pub started: Option<Instant>,
}

impl SyncOptions {
    /// A plain sync of the whole desired state, recorded as `kind`.
    pub fn new(kind: EntryKind) -> SyncOptions {
        SyncOptions {
            kind,
            channel: None,
            collapse_repeats: false,
            release_holds: false,
            progress: false,
            may_write: None,
            started: None,
        }
    }
}

/// What a sync did.
#[derive(Debug)]
pub struct Synced {
    /// How it ended.
    pub outcome: SyncOutcome,
    /// The summary line (as recorded).
    pub summary: String,
    /// What the apply did, action by action (`None`: the plan was refused, nothing ran).
    pub report: Option<ApplyReport>,
    /// The history and holds after recording (`None`: recording failed, see the warnings).
    pub state: Option<SyncState>,
    /// What could not be recorded or released.
    pub warnings: Warnings,
}

impl Synced {
    /// The exit code of `relsync sync`: 0 when it succeeded, else 1.
    pub fn exit_code(&self) -> i32 {
        match self.outcome {
            SyncOutcome::Succeeded => 0,
            SyncOutcome::Failed | SyncOutcome::Refused => 1,
        }
    }
}

/// The outcome of a plan applied with `report` (`None`: refused, nothing applied).
pub fn outcome(plan: &Plan, report: Option<&ApplyReport>) -> SyncOutcome {
    match report {
        _ if plan.refusal.is_some() => SyncOutcome::Refused,
        Some(r) if r.refused.is_some() => SyncOutcome::Refused,
        Some(r) if r.succeeded() && plan.conflicts.is_empty() => SyncOutcome::Succeeded,
        _ => SyncOutcome::Failed,
    }
}

/// Applies `plan` (made from `loaded` and `observed`) through `workspace`, records the
/// sync, and ends the holds it ends.
pub async fn sync(
    workspace: &Workspace,
    loaded: &Loaded,
    observed: &ObservedState,
    plan: &Plan,
    options: &SyncOptions,
) -> Synced {
    let report = match &plan.refusal {
        Some(_) => None,
        None => {
            let apply_options = ApplyOptions {
                progress: options.progress,
                may_write: options.may_write.clone(),
                ..ApplyOptions::for_plan(&loaded.desired, observed, workspace.cluster.clone())
            };
            let mut report = apply::apply(plan, &workspace.registries, &apply_options).await;
            if let Some(started) = options.started {
                report.elapsed = started.elapsed();
            }
            tracing::debug!(
                requests = workspace.registries.request_count(),
                writes = workspace.registries.write_count(),
                "registry requests"
            );
            Some(report)
        }
    };
    let outcome = outcome(plan, report.as_ref());
    let summary = match (&report, &plan.refusal) {
        (Some(r), _) => r.summary(),
        (None, Some(r)) => format!("nothing synced: {r}"),
        (None, None) => String::new(),
    };
    let mut warnings = Warnings::new();
    let store = workspace.store();
    let entry = entry(
        &workspace.ctx.repo,
        loaded,
        options,
        outcome,
        summary.clone(),
    );
    let state = match record(&store, entry, options.collapse_repeats).await {
        Ok(state) => Some(state),
        Err(e) => {
            warnings.push(format!(
                "warning: cannot record the sync in {}: {e}",
                store.describe()
            ));
            None
        }
    };
    let state = match (outcome, options.release_holds) {
        (SyncOutcome::Succeeded, true) => {
            match release_synced(&store, options.channel.clone()).await {
                Ok(s) => Some(s),
                Err(e) => {
                    warnings.push(format!("warning: cannot update {}: {e}", store.describe()));
                    state
                }
            }
        }
        _ => state,
    };
    Synced {
        outcome,
        summary,
        report,
        state,
        warnings,
    }
}

/// The history entry of a sync of `loaded`: the commit's author and subject (empty, with a
/// log line, when they cannot be read).
pub fn entry(
    repo: &std::path::Path,
    loaded: &Loaded,
    options: &SyncOptions,
    outcome: SyncOutcome,
    summary: String,
) -> HistoryEntry {
    let (author, subject) = match git::commit_info(repo, &loaded.revision) {
        Ok(c) => (c.author, c.subject),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the synced commit's author");
            (String::new(), String::new())
        }
    };
    HistoryEntry {
        revision: loaded.revision.clone(),
        time: crate::state::now(),
        author,
        subject,
        kind: options.kind,
        channel: options.channel.clone(),
        outcome,
        summary,
    }
}

/// Records `entry` as the newest in the history (with `collapse_repeats`, replacing a
/// newest entry that failed the same way at the same revision).
pub async fn record(
    store: &StateStore,
    entry: HistoryEntry,
    collapse_repeats: bool,
) -> Result<SyncState, crate::state::StateError> {
    store
        .update(move |s| match collapse_repeats {
            true => s.record_repeat(entry.clone()),
            false => s.record(entry.clone()),
        })
        .await
}

/// Ends the holds a successful sync of the followed branch ends: every hold, or with
/// `channel`, that channel's.
pub async fn release_synced(
    store: &StateStore,
    channel: Option<String>,
) -> Result<SyncState, crate::state::StateError> {
    store
        .update(move |s| s.holds.retain(|h| !released_by(h, channel.as_deref())))
        .await
}

/// Whether a successful sync narrowed to `channel` (`None`: everything) ends `hold`.
pub fn released_by(hold: &crate::state::Hold, channel: Option<&str>) -> bool {
    channel.is_none() || hold.channel.as_deref() == channel
}
