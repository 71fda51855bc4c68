//! What is attached to a digest, found and copied: cosign's tag-scheme artifacts
//! (`sha256-<hex>.sig`, `.att`, `.sbom`) and OCI 1.1 referrers (manifests whose `subject`
//! is the digest).
//!
//! - **Discovery** ([`discover`]): each tag-scheme tag is resolved; referrers come from the
//!   referrers API (`GET /v2/<name>/referrers/<digest>`, every `Link` page) where the
//!   repository serves it, else from the referrers tag schema (the image index under the
//!   tag `sha256-<hex>`).
//! - **Copy** ([`copy_attached`]), byte-exact, content before names: each tag-scheme
//!   artifact's content, then its tag; each referrer (its subject first, when the target
//!   lacks it), by digest; then, where the target serves no referrers API, the target's
//!   `sha256-<hex>` index, merged with what it already lists (entries another tool put
//!   there are kept). A target whose tag already holds the source's digest, and a referrer
//!   the target has, are not written again: a second copy writes nothing.
//! - **Signatures** ([`signature_candidates`]): the cosign signatures among them, read into
//!   the messages [`crate::signature::judge`] verifies.
//!
//! It takes any digest: a release image's, or (the same call) a payload component's.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::TryStreamExt as _;
use serde_json::Value;

use super::mirror::{Mirror, MirrorEndpoint, MirrorError, parse_manifest};
use super::{RawManifest, RegistryError};
use crate::digest::Digest;
use crate::signature::{Candidate, envelope};

/// The tag-scheme suffixes cosign writes beside an image.
pub const TAG_SCHEME_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// Media type of an image index (the referrers tag schema's index).
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The largest signature payload or bundle read to verify.
const MAX_SIGNATURE_BLOB: usize = 1024 * 1024;

/// `sha256-<hex>.<suffix>`.
pub fn tag_scheme_tag(digest: &Digest, suffix: &str) -> String {
    format!("{}-{}.{suffix}", digest.algorithm(), digest.hex())
}

/// `sha256-<hex>`: the referrers tag schema's tag.
pub fn referrers_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.hex())
}

/// How referrers were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The referrers API answered.
    Api,
    /// No API: the `sha256-<hex>` index (absent or not).
    TagSchema,
}

/// One referrer: its descriptor as listed, and its digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrer {
    /// The digest of the referring manifest.
    pub digest: Digest,
    /// `artifactType` (or, lacking it, the media type) as listed.
    pub artifact_type: Option<String>,
    /// The descriptor exactly as listed (with its annotations).
    pub descriptor: Value,
}

/// What is attached to one digest in one repository.
#[derive(Debug, Clone, PartialEq)]
pub struct Attached {
    /// Tag-scheme artifacts present: (tag, the digest it holds).
    pub tags: Vec<(String, Digest)>,
    /// OCI 1.1 referrers.
    pub referrers: Vec<Referrer>,
    /// Where the referrers came from.
    pub via: Via,
}

impl Attached {
    /// Whether nothing is attached.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.referrers.is_empty()
    }
}

/// Why attached artifacts could not be found or copied.
#[derive(Debug, thiserror::Error)]
pub enum AttachedError {
    /// A request failed.
    #[error("{context}")]
    Registry {
        /// What was being done (repository, digest or tag).
        context: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },
    /// Copying an artifact's content failed.
    #[error(transparent)]
    Copy(Arc<MirrorError>),
    /// An index or manifest that is not what its place requires.
    #[error("{context}: {reason}")]
    Malformed {
        /// Which manifest.
        context: String,
        /// What is wrong.
        reason: String,
    },
}

fn at(context: impl FnOnce() -> String) -> impl FnOnce(RegistryError) -> AttachedError {
    move |source| AttachedError::Registry {
        context: context(),
        source,
    }
}

fn referrer_of(descriptor: &Value) -> Option<Referrer> {
    let digest = Digest::parse(descriptor.get("digest")?.as_str()?).ok()?;
    let artifact_type = descriptor
        .get("artifactType")
        .or_else(|| descriptor.get("mediaType"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Some(Referrer {
        digest,
        artifact_type,
        descriptor: descriptor.clone(),
    })
}

/// The `manifests` of an index's bytes.
fn index_entries(context: &str, bytes: &[u8]) -> Result<Vec<Value>, AttachedError> {
    let json: Value = serde_json::from_slice(bytes).map_err(|e| AttachedError::Malformed {
        context: context.to_string(),
        reason: format!("not JSON ({e})"),
    })?;
    Ok(json
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// What a caller already knows of a repository, so that discovering what is attached to
/// many digests of it costs little: its tag list (then only the tags it lists are read) and
/// whether it serves the referrers API.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    /// Every tag of the repository (`None`: unknown, each tag is resolved).
    pub tags: Option<Arc<BTreeSet<String>>>,
    /// Whether the repository serves the referrers API (`None`: ask it).
    pub api: Option<bool>,
}

/// Finds what is attached to `digest` in `repo`.
pub async fn discover<E: MirrorEndpoint>(
    repo: &E,
    digest: &Digest,
) -> Result<Attached, AttachedError> {
    discover_with(repo, digest, &Hints::default()).await
}

/// [`discover`], with what is known of `repo` already: with its tag list, a tag it does not
/// list is not read; with `api: Some(false)`, the referrers API is not asked.
pub async fn discover_with<E: MirrorEndpoint>(
    repo: &E,
    digest: &Digest,
    hints: &Hints,
) -> Result<Attached, AttachedError> {
    let listed = |tag: &str| hints.tags.as_ref().is_none_or(|t| t.contains(tag));
    let mut tags = Vec::new();
    for suffix in TAG_SCHEME_SUFFIXES {
        let tag = tag_scheme_tag(digest, suffix);
        if !listed(&tag) {
            continue;
        }
        if let Some(d) = repo
            .resolve_tag(&tag)
            .await
            .map_err(at(|| format!("resolving {}:{tag}", repo.name())))?
        {
            tags.push((tag, d));
        }
    }
    let api = if hints.api == Some(false) {
        None
    } else {
        repo.referrers_api(digest).await.map_err(at(|| {
            format!("listing referrers of {}@{digest}", repo.name())
        }))?
    };
    let (entries, via) = match api {
        Some(list) => (list, Via::Api),
        None if listed(&referrers_tag(digest)) => {
            (tag_schema_entries(repo, digest).await?, Via::TagSchema)
        }
        None => (Vec::new(), Via::TagSchema),
    };
    let mut seen = BTreeSet::new();
    let referrers = entries
        .iter()
        .filter_map(referrer_of)
        .filter(|r| seen.insert(r.digest.clone()))
        .collect();
    Ok(Attached {
        tags,
        referrers,
        via,
    })
}

/// The entries of `repo`'s `sha256-<hex>` index (none when the tag is absent).
async fn tag_schema_entries<E: MirrorEndpoint>(
    repo: &E,
    digest: &Digest,
) -> Result<Vec<Value>, AttachedError> {
    let tag = referrers_tag(digest);
    let context = format!("{}:{tag}", repo.name());
    match repo
        .get_manifest(&tag)
        .await
        .map_err(at(|| format!("reading {context}")))?
    {
        Some(raw) => index_entries(&context, &raw.bytes),
        None => Ok(Vec::new()),
    }
}

/// What [`copy_attached`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Tag-scheme tags written (created or moved to the source's digest).
    pub tags: Vec<String>,
    /// Referrers copied by digest.
    pub referrers: Vec<Digest>,
    /// Whether the target's `sha256-<hex>` index was written (no referrers API there).
    pub index_written: bool,
    /// Whether the target serves the referrers API (`None`: not asked, nothing to copy).
    pub target_api: Option<bool>,
}

impl CopyReport {
    /// Whether anything was written.
    pub fn wrote(&self) -> bool {
        !self.tags.is_empty() || !self.referrers.is_empty() || self.index_written
    }
}

/// The manifest as it goes out under a tag: its own format's media type, bytes untouched.
fn as_sent(raw: RawManifest) -> RawManifest {
    match parse_manifest(&raw.media_type, &raw.bytes) {
        Ok(p) => RawManifest {
            media_type: p.kind.media_type().to_string(),
            ..raw
        },
        Err(_) => raw,
    }
}

/// Copies what `attached` (found in `source` by [`discover`]) lists for `digest` into
/// `target`, byte-exact and content before names. `label` names the image in errors.
pub async fn copy_attached<S: MirrorEndpoint, T: MirrorEndpoint>(
    mirror: &Arc<Mirror>,
    source: &S,
    target: &T,
    digest: &Digest,
    attached: &Attached,
    label: &str,
) -> Result<CopyReport, AttachedError> {
    let mut report = CopyReport::default();
    for (tag, d) in &attached.tags {
        let live = target
            .resolve_tag(tag)
            .await
            .map_err(at(|| format!("resolving {}:{tag}", target.name())))?;
        if live.as_ref() == Some(d) {
            continue;
        }
        let what = format!("{label} ({tag})");
        let raw = mirror
            .copy_image_content(source, target, d, &what, live.is_none())
            .await
            .map_err(AttachedError::Copy)?;
        target
            .put_manifest(tag, &as_sent(raw))
            .await
            .map_err(at(|| format!("writing {}:{tag}", target.name())))?;
        report.tags.push(tag.clone());
    }
    if attached.referrers.is_empty() {
        return Ok(report);
    }
    let target_listed = target.referrers_api(digest).await.map_err(at(|| {
        format!("listing referrers of {}@{digest}", target.name())
    }))?;
    report.target_api = Some(target_listed.is_some());
    let mut subject_present = false;
    for r in &attached.referrers {
        let present = target
            .has_manifest(&r.digest)
            .await
            .map_err(at(|| format!("checking {}@{}", target.name(), r.digest)))?;
        if present {
            continue;
        }
        // A referrer's subject goes first (by digest: content, not a name).
        if !subject_present {
            mirror
                .copy_image(source, target, digest, label)
                .await
                .map_err(AttachedError::Copy)?;
            subject_present = true;
        }
        let what = format!("{label} (referrer {})", r.digest.short());
        mirror
            .copy_image(source, target, &r.digest, &what)
            .await
            .map_err(AttachedError::Copy)?;
        report.referrers.push(r.digest.clone());
    }
    if target_listed.is_none() {
        report.index_written = merge_tag_schema_index(target, digest, &attached.referrers).await?;
    }
    Ok(report)
}

/// Adds the `referrers` the target's `sha256-<hex>` index lacks (by digest), keeping every
/// entry it lists; writes it only when something was added. Returns whether it wrote.
async fn merge_tag_schema_index<T: MirrorEndpoint>(
    target: &T,
    digest: &Digest,
    referrers: &[Referrer],
) -> Result<bool, AttachedError> {
    let tag = referrers_tag(digest);
    let context = format!("{}:{tag}", target.name());
    let live = target
        .get_manifest(&tag)
        .await
        .map_err(at(|| format!("reading {context}")))?;
    let mut entries = match &live {
        Some(raw) => index_entries(&context, &raw.bytes)?,
        None => Vec::new(),
    };
    let listed: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e.get("digest")?.as_str().map(str::to_string))
        .collect();
    let mut added = false;
    for r in referrers {
        if !listed.contains(r.digest.as_str()) {
            entries.push(r.descriptor.clone());
            added = true;
        }
    }
    if !added {
        return Ok(false);
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": entries,
    });
    let bytes =
        bytes::Bytes::from(
            serde_json::to_vec(&index).map_err(|e| AttachedError::Malformed {
                context: context.clone(),
                reason: e.to_string(),
            })?,
        );
    let raw = RawManifest {
        media_type: INDEX_MEDIA_TYPE.to_string(),
        digest: Digest::sha256_of(&bytes),
        bytes,
    };
    target
        .put_manifest(&tag, &raw)
        .await
        .map_err(at(|| format!("writing {context}")))?;
    Ok(true)
}

/// Reads a small blob whole (at most [`MAX_SIGNATURE_BLOB`] bytes), checked against its
/// digest.
async fn small_blob<E: MirrorEndpoint>(repo: &E, digest: &Digest) -> Result<Vec<u8>, String> {
    let blob = repo.open_blob(digest).await.map_err(|e| e.to_string())?;
    if blob.size.is_some_and(|s| s > MAX_SIGNATURE_BLOB as u64) {
        return Err(format!("blob {digest} is over {MAX_SIGNATURE_BLOB} bytes"));
    }
    let mut out = Vec::new();
    let mut chunks = blob.chunks;
    while let Some(chunk) = chunks.try_next().await.map_err(|e| e.to_string())? {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_SIGNATURE_BLOB {
            return Err(format!("blob {digest} is over {MAX_SIGNATURE_BLOB} bytes"));
        }
    }
    if Digest::sha256_of(&out) != *digest {
        return Err(format!("blob {digest} does not match its digest"));
    }
    Ok(out)
}

/// Listed artifact types that say nothing of what the referrer is: the OCI empty config's
/// type (what a registry listing the config's media type shows for an artifact) and the
/// manifest media types (the fallback of a descriptor without `artifactType`).
const UNTYPED_LISTINGS: [&str; 3] = [
    "application/vnd.oci.empty.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// Whether `t` is a sigstore bundle's media type (any version).
fn is_bundle_type(t: &str) -> bool {
    t.starts_with("application/vnd.dev.sigstore.bundle")
}

/// A manifest's own `artifactType`, or else its config's media type (as the OCI 1.1
/// referrers API lists it).
fn own_artifact_type(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("artifactType")
        .or_else(|| v.get("config").and_then(|c| c.get("mediaType")))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn unreadable(place: String, reason: String) -> Candidate {
    Candidate {
        place,
        signed: Err(envelope::EnvelopeError::Malformed {
            what: "signature artifact",
            reason,
        }),
    }
}

/// The cosign signatures among `attached` (in `repo`): every simple-signing layer of the
/// `.sig` manifest, and every sigstore bundle referrer. A request that fails is an error;
/// an artifact that cannot be read is a candidate that fails to verify.
pub async fn signature_candidates<E: MirrorEndpoint>(
    repo: &E,
    attached: &Attached,
) -> Result<Vec<Candidate>, AttachedError> {
    let mut out = Vec::new();
    for (tag, d) in attached.tags.iter().filter(|(t, _)| t.ends_with(".sig")) {
        let raw = repo
            .get_manifest(d.as_str())
            .await
            .map_err(at(|| format!("reading {}:{tag}", repo.name())))?;
        let Some(raw) = raw else { continue };
        let layers = match envelope::sig_layers(&raw.bytes) {
            Ok(l) => l,
            Err(e) => {
                out.push(Candidate {
                    place: tag.clone(),
                    signed: Err(e),
                });
                continue;
            }
        };
        for (i, layer) in layers.into_iter().enumerate() {
            let place = format!("{tag} layer {i}");
            let Some(signature) = layer.signature else {
                out.push(unreadable(
                    place,
                    format!("no base64 `{}` annotation", envelope::SIGNATURE_ANNOTATION),
                ));
                continue;
            };
            match small_blob(repo, &layer.payload).await {
                Ok(payload) => out.push(Candidate {
                    place,
                    signed: envelope::simple_signing(&payload, signature),
                }),
                Err(reason) => out.push(unreadable(place, reason)),
            }
        }
    }
    for r in &attached.referrers {
        let listed = r.artifact_type.as_deref();
        let is_bundle = listed.is_some_and(is_bundle_type);
        if !is_bundle && !listed.is_none_or(|t| UNTYPED_LISTINGS.contains(&t)) {
            continue;
        }
        let place = format!("referrer {}", r.digest);
        let raw = repo
            .get_manifest(r.digest.as_str())
            .await
            .map_err(at(|| format!("reading {}@{}", repo.name(), r.digest)))?;
        let Some(raw) = raw else { continue };
        // Listed without its own type (go-containerregistry's registry lists the config's
        // media type, the OCI empty type for cosign's bundles): the manifest says.
        if !is_bundle && !own_artifact_type(&raw.bytes).is_some_and(|t| is_bundle_type(&t)) {
            continue;
        }
        let Some(layer) = envelope::bundle_layer(&raw.bytes) else {
            out.push(unreadable(place, "no bundle layer".to_string()));
            continue;
        };
        match small_blob(repo, &layer).await {
            Ok(bytes) => out.push(Candidate {
                place,
                signed: envelope::bundle(&bytes),
            }),
            Err(reason) => out.push(unreadable(place, reason)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_artifact_type_prefers_the_field_over_the_config_type() {
        let bundle = br#"{"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","config":{"mediaType":"application/vnd.oci.empty.v1+json"}}"#;
        assert_eq!(
            own_artifact_type(bundle).as_deref(),
            Some("application/vnd.dev.sigstore.bundle.v0.3+json")
        );
        let sbom = br#"{"config":{"mediaType":"application/spdx+json"}}"#;
        assert_eq!(
            own_artifact_type(sbom).as_deref(),
            Some("application/spdx+json")
        );
        assert_eq!(own_artifact_type(b"not json"), None);
    }
}
