//! `relsync rollback --to-revision REV [--channel N]`: sync the desired state of an earlier
//! revision (floating tags move back: action `rollback`), judged by the policies of the
//! branch tip, and record a hold with the branch tip at that moment, so that `serve` keeps
//! REV's state until the tip changes (the revert commit or a fix).

use super::planned::PlanFlags;
use super::sync::{state_store, sync};
use super::{CliError, Context, RollbackArgs, Settings};
use crate::git;
use crate::state::{EntryKind, Hold, SyncOutcome};

/// Rolls back; exit 0 when every action succeeded, 1 otherwise (a refused plan writes
/// nothing and records no hold).
pub fn run(settings: &Settings, args: &RollbackArgs) -> Result<i32, CliError> {
    let ctx = Context::load(settings)?;
    // The branch followed: `--revision` when given, else the config's.
    let branch = settings
        .revision
        .clone()
        .unwrap_or_else(|| ctx.config.git.revision.clone());
    let tip = git::commit_info(&ctx.repo, &branch)?;
    let target = git::commit_info(&ctx.repo, &args.to_revision)?;
    let at_target = Settings {
        revision: Some(target.sha.clone()),
        ..settings.clone()
    };
    let flags = PlanFlags {
        channel: args.channel.clone(),
        policies_at: Some(tip.sha.clone()),
        ..PlanFlags::default()
    };
    let synced = sync(&at_target, &flags, false, EntryKind::Rollback)?;
    let (Some(planned), Some(outcome)) = (&synced.planned, synced.outcome) else {
        return Ok(synced.code);
    };
    if outcome == SyncOutcome::Refused {
        return Ok(synced.code);
    }
    let hold = Hold {
        revision: target.sha.clone(),
        branch: branch.clone(),
        tip: tip.sha.clone(),
        channel: args.channel.clone(),
        time: crate::state::now(),
    };
    let store = state_store(planned);
    let runtime = super::runtime()?;
    runtime
        .block_on(store.update(|s| {
            s.release_moved(&tip.sha);
            s.hold(hold.clone());
        }))
        .map_err(|e| CliError::Usage(format!("rolled back, but cannot record the hold: {e}")))?;
    let scope = args
        .channel
        .as_ref()
        .map_or("every channel".to_string(), |c| format!("channel {c}"));
    eprintln!(
        "rolled back {scope} to {} ({}); held until {branch} moves from {} (recorded in {})",
        &target.sha[..12],
        target.subject,
        &tip.sha[..12],
        store.describe()
    );
    Ok(synced.code)
}
