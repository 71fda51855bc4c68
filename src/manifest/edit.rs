//! PURE: text edits of manifest files that keep every other byte as it was.
//!
//! `relsync promote` adds one version to a channel's `versions`, and `relsync add` adds one
//! release to a stream's `releases`. Neither re-serializes YAML (which would lose comments,
//! quoting and layout): the new entry is written as text, in the style of its neighbours,
//! at the place the parsed spans point to. The result is then parsed and validated again,
//! and compared with what was there before: the edit is returned only when the one list
//! gained exactly the one entry and nothing else changed. Nothing is written here; the
//! caller writes the returned text.
//!
//! Supported list styles: block lists (`- x`, one entry per line; a release is a block
//! mapping `- version: …` with `digest: …` on its own line), flow lists (`[a, b]`), and an
//! empty list written `key: []` or `key:` (a block list is started below the key). Anything
//! else (flow mappings as releases, a missing key) is refused with a message saying what to
//! write by hand.

use std::cmp::Ordering;

use super::{Diagnostics, Located, Manifests, Order, ReleaseChannel, ReleaseStream, SourceFile};
use crate::digest::Digest;

/// How manifests are loaded and judged: files and the policies directory in, the manifests or
/// every problem out.
pub type Load = fn(&[SourceFile], &str) -> Result<Manifests, Diagnostics>;

/// Why an edit was not made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file's text does not have the shape the edit needs.
    #[error("{at}: {message}")]
    Unsupported {
        /// `file:line:col` (or the file) where the problem is.
        at: String,
        /// What is wrong and what to do instead.
        message: String,
    },
    /// The named stream or channel does not exist in the manifests.
    #[error("no {kind} `{name}` in the manifests")]
    Unknown {
        /// `stream` or `channel`.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// The edited file was not among the files given.
    #[error("{0}: file not among the files read")]
    MissingFile(String),
    /// The edited manifests do not validate (a policy such as `channelSubsets` is broken,
    /// or two versions tie): every problem, at its place in the edited text.
    #[error("the edited manifests are invalid:\n{0}")]
    Invalid(Diagnostics),
    /// The edited manifests parsed, but differ from the intended change (a bug in the edit,
    /// or a file shape the edit misread); nothing is written.
    #[error(
        "{path}: the edit did not make exactly the intended change ({detail}); nothing was written"
    )]
    NotExact {
        /// The edited file.
        path: String,
        /// What differs.
        detail: String,
    },
}

/// The change to make.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// Add `version` to channel `channel`'s `versions`.
    Promote {
        /// The channel.
        channel: &'a str,
        /// The version (a release of the channel's stream).
        version: &'a str,
    },
    /// Add a release to stream `stream`'s `releases`.
    AddRelease {
        /// The stream.
        stream: &'a str,
        /// The new version.
        version: &'a str,
        /// Its digest.
        digest: &'a Digest,
    },
}

/// An edit made and verified, not yet written.
#[derive(Debug, Clone)]
pub struct Edited {
    /// The edited file, as in [`SourceFile::path`].
    pub path: String,
    /// Its new contents.
    pub contents: String,
    /// The 1-based line of the new entry in the new contents.
    pub line: u64,
    /// Where in the list the entry went (0 = first).
    pub index: usize,
    /// The manifests parsed from the edited files (validated).
    pub manifests: Manifests,
}

/// Makes `change` in the text of `files` (every manifest and policy file, as
/// [`super::validate`] reads them), parses and validates the result with `load`, and checks
/// that exactly the intended entry was added. `before` is `load(files, policies_dir)`.
///
/// `load` is how the caller judges manifests: [`crate::desired::load`] also reports the
/// problems of the derived state, which this layer does not know of.
///
/// The position: a channel's new version goes where the stream's order puts it when the
/// channel's list is sorted by that order (ascending or descending), else last. A stream's
/// new release goes last under `order: listed` (newest last), and under `semver` in
/// precedence order when `releases` is sorted ascending, else last.
pub fn edit(
    files: &[SourceFile],
    policies_dir: &str,
    before: &Manifests,
    change: Change<'_>,
    load: Load,
) -> Result<Edited, EditError> {
    let (path, index, insert) = match change {
        Change::Promote { channel, version } => {
            let c = before
                .channels
                .get(channel)
                .ok_or_else(|| EditError::Unknown {
                    kind: "channel",
                    name: channel.to_string(),
                })?;
            let stream = before
                .streams
                .get(&c.stream.value)
                .ok_or_else(|| EditError::Unknown {
                    kind: "stream",
                    name: c.stream.value.clone(),
                })?;
            let index = promote_position(stream, c, version);
            (
                c.name.span.file.to_string(),
                index,
                Insert::Scalar {
                    entries: c.versions.iter().collect(),
                    key: "versions",
                    anchor: &c.name,
                    value: version.to_string(),
                },
            )
        }
        Change::AddRelease {
            stream,
            version,
            digest,
        } => {
            let s = before
                .streams
                .get(stream)
                .ok_or_else(|| EditError::Unknown {
                    kind: "stream",
                    name: stream.to_string(),
                })?;
            let index = release_position(s, version);
            (
                s.name.span.file.to_string(),
                index,
                Insert::Release {
                    stream: s,
                    anchor: &s.name,
                    version: version.to_string(),
                    digest: digest.to_string(),
                },
            )
        }
    };
    let file = files
        .iter()
        .find(|f| f.path == path)
        .ok_or_else(|| EditError::MissingFile(path.clone()))?;
    let text = std::str::from_utf8(&file.contents).map_err(|_| EditError::Unsupported {
        at: path.clone(),
        message: "the file is not UTF-8".to_string(),
    })?;
    let (contents, line) = insert.apply(text, &path, index)?;

    let edited_files: Vec<SourceFile> = files
        .iter()
        .map(|f| {
            if f.path == path {
                SourceFile {
                    path: f.path.clone(),
                    contents: contents.clone().into_bytes(),
                }
            } else {
                f.clone()
            }
        })
        .collect();
    let after = load(&edited_files, policies_dir).map_err(EditError::Invalid)?;
    verify(before, &after, change, index).map_err(|detail| EditError::NotExact {
        path: path.clone(),
        detail,
    })?;
    Ok(Edited {
        path,
        contents,
        line,
        index,
        manifests: after,
    })
}

/// Where `version` goes in `channel.versions` (see [`edit`]).
pub fn promote_position(stream: &ReleaseStream, channel: &ReleaseChannel, version: &str) -> usize {
    let key = |v: &str| -> Option<Key> {
        match stream.order {
            Order::Semver => semver::Version::parse(v).ok().map(Key::Semver),
            Order::Listed => stream
                .releases
                .iter()
                .position(|r| r.version.value == v)
                .map(Key::Listed),
        }
    };
    let keys: Option<Vec<Key>> = channel.versions.iter().map(|v| key(&v.value)).collect();
    let (Some(keys), Some(new)) = (keys, key(version)) else {
        return channel.versions.len();
    };
    sorted_position(&keys, &new).unwrap_or(keys.len())
}

/// Where a new release goes in `stream.releases` (see [`edit`]).
pub fn release_position(stream: &ReleaseStream, version: &str) -> usize {
    let n = stream.releases.len();
    if stream.order == Order::Listed {
        return n;
    }
    let keys: Option<Vec<Key>> = stream
        .releases
        .iter()
        .map(|r| {
            semver::Version::parse(&r.version.value)
                .ok()
                .map(Key::Semver)
        })
        .collect();
    let (Some(keys), Ok(new)) = (keys, semver::Version::parse(version)) else {
        return n;
    };
    let ascending = keys
        .windows(2)
        .all(|w| w[0].cmp(&w[1]) != Ordering::Greater);
    if !ascending {
        return n;
    }
    keys.iter()
        .filter(|k| k.cmp(&Key::Semver(new.clone())) != Ordering::Greater)
        .count()
}

/// A sort key under a stream's order.
#[derive(Debug, Clone)]
enum Key {
    Semver(semver::Version),
    Listed(usize),
}

impl Key {
    fn cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Semver(a), Key::Semver(b)) => a.cmp_precedence(b),
            (Key::Listed(a), Key::Listed(b)) => a.cmp(b),
            (Key::Semver(_), Key::Listed(_)) => Ordering::Less,
            (Key::Listed(_), Key::Semver(_)) => Ordering::Greater,
        }
    }
}

/// The position of `new` in `keys` when they are sorted ascending (after equal keys) or
/// descending (before equal keys); `None` when they are not sorted.
fn sorted_position(keys: &[Key], new: &Key) -> Option<usize> {
    let asc = keys
        .windows(2)
        .all(|w| w[0].cmp(&w[1]) != Ordering::Greater);
    let desc = keys.windows(2).all(|w| w[0].cmp(&w[1]) != Ordering::Less);
    if asc {
        Some(
            keys.iter()
                .filter(|k| k.cmp(new) != Ordering::Greater)
                .count(),
        )
    } else if desc {
        Some(
            keys.iter()
                .filter(|k| k.cmp(new) == Ordering::Greater)
                .count(),
        )
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Text.

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

fn position(text: &str, all: &[Line], span: &super::Span) -> Result<Pos, EditError> {
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
enum Insert<'a> {
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
    fn apply(&self, text: &str, path: &str, index: usize) -> Result<(String, u64), EditError> {
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

fn unsupported(span: &super::Span, message: &str) -> EditError {
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

// ---------------------------------------------------------------------------------------------
// Verification.

/// Checks that `after` is `before` plus exactly the change, comparing values (places move).
fn verify(
    before: &Manifests,
    after: &Manifests,
    change: Change<'_>,
    index: usize,
) -> Result<(), String> {
    let names = |m: &Manifests| -> (Vec<String>, Vec<String>) {
        (
            m.streams.keys().cloned().collect(),
            m.channels.keys().cloned().collect(),
        )
    };
    if names(before) != names(after) {
        return Err("the set of streams or channels changed".to_string());
    }
    if policy_values(&before.policy) != policy_values(&after.policy) {
        return Err("the policies changed".to_string());
    }
    for (name, b) in &before.streams {
        let a = &after.streams[name];
        let mut expected = stream_values(b);
        if let Change::AddRelease {
            stream,
            version,
            digest,
        } = change
            && stream == name
        {
            expected
                .4
                .insert(index, (version.to_string(), digest.to_string(), Vec::new()));
        }
        if stream_values(a) != expected {
            return Err(format!("stream `{name}` is not as intended"));
        }
    }
    for (name, b) in &before.channels {
        let a = &after.channels[name];
        let mut expected = channel_values(b);
        if let Change::Promote { channel, version } = change
            && channel == name
        {
            expected.5.insert(index, version.to_string());
        }
        if channel_values(a) != expected {
            return Err(format!("channel `{name}` is not as intended"));
        }
    }
    Ok(())
}

type StreamValues = (
    String,
    String,
    String,
    bool,
    Vec<(String, String, Vec<String>)>,
);

fn stream_values(s: &ReleaseStream) -> StreamValues {
    (
        s.name.value.clone(),
        s.source.value.clone(),
        s.target.value.clone(),
        s.order == Order::Listed,
        s.releases
            .iter()
            .map(|r| {
                (
                    r.version.value.clone(),
                    r.digest.value.to_string(),
                    values(&r.tags),
                )
            })
            .collect(),
    )
}

type ChannelValues = (
    String,
    String,
    Vec<String>,
    Option<(String, String)>,
    Option<(String, u64)>,
    Vec<String>,
    Vec<String>,
);

fn channel_values(c: &ReleaseChannel) -> ChannelValues {
    (
        c.name.value.clone(),
        c.stream.value.clone(),
        values(&c.tags),
        c.image_stream
            .as_ref()
            .map(|i| (i.namespace.clone(), i.name.clone())),
        c.feeder
            .as_ref()
            .map(|f| (f.channel.value.clone(), f.delay_seconds)),
        values(&c.versions),
        values(&c.tombstones),
    )
}

type PolicyValues = (
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Option<u32>,
    Vec<(String, String)>,
);

fn policy_values(p: &super::Policy) -> PolicyValues {
    (
        values(&p.names),
        values(&p.allowed_sources),
        p.immutable_tags
            .iter()
            .map(|r| r.value.as_str().to_string())
            .collect(),
        p.max_deletes_per_sync.as_ref().map(|m| m.value),
        p.channel_subsets
            .iter()
            .map(|(a, b)| (a.value.clone(), b.value.clone()))
            .collect(),
    )
}

fn values(list: &[Located<String>]) -> Vec<String> {
    list.iter().map(|v| v.value.clone()).collect()
}

#[cfg(test)]
mod tests {
    /// The manifest layer's own judgement (no derived-state checks), for these tests.
    fn load(files: &[SourceFile], policies_dir: &str) -> Result<Manifests, Diagnostics> {
        super::super::validate(files, policies_dir).into_result()
    }

    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.to_string(),
            contents: text.as_bytes().to_vec(),
        }
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn stream(order: &str, releases: &str) -> String {
        format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: app\nspec:\n  source: r.example/src\n  target: r.example/dst\n  order: {order}\n  releases:{releases}"
        )
    }

    fn channel(versions: &str) -> String {
        format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: next\nspec:\n  stream: app\n  versions:{versions}"
        )
    }

    fn releases3() -> String {
        format!(
            "\n    - version: 1.0.0\n      digest: {D1}\n    # the middle one\n    - version: 1.1.0\n      digest: {D2}\n      tags: [one-one]\n    - version: 1.2.0\n      digest: {D3}\n"
        )
    }

    fn promote(files: &[SourceFile], version: &str) -> Result<Edited, EditError> {
        let before = load(files, "policies").expect("valid before");
        edit(
            files,
            "policies",
            &before,
            Change::Promote {
                channel: "next",
                version,
            },
            load,
        )
    }

    #[test]
    fn block_list_insert_keeps_every_other_byte() {
        let ch = channel("\n    - 1.0.0   # first\n\n    # later ones\n    - 1.2.0\n# end\n");
        let files = [
            file("s.yaml", &stream("semver", &releases3())),
            file("c.yaml", &ch),
        ];
        let e = promote(&files, "1.1.0").unwrap();
        assert_eq!(
            e.contents,
            ch.replace("    # later ones\n", "    # later ones\n    - 1.1.0\n")
        );
        assert_eq!((e.index, e.line), (1, 11));
    }

    #[test]
    fn append_after_last_and_quotes_and_crlf() {
        let ch = channel("\n    - \"1.0.0\"\n    - \"1.1.0\"  # x\n  # trailing comment\n")
            .replace('\n', "\r\n");
        let files = [
            file("s.yaml", &stream("semver", &releases3())),
            file("c.yaml", &ch),
        ];
        let e = promote(&files, "1.2.0").unwrap();
        assert_eq!(
            e.contents,
            ch.replace("# x\r\n", "# x\r\n    - \"1.2.0\"\r\n")
        );
        assert_eq!(e.line, 10);
    }

    #[test]
    fn flow_and_empty_lists() {
        let s = stream("semver", &releases3());
        let ch = channel(" [1.0.0, 1.2.0]  # flow\n");
        let e = promote(&[file("s.yaml", &s), file("c.yaml", &ch)], "1.1.0").unwrap();
        assert_eq!(
            e.contents,
            ch.replace("[1.0.0, 1.2.0]", "[1.0.0, 1.1.0, 1.2.0]")
        );
        let e = promote(&[file("s.yaml", &s), file("c.yaml", &ch)], "1.2.0");
        // Already listed twice would be invalid: the caller refuses before; here the
        // re-parse reports the duplicate.
        assert!(matches!(e, Err(EditError::Invalid(_))), "{e:?}");
        let ch = channel(" []  # none yet\n");
        let e = promote(&[file("s.yaml", &s), file("c.yaml", &ch)], "1.1.0").unwrap();
        assert_eq!(
            e.contents,
            ch.replace(
                "versions: []  # none yet\n",
                "versions:  # none yet\n    - 1.1.0\n"
            )
        );
    }

    #[test]
    fn descending_and_unsorted_lists() {
        let s = stream("semver", &releases3());
        let ch = channel("\n    - 1.2.0\n    - 1.0.0\n");
        let e = promote(&[file("s.yaml", &s), file("c.yaml", &ch)], "1.1.0").unwrap();
        assert_eq!(e.contents, ch.replace("- 1.0.0", "- 1.1.0\n    - 1.0.0"));
        let ch = channel("\n    - 1.2.0\n    - 1.0.0\n    - 1.1.0\n");
        let s2 = stream(
            "semver",
            &format!(
                "{}    - version: 0.9.0\n      digest: sha256:{}\n",
                releases3(),
                "4".repeat(64)
            ),
        );
        let e = promote(&[file("s.yaml", &s2), file("c.yaml", &ch)], "0.9.0").unwrap();
        assert_eq!(e.index, 3, "unsorted: appended");
    }

    #[test]
    fn listed_order_uses_the_stream_position() {
        let s = stream("listed", &releases3());
        let ch = channel("\n    - 1.0.0\n    - 1.2.0\n");
        let e = promote(&[file("s.yaml", &s), file("c.yaml", &ch)], "1.1.0").unwrap();
        assert_eq!(e.index, 1);
    }

    #[test]
    fn add_release_in_order_or_last() {
        let s = stream("semver", &releases3());
        let files = [file("s.yaml", &s)];
        let before = load(&files, "policies").unwrap();
        let d = Digest::parse(&format!("sha256:{}", "5".repeat(64))).unwrap();
        let e = edit(
            &files,
            "policies",
            &before,
            Change::AddRelease {
                stream: "app",
                version: "1.1.5",
                digest: &d,
            },
            load,
        )
        .unwrap();
        assert_eq!(
            e.contents,
            s.replace(
                "    - version: 1.2.0\n",
                &format!("    - version: 1.1.5\n      digest: {d}\n    - version: 1.2.0\n")
            )
        );
        assert_eq!(e.line, 16);
        let e = edit(
            &files,
            "policies",
            &before,
            Change::AddRelease {
                stream: "app",
                version: "2.0.0",
                digest: &d,
            },
            load,
        )
        .unwrap();
        assert_eq!(
            e.contents,
            format!("{s}    - version: 2.0.0\n      digest: {d}\n")
        );
        assert_eq!(e.line, 18);
        // A stream with no releases yet.
        let s = stream("listed", " []\n");
        let files = [file("s.yaml", &s)];
        let before = load(&files, "policies").unwrap();
        let e = edit(
            &files,
            "policies",
            &before,
            Change::AddRelease {
                stream: "app",
                version: "x-1",
                digest: &d,
            },
            load,
        )
        .unwrap();
        assert_eq!(
            e.contents,
            s.replace(
                "releases: []\n",
                &format!("releases:\n    - version: x-1\n      digest: {d}\n")
            )
        );
    }

    #[test]
    fn second_document_of_a_file_with_a_byte_order_mark() {
        let s = stream("semver", &releases3());
        let two = format!(
            "\u{feff}{}\n---\n{}",
            channel("\n    - 1.0.0\n"),
            channel(" []\n").replace("name: next", "name: other")
        );
        let files = [file("s.yaml", &s), file("c.yaml", &two)];
        let before = load(&files, "policies").unwrap();
        let e = edit(
            &files,
            "policies",
            &before,
            Change::Promote {
                channel: "other",
                version: "1.2.0",
            },
            load,
        )
        .unwrap();
        let (head, tail) = two.split_at(two.find("---").unwrap());
        assert_eq!(
            e.contents,
            format!(
                "{head}{}",
                tail.replace("versions: []\n", "versions:\n    - 1.2.0\n")
            )
        );
        assert_eq!(e.line, 18);
        let e = promote(&files, "1.2.0").unwrap();
        assert_eq!(
            e.contents,
            two.replacen("    - 1.0.0\n", "    - 1.0.0\n    - 1.2.0\n", 1)
        );
        assert_eq!(e.line, 9);
    }

    #[test]
    fn flow_mapping_releases_are_refused() {
        let s = stream(
            "semver",
            &format!("\n    - {{version: 1.0.0, digest: {D1}}}\n"),
        );
        let files = [file("s.yaml", &s)];
        let before = load(&files, "policies").unwrap();
        let err = edit(
            &files,
            "policies",
            &before,
            Change::AddRelease {
                stream: "app",
                version: "1.1.0",
                digest: &Digest::parse(D2).unwrap(),
            },
            load,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "s.yaml:10:17: releases written as flow mappings (`{version: …, digest: …}`) are not edited; add the release by hand"
        );
    }
}
