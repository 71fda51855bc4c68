//! The mirror engine: copies an image from a source repository to a target repository by
//! digest, byte-exact, so that the target digest equals the source digest.
//!
//! An image is its manifest (an OCI image index or Docker manifest list, or an OCI image
//! manifest or Docker v2 schema 2 manifest) and everything it names. The engine copies in
//! the order docs/reference.md requires: every blob (config and layers), then the child manifests,
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

pub use super::format::{
    Descriptor, ManifestFormatError, ManifestKind, ParsedManifest, parse_manifest,
};
use super::retry::redo;
use super::{ContentStore, RawManifest, RegistryError, Repository, RetryPolicy, TargetReader};
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

    /// Whether a tag the backend cannot delete by name may be deleted with its manifest,
    /// by digest (`deleteByDigest: true` on a registry; a layout deletes tags by name).
    fn deletes_by_digest(&self) -> bool;

    /// The OCI 1.1 referrers of `digest` (raw descriptors) through the referrers API, or
    /// `None` where the backend serves no such API (then the `sha256-<hex>` referrers tag
    /// stands in: [`super::referrers`]). By default `None`.
    fn referrers_api(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<Vec<serde_json::Value>>, RegistryError>> + Send {
        let _ = digest;
        async { Ok(None) }
    }
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

    fn deletes_by_digest(&self) -> bool {
        match self {
            Repository::Registry(r) => r.deletes_by_digest(),
            Repository::Layout(_) => true,
        }
    }

    async fn referrers_api(
        &self,
        digest: &Digest,
    ) -> Result<Option<Vec<serde_json::Value>>, RegistryError> {
        match self {
            Repository::Registry(r) => r.referrers(digest).await,
            Repository::Layout(_) => Ok(None),
        }
    }
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
        /// The blob that could not be copied.
        digest: Digest,
        /// How many times the whole transfer was tried.
        attempts: u32,
        /// The last try's failure.
        #[source]
        source: RegistryError,
    },
    /// A manifest could not be read from the source or written to the target.
    #[error("{image}: manifest {digest}: {step}")]
    Manifest {
        /// The image being copied.
        image: String,
        /// The manifest being read or written.
        digest: Digest,
        /// The step that failed (reading it from the source, checking or writing the target).
        step: &'static str,
        /// The last try's failure.
        #[source]
        source: RegistryError,
    },
    /// The source does not have the manifest.
    #[error("{image}: manifest {digest} is not in the source {source_repo}")]
    NotInSource {
        /// The image being copied.
        image: String,
        /// The manifest the source lacks.
        digest: Digest,
        /// The source repository that was asked.
        source_repo: String,
    },
    /// The manifest is not one relsync can copy.
    #[error("{image}: manifest {digest}")]
    Format {
        /// The image being copied.
        image: String,
        /// The manifest whose format is refused.
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
        /// The innermost index that was refused.
        digest: Digest,
    },
    /// A copy task died (a panic or a cancelled runtime).
    #[error("{image}: a copy task failed: {message}")]
    Task {
        /// The image being copied.
        image: String,
        /// What happened to the task (the panic or the cancellation).
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

    /// The policy whole blob transfers are redone by.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::memory::{Mem, OCI_INDEX, seed_index};
    use std::time::Duration;

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

        let raw = crate::registry::memory::block(m.copy_image_content(&src, &dst, &a, "a", true))
            .unwrap();
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

        crate::registry::memory::block(m.copy_image(&src, &dst, &b, "b")).unwrap();
        assert!(dst.has(&a) && dst.has(&b));
        let writes = reg.lock().unwrap().writes.clone();
        assert!(
            writes.contains(&format!("manifest dst/rel {a}")),
            "{writes:?}"
        );
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
