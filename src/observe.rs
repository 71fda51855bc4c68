//! Asks the adapters for exactly the live state a plan or a drift report needs: one tag
//! list per target repository, one HEAD per tag Git names (or per digest, for a tag that
//! does not exist yet), and HEADs of other tags only when drift or prune needs them.
//!
//! Repositories are observed concurrently on tokio. Within one, the HEADs are a stream
//! with at most `sync.concurrency` under way (the work queue itself is bounded, so a
//! repository of a million tags costs memory for its results, not a task per tag); each
//! registry host also bounds how many requests are in flight (`sync.concurrency`).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures_util::stream::{self, StreamExt as _};
use tokio::task::JoinSet;

use crate::desired::DesiredState;
use crate::digest::Digest;
use crate::plan::{ObservedRepo, ObservedState};
use crate::registry::{Registries, RegistryError, Repository, TargetReader};
use crate::tag::{is_signature_tag, is_valid_tag};

/// What to observe beyond the tags Git names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObserveOptions {
    /// Also resolve listed tags nobody claims (for `drift`, and for `plan` with prune).
    /// Signature and attestation tags are never resolved.
    pub resolve_unclaimed: bool,
}

/// Why the live state could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// A registry or layout could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The cluster could not be read.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// An observation task died (a panic or a cancelled runtime).
    #[error("an observation task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// What one repository's observation needs to know of the desired state.
struct Wanted {
    /// Tags Git names (desired or absent).
    named: HashSet<String>,
    /// Desired tag → digest.
    desired: BTreeMap<String, Digest>,
}

/// Observes every target repository `desired` names, concurrently.
///
/// Per repository: one tag list (following `Link` pagination); then one HEAD per listed
/// tag that Git names (desired or absent) and, with `resolve_unclaimed`, per other listed
/// tag (signature tags never); then, for desired tags not listed, one HEAD per distinct
/// digest that no resolved tag already holds, recorded in `ObservedRepo::manifests`. A
/// repository the registry says does not exist is empty, its digests absent, without a
/// HEAD.
pub async fn observe(
    desired: &DesiredState,
    registries: &Registries,
    options: &ObserveOptions,
) -> Result<ObservedState, ObserveError> {
    let mut tasks = JoinSet::new();
    for (name, repo) in &desired.repos {
        let reader = registries.repository(name)?;
        let wanted = Wanted {
            named: repo
                .tags
                .keys()
                .chain(repo.absent.keys())
                .cloned()
                .collect(),
            desired: repo
                .tags
                .iter()
                .map(|(t, d)| (t.clone(), d.digest.clone()))
                .collect(),
        };
        let options = *options;
        let name = name.clone();
        let concurrency = registries.concurrency();
        tasks.spawn(async move {
            let observed = observe_repo(reader, wanted, options, concurrency).await;
            (name, observed)
        });
    }
    let mut state = ObservedState::default();
    while let Some(joined) = tasks.join_next().await {
        let (name, observed) = joined.map_err(ObserveError::Task)?;
        state.repos.insert(name, observed?);
    }
    Ok(state)
}

/// [`observe`], and, with a `cluster`, the ImageStreams `desired` names, concurrently
/// (`ObservedState::image_streams` stays `None` without one).
pub async fn observe_all(
    desired: &DesiredState,
    registries: &Registries,
    cluster: Option<&crate::cluster::Cluster>,
    options: &ObserveOptions,
) -> Result<ObservedState, ObserveError> {
    let image_streams = async {
        match cluster {
            Some(c) => c
                .observe_image_streams(desired.image_streams.keys())
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let (observed, image_streams) =
        tokio::join!(observe(desired, registries, options), image_streams);
    let mut observed = observed?;
    observed.image_streams = image_streams?;
    Ok(observed)
}

async fn observe_repo(
    reader: Repository,
    wanted: Wanted,
    options: ObserveOptions,
    concurrency: usize,
) -> Result<ObservedRepo, ObserveError> {
    let concurrency = concurrency.max(1);
    // A repository the registry says does not exist holds nothing: no HEAD can find
    // anything in it (an empty one still may hold untagged content, so only "absent").
    let Some(listed) = reader.list_tags_if_exists().await? else {
        return Ok(ObservedRepo {
            tags: BTreeMap::new(),
            manifests: wanted
                .desired
                .values()
                .map(|d| (d.clone(), false))
                .collect(),
        });
    };
    let mut observed = ObservedRepo {
        tags: listed.iter().map(|t| (t.clone(), None)).collect(),
        manifests: BTreeMap::new(),
    };

    // Phase 1: resolve the listed tags Git names (and the others when asked to). The work
    // queue itself is bounded: a stream over the list with at most `concurrency` HEADs
    // under way, so memory is O(concurrency + results), not one task per listed tag.
    let to_resolve = listed.into_iter().filter(|tag| {
        if is_signature_tag(tag) {
            return false;
        }
        if wanted.named.contains(tag) {
            return true;
        }
        if !options.resolve_unclaimed {
            return false;
        }
        if !is_valid_tag(tag) {
            tracing::warn!(
                repo = reader.name(),
                tag,
                "not resolving a tag with an invalid name"
            );
            return false;
        }
        true
    });
    let mut resolving = stream::iter(to_resolve)
        .map(|tag| {
            let reader = &reader;
            async move {
                let digest = reader.resolve_tag(&tag).await;
                (tag, digest)
            }
        })
        .buffer_unordered(concurrency);
    while let Some((tag, digest)) = resolving.next().await {
        match digest? {
            Some(d) => {
                observed.tags.insert(tag, Some(d));
            }
            // Listed, then gone before the HEAD: it is absent now.
            None => {
                observed.tags.remove(&tag);
            }
        }
    }
    drop(resolving);

    // Phase 2: for desired tags that do not exist, is their content here already?
    let held: HashSet<&Digest> = observed.tags.values().flatten().collect();
    let to_check: BTreeSet<Digest> = wanted
        .desired
        .iter()
        .filter(|(tag, _)| !observed.tags.contains_key(*tag))
        .map(|(_, d)| d)
        .filter(|d| !held.contains(d))
        .cloned()
        .collect();
    let mut checking = stream::iter(to_check)
        .map(|digest| {
            let reader = &reader;
            async move {
                let present = reader.has_manifest(&digest).await;
                (digest, present)
            }
        })
        .buffer_unordered(concurrency);
    while let Some((digest, present)) = checking.next().await {
        observed.manifests.insert(digest, present?);
    }
    drop(checking);
    Ok(observed)
}
