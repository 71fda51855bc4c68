//! The sequence `plan` and `sync` share: read the desired state at the revision, observe
//! the targets (never the sources), plan.

use super::{CliError, Context, Settings, context::Loaded};
use crate::observe::{self, ObserveOptions};
use crate::plan::{self, Plan, PlanOptions};
use crate::registry::Registries;

/// The flags that shape a plan.
#[derive(Debug, Clone, Default)]
pub struct PlanFlags {
    /// `--prune` (or'ed with the config's `sync.prune`).
    pub prune: bool,
    /// `--allow-deletes N`.
    pub allow_deletes: Option<u32>,
    /// `--channel N`.
    pub channel: Option<String>,
}

/// A plan with what it was made from.
#[derive(Debug)]
pub struct Planned {
    /// The desired state at the revision.
    pub loaded: Loaded,
    /// The registry routes (reused to apply the plan).
    pub registries: Registries,
    /// The plan.
    pub plan: Plan,
}

/// Loads the committed desired state (warning on uncommitted changes), observes the
/// targets on `runtime`, and plans.
pub fn plan_now(
    settings: &Settings,
    flags: &PlanFlags,
    runtime: &tokio::runtime::Runtime,
) -> Result<Planned, CliError> {
    let ctx = Context::load(settings)?;
    let loaded = ctx.desired(settings, false)?;
    Context::check_channel(&loaded, flags.channel.as_deref())?;
    let options = PlanOptions {
        prune: flags.prune || ctx.config.sync.prune,
        allow_deletes: flags.allow_deletes,
        channel: flags.channel.clone(),
    };
    let registries = Registries::from_config(&ctx.config, &ctx.config_dir)?;
    let observe_options = ObserveOptions {
        resolve_unclaimed: options.prune,
    };
    let observed = runtime.block_on(observe::observe(
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
    tracing::debug!(
        requests = registries.request_count(),
        "registry requests to plan"
    );
    Ok(Planned {
        loaded,
        registries,
        plan,
    })
}

/// Prints the plan's conflicts and refusal on stderr, one line each.
pub fn print_problems(plan: &Plan) {
    for c in &plan.conflicts {
        eprintln!(
            "error: {} tag {}: {} (Git wants {}, live is {})",
            c.target, c.tag, c.reason, c.desired, c.actual
        );
    }
    if let Some(refusal) = &plan.refusal {
        eprintln!("error: {refusal}");
    }
}
