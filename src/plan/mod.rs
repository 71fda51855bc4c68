//! PURE: desired state + observed state → the plan (ordered actions) and the drift (the
//! difference itself, item by item).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::desired::DesiredState;
use crate::digest::Digest;
use crate::manifest::{ImageStreamRef, VersionKey};

mod image_stream;

pub use image_stream::{
    ImportFailure, ObservedImageStream, ObservedSpecTag, ObservedStatusTag, pull_spec_digest,
};

/// Where an action applies: a registry repository or a cluster ImageStream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A repository, `host/path` or `oci:PATH`, as written in the stream's `target`.
    Repo(String),
    /// An ImageStream; sorts after every repository.
    ImageStream(ImageStreamRef),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Repo(r) => f.write_str(r),
            Target::ImageStream(is) => write!(f, "imagestream:{}/{}", is.namespace, is.name),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the live state of one repository is, as far as it was observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedRepo {
    /// Every tag the registry listed → its digest when it was resolved (`None`: listed but
    /// not resolved, because neither Git, drift nor prune needed it).
    pub tags: BTreeMap<String, Option<Digest>>,
    /// Manifests checked by digest: present (`true`) or absent (`false`). Digests held by a
    /// resolved tag are present without being listed here.
    pub manifests: BTreeMap<Digest, bool>,
}

impl ObservedRepo {
    /// Whether the manifest `digest` is known to be in this repository.
    pub fn has_manifest(&self, digest: &Digest) -> bool {
        self.manifests.get(digest).copied().unwrap_or(false)
            || self.tags.values().any(|d| d.as_ref() == Some(digest))
    }
}

/// The live state of every target the desired state names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedState {
    /// Target repository → what it holds. A repository that does not exist is empty.
    pub repos: BTreeMap<String, ObservedRepo>,
    /// The cluster's ImageStreams (`None`: the cluster was not observed, so plan and drift
    /// say nothing about ImageStreams). An ImageStream missing from the map does not exist.
    pub image_streams: Option<BTreeMap<ImageStreamRef, ObservedImageStream>>,
}

/// The verbs of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Tag absent, content absent: copy it, then tag.
    Mirror,
    /// Tag absent, content present: add the tag.
    Tag,
    /// Move a tag to a newer version, or off a digest Git does not know.
    Retag,
    /// Move a tag to an older version (by the stream's order).
    Rollback,
    /// Remove a tag.
    Delete,
}

impl ActionKind {
    /// Rank for sorting within a target: mirror/tag, then retag/rollback, then delete.
    pub fn rank(self) -> u8 {
        match self {
            ActionKind::Mirror | ActionKind::Tag => 0,
            ActionKind::Retag | ActionKind::Rollback => 1,
            ActionKind::Delete => 2,
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActionKind::Mirror => "mirror",
            ActionKind::Tag => "tag",
            ActionKind::Retag => "retag",
            ActionKind::Rollback => "rollback",
            ActionKind::Delete => "delete",
        })
    }
}

/// One tag that must change. Serializes exactly as DESIGN.md's JSON contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// The verb.
    pub action: ActionKind,
    /// Where.
    pub target: Target,
    /// Which tag.
    pub tag: String,
    /// The digest the tag holds now (`None`: absent).
    pub from: Option<Digest>,
    /// The digest the tag must hold (`None`: delete).
    pub to: Option<Digest>,
    /// The version `from` is, when Git knows it.
    pub from_version: Option<String>,
    /// The version `to` is.
    pub to_version: Option<String>,
    /// Whether content must be copied first.
    pub copy: bool,
    /// The channels this tag serves.
    pub channels: Vec<String>,
    /// Why, in words.
    pub reason: String,
    /// The repository to copy from when `copy` is true (not part of the JSON contract).
    #[serde(skip)]
    pub source: Option<String>,
}

/// A tag relsync must not touch although it differs from Git: reported, never an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Where.
    pub target: Target,
    /// Which tag.
    pub tag: String,
    /// What Git wants.
    pub desired: Digest,
    /// What the tag holds.
    pub actual: Digest,
    /// Why it is not moved.
    pub reason: String,
}

/// Why a whole plan is refused (a problem in Git: nothing at all is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// More deletes than `maxDeletesPerSync` (or `--allow-deletes`) allows.
    DeleteCap {
        /// Deletes the whole plan would make.
        deletes: usize,
        /// The cap in force.
        max: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::DeleteCap { deletes, max } => write!(
                f,
                "plan refused: it deletes {deletes} tags and maxDeletesPerSync allows {max} (run with --allow-deletes {deletes} to accept)"
            ),
        }
    }
}

/// How to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Delete tags nobody claims.
    pub prune: bool,
    /// `--allow-deletes N`: accept up to N deletes whatever the policy says.
    pub allow_deletes: Option<u32>,
    /// `--channel N`: only the tags N claims (shared ones included).
    pub channel: Option<String>,
}

/// The ordered actions that turn observed into desired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The commit the desired state was read from.
    pub revision: String,
    /// Actions, sorted by target, then mirror/tag, retag/rollback, delete, then tag;
    /// ImageStream actions last.
    pub actions: Vec<Action>,
    /// Tags that differ but must not be moved (immutable tags).
    pub conflicts: Vec<Conflict>,
    /// Set when the plan must not be applied at all.
    pub refusal: Option<Refusal>,
}

impl Plan {
    /// The exit code of `plan` and `sync --dry-run`: 1 on a conflict or refusal, 2 when
    /// changes are pending, 0 in sync.
    pub fn exit_code(&self) -> i32 {
        if self.refusal.is_some() || !self.conflicts.is_empty() {
            1
        } else if !self.actions.is_empty() {
            2
        } else {
            0
        }
    }
}

/// The state of one drift item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftState {
    /// Desired, absent.
    Missing,
    /// Present with another digest.
    Moved,
    /// Present, not desired (unclaimed, or tombstoned).
    Extra,
    /// As desired.
    Ok,
    /// ImageStream tag whose import has not caught up with its spec yet.
    Importing,
    /// ImageStream tag whose import failed.
    ImportFailed,
}

impl DriftState {
    /// The word DESIGN.md's drift JSON uses, written the same in every format.
    pub fn word(self) -> &'static str {
        match self {
            DriftState::Missing => "missing",
            DriftState::Moved => "moved",
            DriftState::Extra => "extra",
            DriftState::Ok => "ok",
            DriftState::Importing => "importing",
            DriftState::ImportFailed => "import-failed",
        }
    }
}

/// One row of a drift report. Serializes exactly as DESIGN.md's JSON contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftItem {
    /// Where.
    pub target: Target,
    /// Which tag.
    pub tag: String,
    /// What Git wants (`None`: the tag must not exist, or nobody claims it).
    pub desired: Option<Digest>,
    /// What the tag holds (`None`: absent).
    pub actual: Option<Digest>,
    /// The verdict.
    pub state: DriftState,
    /// Extra detail (an import failure's message), not part of the JSON contract.
    #[serde(skip)]
    pub message: Option<String>,
    /// Whether this item makes the report out of sync (extras count only with prune on;
    /// a tombstoned tag still present always counts).
    #[serde(skip)]
    pub counts: bool,
}

/// Desired vs live, item by item, `ok` rows included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The commit the desired state was read from.
    pub revision: String,
    /// Sorted by target, then tag.
    pub items: Vec<DriftItem>,
}

impl Drift {
    /// True exactly when `drift` exits 0.
    pub fn in_sync(&self) -> bool {
        !self.items.iter().any(|i| i.counts)
    }
}

/// Computes the plan. Pure: the same inputs give the same plan.
///
/// For each desired tag of each target repository: a missing tag is a `mirror` (content
/// copied from the stream's source) or a `tag` (content already in the target); a tag
/// holding another digest is a `retag` (to a newer version, an equal one, or off a digest
/// Git does not know) or a `rollback` (to an older version), unless the policy makes it
/// immutable, in which case it is a [`Conflict`] and never an action. Tombstoned tags
/// present live are deleted whether or not prune is on; unclaimed tags (signature and
/// attestation tags excepted) are deleted only with `options.prune`.
///
/// Deletes are counted on the whole plan, before `--channel` narrowing, against
/// `options.allow_deletes`, else the policy's `maxDeletesPerSync`; a plan over the cap keeps
/// its actions (so a report shows what is refused) and gets a [`Refusal`]. `--channel N`
/// then keeps the actions and conflicts on the `(target, tag)` pairs N claims.
///
/// A desired tag that the registry listed but that was not resolved (which observation
/// never leaves for tags Git names) is retagged from an unknown digest, or left alone if
/// immutable.
///
/// When the cluster was observed (`observed.image_streams` is `Some`), ImageStream actions
/// follow every repository's: see [`ObservedImageStream`] for what is compared. Deletes of
/// relsync's own ImageStream tags count against the cap, and under `--channel N` they stay
/// in the plan for every ImageStream N publishes into (it is applied with its whole tag
/// set).
pub fn plan(
    revision: &str,
    desired: &DesiredState,
    observed: &ObservedState,
    policy: &crate::manifest::Policy,
    options: &PlanOptions,
) -> Plan {
    let empty = ObservedRepo::default();
    let mut actions = Vec::new();
    let mut conflicts = Vec::new();

    for (repo, want) in &desired.repos {
        let live = observed.repos.get(repo).unwrap_or(&empty);
        let target = Target::Repo(repo.clone());
        let version_of = |d: &Digest| want.known.get(d).map(|k| k.version.clone());

        for (tag, d) in &want.tags {
            let channels: Vec<String> = d.channels.iter().cloned().collect();
            let action = |kind: ActionKind, from: Option<Digest>, reason: String| Action {
                action: kind,
                target: target.clone(),
                tag: tag.clone(),
                from_version: from.as_ref().and_then(version_of),
                from,
                to: Some(d.digest.clone()),
                to_version: Some(d.version.clone()),
                copy: kind == ActionKind::Mirror,
                channels: channels.clone(),
                reason,
                source: (kind == ActionKind::Mirror).then(|| d.source.clone()),
            };
            match live.tags.get(tag) {
                None if live.has_manifest(&d.digest) => actions.push(action(
                    ActionKind::Tag,
                    None,
                    "tag missing; content already in target".to_string(),
                )),
                None => actions.push(action(
                    ActionKind::Mirror,
                    None,
                    "tag missing; content not in target".to_string(),
                )),
                Some(Some(actual)) if *actual == d.digest => {}
                Some(None) => {
                    if !policy.is_immutable(tag) {
                        actions.push(action(
                            ActionKind::Retag,
                            None,
                            "live digest not resolved".to_string(),
                        ));
                    }
                }
                Some(Some(actual)) if policy.is_immutable(tag) => conflicts.push(Conflict {
                    target: target.clone(),
                    tag: tag.clone(),
                    desired: d.digest.clone(),
                    actual: actual.clone(),
                    reason: match want.known.get(actual) {
                        Some(k) => format!(
                            "immutable tag holds {} instead of {}; relsync never moves it (policy immutableTags)",
                            k.version, d.version
                        ),
                        None => format!(
                            "immutable tag holds a digest Git does not know instead of {}; relsync never moves it (policy immutableTags)",
                            d.version
                        ),
                    },
                }),
                Some(Some(actual)) => {
                    let (kind, reason) =
                        move_verdict(tag, &Wanted::from(d), want.known.get(actual));
                    actions.push(action(kind, Some(actual.clone()), reason));
                }
            }
        }

        for (tag, a) in &want.absent {
            if let Some(actual) = live.tags.get(tag) {
                let channels: Vec<String> = a.channels.iter().cloned().collect();
                actions.push(delete(
                    &target,
                    tag,
                    actual.clone(),
                    actual.as_ref().and_then(version_of),
                    channels.clone(),
                    format!("tombstoned in {}", channels.join(", ")),
                ));
            }
        }

        if options.prune {
            for (tag, actual) in &live.tags {
                if is_extra(want, tag) {
                    actions.push(delete(
                        &target,
                        tag,
                        actual.clone(),
                        actual.as_ref().and_then(version_of),
                        Vec::new(),
                        "not claimed by any channel (prune)".to_string(),
                    ));
                }
            }
        }
    }

    // ImageStreams, when the cluster was observed; `Target::ImageStream` sorts after every
    // repository.
    if let Some(live) = &observed.image_streams {
        image_stream::plan(desired, live, &mut actions);
    }

    let deletes = actions
        .iter()
        .filter(|a| a.action == ActionKind::Delete)
        .count();
    let cap = options
        .allow_deletes
        .or(policy.max_deletes_per_sync.as_ref().map(|m| m.value));
    let refusal = match cap {
        Some(max) if deletes > max as usize => Some(Refusal::DeleteCap { deletes, max }),
        _ => None,
    };

    if let Some(channel) = &options.channel {
        let claims = desired.channel_claims.get(channel);
        let claimed = |target: &Target, tag: &str| {
            claims.is_some_and(|c| c.contains(&(target.to_string(), tag.to_string())))
        };
        // An ImageStream is applied with its whole tag set, so deleting relsync's tags that
        // Git no longer wants is part of applying any ImageStream the channel publishes into.
        let publishes_into = |target: &Target| {
            matches!(target, Target::ImageStream(_)) && {
                let t = target.to_string();
                claims.is_some_and(|c| c.iter().any(|(ct, _)| *ct == t))
            }
        };
        actions.retain(|a| {
            claimed(&a.target, &a.tag)
                || (a.action == ActionKind::Delete && publishes_into(&a.target))
        });
        conflicts.retain(|c| claimed(&c.target, &c.tag));
    }

    actions.sort_by(|a, b| {
        (&a.target, a.action.rank(), &a.tag).cmp(&(&b.target, b.action.rank(), &b.tag))
    });
    conflicts.sort_by(|a, b| (&a.target, &a.tag).cmp(&(&b.target, &b.tag)));
    Plan {
        revision: revision.to_string(),
        actions,
        conflicts,
        refusal,
    }
}

/// Whether a live tag of a repository is extra: neither desired, nor explicitly absent, nor a
/// signature or attestation tag. A name that is not a registry tag at all (an `oci:`
/// layout's `index.json` may hold `host/repo:tag` names written by other tools) is outside
/// relsync's reach: it can be neither resolved nor deleted, so it is never extra.
fn is_extra(want: &crate::desired::DesiredRepo, tag: &str) -> bool {
    !want.tags.contains_key(tag)
        && !want.absent.contains_key(tag)
        && !crate::tag::is_signature_tag(tag)
        && crate::tag::is_valid_tag(tag)
}

/// A delete action.
fn delete(
    target: &Target,
    tag: &str,
    from: Option<Digest>,
    from_version: Option<String>,
    channels: Vec<String>,
    reason: String,
) -> Action {
    Action {
        action: ActionKind::Delete,
        target: target.clone(),
        tag: tag.to_string(),
        from,
        to: None,
        from_version,
        to_version: None,
        copy: false,
        channels,
        reason,
        source: None,
    }
}

/// What a moved tag must hold, for telling a retag from a rollback.
struct Wanted<'a> {
    version: &'a str,
    stream: &'a str,
    key: &'a VersionKey,
    floating: bool,
}

impl<'a> From<&'a crate::desired::DesiredTag> for Wanted<'a> {
    fn from(t: &'a crate::desired::DesiredTag) -> Self {
        Wanted {
            version: &t.version,
            stream: &t.stream,
            key: &t.key,
            floating: t.kind == crate::desired::TagKind::Floating,
        }
    }
}

/// Retag or rollback, and why, for a mutable tag that holds `live` instead of `want`.
fn move_verdict(
    tag: &str,
    want: &Wanted<'_>,
    live: Option<&crate::desired::KnownRelease>,
) -> (ActionKind, String) {
    use std::cmp::Ordering;
    let Some(live) = live else {
        return (
            ActionKind::Retag,
            "moved off a digest Git does not know".to_string(),
        );
    };
    if live.stream != want.stream {
        return (
            ActionKind::Retag,
            format!(
                "holds {} of stream {}; Git pins {}",
                live.version, live.stream, want.version
            ),
        );
    }
    let floating = want.floating;
    match live.key.precedence(want.key) {
        Ordering::Greater if floating => (
            ActionKind::Rollback,
            format!("floating tag {tag} ahead: {} is newest", want.version),
        ),
        Ordering::Greater => (
            ActionKind::Rollback,
            format!("holds newer {}; Git pins {}", live.version, want.version),
        ),
        Ordering::Less if floating => (
            ActionKind::Retag,
            format!("floating tag {tag} behind: {} is newest", want.version),
        ),
        Ordering::Less => (
            ActionKind::Retag,
            format!("holds older {}; Git pins {}", live.version, want.version),
        ),
        Ordering::Equal => (
            ActionKind::Retag,
            format!("holds {}; Git pins {}", live.version, want.version),
        ),
    }
}

/// Computes the drift. Pure.
///
/// One item per desired tag (`ok`, `missing` or `moved`), per tombstoned tag still present
/// (`extra`, always counted) and per unclaimed live tag (`extra`, counted only with
/// `options.prune`; signature and attestation tags are never extra), sorted by target, then
/// tag. `--channel N` keeps the items on the `(target, tag)` pairs N claims; unclaimed extras
/// belong to no channel, so a narrowed report leaves them out. When the cluster was observed,
/// ImageStream items follow (`ok`, `missing`, `moved`, `importing` (not counted),
/// `import-failed`, and `extra` for relsync's own tags Git no longer wants, kept under
/// `--channel N` for the ImageStreams N publishes into).
pub fn drift(
    revision: &str,
    desired: &DesiredState,
    observed: &ObservedState,
    options: &PlanOptions,
) -> Drift {
    let empty = ObservedRepo::default();
    let mut items = Vec::new();
    for (repo, want) in &desired.repos {
        let live = observed.repos.get(repo).unwrap_or(&empty);
        let target = Target::Repo(repo.clone());
        let item = |tag: &str, desired, actual, state, counts, message| DriftItem {
            target: target.clone(),
            tag: tag.to_string(),
            desired,
            actual,
            state,
            message,
            counts,
        };
        for (tag, d) in &want.tags {
            let want_digest = Some(d.digest.clone());
            items.push(match live.tags.get(tag) {
                None => item(tag, want_digest, None, DriftState::Missing, true, None),
                Some(Some(a)) if *a == d.digest => item(
                    tag,
                    want_digest,
                    Some(a.clone()),
                    DriftState::Ok,
                    false,
                    None,
                ),
                Some(Some(a)) => item(
                    tag,
                    want_digest,
                    Some(a.clone()),
                    DriftState::Moved,
                    true,
                    None,
                ),
                Some(None) => item(
                    tag,
                    want_digest,
                    None,
                    DriftState::Moved,
                    true,
                    Some("live digest not resolved".to_string()),
                ),
            });
        }
        for (tag, actual) in &live.tags {
            if want.absent.contains_key(tag) {
                items.push(item(
                    tag,
                    None,
                    actual.clone(),
                    DriftState::Extra,
                    true,
                    Some("tombstoned".to_string()),
                ));
            } else if options.channel.is_none() && is_extra(want, tag) {
                items.push(item(
                    tag,
                    None,
                    actual.clone(),
                    DriftState::Extra,
                    options.prune,
                    Some("not claimed by any channel".to_string()),
                ));
            }
        }
    }

    // ImageStream items, when the cluster was observed.
    if let Some(live) = &observed.image_streams {
        image_stream::drift(desired, live, &mut items);
    }

    if let Some(channel) = &options.channel {
        let claims = desired.channel_claims.get(channel);
        // relsync's own ImageStream tags that Git no longer wants go when any ImageStream the
        // channel publishes into is applied, so they stay in a narrowed report.
        let publishes_into = |target: &Target| {
            matches!(target, Target::ImageStream(_)) && {
                let t = target.to_string();
                claims.is_some_and(|c| c.iter().any(|(ct, _)| *ct == t))
            }
        };
        items.retain(|i| {
            claims.is_some_and(|c| c.contains(&(i.target.to_string(), i.tag.clone())))
                || (i.state == DriftState::Extra && publishes_into(&i.target))
        });
    }
    items.sort_by(|a, b| (&a.target, &a.tag).cmp(&(&b.target, &b.tag)));
    Drift {
        revision: revision.to_string(),
        items,
    }
}

#[cfg(test)]
mod tests;
