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
//!
//! Here: the change, where it goes in its list, and the edit from start to end; `text` makes
//! the insertion in the neighbours' style, `verify` checks the result.

use std::cmp::Ordering;

#[cfg(test)]
mod tests;
mod text;
mod verify;

use super::{Diagnostics, Manifests, Order, ReleaseChannel, ReleaseStream, SourceFile};
use crate::digest::Digest;
use text::Insert;
use verify::verify;

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
        /// The name of the channel whose `versions` gains the entry.
        channel: &'a str,
        /// The version (a release of the channel's stream).
        version: &'a str,
    },
    /// Add a release to stream `stream`'s `releases`.
    AddRelease {
        /// The name of the stream whose `releases` gains the entry.
        stream: &'a str,
        /// The version string of the new release (not yet in the stream).
        version: &'a str,
        /// The digest the new release pins (resolved by the caller from the source).
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
