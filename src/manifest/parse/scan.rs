//! The scan: document boundaries, syntax errors and nesting depth, in one linear pass over
//! the YAML event stream (nothing is expanded).

use serde_saphyr::granit_parser::{Event, Parser};

use super::MAX_DEPTH;

pub(super) struct ScanProblem {
    pub(super) line: u64,
    pub(super) col: u64,
    pub(super) message: String,
}

pub(super) struct DocBounds {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) line_offset: u64,
    /// Nested too deep: reported by the scan, not deserialized.
    pub(super) rejected: bool,
}

pub(super) struct Scan {
    pub(super) docs: Vec<DocBounds>,
    pub(super) problems: Vec<ScanProblem>,
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
pub(super) fn prescan(text: &str) -> Scan {
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

pub(super) fn depth_message() -> String {
    format!("nesting deeper than {MAX_DEPTH} levels")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
