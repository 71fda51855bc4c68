//! A layout's `index.json`: read and checked (every entry's digest, its tag annotation),
//! cached while the file's identity stays the same, and the edits that set or remove a tag
//! in its `manifests` list.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::*;
use crate::digest::Digest;
use crate::registry::{REF_NAME_ANNOTATION, RegistryError};

/// The largest `index.json` read.
pub(super) const MAX_INDEX_BYTES: u64 = 256 * 1024 * 1024;

/// One `index.json` entry, as read.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) digest: Digest,
    pub(super) media_type: Option<String>,
}

/// The parsed `index.json` of a layout.
#[derive(Debug, Default)]
pub(super) struct LayoutIndex {
    pub(super) tags: BTreeMap<String, usize>,
    pub(super) entries: Vec<Entry>,
}

impl LayoutIndex {
    pub(super) fn tag(&self, tag: &str) -> Option<&Entry> {
        self.tags.get(tag).and_then(|&i| self.entries.get(i))
    }

    pub(super) fn media_type_of(&self, digest: &Digest) -> Option<&str> {
        self.entries
            .iter()
            .filter(|e| e.digest == *digest)
            .find_map(|e| e.media_type.as_deref())
    }
}

/// What identifies one version of `index.json` on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) len: u64,
    pub(super) modified: Option<SystemTime>,
    pub(super) inode: u64,
}

impl Stamp {
    pub(super) fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

pub(super) type IndexCache = Arc<Mutex<Option<(Stamp, Arc<LayoutIndex>)>>>;

#[derive(serde::Deserialize)]
pub(super) struct IndexJson {
    #[serde(default)]
    pub(super) manifests: Vec<IndexEntry>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IndexEntry {
    pub(super) digest: String,
    #[serde(default)]
    pub(super) media_type: Option<String>,
    #[serde(default)]
    pub(super) annotations: BTreeMap<String, String>,
}

/// Reads the index of the layout at `dir`; a missing `index.json` is an empty repository.
pub(super) async fn read_index(dir: &Path) -> Result<LayoutIndex, RegistryError> {
    let index_path = dir.join("index.json");
    let layout_err = |reason: String| RegistryError::Layout {
        path: dir.to_path_buf(),
        reason,
    };
    refuse_link(dir, Path::new("index.json")).await?;
    let meta = match tokio::fs::metadata(&index_path).await {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LayoutIndex::default());
        }
        Err(source) => {
            return Err(RegistryError::Io {
                path: index_path,
                source,
            });
        }
    };
    if meta.len() > MAX_INDEX_BYTES {
        return Err(RegistryError::TooLarge {
            context: format!("reading {}", index_path.display()),
            limit: MAX_INDEX_BYTES,
        });
    }
    let oci_layout = dir.join("oci-layout");
    match tokio::fs::read(&oci_layout).await {
        Ok(bytes) => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct OciLayout {
                image_layout_version: String,
            }
            let l: OciLayout =
                serde_json::from_slice(&bytes).map_err(|source| RegistryError::Json {
                    context: format!("reading {}", oci_layout.display()),
                    source,
                })?;
            if !l.image_layout_version.starts_with("1.") {
                return Err(layout_err(format!(
                    "unsupported imageLayoutVersion `{}`",
                    l.image_layout_version
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(layout_err(
                "index.json without an oci-layout file: not an OCI image layout".to_string(),
            ));
        }
        Err(source) => {
            return Err(RegistryError::Io {
                path: oci_layout,
                source,
            });
        }
    }
    let bytes = tokio::fs::read(&index_path)
        .await
        .map_err(|source| RegistryError::Io {
            path: index_path.clone(),
            source,
        })?;
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return Err(RegistryError::TooLarge {
            context: format!("reading {}", index_path.display()),
            limit: MAX_INDEX_BYTES,
        });
    }
    let index: IndexJson =
        serde_json::from_slice(&bytes).map_err(|source| RegistryError::Json {
            context: format!("reading {}", index_path.display()),
            source,
        })?;
    let mut out = LayoutIndex::default();
    for (i, entry) in index.manifests.into_iter().enumerate() {
        let digest = Digest::parse(&entry.digest).map_err(|source| RegistryError::BadDigest {
            context: format!("{}: manifests[{i}]", index_path.display()),
            source,
        })?;
        if let Some(tag) = entry.annotations.get(REF_NAME_ANNOTATION) {
            if let Some(previous) = out.tag(tag)
                && previous.digest != digest
            {
                return Err(layout_err(format!(
                    "tag `{tag}` is annotated on two manifests ({} and {digest})",
                    previous.digest
                )));
            }
            out.tags.insert(tag.clone(), out.entries.len());
        }
        out.entries.push(Entry {
            digest,
            media_type: entry.media_type.filter(|m| !m.is_empty()),
        });
    }
    Ok(out)
}

/// Whether an `index.json` entry names `tag`.
pub(super) fn entry_has_tag(entry: &serde_json::Value, tag: &str) -> bool {
    entry
        .get("annotations")
        .and_then(|a| a.get(REF_NAME_ANNOTATION))
        .and_then(|t| t.as_str())
        == Some(tag)
}

/// The digest `tag` holds in an `index.json` `manifests` list (its first entry), if any.
pub(super) fn tag_digest(list: &[serde_json::Value], tag: &str) -> Option<Digest> {
    list.iter()
        .find(|e| entry_has_tag(e, tag))
        .and_then(|e| e.get("digest")?.as_str())
        .and_then(|d| Digest::parse(d).ok())
}

/// Points `tag` at `entry` in an `index.json` `manifests` list (replacing its first entry
/// in place and dropping any other); whether that changed anything.
pub(super) fn set_tag(
    list: &mut Vec<serde_json::Value>,
    tag: &str,
    entry: serde_json::Value,
) -> bool {
    match list.iter().position(|e| entry_has_tag(e, tag)) {
        Some(i) => {
            if list[i] == entry {
                return false;
            }
            list[i] = entry;
            let mut j = i + 1;
            while j < list.len() {
                if entry_has_tag(&list[j], tag) {
                    list.remove(j);
                } else {
                    j += 1;
                }
            }
        }
        None => list.push(entry),
    }
    true
}
