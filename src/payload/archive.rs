//! PURE: finding `release-manifests/image-references` in a release image's layer, read as
//! a stream: gzip (or an uncompressed tar), then tar entries one after the other, never the
//! whole layer in memory. A [`Budget`] bounds both the decompressed bytes read before the
//! file is found (a gzip bomb stops there) and the file itself.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component as PathPart, Path};
use std::rc::Rc;

use super::image_references::parse_image_references;
use super::{IMAGE_REFERENCES_PATH, ImageReference, PayloadError};

/// How much of a layer relsync reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The largest image-references accepted, in bytes (a real one is ~100 KiB for 190
    /// components). Default 8 MiB.
    pub image_references_bytes: u64,
    /// The most bytes of the layer read, compressed or decompressed, before image-references
    /// is found. Default 512 MiB.
    pub layer_bytes: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            image_references_bytes: 8 * 1024 * 1024,
            layer_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Which reader of the chain failed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The caller's reader.
    Input,
    /// The gzip decoder.
    Gzip,
    /// The decompressed bytes passed [`Budget::layer_bytes`].
    Budget,
}

/// The first failure seen along the reader chain (later ones are consequences).
type FirstFault = Rc<RefCell<Option<(Fault, io::ErrorKind, String)>>>;

/// A reader that records its inner reader's first failure as `fault`.
struct Watch<R> {
    inner: R,
    fault: Fault,
    seen: FirstFault,
}

impl<R: Read> Read for Watch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            let mut seen = self.seen.borrow_mut();
            if seen.is_none() {
                *seen = Some((self.fault, e.kind(), e.to_string()));
            }
        })
    }
}

/// A reader that fails once more than `left` bytes were asked of it.
struct Limit<R> {
    inner: R,
    left: u64,
    seen: FirstFault,
}

impl<R: Read> Read for Limit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            let mut seen = self.seen.borrow_mut();
            if seen.is_none() {
                *seen = Some((Fault::Budget, io::ErrorKind::InvalidData, String::new()));
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, "over budget"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads a release image's layer from `input` (gzip-compressed or an uncompressed tar;
/// told apart by the gzip magic bytes) up to `release-manifests/image-references`, and
/// parses that file ([`parse_image_references`]). Stops reading there: the rest of `input`
/// is left unread. Errors: [`PayloadError::NotGzip`], [`PayloadError::Compression`]
/// (zstd), [`PayloadError::NotTar`], [`PayloadError::Missing`],
/// [`PayloadError::OverBudget`], [`PayloadError::LayerOverBudget`],
/// [`PayloadError::Malformed`], and [`PayloadError::Input`] when `input` itself fails.
pub fn read_image_references<R: Read>(
    input: R,
    budget: &Budget,
) -> Result<Vec<ImageReference>, PayloadError> {
    let seen: FirstFault = Rc::new(RefCell::new(None));
    let mut buffered = BufReader::new(Watch {
        inner: input,
        fault: Fault::Input,
        seen: seen.clone(),
    });
    let magic = {
        let head = buffered
            .fill_buf()
            .map_err(|e| classify(&seen, budget, e))?;
        [head.first().copied(), head.get(1).copied()]
    };
    let limit = budget.layer_bytes;
    match magic {
        [Some(0x1f), Some(0x8b)] => {
            let gzip = Watch {
                inner: flate2::bufread::MultiGzDecoder::new(buffered),
                fault: Fault::Gzip,
                seen: seen.clone(),
            };
            find(
                Limit {
                    inner: gzip,
                    left: limit,
                    seen: seen.clone(),
                },
                budget,
                &seen,
            )
        }
        [Some(0x28), Some(0xb5)] => Err(PayloadError::Compression("zstd")),
        _ => find(
            Limit {
                inner: buffered,
                left: limit,
                seen: seen.clone(),
            },
            budget,
            &seen,
        ),
    }
}

/// The tar entries of `tar`, up to image-references.
fn find<R: Read>(
    tar: R,
    budget: &Budget,
    seen: &FirstFault,
) -> Result<Vec<ImageReference>, PayloadError> {
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().map_err(|e| classify(seen, budget, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| classify(seen, budget, e))?;
        let path = entry.path().map_err(|e| classify(seen, budget, e))?;
        if !is_image_references(&path) {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(PayloadError::Malformed(
                "it is not a regular file (a link or a directory)".to_string(),
            ));
        }
        let limit = budget.image_references_bytes;
        let size = entry.size();
        if size > limit {
            return Err(PayloadError::OverBudget { size, limit });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| classify(seen, budget, e))?;
        if bytes.len() as u64 > limit {
            return Err(PayloadError::OverBudget {
                size: bytes.len() as u64,
                limit,
            });
        }
        return parse_image_references(&bytes);
    }
    Err(PayloadError::Missing)
}

/// Whether an entry's path is `release-manifests/image-references` (`./` and `/` before it
/// allowed, as tar writers put them).
fn is_image_references(path: &Path) -> bool {
    let parts: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            PathPart::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    let want: Vec<&str> = IMAGE_REFERENCES_PATH.split('/').collect();
    parts.len() == want.len() && parts.iter().zip(&want).all(|(p, w)| *p == *w)
}

/// The error an I/O failure along the chain stands for: the first reader that failed says.
fn classify(seen: &FirstFault, budget: &Budget, e: io::Error) -> PayloadError {
    match seen.borrow().as_ref() {
        Some((Fault::Input, kind, message)) => {
            PayloadError::Input(io::Error::new(*kind, message.clone()))
        }
        Some((Fault::Gzip, _, message)) => PayloadError::NotGzip(one_line(message)),
        Some((Fault::Budget, _, _)) => PayloadError::LayerOverBudget {
            limit: budget.layer_bytes,
        },
        None => PayloadError::NotTar(one_line(&e.to_string())),
    }
}

/// A reader's message made safe to show: the tar crate quotes the bytes it could not read,
/// which may be anything. Its first line, control characters escaped, at most 80 characters.
fn one_line(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let mut out = String::new();
    for c in first.chars().take(80) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if first.chars().count() > 80 {
        out.push('…');
    }
    out
}
