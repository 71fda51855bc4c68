//! `relsync validate`: parse and check manifests and policies; no network.

use super::{CliError, Context, Settings};

/// Validates; with a local repository and no `--revision`, the working tree (so it works as
/// a pre-commit hook). Prints a one-line summary on success.
pub fn run(settings: &Settings) -> Result<i32, CliError> {
    let ctx = Context::load(settings)?;
    let loaded = ctx.desired(settings, settings.revision.is_none())?;
    let releases: usize = loaded
        .manifests
        .streams
        .values()
        .map(|s| s.releases.len())
        .sum();
    let tags: usize = loaded.desired.repos.values().map(|r| r.tags.len()).sum();
    println!(
        "valid ({}): {} streams, {} channels, {} releases, {} desired tags in {} targets",
        loaded.revision,
        loaded.manifests.streams.len(),
        loaded.manifests.channels.len(),
        releases,
        tags,
        loaded.desired.repos.len(),
    );
    Ok(0)
}
