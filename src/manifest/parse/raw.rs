//! What parsing hands to validation: the documents as written, before semantic checks.

use super::shape::Kind;
use crate::manifest::{Diagnostics, ImageStreamRef, Located, Span};

/// A `ReleaseStream` as written, before semantic checks.
#[derive(Debug)]
pub(crate) struct RawStream {
    pub(crate) name: Located<String>,
    pub(crate) source: Located<String>,
    pub(crate) target: Located<String>,
    pub(crate) order: crate::manifest::Order,
    pub(crate) releases: Vec<RawRelease>,
    /// `spec.payload.target`, when the stream's releases are payloads.
    pub(crate) payload_target: Option<Located<String>>,
}

/// One release as written; a missing field has already been reported.
#[derive(Debug)]
pub(crate) struct RawRelease {
    pub(crate) version: Option<Located<String>>,
    pub(crate) digest: Option<Located<String>>,
    pub(crate) tags: Vec<Located<String>>,
}

/// A `ReleaseChannel` as written.
#[derive(Debug)]
pub(crate) struct RawChannel {
    pub(crate) name: Located<String>,
    pub(crate) stream: Located<String>,
    pub(crate) tags: Vec<Located<String>>,
    pub(crate) image_stream: Option<ImageStreamRef>,
    pub(crate) feeder: Option<RawFeeder>,
    pub(crate) versions: Vec<Located<String>>,
    pub(crate) tombstones: Vec<Located<String>>,
}

/// A channel's feeder as written.
#[derive(Debug)]
pub(crate) struct RawFeeder {
    pub(crate) channel: Located<String>,
    pub(crate) delay: Option<Located<String>>,
}

/// One `Policy` document as written.
#[derive(Debug)]
pub(crate) struct RawPolicy {
    pub(crate) name: Located<String>,
    pub(crate) allowed_sources: Vec<Located<String>>,
    pub(crate) immutable_tags: Option<Located<String>>,
    pub(crate) max_deletes_per_sync: Option<Located<u32>>,
    pub(crate) channel_subsets: Vec<RawSubset>,
}

/// One entry of `channelSubsets`: should be two channel names.
#[derive(Debug)]
pub(crate) struct RawSubset {
    pub(crate) span: Span,
    pub(crate) channels: Vec<Located<String>>,
}

/// Raw documents of every file, plus the problems found while parsing.
#[derive(Debug, Default)]
pub(crate) struct ParsedDocs {
    pub(crate) problems: Diagnostics,
    pub(crate) streams: Vec<RawStream>,
    pub(crate) channels: Vec<RawChannel>,
    pub(crate) policies: Vec<RawPolicy>,
    /// Documents that exist but could not be read (their problems are reported): kind and
    /// `metadata.name`. References to them are not reported again as unknown.
    pub(crate) broken: Vec<(Kind, String)>,
}
