//! `relsync drift`: desired vs live, as a unified diff per target.

use super::{CliError, DriftArgs, Settings, print_warnings};
use crate::ops::observe::{self, PlanFlags};
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
    let mut warnings = Vec::new();
    let observed = observe::observe_now(
        &settings.load,
        &flags,
        true,
        &crate::ops::runtime()?,
        &mut warnings,
    );
    print_warnings(&warnings);
    let o = observed?;
    let mut drift = plan::drift(
        &o.loaded.revision,
        &o.loaded.desired,
        &o.observed,
        &o.options,
    );
    if o.loaded.manifests.policy.signatures.required() {
        plan::mark_unsigned(&mut drift, &o.observed);
    }
    print!(
        "{}",
        report::render_drift(&drift, args.output.into(), settings.style)
    );
    Ok(if drift.in_sync() { 0 } else { 2 })
}
