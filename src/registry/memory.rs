//! An in-memory registry for the mirror engine's and apply's unit tests: repositories with
//! blobs, manifests and tags, a log of writes, and injectable faults (failing and lying
//! blob sources, no tag DELETE, a concurrent writer moving a tag).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;

use super::format::parse_manifest;
use super::mirror::MirrorEndpoint;
use crate::digest::Digest;
use crate::registry::{
    BlobStream, ContentStore, RawManifest, RegistryError, TagDeletion, TargetReader,
};

#[derive(Debug, Default)]
pub struct Repo {
    pub blobs: HashMap<Digest, Bytes>,
    pub manifests: HashMap<Digest, RawManifest>,
    pub tags: BTreeMap<String, Digest>,
}

/// Faults and behaviour of the whole in-memory registry.
#[derive(Debug, Default)]
pub struct State {
    pub repos: HashMap<String, Repo>,
    /// Every write, in order: `blob REPO DIGEST`, `mount REPO DIGEST`, `manifest REPO REF`,
    /// `delete-tag REPO TAG`, `delete-manifest REPO DIGEST`.
    pub writes: Vec<String>,
    /// Blob → how many more `open_blob` calls fail with 503.
    pub failing_opens: HashMap<Digest, u32>,
    /// Blobs whose source serves other bytes than they should.
    pub lying: Vec<Digest>,
    /// `open_blob` calls per blob.
    pub opens: HashMap<Digest, u32>,
    /// Whether tags can be deleted by name (distribution 2.8: no).
    pub no_tag_delete: bool,
    /// `deleteByDigest: true`: a tag that cannot be deleted by name may go with its
    /// manifest.
    pub delete_by_digest: bool,
    /// Whether a cross-repository mount is answered 201.
    pub mounts: bool,
    /// Tag moved to this digest right before the next tag write (a concurrent writer).
    pub sneak: Option<(String, String, Digest)>,
}

/// A repository of the in-memory registry.
#[derive(Debug, Clone)]
pub struct Mem {
    pub host: Option<String>,
    pub path: String,
    pub state: Arc<Mutex<State>>,
}

impl Mem {
    pub fn registry() -> Arc<Mutex<State>> {
        Arc::new(Mutex::new(State::default()))
    }

    pub fn new(state: &Arc<Mutex<State>>, host: Option<&str>, path: &str) -> Mem {
        Mem {
            host: host.map(str::to_string),
            path: path.to_string(),
            state: state.clone(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Repo, &mut State) -> R) -> R {
        let mut st = self.state.lock().unwrap();
        let mut repo = st.repos.remove(&self.path).unwrap_or_default();
        let r = f(&mut repo, &mut st);
        st.repos.insert(self.path.clone(), repo);
        r
    }

    /// Puts content straight into the repository (test setup, not logged).
    pub fn seed_blob(&self, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        self.with(|r, _| r.blobs.insert(d.clone(), Bytes::copy_from_slice(bytes)));
        d
    }

    pub fn seed_manifest(&self, media_type: &str, bytes: &[u8], tag: Option<&str>) -> Digest {
        let d = Digest::sha256_of(bytes);
        let raw = RawManifest {
            media_type: media_type.to_string(),
            bytes: Bytes::copy_from_slice(bytes),
            digest: d.clone(),
        };
        self.with(|r, _| {
            r.manifests.insert(d.clone(), raw);
            if let Some(t) = tag {
                r.tags.insert(t.to_string(), d.clone());
            }
        });
        d
    }

    pub fn tag(&self, tag: &str) -> Option<Digest> {
        self.with(|r, _| r.tags.get(tag).cloned())
    }

    pub fn manifest_bytes(&self, d: &Digest) -> Option<Bytes> {
        self.with(|r, _| r.manifests.get(d).map(|m| m.bytes.clone()))
    }

    pub fn has(&self, d: &Digest) -> bool {
        self.with(|r, _| r.blobs.contains_key(d) || r.manifests.contains_key(d))
    }
}

fn status(status: u16, what: &str) -> RegistryError {
    RegistryError::Status {
        context: what.to_string(),
        status,
        code: None,
        message: None,
    }
}

impl TargetReader for Mem {
    fn name(&self) -> &str {
        &self.path
    }
    async fn list_tags(&self) -> Result<Vec<String>, RegistryError> {
        Ok(self.with(|r, _| r.tags.keys().cloned().collect()))
    }
    async fn resolve_tag(&self, tag: &str) -> Result<Option<Digest>, RegistryError> {
        Ok(self.tag(tag))
    }
    async fn has_manifest(&self, digest: &Digest) -> Result<bool, RegistryError> {
        Ok(self.with(|r, _| r.manifests.contains_key(digest)))
    }
}

impl ContentStore for Mem {
    async fn get_manifest(&self, reference: &str) -> Result<Option<RawManifest>, RegistryError> {
        Ok(self.with(|r, _| {
            let d = match Digest::parse(reference) {
                Ok(d) => Some(d),
                Err(_) => r.tags.get(reference).cloned(),
            };
            d.and_then(|d| r.manifests.get(&d).cloned())
        }))
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool, RegistryError> {
        Ok(self.with(|r, _| r.blobs.contains_key(digest)))
    }

    async fn open_blob(&self, digest: &Digest) -> Result<BlobStream, RegistryError> {
        let (bytes, fail, lie) = self.with(|r, st| {
            *st.opens.entry(digest.clone()).or_default() += 1;
            let fail = match st.failing_opens.get_mut(digest) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            };
            (
                r.blobs.get(digest).cloned(),
                fail,
                st.lying.contains(digest),
            )
        });
        if fail {
            return Err(status(503, &format!("opening {digest}")));
        }
        let Some(mut bytes) = bytes else {
            return Err(status(404, &format!("opening {digest}")));
        };
        if lie {
            let mut v = bytes.to_vec();
            v[0] ^= 0xff;
            bytes = Bytes::from(v);
        }
        // Two chunks, to stream for real.
        let half = bytes.len() / 2;
        let chunks = vec![Ok(bytes.slice(..half)), Ok(bytes.slice(half..))];
        Ok(BlobStream {
            size: Some(bytes.len() as u64),
            chunks: Box::pin(futures_util::stream::iter(chunks)),
        })
    }

    async fn put_blob(&self, digest: &Digest, mut blob: BlobStream) -> Result<u64, RegistryError> {
        let mut all = Vec::new();
        while let Some(c) = blob.chunks.next().await {
            all.extend_from_slice(&c?);
        }
        let actual = Digest::sha256_of(&all);
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                context: format!("copying blob {digest} to {}", self.path),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        let n = all.len() as u64;
        self.with(|r, st| {
            r.blobs.insert(digest.clone(), Bytes::from(all));
            st.writes.push(format!("blob {} {digest}", self.path));
        });
        Ok(n)
    }

    async fn mount_blob(&self, digest: &Digest, from_path: &str) -> Result<bool, RegistryError> {
        let mut st = self.state.lock().unwrap();
        if !st.mounts {
            return Ok(false);
        }
        let Some(b) = st
            .repos
            .get(from_path)
            .and_then(|r| r.blobs.get(digest))
            .cloned()
        else {
            return Ok(false);
        };
        st.repos
            .entry(self.path.clone())
            .or_default()
            .blobs
            .insert(digest.clone(), b);
        st.writes.push(format!("mount {} {digest}", self.path));
        Ok(true)
    }

    async fn put_manifest(&self, reference: &str, m: &RawManifest) -> Result<(), RegistryError> {
        let parsed = parse_manifest(&m.media_type, &m.bytes)
            .map_err(|e| status(400, &format!("MANIFEST_INVALID: {e}")))?;
        self.with(|r, st| {
            if let Some((path, tag, d)) = st.sneak.take() {
                if path == self.path {
                    r.tags.insert(tag, d);
                } else {
                    st.sneak = Some((path, tag, d));
                }
            }
            // Like distribution: everything named must be present.
            for b in &parsed.blobs {
                if !r.blobs.contains_key(&b.digest) {
                    return Err(status(400, "MANIFEST_BLOB_UNKNOWN"));
                }
            }
            for c in &parsed.children {
                if !r.manifests.contains_key(&c.digest) {
                    return Err(status(400, "MANIFEST_UNKNOWN"));
                }
            }
            r.manifests.insert(m.digest.clone(), m.clone());
            if Digest::parse(reference).is_err() {
                r.tags.insert(reference.to_string(), m.digest.clone());
            }
            st.writes
                .push(format!("manifest {} {reference}", self.path));
            Ok(())
        })
    }

    async fn delete_tag(&self, tag: &str) -> Result<TagDeletion, RegistryError> {
        self.with(|r, st| {
            if st.no_tag_delete {
                return Ok(TagDeletion::Unsupported);
            }
            r.tags.remove(tag);
            st.writes.push(format!("delete-tag {} {tag}", self.path));
            Ok(TagDeletion::Deleted)
        })
    }

    async fn delete_manifest(&self, digest: &Digest) -> Result<(), RegistryError> {
        self.with(|r, st| {
            r.manifests.remove(digest);
            r.tags.retain(|_, d| d != digest);
            st.writes
                .push(format!("delete-manifest {} {digest}", self.path));
            Ok(())
        })
    }
}

impl MirrorEndpoint for Mem {
    fn registry_host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    fn repository_path(&self) -> &str {
        &self.path
    }
    fn fresh(&self) -> Self {
        self.clone()
    }
    fn deletes_by_digest(&self) -> bool {
        self.state.lock().unwrap().delete_by_digest
    }
}

/// Runs a future to completion on a fresh multi-threaded runtime.
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A blob or manifest: media type and bytes.
pub struct Content {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Content {
    pub fn digest(&self) -> Digest {
        Digest::sha256_of(&self.bytes)
    }
    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest().to_string(),
            "size": self.bytes.len(),
        })
    }
}

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn blob(bytes: &[u8]) -> Content {
    Content {
        media_type: "application/vnd.oci.image.layer.v1.tar".to_string(),
        bytes: bytes.to_vec(),
    }
}

/// Seeds a two-platform OCI index in `repo`: per platform a config and the layers
/// `shared` (same bytes in both platforms) and one of its own. Returns the index digest
/// and the digests of every blob.
pub fn seed_index(
    repo: &Mem,
    seed: &str,
    shared: &[u8],
    tag: Option<&str>,
) -> (Digest, Vec<Digest>) {
    let mut children = Vec::new();
    let mut blobs = Vec::new();
    for arch in ["amd64", "arm64"] {
        let config = Content {
            media_type: "application/vnd.oci.image.config.v1+json".to_string(),
            bytes: format!(r#"{{"architecture":"{arch}","os":"linux","seed":"{seed}"}}"#)
                .into_bytes(),
        };
        let own = blob(format!("{seed} {arch} layer").as_bytes());
        let common = blob(shared);
        for c in [&config, &own, &common] {
            blobs.push(repo.seed_blob(&c.bytes));
        }
        // Not canonical JSON on purpose: copies must keep these bytes.
        let m = format!(
            "{{ \"schemaVersion\": 2,\n  \"mediaType\": \"{OCI_MANIFEST}\",\n  \"config\": {},\n  \"layers\": [{}, {}] }}",
            config.descriptor(),
            common.descriptor(),
            own.descriptor()
        );
        let d = repo.seed_manifest(OCI_MANIFEST, m.as_bytes(), None);
        children.push(serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": m.len(),
            "platform": {"architecture": arch, "os": "linux"}
        }));
    }
    let index = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children,
    }))
    .unwrap();
    blobs.sort();
    blobs.dedup();
    (repo.seed_manifest(OCI_INDEX, &index, tag), blobs)
}
