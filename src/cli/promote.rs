//! `relsync promote VERSION --to CHANNEL [--commit]`: add a version to a channel's
//! `versions` in the working tree, at its place in the stream's order, keeping comments and
//! layout (a text edit, then a re-parse to verify).
//!
//! Exit 0 when promoted, or when the channel already lists VERSION (a note says so; nothing
//! is written and no branch is made, so re-running a promotion is harmless). Exit 1,
//! writing nothing, when VERSION is not a release of the channel's stream, is tombstoned in
//! the channel (un-tombstoning is a deliberate, separate edit), has not been in the feeder
//! channel on HEAD's branch for the feeder's delay (measured from the committer time of the
//! first first-parent commit listing it; a shallow clone is an error), or when the edited
//! manifests break a policy (`channelSubsets`, a tie) or would move an `immutableTags` tag.
//!
//! With `--commit`, the edit is committed on a new branch `promote/<channel>/<version>`
//! made from HEAD, which is then checked out like `git switch -c`; the commit holds only the
//! channel file. Refused when that file has uncommitted changes or the branch exists.

use std::time::{SystemTime, UNIX_EPOCH};

use super::add::{edit_error, load_worktree, write};
use super::{CliError, Context, PromoteArgs, Settings};
use crate::desired::{self, DesiredState};
use crate::git::{self, history};
use crate::manifest::edit::{self, Change};
use crate::manifest::{self, Policy};
use crate::report;

/// Runs `promote`.
pub fn run(settings: &Settings, args: &PromoteArgs) -> Result<i32, CliError> {
    if let Some(rev) = &settings.revision {
        return Err(CliError::Usage(format!(
            "--revision {rev}: `promote` edits the working tree; it reads no other revision"
        )));
    }
    let ctx = Context::load(settings)?;
    let (files, before) = load_worktree(&ctx)?;
    let version = args.version.as_str();
    let name = args.to.as_str();
    let Some(channel) = before.channels.get(name) else {
        let known: Vec<&str> = before.channels.keys().map(String::as_str).collect();
        return Err(CliError::Refused(format!(
            "no channel `{name}` (channels: {})",
            known.join(", ")
        )));
    };
    let stream_name = channel.stream.value.as_str();
    let Some(release) = before
        .streams
        .get(stream_name)
        .and_then(|s| s.releases.iter().find(|r| r.version.value == version))
    else {
        return Err(CliError::Refused(format!(
            "{version} is not a release of stream {stream_name}, which channel {name} follows (add it first: relsync add {version} --stream {stream_name} --from <tag>)"
        )));
    };
    if let Some(t) = channel.tombstones.iter().find(|t| t.value == version) {
        return Err(CliError::Refused(format!(
            "{}: {version} is tombstoned in channel {name}; remove the tombstone first (un-tombstoning is a deliberate, separate edit)",
            t.span
        )));
    }
    if let Some(v) = channel.versions.iter().find(|v| v.value == version) {
        println!("{version} is already in {name} ({}); nothing to do", v.span);
        return Ok(0);
    }
    let dirs = [
        ctx.config.git.path.as_str(),
        ctx.config.git.policies.as_str(),
    ];
    if let Some(feeder) = &channel.feeder {
        check_feeder(
            &ctx,
            &dirs,
            name,
            &feeder.channel.value,
            feeder.delay_seconds,
            version,
        )?;
    }
    let path = channel.name.span.file.to_string();
    let branch = format!("promote/{name}/{version}");
    if args.commit {
        history::check_commit(&ctx.repo, &branch, &path).map_err(commit_error)?;
    }

    let edited = edit::edit(
        &files,
        &ctx.config.git.policies,
        &before,
        Change::Promote {
            channel: name,
            version,
        },
        desired::load,
    )
    .map_err(edit_error)?;
    let old = desired::derive(&before).map_err(CliError::Invalid)?;
    let new = desired::derive(&edited.manifests).map_err(CliError::Invalid)?;
    if let Some(problem) = moved_immutable(&old, &new, &edited.manifests.policy) {
        return Err(CliError::Refused(format!(
            "promoting {version} to {name} would {problem}; nothing was written"
        )));
    }

    let at = format!("{}:{}", edited.path, edited.line);
    if args.commit {
        let message = format!(
            "promote({name}): {version}\n\nAdd {version} of stream {stream_name} ({}) to channel {name}.\n",
            release.digest.value
        );
        let commit = history::commit_on_new_branch(
            &ctx.repo,
            &branch,
            &edited.path,
            edited.contents.as_bytes(),
            &message,
        )
        .map_err(commit_error)?;
        println!(
            "promoted {version} to {name} ({at}), committed {} on branch {branch}",
            &commit[..12.min(commit.len())]
        );
    } else {
        write(&ctx, &edited)?;
        println!("promoted {version} to {name} ({at})");
    }
    Ok(0)
}

fn commit_error(e: history::CommitError) -> CliError {
    match e {
        history::CommitError::Git(g) => CliError::Git(g),
        other => CliError::Refused(other.to_string()),
    }
}

/// The feeder rule on HEAD's branch: `version` is in `feeder`'s published versions at HEAD,
/// and has been since the committer time of the first first-parent commit listing it, at
/// least `delay` seconds ago.
fn check_feeder(
    ctx: &Context,
    dirs: &[&str],
    channel: &str,
    feeder: &str,
    delay: u64,
    version: &str,
) -> Result<(), CliError> {
    let policies = ctx.config.git.policies.as_str();
    let lists = |files: &[manifest::SourceFile]| {
        desired::load(files, policies).is_ok_and(|m| {
            m.channels
                .get(feeder)
                .is_some_and(|c| c.published().any(|v| v.value == version))
        })
    };
    let branch = history::head_branch(&ctx.repo)?
        .map(|b| format!("branch {b}"))
        .unwrap_or_else(|| "detached HEAD".to_string());
    let first = history::first_first_parent_commit(&ctx.repo, "HEAD", dirs, lists).map_err(
        |e| match e {
            history::HistoryError::Git(g) => CliError::Git(g),
            other => CliError::Refused(other.to_string()),
        },
    )?;
    let head = git::read_revision(&ctx.repo, "HEAD", dirs)?;
    let (Some(first), true) = (first, lists(&head.files)) else {
        return Err(CliError::Refused(format!(
            "{version} is not in channel {feeder} on {branch} (committed), and channel {channel} is fed by {feeder}: promote it to {feeder} first"
        )));
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let elapsed = now.saturating_sub(first.committer_time).max(0) as u64;
    if elapsed < delay {
        return Err(CliError::Refused(format!(
            "{version} entered channel {feeder} in commit {} on {branch} {} ago; channel {channel} requires {} in {feeder} ({} to go)",
            &first.commit[..12.min(first.commit.len())],
            report::check::duration(elapsed),
            report::check::duration(delay),
            report::check::duration(delay - elapsed)
        )));
    }
    Ok(())
}

/// The first tag matching `immutableTags` that holds one digest before the edit and
/// another after it, described.
fn moved_immutable(old: &DesiredState, new: &DesiredState, policy: &Policy) -> Option<String> {
    for (repo, before) in &old.repos {
        let Some(after) = new.repos.get(repo) else {
            continue;
        };
        for (tag, b) in &before.tags {
            if let Some(a) = after.tags.get(tag)
                && a.digest != b.digest
                && policy.is_immutable(tag)
            {
                return Some(format!(
                    "move immutable tag {repo}:{tag} from {} ({}) to {} ({}) (policy immutableTags)",
                    b.version, b.digest, a.version, a.digest
                ));
            }
        }
    }
    None
}
