//! Naming the field at fault: the nodes of one document with their paths, so that a
//! serde-saphyr error says which field (`spec.releases[3].digest`) and what was expected there.

use std::fmt::Write as _;

use serde_saphyr::Location;
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

use super::hint::{did_you_mean, hinted};
use super::read::DocCtx;
use super::scan::depth_message;
use super::shape::Kind;
use super::{MAX_ALIASES, MAX_ANCHORS, MAX_REPLAYED_EVENTS, MAX_SCALAR_BYTES};
use crate::manifest::Diagnostic;

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
pub(super) struct NodeIndex {
    nodes: Vec<Node>,
    /// The document's `kind`, if written as a scalar.
    pub(super) kind: Option<String>,
    /// The document's `metadata.name`, if written as a scalar.
    pub(super) name: Option<String>,
    /// Where each key is written, by its rendered path (the first one written wins).
    pub(super) keys: std::collections::HashMap<String, (u64, u64)>,
}

impl NodeIndex {
    pub(super) fn build(text: &str) -> NodeIndex {
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

    pub(super) fn kind(&self) -> Option<Kind> {
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
                    "releases" | "registries" | "keys" | "notifications" => "a mapping",
                    "channelSubsets" => "a list of two channel names",
                    _ => "a string",
                },
                None => "a string",
            }
        }
        Some(Seg::Key(last)) => match last.as_str() {
            "metadata" | "spec" | "imageStream" | "feeder" | "git" | "cluster" | "sync"
            | "webhook" | "signatures" | "rateLimit" => "a mapping",
            "notifications" | "events" => "a list",
            "requestsPerSecond" => "a positive number",
            "burst" => "a positive integer",
            "releases" | "versions" | "tombstones" | "tags" | "allowedSources" | "registries"
            | "channelSubsets" | "keys" => "a list",
            "maxDeletesPerSync" | "concurrency" => "a non-negative integer",
            "insecure" | "enabled" | "prune" | "auto" | "selfHeal" | "require" => "true or false",
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
pub(super) fn serde_error(ctx: &DocCtx<'_>, err: &serde_saphyr::Error) -> Diagnostic {
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
    let mut hint = None;
    let message = match inner {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            let idx = index();
            let node = idx.at(loc, Role::Key);
            let parent = node.map(|n| &n.path[..n.path.len().saturating_sub(1)]);
            let container = parent
                .map(|p| describe_mapping(p, idx.kind()))
                .unwrap_or_else(|| "this mapping".to_string());
            // `spec` is one union of every kind's fields: suggest only this kind's.
            let in_spec = matches!(parent, Some([Seg::Key(k)]) if k == "spec");
            hint = match idx.kind() {
                Some(kind) if in_spec => did_you_mean(field, kind.fields().iter().copied()),
                _ => did_you_mean(field, expected.iter().copied()),
            };
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
    hinted(Diagnostic::error(span, message), hint)
}

/// A user's string for messages: control characters escaped, everything else as written.
pub(crate) fn shown(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
