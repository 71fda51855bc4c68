//! PURE: validated manifests → the desired state, keyed by target repository across all
//! streams (two streams may share a target; their tags are one set), plus one desired tag set
//! per ImageStream.

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::Digest;
use crate::manifest::{Diagnostics, ImageStreamRef, Manifests, Order, Span, VersionKey};

/// What a desired tag is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TagKind {
    /// The version's own tag (`4.2.14_amd64` for `4.2.14+amd64`).
    Version,
    /// An extra tag pinned to a release in the stream (`tags:` of a release).
    Pinned,
    /// A channel's floating tag (newest version of the channel).
    Floating,
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
    /// The stream.
    pub stream: String,
    /// The version.
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
    /// The digest.
    pub digest: Digest,
    /// The version.
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
    /// Channel name → the tags it claims, per target (for `--channel` narrowing).
    pub channel_claims: BTreeMap<String, BTreeSet<(String, String)>>,
}

/// The registry tag of a version: the version itself, with `+` written `_`.
pub fn version_tag(version: &str) -> String {
    version.replace('+', "_")
}

/// The sort key of `version` in a stream with `order`, given its index in `releases`.
/// Returns `None` for a version that is not semver under `Order::Semver` (validation
/// rejects those before this is reached).
pub fn version_key(order: Order, version: &str, index: usize) -> Option<VersionKey> {
    match order {
        Order::Semver => semver::Version::parse(version).ok().map(VersionKey::Semver),
        Order::Listed => Some(VersionKey::Listed(index)),
    }
}

/// Whether a tag is a signature or attestation tag (`sha256-<hex>.sig|.att|.sbom`), which is
/// never extra.
pub fn is_signature_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let Some((hex, suffix)) = rest.split_once('.') else {
        return false;
    };
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && matches!(suffix, "sig" | "att" | "sbom")
}

/// Derives the desired state from validated manifests.
///
/// The checks that need the derived state itself are made here and returned as errors, all
/// of them in one run: a tag claimed twice with different digests (naming both places), a
/// tie for a channel's newest version, and floating tags on a channel that publishes no
/// version.
pub fn derive(manifests: &Manifests) -> Result<DesiredState, Diagnostics> {
    todo!("desired::derive: {}", manifests.streams.len())
}
