//! Cosign signatures made in tests, in cosign's exact formats: the legacy tag scheme
//! (`sha256-<hex>.sig`: an OCI manifest whose layers are simple-signing payloads, each
//! signature in the `dev.cosignproject.cosign/signature` annotation) and a sigstore bundle
//! v0.3 (DSSE over an in-toto statement) attached as an OCI 1.1 referrer, with the referrers
//! tag schema index (`sha256-<hex>`) for registries without the referrers API.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use relsync::digest::Digest;

use super::{Content, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Pusher};

/// Cosign's simple-signing media type.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The sigstore bundle v0.3 media type (and artifact type).
pub const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The OCI empty descriptor's media type.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// An ECDSA P-256 key pair, as `cosign generate-key-pair` makes.
pub struct CosignKey {
    key: p256::ecdsa::SigningKey,
}

impl CosignKey {
    /// A fresh key.
    pub fn generate() -> CosignKey {
        CosignKey {
            key: p256::ecdsa::SigningKey::random(&mut rand_core::OsRng),
        }
    }

    /// The public key, PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    /// An ASN.1 DER ECDSA-SHA256 signature of `message`, as cosign writes it.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.key.sign(message);
        sig.to_der().as_bytes().to_vec()
    }
}

/// A simple-signing payload, byte for byte as cosign writes it.
pub fn simple_signing_payload(digest: &Digest, identity: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{identity}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

/// `sha256-<hex>.<suffix>`.
pub fn sig_tag(digest: &Digest, suffix: &str) -> String {
    format!("sha256-{}.{suffix}", digest.hex())
}

/// Pushes a legacy cosign signature of `subject` into `repo` under `sha256-<hex>.sig`: its
/// payload names `payload_digest` and `identity`, signed by `key`. Returns the `.sig`
/// manifest's digest.
pub async fn push_legacy_signature(
    pusher: &Pusher,
    repo: &str,
    subject: &Digest,
    payload_digest: &Digest,
    identity: &str,
    key: &CosignKey,
) -> Digest {
    let payload = simple_signing_payload(payload_digest, identity);
    let payload_blob = pusher.push_blob(repo, &payload).await;
    let config = format!(
        r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{payload_blob}"]}},"config":{{}}}}"#
    );
    pusher.push_blob(repo, config.as_bytes()).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config.len(), "digest": Digest::sha256_of(config.as_bytes()).to_string()},
        "layers": [{
            "mediaType": SIMPLE_SIGNING,
            "size": payload.len(),
            "digest": payload_blob.to_string(),
            "annotations": {"dev.cosignproject.cosign/signature": STANDARD.encode(key.sign(&payload))},
        }],
    });
    let content = Content {
        media_type: OCI_MANIFEST.to_string(),
        bytes: serde_json::to_vec(&manifest).unwrap(),
    };
    pusher
        .push_manifest(repo, &sig_tag(subject, "sig"), &content)
        .await
}

/// A sigstore bundle v0.3 whose DSSE envelope signs an in-toto statement naming
/// `digest` and `name`, as cosign 3 writes it.
pub fn bundle_bytes(digest: &Digest, name: &str, key: &CosignKey) -> Vec<u8> {
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"{name}","digest":{{"sha256":"{}"}}}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{{}}}}"#,
        digest.hex()
    );
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        statement.len()
    )
    .into_bytes();
    pae.extend_from_slice(statement.as_bytes());
    serde_json::to_vec(&serde_json::json!({
        "mediaType": BUNDLE,
        "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": STANDARD.encode(&statement),
            "payloadType": payload_type,
            "signatures": [{"sig": STANDARD.encode(key.sign(&pae)), "keyid": ""}],
        },
    }))
    .unwrap()
}

/// A referrer pushed by [`push_bundle_referrer`].
pub struct PushedReferrer {
    /// The referrer manifest's digest.
    pub digest: Digest,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its descriptor, as an index lists it (with `artifactType`).
    pub descriptor: serde_json::Value,
}

/// Pushes a sigstore bundle signing `subject` (of media type `subject_type` and size
/// `subject_size`) as an OCI 1.1 referrer of it, by digest. With `tag_schema`, also writes
/// the referrers tag schema index `sha256-<hex>` listing it (and `also`, entries already
/// there), as a client does for a registry without the referrers API.
#[allow(clippy::too_many_arguments)]
pub async fn push_bundle_referrer(
    pusher: &Pusher,
    repo: &str,
    subject: &Digest,
    subject_type: &str,
    subject_size: usize,
    name: &str,
    key: &CosignKey,
    tag_schema: bool,
) -> PushedReferrer {
    let bundle = bundle_bytes(subject, name, key);
    let layer = pusher.push_blob(repo, &bundle).await;
    pusher.push_blob(repo, b"{}").await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE,
        "config": {"mediaType": OCI_EMPTY, "size": 2, "digest": Digest::sha256_of(b"{}").to_string()},
        "layers": [{"mediaType": BUNDLE, "size": bundle.len(), "digest": layer.to_string()}],
        "subject": {"mediaType": subject_type, "size": subject_size, "digest": subject.to_string()},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"},
    });
    let content = Content {
        media_type: OCI_MANIFEST.to_string(),
        bytes: serde_json::to_vec(&manifest).unwrap(),
    };
    let digest = pusher
        .push_manifest(repo, &content.digest().to_string(), &content)
        .await;
    let descriptor = serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest.to_string(),
        "size": content.bytes.len(),
        "artifactType": BUNDLE,
    });
    if tag_schema {
        push_referrers_index(pusher, repo, subject, std::slice::from_ref(&descriptor)).await;
    }
    PushedReferrer {
        digest,
        bytes: content.bytes,
        descriptor,
    }
}

/// Writes the referrers tag schema index `sha256-<hex>` of `subject` listing `entries`.
pub async fn push_referrers_index(
    pusher: &Pusher,
    repo: &str,
    subject: &Digest,
    entries: &[serde_json::Value],
) -> Digest {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries,
    });
    let content = Content {
        media_type: OCI_INDEX.to_string(),
        bytes: serde_json::to_vec(&index).unwrap(),
    };
    pusher
        .push_manifest(repo, &format!("sha256-{}", subject.hex()), &content)
        .await
}

/// A Policy document requiring signatures by `keys` (name, PEM).
pub fn signature_policy(keys: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "apiVersion: relsync.dev/v1alpha1\nkind: Policy\nmetadata: {name: signed}\nspec:\n  signatures:\n    require: true\n    keys:\n",
    );
    for (name, pem) in keys {
        out.push_str(&format!("      - name: {name}\n        publicKey: |\n"));
        for line in pem.lines() {
            out.push_str(&format!("          {line}\n"));
        }
    }
    out
}
