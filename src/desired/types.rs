//! The desired state: what Git wants in each target repository and each ImageStream.

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::Digest;
use crate::manifest::{ImageStreamRef, Span, VersionKey};

/// What a desired tag is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TagKind {
    /// The version's own tag (`4.2.14_amd64` for `4.2.14+amd64`).
    Version,
    /// An extra tag pinned to a release in the stream (`tags:` of a release).
    Pinned,
    /// A channel's floating tag (newest version of the channel).
    Floating,
    /// A component tag of a payload release in `payload.target` (derived from content:
    /// [`crate::desired::add_components`]); `version` is the release's.
    Component,
}

/// One tag Git wants in a target repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredTag {
    /// The digest the tag must hold.
    pub digest: Digest,
    /// The version that digest is.
    pub version: String,
    /// The stream the version belongs to.
    pub stream: String,
    /// The source repository content is copied from.
    pub source: String,
    /// Why the tag is wanted.
    pub kind: TagKind,
    /// The version's sort key under its stream's order (to tell a retag from a rollback).
    pub key: VersionKey,
    /// The channels that claim this tag (sorted).
    pub channels: BTreeSet<String>,
    /// Where the claim is written (the release or the channel's floating tag).
    pub span: Span,
}

/// A tag Git wants gone: a tombstoned version that no channel still lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsentTag {
    /// The tombstoned version.
    pub version: String,
    /// The channels that tombstone it.
    pub channels: BTreeSet<String>,
    /// Where the (first) tombstone is written.
    pub span: Span,
}

/// A release the stream catalogue knows, for mapping a live digest back to a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRelease {
    /// The name of the stream whose catalogue lists the release.
    pub stream: String,
    /// The release's version string, as the stream writes it (`+` not yet replaced).
    pub version: String,
    /// Its sort key under the stream's order.
    pub key: VersionKey,
}

/// The desired state of one target repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredRepo {
    /// Tags that must exist, tag → what it must hold.
    pub tags: BTreeMap<String, DesiredTag>,
    /// Tags that must not exist (explicit deletes, made whether or not prune is on).
    pub absent: BTreeMap<String, AbsentTag>,
    /// Every release of the streams that publish here, by digest (a digest may be several
    /// versions; the first in stream order is kept).
    pub known: BTreeMap<Digest, KnownRelease>,
}

/// One tag of an ImageStream: `<stream.target>@<digest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredImageStreamTag {
    /// The pull spec `<target>@<digest>`.
    pub from: String,
    /// The release digest the ImageStream tag must point at (the `@` part of `from`).
    pub digest: Digest,
    /// The version that digest is, for messages and drift reports.
    pub version: String,
    /// The channels that claim it.
    pub channels: BTreeSet<String>,
}

/// Everything Git wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// Target repository (`host/path` or `oci:PATH`) → its desired tags.
    pub repos: BTreeMap<String, DesiredRepo>,
    /// ImageStream → tag → desired image.
    pub image_streams: BTreeMap<ImageStreamRef, BTreeMap<String, DesiredImageStreamTag>>,
    /// Channel name → the tags it claims, as `(target, tag)` pairs (for `--channel`
    /// narrowing): its versions' tags, their pinned extra tags, its floating tags and its
    /// tombstones' tags, in its stream's target; and, when it publishes into an ImageStream,
    /// every tag of that ImageStream (which is always applied whole), with the target written
    /// as [`crate::plan::Target`] displays it (`imagestream:<ns>/<name>`).
    pub channel_claims: BTreeMap<String, BTreeSet<(String, String)>>,
    /// Payload streams: component tags, component counts, refused releases (filled by
    /// [`crate::desired::add_components`]; empty without payload streams).
    pub payloads: super::payload::DesiredPayloads,
}
