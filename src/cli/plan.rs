//! `relsync plan`: the actions needed now. Reads targets only, never sources.

use super::{CliError, PlanArgs, Settings, print_warnings};
use crate::ops::observe::{self, PlanFlags};
use crate::report;

/// Plans and prints; exit 0 in sync, 2 changes pending, 1 on a conflict or refusal.
pub fn run(settings: &Settings, args: &PlanArgs) -> Result<i32, CliError> {
    let flags = PlanFlags {
        prune: args.prune,
        allow_deletes: args.allow_deletes,
        channel: args.channel.clone(),
        ..PlanFlags::default()
    };
    let mut warnings = Vec::new();
    let planned = observe::plan_now(
        &settings.load,
        &flags,
        &crate::ops::runtime()?,
        &mut warnings,
    );
    print_warnings(&warnings);
    let planned = planned?;
    print!(
        "{}",
        report::render_plan(&planned.plan, args.output.into(), settings.style)
    );
    print_warnings(&observe::problems(&planned.plan));
    Ok(planned.plan.exit_code())
}
