//! Content digests (`sha256:<64 hex>`), the identity of everything relsync copies and tags;
//! a release is pinned by sha256 only ([`Digest::parse_release`]).

use std::fmt;
use std::str::FromStr;

/// A validated OCI content digest. Only `sha256` and `sha512` are accepted, with lowercase
/// hex of the right length, as the OCI image spec requires for registered algorithms.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("digest `{0}` has no algorithm prefix (expected `sha256:<64 hex digits>`)")]
    NoAlgorithm(String),
    /// An algorithm other than sha256/sha512.
    #[error("digest `{0}` uses an unsupported algorithm (expected sha256 or sha512)")]
    Algorithm(String),
    /// Wrong length or non-lowercase-hex characters.
    #[error("digest `{0}` is not {1} lowercase hex digits after the algorithm")]
    Hex(String, usize),
    /// A well-formed digest of an algorithm other than sha256 where a release is pinned.
    #[error(
        "release `digest` `{0}` is not sha256: a tag resolves to the sha256 digest of its manifest, so a release pinned by any other algorithm could never be compared with what is copied and tagged; pin it by its sha256 digest"
    )]
    NotSha256(String),
}

impl Digest {
    /// Parses and validates a digest string.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(DigestError::NoAlgorithm(s.to_string()));
        };
        let len = match algo {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(DigestError::Algorithm(s.to_string())),
        };
        if hex.len() != len
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Hex(s.to_string(), len));
        }
        Ok(Digest(s.to_string()))
    }

    /// Parses the `digest` of a release: a valid digest that is also sha256. Registries
    /// (distribution among them) name a manifest by its sha256, the digest a tag resolves to
    /// and the one compared before a tag is moved; a `sha512:` pin would be accepted and
    /// then checked against something else, so it is refused
    /// ([`DigestError::NotSha256`]).
    pub fn parse_release(s: &str) -> Result<Self, DigestError> {
        let digest = Digest::parse(s)?;
        if digest.algorithm() != "sha256" {
            return Err(DigestError::NotSha256(s.to_string()));
        }
        Ok(digest)
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Digest(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(bytes))
        ))
    }

    /// The whole digest, `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The algorithm part (`sha256`).
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or("")
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or("")
    }

    /// A short form for tables: `sha256:` plus the first 12 hex digits.
    pub fn short(&self) -> String {
        format!(
            "{}:{}",
            self.algorithm(),
            &self.hex()[..12.min(self.hex().len())]
        )
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sha256_and_rejects_bad_forms() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&ok).unwrap().as_str(), ok);
        assert!(matches!(
            Digest::parse("abc"),
            Err(DigestError::NoAlgorithm(_))
        ));
        assert!(matches!(
            Digest::parse("md5:00"),
            Err(DigestError::Algorithm(_))
        ));
        assert!(matches!(
            Digest::parse(&format!("sha256:{}", "A".repeat(64))),
            Err(DigestError::Hex(..))
        ));
        assert!(matches!(
            Digest::parse("sha256:abc"),
            Err(DigestError::Hex(..))
        ));
    }

    #[test]
    fn a_release_digest_must_be_sha256() {
        let sha256 = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse_release(&sha256).unwrap().as_str(), sha256);
        let sha512 = format!("sha512:{}", "a".repeat(128));
        assert!(Digest::parse(&sha512).is_ok());
        let err = Digest::parse_release(&sha512).unwrap_err();
        assert_eq!(err, DigestError::NotSha256(sha512.clone()));
        assert!(
            err.to_string()
                .starts_with(&format!("release `digest` `{sha512}` is not sha256")),
            "{err}"
        );
        // A malformed one keeps its own error.
        assert!(matches!(
            Digest::parse_release("sha512:abc"),
            Err(DigestError::Hex(_, 128))
        ));
    }

    #[test]
    fn sha256_of_empty() {
        assert_eq!(
            Digest::sha256_of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
