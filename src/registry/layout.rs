//! The `oci:` store: each repository is one OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/<alg>/<hex>`); its tags are the `index.json` entries annotated
//! `org.opencontainers.image.ref.name`. Reading only, for now.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::OnceCell;

use super::{REF_NAME_ANNOTATION, RegistryError, TargetReader};
use crate::digest::Digest;

/// The largest `index.json` read.
const MAX_INDEX_BYTES: u64 = 256 * 1024 * 1024;

/// The tags of a layout, read once.
#[derive(Debug, Default)]
struct LayoutIndex {
    tags: BTreeMap<String, Digest>,
}

/// One OCI image layout directory used as a repository. The tag index is read on first use
/// and kept for the life of this value (a snapshot for one observation).
#[derive(Debug, Clone)]
pub struct LayoutRepository {
    name: String,
    dir: PathBuf,
    index: Arc<OnceCell<LayoutIndex>>,
}

#[derive(serde::Deserialize)]
struct IndexJson {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(serde::Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl LayoutRepository {
    /// The layout at `dir`; `name` is the repository string (for messages).
    pub fn new(name: &str, dir: PathBuf) -> Self {
        LayoutRepository {
            name: name.to_string(),
            dir,
            index: Arc::new(OnceCell::new()),
        }
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the blob `digest` in this layout.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    async fn index(&self) -> Result<&LayoutIndex, RegistryError> {
        self.index.get_or_try_init(|| read_index(&self.dir)).await
    }
}

/// Reads the tags of the layout at `dir`; a missing directory or `index.json` is an empty
/// repository.
async fn read_index(dir: &Path) -> Result<LayoutIndex, RegistryError> {
    let index_path = dir.join("index.json");
    let layout_err = |reason: String| RegistryError::Layout {
        path: dir.to_path_buf(),
        reason,
    };
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
    let index: IndexJson =
        serde_json::from_slice(&bytes).map_err(|source| RegistryError::Json {
            context: format!("reading {}", index_path.display()),
            source,
        })?;
    let mut tags = BTreeMap::new();
    for (i, entry) in index.manifests.into_iter().enumerate() {
        let digest = Digest::parse(&entry.digest).map_err(|source| RegistryError::BadDigest {
            context: format!("{}: manifests[{i}]", index_path.display()),
            source,
        })?;
        let Some(tag) = entry.annotations.get(REF_NAME_ANNOTATION) else {
            continue;
        };
        if let Some(previous) = tags.insert(tag.clone(), digest.clone())
            && previous != digest
        {
            return Err(layout_err(format!(
                "tag `{tag}` is annotated on two manifests ({previous} and {digest})"
            )));
        }
    }
    Ok(LayoutIndex { tags })
}

impl TargetReader for LayoutRepository {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self) -> Result<Vec<String>, RegistryError> {
        Ok(self.index().await?.tags.keys().cloned().collect())
    }

    async fn resolve_tag(&self, tag: &str) -> Result<Option<Digest>, RegistryError> {
        Ok(self.index().await?.tags.get(tag).cloned())
    }

    async fn has_manifest(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let path = self.blob_path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(RegistryError::Io { path, source }),
        }
    }
}
