//! `relsync drift`: desired vs live, as a unified diff per target.

use super::planned::{self, PlanFlags};
use super::{CliError, DriftArgs, Settings};
use crate::plan;
use crate::report;

/// Reports drift; exit 0 in sync, 2 when any item counts (extras only with prune on).
pub fn run(settings: &Settings, args: &DriftArgs) -> Result<i32, CliError> {
    let flags = PlanFlags {
        prune: args.prune,
        allow_deletes: None,
        channel: args.channel.clone(),
        ..PlanFlags::default()
    };
    // Drift shows every live tag, claimed or not.
    let o = planned::observe_now(settings, &flags, true, &super::runtime()?)?;
    let drift = plan::drift(
        &o.loaded.revision,
        &o.loaded.desired,
        &o.observed,
        &o.options,
    );
    print!(
        "{}",
        report::render_drift(&drift, args.output.into(), settings.style)
    );
    Ok(if drift.in_sync() { 0 } else { 2 })
}
