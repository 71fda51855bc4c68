//! `relsync plan`: the actions needed now. Reads targets only, never sources.

use super::{CliError, PlanArgs, Settings, print_warnings};
use crate::ops::observe::{self, PlanFlags};
use crate::report;
use crate::revision::short_revision;
use crate::store::Hold;

/// Plans and prints; exit 0 in sync, 2 changes pending, 1 on a conflict or refusal.
pub fn run(settings: &Settings, args: &PlanArgs) -> Result<i32, CliError> {
    let flags = PlanFlags {
        prune: args.prune,
        allow_deletes: args.allow_deletes,
        channel: args.channel.clone(),
        ..PlanFlags::default()
    };
    let mut warnings = Vec::new();
    let runtime = crate::ops::runtime()?;
    let planned = observe::plan_now(&settings.load, &flags, &runtime, &mut warnings);
    print_warnings(&warnings);
    let planned = planned?;
    print!(
        "{}",
        report::render_plan(&planned.plan, args.output.into(), settings.style)
    );
    print_warnings(&observe::problems(&planned.plan));
    if !planned.plan.actions.is_empty() {
        match observe::holds_in_force(&planned, &runtime) {
            Ok(holds) => print_warnings(&holds.iter().map(hold_note).collect::<Vec<_>>()),
            Err(e) => eprintln!("warning: cannot read the rollback holds: {e}"),
        }
    }
    Ok(planned.plan.exit_code())
}

/// What a rollback hold does to the plan just printed: `serve` keeps the pending changes
/// (of the held scope) away until the branch moves.
fn hold_note(h: &Hold) -> String {
    let scope = h
        .channel
        .as_ref()
        .map_or("every channel".to_string(), |c| format!("channel {c}"));
    format!(
        "note: a rollback hold keeps {scope} at {} (rollback at {}) while {} is at {}: serve does not apply the pending changes of {scope} until {} moves; `relsync sync` applies them and ends the hold",
        short_revision(&h.revision),
        h.time,
        h.branch,
        short_revision(&h.tip),
        h.branch
    )
}
