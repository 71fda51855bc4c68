//! `relsync rollback --to-revision REV [--channel N]`: sync the desired state of an earlier
//! revision (floating tags move back: action `rollback`), judged by the policies of the
//! branch tip, holding it with the branch tip at that moment, so that `serve` keeps REV's
//! state until the tip changes (the revert commit or a fix).
//!
//! The hold is recorded *before* the sync writes anything, so a running controller cannot
//! undo the rollback while it is being applied (or after, should recording fail); it is
//! taken back when the plan is refused or cannot be made, since nothing was rolled back.

use super::planned::PlanFlags;
use super::sync::sync;
use super::{CliError, Context, RollbackArgs, Settings};
use crate::cluster::Cluster;
use crate::git;
use crate::state::{EntryKind, Hold, StateStore, SyncOutcome};

/// Rolls back; exit 0 when every action succeeded, 1 otherwise (a refused plan writes
/// nothing and leaves no hold).
pub fn run(settings: &Settings, args: &RollbackArgs) -> Result<i32, CliError> {
    let ctx = Context::load(settings)?;
    // The branch followed: `--revision` when given, else the config's.
    let branch = settings
        .revision
        .clone()
        .unwrap_or_else(|| ctx.config.git.revision.clone());
    let tip = git::commit_info(&ctx.repo, &branch)?;
    let target = git::commit_info(&ctx.repo, &args.to_revision)?;
    let runtime = super::runtime()?;
    let cluster = match ctx.config.cluster.enabled {
        true => Some(runtime.block_on(Cluster::connect())?),
        false => None,
    };
    let store = StateStore::new(&ctx.config_dir, cluster);
    let hold = Hold {
        revision: target.sha.clone(),
        branch: branch.clone(),
        tip: tip.sha.clone(),
        channel: args.channel.clone(),
        time: crate::state::now(),
    };
    let (tip_sha, held) = (tip.sha.clone(), hold.clone());
    runtime.block_on(store.update(move |s| {
        s.release_moved(&tip_sha);
        s.hold(held.clone());
    }))?;
    let take_back = || {
        let hold = hold.clone();
        if let Err(e) = runtime.block_on(store.update(move |s| s.holds.retain(|h| h != &hold))) {
            eprintln!(
                "warning: cannot take back the hold in {}: {e}",
                store.describe()
            );
        }
    };

    let at_target = Settings {
        revision: Some(target.sha.clone()),
        ..settings.clone()
    };
    let flags = PlanFlags {
        channel: args.channel.clone(),
        policies_at: Some(tip.sha.clone()),
        ..PlanFlags::default()
    };
    let synced = match sync(&at_target, &flags, false, EntryKind::Rollback) {
        Ok(s) => s,
        Err(e) => {
            take_back();
            return Err(e);
        }
    };
    if synced.outcome == Some(SyncOutcome::Refused) {
        take_back();
        return Ok(synced.code);
    }
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
