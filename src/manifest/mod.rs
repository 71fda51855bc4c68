//! PURE: the YAML kinds of the desired-state repository, parsed with serde-saphyr (budgets
//! on) and checked, every problem reported as `file:line:col: message`. (`relsync.yaml`, whose
//! `kind: Config` is read by the same document reader, is [`crate::config`].)
//!
//! Entry point: [`validate`] for the manifests and policies of a revision. It collects every
//! problem it can find in one run instead of stopping at the first. The checks that need the derived state belong to [`crate::desired`], which
//! imports this module and never the other way round: [`crate::desired::load`] runs both.

mod diagnostic;
pub mod edit;
mod order;
pub(crate) mod parse;
mod validate;

use std::collections::{BTreeMap, HashSet};

pub use diagnostic::{Diagnostic, Diagnostics, Located, Severity, Span};
pub use order::{Order, VersionKey};

use crate::digest::Digest;

/// The `apiVersion` every document must carry.
pub const API_VERSION: &str = "relsync.dev/v1alpha1";

/// One file read from the desired-state repository: its path relative to the repository
/// root (as shown in messages) and its raw bytes.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the repository root, with `/` separators.
    pub path: String,
    /// The file's bytes (UTF-8 is checked by the parser).
    pub contents: Vec<u8>,
}

/// A `ReleaseStream`: the catalogue of known releases of one product line.
#[derive(Debug, Clone)]
pub struct ReleaseStream {
    /// `metadata.name`, with its place.
    pub name: Located<String>,
    /// Repository content is copied from (`host/path`).
    pub source: Located<String>,
    /// Repository published versions are tagged in (`host/path` or `oci:PATH`).
    pub target: Located<String>,
    /// How versions are ordered.
    pub order: Order,
    /// The releases, in file order.
    pub releases: Vec<Release>,
    /// `payload`: the releases are OpenShift/OKD payloads whose components are mirrored too.
    pub payload: Option<StreamPayload>,
}

/// A stream's `payload`: where the components of its releases go.
#[derive(Debug, Clone)]
pub struct StreamPayload {
    /// `payload.target`: the repository (`host/path` or `oci:PATH`) each component is
    /// copied into and tagged `<version tag>-<component name>` in.
    pub target: Located<String>,
}

/// One release of a stream: a version pinned by digest.
#[derive(Debug, Clone)]
pub struct Release {
    /// The version string (its registry tag is [`crate::tag::version_tag`] of it).
    pub version: Located<String>,
    /// The payload's digest.
    pub digest: Located<Digest>,
    /// Extra tags pinned to this release.
    pub tags: Vec<Located<String>>,
}

/// A `ReleaseChannel`: the versions of one stream that a group of users follows.
#[derive(Debug, Clone)]
pub struct ReleaseChannel {
    /// `metadata.name`, with its place.
    pub name: Located<String>,
    /// The stream this channel selects from.
    pub stream: Located<String>,
    /// Floating tags: always the newest version of this channel.
    pub tags: Vec<Located<String>>,
    /// Optional ImageStream to publish into.
    pub image_stream: Option<ImageStreamRef>,
    /// Optional promotion rule checked by `relsync check`.
    pub feeder: Option<Feeder>,
    /// The versions listed, in file order.
    pub versions: Vec<Located<String>>,
    /// Versions explicitly withdrawn (win over `versions`).
    pub tombstones: Vec<Located<String>>,
}

impl ReleaseChannel {
    /// The versions this channel publishes: `versions` minus `tombstones`.
    ///
    /// Linear in both lists (the tombstones are looked up in a set): a channel may list tens
    /// of thousands of each within the parser's size budget.
    pub fn published(&self) -> impl Iterator<Item = &Located<String>> {
        let tombstoned: HashSet<&str> = self.tombstones.iter().map(|t| t.value.as_str()).collect();
        self.versions
            .iter()
            .filter(move |v| !tombstoned.contains(v.value.as_str()))
    }
}

/// A cluster ImageStream, `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageStreamRef {
    /// The Kubernetes namespace the ImageStream lives in (`imageStream.namespace`).
    pub namespace: String,
    /// The ImageStream's `metadata.name` in that namespace (`imageStream.name`).
    pub name: String,
}

/// A channel's promotion rule: a version must have been in `channel` at least `delay`.
#[derive(Debug, Clone)]
pub struct Feeder {
    /// The feeding channel.
    pub channel: Located<String>,
    /// Minimum time on the default branch, in seconds.
    pub delay_seconds: u64,
}

/// A `Policy`: repository-wide rules. Several Policy documents all apply.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `metadata.name`s of the documents merged into this policy.
    pub names: Vec<Located<String>>,
    /// Globs on source repositories; empty means any source is allowed.
    pub allowed_sources: Vec<Located<String>>,
    /// Tags matching any of these never move once they exist.
    pub immutable_tags: Vec<Located<regex::Regex>>,
    /// A plan deleting more tags than this is refused whole (smallest of all policies).
    pub max_deletes_per_sync: Option<Located<u32>>,
    /// Pairs `[a, b]`: every version in channel `a` is also in channel `b`.
    pub channel_subsets: Vec<(Located<String>, Located<String>)>,
}

impl Policy {
    /// Whether `tag` is immutable under this policy.
    pub fn is_immutable(&self, tag: &str) -> bool {
        self.immutable_tags.iter().any(|r| r.value.is_match(tag))
    }
}

/// Everything the desired-state repository declares, validated.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// Streams by name.
    pub streams: BTreeMap<String, ReleaseStream>,
    /// Channels by name.
    pub channels: BTreeMap<String, ReleaseChannel>,
    /// The merged policy (empty when the repository has none).
    pub policy: Policy,
    /// Warnings found while validating, filled in by [`Validated::into_result`] and
    /// [`crate::desired::load`] (errors make those fail instead).
    pub warnings: Diagnostics,
}

/// What [`validate`] found: the manifests that passed and every problem, errors and warnings.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The documents that passed their checks (those with errors are left out);
    /// [`Manifests::warnings`] is empty, the warnings are in `problems`.
    pub manifests: Manifests,
    /// Every problem found, sorted by place; the manifests are valid when none is an error.
    pub problems: Diagnostics,
}

impl Validated {
    /// The manifests (with the warnings) when no problem is an error, else every problem.
    pub fn into_result(self) -> Result<Manifests, Diagnostics> {
        if self.problems.has_errors() {
            Err(self.problems)
        } else {
            Ok(Manifests {
                warnings: self.problems,
                ..self.manifests
            })
        }
    }
}

/// Parses and validates every file: manifests (ReleaseStream, ReleaseChannel) and policies
/// (Policy, which must live under `policies_dir`), collecting every problem found. The checks
/// that need the derived state are `desired`'s: [`crate::desired::load`] runs both.
pub fn validate(files: &[SourceFile], policies_dir: &str) -> Validated {
    let docs = parse::parse_files(files, policies_dir);
    validate::validate(docs)
}
