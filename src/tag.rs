//! PURE leaf: the grammar of registry tags and the tag names relsync gives meaning to.
//!
//! Imports nothing of the crate, so every layer (manifest validation, desired state, plan,
//! registry adapters) can use it without a cycle.

/// The tag grammar in words, for messages: what [`is_valid_tag`] accepts.
pub const TAG_RULE: &str =
    "a tag is 1 to 128 letters, digits, `_`, `.` and `-`, and starts with a letter, digit or `_`";

/// The registry tag of a version: the version itself, with `+` (semver build metadata, which
/// OCI tags cannot hold) written `_`, as Helm does for charts in OCI registries.
pub fn version_tag(version: &str) -> String {
    version.replace('+', "_")
}

/// Whether `tag` fits the distribution grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Whether a tag is a signature or attestation tag (`sha256-<hex>.sig|.att|.sbom`), which is
/// never extra.
pub fn is_signature_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let Some((hex, suffix)) = rest.split_once('.') else {
        return false;
    };
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && matches!(suffix, "sig" | "att" | "sbom")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_syntax() {
        for ok in ["latest", "4.14.0", "_x", "4.2.14_amd64", &"a".repeat(128)] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a+b", "a/b", "a b", &"a".repeat(129), "é"] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn plus_is_written_underscore() {
        assert_eq!(version_tag("4.2.14+amd64"), "4.2.14_amd64");
        assert_eq!(
            version_tag("4.14.0-0.okd-scos-2023-10-11-084613"),
            "4.14.0-0.okd-scos-2023-10-11-084613"
        );
    }

    #[test]
    fn signature_tags() {
        let h = "a".repeat(64);
        assert!(is_signature_tag(&format!("sha256-{h}.sig")));
        assert!(is_signature_tag(&format!("sha256-{h}.att")));
        assert!(is_signature_tag(&format!("sha256-{h}.sbom")));
        assert!(!is_signature_tag(&format!("sha256-{h}.tar")));
        assert!(!is_signature_tag("sha256-abc.sig"));
        assert!(!is_signature_tag("4-scos-stable"));
    }
}
