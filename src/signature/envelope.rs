//! The formats cosign stores signatures in, parsed from their exact bytes:
//!
//! - the legacy tag scheme: an OCI manifest under `sha256-<hex>.sig` whose layers are
//!   simple-signing payloads (`application/vnd.dev.cosign.simplesigning.v1+json`), each
//!   with its base64 signature in the annotation `dev.cosignproject.cosign/signature`;
//! - a sigstore bundle v0.3 (`application/vnd.dev.sigstore.bundle.v0.3+json`) attached as an
//!   OCI 1.1 referrer, what cosign 3 writes by default: a DSSE envelope whose signature is
//!   over the DSSE pre-authentication encoding of its payload, an in-toto statement (or a
//!   simple-signing payload) naming the image's digest.
//!
//! Nothing here verifies; [`super::judge`] does, with the message and claims found here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::digest::Digest;

/// Media type of a simple-signing payload (a `.sig` layer).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation of a `.sig` layer that holds the base64 signature of the layer's payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Media type (and artifact type) of a sigstore bundle v0.3.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Why a signature artifact cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not the JSON its format requires.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read (`simple-signing payload`, `sigstore bundle`, …).
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn malformed(what: &'static str, reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Malformed {
        what,
        reason: reason.into(),
    }
}

/// What a payload claims: the digests it names and the repositories (identities) it names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claim {
    /// `critical.image.docker-manifest-digest`, or the in-toto subjects' `sha256` digests.
    pub digests: Vec<String>,
    /// `critical.identity.docker-reference`, or the in-toto subjects' names.
    pub identities: Vec<String>,
}

/// A signed message: the exact bytes a signature is over, the signatures, and what the
/// payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The bytes signed: a simple-signing payload itself, or a DSSE envelope's
    /// pre-authentication encoding.
    pub message: Vec<u8>,
    /// The signatures over `message` (raw bytes, decoded from base64).
    pub signatures: Vec<Vec<u8>>,
    /// What the payload claims.
    pub claim: Claim,
}

/// One layer of a cosign `.sig` manifest: the payload blob to read, and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigLayer {
    /// The payload blob's digest.
    pub payload: Digest,
    /// The payload blob's declared size.
    pub size: Option<u64>,
    /// The signature from the annotation, decoded; `None` when the annotation is absent
    /// or not base64.
    pub signature: Option<Vec<u8>>,
}

/// The simple-signing layers of a cosign `.sig` manifest (layers of other media types are
/// left out).
pub fn sig_layers(manifest: &[u8]) -> Result<Vec<SigLayer>, EnvelopeError> {
    const WHAT: &str = "signature manifest";
    let json: Value =
        serde_json::from_slice(manifest).map_err(|e| malformed(WHAT, format!("not JSON ({e})")))?;
    let layers = json
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(WHAT, "no `layers` list"))?;
    let mut out = Vec::new();
    for layer in layers {
        if layer.get("mediaType").and_then(Value::as_str) != Some(SIMPLE_SIGNING_MEDIA_TYPE) {
            continue;
        }
        let digest = layer
            .get("digest")
            .and_then(Value::as_str)
            .and_then(|d| Digest::parse(d).ok())
            .ok_or_else(|| malformed(WHAT, "a layer without a valid `digest`"))?;
        let signature = layer
            .get("annotations")
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(|s| STANDARD.decode(s.trim()).ok());
        out.push(SigLayer {
            payload: digest,
            size: layer.get("size").and_then(Value::as_u64),
            signature,
        });
    }
    Ok(out)
}

/// The bundle layer of a referrer manifest, when the manifest is a sigstore bundle
/// (its `artifactType`, or a layer of the bundle media type).
pub fn bundle_layer(manifest: &[u8]) -> Option<Digest> {
    let json: Value = serde_json::from_slice(manifest).ok()?;
    let layers = json.get("layers")?.as_array()?;
    let is_bundle = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("application/vnd.dev.sigstore.bundle"))
    };
    let typed = is_bundle(json.get("artifactType"));
    layers
        .iter()
        .find(|l| typed || is_bundle(l.get("mediaType")))
        .and_then(|l| l.get("digest")?.as_str())
        .and_then(|d| Digest::parse(d).ok())
}

/// A simple-signing payload and the signature over it.
pub fn simple_signing(payload: &[u8], signature: Vec<u8>) -> Result<Signed, EnvelopeError> {
    Ok(Signed {
        claim: simple_signing_claim(payload)?,
        message: payload.to_vec(),
        signatures: vec![signature],
    })
}

fn simple_signing_claim(payload: &[u8]) -> Result<Claim, EnvelopeError> {
    const WHAT: &str = "simple-signing payload";
    let json: Value =
        serde_json::from_slice(payload).map_err(|e| malformed(WHAT, format!("not JSON ({e})")))?;
    let critical = json
        .get("critical")
        .ok_or_else(|| malformed(WHAT, "no `critical` section"))?;
    let digest = critical
        .pointer("/image/docker-manifest-digest")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(WHAT, "no `critical.image.docker-manifest-digest`"))?;
    let identity = critical
        .pointer("/identity/docker-reference")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(WHAT, "no `critical.identity.docker-reference`"))?;
    Ok(Claim {
        digests: vec![digest.to_string()],
        identities: vec![identity.to_string()],
    })
}

fn in_toto_claim(payload: &[u8]) -> Result<Claim, EnvelopeError> {
    const WHAT: &str = "in-toto statement";
    let json: Value =
        serde_json::from_slice(payload).map_err(|e| malformed(WHAT, format!("not JSON ({e})")))?;
    let subjects = json
        .get("subject")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(WHAT, "no `subject` list"))?;
    let mut claim = Claim::default();
    for s in subjects {
        if let Some(hex) = s.pointer("/digest/sha256").and_then(Value::as_str) {
            claim.digests.push(format!("sha256:{hex}"));
        }
        if let Some(name) = s.get("name").and_then(Value::as_str) {
            claim.identities.push(name.to_string());
        }
    }
    Ok(claim)
}

/// DSSE's pre-authentication encoding: what a DSSE signature is over.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A sigstore bundle (v0.3; v0.1 and v0.2 read the same) holding a DSSE envelope.
pub fn bundle(bytes: &[u8]) -> Result<Signed, EnvelopeError> {
    const WHAT: &str = "sigstore bundle";
    let json: Value =
        serde_json::from_slice(bytes).map_err(|e| malformed(WHAT, format!("not JSON ({e})")))?;
    let envelope = json.get("dsseEnvelope").ok_or_else(|| {
        malformed(
            WHAT,
            "no `dsseEnvelope` (a bundle of a message signature does not sign an image)",
        )
    })?;
    let payload_type = envelope
        .get("payloadType")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(WHAT, "no `dsseEnvelope.payloadType`"))?;
    let payload = envelope
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|p| STANDARD.decode(p).ok())
        .ok_or_else(|| malformed(WHAT, "no base64 `dsseEnvelope.payload`"))?;
    let signatures: Vec<Vec<u8>> = envelope
        .get("signatures")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.get("sig")?.as_str())
                .filter_map(|s| STANDARD.decode(s).ok())
                .collect()
        })
        .unwrap_or_default();
    let claim = match payload_type {
        IN_TOTO_PAYLOAD_TYPE => in_toto_claim(&payload)?,
        SIMPLE_SIGNING_MEDIA_TYPE => simple_signing_claim(&payload)?,
        other => {
            return Err(malformed(
                WHAT,
                format!("DSSE payload type `{other}` names no image"),
            ));
        }
    };
    Ok(Signed {
        message: pae(payload_type, &payload),
        signatures,
        claim,
    })
}
