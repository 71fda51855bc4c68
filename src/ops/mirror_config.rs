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
//! - Component lists come from the cache `sync` keeps (`store::payloads`); a release not in
//!   it is read from its target where the target has it, else from its source. A list that
//!   cannot be read is an error: a partial mirror set would break an install silently.

use std::collections::BTreeMap;

use super::{Context, Loaded, OpsError, Settings, Warnings, Workspace};
use crate::desired::{PayloadRelease, TagKind, payload_releases};
use crate::digest::Digest;
use crate::payload::read::read_components;
use crate::payload::{Budget, ComponentList};
use crate::registry::{Registries, TargetReader};
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
    let mut config = releases(&loaded, warnings);
    let payloads: Vec<PayloadRelease> = payload_releases(&loaded.manifests, &loaded.desired)
        .into_iter()
        .filter(|r| r.published)
        .collect();
    if !payloads.is_empty() {
        runtime.block_on(components(ctx, &payloads, &mut config, warnings))?;
    }
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

/// The payload components: each published release's component sources → its stream's
/// `payload.target`. Lists come from the cache, else from the release in its target, else
/// from its source; none is written to the cache (this command writes nothing).
async fn components(
    ctx: Context,
    releases: &[PayloadRelease],
    config: &mut MirrorConfig,
    warnings: &mut Warnings,
) -> Result<(), OpsError> {
    let workspace = Workspace::connect(ctx).await?;
    let cached: BTreeMap<Digest, ComponentList> = workspace.store().load_payloads().await?.lists();
    let mut skipped = Vec::new();
    for r in releases {
        if r.payload_target.starts_with("oci:") {
            if !skipped.contains(&r.payload_target) {
                warnings.push(oci_skipped(&r.payload_target));
                skipped.push(r.payload_target.clone());
            }
            continue;
        }
        let list = match cached.get(&r.digest) {
            Some(list) => list.clone(),
            None => read_list(&workspace.registries, r).await?,
        };
        for c in &list.components {
            config.digest(&c.source, &r.payload_target);
        }
    }
    Ok(())
}

/// A release's component list read from its target when the target has the release (a
/// disconnected site may reach nothing else), else from its source.
async fn read_list(registries: &Registries, r: &PayloadRelease) -> Result<ComponentList, OpsError> {
    let target = registries.repository(&r.target)?;
    let repo = if target.has_manifest(&r.digest).await? {
        target
    } else {
        registries.repository(&r.source)?
    };
    tracing::info!(version = %r.version, repo = %repo.name(), "reading the component list");
    read_components(&repo, &r.version, &r.digest, &Budget::default())
        .await
        .map_err(|e| OpsError::Payload(Box::new(e)))
}

/// The warning for a target no cluster can pull from.
pub(super) fn oci_skipped(target: &str) -> String {
    format!(
        "warning: {target} is an OCI layout on disk, not a registry a cluster can pull from: left out of the mirror sets (copy it into a registry and name that repository as the target)"
    )
}
