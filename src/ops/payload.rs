//! Payload streams in the sequence `plan`, `drift` and `sync` share: the component lists
//! of the releases Git publishes or tombstones, from the cache (`store::payloads`), and with
//! `read_sources` (sync only: `plan` and `drift` read no source) read from the release's
//! source for the releases the cache does not have yet, added to the cache, then turned into
//! component tags of the desired state ([`crate::desired::add_components`]). A release
//! whose list cannot be read is refused for this run (its tags are not written); the others
//! proceed.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;

use super::{Loaded, Warnings, Workspace};
use crate::desired::{PayloadRelease, add_components, payload_releases};
use crate::digest::Digest;
use crate::payload::read::read_components;
use crate::payload::{Budget, ComponentList};

/// What [`prepare`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Payload releases Git names (published or tombstoned).
    pub releases: usize,
    /// Component lists read from sources in this run (not cached before).
    pub read: usize,
    /// Refused releases: release digest → why.
    pub refused: BTreeMap<Digest, String>,
}

/// Adds the component tags of every payload release to `loaded.desired`, as the module doc
/// says. Cache problems are warnings (the lists are then read again, or unknown).
pub async fn prepare(
    workspace: &Workspace,
    loaded: &mut Loaded,
    read_sources: bool,
    warnings: &mut Warnings,
) -> Prepared {
    let releases = payload_releases(&loaded.manifests, &loaded.desired);
    if releases.is_empty() {
        return Prepared::default();
    }
    let store = workspace.store();
    let mut lists = match store.load_payloads().await {
        Ok(cache) => cache.lists(),
        Err(e) => {
            warnings.push(format!(
                "warning: cannot read the payload cache {}: {e}",
                store.describe_payloads()
            ));
            BTreeMap::new()
        }
    };
    let mut refused = BTreeMap::new();
    let mut read = 0;
    if read_sources {
        let mut seen = BTreeSet::new();
        // Owned, so that the futures below borrow nothing but the workspace (a future that
        // `serve` spawns must not be generic over a borrow's lifetime).
        let missing: Vec<PayloadRelease> = releases
            .iter()
            .filter(|r| !lists.contains_key(&r.digest) && seen.insert(r.digest.clone()))
            .cloned()
            .collect();
        let concurrency = workspace.registries.concurrency().max(1);
        let results: Vec<(Digest, Result<ComponentList, String>)> =
            futures_util::stream::iter(missing)
                .map(|r: PayloadRelease| async move {
                    let result = read_one(workspace, &r).await;
                    (r.digest, result)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        let mut new = BTreeMap::new();
        for (digest, result) in results {
            match result {
                Ok(list) => {
                    new.insert(digest, list);
                }
                Err(why) => {
                    tracing::warn!(release = %digest, error = %why, "payload refused");
                    refused.insert(digest, why);
                }
            }
        }
        read = new.len();
        if !new.is_empty() {
            let keep: BTreeSet<Digest> = releases.iter().map(|r| r.digest.clone()).collect();
            if let Err(e) = store.add_payloads(new.clone(), keep).await {
                warnings.push(format!(
                    "warning: cannot record the payload cache in {}: {e}",
                    store.describe_payloads()
                ));
            }
            lists.extend(new);
        }
    }
    let refused = add_components(&mut loaded.desired, &loaded.manifests, &lists, &refused);
    Prepared {
        releases: releases.len(),
        read,
        refused,
    }
}

/// The component list of one release, read from its stream's source.
async fn read_one(workspace: &Workspace, r: &PayloadRelease) -> Result<ComponentList, String> {
    let repo = workspace
        .registries
        .repository(&r.source)
        .map_err(|e| format!("release {}: {e}", r.version))?;
    read_components(&repo, &r.version, &r.digest, &Budget::default())
        .await
        .map_err(|e| e.full_message())
}
