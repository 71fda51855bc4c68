//! `relsync validate`: parse and check manifests and policies; no network.

use super::{CliError, Settings, counted, print_warnings};
use crate::ops::Context;

/// Validates; with a local repository and no `--revision`, the working tree (so it works as
/// a pre-commit hook). Prints a one-line summary on success.
pub fn run(settings: &Settings) -> Result<i32, CliError> {
    let settings = &settings.load;
    let ctx = Context::load(settings)?;
    let mut warnings = Vec::new();
    let loaded = ctx.desired(settings, settings.revision.is_none(), &mut warnings);
    print_warnings(&warnings);
    let loaded = loaded?;
    let releases: usize = loaded
        .manifests
        .streams
        .values()
        .map(|s| s.releases.len())
        .sum();
    let tags: usize = loaded.desired.repos.values().map(|r| r.tags.len()).sum();
    println!(
        "valid ({}): {}, {}, {}, {} in {}",
        loaded.revision,
        counted(loaded.manifests.streams.len(), "stream", "streams"),
        counted(loaded.manifests.channels.len(), "channel", "channels"),
        counted(releases, "release", "releases"),
        counted(tags, "desired tag", "desired tags"),
        counted(loaded.desired.repos.len(), "target", "targets"),
    );
    Ok(0)
}
