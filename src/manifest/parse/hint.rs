//! "did you mean …?": the known name nearest to a misspelt one (strsim's Jaro-Winkler, as
//! clap and cargo suggest subcommands), offered only when it is close.

use crate::manifest::Diagnostic;

/// Least similarity (0..1) for a suggestion; clap uses 0.7 for subcommands, a little
/// stricter here since field names share prefixes (`tags`, `tombstones`).
const MIN_SIMILARITY: f64 = 0.8;

/// The candidate nearest to `word`, when one is close enough and is not `word` itself.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= MIN_SIMILARITY)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `did you mean `tombstones`?`, for the nearest candidate, if any is close.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    nearest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// `d`, with `hint` when there is one.
pub(crate) fn hinted(d: Diagnostic, hint: Option<String>) -> Diagnostic {
    match hint {
        Some(h) => d.with_hint(h),
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested_and_far_ones_are_not() {
        let fields = [
            "stream",
            "tags",
            "imageStream",
            "feeder",
            "versions",
            "tombstones",
        ];
        assert_eq!(nearest("tombstone", fields), Some("tombstones"));
        assert_eq!(nearest("tomstones", fields), Some("tombstones"));
        assert_eq!(nearest("Versions", fields), Some("versions"));
        assert_eq!(nearest("imagestream", fields), Some("imageStream"));
        assert_eq!(nearest("digest", fields), None);
        assert_eq!(nearest("x", fields), None);
        assert_eq!(
            nearest("4-scos-stabel", ["4-scos-next", "4-scos-stable"]),
            Some("4-scos-stable")
        );
        assert_eq!(
            did_you_mean("tombstone", fields).as_deref(),
            Some("did you mean `tombstones`?")
        );
    }
}
