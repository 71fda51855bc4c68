//! A rollback's hold (docs/reference.md, "Rollback"): `serve` keeps the held revision's desired
//! state while the branch tip is the one the hold recorded, and follows Git again once the
//! tip moves.
//!
//! The hold is recorded *before* the rollback's sync writes anything, so a running
//! controller cannot undo the rollback while it is being applied (or after, should
//! recording fail); it is taken back when the plan is refused or cannot be made, since
//! nothing was rolled back.

use super::{Context, OpsError, Warnings};
use crate::git::{self, CommitInfo};
use crate::store::{Hold, StateStore, SyncState};

/// What a rollback goes back to and what it holds.
#[derive(Debug, Clone)]
pub struct Rollback {
    /// The branch followed: `--revision` when given, else the config's `git.revision`.
    pub branch: String,
    /// Its tip now.
    pub tip: CommitInfo,
    /// The commit rolled back to.
    pub target: CommitInfo,
    /// The hold that keeps it.
    pub hold: Hold,
}

impl Rollback {
    /// Resolves the branch followed (`revision`, else the config's) and `to_revision`, and
    /// makes the hold of `channel` (`None`: every channel).
    pub fn resolve(
        ctx: &Context,
        revision: Option<&str>,
        to_revision: &str,
        channel: Option<String>,
    ) -> Result<Rollback, OpsError> {
        let branch = revision
            .map(str::to_string)
            .unwrap_or_else(|| ctx.config.git.revision.clone());
        let tip = git::commit_info(&ctx.repo, &branch)?;
        let target = git::commit_info(&ctx.repo, to_revision)?;
        let hold = Hold {
            revision: target.sha.clone(),
            branch: branch.clone(),
            tip: tip.sha.clone(),
            channel,
            time: crate::store::now(),
        };
        Ok(Rollback {
            branch,
            tip,
            target,
            hold,
        })
    }
}

/// Records `hold`, ending the holds made at another tip (the branch moved on since).
pub async fn hold(store: &StateStore, hold: &Hold) -> Result<SyncState, OpsError> {
    let held = hold.clone();
    Ok(store
        .update(move |s| {
            s.release_moved(&held.tip);
            s.hold(held.clone());
        })
        .await?)
}

/// Takes `hold` back (nothing was rolled back); a failure is a warning.
pub async fn take_back(store: &StateStore, hold: &Hold, warnings: &mut Warnings) {
    let hold = hold.clone();
    if let Err(e) = store.update(move |s| s.holds.retain(|h| h != &hold)).await {
        warnings.push(format!(
            "warning: cannot take back the hold in {}: {e}",
            store.describe()
        ));
    }
}

/// Ends the holds made at another tip than `tip` (the branch moved: the revert or a fix);
/// returns the state written, or `None` when no hold had to end.
pub async fn release_moved(
    store: &StateStore,
    state: &SyncState,
    tip: &str,
) -> Result<Option<SyncState>, OpsError> {
    if state.holds.iter().all(|h| h.tip == tip) {
        return Ok(None);
    }
    let tip = tip.to_string();
    Ok(Some(
        store.update(move |s| drop(s.release_moved(&tip))).await?,
    ))
}

/// The holds in force at `tip`: the revision held for every channel, if any, and the
/// channels held on their own with their revisions.
pub fn in_force(state: &SyncState, tip: &str) -> (Option<String>, Vec<(String, String)>) {
    let whole = state
        .holds
        .iter()
        .find(|h| h.channel.is_none() && h.tip == tip)
        .map(|h| h.revision.clone());
    let channels = state
        .holds
        .iter()
        .filter(|h| h.tip == tip)
        .filter_map(|h| h.channel.clone().map(|c| (c, h.revision.clone())))
        .collect();
    (whole, channels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{example_repo, git, settings};

    #[tokio::test]
    async fn a_hold_is_made_at_the_tip_replaces_older_ones_is_taken_back_and_ends_when_the_tip_moves()
     {
        let (dir, first) = example_repo();
        git(
            dir.path(),
            &["commit", "-q", "--allow-empty", "-m", "second"],
        );
        let second = git(dir.path(), &["rev-parse", "HEAD"]);
        let ctx = Context::load(&settings(dir.path())).unwrap();
        let store = StateStore::new(&ctx.config_dir, None);

        let rb = Rollback::resolve(&ctx, None, &first, Some("4-scos-stable".into())).unwrap();
        assert_eq!(rb.branch, "HEAD", "the config's revision is followed");
        assert_eq!(
            (rb.tip.sha.as_str(), rb.target.sha.as_str()),
            (&*second, &*first)
        );
        assert_eq!(rb.hold.tip, second);
        assert_eq!(rb.hold.revision, first);

        // A hold made at an older tip ends when a new one is made.
        let stale = Hold {
            tip: first.clone(),
            channel: None,
            ..rb.hold.clone()
        };
        store.update(move |s| s.hold(stale.clone())).await.unwrap();
        let state = hold(&store, &rb.hold).await.unwrap();
        assert_eq!(state.holds, std::slice::from_ref(&rb.hold));
        assert_eq!(
            in_force(&state, &second),
            (None, vec![("4-scos-stable".to_string(), first.clone())])
        );
        assert_eq!(in_force(&state, "elsewhere"), (None, vec![]));
        assert_eq!(release_moved(&store, &state, &second).await.unwrap(), None);

        // Taken back: nothing held.
        let mut warnings = Warnings::new();
        take_back(&store, &rb.hold, &mut warnings).await;
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(store.load().await.unwrap().holds.is_empty());

        // A whole hold, then the branch moves: it ends.
        let whole = Rollback::resolve(&ctx, None, &first, None).unwrap();
        let state = hold(&store, &whole.hold).await.unwrap();
        assert_eq!(in_force(&state, &second).0, Some(first.clone()));
        let released = release_moved(&store, &state, "a-new-tip").await.unwrap();
        assert!(released.is_some_and(|s| s.holds.is_empty()));
        assert!(store.load().await.unwrap().holds.is_empty());
    }
}
