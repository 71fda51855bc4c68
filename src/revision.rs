//! PURE leaf: how a commit id is shown to people.

/// The revision as shown to people: the first 12 characters of a commit id. Anything that
/// is not a hexadecimal commit id (`working tree`, a branch name) is shown whole.
pub fn short_revision(revision: &str) -> &str {
    match revision.char_indices().nth(12) {
        Some((i, _)) if revision.bytes().all(|b| b.is_ascii_hexdigit()) => &revision[..i],
        _ => revision,
    }
}

#[cfg(test)]
mod tests {
    use super::short_revision;

    #[test]
    fn a_commit_id_is_cut_to_twelve_characters_and_anything_else_is_kept_whole() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(short_revision(sha), "0123456789ab");
        assert_eq!(short_revision("0123456789ab"), "0123456789ab");
        assert_eq!(short_revision("abc"), "abc");
        assert_eq!(short_revision("working tree"), "working tree");
        assert_eq!(
            short_revision("refs/heads/main-branch"),
            "refs/heads/main-branch"
        );
    }
}
