//! The mirror engine: copies an image from a source repository to a target repository by
//! digest, byte-exact, so that the target digest equals the source digest.
//!
//! An image is its manifest (an OCI image index or Docker manifest list, or an OCI image
//! manifest or Docker v2 schema 2 manifest) and everything it names. The engine copies in
//! the order DESIGN.md requires: every blob (config and layers), then the child manifests,
//! then the index, each manifest written by digest only. Tags are written later, by
//! [`crate::apply`], once the whole image is in the target.
//!
//! Manifests are copied as the source sent them: their bytes are never re-serialized, only
//! parsed (just enough to find what they name). [`Mirror::copy_image_content`] leaves the
//! top manifest to the caller, who writes it under its tag: one `PUT` by tag stores the
//! manifest and the tag at once, after everything it names, and saves the `PUT` by digest
//! that would precede it. Blobs stream from source to target with
//! their sha256 checked on the way ([`super::ContentStore::put_blob`]); a blob the target
//! already has is skipped, one on the same registry host is mounted when the registry
//! agrees. A blob (or manifest) needed by several images in one run is transferred once:
//! concurrent copies wait for the same transfer.
//!
//! Transfers run in parallel, at most `sync.concurrency` per registry host (the `oci:`
//! layouts count as one host). A transfer that fails with a retryable error (connection,
//! 408, 429, 5xx) is retried whole, with exponential backoff and jitter; a digest mismatch
//! is never retried.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;

use super::retry::redo;
use super::{
    ContentStore, MANIFEST_MEDIA_TYPES, RawManifest, RegistryError, Repository, RetryPolicy,
    TargetReader,
};
use crate::digest::Digest;

/// How deep image indexes may nest (an index of indexes of manifests is depth 2).
pub const MAX_NESTING: usize = 4;

/// The semaphore key of repositories that have no registry host (`oci:` layouts).
const LOCAL_HOST: &str = "(local layouts)";

/// A repository the engine can copy from or to: [`ContentStore`] plus what transfers need
/// to know about where it lives.
pub trait MirrorEndpoint: ContentStore + Clone + Send + Sync + 'static {
    /// The registry host this repository is reached through (`None` for an `oci:` layout).
    /// Transfers are bounded per host, and a blob is mounted rather than copied between two
    /// repositories of one host.
    fn registry_host(&self) -> Option<&str>;

    /// The repository path on its host (what a cross-repository mount names as `from`).
    fn repository_path(&self) -> &str;

    /// A handle that reads the live state anew (a layout re-reads `index.json`), for the
    /// compare-and-swap check just before a tag is written.
    fn fresh(&self) -> Self;
}

impl MirrorEndpoint for Repository {
    fn registry_host(&self) -> Option<&str> {
        self.host()
    }

    fn repository_path(&self) -> &str {
        match self {
            Repository::Registry(r) => r.path(),
            Repository::Layout(l) => l.name(),
        }
    }

    fn fresh(&self) -> Self {
        match self {
            Repository::Registry(r) => Repository::Registry(r.clone()),
            Repository::Layout(l) => Repository::Layout(super::LayoutRepository::new(
                l.name(),
                l.dir().to_path_buf(),
            )),
        }
    }
}

/// The four manifest formats relsync copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// `application/vnd.oci.image.index.v1+json`.
    OciIndex,
    /// `application/vnd.oci.image.manifest.v1+json`.
    OciManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`.
    DockerList,
    /// `application/vnd.docker.distribution.manifest.v2+json`.
    DockerManifest,
}

impl ManifestKind {
    /// The kind a media type names, if it is one of the four.
    pub fn from_media_type(media_type: &str) -> Option<ManifestKind> {
        // Parameters (`; charset=utf-8`) are not part of the type.
        let base = media_type.split(';').next().unwrap_or("").trim();
        match base {
            t if t == MANIFEST_MEDIA_TYPES[0] => Some(ManifestKind::OciIndex),
            t if t == MANIFEST_MEDIA_TYPES[1] => Some(ManifestKind::OciManifest),
            t if t == MANIFEST_MEDIA_TYPES[2] => Some(ManifestKind::DockerList),
            t if t == MANIFEST_MEDIA_TYPES[3] => Some(ManifestKind::DockerManifest),
            _ => None,
        }
    }

    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::OciIndex => MANIFEST_MEDIA_TYPES[0],
            ManifestKind::OciManifest => MANIFEST_MEDIA_TYPES[1],
            ManifestKind::DockerList => MANIFEST_MEDIA_TYPES[2],
            ManifestKind::DockerManifest => MANIFEST_MEDIA_TYPES[3],
        }
    }

    /// Whether this is an index (a list of child manifests).
    pub fn is_index(self) -> bool {
        matches!(self, ManifestKind::OciIndex | ManifestKind::DockerList)
    }
}

/// A content descriptor named by a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Its media type, when given.
    pub media_type: Option<String>,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes, when given.
    pub size: Option<u64>,
}

/// What a manifest names: for an index its child manifests, for an image manifest its
/// config and layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The format.
    pub kind: ManifestKind,
    /// Child manifests (an index), in order.
    pub children: Vec<Descriptor>,
    /// Blobs (an image manifest): the config first, then the layers, in order, without
    /// duplicates. Non-distributable layers fetched from `urls` are left out.
    pub blobs: Vec<Descriptor>,
}

/// Why a manifest cannot be copied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestFormatError {
    /// A format other than the four relsync copies.
    #[error(
        "media type `{0}` is not copied (relsync copies OCI image indexes and manifests, Docker manifest lists and Docker v2 schema 2 manifests)"
    )]
    Unsupported(String),
    /// Not the JSON its format requires.
    #[error("malformed manifest: {0}")]
    Malformed(String),
}

/// Parses a manifest just enough to find what it names. The format is the manifest's own
/// `mediaType` field when present (it must be one of the four), else `media_type` (the
/// `Content-Type` it was served with), else inferred from a `schemaVersion: 2` body
/// (`manifests` → OCI index, `config` → OCI manifest).
pub fn parse_manifest(
    media_type: &str,
    bytes: &[u8],
) -> Result<ParsedManifest, ManifestFormatError> {
    let malformed = |m: String| ManifestFormatError::Malformed(m);
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON ({e})")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| malformed("not a JSON object".to_string()))?;
    let schema = obj.get("schemaVersion").and_then(serde_json::Value::as_u64);
    let kind = match obj.get("mediaType") {
        Some(serde_json::Value::String(t)) => ManifestKind::from_media_type(t)
            .ok_or_else(|| ManifestFormatError::Unsupported(t.clone()))?,
        Some(_) => return Err(malformed("`mediaType` is not a string".to_string())),
        None => match ManifestKind::from_media_type(media_type) {
            Some(k) => k,
            None if schema == Some(2) && obj.contains_key("manifests") => ManifestKind::OciIndex,
            None if schema == Some(2) && obj.contains_key("config") => ManifestKind::OciManifest,
            None if schema == Some(1) => {
                return Err(ManifestFormatError::Unsupported(format!(
                    "{media_type} (Docker schema 1)"
                )));
            }
            None => {
                return Err(ManifestFormatError::Unsupported(if media_type.is_empty() {
                    "(none)".to_string()
                } else {
                    media_type.to_string()
                }));
            }
        },
    };
    if schema != Some(2) {
        return Err(malformed("`schemaVersion` is not 2".to_string()));
    }
    let descriptor = |v: &serde_json::Value, at: &str| -> Result<Descriptor, ManifestFormatError> {
        let o = v
            .as_object()
            .ok_or_else(|| malformed(format!("{at} is not an object")))?;
        let digest = o
            .get("digest")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| malformed(format!("{at} has no digest")))?;
        let digest = Digest::parse(digest).map_err(|e| malformed(format!("{at}: {e}")))?;
        let size = match o.get("size") {
            None => None,
            Some(s) => Some(
                s.as_u64()
                    .ok_or_else(|| malformed(format!("{at}: size is not a whole number")))?,
            ),
        };
        let media_type = o
            .get("mediaType")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        Ok(Descriptor {
            media_type,
            digest,
            size,
        })
    };
    let mut parsed = ParsedManifest {
        kind,
        children: Vec::new(),
        blobs: Vec::new(),
    };
    if kind.is_index() {
        let list = obj
            .get("manifests")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| malformed("an index without a `manifests` list".to_string()))?;
        for (i, m) in list.iter().enumerate() {
            parsed
                .children
                .push(descriptor(m, &format!("manifests[{i}]"))?);
        }
    } else {
        let config = obj
            .get("config")
            .ok_or_else(|| malformed("an image manifest without `config`".to_string()))?;
        parsed.blobs.push(descriptor(config, "config")?);
        let layers = match obj.get("layers") {
            Some(serde_json::Value::Array(l)) => l.as_slice(),
            None => &[],
            Some(_) => return Err(malformed("`layers` is not a list".to_string())),
        };
        for (i, l) in layers.iter().enumerate() {
            let d = descriptor(l, &format!("layers[{i}]"))?;
            let foreign = d
                .media_type
                .as_deref()
                .is_some_and(|t| t.contains("foreign") || t.contains("nondistributable"))
                && l.get("urls").is_some();
            if foreign || parsed.blobs.iter().any(|b| b.digest == d.digest) {
                continue;
            }
            parsed.blobs.push(d);
        }
    }
    Ok(parsed)
}

/// "failed" or "failed after N tries".
fn failed(attempts: &u32) -> String {
    if *attempts > 1 {
        format!("failed after {attempts} tries")
    } else {
        "failed".to_string()
    }
}

/// Why an image could not be copied. Messages name the image (the label the caller gave,
/// e.g. `quay.io/okd/scos-release:4.16.0-…`), the manifest or blob, and the cause.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// A blob could not be copied (after retries when the cause was retryable).
    #[error("{image}: blob {digest}: copy {}", failed(attempts))]
    Blob {
        /// The image being copied.
        image: String,
        /// The blob.
        digest: Digest,
        /// Tries made.
        attempts: u32,
        /// The last cause.
        #[source]
        source: RegistryError,
    },
    /// A manifest could not be read from the source or written to the target.
    #[error("{image}: manifest {digest}: {step}")]
    Manifest {
        /// The image being copied.
        image: String,
        /// The manifest.
        digest: Digest,
        /// What failed.
        step: &'static str,
        /// The last cause.
        #[source]
        source: RegistryError,
    },
    /// The source does not have the manifest.
    #[error("{image}: manifest {digest} is not in the source {source_repo}")]
    NotInSource {
        /// The image being copied.
        image: String,
        /// The manifest.
        digest: Digest,
        /// The source repository.
        source_repo: String,
    },
    /// The manifest is not one relsync can copy.
    #[error("{image}: manifest {digest}")]
    Format {
        /// The image being copied.
        image: String,
        /// The manifest.
        digest: Digest,
        /// What is wrong with it.
        #[source]
        source: ManifestFormatError,
    },
    /// Indexes nested deeper than [`MAX_NESTING`].
    #[error("{image}: manifest {digest}: indexes nested more than {MAX_NESTING} levels deep")]
    TooDeep {
        /// The image being copied.
        image: String,
        /// The manifest.
        digest: Digest,
    },
    /// A copy task died (a panic or a cancelled runtime).
    #[error("{image}: a copy task failed: {message}")]
    Task {
        /// The image being copied.
        image: String,
        /// What happened.
        message: String,
    },
}

/// What the engine did, counted over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorStats {
    /// Images copied ([`Mirror::copy_image`] calls that copied content, each image once).
    pub images: u64,
    /// Manifests written by digest (indexes, children and single manifests).
    pub manifests: u64,
    /// Blobs streamed from source to target.
    pub blobs_copied: u64,
    /// Blobs mounted from another repository of the same registry.
    pub blobs_mounted: u64,
    /// Blobs the target had already.
    pub blobs_skipped: u64,
    /// Bytes of the copied blobs.
    pub bytes_copied: u64,
    /// Whole blob transfers redone after a retryable failure.
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    images: AtomicU64,
    manifests: AtomicU64,
    blobs_copied: AtomicU64,
    blobs_mounted: AtomicU64,
    blobs_skipped: AtomicU64,
    bytes_copied: AtomicU64,
    retries: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Streamed; this many bytes.
    Copied(u64),
    /// Mounted from the source repository on the same registry.
    Mounted,
    /// The target had it.
    Skipped,
}

/// Hooks for a progress display. Every method has a default that does nothing.
pub trait MirrorObserver: Send + Sync {
    /// A blob starts streaming from source to target (`size` as announced; a retried
    /// transfer starts again).
    fn blob_started(&self, _digest: &Digest, _size: Option<u64>) {}
    /// `n` more bytes of a blob went through.
    fn bytes(&self, _n: u64) {}
}

/// How [`Mirror::copy_manifest`] treats the manifest itself.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// Ask the target whether it has the manifest (and copy nothing if it does).
    check_target: bool,
    /// Write the manifest by digest after its content.
    write_self: bool,
}

impl Mode {
    /// Check, copy what is missing, write by digest.
    const FULL: Mode = Mode {
        check_target: true,
        write_self: true,
    };
}

type Shared<T> = Arc<OnceCell<Result<T, Arc<MirrorError>>>>;
type Cells<T> = Mutex<HashMap<(String, Digest), Shared<T>>>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The copy engine for one run: per-host transfer limits, the run-wide table of transfers
/// (so that content shared by several images is copied once), retries and counters.
/// Methods take `self: &Arc<Self>` because transfers run as tasks.
pub struct Mirror {
    concurrency: usize,
    retry: RetryPolicy,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    blobs: Cells<BlobOutcome>,
    manifests: Cells<RawManifest>,
    /// Copies of what a top manifest names, the manifest itself left to the caller
    /// ([`Mirror::copy_image_content`]); apart from `manifests`, whose copies write it.
    contents: Cells<RawManifest>,
    counters: Counters,
    observer: Option<Arc<dyn MirrorObserver>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Mirror {
    /// An engine running at most `concurrency` blob transfers per registry host.
    pub fn new(concurrency: usize, retry: RetryPolicy) -> Mirror {
        Mirror {
            concurrency: concurrency.max(1),
            retry,
            limits: Mutex::new(HashMap::new()),
            blobs: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
            contents: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            observer: None,
        }
    }

    /// The same, reporting transfers to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn MirrorObserver>) -> Mirror {
        self.observer = Some(observer);
        self
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// What was done so far.
    pub fn stats(&self) -> MirrorStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MirrorStats {
            images: get(&c.images),
            manifests: get(&c.manifests),
            blobs_copied: get(&c.blobs_copied),
            blobs_mounted: get(&c.blobs_mounted),
            blobs_skipped: get(&c.blobs_skipped),
            bytes_copied: get(&c.bytes_copied),
            retries: get(&c.retries),
        }
    }

    /// Copies the image `digest` from `source` to `target` (every blob, then the child
    /// manifests, then the manifest itself, by digest; no tag) and returns its manifest as
    /// read from the source, byte-exact. An image whose manifest the target already holds
    /// is not copied again. Concurrent and repeated calls for one `(target, digest)` share
    /// one copy and its outcome. `image` names the image in errors and logs.
    pub async fn copy_image<S: MirrorEndpoint, T: MirrorEndpoint>(
        self: &Arc<Self>,
        source: &S,
        target: &T,
        digest: &Digest,
        image: &str,
    ) -> Result<RawManifest, Arc<MirrorError>> {
        self.manifest(
            source.clone(),
            target.clone(),
            digest.clone(),
            image.to_string(),
            0,
        )
        .await
    }

    /// Copies everything the image `digest` names from `source` to `target` (every blob,
    /// then the child manifests by digest) but not its manifest, which it returns as read
    /// from the source, byte-exact: the caller writes it under its tag, and that one
    /// request stores the manifest and the tag, after all the content.
    ///
    /// `known_absent`: the caller has just seen that `target` lacks the manifest (the plan
    /// observed it), so it is not asked again; when the target does hold it, its content
    /// is not copied again. Concurrent and repeated calls for one `(target, digest)` share
    /// one copy and its outcome. `image` names the image in errors and logs.
    pub async fn copy_image_content<S: MirrorEndpoint, T: MirrorEndpoint>(
        self: &Arc<Self>,
        source: &S,
        target: &T,
        digest: &Digest,
        image: &str,
        known_absent: bool,
    ) -> Result<RawManifest, Arc<MirrorError>> {
        let cell = Self::cell(&self.contents, source.name(), target.name(), digest);
        let mode = Mode {
            check_target: !known_absent,
            write_self: false,
        };
        cell.get_or_init(|| async {
            let (raw, copied) = self
                .copy_manifest(source, target, digest, image, 0, mode)
                .await?;
            if copied {
                bump(&self.counters.images, 1);
            }
            Ok(raw)
        })
        .await
        .clone()
    }

    /// The run-wide cell of one transfer, keyed by source, target and digest: content
    /// shared by images of one source is copied once, and a digest one source lacks never
    /// fails the copy of the same digest from another source.
    fn cell<V>(cells: &Cells<V>, source: &str, target: &str, digest: &Digest) -> Shared<V> {
        cells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((format!("{source}\u{0}{target}"), digest.clone()))
            .or_default()
            .clone()
    }

    /// The shared copy of one manifest (and everything below it).
    fn manifest<S: MirrorEndpoint, T: MirrorEndpoint>(
        self: &Arc<Self>,
        source: S,
        target: T,
        digest: Digest,
        image: String,
        depth: usize,
    ) -> BoxFuture<Result<RawManifest, Arc<MirrorError>>> {
        let this = self.clone();
        Box::pin(async move {
            let cell = Self::cell(&this.manifests, source.name(), target.name(), &digest);
            cell.get_or_init(|| async {
                let copied = this
                    .copy_manifest(&source, &target, &digest, &image, depth, Mode::FULL)
                    .await?;
                if copied.1 && depth == 0 {
                    bump(&this.counters.images, 1);
                }
                Ok(copied.0)
            })
            .await
            .clone()
        })
    }

    /// Copies one manifest (as `mode` says) and what it names; returns it and whether
    /// its content was copied (`false`: the target had the manifest).
    async fn copy_manifest<S: MirrorEndpoint, T: MirrorEndpoint>(
        self: &Arc<Self>,
        source: &S,
        target: &T,
        digest: &Digest,
        image: &str,
        depth: usize,
        mode: Mode,
    ) -> Result<(RawManifest, bool), Arc<MirrorError>> {
        if depth > MAX_NESTING {
            return Err(Arc::new(MirrorError::TooDeep {
                image: image.to_string(),
                digest: digest.clone(),
            }));
        }
        // Manifest requests are retried by the HTTP client itself.
        let manifest_error = |step, source| {
            Arc::new(MirrorError::Manifest {
                image: image.to_string(),
                digest: digest.clone(),
                step,
                source,
            })
        };
        let raw = source
            .get_manifest(digest.as_str())
            .await
            .map_err(|e| manifest_error("cannot read it from the source", e))?
            .ok_or_else(|| {
                Arc::new(MirrorError::NotInSource {
                    image: image.to_string(),
                    digest: digest.clone(),
                    source_repo: source.name().to_string(),
                })
            })?;
        let parsed = parse_manifest(&raw.media_type, &raw.bytes).map_err(|source| {
            Arc::new(MirrorError::Format {
                image: image.to_string(),
                digest: digest.clone(),
                source,
            })
        })?;
        let raw = RawManifest {
            media_type: parsed.kind.media_type().to_string(),
            ..raw
        };
        if mode.check_target
            && target
                .has_manifest(digest)
                .await
                .map_err(|e| manifest_error("cannot check the target for it", e))?
        {
            tracing::debug!(target = target.name(), %digest, "manifest already in the target");
            return Ok((raw, false));
        }

        // Content first: every blob and child manifest, in parallel.
        let mut tasks: JoinSet<Result<(), Arc<MirrorError>>> = JoinSet::new();
        for blob in parsed.blobs {
            let (this, source, target, image) = (
                self.clone(),
                source.clone(),
                target.clone(),
                image.to_string(),
            );
            tasks.spawn(async move { this.blob(source, target, blob, image).await.map(|_| ()) });
        }
        for child in parsed.children {
            let fut = self.manifest(
                source.clone(),
                target.clone(),
                child.digest,
                image.to_string(),
                depth + 1,
            );
            tasks.spawn(async move { fut.await.map(|_| ()) });
        }
        while let Some(joined) = tasks.join_next().await {
            let done = joined.map_err(|e| {
                Arc::new(MirrorError::Task {
                    image: image.to_string(),
                    message: e.to_string(),
                })
            });
            if let Err(e) = done.and_then(|r| r) {
                tasks.abort_all();
                return Err(e);
            }
        }

        // Then the manifest itself, by digest (or, left to the caller, under its tag).
        if !mode.write_self {
            return Ok((raw, true));
        }
        target
            .put_manifest(digest.as_str(), &raw)
            .await
            .map_err(|e| manifest_error("cannot write it to the target", e))?;
        bump(&self.counters.manifests, 1);
        tracing::debug!(target = target.name(), %digest, media_type = %raw.media_type, "manifest written");
        Ok((raw, true))
    }

    /// The shared transfer of one blob into `target`.
    async fn blob<S: MirrorEndpoint, T: MirrorEndpoint>(
        self: Arc<Self>,
        source: S,
        target: T,
        blob: Descriptor,
        image: String,
    ) -> Result<BlobOutcome, Arc<MirrorError>> {
        let cell = Self::cell(&self.blobs, source.name(), target.name(), &blob.digest);
        cell.get_or_init(|| async {
            self.transfer(&source, &target, &blob, &image)
                .await
                .map_err(Arc::new)
        })
        .await
        .clone()
    }

    /// The transfer slots of `host` (layouts share one).
    fn limit(&self, host: Option<&str>) -> Arc<Semaphore> {
        self.limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(host.unwrap_or(LOCAL_HOST).to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.concurrency)))
            .clone()
    }

    /// Skip, mount or stream one blob, retried whole.
    async fn transfer<S: MirrorEndpoint, T: MirrorEndpoint>(
        &self,
        source: &S,
        target: &T,
        blob: &Descriptor,
        image: &str,
    ) -> Result<BlobOutcome, MirrorError> {
        // One slot on each host involved, taken in a fixed order (no deadlock).
        let mut hosts = vec![
            source.registry_host().unwrap_or(LOCAL_HOST).to_string(),
            target.registry_host().unwrap_or(LOCAL_HOST).to_string(),
        ];
        hosts.sort();
        hosts.dedup();
        let mut permits = Vec::new();
        for h in &hosts {
            let sem = self.limit(Some(h));
            permits.push(sem.acquire_owned().await.map_err(|e| MirrorError::Task {
                image: image.to_string(),
                message: e.to_string(),
            })?);
        }
        let digest = &blob.digest;
        let same_host =
            source.registry_host().is_some() && source.registry_host() == target.registry_host();
        let what = format!("copying blob {digest} to {}", target.name());
        let outcome = self
            .retrying(&what, || async {
                if target.has_blob(digest).await? {
                    return Ok(BlobOutcome::Skipped);
                }
                if same_host && target.mount_blob(digest, source.repository_path()).await? {
                    return Ok(BlobOutcome::Mounted);
                }
                let mut stream = source.open_blob(digest).await?;
                if blob.size.is_some() {
                    stream.size = blob.size;
                }
                if let Some(o) = self.observer.clone() {
                    o.blob_started(digest, stream.size);
                    stream.chunks =
                        Box::pin(stream.chunks.inspect_ok(move |c| o.bytes(c.len() as u64)));
                }
                let written = target.put_blob(digest, stream).await?;
                Ok(BlobOutcome::Copied(written))
            })
            .await;
        drop(permits);
        let outcome = outcome.map_err(|(source, attempts)| MirrorError::Blob {
            image: image.to_string(),
            digest: digest.clone(),
            attempts,
            source,
        })?;
        match outcome {
            BlobOutcome::Copied(n) => {
                bump(&self.counters.blobs_copied, 1);
                bump(&self.counters.bytes_copied, n);
                tracing::debug!(target = target.name(), %digest, bytes = n, "blob copied");
            }
            BlobOutcome::Mounted => {
                bump(&self.counters.blobs_mounted, 1);
                tracing::debug!(target = target.name(), %digest, from = source.repository_path(), "blob mounted");
            }
            BlobOutcome::Skipped => {
                bump(&self.counters.blobs_skipped, 1);
                tracing::debug!(target = target.name(), %digest, "blob already in the target");
            }
        }
        Ok(outcome)
    }

    /// [`redo`] with this engine's policy, counting retries.
    async fn retrying<R, F, Fut>(&self, what: &str, mut op: F) -> Result<R, (RegistryError, u32)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R, RegistryError>>,
    {
        let mut tries = 0u64;
        let result = redo(&self.retry, what, || {
            tries += 1;
            op()
        })
        .await;
        bump(&self.counters.retries, tries.saturating_sub(1));
        result
    }
}

/// An in-memory registry for the engine's and apply's unit tests: repositories with blobs,
/// manifests and tags, a log of writes, and injectable faults.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use futures_util::StreamExt;

    use super::{MirrorEndpoint, parse_manifest};
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
        async fn get_manifest(
            &self,
            reference: &str,
        ) -> Result<Option<RawManifest>, RegistryError> {
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

        async fn put_blob(
            &self,
            digest: &Digest,
            mut blob: BlobStream,
        ) -> Result<u64, RegistryError> {
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

        async fn mount_blob(
            &self,
            digest: &Digest,
            from_path: &str,
        ) -> Result<bool, RegistryError> {
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

        async fn put_manifest(
            &self,
            reference: &str,
            m: &RawManifest,
        ) -> Result<(), RegistryError> {
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
}

#[cfg(test)]
mod tests {
    use super::testing::{Mem, OCI_INDEX, OCI_MANIFEST, seed_index};
    use super::*;
    use std::time::Duration;

    const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            tries: 4,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(5),
        }
    }

    /// The content-only copy leaves the top manifest to the caller, yet an index it copied
    /// that way and that is also the child of another index is still written by digest
    /// there (the two copies do not share a result).
    #[test]
    fn a_content_only_copy_writes_everything_but_the_top_manifest() {
        let reg = Mem::registry();
        let src = Mem::new(&reg, Some("src"), "src/rel");
        let dst = Mem::new(&reg, Some("dst"), "dst/rel");
        let (a, blobs) = seed_index(&src, "a", b"shared", None);
        let outer = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_INDEX, "digest": a.to_string(), "size": src.manifest_bytes(&a).unwrap().len()}],
        }))
        .unwrap();
        let b = src.seed_manifest(OCI_INDEX, &outer, None);
        let m = Arc::new(Mirror::new(2, fast()));

        let raw = testing::block(m.copy_image_content(&src, &dst, &a, "a", true)).unwrap();
        assert_eq!(raw.digest, a);
        assert_eq!(raw.bytes, src.manifest_bytes(&a).unwrap());
        assert!(!dst.has(&a), "the top manifest is the caller's to write");
        assert!(blobs.iter().all(|d| dst.has(d)));
        let children = parse_manifest(&raw.media_type, &raw.bytes)
            .unwrap()
            .children;
        assert!(children.iter().all(|c| dst.has(&c.digest)));
        assert_eq!(m.stats().images, 1);
        assert_eq!(m.stats().manifests, 2, "the two children, by digest");

        testing::block(m.copy_image(&src, &dst, &b, "b")).unwrap();
        assert!(dst.has(&a) && dst.has(&b));
        let writes = reg.lock().unwrap().writes.clone();
        assert!(
            writes.contains(&format!("manifest dst/rel {a}")),
            "{writes:?}"
        );
    }

    #[test]
    fn parses_the_four_formats() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10}},{{"digest":"{}","size":11}}]}}"#,
            d('a'),
            d('b')
        );
        let p = parse_manifest("", index.as_bytes()).unwrap();
        assert_eq!(p.kind, ManifestKind::OciIndex);
        assert_eq!(
            p.children
                .iter()
                .map(|c| c.digest.to_string())
                .collect::<Vec<_>>(),
            [d('a'), d('b')]
        );
        assert_eq!(p.children[1].size, Some(11));
        assert!(p.blobs.is_empty());

        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{{"mediaType":"{DOCKER_V2}","digest":"{}","size":5,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            d('c')
        );
        let p = parse_manifest(DOCKER_LIST, list.as_bytes()).unwrap();
        assert_eq!(p.kind, ManifestKind::DockerList);
        assert_eq!(p.children.len(), 1);

        // Config first, then layers; a repeated layer once.
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":3}},"layers":[{{"digest":"{}","size":4}},{{"digest":"{}","size":5}},{{"digest":"{}","size":4}}]}}"#,
            d('1'),
            d('2'),
            d('3'),
            d('2')
        );
        let p = parse_manifest(DOCKER_V2, image.as_bytes()).unwrap();
        assert_eq!(p.kind, ManifestKind::DockerManifest);
        assert_eq!(
            p.blobs
                .iter()
                .map(|b| b.digest.to_string())
                .collect::<Vec<_>>(),
            [d('1'), d('2'), d('3')]
        );

        // An OCI manifest without mediaType: the served type, else the shape.
        let bare = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":3}},"layers":[]}}"#,
            d('4')
        );
        assert_eq!(
            parse_manifest(OCI_MANIFEST, bare.as_bytes()).unwrap().kind,
            ManifestKind::OciManifest
        );
        assert_eq!(
            parse_manifest("application/json", bare.as_bytes())
                .unwrap()
                .kind,
            ManifestKind::OciManifest
        );
        assert_eq!(
            ManifestKind::from_media_type(&format!("{OCI_INDEX}; charset=utf-8")),
            Some(ManifestKind::OciIndex)
        );
    }

    #[test]
    fn skips_foreign_layers_and_refuses_other_formats() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2}","config":{{"digest":"{}","size":3}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":4,"urls":["https://example.com/x"]}},{{"digest":"{}","size":5}}]}}"#,
            d('1'),
            d('2'),
            d('3')
        );
        let p = parse_manifest(DOCKER_V2, image.as_bytes()).unwrap();
        assert_eq!(
            p.blobs
                .iter()
                .map(|b| b.digest.to_string())
                .collect::<Vec<_>>(),
            [d('1'), d('3')]
        );

        let schema1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let e = parse_manifest(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1.as_bytes(),
        )
        .unwrap_err();
        assert!(matches!(e, ManifestFormatError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("v1+prettyjws"), "{e}");

        let artifact = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[]}"#;
        let e = parse_manifest("", artifact.as_bytes()).unwrap_err();
        assert_eq!(
            e,
            ManifestFormatError::Unsupported(
                "application/vnd.oci.artifact.manifest.v1+json".to_string()
            )
        );
        for bad in [
            "not json",
            "[]",
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:zz"}}"#,
            r#"{"schemaVersion":3,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}"#,
        ] {
            assert!(
                matches!(
                    parse_manifest("", bad.as_bytes()),
                    Err(ManifestFormatError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn copies_an_index_byte_exact_content_first() {
        let reg = Mem::registry();
        let src = Mem::new(&reg, Some("a.example"), "src/rel");
        let dst = Mem::new(&reg, Some("b.example"), "dst/rel");
        let (index, blobs) = seed_index(&src, "r1", b"shared layer", None);
        let mirror = Arc::new(Mirror::new(4, fast()));
        let raw = mirror
            .copy_image(&src, &dst, &index, "dst/rel:r1")
            .await
            .unwrap();
        assert_eq!(raw.digest, index);
        assert_eq!(raw.media_type, OCI_INDEX);
        assert_eq!(dst.manifest_bytes(&index), src.manifest_bytes(&index));
        for b in &blobs {
            assert!(dst.has(b), "{b} copied");
        }
        // Order: every blob, then the two children, then the index; no tag.
        let writes = reg.lock().unwrap().writes.clone();
        let kinds: Vec<&str> = writes
            .iter()
            .map(|w| w.split(' ').next().unwrap())
            .collect();
        let first_manifest = kinds.iter().position(|k| *k == "manifest").unwrap();
        assert!(
            kinds[..first_manifest].iter().all(|k| *k == "blob"),
            "{writes:?}"
        );
        assert!(
            kinds[first_manifest..].iter().all(|k| *k == "manifest"),
            "{writes:?}"
        );
        assert_eq!(writes.last().unwrap(), &format!("manifest dst/rel {index}"));
        assert!(dst.tag("r1").is_none());
        let s = mirror.stats();
        // 2 configs + 2 own layers + 1 shared layer (named by both children, sent once).
        assert_eq!(blobs.len(), 5);
        assert_eq!(
            (s.images, s.manifests, s.blobs_copied, s.blobs_skipped),
            (1, 3, 5, 0)
        );
        assert_eq!(
            writes.iter().filter(|w| w.starts_with("blob")).count(),
            5,
            "{writes:?}"
        );

        // Again: the target holds the index, nothing is written.
        let again = Arc::new(Mirror::new(4, fast()));
        again
            .copy_image(&src, &dst, &index, "dst/rel:r1")
            .await
            .unwrap();
        assert_eq!(reg.lock().unwrap().writes.len(), writes.len());
        assert_eq!(again.stats().images, 0);
    }

    #[tokio::test]
    async fn shared_blobs_are_transferred_once_per_run() {
        let reg = Mem::registry();
        let src = Mem::new(&reg, Some("a.example"), "src/rel");
        let dst = Mem::new(&reg, None, "dst/rel");
        let shared = vec![7u8; 4096];
        let (i1, b1) = seed_index(&src, "r1", &shared, None);
        let (i2, b2) = seed_index(&src, "r2", &shared, None);
        let common: Vec<_> = b1.iter().filter(|b| b2.contains(b)).cloned().collect();
        assert_eq!(common.len(), 1);
        let mirror = Arc::new(Mirror::new(8, fast()));
        let (r1, r2, r1again) = tokio::join!(
            mirror.copy_image(&src, &dst, &i1, "r1"),
            mirror.copy_image(&src, &dst, &i2, "r2"),
            mirror.copy_image(&src, &dst, &i1, "r1 again"),
        );
        assert_eq!(r1.unwrap().digest, i1);
        assert_eq!(r2.unwrap().digest, i2);
        assert_eq!(r1again.unwrap().digest, i1);
        let st = reg.lock().unwrap();
        assert_eq!(
            st.opens.get(&common[0]),
            Some(&1),
            "the shared layer is read once"
        );
        let puts_of = |d: &Digest| st.writes.iter().filter(|w| w.ends_with(d.as_str())).count();
        assert_eq!(puts_of(&common[0]), 1);
        assert_eq!(puts_of(&i1), 1, "one image copy for two requests");
        let s = mirror.stats();
        assert_eq!((s.images, s.blobs_copied), (2, 9));
    }

    /// Regression (review finding): a digest one source lacks must not fail the copy of
    /// the same digest from another source in the same run.
    #[tokio::test]
    async fn a_digest_missing_from_one_source_is_still_copied_from_another() {
        let reg = Mem::registry();
        let has = Mem::new(&reg, Some("a.example"), "src/has");
        let lacks = Mem::new(&reg, Some("a.example"), "src/lacks");
        let dst = Mem::new(&reg, None, "dst/rel");
        let (index, _) = seed_index(&has, "r1", b"layer", None);
        let mirror = Arc::new(Mirror::new(4, fast()));
        let err = mirror
            .copy_image(&lacks, &dst, &index, "from lacks")
            .await
            .unwrap_err();
        assert!(matches!(*err, MirrorError::NotInSource { .. }), "{err}");
        let raw = mirror
            .copy_image(&has, &dst, &index, "from has")
            .await
            .unwrap();
        assert_eq!(raw.digest, index);
        assert_eq!(dst.manifest_bytes(&index), has.manifest_bytes(&index));
    }

    #[tokio::test]
    async fn skips_present_blobs_and_mounts_on_one_host() {
        let reg = Mem::registry();
        reg.lock().unwrap().mounts = true;
        let src = Mem::new(&reg, Some("r.example"), "src/rel");
        let dst = Mem::new(&reg, Some("r.example"), "dst/rel");
        let (index, blobs) = seed_index(&src, "r1", b"shared", None);
        // The target has one blob already.
        let bytes = src.state.lock().unwrap().repos["src/rel"].blobs[&blobs[0]].clone();
        dst.seed_blob(&bytes);
        let mirror = Arc::new(Mirror::new(2, fast()));
        mirror.copy_image(&src, &dst, &index, "r1").await.unwrap();
        let s = mirror.stats();
        assert_eq!(
            (s.blobs_skipped, s.blobs_mounted, s.blobs_copied),
            (1, 4, 0)
        );
        assert_eq!(s.bytes_copied, 0);
        assert!(reg.lock().unwrap().opens.is_empty(), "nothing streamed");
    }

    #[tokio::test]
    async fn retries_a_flaky_source_and_reports_a_dead_one() {
        let reg = Mem::registry();
        let src = Mem::new(&reg, Some("a.example"), "src/rel");
        let dst = Mem::new(&reg, Some("b.example"), "dst/rel");
        let (index, blobs) = seed_index(&src, "r1", b"shared", None);
        reg.lock()
            .unwrap()
            .failing_opens
            .insert(blobs[1].clone(), 2);
        let mirror = Arc::new(Mirror::new(2, fast()));
        mirror.copy_image(&src, &dst, &index, "r1").await.unwrap();
        assert_eq!(reg.lock().unwrap().opens[&blobs[1]], 3);
        assert_eq!(mirror.stats().retries, 2);

        // A blob that never comes: 4 tries, then an error naming image, blob and cause;
        // the index is not written.
        let dst2 = Mem::new(&reg, Some("b.example"), "dst/other");
        reg.lock()
            .unwrap()
            .failing_opens
            .insert(blobs[2].clone(), 100);
        let mirror = Arc::new(Mirror::new(2, fast()));
        let e = mirror
            .copy_image(&src, &dst2, &index, "dst/other:r1")
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("dst/other:r1"), "{msg}");
        assert!(msg.contains(blobs[2].as_str()), "{msg}");
        assert!(msg.contains("after 4 tries"), "{msg}");
        let cause = std::error::Error::source(&*e).unwrap().to_string();
        assert!(cause.contains("503"), "{cause}");
        assert!(!dst2.has(&index), "no index on incomplete content");
    }

    #[tokio::test]
    async fn a_digest_mismatch_is_not_retried() {
        let reg = Mem::registry();
        let src = Mem::new(&reg, Some("a.example"), "src/rel");
        let dst = Mem::new(&reg, Some("b.example"), "dst/rel");
        let (index, blobs) = seed_index(&src, "r1", b"shared", None);
        reg.lock().unwrap().lying.push(blobs[3].clone());
        let mirror = Arc::new(Mirror::new(2, fast()));
        let e = mirror
            .copy_image(&src, &dst, &index, "r1")
            .await
            .unwrap_err();
        assert!(
            matches!(&*e, MirrorError::Blob { attempts: 1, source: RegistryError::DigestMismatch { .. }, digest, .. } if *digest == blobs[3]),
            "{e:?}"
        );
        assert_eq!(reg.lock().unwrap().opens[&blobs[3]], 1);
        assert!(!dst.has(&blobs[3]));
        assert!(!dst.has(&index));
    }

    #[tokio::test]
    async fn refuses_an_unknown_format_and_a_missing_source() {
        let reg = Mem::registry();
        let src = Mem::new(&reg, None, "src/rel");
        let dst = Mem::new(&reg, None, "dst/rel");
        let odd = src.seed_manifest(
            "application/vnd.oci.artifact.manifest.v1+json",
            br#"{"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}"#,
            None,
        );
        let mirror = Arc::new(Mirror::new(2, fast()));
        let e = mirror
            .copy_image(&src, &dst, &odd, "x:1")
            .await
            .unwrap_err();
        assert!(matches!(&*e, MirrorError::Format { .. }), "{e:?}");
        let missing = Digest::parse(&d('e')).unwrap();
        let e = mirror
            .copy_image(&src, &dst, &missing, "x:2")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not in the source src/rel"), "{e}");
    }
}
