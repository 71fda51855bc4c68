//! The write side of a repository: what mirroring and tag moves need. Implemented by the
//! HTTP client and the `oci:` layout store, dispatched by [`super::Repository`].
//!
//! Rules every implementation keeps:
//! - a manifest read by digest is checked against that digest; one read by tag is hashed
//!   and its digest returned; manifests over [`MAX_MANIFEST_BYTES`] are refused;
//! - a blob is streamed, never held whole, and its sha256 is checked while it streams:
//!   a mismatch aborts the write ([`super::RegistryError::DigestMismatch`]) and nothing is
//!   left under that digest;
//! - a layout writes blobs to a temporary file renamed into place once verified, and
//!   replaces `index.json` by rename, so a killed process leaves no tag on missing content.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

use super::{RegistryError, TargetReader};
use crate::digest::Digest;

/// The largest manifest relsync reads or writes.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A manifest's exact bytes, its media type and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    /// `Content-Type` / `mediaType`, e.g. `application/vnd.oci.image.index.v1+json`.
    pub media_type: String,
    /// The bytes, byte-exact (the digest is of these).
    pub bytes: Bytes,
    /// sha256 of `bytes`.
    pub digest: Digest,
}

/// A stream of blob chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

/// A blob being read: its chunks and, when known, its size.
pub struct BlobStream {
    /// Size announced by the source (`Content-Length` or the file size).
    pub size: Option<u64>,
    /// The bytes, in order.
    pub chunks: ByteStream,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// What a tag delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagDeletion {
    /// The tag is gone (tag DELETE, or the layout entry removed).
    Deleted,
    /// The registry cannot delete a tag by name (distribution 2.8 answers 400/405
    /// `UNSUPPORTED`); the caller may delete the manifest by digest instead.
    Unsupported,
}

/// What a compare-and-swap tag write did ([`ContentStore::put_manifest_if`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasWrite {
    /// The tag held what was expected and now holds the manifest.
    Written,
    /// The tag did not hold what was expected, and nothing was written; or (on a
    /// registry) it was written and another client's write replaced it right after, as
    /// the read after the write found.
    Conflict {
        /// What the tag held (`None`: absent).
        actual: Option<Digest>,
    },
}

/// What a compare-and-swap tag delete did ([`ContentStore::delete_tag_if`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasDeletion {
    /// The tag held what was expected and is gone.
    Deleted,
    /// The tag did not hold what was expected (`None`: it is gone already): nothing was
    /// deleted.
    Conflict {
        /// What the tag held.
        actual: Option<Digest>,
    },
    /// The tag held what was expected, but the registry cannot delete a tag by name (as
    /// [`TagDeletion::Unsupported`]): nothing was deleted.
    Unsupported,
}

/// Reading content from and writing content to a repository.
pub trait ContentStore: TargetReader {
    /// The manifest `reference` (a tag or a digest) with its media type, or `None` when
    /// absent. By digest, the bytes are checked against it.
    fn get_manifest(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<RawManifest>, RegistryError>> + Send;

    /// Whether the blob is in the repository.
    fn has_blob(&self, digest: &Digest)
    -> impl Future<Output = Result<bool, RegistryError>> + Send;

    /// Opens the blob for streaming.
    fn open_blob(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<BlobStream, RegistryError>> + Send;

    /// Writes the blob from `blob`, checking its sha256 while streaming (and its size when
    /// announced); returns the bytes written.
    fn put_blob(
        &self,
        digest: &Digest,
        blob: BlobStream,
    ) -> impl Future<Output = Result<u64, RegistryError>> + Send;

    /// Asks the registry to mount the blob from `from_path` (a repository path on the same
    /// registry). `true`: mounted (201). `false`: the registry declined (202, or no mount
    /// support) and the caller must copy the bytes.
    fn mount_blob(
        &self,
        digest: &Digest,
        from_path: &str,
    ) -> impl Future<Output = Result<bool, RegistryError>> + Send;

    /// Writes the manifest under `reference`: its own digest (content only) or a tag
    /// (content and name). Every blob and child manifest it names must already be present.
    fn put_manifest(
        &self,
        reference: &str,
        manifest: &RawManifest,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    /// Deletes a tag by name where the backend supports it.
    fn delete_tag(
        &self,
        tag: &str,
    ) -> impl Future<Output = Result<TagDeletion, RegistryError>> + Send;

    /// Writes `manifest` under `tag` only if the tag holds `expected` (`None`: only if it
    /// is absent). An `oci:` layout checks and writes under its lock, so no other writer
    /// (in any process) can move the tag in between; a registry offers no such operation:
    /// there the check goes out immediately before the write, and the tag is read again
    /// after it (see the HTTP client's override).
    ///
    /// The default: resolve, then write. A layout overrides it with a real check under its
    /// lock, the HTTP client with a check and write back to back and a read after.
    fn put_manifest_if(
        &self,
        tag: &str,
        manifest: &RawManifest,
        expected: Option<&Digest>,
    ) -> impl Future<Output = Result<CasWrite, RegistryError>> + Send
    where
        Self: Sync,
    {
        async move {
            let actual = self.resolve_tag(tag).await?;
            if actual.as_ref() != expected {
                return Ok(CasWrite::Conflict { actual });
            }
            self.put_manifest(tag, manifest).await?;
            Ok(CasWrite::Written)
        }
    }

    /// Deletes `tag` by name only if it holds `expected`; atomic in an `oci:` layout, best
    /// effort (resolve, then delete) on a registry.
    ///
    /// The default, for registries: resolve, then delete (best effort).
    fn delete_tag_if(
        &self,
        tag: &str,
        expected: &Digest,
    ) -> impl Future<Output = Result<CasDeletion, RegistryError>> + Send
    where
        Self: Sync,
    {
        async move {
            let actual = self.resolve_tag(tag).await?;
            if actual.as_ref() != Some(expected) {
                return Ok(CasDeletion::Conflict { actual });
            }
            Ok(match self.delete_tag(tag).await? {
                TagDeletion::Deleted => CasDeletion::Deleted,
                TagDeletion::Unsupported => CasDeletion::Unsupported,
            })
        }
    }

    /// Deletes a manifest by digest (on a registry this removes every tag on it).
    fn delete_manifest(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;
}
