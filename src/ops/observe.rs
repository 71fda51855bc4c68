//! The sequence `plan`, `drift`, `sync` and `rollback` share: read the desired state at the
//! revision, observe the targets (never the sources), plan. The requests themselves are
//! [`crate::observe`]'s, the adapter-facing reader; this module decides what to observe and
//! with which options.

use super::{Context, Loaded, OpsError, Settings, Warnings, Workspace};
use crate::desired::DesiredState;
use crate::observe::{self, ObserveOptions};
use crate::plan::{self, ObservedState, Plan, PlanOptions};

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
    /// Read the component lists of payload releases the cache does not have from their
    /// sources (`sync` and `rollback`; `plan` and `drift` read no source).
    pub read_payloads: bool,
}

/// The desired state at the revision and the live state of its targets.
#[derive(Debug)]
pub struct Observed {
    /// The repository, registries and cluster (reused to apply a plan).
    pub workspace: Workspace,
    /// The desired state at the revision.
    pub loaded: Loaded,
    /// The options the flags and the config make.
    pub options: PlanOptions,
    /// What the targets hold.
    pub observed: ObservedState,
}

/// A plan with what it was made from.
#[derive(Debug)]
pub struct Planned {
    /// The repository, registries and cluster (reused to apply the plan).
    pub workspace: Workspace,
    /// The desired state at the revision.
    pub loaded: Loaded,
    /// What the plan saw of the live state.
    pub observed: ObservedState,
    /// The plan.
    pub plan: Plan,
}

/// Observes what `desired` names through the workspace's adapters: the registries, and the
/// ImageStreams when the cluster is on. Tags nobody claims are resolved when
/// `resolve_unclaimed`.
pub async fn observe_targets(
    workspace: &Workspace,
    desired: &DesiredState,
    resolve_unclaimed: bool,
) -> Result<ObservedState, OpsError> {
    let options = ObserveOptions { resolve_unclaimed };
    let observed = observe::observe_all(
        desired,
        &workspace.registries,
        workspace.cluster.as_ref(),
        &options,
    )
    .await?;
    tracing::debug!(
        requests = workspace.registries.request_count(),
        "registry requests to observe"
    );
    Ok(observed)
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
    warnings: &mut Warnings,
) -> Result<Observed, OpsError> {
    let ctx = Context::load(settings)?;
    let mut loaded = ctx.desired_with(settings, false, flags.policies_at.as_deref(), warnings)?;
    Context::check_channel(&loaded, flags.channel.as_deref())?;
    let options = PlanOptions {
        prune: flags.prune || ctx.config.sync.prune,
        allow_deletes: flags.allow_deletes,
        channel: flags.channel.clone(),
    };
    let workspace = runtime.block_on(Workspace::connect(ctx))?;
    runtime.block_on(super::payload::prepare(
        &workspace,
        &mut loaded,
        flags.read_payloads,
        warnings,
    ));
    let observed = runtime.block_on(observe_targets(
        &workspace,
        &loaded.desired,
        resolve_unclaimed || options.prune,
    ))?;
    Ok(Observed {
        workspace,
        loaded,
        options,
        observed,
    })
}

/// [`observe_now`], then plans.
pub fn plan_now(
    settings: &Settings,
    flags: &PlanFlags,
    runtime: &tokio::runtime::Runtime,
    warnings: &mut Warnings,
) -> Result<Planned, OpsError> {
    let o = observe_now(settings, flags, false, runtime, warnings)?;
    let mut plan = plan::plan(
        &o.loaded.revision,
        &o.loaded.desired,
        &o.observed,
        &o.loaded.manifests.policy,
        &o.options,
    );
    // With signatures required, a release in place whose signature the target lacks is a
    // pending change too (drift state `unsigned`, which sync repairs).
    if o.loaded.manifests.policy.signatures.required() {
        plan.signatures =
            plan::unsigned_releases(&o.loaded.desired, &o.observed, o.options.channel.as_deref());
    }
    Ok(Planned {
        workspace: o.workspace,
        loaded: o.loaded,
        observed: o.observed,
        plan,
    })
}

/// The rollback holds in force for the revision `planned` read (made while the branch tip
/// was that commit): `serve` keeps their revision's state instead of applying the plan.
pub fn holds_in_force(
    planned: &Planned,
    runtime: &tokio::runtime::Runtime,
) -> Result<Vec<crate::store::Hold>, OpsError> {
    let ws = &planned.workspace;
    let store = crate::store::StateStore::new(&ws.ctx.config_dir, ws.cluster.clone());
    let state = runtime.block_on(store.load())?;
    Ok(state
        .holds
        .into_iter()
        .filter(|h| h.tip == planned.loaded.revision)
        .collect())
}

/// The plan's conflicts and refusal, one line each, for the front end to show.
pub fn problems(plan: &Plan) -> Vec<String> {
    let mut lines: Vec<String> = plan
        .conflicts
        .iter()
        .map(|c| {
            format!(
                "error: {} tag {}: {} (Git wants {}, live is {})",
                c.target, c.tag, c.reason, c.desired, c.actual
            )
        })
        .collect();
    if let Some(refusal) = &plan.refusal {
        lines.push(format!("error: {refusal}"));
    }
    lines
}
