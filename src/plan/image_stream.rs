//! PURE: planning and drift of cluster ImageStreams (`image.openshift.io/v1`).
//!
//! The cluster adapter reads each ImageStream the desired state names into an
//! [`ObservedImageStream`]; this module compares it with `DesiredState::image_streams`
//! (an ImageStream no channel names any more is not observed, so its tags are neither
//! reported nor dropped). Immutable-tag policy (`immutableTags`) applies to registry
//! tags only: an ImageStream tag is a pointer the cluster re-imports, so it is always moved
//! to what Git says.

use std::collections::BTreeMap;

use super::{Action, ActionKind, DriftItem, DriftState, Target, Wanted, move_verdict};
use crate::desired::{DesiredImageStreamTag, DesiredState, KnownRelease};
use crate::digest::Digest;
use crate::manifest::ImageStreamRef;
use crate::tag::version_tag;

/// One `spec.tags[]` entry of an ImageStream, as the adapter read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedSpecTag {
    /// `from.name` when `from.kind` is `DockerImage` (a pull spec such as
    /// `quay.io/okd/scos-release@sha256:…`, or a tag-based `repo:tag`); for any other kind the
    /// adapter writes `<kind>:<name>`, which never equals a desired pull spec.
    pub from: String,
    /// The spec tag's `generation` (`None`: not set).
    pub generation: Option<i64>,
    /// Whether field manager `relsync` owns this tag. A tag of another manager (`false`) is
    /// never deleted nor reported as extra; a desired tag is taken over whoever owns it.
    pub managed_by_relsync: bool,
}

/// One `status.tags[]` entry of an ImageStream, as the adapter read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedStatusTag {
    /// `items[0].image`, the digest imported last (`None`: no item yet).
    pub image: Option<Digest>,
    /// `items[0].generation`, the spec generation that import was made for.
    pub generation: Option<i64>,
    /// The tag's `ImportSuccess` condition when its status is `False`.
    pub import_failure: Option<ImportFailure>,
}

/// An `ImportSuccess` condition with `status: False`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportFailure {
    /// The condition's `message`.
    pub message: String,
    /// The condition's `generation` (`None`: not set, taken as current).
    pub generation: Option<i64>,
}

/// What the cluster holds for one ImageStream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedImageStream {
    /// `metadata.resourceVersion` seen at plan time (carried into the apply).
    pub resource_version: Option<String>,
    /// `spec.tags`, by tag name.
    pub spec_tags: BTreeMap<String, ObservedSpecTag>,
    /// `status.tags`, by tag name.
    pub status_tags: BTreeMap<String, ObservedStatusTag>,
}

/// The digest of a pull spec `repo@algo:hex` (`None`: tag-based or not a digest).
pub fn pull_spec_digest(spec: &str) -> Option<Digest> {
    spec.rsplit_once('@')
        .and_then(|(_, d)| Digest::parse(d).ok())
}

/// The repository part of a pull spec `repo@digest` or `repo:tag` (`repo` as written).
fn pull_spec_repo(spec: &str) -> &str {
    if let Some((repo, _)) = spec.rsplit_once('@') {
        return repo;
    }
    match spec.rsplit_once(':') {
        // A `:` after the last `/` separates a tag; one before it is a host's port.
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => spec,
    }
}

/// The release a digest is, looked up in the repository the pull spec names, then in the
/// target repositories of the streams publishing into the ImageStream.
fn known_release<'a>(
    desired: &'a DesiredState,
    want: Option<&BTreeMap<String, DesiredImageStreamTag>>,
    spec: &str,
    digest: &Digest,
) -> Option<&'a KnownRelease> {
    let own = desired
        .repos
        .get(pull_spec_repo(spec))
        .and_then(|r| r.known.get(digest));
    own.or_else(|| {
        want.into_iter()
            .flat_map(|tags| tags.values())
            .filter_map(|t| desired.repos.get(pull_spec_repo(&t.from)))
            .find_map(|r| r.known.get(digest))
    })
}

/// The version, stream and sort key of a desired ImageStream tag: the same tag of its target
/// repository when that holds the same digest (the same claim), else the release its digest
/// is.
fn wanted<'a>(
    desired: &'a DesiredState,
    tag: &str,
    d: &'a DesiredImageStreamTag,
) -> Option<Wanted<'a>> {
    let repo = desired.repos.get(pull_spec_repo(&d.from))?;
    if let Some(t) = repo.tags.get(tag).filter(|t| t.digest == d.digest) {
        return Some(Wanted::from(t));
    }
    let k = repo
        .tags
        .get(&version_tag(&d.version))
        .filter(|t| t.digest == d.digest)
        .map(|t| (t.stream.as_str(), &t.key))
        .or_else(|| {
            repo.known
                .get(&d.digest)
                .map(|k| (k.stream.as_str(), &k.key))
        })?;
    Some(Wanted {
        version: &d.version,
        stream: k.0,
        key: k.1,
        floating: tag != version_tag(&d.version),
    })
}

/// One ImageStream, its desired tags (if Git names it) and what the cluster holds (if any).
type IsPair<'a> = (
    &'a ImageStreamRef,
    Option<&'a BTreeMap<String, DesiredImageStreamTag>>,
    Option<&'a ObservedImageStream>,
);

/// Every ImageStream either side names, with its desired tags and what the cluster holds.
fn image_streams<'a>(
    desired: &'a DesiredState,
    observed: &'a BTreeMap<ImageStreamRef, ObservedImageStream>,
) -> Vec<IsPair<'a>> {
    let mut refs: Vec<&ImageStreamRef> = desired
        .image_streams
        .keys()
        .chain(observed.keys())
        .collect();
    refs.sort();
    refs.dedup();
    refs.into_iter()
        .map(|r| (r, desired.image_streams.get(r), observed.get(r)))
        .collect()
}

/// Appends the actions for every ImageStream: `tag` for a missing spec tag, `retag` or
/// `rollback` for a spec tag pointing elsewhere (by the version of the digest it points to;
/// an unknown or tag-based one is a `retag`), and `delete` for a tag relsync manages that
/// Git no longer wants (an ImageStream is applied with its whole tag set, so that tag goes
/// whether or not prune is on). Tags of other managers are never touched.
pub(super) fn plan(
    desired: &DesiredState,
    observed: &BTreeMap<ImageStreamRef, ObservedImageStream>,
    actions: &mut Vec<Action>,
) {
    for (is, want, live) in image_streams(desired, observed) {
        let target = Target::ImageStream(is.clone());
        let spec_tags = live.map(|l| &l.spec_tags);
        for (tag, d) in want.into_iter().flatten() {
            let channels: Vec<String> = d.channels.iter().cloned().collect();
            let action = |kind, from: Option<Digest>, from_version, reason| Action {
                action: kind,
                target: target.clone(),
                tag: tag.clone(),
                from,
                to: Some(d.digest.clone()),
                from_version,
                to_version: Some(d.version.clone()),
                copy: false,
                channels: channels.clone(),
                reason,
                source: None,
                components: None,
                release: None,
            };
            let Some(spec) = spec_tags.and_then(|s| s.get(tag)) else {
                let reason = if live.is_none() {
                    "ImageStream absent: created with this tag"
                } else {
                    "tag missing in ImageStream"
                };
                actions.push(action(ActionKind::Tag, None, None, reason.to_string()));
                continue;
            };
            if spec.from == d.from {
                continue;
            }
            let Some(actual) = pull_spec_digest(&spec.from) else {
                actions.push(action(
                    ActionKind::Retag,
                    None,
                    None,
                    format!("spec points to {}, not a digest", spec.from),
                ));
                continue;
            };
            let known = known_release(desired, want, &spec.from, &actual);
            let from_version = known.map(|k| k.version.clone());
            let (kind, reason) = if actual == d.digest {
                (
                    ActionKind::Retag,
                    format!("spec points to {} instead of {}", spec.from, d.from),
                )
            } else {
                match wanted(desired, tag, d) {
                    Some(w) => move_verdict(tag, &w, known),
                    None => (
                        ActionKind::Retag,
                        format!("spec points to {}; Git pins {}", spec.from, d.version),
                    ),
                }
            };
            actions.push(action(kind, Some(actual), from_version, reason));
        }
        for (tag, spec) in live.into_iter().flat_map(|l| &l.spec_tags) {
            if !spec.managed_by_relsync || want.is_some_and(|w| w.contains_key(tag)) {
                continue;
            }
            let from = pull_spec_digest(&spec.from);
            let from_version = from
                .as_ref()
                .and_then(|d| known_release(desired, want, &spec.from, d))
                .map(|k| k.version.clone());
            actions.push(super::delete(
                &target,
                tag,
                from,
                from_version,
                Vec::new(),
                "relsync's tag, no longer claimed by any channel (dropped when the ImageStream is applied)"
                    .to_string(),
            ));
        }
    }
}

/// Appends the drift items of every ImageStream: per desired tag `missing` (no spec tag),
/// `moved` (the spec points elsewhere, or the import caught up with the spec and holds
/// another image), `import-failed` (the tag's `ImportSuccess` is False for the current
/// generation; counted, with the condition's message), `importing` (spec right, import not
/// caught up: not counted), or `ok`; and `extra` (counted) per tag relsync manages that Git
/// no longer wants. `actual` is the imported image when known, else the spec's digest.
pub(super) fn drift(
    desired: &DesiredState,
    observed: &BTreeMap<ImageStreamRef, ObservedImageStream>,
    items: &mut Vec<DriftItem>,
) {
    for (is, want, live) in image_streams(desired, observed) {
        let target = Target::ImageStream(is.clone());
        let item = |tag: &str, desired, actual, state, counts, message: Option<String>| DriftItem {
            target: target.clone(),
            tag: tag.to_string(),
            desired,
            actual,
            state,
            message,
            counts,
            release: None,
        };
        for (tag, d) in want.into_iter().flatten() {
            let want_digest = Some(d.digest.clone());
            let Some(spec) = live.and_then(|l| l.spec_tags.get(tag)) else {
                let message = live.is_none().then(|| "ImageStream absent".to_string());
                items.push(item(
                    tag,
                    want_digest,
                    None,
                    DriftState::Missing,
                    true,
                    message,
                ));
                continue;
            };
            let status = live.and_then(|l| l.status_tags.get(tag));
            let imported = status.and_then(|s| s.image.clone());
            let actual = imported.clone().or_else(|| pull_spec_digest(&spec.from));
            // A status (or condition) generation counts once it reaches the spec's; with
            // either side unknown it counts.
            let current = |g: Option<i64>| match (g, spec.generation) {
                (Some(g), Some(s)) => g >= s,
                _ => true,
            };
            if spec.from != d.from {
                items.push(item(
                    tag,
                    want_digest,
                    actual,
                    DriftState::Moved,
                    true,
                    Some(format!("spec points to {}", spec.from)),
                ));
            } else if let Some(f) = status
                .and_then(|s| s.import_failure.as_ref())
                .filter(|f| current(f.generation))
            {
                items.push(item(
                    tag,
                    want_digest,
                    actual,
                    DriftState::ImportFailed,
                    true,
                    Some(f.message.clone()),
                ));
            } else {
                match status {
                    Some(s) if imported.is_some() && current(s.generation) => {
                        let state = if imported.as_ref() == Some(&d.digest) {
                            DriftState::Ok
                        } else {
                            DriftState::Moved
                        };
                        let message = (state == DriftState::Moved)
                            .then(|| "imported image differs from the spec".to_string());
                        items.push(item(
                            tag,
                            want_digest,
                            actual,
                            state,
                            state != DriftState::Ok,
                            message,
                        ));
                    }
                    _ => items.push(item(
                        tag,
                        want_digest,
                        actual,
                        DriftState::Importing,
                        false,
                        Some(match spec.generation {
                            Some(g) => format!("import of generation {g} not done yet"),
                            None => "not imported yet".to_string(),
                        }),
                    )),
                }
            }
        }
        for (tag, spec) in live.into_iter().flat_map(|l| &l.spec_tags) {
            if !spec.managed_by_relsync || want.is_some_and(|w| w.contains_key(tag)) {
                continue;
            }
            let actual = live
                .and_then(|l| l.status_tags.get(tag))
                .and_then(|s| s.image.clone())
                .or_else(|| pull_spec_digest(&spec.from));
            items.push(item(
                tag,
                None,
                actual,
                DriftState::Extra,
                true,
                Some("relsync's tag, no longer claimed by any channel".to_string()),
            ));
        }
    }
}
