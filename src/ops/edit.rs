//! The working-tree edits: `add` and `promote`.
//!
//! **add** resolves REF (a tag or a digest in the stream's source repository) to a digest
//! and adds the release to the stream file in the working tree, in the style of its
//! neighbours (how a new nightly enters Git). Nothing to do when the stream already has
//! VERSION with the digest REF resolves to (like `git add` of an unchanged file); refused,
//! writing nothing, when VERSION is already there with another digest, REF is not in the
//! source, VERSION is not a valid version under the stream's order, the stream's source is
//! not allowed by `allowedSources`, or the manifests are invalid before or after the edit.
//!
//! **promote** adds a version to a channel's `versions` in the working tree, at its place in
//! the stream's order, keeping comments and layout (a text edit, then a re-parse to verify).
//! Nothing to do when the channel already lists VERSION (nothing is written and no branch is
//! made, so re-running a promotion is harmless). Refused, writing nothing, when VERSION is
//! not a release of the channel's stream, is tombstoned in the channel (un-tombstoning is a
//! deliberate, separate edit), has not been in the feeder channel on HEAD's branch for the
//! feeder's delay ([`super::feeder`]), or when the edited manifests break a
//! policy (`channelSubsets`, a tie) or would move an `immutableTags` tag. With `commit`, the
//! edit is committed on a new branch `promote/<channel>/<version>` made from HEAD, which is
//! then checked out like `git switch -c`; the commit holds only the channel file. Refused
//! when that file has uncommitted changes or the branch exists. `--commit` right after a
//! plain `promote` (the working tree lists VERSION, HEAD does not) commits that edit when
//! it is the file's only change (promoting at HEAD gives the file byte for byte), and
//! otherwise says why not; nothing to do only when HEAD lists VERSION too.

use super::feeder::{self, FeederHistory, FeederVerdict};
use super::{Context, OpsError};
use crate::desired::{self, DesiredState};
use crate::digest::Digest;
use crate::git::{self, history};
use crate::manifest::edit::{self, Change, EditError};
use crate::manifest::{Manifests, Order, Policy, SourceFile};
use crate::registry::{Registries, TargetReader};
use crate::report::check::duration;
use crate::revision::short_revision;
use crate::tag::{is_valid_tag, version_tag};

/// The working tree's manifest and policy files, and the manifests they make (invalid
/// manifests are refused with every problem).
fn load_worktree(ctx: &Context) -> Result<(Vec<SourceFile>, Manifests), OpsError> {
    let dirs = [
        ctx.config.git.path.as_str(),
        ctx.config.git.policies.as_str(),
    ];
    let snapshot = git::read_worktree(ctx.worktree()?, &dirs)?;
    let manifests =
        desired::load(&snapshot.files, &ctx.config.git.policies).map_err(OpsError::Invalid)?;
    Ok((snapshot.files, manifests))
}

/// Maps an edit refusal: invalid edited manifests are printed one problem per line.
fn edit_error(e: EditError) -> OpsError {
    match e {
        EditError::Invalid(d) => OpsError::Invalid(d),
        other => OpsError::Refused(other.to_string()),
    }
}

/// Writes the edited file into the working tree.
fn write(ctx: &Context, edited: &edit::Edited) -> Result<(), OpsError> {
    let path = ctx.repo.join(&edited.path);
    std::fs::write(&path, edited.contents.as_bytes())
        .map_err(|source| OpsError::Io { path, source })
}

/// What `add` asks.
#[derive(Debug, Clone)]
pub struct AddRequest<'a> {
    /// The new release's version.
    pub version: &'a str,
    /// The stream to add it to.
    pub stream: &'a str,
    /// A tag or a digest (`sha256:…`) in the stream's source repository.
    pub from: &'a str,
}

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// The stream already has the version with that digest: nothing written.
    Unchanged {
        /// The digest.
        digest: Digest,
        /// Where the version is, `file:line:col`.
        at: String,
    },
    /// The release was written into the stream file.
    Written {
        /// The digest REF resolved to.
        digest: Digest,
        /// The file edited.
        path: String,
        /// The line of the new release.
        line: u64,
        /// The source repository REF was resolved in.
        source: String,
    },
}

/// Adds a release to a stream in the working tree (see the module's doc); `runtime`
/// resolves REF in the source.
pub fn add(
    ctx: &Context,
    args: &AddRequest<'_>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Added, OpsError> {
    let (files, before) = load_worktree(ctx)?;
    let version = args.version;
    let Some(stream) = before.streams.get(args.stream) else {
        let known: Vec<&str> = before.streams.keys().map(String::as_str).collect();
        let hint = crate::manifest::parse::did_you_mean(args.stream, known.iter().copied())
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        return Err(OpsError::Refused(format!(
            "no stream `{}`{hint} (streams: {})",
            args.stream,
            known.join(", ")
        )));
    };
    if stream.order == Order::Semver
        && let Err(e) = semver::Version::parse(version)
    {
        return Err(OpsError::Refused(format!(
            "version `{version}` is not semver ({e}); stream `{}` has `order: semver` (versions that are not semver need `order: listed`)",
            args.stream
        )));
    }
    if !is_valid_tag(&version_tag(version)) {
        return Err(OpsError::Refused(format!(
            "version `{version}` cannot be a registry tag (`+` is written `_`): a tag is 1 to 128 letters, digits, `_`, `.` and `-`, and starts with a letter, digit or `_`"
        )));
    }
    // A stream whose source a policy refuses makes the manifests invalid, so `load` above
    // has refused already; say so plainly should a policy ever be merged differently.
    if !source_allowed(&before, &stream.source.value) {
        return Err(OpsError::Refused(format!(
            "{}: source `{}` of stream `{}` is not allowed by allowedSources",
            stream.source.span, stream.source.value, args.stream
        )));
    }

    let registries = Registries::from_config(&ctx.config, &ctx.config_dir)?;
    let source = registries.repository(&stream.source.value)?;
    let digest = runtime.block_on(resolve(&source, args.from))?;

    if let Some(existing) = stream.releases.iter().find(|r| r.version.value == version) {
        if existing.digest.value == digest {
            return Ok(Added::Unchanged {
                digest,
                at: existing.version.span.to_string(),
            });
        }
        return Err(OpsError::Refused(format!(
            "{}: version {version} is already in stream {} with digest {}, but {} is {digest}; a release's digest never changes (add a new version instead)",
            existing.version.span, args.stream, existing.digest.value, args.from
        )));
    }

    let edited = edit::edit(
        &files,
        &ctx.config.git.policies,
        &before,
        Change::AddRelease {
            stream: args.stream,
            version,
            digest: &digest,
        },
        desired::load,
    )
    .map_err(edit_error)?;
    // Adding a release publishes nothing: the desired tags must not change.
    let tags = |m: &Manifests| -> Result<Vec<(String, String, Digest)>, OpsError> {
        let d = desired::derive(m).map_err(OpsError::Invalid)?;
        Ok(d.repos
            .into_iter()
            .flat_map(|(r, repo)| {
                repo.tags
                    .into_iter()
                    .map(move |(t, tag)| (r.clone(), t, tag.digest))
            })
            .collect())
    };
    if tags(&before)? != tags(&edited.manifests)? {
        return Err(OpsError::Refused(format!(
            "{}: adding {version} would change the desired tags; nothing was written",
            edited.path
        )));
    }
    write(ctx, &edited)?;
    Ok(Added::Written {
        digest,
        path: edited.path.clone(),
        line: edited.line,
        source: source.name().to_string(),
    })
}

/// Whether the merged policy's `allowedSources` (when any) allows `source`.
fn source_allowed(m: &Manifests, source: &str) -> bool {
    let globs = &m.policy.allowed_sources;
    globs.is_empty()
        || globs.iter().any(|g| {
            globset::GlobBuilder::new(&g.value)
                .literal_separator(true)
                .build()
                .is_ok_and(|glob| glob.compile_matcher().is_match(source))
        })
}

/// Resolves `reference` in `source`: a digest (`algorithm:hex`) must exist there; a tag is
/// resolved with HEAD.
async fn resolve(
    source: &crate::registry::Repository,
    reference: &str,
) -> Result<Digest, OpsError> {
    if reference.contains(':') {
        let digest = Digest::parse_release(reference)
            .map_err(|e| OpsError::Refused(format!("--from {reference}: {e}")))?;
        if source.has_manifest(&digest).await? {
            return Ok(digest);
        }
        return Err(OpsError::Refused(format!(
            "digest {digest} not found in {}",
            source.name()
        )));
    }
    if !is_valid_tag(reference) {
        return Err(OpsError::Refused(format!(
            "--from {reference}: neither a tag nor a digest (`sha256:…`)"
        )));
    }
    match source.resolve_tag(reference).await? {
        Some(d) => Ok(d),
        None => Err(OpsError::Refused(format!(
            "tag {reference} not found in {}",
            source.name()
        ))),
    }
}

/// What `promote` asks.
#[derive(Debug, Clone)]
pub struct PromoteRequest<'a> {
    /// The version to promote (a release of the channel's stream).
    pub version: &'a str,
    /// The channel to add it to.
    pub to: &'a str,
    /// Commit the edit on a new branch `promote/<channel>/<version>` and switch to it.
    pub commit: bool,
}

/// What `promote` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promoted {
    /// The channel already lists the version: nothing written, no branch made.
    Unchanged {
        /// Where the channel lists it, `file:line:col`.
        at: String,
    },
    /// The version was written into the channel file in the working tree.
    Written {
        /// Where, `file:line`.
        at: String,
    },
    /// The edit was committed on a new branch, now checked out.
    Committed {
        /// Where, `file:line`.
        at: String,
        /// The new commit.
        commit: String,
        /// The new branch.
        branch: String,
    },
}

/// Promotes a version into a channel in the working tree (see the module's doc).
pub fn promote(ctx: &Context, args: &PromoteRequest<'_>) -> Result<Promoted, OpsError> {
    let (files, before) = load_worktree(ctx)?;
    let version = args.version;
    let name = args.to;
    let Some(channel) = before.channels.get(name) else {
        let known: Vec<&str> = before.channels.keys().map(String::as_str).collect();
        let hint = crate::manifest::parse::did_you_mean(name, known.iter().copied())
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        return Err(OpsError::Refused(format!(
            "no channel `{name}`{hint} (channels: {})",
            known.join(", ")
        )));
    };
    let stream_name = channel.stream.value.as_str();
    let released = before
        .streams
        .get(stream_name)
        .is_some_and(|s| s.releases.iter().any(|r| r.version.value == version));
    if !released {
        return Err(OpsError::Refused(format!(
            "{version} is not a release of stream {stream_name}, which channel {name} follows (add it first: relsync add {version} --stream {stream_name} --from <tag>)"
        )));
    }
    if let Some(t) = channel.tombstones.iter().find(|t| t.value == version) {
        return Err(OpsError::Refused(format!(
            "{}: {version} is tombstoned in channel {name}; remove the tombstone first (un-tombstoning is a deliberate, separate edit)",
            t.span
        )));
    }
    if let Some(v) = channel.versions.iter().find(|v| v.value == version) {
        let at = v.span.to_string();
        if !args.commit {
            return Ok(Promoted::Unchanged { at });
        }
        // Listed in the working tree: committed already, or a plain `promote` made the
        // edit and `--commit` now commits it, when that entry is the file's only change.
        let path = channel.name.span.file.to_string();
        let worktree = files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.contents.clone())
            .unwrap_or_default();
        return promote_at_head(ctx, args, &path, &worktree, at);
    }
    promote_from(ctx, args, &files, &before, None)
}

/// `promote --commit` of a version the working tree lists already (at `at`, in the channel
/// file `path`, which holds `worktree`): nothing to do when HEAD lists it too; committed
/// when promoting it at HEAD gives that file byte for byte; otherwise refused, saying why.
fn promote_at_head(
    ctx: &Context,
    args: &PromoteRequest<'_>,
    path: &str,
    worktree: &[u8],
    at: String,
) -> Result<Promoted, OpsError> {
    let (version, name) = (args.version, args.to);
    let dirs = [
        ctx.config.git.path.as_str(),
        ctx.config.git.policies.as_str(),
    ];
    let head = git::read_revision(&ctx.repo, "HEAD", &dirs)?;
    let committed =
        desired::load(&head.files, &ctx.config.git.policies).map_err(OpsError::Invalid)?;
    let not_only = |why: &str| {
        OpsError::Refused(format!(
            "{version} is in {name} in the working tree ({at}) but not at HEAD, and {why}: --commit commits only the promotion; commit {path} yourself, or undo its other changes and run promote --commit again"
        ))
    };
    let Some(head_channel) = committed.channels.get(name) else {
        return Err(not_only(&format!(
            "channel {name} is not committed at HEAD"
        )));
    };
    if head_channel.versions.iter().any(|v| v.value == version) {
        return Ok(Promoted::Unchanged { at });
    }
    if head_channel.name.span.file.as_ref() != path {
        return Err(not_only(&format!(
            "HEAD has channel {name} in {}, not {path}",
            head_channel.name.span.file
        )));
    }
    promote_from(ctx, args, &head.files, &committed, Some(worktree))
}

/// Promotes `args.version` into the manifests `before` (read from `files`): the feeder
/// rule, the edit, the policies, then the write or the commit. With `made`, the edit is in
/// the working tree already (which holds `made` in the channel file): it must be exactly
/// the edit, which is then only committed.
fn promote_from(
    ctx: &Context,
    args: &PromoteRequest<'_>,
    files: &[SourceFile],
    before: &Manifests,
    made: Option<&[u8]>,
) -> Result<Promoted, OpsError> {
    let (version, name) = (args.version, args.to);
    let channel = &before.channels[name];
    let stream_name = channel.stream.value.as_str();
    let Some(release) = before
        .streams
        .get(stream_name)
        .and_then(|s| s.releases.iter().find(|r| r.version.value == version))
    else {
        return Err(OpsError::Refused(format!(
            "{version} is not a release of stream {stream_name} at HEAD, which channel {name} follows (commit the release first)"
        )));
    };
    let dirs = [
        ctx.config.git.path.as_str(),
        ctx.config.git.policies.as_str(),
    ];
    if let Some(feeder) = &channel.feeder {
        check_feeder(
            ctx,
            &dirs,
            name,
            &feeder.channel.value,
            feeder.delay_seconds,
            version,
        )?;
    }
    let path = channel.name.span.file.to_string();
    let branch = format!("promote/{name}/{version}");
    if args.commit && made.is_none() {
        history::check_commit(&ctx.repo, &branch, &path).map_err(commit_error)?;
    }

    let edited = edit::edit(
        files,
        &ctx.config.git.policies,
        before,
        Change::Promote {
            channel: name,
            version,
        },
        desired::load,
    )
    .map_err(edit_error)?;
    if let Some(made) = made
        && made != edited.contents.as_bytes()
    {
        return Err(OpsError::Refused(format!(
            "{version} is in {name} in the working tree but not at HEAD, and {path} has other uncommitted changes besides that entry: --commit commits only the promotion; commit {path} yourself, or undo its other changes and run promote --commit again"
        )));
    }
    let old = desired::derive(before).map_err(OpsError::Invalid)?;
    let new = desired::derive(&edited.manifests).map_err(OpsError::Invalid)?;
    if let Some(problem) = moved_immutable(&old, &new, &edited.manifests.policy) {
        return Err(OpsError::Refused(format!(
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
        Ok(Promoted::Committed { at, commit, branch })
    } else {
        write(ctx, &edited)?;
        Ok(Promoted::Written { at })
    }
}

fn commit_error(e: history::CommitError) -> OpsError {
    match e {
        history::CommitError::Git(g) => OpsError::Git(g),
        other => OpsError::Refused(other.to_string()),
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
) -> Result<(), OpsError> {
    let branch = history::head_branch(&ctx.repo)?
        .map(|b| format!("branch {b}"))
        .unwrap_or_else(|| "detached HEAD".to_string());
    let mut feeder_history = FeederHistory::new(ctx, "HEAD", dirs);
    let first = feeder_history.first_listed(feeder, version)?;
    let head = git::read_revision(&ctx.repo, "HEAD", dirs)?;
    let in_feeder = feeder_history.lists(&head.files, feeder, version);
    match feeder::judge_feeder(first.as_ref(), in_feeder, delay, feeder::unix_now()) {
        FeederVerdict::Passed => Ok(()),
        FeederVerdict::NotInFeeder => Err(OpsError::Refused(format!(
            "{version} is not in channel {feeder} on {branch} (committed), and channel {channel} is fed by {feeder}: promote it to {feeder} first"
        ))),
        FeederVerdict::TooSoon {
            commit,
            elapsed,
            delay,
        } => Err(OpsError::Refused(format!(
            "{version} entered channel {feeder} in commit {} on {branch} {} ago; channel {channel} requires {} in {feeder} ({} to go)",
            short_revision(&commit),
            duration(elapsed),
            duration(delay),
            duration(delay - elapsed)
        ))),
    }
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
