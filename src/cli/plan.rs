//! `relsync plan`: the actions needed now. Reads targets only, never sources.

use super::{CliError, Context, PlanArgs, Settings};
use crate::observe::{self, ObserveOptions};
use crate::plan::{self, PlanOptions};
use crate::registry::Registries;
use crate::report;

/// Plans and prints; exit 0 in sync, 2 changes pending, 1 on a conflict or refusal.
pub fn run(settings: &Settings, args: &PlanArgs) -> Result<i32, CliError> {
    let ctx = Context::load(settings)?;
    let loaded = ctx.desired(settings, false)?;
    Context::check_channel(&loaded, args.channel.as_deref())?;
    let options = PlanOptions {
        prune: args.prune || ctx.config.sync.prune,
        allow_deletes: args.allow_deletes,
        channel: args.channel.clone(),
    };
    let registries = Registries::from_config(&ctx.config, &ctx.config_dir)?;
    let observe_options = ObserveOptions {
        resolve_unclaimed: options.prune,
    };
    let observed = super::runtime()?.block_on(observe::observe(
        &loaded.desired,
        &registries,
        &observe_options,
    ))?;
    let plan = plan::plan(
        &loaded.revision,
        &loaded.desired,
        &observed,
        &loaded.manifests.policy,
        &options,
    );
    print!(
        "{}",
        report::render_plan(&plan, args.output.into(), settings.style)
    );
    for c in &plan.conflicts {
        eprintln!(
            "error: {} tag {}: {} (Git wants {}, live is {})",
            c.target, c.tag, c.reason, c.desired, c.actual
        );
    }
    if let Some(refusal) = &plan.refusal {
        eprintln!("error: {refusal}");
    }
    tracing::debug!(requests = registries.request_count(), "registry requests");
    Ok(plan.exit_code())
}
