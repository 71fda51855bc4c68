//! The sequence `plan` and `sync` share: read the desired state at the revision, observe
//! the targets (never the sources), plan.

use super::{CliError, Context, Settings, context::Loaded};
use crate::cluster::Cluster;
use crate::observe::{self, ObserveOptions};
use crate::plan::{self, ObservedState, Plan, PlanOptions};
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
    /// Judge with the policies at this revision instead of the desired state's own
    /// (`rollback`: the policies of the branch tip still apply).
    pub policies_at: Option<String>,
}

/// A plan with what it was made from.
#[derive(Debug)]
pub struct Planned {
    /// The config and repository.
    pub ctx: Context,
    /// The desired state at the revision.
    pub loaded: Loaded,
    /// The registry routes (reused to apply the plan).
    pub registries: Registries,
    /// The cluster, when `cluster.enabled` (reused to apply the plan).
    pub cluster: Option<Cluster>,
    /// What the plan saw of the live state.
    pub observed: ObservedState,
    /// The plan.
    pub plan: Plan,
}

/// The desired state at the revision and the live state of its targets.
#[derive(Debug)]
pub struct Observed {
    /// The config and repository.
    pub ctx: Context,
    /// The desired state at the revision.
    pub loaded: Loaded,
    /// The registry routes (reused to apply a plan).
    pub registries: Registries,
    /// The cluster, when `cluster.enabled` (reused to apply a plan).
    pub cluster: Option<Cluster>,
    /// The options the flags and the config make.
    pub options: PlanOptions,
    /// What the targets hold.
    pub observed: ObservedState,
}

/// Loads the committed desired state (warning on uncommitted changes) and observes the
/// targets on `runtime`: the registries, and the ImageStreams Git names when
/// `cluster.enabled` (else the cluster is not contacted at all). Tags nobody claims are
/// resolved when `resolve_unclaimed` (drift) or prune is on.
pub fn observe_now(
    settings: &Settings,
    flags: &PlanFlags,
    resolve_unclaimed: bool,
    runtime: &tokio::runtime::Runtime,
) -> Result<Observed, CliError> {
    let ctx = Context::load(settings)?;
    let loaded = ctx.desired_with(settings, false, flags.policies_at.as_deref())?;
    Context::check_channel(&loaded, flags.channel.as_deref())?;
    let options = PlanOptions {
        prune: flags.prune || ctx.config.sync.prune,
        allow_deletes: flags.allow_deletes,
        channel: flags.channel.clone(),
    };
    let registries = Registries::from_config(&ctx.config, &ctx.config_dir)?;
    let observe_options = ObserveOptions {
        resolve_unclaimed: resolve_unclaimed || options.prune,
    };
    let cluster = match ctx.config.cluster.enabled {
        true => Some(runtime.block_on(Cluster::connect())?),
        false => None,
    };
    let observed = runtime.block_on(observe::observe_all(
        &loaded.desired,
        &registries,
        cluster.as_ref(),
        &observe_options,
    ))?;
    tracing::debug!(
        requests = registries.request_count(),
        "registry requests to observe"
    );
    Ok(Observed {
        ctx,
        loaded,
        registries,
        cluster,
        options,
        observed,
    })
}

/// [`observe_now`], then plans.
pub fn plan_now(
    settings: &Settings,
    flags: &PlanFlags,
    runtime: &tokio::runtime::Runtime,
) -> Result<Planned, CliError> {
    let o = observe_now(settings, flags, false, runtime)?;
    let plan = plan::plan(
        &o.loaded.revision,
        &o.loaded.desired,
        &o.observed,
        &o.loaded.manifests.policy,
        &o.options,
    );
    Ok(Planned {
        ctx: o.ctx,
        loaded: o.loaded,
        registries: o.registries,
        cluster: o.cluster,
        observed: o.observed,
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
