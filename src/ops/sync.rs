//! A sync, once for `relsync sync`, `relsync rollback` and `serve`: apply the plan through
//! the workspace's adapters, decide its outcome, record it in the history, and end the
//! rollback holds a sync of the followed branch ends.
//!
//! - A refused plan writes nothing: outcome `refused`, summary `nothing synced: …`.
//! - Otherwise the outcome is `succeeded` when every action succeeded and no tag is in
//!   conflict, else `failed` (the other actions still ran).
//! - Every sync that gets as far as a plan is recorded. A failure to record is a warning:
//!   the sync itself is done.
//! - A sync with actions is recorded `interrupted` before its first write, and that entry
//!   is replaced by its outcome when it ends: a sync that never ends (`serve` abandons it
//!   at the end of its grace period, or the process dies) still shows in the history.
//! - A successful sync of the followed branch (no `--revision`) ends the rollback holds of
//!   what it synced: it is an explicit "follow Git again" (every hold, or with a channel,
//!   that channel's).

use std::time::Instant;

use super::{Loaded, Warnings, Workspace};
use crate::apply::{self, ApplyOptions, ApplyReport, WriteGuard};
use crate::git;
use crate::plan::{ObservedState, Plan};
use crate::store::{EntryKind, HistoryEntry, StateStore, SyncOutcome, SyncState};

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
            SyncOutcome::Failed | SyncOutcome::Refused | SyncOutcome::Interrupted => 1,
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
    let store = workspace.store();
    let writes = plan.refusal.is_none() && !plan.actions.is_empty();
    let started = entry(
        &workspace.ctx.repo,
        loaded,
        options,
        SyncOutcome::Interrupted,
        format!(
            "interrupted: the sync of {} actions began and did not finish (stopped at shutdown, or the process died); some may be written",
            plan.actions.len()
        ),
    );
    if writes {
        let placeholder = started.clone();
        if let Err(e) = store
            .update(move |s| s.record_started(placeholder.clone()))
            .await
        {
            // Recording the outcome below fails the same way, and warns.
            tracing::debug!(error = %e, "cannot record the sync as begun");
        }
    }
    let report = match &plan.refusal {
        Some(_) => None,
        None => {
            let apply_options = ApplyOptions {
                progress: options.progress,
                may_write: options.may_write.clone(),
                signatures: signature_requirement(&loaded.manifests.policy),
                repair_attached: if loaded.manifests.policy.signatures.required() {
                    unsigned_in_target(&loaded.desired, observed)
                } else {
                    Vec::new()
                },
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
    let entry = HistoryEntry {
        time: crate::store::now(),
        outcome,
        summary: summary.clone(),
        ..started.clone()
    };
    let collapse = options.collapse_repeats;
    let recorded = store
        .update(move |s| s.finish(&started, entry.clone(), collapse))
        .await;
    let state = match recorded {
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

/// The Policy's `signatures` as the apply needs them: `None` unless `require: true`.
pub fn signature_requirement(
    policy: &crate::manifest::Policy,
) -> Option<apply::SignatureRequirement> {
    policy
        .signatures
        .required()
        .then(|| apply::SignatureRequirement {
            keys: policy.signatures.trusted_keys(),
        })
}

/// The releases whose tags are as desired but whose digest has no signature in the target
/// (drift state `unsigned`; payload components never are): (target, digest, source), each
/// once.
pub fn unsigned_in_target(
    desired: &crate::desired::DesiredState,
    observed: &ObservedState,
) -> Vec<(String, crate::digest::Digest, String)> {
    crate::plan::unsigned_releases(desired, observed, None)
        .into_iter()
        .map(|u| (u.target, u.digest, u.source))
        .collect()
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
        time: crate::store::now(),
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
) -> Result<SyncState, crate::store::StateError> {
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
) -> Result<SyncState, crate::store::StateError> {
    store
        .update(move |s| s.holds.retain(|h| !released_by(h, channel.as_deref())))
        .await
}

/// Whether a successful sync narrowed to `channel` (`None`: everything) ends `hold`.
pub fn released_by(hold: &crate::store::Hold, channel: Option<&str>) -> bool {
    channel.is_none() || hold.channel.as_deref() == channel
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{example_repo, settings};
    use crate::ops::{Context, observe};
    use crate::plan::{self, PlanOptions, Refusal};
    use crate::store::Hold;

    fn hold(channel: Option<&str>) -> Hold {
        Hold {
            revision: "r".into(),
            branch: "HEAD".into(),
            tip: "t".into(),
            channel: channel.map(str::to_string),
            time: "now".into(),
        }
    }

    #[test]
    fn a_sync_of_everything_ends_every_hold_and_a_channel_s_only_its_own() {
        let (all, stable, next) = (hold(None), hold(Some("stable")), hold(Some("next")));
        for h in [&all, &stable, &next] {
            assert!(released_by(h, None));
        }
        assert!(released_by(&stable, Some("stable")));
        assert!(!released_by(&next, Some("stable")));
        assert!(
            !released_by(&all, Some("stable")),
            "a whole hold outlives a channel's sync"
        );
    }

    /// The example, loaded, observed and planned, with its workspace.
    async fn example() -> (tempfile::TempDir, Workspace, Loaded, ObservedState, Plan) {
        let (dir, _) = example_repo();
        let ctx = Context::load(&settings(dir.path())).unwrap();
        let mut warnings = Warnings::new();
        let loaded = ctx
            .desired(&settings(dir.path()), false, &mut warnings)
            .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let workspace = Workspace::connect(ctx).await.unwrap();
        let observed = observe::observe_targets(&workspace, &loaded.desired, false)
            .await
            .unwrap();
        let plan = plan::plan(
            &loaded.revision,
            &loaded.desired,
            &observed,
            &loaded.manifests.policy,
            &PlanOptions::default(),
        );
        assert!(!plan.actions.is_empty(), "the example starts out of sync");
        (dir, workspace, loaded, observed, plan)
    }

    #[tokio::test]
    async fn a_successful_sync_is_recorded_and_ends_the_holds_of_what_it_synced() {
        let (_dir, workspace, loaded, observed, plan) = example().await;
        let store = workspace.store();
        store
            .update(|s| {
                s.hold(hold(Some("4-scos-stable")));
                s.hold(hold(Some("4-scos-next")));
            })
            .await
            .unwrap();
        let options = SyncOptions {
            channel: Some("4-scos-stable".into()),
            release_holds: true,
            ..SyncOptions::new(EntryKind::Sync)
        };
        let synced = sync(&workspace, &loaded, &observed, &plan, &options).await;
        assert_eq!(synced.outcome, SyncOutcome::Succeeded, "{}", synced.summary);
        assert_eq!(synced.exit_code(), 0);
        assert!(synced.warnings.is_empty(), "{:?}", synced.warnings);
        assert!(
            synced.summary.starts_with("synced in "),
            "{}",
            synced.summary
        );
        let state = store.load().await.unwrap();
        assert_eq!(synced.state.as_ref(), Some(&state));
        assert_eq!(state.history.len(), 1);
        let entry = &state.history[0];
        assert_eq!(entry.revision, loaded.revision);
        assert_eq!(entry.author, "Test Author <author@example.org>");
        assert_eq!(entry.subject, "example");
        assert_eq!(entry.channel.as_deref(), Some("4-scos-stable"));
        assert_eq!(entry.outcome, SyncOutcome::Succeeded);
        let held: Vec<_> = state.holds.iter().map(|h| h.channel.as_deref()).collect();
        assert_eq!(
            held,
            [Some("4-scos-next")],
            "only the synced channel's hold ends"
        );

        // Synced: a new plan of the same desired state has nothing to do.
        let again = observe::observe_targets(&workspace, &loaded.desired, false)
            .await
            .unwrap();
        let replan = plan::plan(
            &loaded.revision,
            &loaded.desired,
            &again,
            &loaded.manifests.policy,
            &PlanOptions::default(),
        );
        assert!(replan.actions.is_empty(), "{:?}", replan.actions);
    }

    #[tokio::test]
    async fn a_refused_plan_writes_nothing_is_recorded_refused_and_ends_no_hold() {
        let (_dir, workspace, loaded, observed, mut plan) = example().await;
        plan.refusal = Some(Refusal::DeleteCap { deletes: 9, max: 1 });
        let store = workspace.store();
        store.update(|s| s.hold(hold(None))).await.unwrap();
        let options = SyncOptions {
            release_holds: true,
            collapse_repeats: true,
            ..SyncOptions::new(EntryKind::Sync)
        };
        let synced = sync(&workspace, &loaded, &observed, &plan, &options).await;
        assert_eq!(synced.outcome, SyncOutcome::Refused);
        assert_eq!(synced.exit_code(), 1);
        assert!(synced.report.is_none(), "nothing was applied");
        assert!(
            synced.summary.starts_with("nothing synced: "),
            "{}",
            synced.summary
        );
        assert_eq!(
            workspace.registries.write_count(),
            0,
            "a refused plan writes nothing"
        );
        // Nothing was written to the target layout either: it still plans the same.
        let again = observe::observe_targets(&workspace, &loaded.desired, false)
            .await
            .unwrap();
        assert_eq!(again, observed);
        // Recorded, and a repeat of the same refusal collapses into one entry.
        let synced = sync(&workspace, &loaded, &observed, &plan, &options).await;
        let state = synced.state.unwrap();
        assert_eq!(state.history.len(), 1, "a repeated refusal is one entry");
        assert_eq!(state.history[0].outcome, SyncOutcome::Refused);
        assert_eq!(state.holds.len(), 1, "a refused sync ends no hold");
    }

    #[test]
    fn the_outcome_is_refused_with_a_refusal_succeeded_on_a_clean_report_else_failed() {
        let mut plan = Plan {
            revision: "r".into(),
            actions: Vec::new(),
            conflicts: Vec::new(),
            refusal: None,
            signatures: Vec::new(),
        };
        let report = ApplyReport::default();
        assert_eq!(outcome(&plan, Some(&report)), SyncOutcome::Succeeded);
        plan.refusal = Some(Refusal::DeleteCap { deletes: 2, max: 1 });
        assert_eq!(outcome(&plan, None), SyncOutcome::Refused);
        plan.refusal = None;
        assert_eq!(outcome(&plan, None), SyncOutcome::Failed);
    }
}
