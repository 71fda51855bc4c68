//! Pure: cosign signature verification, key-based and offline (no transparency log).
//!
//! A release may be published only when its digest has a cosign signature that verifies
//! with one of the Policy's trusted keys and whose payload names that digest
//! (`critical.image.docker-manifest-digest`) and the stream's source or target repository
//! (`critical.identity.docker-reference`; an in-toto statement as cosign 3 writes it names
//! no repository, and then only the digest is bound, as `cosign verify` binds it).
//! Signatures come from the legacy `.sig` tag
//! ([`envelope::sig_layers`], [`envelope::simple_signing`]) or a sigstore bundle attached
//! as a referrer ([`envelope::bundle`]); the registry adapter
//! ([`crate::registry::referrers`]) reads them, [`judge`] decides.
//!
//! [`judge`] tells apart why a release fails (the first reason that holds, from the most
//! advanced candidate): no signature at all, none by a trusted key, a trusted signature of
//! another digest (a replayed signature), a trusted signature of this digest naming another
//! repository.

pub mod envelope;
mod key;
#[cfg(test)]
mod tests;

pub use envelope::{Claim, EnvelopeError, Signed};
pub use key::{KeyError, PublicKey};

use crate::digest::Digest;

/// A key of the Policy's `signatures.keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// `name`, shown in verdicts.
    pub name: String,
    /// `publicKey`, parsed.
    pub key: PublicKey,
}

/// One signature artifact found for a digest, read (or not) into a signed message.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Where it was found, for messages (`sha256-….sig layer 0`, `referrer sha256:…`).
    pub place: String,
    /// The signed message, or why it could not be read.
    pub signed: Result<Signed, EnvelopeError>,
}

/// Why a release is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Nothing signs the digest: no `.sig` tag and no signature referrer.
    #[error("no signature")]
    NoSignature,
    /// Signatures exist but none verifies with a trusted key.
    #[error("no trusted key: {found} signature(s) found, none verifies with {keys}")]
    NoTrustedKey {
        /// How many signatures were tried.
        found: usize,
        /// The trusted keys' names, for the message.
        keys: String,
    },
    /// A trusted signature whose payload names another digest (a signature replayed
    /// from another image).
    #[error("the payload names another digest, {named} (a signature of another image)")]
    OtherDigest {
        /// The digest the payload names.
        named: String,
    },
    /// A trusted signature of this digest naming another repository.
    #[error("identity mismatch: the payload names {named}, not {expected}")]
    IdentityMismatch {
        /// The repository the payload names.
        named: String,
        /// The repositories it could have named (the stream's source and target).
        expected: String,
    },
    /// Signature artifacts exist but none could be read.
    #[error("unreadable signature at {place}: {reason}")]
    Malformed {
        /// Where.
        place: String,
        /// What is wrong.
        reason: String,
    },
}

/// The outcome of [`judge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A trusted signature of this digest and repository.
    Verified {
        /// The name of the key that verified it.
        key: String,
        /// Where the signature was found.
        place: String,
    },
    /// Not trusted, and why.
    Refused(Refusal),
}

impl Verdict {
    /// Whether the release is trusted.
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified { .. })
    }
}

/// A repository reference as a docker-reference compares: without a `@digest` or `:tag`,
/// Docker Hub's aliases made one.
pub fn normalize_reference(reference: &str) -> String {
    let r = reference.split('@').next().unwrap_or(reference);
    let r = match r.rfind(':') {
        Some(i) if !r[i..].contains('/') && r[..i].contains('/') => &r[..i],
        _ => r,
    };
    let r = r
        .strip_prefix("index.docker.io/")
        .or_else(|| r.strip_prefix("registry-1.docker.io/"))
        .map(|rest| format!("docker.io/{rest}"))
        .unwrap_or_else(|| r.to_string());
    r.to_ascii_lowercase()
}

/// Judges the signatures found for `digest`: verified when one verifies with a trusted
/// key, names `digest`, and names one of `identities` (the stream's source and target).
pub fn judge(
    digest: &Digest,
    identities: &[&str],
    candidates: &[Candidate],
    keys: &[TrustedKey],
) -> Verdict {
    if candidates.is_empty() {
        return Verdict::Refused(Refusal::NoSignature);
    }
    let wanted: Vec<String> = identities.iter().map(|i| normalize_reference(i)).collect();
    // The most advanced failure: a trusted signature with the wrong identity says more
    // than one of another digest, which says more than an untrusted one.
    let mut best: Option<(u8, Refusal)> = None;
    let mut keep = |rank: u8, r: Refusal| {
        if best.as_ref().is_none_or(|(b, _)| rank > *b) {
            best = Some((rank, r));
        }
    };
    let mut tried = 0usize;
    for c in candidates {
        let signed = match &c.signed {
            Ok(s) => s,
            Err(e) => {
                keep(
                    0,
                    Refusal::Malformed {
                        place: c.place.clone(),
                        reason: e.to_string(),
                    },
                );
                continue;
            }
        };
        tried += signed.signatures.len().max(1);
        let Some(key) = keys.iter().find(|k| {
            signed
                .signatures
                .iter()
                .any(|s| k.key.verifies(&signed.message, s))
        }) else {
            keep(
                1,
                Refusal::NoTrustedKey {
                    found: tried,
                    keys: if keys.is_empty() {
                        "no key (the policy lists none)".to_string()
                    } else {
                        keys.iter()
                            .map(|k| k.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                },
            );
            continue;
        };
        if !signed.claim.digests.iter().any(|d| d == digest.as_str()) {
            keep(
                2,
                Refusal::OtherDigest {
                    named: signed
                        .claim
                        .digests
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "no digest".to_string()),
                },
            );
            continue;
        }
        // cosign 3's in-toto statement names no repository (its subject is the digest
        // only): then the digest alone is bound, as `cosign verify` does.
        if !signed.claim.identities.is_empty()
            && !signed
                .claim
                .identities
                .iter()
                .any(|i| wanted.contains(&normalize_reference(i)))
        {
            keep(
                3,
                Refusal::IdentityMismatch {
                    named: signed
                        .claim
                        .identities
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "no repository".to_string()),
                    expected: identities.join(" or "),
                },
            );
            continue;
        }
        return Verdict::Verified {
            key: key.name.clone(),
            place: c.place.clone(),
        };
    }
    // `NoTrustedKey` counts every signature tried, not only those before it was kept.
    Verdict::Refused(match best {
        Some((_, Refusal::NoTrustedKey { keys, .. })) => {
            Refusal::NoTrustedKey { found: tried, keys }
        }
        Some((_, r)) => r,
        None => Refusal::NoSignature,
    })
}
