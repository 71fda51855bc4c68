//! PURE: the component tags of payload streams. They are desired tags of `payload.target`,
//! derived from content (a release digest's component list, which never changes), so they are
//! added to a derived [`DesiredState`] once the lists are known ([`add_components`]): from
//! the cache for `plan` and `drift`, and read from the sources by `sync`.
//!
//! - A published release with a known list: each component tag (`<version tag>-<name>`) is a
//!   desired tag of `payload.target` holding the component's digest, copied from the
//!   component's own repository, claimed by the channels that publish the release.
//! - A tombstoned release with a known list: its component tags must be absent.
//! - A release whose list is unknown (not cached, or unreadable), refused, or whose
//!   components break `allowedSources`: no component tag; the tags in `payload.target` that
//!   start with its version tag are never extra (a prune never removes a payload it cannot
//!   see), and a refused release's own tags are not written ([`DesiredPayloads::refused`]).

use std::collections::{BTreeMap, BTreeSet};

use super::types::{AbsentTag, DesiredState, DesiredTag, TagKind};
use crate::digest::Digest;
use crate::manifest::{Manifests, Policy};
use crate::payload::ComponentList;
use crate::tag::version_tag;

/// The release a component tag belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ComponentOf {
    /// The release's version.
    pub version: String,
    /// The release's digest.
    pub release: Digest,
}

/// What the desired state knows of payloads (empty without payload streams).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredPayloads {
    /// `(payload target, tag)` → the release of that component tag, for every desired and
    /// every absent component tag.
    pub component_tags: BTreeMap<(String, String), ComponentOf>,
    /// `(stream target, release digest)` → the release's component count (`None`: not known
    /// yet), for every published release of a payload stream.
    pub releases: BTreeMap<(String, Digest), Option<usize>>,
    /// Release digest → why its payload cannot be mirrored in this run (unreadable,
    /// malformed, over budget, a component source not allowed): its tags are not written.
    pub refused: BTreeMap<Digest, String>,
    /// `(payload target, "<version tag>-")` of releases without a usable list: tags of the
    /// payload target with that prefix are never extra.
    pub unknown: BTreeSet<(String, String)>,
}

impl DesiredPayloads {
    /// The release `tag` of `target` is a component tag of, if it is one.
    pub fn component_of(&self, target: &str, tag: &str) -> Option<&ComponentOf> {
        self.component_tags
            .get(&(target.to_string(), tag.to_string()))
    }

    /// Whether `tag` of `target` may belong to a payload whose list is not known.
    pub fn protects(&self, target: &str, tag: &str) -> bool {
        self.unknown
            .iter()
            .any(|(t, prefix)| t == target && tag.starts_with(prefix.as_str()))
    }
}

/// A release of a payload stream that the desired state names: published (its version tag
/// is desired) or tombstoned (its version tag must be absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadRelease {
    /// The stream's name.
    pub stream: String,
    /// The release's version.
    pub version: String,
    /// The release's digest.
    pub digest: Digest,
    /// The stream's source (where the release image, and its image-references, are read).
    pub source: String,
    /// The stream's target.
    pub target: String,
    /// `payload.target`.
    pub payload_target: String,
    /// Published (else tombstoned).
    pub published: bool,
}

/// Every release of a payload stream that `desired` (derived from `manifests`) publishes or
/// tombstones, in stream order.
pub fn payload_releases(manifests: &Manifests, desired: &DesiredState) -> Vec<PayloadRelease> {
    let mut out = Vec::new();
    for (name, stream) in &manifests.streams {
        let Some(payload) = &stream.payload else {
            continue;
        };
        let Some(repo) = desired.repos.get(&stream.target.value) else {
            continue;
        };
        for r in &stream.releases {
            let tag = version_tag(&r.version.value);
            let published = match (repo.tags.get(&tag), repo.absent.get(&tag)) {
                (Some(t), _) if t.stream == *name && t.digest == r.digest.value => true,
                (None, Some(a)) if a.version == r.version.value => false,
                _ => continue,
            };
            out.push(PayloadRelease {
                stream: name.clone(),
                version: r.version.value.clone(),
                digest: r.digest.value.clone(),
                source: stream.source.value.clone(),
                target: stream.target.value.clone(),
                payload_target: payload.target.value.clone(),
                published,
            });
        }
    }
    out
}

/// Whether the policy's `allowedSources` (when any) allows `source` (the globs of every
/// Policy document together).
pub fn source_allowed(policy: &Policy, source: &str) -> bool {
    policy.allowed_sources.is_empty()
        || policy.allowed_sources.iter().any(|g| {
            globset::GlobBuilder::new(&g.value)
                .literal_separator(true)
                .build()
                .is_ok_and(|glob| glob.compile_matcher().is_match(source))
        })
}

/// Adds the component tags of every payload release to `desired` (as the module doc says),
/// with `lists` the known component lists by release digest and `refused` the releases whose
/// list could not be read (release digest → why). Returns the releases refused here or
/// before, release digest → why (also kept in [`DesiredState::payloads`]).
pub fn add_components(
    desired: &mut DesiredState,
    manifests: &Manifests,
    lists: &BTreeMap<Digest, ComponentList>,
    refused: &BTreeMap<Digest, String>,
) -> BTreeMap<Digest, String> {
    let releases = payload_releases(manifests, desired);
    let mut payloads = std::mem::take(&mut desired.payloads);
    for r in &releases {
        desired.repos.entry(r.payload_target.clone()).or_default();
        let vtag = version_tag(&r.version);
        let prefix = (r.payload_target.clone(), format!("{vtag}-"));
        if r.published {
            payloads.releases.insert(
                (r.target.clone(), r.digest.clone()),
                lists.get(&r.digest).map(ComponentList::len),
            );
        }
        let refuse = |why: String, payloads: &mut DesiredPayloads| {
            if r.published {
                payloads.refused.insert(r.digest.clone(), why);
            }
            payloads.unknown.insert(prefix.clone());
        };
        if let Some(why) = refused.get(&r.digest) {
            refuse(why.clone(), &mut payloads);
            continue;
        }
        let Some(list) = lists.get(&r.digest) else {
            // Not known yet (plan and drift read no source): nothing to say about it.
            payloads.unknown.insert(prefix.clone());
            continue;
        };
        if let Some(c) = list
            .components
            .iter()
            .find(|c| !source_allowed(&manifests.policy, &c.source))
        {
            let globs: Vec<&str> = manifests
                .policy
                .allowed_sources
                .iter()
                .map(|g| g.value.as_str())
                .collect();
            refuse(
                format!(
                    "release {}: component `{}` comes from `{}`, which allowedSources does not allow ({})",
                    r.version,
                    c.name,
                    c.source,
                    globs.join(", ")
                ),
                &mut payloads,
            );
            continue;
        }
        let tags = match list.tags(&vtag) {
            Ok(t) => t,
            Err(e) => {
                refuse(format!("release {}: {e}", r.version), &mut payloads);
                continue;
            }
        };
        let of = ComponentOf {
            version: r.version.clone(),
            release: r.digest.clone(),
        };
        if r.published {
            let Some(release_tag) = desired
                .repos
                .get(&r.target)
                .and_then(|repo| repo.tags.get(&vtag))
                .cloned()
            else {
                continue;
            };
            let repo = desired.repos.entry(r.payload_target.clone()).or_default();
            // A tag Git (or another release) claims with other content: refused, not overwritten.
            if let Some((tag, other)) = tags.iter().find_map(|(tag, c)| {
                repo.tags
                    .get(tag)
                    .filter(|t| t.digest != c.digest)
                    .map(|t| (tag, t))
            }) {
                refuse(
                    format!(
                        "release {}: component tag {tag} of {} is also claimed for {} (at {})",
                        r.version, r.payload_target, other.version, other.span
                    ),
                    &mut payloads,
                );
                continue;
            }
            for (tag, c) in tags {
                repo.tags.insert(
                    tag.clone(),
                    DesiredTag {
                        digest: c.digest.clone(),
                        version: r.version.clone(),
                        stream: r.stream.clone(),
                        source: c.source.clone(),
                        kind: TagKind::Component,
                        key: release_tag.key.clone(),
                        channels: release_tag.channels.clone(),
                        span: release_tag.span.clone(),
                    },
                );
                repo.absent.remove(&tag);
                for ch in &release_tag.channels {
                    desired
                        .channel_claims
                        .entry(ch.clone())
                        .or_default()
                        .insert((r.payload_target.clone(), tag.clone()));
                }
                payloads
                    .component_tags
                    .insert((r.payload_target.clone(), tag), of.clone());
            }
        } else {
            let Some(absent) = desired
                .repos
                .get(&r.target)
                .and_then(|repo| repo.absent.get(&vtag))
                .cloned()
            else {
                continue;
            };
            let repo = desired.repos.entry(r.payload_target.clone()).or_default();
            for tag in tags.into_keys() {
                if repo.tags.contains_key(&tag) {
                    continue;
                }
                repo.absent.insert(
                    tag.clone(),
                    AbsentTag {
                        version: r.version.clone(),
                        channels: absent.channels.clone(),
                        span: absent.span.clone(),
                    },
                );
                for ch in &absent.channels {
                    desired
                        .channel_claims
                        .entry(ch.clone())
                        .or_default()
                        .insert((r.payload_target.clone(), tag.clone()));
                }
                payloads
                    .component_tags
                    .insert((r.payload_target.clone(), tag), of.clone());
            }
        }
    }
    let out = payloads.refused.clone();
    desired.payloads = payloads;
    out
}
