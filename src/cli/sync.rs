//! `relsync sync`: apply the plan. The only command (with `add`) that reads sources.
//!
//! The sync itself, its history entry and the holds it ends are [`crate::ops::sync`]'s;
//! this module prints the plan, the problems and the summary.

use std::io::IsTerminal;

use super::{CliError, Settings, SyncArgs, print_warnings};
use crate::ops::observe::{self, PlanFlags, Planned};
use crate::ops::sync::{self as ops_sync, SyncOptions};
use crate::report::{self, Format};
use crate::store::{EntryKind, SyncOutcome};

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
    // A sync of the followed branch ends the holds of what it synced.
    let release_holds = settings.load.revision.is_none();
    let synced = sync(
        settings,
        &flags,
        args.dry_run,
        EntryKind::Sync,
        release_holds,
    )?;
    Ok(synced.code)
}

/// What [`sync`] did.
pub(super) struct Synced {
    /// The exit code.
    pub code: i32,
    /// How it ended (`None` for a dry run).
    pub outcome: Option<SyncOutcome>,
}

/// Plans with `flags`, prints the plan, applies it (unless `dry_run`), and records the
/// run in the history as `kind`.
pub(super) fn sync(
    settings: &Settings,
    flags: &PlanFlags,
    dry_run: bool,
    kind: EntryKind,
    release_holds: bool,
) -> Result<Synced, CliError> {
    let started = std::time::Instant::now();
    let runtime = crate::ops::runtime()?;
    let mut warnings = Vec::new();
    // A sync reads the component lists of payload releases it does not know yet.
    let flags = &PlanFlags {
        read_payloads: true,
        ..flags.clone()
    };
    let planned = observe::plan_now(&settings.load, flags, &runtime, &mut warnings);
    print_warnings(&warnings);
    let planned: Planned = planned?;
    let plan = &planned.plan;
    print!(
        "{}",
        report::render_plan(plan, Format::Text, settings.style)
    );
    print_warnings(&observe::problems(plan));
    if dry_run {
        if plan.refusal.is_some() {
            eprintln!("relsync: plan refused; nothing would be written");
        }
        // A refused payload release would not be tagged: a problem of the live state.
        let refused = &planned.loaded.desired.payloads.refused;
        for why in refused.values() {
            eprintln!("error: payload refused: {why}; its tags would not be written");
        }
        let code = match plan.exit_code() {
            0 | 2 if !refused.is_empty() => 1,
            code => code,
        };
        return Ok(Synced {
            code,
            outcome: None,
        });
    }
    if plan.refusal.is_some() {
        eprintln!("relsync: plan refused; nothing was written");
    }
    let options = SyncOptions {
        channel: flags.channel.clone(),
        release_holds,
        progress: std::io::stderr().is_terminal(),
        started: Some(started),
        ..SyncOptions::new(kind)
    };
    let synced = runtime.block_on(ops_sync::sync(
        &planned.workspace,
        &planned.loaded,
        &planned.observed,
        plan,
        &options,
    ));
    if let Some(report) = &synced.report {
        for problem in report.problems() {
            eprintln!("{problem}");
        }
        eprintln!("{}", report.summary());
    }
    print_warnings(&synced.warnings);
    Ok(Synced {
        code: synced.exit_code(),
        outcome: Some(synced.outcome),
    })
}
