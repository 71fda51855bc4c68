//! PURE: repository references as relsync writes them (`host/path`, `oci:PATH`) and image
//! references pinned by digest (`host/path@sha256:…`), checked without the registry client.

use crate::digest::Digest;

/// Checks a target repository reference: `oci:PATH` (an OCI image layout), or `host/path`
/// with a registry host and a distribution repository path (lowercase letters and digits
/// separated by `.`, `_`, `__` or `-`), without a tag or digest. The error says what is
/// wrong, in words.
pub fn check_target(reference: &str) -> Result<(), String> {
    if let Some(path) = reference.strip_prefix("oci:") {
        if path.trim().is_empty() {
            return Err("`oci:` needs a directory".to_string());
        }
        return Ok(());
    }
    check_repository(reference)
}

/// Checks a registry repository reference `host/path` (no `oci:`, no tag, no digest).
pub fn check_repository(reference: &str) -> Result<(), String> {
    if reference.contains('@') {
        return Err("a repository, not an image: drop the `@digest`".to_string());
    }
    let Some((host, path)) = reference.split_once('/') else {
        return Err(
            "expected `host/path` or `oci:PATH` (the registry host is missing)".to_string(),
        );
    };
    if host.is_empty() {
        return Err("the registry host is empty".to_string());
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        return Err("the registry host has characters a host cannot have".to_string());
    }
    check_path(path)
}

/// The distribution grammar of a repository path.
fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository path is empty".to_string());
    }
    if path.len() > 255 {
        return Err("the repository path is longer than 255 characters".to_string());
    }
    for component in path.split('/') {
        let b = component.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        let separators_ok = ["..", "___", ".-", "-.", "._", "_.", "_-", "-_"]
            .iter()
            .all(|s| !component.contains(s));
        let ok = !b.is_empty()
            && alnum(b[0])
            && alnum(b[b.len() - 1])
            && b.iter()
                .all(|&c| alnum(c) || matches!(c, b'.' | b'_' | b'-'))
            && separators_ok;
        if !ok {
            if component.contains(':') {
                return Err(format!(
                    "path component `{component}` holds a `:`: a repository, not a tag"
                ));
            }
            return Err(format!(
                "path component `{component}` is not lowercase letters and digits separated by `.`, `_`, `__` or `-`"
            ));
        }
    }
    Ok(())
}

/// Splits an image reference pinned by digest, `host/path@sha256:…`, into its repository
/// and digest. A tag before the `@` (`repo:tag@sha256:…`) is dropped, as registries do.
pub fn split_pinned(reference: &str) -> Result<(String, Digest), String> {
    let Some((repo, digest)) = reference.rsplit_once('@') else {
        return Err(format!(
            "`{reference}` is not pinned by digest (`repo@sha256:…`)"
        ));
    };
    let digest = Digest::parse(digest).map_err(|e| e.to_string())?;
    // `repo:tag@digest`: the tag is the part after the last `:` that follows the last `/`.
    let repo = match repo.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((name, _tag)) => format!("{head}/{name}"),
            None => repo.to_string(),
        },
        None => repo.to_string(),
    };
    check_repository(&repo).map_err(|e| format!("`{reference}`: {e}"))?;
    Ok((repo, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        for ok in [
            "quay.io/okd/scos-content",
            "127.0.0.1:5000/a/b",
            "oci:mirror/content",
            "localhost/x",
        ] {
            assert_eq!(check_target(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("oci:", "needs a directory"),
            ("scos-content", "host is missing"),
            ("/x", "host is empty"),
            ("quay.io/Okd/x", "lowercase"),
            ("quay.io/okd/x:latest", "a repository, not a tag"),
            ("quay.io/okd/x@sha256:abc", "drop the `@digest`"),
            ("quay.io/", "path is empty"),
        ] {
            let e = check_target(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn pinned() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            split_pinned(&format!("quay.io/okd/c@{d}")).unwrap(),
            ("quay.io/okd/c".to_string(), Digest::parse(&d).unwrap())
        );
        assert_eq!(
            split_pinned(&format!("127.0.0.1:5000/okd/c:v1@{d}"))
                .unwrap()
                .0,
            "127.0.0.1:5000/okd/c"
        );
        assert!(
            split_pinned("quay.io/okd/c:latest")
                .unwrap_err()
                .contains("not pinned")
        );
        assert!(split_pinned("quay.io/okd/c@sha256:zz").is_err());
        assert!(
            split_pinned(&format!("c@{d}"))
                .unwrap_err()
                .contains("host")
        );
    }
}
