//! The `oci:` store: each repository is one OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/<alg>/<hex>`); its tags are the `index.json` entries annotated
//! `org.opencontainers.image.ref.name`.
//!
//! Writes keep the layout consistent whenever the process stops: a blob is streamed into
//! `blobs/<alg>/.tmp-<random>` (locked while it is written), checked against its digest,
//! synced and renamed into place;
//! `index.json` is rewritten into `index.json.tmp-<random>`, synced and renamed over the old
//! one, under an exclusive lock on the layout directory so that two writers never lose each
//! other's tags. A manifest is only written when every blob and manifest it names is
//! already in the layout. What a writer killed mid-write leaves (an unlocked temporary
//! file) is removed by the next process that writes to the layout.
//!
//! Reads take `index.json` as it is now: the parsed index is cached and reused while the
//! file's identity (inode, size, modification time) stays the same, which a rename always
//! changes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::content::{
    BlobStream, ByteStream, CasDeletion, CasWrite, ContentStore, MAX_MANIFEST_BYTES, RawManifest,
    TagDeletion,
};
use super::verify::{Verifier, check_manifest, digest_like, sniff_media_type};
use super::{REF_NAME_ANNOTATION, RegistryError, TargetReader, check_tag};
use crate::digest::Digest;

mod fs;
mod index;

use crate::fs_durable::RemoveOnDrop;
use fs::*;
use index::*;

/// Chunks a blob is read in.
const READ_CHUNK: usize = 256 * 1024;
/// Buffer in front of a blob file being written.
const WRITE_BUFFER: usize = 1024 * 1024;

/// One OCI image layout directory used as a repository, read and written in place.
#[derive(Debug, Clone)]
pub struct LayoutRepository {
    name: String,
    dir: PathBuf,
    cache: IndexCache,
    /// Whether this process swept the layout's leftovers already.
    swept: Arc<AtomicBool>,
}

impl LayoutRepository {
    /// The layout at `dir`; `name` is the repository string (for messages).
    pub fn new(name: &str, dir: PathBuf) -> Self {
        LayoutRepository {
            name: name.to_string(),
            dir,
            cache: Arc::new(Mutex::new(None)),
            swept: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the blob `digest` in this layout.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.dir, digest)
    }

    /// `index.json` as it is now (from the cache while the file is unchanged).
    async fn index(&self) -> Result<Arc<LayoutIndex>, RegistryError> {
        let index_path = self.dir.join("index.json");
        let stamp = match tokio::fs::metadata(&index_path).await {
            Ok(m) => Stamp::of(&m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Arc::new(LayoutIndex::default()));
            }
            Err(source) => {
                return Err(RegistryError::Io {
                    path: index_path,
                    source,
                });
            }
        };
        if let Some((cached, index)) = self.cache_lock().as_ref()
            && *cached == stamp
        {
            return Ok(index.clone());
        }
        let index = Arc::new(read_index(&self.dir).await?);
        *self.cache_lock() = Some((stamp, index.clone()));
        Ok(index)
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, Option<(Stamp, Arc<LayoutIndex>)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the blob `digest` whole when it is a manifest-sized file; `None` when absent.
    async fn read_manifest_blob(
        &self,
        digest: &Digest,
        context: &str,
    ) -> Result<Option<Bytes>, RegistryError> {
        refuse_blob_links(&self.dir, digest).await?;
        let path = self.blob_path(digest);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RegistryError::Io { path, source }),
        };
        let too_large = || RegistryError::TooLarge {
            context: context.to_string(),
            limit: MAX_MANIFEST_BYTES as u64,
        };
        let len = file
            .metadata()
            .await
            .map_err(|source| RegistryError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        if len > MAX_MANIFEST_BYTES as u64 {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(len as usize);
        (&mut file)
            .take(MAX_MANIFEST_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|source| RegistryError::Io { path, source })?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
        let actual = digest_like(digest, &bytes);
        if actual != digest.as_str() {
            return Err(RegistryError::DigestMismatch {
                context: context.to_string(),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(Some(Bytes::from(bytes)))
    }

    /// Streams `chunks` into the blob `digest`, checking it on the way; skips a blob that
    /// is already there (0 bytes written).
    async fn write_blob(
        &self,
        digest: &Digest,
        mut chunks: ByteStream,
        size: Option<u64>,
        context: &str,
    ) -> Result<u64, RegistryError> {
        self.ensure_layout().await?;
        refuse_blob_links(&self.dir, digest).await?;
        let target = self.blob_path(digest);
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            return Ok(0);
        }
        let dir = target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.dir.clone());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| RegistryError::Io {
                path: dir.clone(),
                source,
            })?;
        let (tmp, file) = blocking(move || locked_temp_file(&dir)).await?;
        let dir = tmp
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.dir.clone());
        let guard = RemoveOnDrop(Some(tmp.clone()));
        let io = |source| RegistryError::Io {
            path: tmp.clone(),
            source,
        };
        let file = tokio::fs::File::from_std(file);
        let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut verifier = Verifier::new(digest, size, context);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            verifier.update(&chunk)?;
            out.write_all(&chunk).await.map_err(io)?;
        }
        let written = verifier.finish()?;
        out.flush().await.map_err(io)?;
        let file = out.into_inner();
        file.sync_all().await.map_err(io)?;
        // On Unix the file stays open, so locked, until it has its final name: a sweep
        // never takes it for a dead writer's leftover.
        #[cfg(not(unix))]
        drop(file);
        tokio::fs::rename(&tmp, &target)
            .await
            .map_err(|source| RegistryError::Io {
                path: target.clone(),
                source,
            })?;
        #[cfg(unix)]
        drop(file);
        guard.keep();
        sync_dir_async(dir).await?;
        Ok(written)
    }

    /// Creates the layout (directories, `oci-layout`, an empty `index.json`) where parts
    /// are missing.
    /// The first time in this process, also removes what writers killed mid-write left
    /// behind ([`sweep_leftovers`]).
    async fn ensure_layout(&self) -> Result<(), RegistryError> {
        let dir = self.dir.clone();
        let sweep = !self.swept.swap(true, Ordering::Relaxed);
        blocking(move || {
            let _lock = lock_layout(&dir)?;
            ensure_layout_locked(&dir)?;
            if sweep {
                sweep_leftovers(&dir);
            }
            Ok(())
        })
        .await
    }

    /// Changes `index.json`'s `manifests` with `change` (which says whether it changed
    /// anything, and what to answer), under the layout's lock, replacing the file
    /// atomically: what `change` reads is what it replaces, whatever other writers (in any
    /// process) do. With `create`, a missing layout is created first; without, a missing
    /// layout is left alone (`change` sees an empty list and nothing is written).
    async fn update_index<R: Send + 'static>(
        &self,
        create: bool,
        change: impl FnOnce(&mut Vec<serde_json::Value>) -> (bool, R) + Send + 'static,
    ) -> Result<R, RegistryError> {
        let dir = self.dir.clone();
        let result = blocking(move || {
            if !create && !dir.join("index.json").exists() {
                return Ok(change(&mut Vec::new()).1);
            }
            let _lock = lock_layout(&dir)?;
            ensure_layout_locked(&dir)?;
            let index_path = dir.join("index.json");
            let bytes = std::fs::read(&index_path).map_err(|source| RegistryError::Io {
                path: index_path.clone(),
                source,
            })?;
            let mut index: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|source| RegistryError::Json {
                    context: format!("reading {}", index_path.display()),
                    source,
                })?;
            let Some(object) = index.as_object_mut() else {
                return Err(RegistryError::Layout {
                    path: dir.clone(),
                    reason: "index.json is not a JSON object".to_string(),
                });
            };
            let manifests = object
                .entry("manifests")
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            let Some(list) = manifests.as_array_mut() else {
                return Err(RegistryError::Layout {
                    path: dir.clone(),
                    reason: "index.json's `manifests` is not a list".to_string(),
                });
            };
            for (i, entry) in list.iter().enumerate() {
                let digest = entry.get("digest").and_then(|d| d.as_str()).unwrap_or("");
                Digest::parse(digest).map_err(|source| RegistryError::BadDigest {
                    context: format!("{}: manifests[{i}]", index_path.display()),
                    source,
                })?;
            }
            let (changed, answer) = change(list);
            if !changed {
                return Ok(answer);
            }
            let bytes =
                serde_json::to_vec_pretty(&index).map_err(|source| RegistryError::Json {
                    context: format!("writing {}", index_path.display()),
                    source,
                })?;
            write_atomically(&dir, "index.json", &bytes)?;
            Ok(answer)
        })
        .await;
        // Whatever happened, the next read looks at the file again.
        *self.cache_lock() = None;
        result
    }

    /// The content side of [`ContentStore::put_manifest`]: checks `manifest` (its digest
    /// against a digest `reference`, its children present) and writes its blob. For a tag,
    /// the `index.json` entry to write under it; for a digest, `None`.
    async fn write_manifest_content(
        &self,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<Option<serde_json::Value>, RegistryError> {
        let by_digest = reference.contains(':');
        let context = if by_digest {
            format!("writing manifest {}@{reference}", self.name)
        } else {
            format!("writing manifest {}:{reference}", self.name)
        };
        if by_digest {
            let d = Digest::parse(reference).map_err(|source| RegistryError::BadDigest {
                context: context.clone(),
                source,
            })?;
            if d != manifest.digest {
                return Err(RegistryError::DigestMismatch {
                    context,
                    expected: d.to_string(),
                    actual: manifest.digest.to_string(),
                });
            }
        } else {
            check_tag(&self.name, reference)?;
        }
        check_manifest(&context, manifest)?;
        self.check_children(manifest, &context).await?;
        let one: Vec<Result<Bytes, RegistryError>> = vec![Ok(manifest.bytes.clone())];
        self.write_blob(
            &manifest.digest,
            Box::pin(futures_util::stream::iter(one)),
            Some(manifest.bytes.len() as u64),
            &context,
        )
        .await?;
        if by_digest {
            return Ok(None);
        }
        Ok(Some(serde_json::json!({
            "mediaType": manifest.media_type,
            "digest": manifest.digest.to_string(),
            "size": manifest.bytes.len(),
            "annotations": { REF_NAME_ANNOTATION: reference },
        })))
    }

    /// Refuses a manifest that names a blob or manifest missing from the layout.
    async fn check_children(
        &self,
        manifest: &RawManifest,
        context: &str,
    ) -> Result<(), RegistryError> {
        #[derive(serde::Deserialize)]
        struct Descriptor {
            digest: String,
            #[serde(default)]
            urls: Vec<String>,
        }
        #[derive(serde::Deserialize)]
        struct Children {
            #[serde(default)]
            config: Option<Descriptor>,
            #[serde(default)]
            layers: Vec<Descriptor>,
            #[serde(default)]
            manifests: Vec<Descriptor>,
        }
        let children: Children =
            serde_json::from_slice(&manifest.bytes).map_err(|source| RegistryError::Json {
                context: context.to_string(),
                source,
            })?;
        let layers = children.layers.iter().filter(|l| l.urls.is_empty());
        for d in children
            .config
            .iter()
            .chain(layers)
            .chain(&children.manifests)
        {
            let digest = Digest::parse(&d.digest).map_err(|source| RegistryError::BadDigest {
                context: context.to_string(),
                source,
            })?;
            if !self.has_blob(&digest).await? {
                return Err(RegistryError::Layout {
                    path: self.dir.clone(),
                    reason: format!(
                        "{context}: it names {digest}, which is not in the layout (content is written before the manifests that name it)"
                    ),
                });
            }
        }
        Ok(())
    }
}

impl TargetReader for LayoutRepository {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self) -> Result<Vec<String>, RegistryError> {
        Ok(self.index().await?.tags.keys().cloned().collect())
    }

    async fn resolve_tag(&self, tag: &str) -> Result<Option<Digest>, RegistryError> {
        Ok(self.index().await?.tag(tag).map(|e| e.digest.clone()))
    }

    async fn has_manifest(&self, digest: &Digest) -> Result<bool, RegistryError> {
        self.has_blob(digest).await
    }
}

impl ContentStore for LayoutRepository {
    async fn get_manifest(&self, reference: &str) -> Result<Option<RawManifest>, RegistryError> {
        let index = self.index().await?;
        let (digest, entry_type, context) = if reference.contains(':') {
            let digest = Digest::parse(reference).map_err(|source| RegistryError::BadDigest {
                context: format!("{}@{reference}", self.name),
                source,
            })?;
            let entry_type = index.media_type_of(&digest).map(str::to_string);
            let context = format!("reading manifest {}@{digest}", self.name);
            (digest, entry_type, context)
        } else {
            check_tag(&self.name, reference)?;
            let Some(entry) = index.tag(reference) else {
                return Ok(None);
            };
            let context = format!("reading manifest {}:{reference}", self.name);
            (entry.digest.clone(), entry.media_type.clone(), context)
        };
        let Some(bytes) = self.read_manifest_blob(&digest, &context).await? else {
            if reference.contains(':') {
                return Ok(None);
            }
            return Err(RegistryError::Layout {
                path: self.dir.clone(),
                reason: format!("{context}: the tag names {digest}, which is not in the layout"),
            });
        };
        let declared = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
            .filter(|m| !m.is_empty());
        let media_type = if reference.contains(':') {
            declared.or(entry_type)
        } else {
            entry_type.or(declared)
        }
        .or_else(|| sniff_media_type(&bytes))
        .ok_or_else(|| RegistryError::Layout {
            path: self.dir.clone(),
            reason: format!("{context}: the manifest has no media type"),
        })?;
        Ok(Some(RawManifest {
            media_type,
            bytes,
            digest,
        }))
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool, RegistryError> {
        refuse_blob_links(&self.dir, digest).await?;
        let path = self.blob_path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(RegistryError::Io { path, source }),
        }
    }

    async fn open_blob(&self, digest: &Digest) -> Result<BlobStream, RegistryError> {
        refuse_blob_links(&self.dir, digest).await?;
        let path = self.blob_path(digest);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|source| RegistryError::Io {
                path: path.clone(),
                source,
            })?;
        let size = file
            .metadata()
            .await
            .map_err(|source| RegistryError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        let chunks = futures_util::stream::unfold(Some(file), move |state| {
            let path = path.clone();
            async move {
                let mut file = state?;
                let mut buf = vec![0u8; READ_CHUNK];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok(Bytes::from(buf)), Some(file)))
                    }
                    Err(source) => Some((Err(RegistryError::Io { path, source }), None)),
                }
            }
        });
        Ok(BlobStream {
            size: Some(size),
            chunks: Box::pin(chunks),
        })
    }

    async fn put_blob(&self, digest: &Digest, blob: BlobStream) -> Result<u64, RegistryError> {
        let context = format!("writing blob {digest} to {}", self.name);
        self.write_blob(digest, blob.chunks, blob.size, &context)
            .await
    }

    async fn mount_blob(&self, _digest: &Digest, _from_path: &str) -> Result<bool, RegistryError> {
        // A layout holds one repository: there is nothing to mount from.
        Ok(false)
    }

    async fn put_manifest(
        &self,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError> {
        let Some(entry) = self.write_manifest_content(reference, manifest).await? else {
            return Ok(());
        };
        let tag = reference.to_string();
        self.update_index(true, move |list| (set_tag(list, &tag, entry), ()))
            .await
    }

    async fn put_manifest_if(
        &self,
        tag: &str,
        manifest: &RawManifest,
        expected: Option<&Digest>,
    ) -> Result<CasWrite, RegistryError> {
        check_tag(&self.name, tag)?;
        // A valid tag is never a digest, so the content is written under the tag's entry.
        let Some(entry) = self.write_manifest_content(tag, manifest).await? else {
            return Err(RegistryError::InvalidTag {
                repo: self.name.clone(),
                tag: tag.to_string(),
            });
        };
        let tag = tag.to_string();
        let expected = expected.cloned();
        // The check and the write under one lock: no writer can move the tag in between.
        self.update_index(true, move |list| {
            let actual = tag_digest(list, &tag);
            if actual != expected {
                return (false, CasWrite::Conflict { actual });
            }
            (set_tag(list, &tag, entry), CasWrite::Written)
        })
        .await
    }

    async fn delete_tag(&self, tag: &str) -> Result<TagDeletion, RegistryError> {
        check_tag(&self.name, tag)?;
        let tag = tag.to_string();
        self.update_index(false, move |list| {
            let before = list.len();
            list.retain(|e| !entry_has_tag(e, &tag));
            (list.len() != before, ())
        })
        .await?;
        Ok(TagDeletion::Deleted)
    }

    async fn delete_tag_if(
        &self,
        tag: &str,
        expected: &Digest,
    ) -> Result<CasDeletion, RegistryError> {
        check_tag(&self.name, tag)?;
        let tag = tag.to_string();
        let expected = expected.clone();
        // The check and the delete under one lock.
        self.update_index(false, move |list| {
            let actual = tag_digest(list, &tag);
            if actual.as_ref() != Some(&expected) {
                return (false, CasDeletion::Conflict { actual });
            }
            list.retain(|e| !entry_has_tag(e, &tag));
            (true, CasDeletion::Deleted)
        })
        .await
    }

    async fn delete_manifest(&self, digest: &Digest) -> Result<(), RegistryError> {
        let digest = digest.to_string();
        self.update_index(false, move |list| {
            let before = list.len();
            list.retain(|e| e.get("digest").and_then(|d| d.as_str()) != Some(digest.as_str()));
            (list.len() != before, ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MANIFEST_MEDIA_TYPES;

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    fn stream_of(bytes: &[u8], size: Option<u64>) -> BlobStream {
        let chunks: Vec<Result<Bytes, RegistryError>> = bytes
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        BlobStream {
            size,
            chunks: Box::pin(futures_util::stream::iter(chunks)),
        }
    }

    async fn put(repo: &LayoutRepository, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        repo.put_blob(&d, stream_of(bytes, Some(bytes.len() as u64)))
            .await
            .unwrap();
        d
    }

    /// An image manifest over a config and one layer (both written), distinct per `seed`.
    async fn image(repo: &LayoutRepository, seed: &str) -> RawManifest {
        let config = put(repo, format!("{{\"seed\":\"{seed}\"}}").as_bytes()).await;
        let layer = put(repo, format!("layer of {seed}").as_bytes()).await;
        manifest_over(&config, &layer, seed)
    }

    fn manifest_over(config: &Digest, layer: &Digest, seed: &str) -> RawManifest {
        let json = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": 1}],
            "annotations": {"seed": seed},
        });
        let bytes = Bytes::from(serde_json::to_vec(&json).unwrap());
        RawManifest {
            media_type: OCI_MANIFEST.to_string(),
            digest: Digest::sha256_of(&bytes),
            bytes,
        }
    }

    fn index_json(dir: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
    }

    fn stray_files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for d in [dir.to_path_buf(), dir.join("blobs/sha256")] {
            for e in std::fs::read_dir(d).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().to_string();
                if name.contains(".tmp-") {
                    out.push(name);
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn writes_and_reads_back_a_new_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("okd/release");
        let repo = LayoutRepository::new("oci:okd/release", dir.clone());
        assert!(repo.list_tags().await.unwrap().is_empty());

        let m = image(&repo, "one").await;
        // The layout exists now, with no tag.
        assert_eq!(
            std::fs::read_to_string(dir.join("oci-layout")).unwrap(),
            OCI_LAYOUT
        );
        assert_eq!(index_json(&dir)["manifests"], serde_json::json!([]));
        assert!(repo.list_tags().await.unwrap().is_empty());

        // By digest: the blob only.
        repo.put_manifest(m.digest.as_str(), &m).await.unwrap();
        assert!(repo.has_manifest(&m.digest).await.unwrap());
        assert!(repo.list_tags().await.unwrap().is_empty());
        assert_eq!(
            repo.get_manifest(m.digest.as_str()).await.unwrap(),
            Some(m.clone())
        );
        // By tag: an index.json entry.
        repo.put_manifest("v1", &m).await.unwrap();
        assert_eq!(repo.list_tags().await.unwrap(), ["v1"]);
        assert_eq!(
            repo.resolve_tag("v1").await.unwrap(),
            Some(m.digest.clone())
        );
        assert_eq!(repo.get_manifest("v1").await.unwrap(), Some(m.clone()));
        assert_eq!(repo.get_manifest("v2").await.unwrap(), None);
        let entry = &index_json(&dir)["manifests"][0];
        assert_eq!(entry["mediaType"], OCI_MANIFEST);
        assert_eq!(entry["digest"], m.digest.to_string());
        assert_eq!(entry["size"], m.bytes.len());
        assert_eq!(entry["annotations"][REF_NAME_ANNOTATION], "v1");
        // Writing it again changes nothing.
        let before = std::fs::read(dir.join("index.json")).unwrap();
        repo.put_manifest("v1", &m).await.unwrap();
        assert_eq!(std::fs::read(dir.join("index.json")).unwrap(), before);

        // Blobs stream back in chunks, with their size.
        let big: Vec<u8> = (0..(READ_CHUNK * 2 + 100))
            .map(|i| (i % 251) as u8)
            .collect();
        let d = put(&repo, &big).await;
        let blob = repo.open_blob(&d).await.unwrap();
        assert_eq!(blob.size, Some(big.len() as u64));
        let mut chunks = blob.chunks;
        let mut got = Vec::new();
        let mut n = 0;
        while let Some(c) = chunks.next().await {
            got.extend_from_slice(&c.unwrap());
            n += 1;
        }
        assert_eq!(got, big);
        assert_eq!(n, 3);
        // A blob already there is skipped.
        let again = repo
            .put_blob(&d, stream_of(&big, Some(big.len() as u64)))
            .await
            .unwrap();
        assert_eq!(again, 0);
        assert!(stray_files(&dir).is_empty(), "{:?}", stray_files(&dir));
        // Layouts cannot mount.
        assert!(!repo.mount_blob(&d, "okd/other").await.unwrap());
    }

    #[tokio::test]
    async fn a_lying_source_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        let repo = LayoutRepository::new("oci:r", dir.clone());
        let honest = b"honest content of some length".to_vec();
        let d = Digest::sha256_of(&honest);
        let n = honest.len() as u64;
        let mut wrong = honest.clone();
        wrong[0] ^= 1;
        for (bytes, size) in [
            (wrong.clone(), Some(n)),
            (wrong, None),
            (honest[..5].to_vec(), Some(n)),
            ([honest.clone(), b"x".to_vec()].concat(), Some(n)),
            ([honest.clone(), b"x".to_vec()].concat(), None),
        ] {
            let e = repo
                .put_blob(&d, stream_of(&bytes, size))
                .await
                .unwrap_err();
            assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
            assert!(e.to_string().contains(d.as_str()), "{e}");
            assert!(!repo.has_blob(&d).await.unwrap());
            assert!(stray_files(&dir).is_empty(), "{:?}", stray_files(&dir));
        }
        assert_eq!(
            repo.put_blob(&d, stream_of(&honest, None)).await.unwrap(),
            n
        );
        assert_eq!(std::fs::read(repo.blob_path(&d)).unwrap(), honest);
    }

    #[tokio::test]
    async fn refuses_manifests_over_missing_content_and_false_digests() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        let repo = LayoutRepository::new("oci:r", dir.clone());
        let config = put(&repo, b"{}").await;
        let missing = Digest::sha256_of(b"never written");
        let m = manifest_over(&config, &missing, "x");
        let e = repo.put_manifest("v1", &m).await.unwrap_err();
        assert!(e.to_string().contains(missing.as_str()), "{e}");
        assert!(repo.list_tags().await.unwrap().is_empty());
        assert!(
            !repo.has_manifest(&m.digest).await.unwrap(),
            "not even the blob"
        );
        // An index naming a child manifest that is absent.
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPES[0],
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": m.digest.to_string(), "size": m.bytes.len()}],
        }))
        .unwrap();
        let index = RawManifest {
            media_type: MANIFEST_MEDIA_TYPES[0].to_string(),
            digest: Digest::sha256_of(&index),
            bytes: Bytes::from(index),
        };
        assert!(repo.put_manifest("multi", &index).await.is_err());
        // Bytes that are not the digest.
        let good = image(&repo, "good").await;
        let mut lie = good.clone();
        lie.digest = m.digest.clone();
        let e = repo.put_manifest("v1", &lie).await.unwrap_err();
        assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
        // A digest reference other than the manifest's own.
        let e = repo
            .put_manifest(m.digest.as_str(), &good)
            .await
            .unwrap_err();
        assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
        let e = repo.put_manifest("../v1", &good).await.unwrap_err();
        assert!(matches!(e, RegistryError::InvalidTag { .. }), "{e}");
        assert!(repo.list_tags().await.unwrap().is_empty());
        // With its child in place, an index goes in.
        repo.put_manifest(good.digest.as_str(), &good)
            .await
            .unwrap();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPES[0],
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": good.digest.to_string(), "size": good.bytes.len()}],
        }))
        .unwrap();
        let index = RawManifest {
            media_type: MANIFEST_MEDIA_TYPES[0].to_string(),
            digest: Digest::sha256_of(&index),
            bytes: Bytes::from(index),
        };
        repo.put_manifest("multi", &index).await.unwrap();
        assert_eq!(repo.get_manifest("multi").await.unwrap(), Some(index));
    }

    #[tokio::test]
    async fn index_updates_keep_everything_else() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        let repo = LayoutRepository::new("oci:r", dir.clone());
        let a = image(&repo, "a").await;
        let b = image(&repo, "b").await;
        for m in [&a, &b] {
            repo.put_manifest(m.digest.as_str(), m).await.unwrap();
        }
        // A layout written by another tool: extra fields, an untagged entry, two tags.
        let foreign = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPES[0],
            "annotations": {"made.by": "another tool"},
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": a.digest.to_string(), "size": a.bytes.len(),
                 "annotations": {REF_NAME_ANNOTATION: "keep", "x": "y"}, "platform": {"os": "linux"}},
                {"mediaType": OCI_MANIFEST, "digest": b.digest.to_string(), "size": b.bytes.len()},
                {"mediaType": OCI_MANIFEST, "digest": a.digest.to_string(), "size": a.bytes.len(),
                 "annotations": {REF_NAME_ANNOTATION: "move-me"}},
            ],
        });
        std::fs::write(
            dir.join("index.json"),
            serde_json::to_vec(&foreign).unwrap(),
        )
        .unwrap();
        assert_eq!(repo.list_tags().await.unwrap(), ["keep", "move-me"]);

        repo.put_manifest("move-me", &b).await.unwrap();
        repo.put_manifest("new", &b).await.unwrap();
        let idx = index_json(&dir);
        assert_eq!(idx["annotations"]["made.by"], "another tool");
        let entries = idx["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(
            entries[0], foreign["manifests"][0],
            "untouched entry kept as is"
        );
        assert_eq!(entries[1], foreign["manifests"][1], "untagged entry kept");
        assert_eq!(entries[2]["digest"], b.digest.to_string(), "moved in place");
        assert_eq!(entries[3]["annotations"][REF_NAME_ANNOTATION], "new");
        assert_eq!(
            repo.resolve_tag("move-me").await.unwrap(),
            Some(b.digest.clone())
        );

        assert_eq!(repo.delete_tag("keep").await.unwrap(), TagDeletion::Deleted);
        assert_eq!(repo.delete_tag("keep").await.unwrap(), TagDeletion::Deleted);
        assert_eq!(repo.list_tags().await.unwrap(), ["move-me", "new"]);
        // By digest: every entry with it goes (the untagged one too); blobs stay.
        repo.delete_manifest(&b.digest).await.unwrap();
        assert!(repo.list_tags().await.unwrap().is_empty());
        assert_eq!(index_json(&dir)["manifests"], serde_json::json!([]));
        assert!(repo.has_manifest(&b.digest).await.unwrap());
        assert!(stray_files(&dir).is_empty());
    }

    #[tokio::test]
    async fn reads_see_changes_made_behind_their_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        let repo = LayoutRepository::new("oci:r", dir.clone());
        let other = LayoutRepository::new("oci:r", dir.clone());
        let a = image(&repo, "a").await;
        repo.put_manifest("v1", &a).await.unwrap();
        assert_eq!(other.list_tags().await.unwrap(), ["v1"]);
        repo.put_manifest("v2", &a).await.unwrap();
        assert_eq!(other.list_tags().await.unwrap(), ["v1", "v2"]);
        other.delete_tag("v1").await.unwrap();
        assert_eq!(repo.list_tags().await.unwrap(), ["v2"]);
    }

    #[tokio::test]
    async fn deleting_from_a_missing_layout_creates_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nothing");
        let repo = LayoutRepository::new("oci:nothing", dir.clone());
        assert_eq!(repo.delete_tag("v1").await.unwrap(), TagDeletion::Deleted);
        repo.delete_manifest(&Digest::sha256_of(b"x"))
            .await
            .unwrap();
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn index_entries_cannot_point_outside_the_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("oci-layout"), OCI_LAYOUT).unwrap();
        std::fs::write(
            dir.join("index.json"),
            format!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:../../../etc/passwd","size":1,"annotations":{{"{REF_NAME_ANNOTATION}":"v1"}}}}]}}"#
            ),
        )
        .unwrap();
        let repo = LayoutRepository::new("oci:r", dir.clone());
        assert!(matches!(
            repo.get_manifest("v1").await,
            Err(RegistryError::BadDigest { .. })
        ));
        assert!(matches!(
            repo.delete_tag("v1").await,
            Err(RegistryError::BadDigest { .. })
        ));
    }

    /// Writers in separate threads (each with its own runtime and repository value, as
    /// separate processes would be) never lose each other's tags.
    #[test]
    fn concurrent_writers_lose_no_tag() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let seed = LayoutRepository::new("oci:r", dir.clone());
        let m = rt.block_on(image(&seed, "shared"));
        rt.block_on(seed.put_manifest(m.digest.as_str(), &m))
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let dir = dir.clone();
                let m = m.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let repo = LayoutRepository::new("oci:r", dir);
                    rt.block_on(async {
                        for i in 0..15 {
                            repo.put_manifest(&format!("t{t}-{i}"), &m).await.unwrap();
                        }
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let tags = rt.block_on(seed.list_tags()).unwrap();
        assert_eq!(tags.len(), 60, "{tags:?}");
        assert!(stray_files(&dir).is_empty());
        let mut top: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        top.sort();
        assert_eq!(top, ["blobs", "index.json", "oci-layout"], "nothing else");
    }

    /// Another writer moves the tag between a check and the conditional write: the write
    /// is a conflict, writes nothing, and the other writer's tag survives; the same for a
    /// conditional delete.
    #[tokio::test]
    async fn a_tag_moved_after_the_check_is_a_conflict_not_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        let ours = LayoutRepository::new("oci:r", dir.clone());
        let theirs = LayoutRepository::new("oci:r", dir.clone());
        let (m1, m2, m3) = (
            image(&ours, "one").await,
            image(&ours, "two").await,
            image(&ours, "three").await,
        );
        ours.put_manifest("stable", &m1).await.unwrap();
        // Our check: `stable` holds m1.
        let seen = ours.resolve_tag("stable").await.unwrap();
        assert_eq!(seen, Some(m1.digest.clone()));
        // Someone else moves it to m2 meanwhile.
        theirs.put_manifest("stable", &m2).await.unwrap();
        let before = std::fs::read(dir.join("index.json")).unwrap();
        let written = ours
            .put_manifest_if("stable", &m3, seen.as_ref())
            .await
            .unwrap();
        assert_eq!(
            written,
            CasWrite::Conflict {
                actual: Some(m2.digest.clone())
            }
        );
        let deleted = ours.delete_tag_if("stable", &m1.digest).await.unwrap();
        assert_eq!(
            deleted,
            CasDeletion::Conflict {
                actual: Some(m2.digest.clone())
            }
        );
        assert_eq!(
            std::fs::read(dir.join("index.json")).unwrap(),
            before,
            "nothing written"
        );
        assert_eq!(
            ours.resolve_tag("stable").await.unwrap(),
            Some(m2.digest.clone()),
            "their tag survives"
        );
        // A create expects the tag absent.
        assert_eq!(
            ours.put_manifest_if("stable", &m3, None).await.unwrap(),
            CasWrite::Conflict {
                actual: Some(m2.digest.clone())
            }
        );
        assert_eq!(
            ours.put_manifest_if("new", &m3, None).await.unwrap(),
            CasWrite::Written
        );
        assert_eq!(
            ours.resolve_tag("new").await.unwrap(),
            Some(m3.digest.clone())
        );
        // With what is really there, the write and the delete are made.
        assert_eq!(
            ours.put_manifest_if("stable", &m3, Some(&m2.digest))
                .await
                .unwrap(),
            CasWrite::Written
        );
        assert_eq!(
            ours.resolve_tag("stable").await.unwrap(),
            Some(m3.digest.clone())
        );
        assert_eq!(
            ours.delete_tag_if("stable", &m3.digest).await.unwrap(),
            CasDeletion::Deleted
        );
        assert_eq!(ours.resolve_tag("stable").await.unwrap(), None);
        assert_eq!(
            ours.delete_tag_if("stable", &m3.digest).await.unwrap(),
            CasDeletion::Conflict { actual: None }
        );
        assert_eq!(ours.list_tags().await.unwrap(), ["new"]);
        // A conditional delete in a missing layout creates nothing.
        let missing = LayoutRepository::new("oci:none", tmp.path().join("none"));
        assert_eq!(
            missing.delete_tag_if("x", &m1.digest).await.unwrap(),
            CasDeletion::Conflict { actual: None }
        );
        assert!(!tmp.path().join("none").exists());
    }

    /// Writers in separate threads (each with its own runtime and repository value, as
    /// separate processes would be) advance one tag along a chain of manifests, each step
    /// a compare-and-swap from what it read: every step that reports `Written` really
    /// advanced the tag (none is lost to a concurrent writer), so the tag ends exactly as
    /// many steps along as there were successful writes.
    #[test]
    fn concurrent_compare_and_swap_loses_no_step() {
        const THREADS: usize = 4;
        const TRIES: usize = 12;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let seed = LayoutRepository::new("oci:r", dir.clone());
        let chain: Vec<RawManifest> = rt.block_on(async {
            let mut chain = Vec::new();
            for i in 0..=THREADS * TRIES {
                chain.push(image(&seed, &format!("step {i}")).await);
            }
            chain
        });
        rt.block_on(seed.put_manifest("counter", &chain[0]))
            .unwrap();
        let chain = Arc::new(chain);
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (dir, chain) = (dir.clone(), chain.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let repo = LayoutRepository::new("oci:r", dir);
                    rt.block_on(async {
                        let mut written = 0;
                        for _ in 0..TRIES {
                            let seen = repo.resolve_tag("counter").await.unwrap().unwrap();
                            let step = chain.iter().position(|m| m.digest == seen).unwrap();
                            // Widen the window between the check and the write.
                            tokio::task::yield_now().await;
                            let outcome = repo
                                .put_manifest_if("counter", &chain[step + 1], Some(&seen))
                                .await
                                .unwrap();
                            if outcome == CasWrite::Written {
                                written += 1;
                            }
                        }
                        written
                    })
                })
            })
            .collect();
        let written: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let last = rt.block_on(seed.resolve_tag("counter")).unwrap().unwrap();
        let step = chain.iter().position(|m| m.digest == last).unwrap();
        assert!(written >= 1);
        assert_eq!(
            step, written,
            "every successful compare-and-swap is one step"
        );
        assert_eq!(rt.block_on(seed.list_tags()).unwrap(), ["counter"]);
        assert!(stray_files(&dir).is_empty());
    }

    /// Regression: a writer killed mid-blob left its `.tmp-*` file in the layout forever
    /// (up to a whole layer of wasted space per crash). The next process that writes sweeps
    /// the files no live writer holds, and leaves a live writer's alone.
    #[tokio::test]
    async fn a_dead_writers_temporary_files_are_swept_and_a_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("okd/release");
        let first = LayoutRepository::new("oci:okd/release", dir.clone());
        put(&first, b"first").await;
        let blobs = dir.join("blobs/sha256");
        // A dead writer's half blob and half index.json, and a live writer's blob file.
        std::fs::write(blobs.join(".tmp-00000000000000aa"), b"half a la").unwrap();
        std::fs::write(dir.join("index.json.tmp-00000000000000bb"), b"{\"ma").unwrap();
        let (live, live_file) = locked_temp_file(&blobs).unwrap();

        // This process swept already when it started writing; another one sweeps.
        put(&first, b"second").await;
        assert_eq!(stray_files(&dir).len(), 3);
        let next = LayoutRepository::new("oci:okd/release", dir.clone());
        put(&next, b"third").await;
        let live_name = live.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(stray_files(&dir), [live_name]);
        assert!(
            same_file(&live, &live_file),
            "the live writer's file is its own"
        );
        drop(live_file);
        assert_eq!(next.list_tags().await.unwrap(), Vec::<String>::new());
    }
}
