//! Trusted public keys: PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo) as
//! `cosign generate-key-pair` writes it. ECDSA P-256 (cosign's default) and Ed25519; the
//! cryptography is RustCrypto's (`p256`, `ed25519-dalek`), none is written here.

use p256::pkcs8::DecodePublicKey as _;
use spki::der::DecodePem as _;

/// Why a PEM public key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a PEM `PUBLIC KEY` block, or its contents are not a SubjectPublicKeyInfo.
    #[error("not a PEM public key (`-----BEGIN PUBLIC KEY-----`): {0}")]
    NotPem(String),
    /// A well-formed key of a type relsync does not verify with.
    #[error(
        "unsupported key type {algorithm}: relsync verifies ECDSA P-256 (cosign generate-key-pair) and Ed25519 keys"
    )]
    Unsupported {
        /// The algorithm, by name where known, else its OID.
        algorithm: String,
    },
}

/// A public key a signature may be verified with.
#[derive(Clone)]
pub struct PublicKey {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    EcdsaP256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.algorithm())
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::EcdsaP256(a), Kind::EcdsaP256(b)) => a == b,
            (Kind::Ed25519(a), Kind::Ed25519(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for PublicKey {}

/// Known algorithm OIDs, for naming an unsupported key.
fn algorithm_name(oid: &str, parameters: Option<String>) -> String {
    match oid {
        "1.2.840.113549.1.1.1" => "RSA".to_string(),
        "1.2.840.10045.2.1" => match parameters.as_deref() {
            Some("1.3.132.0.34") => "ECDSA P-384".to_string(),
            Some("1.3.132.0.35") => "ECDSA P-521".to_string(),
            Some(curve) => format!("ECDSA on curve {curve}"),
            None => "ECDSA (no curve)".to_string(),
        },
        "1.3.101.113" => "Ed448".to_string(),
        other => format!("with OID {other}"),
    }
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo): ECDSA P-256 or Ed25519.
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        let pem = pem.trim();
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey {
                kind: Kind::EcdsaP256(k),
            });
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey {
                kind: Kind::Ed25519(k),
            });
        }
        let info = spki::SubjectPublicKeyInfoOwned::from_pem(pem.as_bytes())
            .map_err(|e| KeyError::NotPem(e.to_string()))?;
        let parameters = info
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<spki::ObjectIdentifier>().ok())
            .map(|o| o.to_string());
        Err(KeyError::Unsupported {
            algorithm: algorithm_name(&info.algorithm.oid.to_string(), parameters),
        })
    }

    /// `ECDSA P-256` or `Ed25519`.
    pub fn algorithm(&self) -> &'static str {
        match self.kind {
            Kind::EcdsaP256(_) => "ECDSA P-256",
            Kind::Ed25519(_) => "Ed25519",
        }
    }

    /// Whether `signature` is this key's signature of `message`: ECDSA P-256 with SHA-256
    /// (the signature ASN.1 DER, as cosign writes it, or the fixed 64-byte form), or
    /// Ed25519 over the message itself (strict verification).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.kind {
            Kind::EcdsaP256(k) => {
                use p256::ecdsa::signature::Verifier as _;
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .or_else(|_| p256::ecdsa::Signature::from_slice(signature));
                sig.is_ok_and(|s| k.verify(message, &s).is_ok())
            }
            Kind::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify_strict(message, &s).is_ok()),
        }
    }
}
