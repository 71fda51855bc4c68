//! Reading one file, document by document: each document is deserialized on its own, its
//! problems recorded through a [`DocCtx`].

use std::cell::OnceCell;
use std::sync::Arc;

use serde_saphyr::Location;

use super::fault::{NodeIndex, serde_error};
use super::scan::prescan;
use super::shape::{DocDe, Kind};
use super::{
    MAX_ALIASES, MAX_ANCHORS, MAX_DEPTH, MAX_FILE_BYTES, MAX_REPLAYED_EVENTS, MAX_SCALAR_BYTES, S,
};
use crate::manifest::{Diagnostic, Diagnostics, Located, Span};

/// One document being converted: its file, its text, and where its problems go.
pub(crate) struct DocCtx<'a> {
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
    pub(crate) fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// The place of a serde-saphyr location, in file coordinates.
    pub(crate) fn span(&self, loc: Location) -> Span {
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
    pub(crate) fn located<T>(&self, s: S<T>) -> Located<T> {
        Located::new(s.value, self.span(s.referenced))
    }

    /// Records an error.
    pub(crate) fn error(&self, span: Span, message: impl Into<String>) {
        self.problems
            .borrow_mut()
            .push(Diagnostic::error(span, message));
    }

    /// Reports a problem built by the caller (one with a hint, say).
    pub(crate) fn push(&self, d: Diagnostic) {
        self.problems.borrow_mut().push(d);
    }

    pub(super) fn index(&self) -> &NodeIndex {
        self.index.get_or_init(|| NodeIndex::build(self.text))
    }

    /// The place of the key `path` (e.g. `["spec", "versions"]`), else `fallback`.
    pub(crate) fn key_span(&self, path: &[&str], fallback: Location) -> Span {
        match self.key_at(&path.join(".")) {
            Some(span) => span,
            None => self.span(fallback),
        }
    }

    /// The place of the key written at `path` (`spec.releases[1].digest`), if any.
    pub(super) fn key_at(&self, path: &str) -> Option<Span> {
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
            // No ratio of aliases to anchors: 200 releases merging one `&defaults`
            // (`<<: *defaults`) are 200 aliases of one anchor, and ordinary. What makes an
            // alias bomb is what its aliases expand to, which the replay and byte budgets
            // above bound; the count of aliases is bounded by `max_aliases` alone, as the
            // README says.
            enforce_alias_anchor_ratio: false,
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
pub(crate) fn for_each_document(
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
