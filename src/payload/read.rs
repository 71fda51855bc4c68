//! ADAPTER side of payloads (the rest of [`crate::payload`] is pure): reads a release
//! image's component list from its repository. [`read_components`] fetches the release
//! manifest by digest; for an image index, every platform image (attestation entries,
//! platform `unknown/unknown`, left out); takes each image's last layer (where
//! `oc adm release new` puts `release-manifests/`), streams it into
//! [`super::read_image_references`] on a blocking thread through a small channel (never
//! whole in memory), checks the layer's size and sha256 while it streams, and merges the
//! platforms into a [`ComponentList`].

use std::io::Read;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use sha2::Digest as _;

use super::archive::{Budget, read_image_references};
use super::{ComponentList, ImageReference, PayloadError, PlatformReferences};
use crate::digest::Digest;
use crate::registry::format::{ManifestFormatError, parse_manifest};
use crate::registry::{ContentStore, RegistryError};

/// Why the component list of a release cannot be read: names the version, the layer (when
/// it got that far) and the cause (the `#[source]`).
#[derive(Debug, thiserror::Error)]
#[error("release {version}: {}", match layer { Some(l) => format!("layer {l}"), None => format!("release image {digest}") })]
pub struct PayloadReadError {
    /// The release's version.
    pub version: String,
    /// The release's digest.
    pub digest: Digest,
    /// The layer being read, once known.
    pub layer: Option<Digest>,
    /// What went wrong.
    #[source]
    pub cause: PayloadCause,
}

impl PayloadReadError {
    /// The message with every cause after it (`release V: layer D: cause: detail`), for
    /// reports that show one line.
    pub fn full_message(&self) -> String {
        let mut msg = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        msg
    }

    /// Whether the release's payload is at fault (malformed, missing, over budget) rather
    /// than the registry answering (a transport failure or a refusal, worth a retry later).
    pub fn is_payload_fault(&self) -> bool {
        !matches!(self.cause, PayloadCause::Registry(_))
    }
}

/// The cause of a [`PayloadReadError`].
#[derive(Debug, thiserror::Error)]
pub enum PayloadCause {
    /// The registry (or layout) failed or refused.
    #[error(transparent)]
    Registry(RegistryError),
    /// The release image is not in its source repository.
    #[error("not found in {repo}")]
    NotFound {
        /// The source repository.
        repo: String,
    },
    /// A manifest relsync cannot read.
    #[error(transparent)]
    Format(ManifestFormatError),
    /// An image manifest without layers.
    #[error("the image manifest names no layer")]
    NoLayers,
    /// An image index without a platform image.
    #[error("the image index names no platform image")]
    NoPlatforms,
    /// The layer's content is not a release's image-references.
    #[error(transparent)]
    Payload(PayloadError),
    /// The layer's bytes do not match its digest or size.
    #[error("the layer does not match its descriptor ({0})")]
    Mismatch(String),
}

/// Reads the component list of the release `version` pinned at `digest` in `repo` (its
/// source repository), as the module doc says. The layer budget applies to each layer
/// read (compressed and decompressed).
pub async fn read_components<S: ContentStore + Sync>(
    repo: &S,
    version: &str,
    digest: &Digest,
    budget: &Budget,
) -> Result<ComponentList, PayloadReadError> {
    let fail = |layer: Option<&Digest>, cause: PayloadCause| PayloadReadError {
        version: version.to_string(),
        digest: digest.clone(),
        layer: layer.cloned(),
        cause,
    };
    let manifest = repo
        .get_manifest(digest.as_str())
        .await
        .map_err(|e| fail(None, PayloadCause::Registry(e)))?
        .ok_or_else(|| {
            fail(
                None,
                PayloadCause::NotFound {
                    repo: repo.name().to_string(),
                },
            )
        })?;
    let parsed = parse_manifest(&manifest.media_type, &manifest.bytes)
        .map_err(|e| fail(None, PayloadCause::Format(e)))?;
    let mut platforms = Vec::new();
    if parsed.kind.is_index() {
        let children = platform_children(&manifest.bytes);
        if children.is_empty() {
            return Err(fail(None, PayloadCause::NoPlatforms));
        }
        for (child, arch) in children {
            let image = repo
                .get_manifest(child.as_str())
                .await
                .map_err(|e| fail(None, PayloadCause::Registry(e)))?
                .ok_or_else(|| {
                    fail(
                        None,
                        PayloadCause::NotFound {
                            repo: format!("{} (platform image {child})", repo.name()),
                        },
                    )
                })?;
            let references = image_references(repo, &image.media_type, &image.bytes, budget)
                .await
                .map_err(|(layer, cause)| fail(layer.as_ref(), cause))?;
            platforms.push(PlatformReferences {
                arch: Some(arch),
                references,
            });
        }
    } else {
        let references = image_references(repo, &manifest.media_type, &manifest.bytes, budget)
            .await
            .map_err(|(layer, cause)| fail(layer.as_ref(), cause))?;
        platforms.push(PlatformReferences {
            arch: None,
            references,
        });
    }
    ComponentList::from_platforms(&platforms).map_err(|e| fail(None, PayloadCause::Payload(e)))
}

/// The platform images of an index, with their labels: the architecture, with the variant
/// appended where two platforms share an architecture (`armv7`); entries for platform
/// `unknown` (attestations) are left out.
fn platform_children(index: &[u8]) -> Vec<(Digest, String)> {
    let json: serde_json::Value = serde_json::from_slice(index).unwrap_or_default();
    let mut out: Vec<(Digest, String, String)> = Vec::new();
    for m in json["manifests"].as_array().into_iter().flatten() {
        let Some(digest) = m["digest"].as_str().and_then(|d| Digest::parse(d).ok()) else {
            continue;
        };
        let arch = m["platform"]["architecture"].as_str().unwrap_or("unknown");
        let os = m["platform"]["os"].as_str().unwrap_or("");
        if arch == "unknown" || os == "unknown" {
            continue;
        }
        let variant = m["platform"]["variant"].as_str().unwrap_or("");
        out.push((digest, arch.to_string(), variant.to_string()));
    }
    let labels: Vec<String> = out
        .iter()
        .map(|(_, arch, variant)| {
            let shared = out.iter().filter(|(_, a, _)| a == arch).count() > 1;
            if shared {
                format!("{arch}{variant}")
            } else {
                arch.clone()
            }
        })
        .collect();
    out.into_iter()
        .zip(labels)
        .map(|((d, _, _), label)| (d, label))
        .collect()
}

/// The image-references of one image manifest: read from its last layer.
async fn image_references<S: ContentStore + Sync>(
    repo: &S,
    media_type: &str,
    bytes: &[u8],
    budget: &Budget,
) -> Result<Vec<ImageReference>, (Option<Digest>, PayloadCause)> {
    let parsed = parse_manifest(media_type, bytes).map_err(|e| (None, PayloadCause::Format(e)))?;
    if parsed.kind.is_index() {
        return Err((
            None,
            PayloadCause::Format(ManifestFormatError::Malformed(
                "a platform entry of the index is itself an index".to_string(),
            )),
        ));
    }
    // The config comes first in `blobs`; the layers follow.
    let Some(layer) = parsed.blobs.get(1..).and_then(<[_]>::last) else {
        return Err((None, PayloadCause::NoLayers));
    };
    read_layer(repo, &layer.digest, layer.size, budget)
        .await
        .map_err(|cause| (Some(layer.digest.clone()), cause))
}

/// Streams one layer into the parser, checking its size and digest on the way; reads it to
/// the end (bounded by the budget) so that nothing unverified is believed.
async fn read_layer<S: ContentStore + Sync>(
    repo: &S,
    digest: &Digest,
    size: Option<u64>,
    budget: &Budget,
) -> Result<Vec<ImageReference>, PayloadCause> {
    let over = || {
        PayloadCause::Payload(PayloadError::LayerOverBudget {
            limit: budget.layer_bytes,
        })
    };
    if size.is_some_and(|s| s > budget.layer_bytes) {
        return Err(over());
    }
    let mut blob = repo
        .open_blob(digest)
        .await
        .map_err(PayloadCause::Registry)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let parser_budget = *budget;
    let parser = tokio::task::spawn_blocking(move || {
        read_image_references(
            ChannelReader {
                rx,
                chunk: Bytes::new(),
            },
            &parser_budget,
        )
    });
    let mut tx = Some(tx);
    let mut hasher = LayerHash::for_digest(digest);
    let mut seen: u64 = 0;
    let mut failure = None;
    while let Some(chunk) = blob.chunks.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(PayloadCause::Registry(e));
                break;
            }
        };
        seen += chunk.len() as u64;
        if seen > budget.layer_bytes {
            failure = Some(over());
            break;
        }
        if let Some(s) = size
            && seen > s
        {
            failure = Some(PayloadCause::Mismatch(format!("more than {s} bytes")));
            break;
        }
        hasher.update(&chunk);
        if let Some(sender) = &tx
            && sender.send(chunk).await.is_err()
        {
            // The parser is done (found image-references, or gave up): keep verifying.
            tx = None;
        }
    }
    drop(tx);
    let parsed = parser
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    if let Some(f) = failure {
        return Err(f);
    }
    if let Some(s) = size
        && seen != s
    {
        return Err(PayloadCause::Mismatch(format!(
            "{seen} bytes, announced {s}"
        )));
    }
    let actual = hasher.finish();
    if actual != digest.as_str() {
        return Err(PayloadCause::Mismatch(format!(
            "its bytes hash to {actual}"
        )));
    }
    parsed.map_err(PayloadCause::Payload)
}

/// The layer's hash in its digest's algorithm (sha256 or sha512).
enum LayerHash {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl LayerHash {
    fn for_digest(d: &Digest) -> LayerHash {
        match d.algorithm() {
            "sha512" => LayerHash::Sha512(sha2::Sha512::new()),
            _ => LayerHash::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            LayerHash::Sha256(h) => h.update(bytes),
            LayerHash::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            LayerHash::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            LayerHash::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// A blocking [`Read`] over the chunks an async task sends; ends when the sender is dropped.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.chunk = c,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}
