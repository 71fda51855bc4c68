//! `relsync sync`: apply the plan. The only command (with `add`) that reads sources.
//!
//! Every sync that gets as far as a plan (not `--dry-run`) is recorded in the sync history
//! ([`crate::state`]). A successful sync of the followed branch (no `--revision`) ends the
//! rollback holds of what it synced: it is an explicit "follow Git again".

use std::io::IsTerminal;

use super::planned::{self, PlanFlags, Planned};
use super::{CliError, Settings, SyncArgs};
use crate::apply::{self, ApplyOptions, ApplyReport};
use crate::git;
use crate::report::{self, Format};
use crate::state::{EntryKind, HistoryEntry, StateStore, SyncOutcome};

/// Plans, prints the plan, and applies it.
///
/// Exit codes: with `--dry-run`, those of `plan` (0 in sync, 2 pending, 1 on a conflict or
/// refusal), writing nothing. Otherwise 0 when every action succeeded and no tag is in
/// conflict; 1 when the plan is refused (nothing written), or any action failed, met a
/// conflict or a delete the registry cannot make safely (the other actions still ran), or
/// an immutable tag differs from Git.
pub fn run(settings: &Settings, args: &SyncArgs) -> Result<i32, CliError> {
    let flags = PlanFlags {
        prune: args.prune,
        allow_deletes: args.allow_deletes,
        channel: args.channel.clone(),
        ..PlanFlags::default()
    };
    let synced = sync(settings, &flags, args.dry_run, EntryKind::Sync)?;
    if let Some(planned) = &synced.planned
        && synced.outcome == Some(SyncOutcome::Succeeded)
        && settings.revision.is_none()
    {
        let channel = args.channel.clone();
        let runtime = super::runtime()?;
        let store = state_store(planned);
        let released = runtime.block_on(store.update(move |s| {
            s.holds
                .retain(|h| channel.is_some() && h.channel != channel);
        }));
        if let Err(e) = released {
            eprintln!("warning: cannot update {}: {e}", store.describe());
        }
    }
    Ok(synced.code)
}

/// What [`sync`] did.
pub(super) struct Synced {
    /// The exit code.
    pub code: i32,
    /// The plan and what it was made from (`None` only if planning failed).
    pub planned: Option<Planned>,
    /// How it ended (`None` for a dry run).
    pub outcome: Option<SyncOutcome>,
}

/// The state store of a planned run: the ConfigMap with the cluster on, else the file
/// beside relsync.yaml.
pub(super) fn state_store(planned: &Planned) -> StateStore {
    StateStore::new(&planned.ctx.config_dir, planned.cluster.clone())
}

/// Plans with `flags`, prints the plan, applies it (unless `dry_run`), and records the
/// run in the history as `kind`.
pub(super) fn sync(
    settings: &Settings,
    flags: &PlanFlags,
    dry_run: bool,
    kind: EntryKind,
) -> Result<Synced, CliError> {
    let started = std::time::Instant::now();
    let runtime = super::runtime()?;
    let planned = planned::plan_now(settings, flags, &runtime)?;
    let plan = &planned.plan;
    print!(
        "{}",
        report::render_plan(plan, Format::Text, settings.style)
    );
    planned::print_problems(plan);
    if dry_run {
        if plan.refusal.is_some() {
            eprintln!("relsync: plan refused; nothing would be written");
        }
        return Ok(Synced {
            code: plan.exit_code(),
            planned: Some(planned),
            outcome: None,
        });
    }
    let (code, outcome, summary) = if plan.refusal.is_some() {
        eprintln!("relsync: plan refused; nothing was written");
        let summary = plan
            .refusal
            .as_ref()
            .map(|r| format!("nothing synced: {r}"))
            .unwrap_or_default();
        (1, SyncOutcome::Refused, summary)
    } else {
        let report = apply_planned(&planned, &runtime, started);
        let ok = report.succeeded() && plan.conflicts.is_empty();
        let outcome = if ok {
            SyncOutcome::Succeeded
        } else {
            SyncOutcome::Failed
        };
        (if ok { 0 } else { 1 }, outcome, report.summary())
    };
    record(&planned, &runtime, kind, flags, outcome, summary);
    Ok(Synced {
        code,
        planned: Some(planned),
        outcome: Some(outcome),
    })
}

/// Applies the plan, printing each problem and the summary line.
fn apply_planned(
    planned: &Planned,
    runtime: &tokio::runtime::Runtime,
    started: std::time::Instant,
) -> ApplyReport {
    let options = ApplyOptions {
        progress: std::io::stderr().is_terminal(),
        ..ApplyOptions::for_plan(
            &planned.loaded.desired,
            &planned.observed,
            planned.cluster.clone(),
        )
    };
    let mut report = runtime.block_on(apply::apply(&planned.plan, &planned.registries, &options));
    // The summary's duration is the whole command's: reading Git, observing, planning too.
    report.elapsed = started.elapsed();
    for problem in report.problems() {
        eprintln!("{problem}");
    }
    eprintln!("{}", report.summary());
    tracing::debug!(
        requests = planned.registries.request_count(),
        writes = planned.registries.write_count(),
        "registry requests"
    );
    report
}

/// Records the run in the sync history; a failure to record is a warning (the sync itself
/// is done).
fn record(
    planned: &Planned,
    runtime: &tokio::runtime::Runtime,
    kind: EntryKind,
    flags: &PlanFlags,
    outcome: SyncOutcome,
    summary: String,
) {
    let revision = &planned.loaded.revision;
    let commit = git::commit_info(&planned.ctx.repo, revision);
    let (author, subject) = match commit {
        Ok(c) => (c.author, c.subject),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the synced commit's author");
            (String::new(), String::new())
        }
    };
    let entry = HistoryEntry {
        revision: revision.clone(),
        time: crate::state::now(),
        author,
        subject,
        kind,
        channel: flags.channel.clone(),
        outcome,
        summary,
    };
    let store = state_store(planned);
    if let Err(e) = runtime.block_on(store.update(move |s| s.record(entry.clone()))) {
        eprintln!(
            "warning: cannot record the sync in {}: {e}",
            store.describe()
        );
    }
}
