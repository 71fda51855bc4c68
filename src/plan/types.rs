//! PURE: the vocabulary of plans and drift: targets, observed state, actions, refusals,
//! drift items. [`super::plan`] computes them; `report` renders them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::ObservedImageStream;
use crate::digest::Digest;
use crate::manifest::ImageStreamRef;

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

/// One tag that must change. Serializes exactly as docs/reference.md's JSON contract.
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
    /// A `mirror` of a payload release: how many components it has (`Some(None)`: not
    /// known yet, JSON `null`); absent from the JSON for anything else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Option<usize>>,
    /// The release a component tag belongs to (not part of the JSON contract; the text
    /// output summarises these per release).
    #[serde(skip)]
    pub release: Option<crate::desired::ComponentOf>,
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
    /// With signatures required: releases whose tags are in place but whose signature the
    /// target lacks (drift state `unsigned`); sync copies what is attached to them. Not
    /// actions (no tag changes), yet changes pending.
    pub signatures: Vec<super::UnsignedRelease>,
}

impl Plan {
    /// The exit code of `plan` and `sync --dry-run`: 1 on a conflict or refusal, 2 when
    /// changes are pending (actions, or signatures to copy), 0 in sync.
    pub fn exit_code(&self) -> i32 {
        if self.refusal.is_some() || !self.conflicts.is_empty() {
            1
        } else if !self.actions.is_empty() || !self.signatures.is_empty() {
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
    /// A release tag as desired whose digest has no signature in the target (no
    /// `sha256-<hex>.sig` tag, no `sha256-<hex>` referrers index), with signatures required.
    Unsigned,
}

impl DriftState {
    /// The word docs/reference.md's drift JSON uses, written the same in every format.
    pub fn word(self) -> &'static str {
        match self {
            DriftState::Missing => "missing",
            DriftState::Moved => "moved",
            DriftState::Extra => "extra",
            DriftState::Ok => "ok",
            DriftState::Importing => "importing",
            DriftState::ImportFailed => "import-failed",
            DriftState::Unsigned => "unsigned",
        }
    }
}

/// One row of a drift report. Serializes exactly as docs/reference.md's JSON contract.
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
    /// For a component tag of a payload release: the release's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
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
