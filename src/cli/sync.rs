//! `relsync sync`: apply the plan. The only command (with `add`) that reads sources.

use std::io::IsTerminal;

use super::planned::{self, PlanFlags};
use super::{CliError, Settings, SyncArgs};
use crate::apply::{self, ApplyOptions, ImageStreamTargets};
use crate::report::{self, Format};

/// Plans, prints the plan, and applies it.
///
/// Exit codes: with `--dry-run`, those of `plan` (0 in sync, 2 pending, 1 on a conflict or
/// refusal), writing nothing. Otherwise 0 when every action succeeded and no tag is in
/// conflict; 1 when the plan is refused (nothing written), or any action failed, met a
/// conflict or a delete the registry cannot make safely (the other actions still ran), or
/// an immutable tag differs from Git.
pub fn run(settings: &Settings, args: &SyncArgs) -> Result<i32, CliError> {
    let started = std::time::Instant::now();
    let runtime = super::runtime()?;
    let flags = PlanFlags {
        prune: args.prune,
        allow_deletes: args.allow_deletes,
        channel: args.channel.clone(),
    };
    let planned = planned::plan_now(settings, &flags, &runtime)?;
    let plan = &planned.plan;
    print!(
        "{}",
        report::render_plan(plan, Format::Text, settings.style)
    );
    planned::print_problems(plan);
    if plan.refusal.is_some() {
        eprintln!("relsync: plan refused; nothing was written");
        return Ok(1);
    }
    if args.dry_run {
        return Ok(plan.exit_code());
    }

    let options = ApplyOptions {
        progress: std::io::stderr().is_terminal(),
        sources: apply::content_sources(&planned.loaded.desired),
        image_streams: planned.cluster.clone().map(|cluster| ImageStreamTargets {
            cluster,
            desired: planned.loaded.desired.image_streams.clone(),
            observed: planned.observed.image_streams.clone().unwrap_or_default(),
        }),
        ..ApplyOptions::default()
    };
    let mut report = runtime.block_on(apply::apply(plan, &planned.registries, &options));
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
    Ok(if report.succeeded() && plan.conflicts.is_empty() {
        0
    } else {
        1
    })
}
