//! `relsync rollback --to-revision REV [--channel N]`: sync the desired state of an earlier
//! revision (floating tags move back: action `rollback`), judged by the policies of the
//! branch tip, holding it with the branch tip at that moment, so that `serve` keeps REV's
//! state until the tip changes (the revert commit or a fix). The hold is
//! [`crate::ops::rollback`]'s; the sync [`super::sync`]'s.

use super::sync::sync;
use super::{CliError, RollbackArgs, Settings, print_warnings};
use crate::ops::observe::PlanFlags;
use crate::ops::rollback::{self, Rollback};
use crate::ops::{Context, connect_cluster};
use crate::revision::short_revision;
use crate::store::{EntryKind, StateStore, SyncOutcome};

/// Rolls back; exit 0 when every action succeeded, 1 otherwise (a refused plan writes
/// nothing and leaves no hold).
pub fn run(settings: &Settings, args: &RollbackArgs) -> Result<i32, CliError> {
    let ctx = Context::load(&settings.load)?;
    let rb = Rollback::resolve(
        &ctx,
        settings.load.revision.as_deref(),
        &args.to_revision,
        args.channel.clone(),
    )?;
    let runtime = crate::ops::runtime()?;
    let cluster = runtime.block_on(connect_cluster(&ctx))?;
    let store = StateStore::new(&ctx.config_dir, cluster);
    runtime.block_on(rollback::hold(&store, &rb.hold))?;
    let take_back = || {
        let mut warnings = Vec::new();
        runtime.block_on(rollback::take_back(&store, &rb.hold, &mut warnings));
        print_warnings(&warnings);
    };

    let at_target = Settings {
        load: crate::ops::Settings {
            revision: Some(rb.target.sha.clone()),
            ..settings.load.clone()
        },
        ..settings.clone()
    };
    let flags = PlanFlags {
        channel: args.channel.clone(),
        policies_at: Some(rb.tip.sha.clone()),
        ..PlanFlags::default()
    };
    let synced = match sync(&at_target, &flags, false, EntryKind::Rollback, false) {
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
        "rolled back {scope} to {} ({}); held until {} moves from {} (recorded in {})",
        short_revision(&rb.target.sha),
        rb.target.subject,
        rb.branch,
        short_revision(&rb.tip.sha),
        store.describe()
    );
    Ok(synced.code)
}
