//! `relsync plan`: the actions needed now. Reads targets only, never sources.

use super::planned::{self, PlanFlags};
use super::{CliError, PlanArgs, Settings};
use crate::report;

/// Plans and prints; exit 0 in sync, 2 changes pending, 1 on a conflict or refusal.
pub fn run(settings: &Settings, args: &PlanArgs) -> Result<i32, CliError> {
    let flags = PlanFlags {
        prune: args.prune,
        allow_deletes: args.allow_deletes,
        channel: args.channel.clone(),
        ..PlanFlags::default()
    };
    let planned = planned::plan_now(settings, &flags, &super::runtime()?)?;
    print!(
        "{}",
        report::render_plan(&planned.plan, args.output.into(), settings.style)
    );
    planned::print_problems(&planned.plan);
    Ok(planned.plan.exit_code())
}
