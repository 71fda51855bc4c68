//! YAML → raw documents, with spans (serde-saphyr, budgets on).
//!
//! Each file is first scanned once with the YAML event parser (granit-parser, which
//! serde-saphyr re-exports) to find its document boundaries, syntax errors and nesting that
//! is too deep; nothing is expanded, so the scan is linear. Each document is then deserialized
//! on its own with serde-saphyr (budgets on) into one strict struct (`deny_unknown_fields`
//! everywhere, every field `Spanned`), so that a problem in one document never hides the
//! documents after it. (serde-saphyr's own multi-document iterator skips to the next document
//! after an error, but it stops silently when that skip itself meets a budget limit or a syntax
//! error, losing every later document; deserializing document slices avoids that.) When
//! serde-saphyr reports an error, the document is scanned again to name the field at fault
//! (`spec.releases[3].digest`) and what was expected there.
//!
//! The spec of every kind is one union struct; which fields a kind may carry, and which it
//! must, is checked here by hand, with the field's own place in the file.

use std::cell::OnceCell;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
use serde_saphyr::{Location, Spanned};

use super::{
    API_VERSION, Config, Diagnostic, Diagnostics, ImageStreamRef, Located, SourceFile, Span,
};

/// Files larger than this are refused before parsing.
pub(super) const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted (real manifests nest 4 deep).
pub(super) const MAX_DEPTH: usize = 64;
/// Most aliases (`*name`) accepted in one document.
pub(super) const MAX_ALIASES: usize = 1_000;
/// Most anchors (`&name`) accepted in one document.
const MAX_ANCHORS: usize = 1_000;
/// Most events replayed from aliases in one document.
const MAX_REPLAYED_EVENTS: usize = 100_000;
/// Most scalar bytes in one document, counting every alias expansion again: this bounds what
/// an alias bomb can make of a file.
const MAX_SCALAR_BYTES: usize = MAX_FILE_BYTES;

type S<T> = Spanned<T>;
/// A list of strings, each with its place.
type StringList = Vec<S<String>>;

// ---------------------------------------------------------------------------------------------
// The strict shape of a document.

/// One YAML document of any kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct DocDe {
    pub(super) api_version: Option<S<String>>,
    pub(super) kind: Option<S<String>>,
    pub(super) metadata: Option<S<MetaDe>>,
    pub(super) spec: Option<S<SpecDe>>,
}

/// `metadata`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct MetaDe {
    pub(super) name: Option<S<String>>,
}

/// The union of every kind's `spec` fields; [`Kind::allows`] says which belong to which kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SpecDe {
    // ReleaseStream
    pub(super) source: Option<S<String>>,
    pub(super) target: Option<S<String>>,
    pub(super) order: Option<S<String>>,
    pub(super) releases: Option<S<Vec<S<ReleaseDe>>>>,
    // ReleaseChannel
    pub(super) stream: Option<S<String>>,
    pub(super) tags: Option<S<Vec<S<String>>>>,
    pub(super) image_stream: Option<S<ImageStreamDe>>,
    pub(super) feeder: Option<S<FeederDe>>,
    pub(super) versions: Option<S<Vec<S<String>>>>,
    pub(super) tombstones: Option<S<Vec<S<String>>>>,
    // Policy
    pub(super) allowed_sources: Option<S<Vec<S<String>>>>,
    pub(super) immutable_tags: Option<S<String>>,
    pub(super) max_deletes_per_sync: Option<S<u32>>,
    pub(super) channel_subsets: Option<S<Vec<S<StringList>>>>,
    // Config
    pub(super) git: Option<S<GitDe>>,
    pub(super) registries: Option<S<Vec<S<RegistryDe>>>>,
    pub(super) cluster: Option<S<ClusterDe>>,
    pub(super) sync: Option<S<SyncDe>>,
    pub(super) webhook: Option<S<WebhookDe>>,
}

impl SpecDe {
    /// The fields present, by their YAML name, with the place of their value.
    fn present(&self) -> Vec<(&'static str, Location)> {
        fn at<T>(out: &mut Vec<(&'static str, Location)>, name: &'static str, f: &Option<S<T>>) {
            if let Some(v) = f {
                out.push((name, v.referenced));
            }
        }
        let mut out = Vec::new();
        at(&mut out, "source", &self.source);
        at(&mut out, "target", &self.target);
        at(&mut out, "order", &self.order);
        at(&mut out, "releases", &self.releases);
        at(&mut out, "stream", &self.stream);
        at(&mut out, "tags", &self.tags);
        at(&mut out, "imageStream", &self.image_stream);
        at(&mut out, "feeder", &self.feeder);
        at(&mut out, "versions", &self.versions);
        at(&mut out, "tombstones", &self.tombstones);
        at(&mut out, "allowedSources", &self.allowed_sources);
        at(&mut out, "immutableTags", &self.immutable_tags);
        at(&mut out, "maxDeletesPerSync", &self.max_deletes_per_sync);
        at(&mut out, "channelSubsets", &self.channel_subsets);
        at(&mut out, "git", &self.git);
        at(&mut out, "registries", &self.registries);
        at(&mut out, "cluster", &self.cluster);
        at(&mut out, "sync", &self.sync);
        at(&mut out, "webhook", &self.webhook);
        out
    }
}

/// One entry of a stream's `releases`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ReleaseDe {
    pub(super) version: Option<S<String>>,
    pub(super) digest: Option<S<String>>,
    pub(super) tags: Option<S<Vec<S<String>>>>,
}

/// A channel's `imageStream`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ImageStreamDe {
    pub(super) namespace: Option<S<String>>,
    pub(super) name: Option<S<String>>,
}

/// A channel's `feeder`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct FeederDe {
    pub(super) channel: Option<S<String>>,
    pub(super) delay: Option<S<String>>,
}

/// Config `spec.git`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct GitDe {
    pub(super) repo: Option<S<String>>,
    pub(super) revision: Option<S<String>>,
    pub(super) path: Option<S<String>>,
    pub(super) policies: Option<S<String>>,
}

/// Config `spec.registries[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RegistryDe {
    pub(super) host: Option<S<String>>,
    pub(super) insecure: Option<S<bool>>,
    pub(super) ca_file: Option<S<String>>,
    pub(super) username_env: Option<S<String>>,
    pub(super) password_env: Option<S<String>>,
    pub(super) map_to: Option<S<String>>,
}

/// Config `spec.cluster`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ClusterDe {
    pub(super) enabled: Option<S<bool>>,
}

/// Config `spec.sync`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SyncDe {
    pub(super) concurrency: Option<S<u64>>,
    pub(super) prune: Option<S<bool>>,
    pub(super) auto: Option<S<bool>>,
    pub(super) self_heal: Option<S<bool>>,
    pub(super) interval: Option<S<String>>,
}

/// Config `spec.webhook`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct WebhookDe {
    pub(super) secret_env: Option<S<String>>,
}

/// The kinds of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    ReleaseStream,
    ReleaseChannel,
    Policy,
    Config,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "ReleaseStream" => Some(Kind::ReleaseStream),
            "ReleaseChannel" => Some(Kind::ReleaseChannel),
            "Policy" => Some(Kind::Policy),
            "Config" => Some(Kind::Config),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::ReleaseStream => "ReleaseStream",
            Kind::ReleaseChannel => "ReleaseChannel",
            Kind::Policy => "Policy",
            Kind::Config => "Config",
        }
    }

    /// The `spec` fields of this kind.
    fn allows(self, field: &str) -> bool {
        let fields: &[&str] = match self {
            Kind::ReleaseStream => &["source", "target", "order", "releases"],
            Kind::ReleaseChannel => &[
                "stream",
                "tags",
                "imageStream",
                "feeder",
                "versions",
                "tombstones",
            ],
            Kind::Policy => &[
                "allowedSources",
                "immutableTags",
                "maxDeletesPerSync",
                "channelSubsets",
            ],
            Kind::Config => &["git", "registries", "cluster", "sync", "webhook"],
        };
        fields.contains(&field)
    }
}

// ---------------------------------------------------------------------------------------------
// What parsing hands to validation.

/// A `ReleaseStream` as written, before semantic checks.
#[derive(Debug)]
pub(super) struct RawStream {
    pub(super) name: Located<String>,
    pub(super) source: Located<String>,
    pub(super) target: Located<String>,
    pub(super) order: super::Order,
    pub(super) releases: Vec<RawRelease>,
}

/// One release as written; a missing field has already been reported.
#[derive(Debug)]
pub(super) struct RawRelease {
    pub(super) version: Option<Located<String>>,
    pub(super) digest: Option<Located<String>>,
    pub(super) tags: Vec<Located<String>>,
}

/// A `ReleaseChannel` as written.
#[derive(Debug)]
pub(super) struct RawChannel {
    pub(super) name: Located<String>,
    pub(super) stream: Located<String>,
    pub(super) tags: Vec<Located<String>>,
    pub(super) image_stream: Option<ImageStreamRef>,
    pub(super) feeder: Option<RawFeeder>,
    pub(super) versions: Vec<Located<String>>,
    pub(super) tombstones: Vec<Located<String>>,
}

/// A channel's feeder as written.
#[derive(Debug)]
pub(super) struct RawFeeder {
    pub(super) channel: Located<String>,
    pub(super) delay: Option<Located<String>>,
}

/// One `Policy` document as written.
#[derive(Debug)]
pub(super) struct RawPolicy {
    pub(super) name: Located<String>,
    pub(super) allowed_sources: Vec<Located<String>>,
    pub(super) immutable_tags: Option<Located<String>>,
    pub(super) max_deletes_per_sync: Option<Located<u32>>,
    pub(super) channel_subsets: Vec<RawSubset>,
}

/// One entry of `channelSubsets`: should be two channel names.
#[derive(Debug)]
pub(super) struct RawSubset {
    pub(super) span: Span,
    pub(super) channels: Vec<Located<String>>,
}

/// Raw documents of every file, plus the problems found while parsing.
#[derive(Debug, Default)]
pub(super) struct ParsedDocs {
    pub(super) problems: Diagnostics,
    pub(super) streams: Vec<RawStream>,
    pub(super) channels: Vec<RawChannel>,
    pub(super) policies: Vec<RawPolicy>,
    /// Documents that exist but could not be read (their problems are reported): kind and
    /// `metadata.name`. References to them are not reported again as unknown.
    pub(super) broken: Vec<(Kind, String)>,
}

// ---------------------------------------------------------------------------------------------
// Entry points.

pub(super) fn parse_files(files: &[SourceFile], policies_dir: &str) -> ParsedDocs {
    let mut out = ParsedDocs::default();
    let policies_prefix = policies_dir.trim_end_matches('/');
    for file in files {
        let under_policies = !policies_prefix.is_empty()
            && file
                .path
                .strip_prefix(policies_prefix)
                .is_some_and(|rest| rest.starts_with('/'));
        let mut problems = Diagnostics::default();
        let broken = for_each_document(&file.path, &file.contents, &mut problems, |ctx, doc| {
            convert_manifest(ctx, doc, under_policies, policies_prefix, &mut out)
        });
        out.broken.extend(broken);
        out.problems.0.extend(problems.0);
    }
    out
}

pub(super) fn parse_config(path: &str, contents: &[u8]) -> Result<Config, Diagnostics> {
    let mut problems = Diagnostics::default();
    let mut config = None;
    let mut count = 0;
    for_each_document(path, contents, &mut problems, |ctx, doc| {
        count += 1;
        if count > 1 {
            ctx.error(
                ctx.span(doc.referenced),
                "a config file holds one document (found a second one)",
            );
            return;
        }
        config = super::config::from_document(ctx, doc);
    });
    if count == 0 && !problems.has_errors() {
        problems.push(Diagnostic::error(
            Span::file(path),
            "no Config document found (expected `kind: Config`)",
        ));
    }
    for d in problems.0.iter_mut() {
        d.message = shown(&d.message);
    }
    problems.sort();
    match config {
        Some(c) if !problems.has_errors() => Ok(c),
        _ => Err(problems),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading one file, document by document.

/// One document being converted: its file, its text, and where its problems go.
pub(super) struct DocCtx<'a> {
    file: Arc<str>,
    /// The document's own text (a slice of the file starting at a line start).
    text: &'a str,
    /// Lines of the file before `text`.
    line_offset: u64,
    /// Built on first need: the document's nodes and their field paths.
    index: OnceCell<NodeIndex>,
    problems: std::cell::RefCell<Vec<Diagnostic>>,
}

impl DocCtx<'_> {
    /// The file's path as shown in messages.
    pub(super) fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// The place of a serde-saphyr location, in file coordinates.
    pub(super) fn span(&self, loc: Location) -> Span {
        if loc.line() == 0 {
            Span::new(self.file.clone(), self.line_offset + 1, 1)
        } else {
            Span::new(
                self.file.clone(),
                loc.line() + self.line_offset,
                loc.column(),
            )
        }
    }

    /// A spanned value as a located one.
    pub(super) fn located<T>(&self, s: S<T>) -> Located<T> {
        Located::new(s.value, self.span(s.referenced))
    }

    /// Records an error.
    pub(super) fn error(&self, span: Span, message: impl Into<String>) {
        self.problems
            .borrow_mut()
            .push(Diagnostic::error(span, message));
    }

    fn index(&self) -> &NodeIndex {
        self.index.get_or_init(|| NodeIndex::build(self.text))
    }

    /// The place of the key `path` (e.g. `["spec", "versions"]`), else `fallback`.
    pub(super) fn key_span(&self, path: &[&str], fallback: Location) -> Span {
        match self.key_at(&path.join(".")) {
            Some(span) => span,
            None => self.span(fallback),
        }
    }

    /// The place of the key written at `path` (`spec.releases[1].digest`), if any.
    fn key_at(&self, path: &str) -> Option<Span> {
        let &(line, col) = self.index().keys.get(path)?;
        Some(Span::new(self.file.clone(), line + self.line_offset, col))
    }
}

/// The options every document is read with: strict, budgets on, no snippets.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_FILE_BYTES),
            max_depth: MAX_DEPTH,
            max_aliases: MAX_ALIASES,
            max_anchors: MAX_ANCHORS,
            max_total_scalar_bytes: MAX_SCALAR_BYTES,
            max_recorded_anchor_events: MAX_REPLAYED_EVENTS,
            max_recorded_anchor_bytes: MAX_SCALAR_BYTES,
            max_documents: 1,
            // A 16 MiB stream holds about 150,000 releases of 5 nodes each.
            max_nodes: 1_000_000,
            max_events: 4_000_000,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_REPLAYED_EVENTS,
            max_replay_stack_depth: MAX_DEPTH,
        },
        with_snippet: false,
        strict_booleans: true,
        reject_unsupported_tags: true,
        emit_comments: false,
    }
}

/// Reads every document of one file and hands each to `f`; problems (the file's and those
/// `f` records through the context) go to `problems`.
pub(super) fn for_each_document(
    path: &str,
    bytes: &[u8],
    problems: &mut Diagnostics,
    mut f: impl FnMut(&DocCtx<'_>, S<DocDe>),
) -> Vec<(Kind, String)> {
    let mut broken = Vec::new();
    let file: Arc<str> = Arc::from(path);
    if bytes.len() > MAX_FILE_BYTES {
        problems.push(Diagnostic::error(
            Span::file(file),
            format!(
                "file is {} bytes, larger than the 16 MiB limit; refusing to parse it",
                bytes.len()
            ),
        ));
        return broken;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let (line, col) = line_col_of_byte(bytes, e.valid_up_to());
            problems.push(Diagnostic::error(
                Span::new(file, line, col),
                "file is not valid UTF-8 text",
            ));
            return broken;
        }
    };
    let scan = prescan(text);
    let mut file_problems: Vec<Diagnostic> = Vec::new();
    for p in &scan.problems {
        file_problems.push(Diagnostic::error(
            Span::new(file.clone(), p.line, p.col),
            p.message.clone(),
        ));
    }
    for doc in &scan.docs {
        if doc.rejected {
            continue;
        }
        let ctx = DocCtx {
            file: file.clone(),
            text: &text[doc.start..doc.end],
            line_offset: doc.line_offset,
            index: OnceCell::new(),
            problems: std::cell::RefCell::new(Vec::new()),
        };
        match serde_saphyr::from_str_with_options::<Option<S<DocDe>>>(ctx.text, options()) {
            Ok(Some(d)) => f(&ctx, d),
            Ok(None) => {}
            Err(e) => {
                let d = serde_error(&ctx, &e);
                ctx.problems.borrow_mut().push(d);
                let idx = ctx.index();
                if let (Some(kind), Some(name)) = (idx.kind(), idx.name.clone()) {
                    broken.push((kind, name));
                }
            }
        }
        file_problems.extend(ctx.problems.into_inner());
    }
    // A syntax error found by the scan is usually met again by serde-saphyr, in the same
    // place, sometimes in other words: report it once, as the scan put it.
    let scanned = scan.problems.len();
    let scan_spans: std::collections::HashSet<Span> = file_problems[..scanned]
        .iter()
        .filter_map(|d| d.span.clone())
        .collect();
    let mut i = 0;
    file_problems.retain(|d| {
        i += 1;
        i <= scanned || d.span.as_ref().is_none_or(|s| !scan_spans.contains(s))
    });
    problems.0.extend(file_problems);
    broken
}

/// 1-based line and column (in characters) of byte `at`.
fn line_col_of_byte(bytes: &[u8], at: usize) -> (u64, u64) {
    let before = &bytes[..at.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count() as u64
        + 1;
    (line, col)
}

// ---------------------------------------------------------------------------------------------
// The scan: document boundaries, syntax errors, depth.

struct ScanProblem {
    line: u64,
    col: u64,
    message: String,
}

struct DocBounds {
    start: usize,
    end: usize,
    line_offset: u64,
    /// Nested too deep: reported by the scan, not deserialized.
    rejected: bool,
}

struct Scan {
    docs: Vec<DocBounds>,
    problems: Vec<ScanProblem>,
}

/// Byte offsets where each line starts (`\n`, `\r\n` and a lone `\r` end a line, as in YAML).
fn line_starts(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut starts = vec![0];
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\n' => starts.push(i + 1),
            b'\r' if b.get(i + 1) != Some(&b'\n') => starts.push(i + 1),
            _ => {}
        }
        i += 1;
    }
    starts
}

/// Scans the event stream once: splits the file into documents (each slice starts at a line
/// start, so columns stay right and lines shift by the slice's offset), reports syntax errors
/// and nesting deeper than [`MAX_DEPTH`]. Nothing is expanded, so this is linear in the input.
fn prescan(text: &str) -> Scan {
    let starts = line_starts(text);
    // The byte offset of the start of 1-based `line` (clamped to the end of the text).
    let line_start = |line: usize| -> usize {
        starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(text.len())
    };
    let mut docs: Vec<DocBounds> = Vec::new();
    let mut problems = Vec::new();
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    // Where the next document's text begins when the previous one ended with `...`.
    let mut after_explicit_end: Option<usize> = None;
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(ev) => ev,
            Err(e) => {
                // The parser looks ahead over flow collections (`[[[[…`) and gives up at its
                // own recursion limit before the events reach MAX_DEPTH here: the same
                // problem, so the same words.
                let message = if e.info().contains("recursion limit") {
                    depth_message()
                } else {
                    format!("yaml syntax error: {}", e.info())
                };
                problems.push(ScanProblem {
                    line: e.marker().line() as u64,
                    col: e.marker().col() as u64 + 1,
                    message,
                });
                break;
            }
        };
        match event {
            Event::DocumentStart(..) => {
                let start = if docs.is_empty() {
                    0
                } else {
                    after_explicit_end.unwrap_or_else(|| line_start(span.start.line()))
                };
                if let Some(prev) = docs.last_mut() {
                    prev.end = start;
                }
                let line_offset = starts.partition_point(|&s| s <= start) as u64 - 1;
                docs.push(DocBounds {
                    start,
                    end: text.len(),
                    line_offset,
                    rejected: false,
                });
                after_explicit_end = None;
                depth = 0;
            }
            // An explicit `...` (an implicit end has an empty span).
            Event::DocumentEnd if span.end.index() > span.start.index() => {
                after_explicit_end = Some(line_start(span.end.line() + 1));
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth == MAX_DEPTH + 1
                    && let Some(doc) = docs.last_mut()
                    && !doc.rejected
                {
                    doc.rejected = true;
                    problems.push(ScanProblem {
                        line: span.start.line() as u64,
                        col: span.start.col() as u64 + 1,
                        message: depth_message(),
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Scan { docs, problems }
}

fn depth_message() -> String {
    format!("nesting deeper than {MAX_DEPTH} levels")
}

// ---------------------------------------------------------------------------------------------
// Naming the field at fault: the nodes of one document with their paths.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Key,
    Value,
}

#[derive(Debug)]
enum Shape {
    Scalar { text: String, null: bool },
    Seq,
    Map,
    Alias,
}

#[derive(Debug)]
struct Node {
    line: u64,
    col: u64,
    path: Vec<Seg>,
    role: Role,
    shape: Shape,
}

#[derive(Debug, Default)]
struct NodeIndex {
    nodes: Vec<Node>,
    /// The document's `kind`, if written as a scalar.
    kind: Option<String>,
    /// The document's `metadata.name`, if written as a scalar.
    name: Option<String>,
    /// Where each key is written, by its rendered path (the first one written wins).
    keys: std::collections::HashMap<String, (u64, u64)>,
}

impl NodeIndex {
    fn build(text: &str) -> NodeIndex {
        enum Frame {
            Map {
                path: Vec<Seg>,
                key: Option<String>,
                expecting_key: bool,
            },
            Seq {
                path: Vec<Seg>,
                next: usize,
            },
        }
        let mut index = NodeIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(Ok((event, span))) = parser.next_event() {
            let shape = match event {
                Event::Scalar(value, style, ..) => {
                    let null = style == ScalarStyle::Plain
                        && matches!(&*value, "" | "~" | "null" | "Null" | "NULL");
                    Shape::Scalar {
                        text: value.into_owned(),
                        null,
                    }
                }
                Event::SequenceStart(..) => Shape::Seq,
                Event::MappingStart(..) => Shape::Map,
                Event::Alias(_) => Shape::Alias,
                Event::SequenceEnd | Event::MappingEnd => {
                    stack.pop();
                    continue;
                }
                _ => continue,
            };
            let (role, path) = match stack.last_mut() {
                None => (Role::Value, Vec::new()),
                Some(Frame::Map {
                    path,
                    key,
                    expecting_key,
                }) => {
                    if *expecting_key {
                        let k = match &shape {
                            Shape::Scalar { text, .. } => text.clone(),
                            _ => "?".to_string(),
                        };
                        *key = Some(k.clone());
                        *expecting_key = false;
                        let mut p = path.clone();
                        p.push(Seg::Key(k));
                        (Role::Key, p)
                    } else {
                        *expecting_key = true;
                        let mut p = path.clone();
                        p.push(Seg::Key(key.take().unwrap_or_else(|| "?".to_string())));
                        (Role::Value, p)
                    }
                }
                Some(Frame::Seq { path, next }) => {
                    let mut p = path.clone();
                    p.push(Seg::Index(*next));
                    *next += 1;
                    (Role::Value, p)
                }
            };
            if role == Role::Value
                && let Shape::Scalar { text, .. } = &shape
            {
                match path.as_slice() {
                    [Seg::Key(k)] if k == "kind" => index.kind = Some(text.clone()),
                    [Seg::Key(m), Seg::Key(n)] if m == "metadata" && n == "name" => {
                        index.name = Some(text.clone());
                    }
                    _ => {}
                }
            }
            match shape {
                Shape::Seq => stack.push(Frame::Seq {
                    path: path.clone(),
                    next: 0,
                }),
                Shape::Map => stack.push(Frame::Map {
                    path: path.clone(),
                    key: None,
                    expecting_key: true,
                }),
                _ => {}
            }
            let (line, col) = (span.start.line() as u64, span.start.col() as u64 + 1);
            if role == Role::Key {
                index.keys.entry(render_path(&path)).or_insert((line, col));
            }
            index.nodes.push(Node {
                line,
                col,
                path,
                role,
                shape,
            });
        }
        index
    }

    /// The outermost node of `role` starting exactly at `loc`.
    fn at(&self, loc: Location, role: Role) -> Option<&Node> {
        self.nodes
            .iter()
            .filter(|n| n.role == role && n.line == loc.line() && n.col == loc.column())
            .min_by_key(|n| n.path.len())
    }

    fn kind(&self) -> Option<Kind> {
        self.kind.as_deref().and_then(Kind::parse)
    }
}

/// `spec.releases[3].digest`.
fn render_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s
}

/// How a mapping at `path` is named in messages: `ReleaseStream spec`, `` `spec.feeder` ``.
fn describe_mapping(path: &[Seg], kind: Option<Kind>) -> String {
    let kind_name = kind.map(|k| format!("{} ", k.name())).unwrap_or_default();
    match path {
        [] => format!("{kind_name}document"),
        [Seg::Key(k)] if k == "spec" => format!("{kind_name}spec"),
        _ => format!("`{}`", render_path(path)),
    }
}

/// What the schema wants at `path`.
fn expected_at(path: &[Seg]) -> &'static str {
    match path.last() {
        None => "a mapping with apiVersion, kind, metadata and spec",
        Some(Seg::Index(_)) => {
            let parent = path.len().checked_sub(2).and_then(|i| path.get(i));
            match parent {
                Some(Seg::Index(_)) => "a string",
                Some(Seg::Key(k)) => match k.as_str() {
                    "releases" | "registries" => "a mapping",
                    "channelSubsets" => "a list of two channel names",
                    _ => "a string",
                },
                None => "a string",
            }
        }
        Some(Seg::Key(last)) => match last.as_str() {
            "metadata" | "spec" | "imageStream" | "feeder" | "git" | "cluster" | "sync"
            | "webhook" => "a mapping",
            "releases" | "versions" | "tombstones" | "tags" | "allowedSources" | "registries"
            | "channelSubsets" => "a list",
            "maxDeletesPerSync" | "concurrency" => "a non-negative integer",
            "insecure" | "enabled" | "prune" | "auto" | "selfHeal" => "true or false",
            _ => "a string",
        },
    }
}

/// What was found, for messages.
fn describe_found(shape: &Shape) -> String {
    match shape {
        Shape::Scalar { null: true, .. } => "nothing (null)".to_string(),
        Shape::Scalar { text, .. } => {
            let mut short: String = text.chars().take(60).collect();
            if short.len() < text.len() {
                short.push('…');
            }
            format!("`{}`", shown(&short))
        }
        Shape::Seq => "a list".to_string(),
        Shape::Map => "a mapping".to_string(),
        Shape::Alias => "an alias".to_string(),
    }
}

/// One serde-saphyr error as a diagnostic naming the field.
fn serde_error(ctx: &DocCtx<'_>, err: &serde_saphyr::Error) -> Diagnostic {
    use serde_saphyr::Error as E;
    let mut inner = err.without_snippet();
    let mut loc = err.location();
    if let E::AliasError {
        error, locations, ..
    } = inner
    {
        // Point at the use of the alias; the definition may be far away.
        loc = Some(locations.reference_location);
        inner = error.without_snippet();
    }
    let loc = loc.unwrap_or(Location::UNKNOWN);
    let span = ctx.span(loc);
    let index = || ctx.index();
    let message = match inner {
        E::SerdeUnknownField { field, .. } => {
            let idx = index();
            let container = idx
                .at(loc, Role::Key)
                .map(|n| describe_mapping(&n.path[..n.path.len().saturating_sub(1)], idx.kind()))
                .unwrap_or_else(|| "this mapping".to_string());
            format!("unknown field `{field}` in {container}")
        }
        E::DuplicateMappingKey { key, .. } => {
            let idx = index();
            match idx.at(loc, Role::Key) {
                Some(n) => format!("duplicate field `{}`", render_path(&n.path)),
                None => format!("duplicate key `{}`", key.as_deref().unwrap_or("?")),
            }
        }
        E::Budget { breach, .. } => budget_message(breach),
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => format!(
            "aliases expand to too much content (more than {MAX_REPLAYED_EVENTS} replayed nodes): refusing a possible alias bomb"
        ),
        E::ExternalMessage { source, .. }
            if matches!(**source, serde_saphyr::ExternalMessageSource::Parser(_)) =>
        {
            match &**source {
                serde_saphyr::ExternalMessageSource::Parser(scan) => {
                    format!("yaml syntax error: {}", scan.info())
                }
                _ => generic_message(inner),
            }
        }
        E::Unexpected { .. }
        | E::InvalidScalar { .. }
        | E::SerdeInvalidType { .. }
        | E::SerdeInvalidValue { .. }
        | E::SerdeInvalidLength { .. }
        | E::NullIntoString { .. }
        | E::InvalidBooleanStrict { .. }
        | E::TaggedScalarCannotDeserializeIntoString { .. }
        | E::ExpectedEmptyMappingForUnitStruct { .. }
        | E::MergeValueNotMapOrSeqOfMaps { .. } => match index().at(loc, Role::Value) {
            None if let Some(k) = index().at(loc, Role::Key) => format!(
                "keys must be field names, found {} as a key",
                describe_found(&k.shape)
            ),
            Some(n) => {
                let what = if n.path.is_empty() {
                    "a document".to_string()
                } else {
                    format!("`{}`", render_path(&n.path))
                };
                format!(
                    "{what} must be {}, found {}",
                    expected_at(&n.path),
                    describe_found(&n.shape)
                )
            }
            None => generic_message(inner),
        },
        E::UnsupportedTag { tag, .. } => format!("unsupported yaml tag `{tag}`"),
        _ => generic_message(inner),
    };
    Diagnostic::error(span, message)
}

/// A user's string for messages: control characters escaped, everything else as written.
pub(super) fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// serde-saphyr's own words for an error, without location, on one line, lowercase first.
fn generic_message(err: &serde_saphyr::Error) -> String {
    use serde_saphyr::MessageFormatter as _;
    let text = serde_saphyr::UserMessageFormatter.format_message(err);
    let one_line: String = shown(&text);
    let mut chars = one_line.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "invalid yaml".to_string(),
    }
}

fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Depth { .. } => depth_message(),
        B::Aliases { .. } => {
            format!(
                "too many aliases (more than {MAX_ALIASES} in one document): refusing a possible alias bomb"
            )
        }
        B::AliasAnchorRatio { aliases, anchors } => format!(
            "too many aliases for the anchors defined ({aliases} aliases of {anchors} anchors): refusing a possible alias bomb"
        ),
        B::Anchors { .. } => format!("too many anchors (more than {MAX_ANCHORS} in one document)"),
        B::ScalarBytes { .. } => format!(
            "document expands to more than {} MiB of text (counting alias expansions): refusing a possible alias bomb",
            MAX_SCALAR_BYTES / (1024 * 1024)
        ),
        B::RecordedAnchorEvents { .. } | B::RecordedAnchorBytes { .. } => {
            "anchored content too large: refusing a possible alias bomb".to_string()
        }
        B::Events { .. } | B::Nodes { .. } => "document too large (too many nodes)".to_string(),
        B::MergeKeys { .. } => "too many merge keys (`<<`)".to_string(),
        other => format!("document exceeds the parser's limits ({other:?})").to_lowercase(),
    }
}

// ---------------------------------------------------------------------------------------------
// From strict structs to raw manifests.

/// `required(ctx, field, "spec.stream", at)`: the value, or an error at `at` when missing.
pub(super) fn required<T>(
    ctx: &DocCtx<'_>,
    field: Option<S<T>>,
    path: &str,
    at: Location,
) -> Option<Located<T>> {
    match field {
        Some(v) => Some(ctx.located(v)),
        None => {
            // Written but null (`stream:`) reads as absent; say so at the key.
            match ctx.key_at(path) {
                Some(span) => ctx.error(span, format!("`{path}` must not be empty")),
                None => ctx.error(ctx.span(at), format!("missing field `{path}`")),
            }
            None
        }
    }
}

/// A string that must not be empty (or only blanks).
pub(super) fn non_empty(
    ctx: &DocCtx<'_>,
    v: Located<String>,
    path: &str,
) -> Option<Located<String>> {
    if v.value.trim().is_empty() {
        ctx.error(v.span.clone(), format!("`{path}` must not be empty"));
        None
    } else {
        Some(v)
    }
}

/// A list of strings (absent means empty).
fn string_list(ctx: &DocCtx<'_>, v: Option<S<Vec<S<String>>>>) -> Vec<Located<String>> {
    v.map(|l| l.value.into_iter().map(|s| ctx.located(s)).collect())
        .unwrap_or_default()
}

/// Checks `apiVersion` and `kind`; returns the kind (any of the four) and its place.
pub(super) fn header(
    ctx: &DocCtx<'_>,
    root: Location,
    api_version: Option<S<String>>,
    kind: Option<S<String>>,
    expected_kinds: &str,
) -> Option<(Kind, Span)> {
    match api_version {
        None => ctx.error(ctx.span(root), "missing field `apiVersion`"),
        Some(v) if v.value != API_VERSION => ctx.error(
            ctx.span(v.referenced),
            format!(
                "unsupported apiVersion `{}` (expected `{API_VERSION}`)",
                shown(&v.value)
            ),
        ),
        Some(_) => {}
    }
    let Some(kind) = kind else {
        ctx.error(ctx.span(root), "missing field `kind`");
        return None;
    };
    let span = ctx.span(kind.referenced);
    match Kind::parse(&kind.value) {
        Some(k) => Some((k, span)),
        None => {
            ctx.error(
                span,
                format!(
                    "unknown kind `{}` (expected {expected_kinds})",
                    shown(&kind.value)
                ),
            );
            None
        }
    }
}

/// Reports `spec` fields that belong to another kind.
pub(super) fn check_spec_fields(ctx: &DocCtx<'_>, kind: Kind, spec: &SpecDe) {
    for (field, loc) in spec.present() {
        if !kind.allows(field) {
            ctx.error(
                ctx.key_span(&["spec", field], loc),
                format!("unknown field `{field}` in {} spec", kind.name()),
            );
        }
    }
}

fn convert_manifest(
    ctx: &DocCtx<'_>,
    doc: S<DocDe>,
    under_policies: bool,
    policies_prefix: &str,
    out: &mut ParsedDocs,
) {
    let root = doc.referenced;
    let DocDe {
        api_version,
        kind,
        metadata,
        spec,
    } = doc.value;
    let Some((kind, kind_span)) = header(
        ctx,
        root,
        api_version,
        kind,
        "ReleaseStream, ReleaseChannel or Policy",
    ) else {
        return;
    };
    if kind == Kind::Config {
        ctx.error(
            kind_span,
            "kind `Config` belongs in relsync.yaml, not among the manifests",
        );
        return;
    }
    if !policies_prefix.is_empty() {
        match kind {
            Kind::Policy if !under_policies => ctx.error(
                kind_span.clone(),
                format!(
                    "a Policy must live under `{policies_prefix}/`, not in {}",
                    ctx.file()
                ),
            ),
            Kind::ReleaseStream | Kind::ReleaseChannel if under_policies => ctx.error(
                kind_span.clone(),
                format!(
                    "a {} belongs with the manifests, not under `{policies_prefix}/`",
                    kind.name()
                ),
            ),
            _ => {}
        }
    }
    let name = match metadata {
        None => {
            ctx.error(ctx.span(root), "missing field `metadata.name`");
            None
        }
        Some(m) => required(ctx, m.value.name, "metadata.name", m.referenced)
            .and_then(|n| non_empty(ctx, n, "metadata.name")),
    };
    let Some(spec) = spec else {
        ctx.error(ctx.span(root), "missing field `spec`");
        if let Some(name) = name {
            out.broken.push((kind, name.value));
        }
        return;
    };
    check_spec_fields(ctx, kind, &spec.value);
    let Some(name) = name else {
        return;
    };
    let at = spec.referenced;
    let spec = spec.value;
    let name_text = name.value.clone();
    match kind {
        Kind::ReleaseStream => match convert_stream(ctx, name, spec, at) {
            Some(s) => out.streams.push(s),
            None => out.broken.push((kind, name_text)),
        },
        Kind::ReleaseChannel => match convert_channel(ctx, name, spec, at) {
            Some(c) => out.channels.push(c),
            None => out.broken.push((kind, name_text)),
        },
        Kind::Policy => out.policies.push(convert_policy(ctx, name, spec)),
        Kind::Config => {}
    }
}

fn convert_stream(
    ctx: &DocCtx<'_>,
    name: Located<String>,
    spec: SpecDe,
    at: Location,
) -> Option<RawStream> {
    // An empty source or target is reported but kept, so the releases are still checked.
    let source = required(ctx, spec.source, "spec.source", at).inspect(|v| {
        non_empty(ctx, v.clone(), "spec.source");
    });
    let target = required(ctx, spec.target, "spec.target", at).inspect(|v| {
        non_empty(ctx, v.clone(), "spec.target");
    });
    let order = match spec.order {
        None => super::Order::Semver,
        Some(o) => match o.value.as_str() {
            "semver" => super::Order::Semver,
            "listed" => super::Order::Listed,
            other => {
                ctx.error(
                    ctx.span(o.referenced),
                    format!(
                        "`spec.order` must be `semver` or `listed`, found `{}`",
                        shown(other)
                    ),
                );
                super::Order::Semver
            }
        },
    };
    let mut releases = Vec::new();
    if let Some(list) = spec.releases {
        for (i, r) in list.value.into_iter().enumerate() {
            let at = r.referenced;
            let r = r.value;
            let version = required(ctx, r.version, &format!("spec.releases[{i}].version"), at);
            let digest = required(ctx, r.digest, &format!("spec.releases[{i}].digest"), at);
            releases.push(RawRelease {
                version,
                digest,
                tags: string_list(ctx, r.tags),
            });
        }
    }
    Some(RawStream {
        name,
        source: source?,
        target: target?,
        order,
        releases,
    })
}

fn convert_channel(
    ctx: &DocCtx<'_>,
    name: Located<String>,
    spec: SpecDe,
    at: Location,
) -> Option<RawChannel> {
    let stream = required(ctx, spec.stream, "spec.stream", at);
    let image_stream = spec.image_stream.and_then(|is| {
        let at = is.referenced;
        let namespace = required(ctx, is.value.namespace, "spec.imageStream.namespace", at);
        let name = required(ctx, is.value.name, "spec.imageStream.name", at);
        let namespace = namespace.and_then(|n| k8s_name(ctx, n, "spec.imageStream.namespace", 63));
        let name = name.and_then(|n| k8s_name(ctx, n, "spec.imageStream.name", 253));
        Some(ImageStreamRef {
            namespace: namespace?.value,
            name: name?.value,
        })
    });
    let feeder = spec.feeder.and_then(|f| {
        let at = f.referenced;
        let channel = required(ctx, f.value.channel, "spec.feeder.channel", at)?;
        Some(RawFeeder {
            channel,
            delay: f.value.delay.map(|d| ctx.located(d)),
        })
    });
    Some(RawChannel {
        name,
        stream: stream?,
        tags: string_list(ctx, spec.tags),
        image_stream,
        feeder,
        versions: string_list(ctx, spec.versions),
        tombstones: string_list(ctx, spec.tombstones),
    })
}

/// A Kubernetes name: lowercase letters, digits, `-` (and `.` when `max` is 253), starting and
/// ending with a letter or digit.
fn k8s_name(
    ctx: &DocCtx<'_>,
    v: Located<String>,
    path: &str,
    max: usize,
) -> Option<Located<String>> {
    let s = v.value.as_str();
    let dots = max > 63;
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.')
        })
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Some(v)
    } else {
        ctx.error(
            v.span.clone(),
            format!(
                "`{path}` must be a Kubernetes name (lowercase letters, digits{} and `-`, at most {max} characters), found `{}`",
                if dots { ", `.`" } else { "" },
                shown(s)
            ),
        );
        None
    }
}

fn convert_policy(ctx: &DocCtx<'_>, name: Located<String>, spec: SpecDe) -> RawPolicy {
    let channel_subsets = spec
        .channel_subsets
        .map(|l| {
            l.value
                .into_iter()
                .map(|pair| RawSubset {
                    span: ctx.span(pair.referenced),
                    channels: pair.value.into_iter().map(|c| ctx.located(c)).collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    RawPolicy {
        name,
        allowed_sources: string_list(ctx, spec.allowed_sources),
        immutable_tags: spec.immutable_tags.map(|t| ctx.located(t)),
        max_deletes_per_sync: spec.max_deletes_per_sync.map(|m| ctx.located(m)),
        channel_subsets,
    }
}

// ---------------------------------------------------------------------------------------------
// Durations.

/// Parses a duration into seconds: Go style (`72h`, `1h30m`, `90m`, `3600s`, plus `d` and `w`)
/// or ISO-8601 (`PT72H`, `P3D`, `P1W`, `P1DT12H`). Fractions are not accepted.
pub(super) fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    if let Some(rest) = s.strip_prefix('P') {
        return parse_iso_duration(rest);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at `{}`", shown(rest)));
        }
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let (unit, tail) = tail.split_at(unit_len);
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            "" => return Err(format!("`{num}` has no unit (s, m, h, d or w)")),
            other => return Err(format!("unknown unit `{}` (s, m, h, d or w)", shown(other))),
        };
        total = add_units(total, num, mult)?;
        rest = tail;
    }
    Ok(total)
}

fn add_units(total: u64, num: &str, mult: u64) -> Result<u64, String> {
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .and_then(|n| total.checked_add(n))
        .ok_or_else(|| "duration too large".to_string())
}

fn parse_iso_duration(rest: &str) -> Result<u64, String> {
    let bad = || "not an ISO-8601 duration such as PT72H or P3D".to_string();
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return Err(bad());
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return Err(bad());
    }
    let mut total = 0u64;
    for (part, units) in [
        (date, &[('W', 604_800u64), ('D', 86_400)][..]),
        (time.unwrap_or(""), &[('H', 3_600), ('M', 60), ('S', 1)][..]),
    ] {
        let mut rest = part;
        let mut allowed = units;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits == rest.len() {
                return Err(bad());
            }
            let (num, tail) = rest.split_at(digits);
            let unit = tail.chars().next().ok_or_else(bad)?;
            let pos = allowed
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or_else(bad)?;
            total = add_units(total, num, allowed[pos].1)?;
            allowed = &allowed[pos + 1..];
            rest = &tail[unit.len_utf8()..];
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, secs) in [
            ("72h", 72 * 3600),
            ("1h30m", 5400),
            ("90m", 5400),
            ("3600s", 3600),
            ("2d", 172_800),
            ("0s", 0),
            ("PT72H", 72 * 3600),
            ("P3D", 3 * 86_400),
            ("P1W", 604_800),
            ("PT0H", 0),
            ("P1DT12H", 129_600),
            ("PT1H30M15S", 5415),
        ] {
            assert_eq!(parse_duration(s), Ok(secs), "{s}");
        }
        for s in [
            "", "72", "h", "1x", "P", "PT", "P1H", "PT1D", "P1.5D", "PT1M1H", "1h 30m", "-1h",
        ] {
            assert!(parse_duration(s).is_err(), "{s} should be refused");
        }
    }

    #[test]
    fn prescan_splits_documents_at_line_starts() {
        let text = "# c\na: 1\n---\nb: 2\n...\n%YAML 1.2\n---\nc: 3\n--- {d: 4}\n";
        let scan = prescan(text);
        assert!(scan.problems.is_empty());
        let slices: Vec<(&str, u64)> = scan
            .docs
            .iter()
            .map(|d| (&text[d.start..d.end], d.line_offset))
            .collect();
        assert_eq!(
            slices,
            [
                ("# c\na: 1\n", 0),
                ("---\nb: 2\n...\n", 2),
                ("%YAML 1.2\n---\nc: 3\n", 5),
                ("--- {d: 4}\n", 8)
            ]
        );
    }

    #[test]
    fn paths_and_expectations() {
        let idx = NodeIndex::build("spec:\n  releases:\n    - version: 1\n      digest: [x]\n");
        let n = idx
            .nodes
            .iter()
            .find(|n| n.role == Role::Value && matches!(n.shape, Shape::Seq) && n.line == 4)
            .expect("digest value");
        assert_eq!(render_path(&n.path), "spec.releases[0].digest");
        assert_eq!(expected_at(&n.path), "a string");
        assert_eq!(expected_at(&n.path[..2]), "a list");
        assert_eq!(expected_at(&n.path[..3]), "a mapping");
    }
}
