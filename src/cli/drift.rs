//! `relsync drift`: desired vs live, as a unified diff per target.

use super::{CliError, Context, DriftArgs, Settings};
use crate::observe::{self, ObserveOptions};
use crate::plan::{self, PlanOptions};
use crate::registry::Registries;
use crate::report;

/// Reports drift; exit 0 in sync, 2 when any item counts (extras only with prune on).
pub fn run(settings: &Settings, args: &DriftArgs) -> Result<i32, CliError> {
    let ctx = Context::load(settings)?;
    let loaded = ctx.desired(settings, false)?;
    Context::check_channel(&loaded, args.channel.as_deref())?;
    let options = PlanOptions {
        prune: args.prune || ctx.config.sync.prune,
        allow_deletes: None,
        channel: args.channel.clone(),
    };
    let registries = Registries::from_config(&ctx.config, &ctx.config_dir)?;
    let observed = super::runtime()?.block_on(observe::observe(
        &loaded.desired,
        &registries,
        &ObserveOptions {
            resolve_unclaimed: true,
        },
    ))?;
    let drift = plan::drift(&loaded.revision, &loaded.desired, &observed, &options);
    print!(
        "{}",
        report::render_drift(&drift, args.output.into(), settings.style)
    );
    tracing::debug!(requests = registries.request_count(), "registry requests");
    Ok(if drift.in_sync() { 0 } else { 2 })
}
