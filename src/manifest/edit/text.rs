//! The text side of an edit: lines, list styles and quoting of the neighbours, and the
//! insertion itself, written in their style so every other byte stays as it was.

use super::EditError;
use crate::manifest::{Located, ReleaseStream, Span};

/// One line of a file: its byte range without the line end, and the line end itself.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    /// Byte offset just after the line end (`\n`), or `end` for the last line without one.
    next: usize,
}

fn lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        match text[start..].find('\n') {
            Some(i) => {
                let nl = start + i;
                let end = if nl > start && text.as_bytes()[nl - 1] == b'\r' {
                    nl - 1
                } else {
                    nl
                };
                out.push(Line {
                    start,
                    end,
                    next: nl + 1,
                });
                start = nl + 1;
            }
            None => {
                out.push(Line {
                    start,
                    end: text.len(),
                    next: text.len(),
                });
                start = text.len();
            }
        }
    }
    out
}

/// The line end the file uses (`\r\n` when its first line has one).
fn line_end(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// Text positions of a span: the line, and the byte offset of the column in the file.
struct Pos {
    line: usize,
    offset: usize,
}

fn position(text: &str, all: &[Line], span: &Span) -> Result<Pos, EditError> {
    let bad = || EditError::Unsupported {
        at: span.to_string(),
        message: "the parsed place of this entry is not in the file's text".to_string(),
    };
    let idx = usize::try_from(span.line)
        .ok()
        .and_then(|l| l.checked_sub(1))
        .ok_or_else(bad)?;
    let line = all.get(idx).ok_or_else(bad)?;
    let mut s = &text[line.start..line.end];
    // A byte-order mark does not count as a column.
    let mut base = line.start;
    if idx == 0 && s.starts_with('\u{feff}') {
        base += '\u{feff}'.len_utf8();
        s = &s['\u{feff}'.len_utf8()..];
    }
    let col = usize::try_from(span.col)
        .ok()
        .and_then(|c| c.checked_sub(1))
        .ok_or_else(bad)?;
    let offset = match s.char_indices().nth(col) {
        Some((i, _)) => base + i,
        None if s.chars().count() == col => base + s.len(),
        None => return Err(bad()),
    };
    Ok(Pos { line: idx, offset })
}

/// How a scalar is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    Plain,
    Single,
    Double,
}

impl Quote {
    fn at(text: &str, offset: usize) -> Quote {
        match text[offset..].chars().next() {
            Some('\'') => Quote::Single,
            Some('"') => Quote::Double,
            _ => Quote::Plain,
        }
    }

    fn write(self, value: &str) -> String {
        match self {
            Quote::Plain => value.to_string(),
            Quote::Single => format!("'{}'", value.replace('\'', "''")),
            Quote::Double => format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")),
        }
    }

    /// The byte length of the scalar written at `offset` in this style, when it ends on
    /// the same line (`None` otherwise).
    fn len_at(self, text: &str, offset: usize, value: &str) -> Option<usize> {
        let rest = &text[offset..];
        match self {
            Quote::Plain => rest.starts_with(value).then_some(value.len()),
            Quote::Single | Quote::Double => {
                let q = if self == Quote::Single { '\'' } else { '"' };
                let mut chars = rest.char_indices().skip(1);
                while let Some((i, c)) = chars.next() {
                    if c == '\n' {
                        return None;
                    }
                    if self == Quote::Double && c == '\\' {
                        chars.next();
                        continue;
                    }
                    if c == q {
                        if self == Quote::Single && rest[i + 1..].starts_with('\'') {
                            chars.next();
                            continue;
                        }
                        return Some(i + 1);
                    }
                }
                None
            }
        }
    }
}

/// How the list's entries are written.
enum Style {
    /// `- x` entries: the text before the entry's value on its line (`    - `).
    Block,
    /// `[a, b]`.
    Flow,
}

/// What the prefix before a value says about the list style.
fn style_of(prefix: &str) -> Option<Style> {
    let t = prefix.trim_start_matches([' ', '\t']);
    if let Some(rest) = t.strip_prefix('-')
        && !rest.is_empty()
        && rest.chars().all(|c| c == ' ' || c == '\t')
    {
        return Some(Style::Block);
    }
    let t = prefix.trim_end_matches([' ', '\t']);
    if t.ends_with('[') || t.ends_with(',') {
        return Some(Style::Flow);
    }
    None
}

/// What to insert.
pub(super) enum Insert<'a> {
    /// A plain string entry of `versions`.
    Scalar {
        entries: Vec<&'a Located<String>>,
        key: &'static str,
        anchor: &'a Located<String>,
        value: String,
    },
    /// A `version`/`digest` block of `releases`.
    Release {
        stream: &'a ReleaseStream,
        anchor: &'a Located<String>,
        version: String,
        digest: String,
    },
}

impl Insert<'_> {
    /// The new text and the 1-based line of the new entry.
    pub(super) fn apply(
        &self,
        text: &str,
        path: &str,
        index: usize,
    ) -> Result<(String, u64), EditError> {
        let all = lines(text);
        let eol = line_end(text);
        match self {
            Insert::Scalar {
                entries,
                key,
                anchor,
                value,
            } => {
                if entries.is_empty() {
                    return empty_list(text, &all, eol, anchor, key, path, |indent| {
                        format!("{indent}- {value}{eol}")
                    });
                }
                // The neighbour whose style is copied, and where the new entry goes.
                let (neighbour, after) = if index < entries.len() {
                    (entries[index], false)
                } else {
                    (entries[entries.len() - 1], true)
                };
                let pos = position(text, &all, &neighbour.span)?;
                let line = all[pos.line];
                let prefix = &text[line.start..pos.offset];
                let quote = Quote::at(text, pos.offset);
                match style_of(prefix) {
                    Some(Style::Block) => {
                        let new_line = format!("{prefix}{}{eol}", quote.write(value));
                        let (at, line_no) = if after {
                            let end = entry_end(text, &all, pos.line, dash_col(prefix));
                            (all[end].next, end + 2)
                        } else {
                            (line.start, pos.line + 1)
                        };
                        Ok((splice(text, at, &new_line, eol), line_no as u64))
                    }
                    Some(Style::Flow) => {
                        let written = quote.write(value);
                        let at = if after {
                            let len = quote
                                .len_at(text, pos.offset, &neighbour.value)
                                .ok_or_else(|| {
                                    unsupported(
                                        &neighbour.span,
                                        "cannot find the end of this flow-list entry; add the version by hand",
                                    )
                                })?;
                            pos.offset + len
                        } else {
                            pos.offset
                        };
                        let insert = if after {
                            format!(", {written}")
                        } else {
                            format!("{written}, ")
                        };
                        let mut out = String::with_capacity(text.len() + insert.len());
                        out.push_str(&text[..at]);
                        out.push_str(&insert);
                        out.push_str(&text[at..]);
                        Ok((out, pos.line as u64 + 1))
                    }
                    None => Err(unsupported(
                        &neighbour.span,
                        "this list entry is written in a way the edit does not understand; add the entry by hand",
                    )),
                }
            }
            Insert::Release {
                stream,
                anchor,
                version,
                digest,
            } => {
                if stream.releases.is_empty() {
                    return empty_list(text, &all, eol, anchor, "releases", path, |indent| {
                        format!("{indent}- version: {version}{eol}{indent}  digest: {digest}{eol}")
                    });
                }
                let (neighbour, after) = if index < stream.releases.len() {
                    (&stream.releases[index], false)
                } else {
                    (&stream.releases[stream.releases.len() - 1], true)
                };
                let v = position(text, &all, &neighbour.version.span)?;
                let d = position(text, &all, &neighbour.digest.span)?;
                let mut first = v.line.min(d.line);
                for t in &neighbour.tags {
                    first = first.min(position(text, &all, &t.span)?.line);
                }
                if v.line == d.line {
                    return Err(unsupported(
                        &neighbour.version.span,
                        "releases written as flow mappings (`{version: …, digest: …}`) are not edited; add the release by hand",
                    ));
                }
                let dash_line = all[first];
                let dash_text = &text[dash_line.start..dash_line.end];
                // `    - version: x`: the text up to the first key.
                let key_col = dash_text
                    .char_indices()
                    .find(|&(_, c)| c != ' ' && c != '\t' && c != '-')
                    .map(|(i, _)| i)
                    .unwrap_or(dash_text.len());
                let dash_prefix = &dash_text[..key_col];
                if !matches!(style_of(dash_prefix), Some(Style::Block)) {
                    return Err(unsupported(
                        &neighbour.version.span,
                        "this release is not a block-list entry (`- version: …`); add the release by hand",
                    ));
                }
                let cont: String = " ".repeat(dash_prefix.chars().count());
                let vq = Quote::at(text, v.offset);
                let dq = Quote::at(text, d.offset);
                let vline = format!("version: {}", vq.write(version));
                let dline = format!("digest: {}", dq.write(digest));
                let (a, b) = if d.line < v.line {
                    (dline, vline)
                } else {
                    (vline, dline)
                };
                let block = format!("{dash_prefix}{a}{eol}{cont}{b}{eol}");
                let (at, line_no) = if after {
                    let end = entry_end(text, &all, first, dash_col(dash_prefix));
                    (all[end].next, end + 2)
                } else {
                    (dash_line.start, first + 1)
                };
                Ok((splice(text, at, &block, eol), line_no as u64))
            }
        }
    }
}

fn unsupported(span: &Span, message: &str) -> EditError {
    EditError::Unsupported {
        at: span.to_string(),
        message: message.to_string(),
    }
}

/// The column (in bytes) of the `-` in a block entry prefix.
fn dash_col(prefix: &str) -> usize {
    prefix.find('-').unwrap_or(0)
}

/// The last content line of the block entry starting at line `first` whose dash is at
/// `dash`: following lines belong to it while they are blank, comments, or indented past
/// the dash; trailing blank and comment lines do not.
fn entry_end(text: &str, all: &[Line], first: usize, dash: usize) -> usize {
    let mut last = first;
    for (i, l) in all.iter().enumerate().skip(first + 1) {
        let s = &text[l.start..l.end];
        let trimmed = s.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            continue;
        }
        let indent = s.len() - trimmed.len();
        if trimmed.starts_with('#') {
            if indent > dash {
                continue;
            }
            break;
        }
        if indent > dash {
            last = i;
        } else {
            break;
        }
    }
    last
}

/// Inserts `new` at byte `at`; when `at` is the end of a file whose last line has no line
/// end, one is added first.
fn splice(text: &str, at: usize, new: &str, eol: &str) -> String {
    let mut out = String::with_capacity(text.len() + new.len() + eol.len());
    out.push_str(&text[..at]);
    if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
        out.push_str(eol);
    }
    out.push_str(new);
    out.push_str(&text[at..]);
    out
}

/// Starts a block list under `key:` (written `key:` or `key: []`) in the document of
/// `anchor` (the document's `metadata.name`).
fn empty_list(
    text: &str,
    all: &[Line],
    eol: &str,
    anchor: &Located<String>,
    key: &str,
    path: &str,
    entry: impl Fn(&str) -> String,
) -> Result<(String, u64), EditError> {
    let name_line = usize::try_from(anchor.span.line)
        .ok()
        .and_then(|l| l.checked_sub(1))
        .unwrap_or(0);
    let is_marker = |l: &Line| {
        let s = &text[l.start..l.end];
        s == "---" || s.starts_with("--- ") || s == "..." || s.starts_with("---\t")
    };
    let start = (0..=name_line.min(all.len().saturating_sub(1)))
        .rev()
        .find(|&i| is_marker(&all[i]))
        .map(|i| i + 1)
        .unwrap_or(0);
    let end = (name_line + 1..all.len())
        .find(|&i| is_marker(&all[i]))
        .unwrap_or(all.len());
    let mut found = Vec::new();
    for (i, l) in all.iter().enumerate().take(end).skip(start) {
        let s = &text[l.start..l.end];
        let trimmed = s.trim_start_matches(' ');
        let indent = s.len() - trimmed.len();
        let Some(rest) = trimmed.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else {
            continue;
        };
        if indent == 0 {
            continue;
        }
        let value = rest.split('#').next().unwrap_or("").trim();
        if value.is_empty() || value.replace(' ', "") == "[]" {
            found.push((i, indent, rest));
        }
    }
    let [(i, indent, rest)] = found.as_slice() else {
        return Err(EditError::Unsupported {
            at: anchor.span.to_string(),
            message: format!(
                "{path}: cannot find an empty `{key}:` list to add to here; write `{key}:` under spec first (or add the entry by hand)"
            ),
        });
    };
    let l = all[*i];
    let s = &text[l.start..l.end];
    let key_end = s.len() - rest.len();
    let new_rest = match rest.find('[') {
        Some(open) => {
            let close = rest[open..].find(']').map(|c| open + c + 1).unwrap_or(open);
            let mut r = format!("{}{}", rest[..open].trim_end(), &rest[close..]);
            if !r.contains('#') {
                r = r.trim_end().to_string();
            }
            r
        }
        None => rest.to_string(),
    };
    let new_key_line = format!("{}{}", &s[..key_end], new_rest);
    let indent = " ".repeat(indent + 2);
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str(&text[..l.start]);
    out.push_str(&new_key_line);
    out.push_str(&text[l.end..l.next]);
    if l.next == l.end {
        out.push_str(eol);
    }
    out.push_str(&entry(&indent));
    out.push_str(&text[l.next..]);
    Ok((out, *i as u64 + 2))
}
