//! `relsync add VERSION --stream S --from REF`: resolve REF (a tag or a digest in the
//! stream's source repository) to a digest and add the release to the stream file in the
//! working tree, in the style of its neighbours (how a new nightly enters Git).
//!
//! Exit 0 when the release was added, or when the stream already has VERSION with the
//! digest REF resolves to (nothing to do, like `git add` of an unchanged file); exit 1,
//! writing nothing, when VERSION is already there with another digest, REF is not in the
//! source, VERSION is not a valid version under the stream's order, the stream's source is
//! not allowed by `allowedSources`, or the manifests are invalid before or after the edit.

use super::{AddArgs, CliError, Context, Settings};
use crate::desired::{self, is_valid_tag, version_tag};
use crate::digest::Digest;
use crate::git;
use crate::manifest::edit::{self, Change, EditError};
use crate::manifest::{self, Manifests, Order, SourceFile};
use crate::registry::{Registries, TargetReader};

/// The working tree's manifest and policy files, and the manifests they make (invalid
/// manifests are refused with every problem).
pub(super) fn load_worktree(ctx: &Context) -> Result<(Vec<SourceFile>, Manifests), CliError> {
    let dirs = [
        ctx.config.git.path.as_str(),
        ctx.config.git.policies.as_str(),
    ];
    let snapshot = git::read_worktree(ctx.worktree()?, &dirs)?;
    let manifests =
        manifest::load(&snapshot.files, &ctx.config.git.policies).map_err(CliError::Invalid)?;
    Ok((snapshot.files, manifests))
}

/// Maps an edit refusal: invalid edited manifests are printed one problem per line.
pub(super) fn edit_error(e: EditError) -> CliError {
    match e {
        EditError::Invalid(d) => CliError::Invalid(d),
        other => CliError::Refused(other.to_string()),
    }
}

/// Writes the edited file into the working tree.
pub(super) fn write(ctx: &Context, edited: &edit::Edited) -> Result<(), CliError> {
    let path = ctx.repo.join(&edited.path);
    std::fs::write(&path, edited.contents.as_bytes())
        .map_err(|source| CliError::Io { path, source })
}

/// Runs `add`.
pub fn run(settings: &Settings, args: &AddArgs) -> Result<i32, CliError> {
    if let Some(rev) = &settings.revision {
        return Err(CliError::Usage(format!(
            "--revision {rev}: `add` edits the working tree; it reads no other revision"
        )));
    }
    let ctx = Context::load(settings)?;
    let (files, before) = load_worktree(&ctx)?;
    let version = args.version.as_str();
    let Some(stream) = before.streams.get(&args.stream) else {
        let known: Vec<&str> = before.streams.keys().map(String::as_str).collect();
        return Err(CliError::Refused(format!(
            "no stream `{}` (streams: {})",
            args.stream,
            known.join(", ")
        )));
    };
    if stream.order == Order::Semver
        && let Err(e) = semver::Version::parse(version)
    {
        return Err(CliError::Refused(format!(
            "version `{version}` is not semver ({e}); stream `{}` has `order: semver` (versions that are not semver need `order: listed`)",
            args.stream
        )));
    }
    if !is_valid_tag(&version_tag(version)) {
        return Err(CliError::Refused(format!(
            "version `{version}` cannot be a registry tag (`+` is written `_`): a tag is 1 to 128 letters, digits, `_`, `.` and `-`, and starts with a letter, digit or `_`"
        )));
    }
    // A stream whose source a policy refuses makes the manifests invalid, so `load` above
    // has refused already; say so plainly should a policy ever be merged differently.
    if !source_allowed(&before, &stream.source.value) {
        return Err(CliError::Refused(format!(
            "{}: source `{}` of stream `{}` is not allowed by allowedSources",
            stream.source.span, stream.source.value, args.stream
        )));
    }

    let registries = Registries::from_config(&ctx.config, &ctx.config_dir)?;
    let source = registries.repository(&stream.source.value)?;
    let runtime = super::runtime()?;
    let digest = runtime.block_on(resolve(&source, &args.from))?;

    if let Some(existing) = stream.releases.iter().find(|r| r.version.value == version) {
        if existing.digest.value == digest {
            println!(
                "{version} is already in stream {} with {digest} ({}); nothing to do",
                args.stream, existing.version.span
            );
            return Ok(0);
        }
        return Err(CliError::Refused(format!(
            "{}: version {version} is already in stream {} with digest {}, but {} is {digest}; a release's digest never changes (add a new version instead)",
            existing.version.span, args.stream, existing.digest.value, args.from
        )));
    }

    let edited = edit::edit(
        &files,
        &ctx.config.git.policies,
        &before,
        Change::AddRelease {
            stream: &args.stream,
            version,
            digest: &digest,
        },
    )
    .map_err(edit_error)?;
    // Adding a release publishes nothing: the desired tags must not change.
    let tags = |m: &Manifests| -> Result<Vec<(String, String, Digest)>, CliError> {
        let d = desired::derive(m).map_err(CliError::Invalid)?;
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
        return Err(CliError::Refused(format!(
            "{}: adding {version} would change the desired tags; nothing was written",
            edited.path
        )));
    }
    write(&ctx, &edited)?;
    println!(
        "added {version} to stream {} ({}:{}): {digest} from {}",
        args.stream,
        edited.path,
        edited.line,
        source.name()
    );
    Ok(0)
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
) -> Result<Digest, CliError> {
    if reference.contains(':') {
        let digest = Digest::parse_release(reference)
            .map_err(|e| CliError::Refused(format!("--from {reference}: {e}")))?;
        if source.has_manifest(&digest).await? {
            return Ok(digest);
        }
        return Err(CliError::Refused(format!(
            "digest {digest} not found in {}",
            source.name()
        )));
    }
    if !is_valid_tag(reference) {
        return Err(CliError::Refused(format!(
            "--from {reference}: neither a tag nor a digest (`sha256:…`)"
        )));
    }
    match source.resolve_tag(reference).await? {
        Some(d) => Ok(d),
        None => Err(CliError::Refused(format!(
            "tag {reference} not found in {}",
            source.name()
        ))),
    }
}
