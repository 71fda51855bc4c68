//! "did you mean …?": the known name nearest to a misspelt one, offered only when it is a
//! few edits away, as rustc does: an optimal-string-alignment distance (strsim; a swap of
//! two neighbours is one edit) of at most a third of the word's length (at least one),
//! ties broken by Jaro-Winkler similarity. Case is ignored.

use crate::manifest::Diagnostic;

/// The candidate nearest to `word`, when one is close enough and is not `word` itself.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let most = (lower.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .filter_map(|c| {
            let other = c.to_lowercase();
            let distance = strsim::osa_distance(&lower, &other);
            (distance <= most).then(|| (distance, strsim::jaro_winkler(&lower, &other), c))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
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
        // Far in edits although alike in letters: no guess.
        assert_eq!(
            nearest("tag", ["source", "target", "order", "releases"]),
            None
        );
        assert_eq!(nearest("ap", ["app", "other"]), Some("app"));
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
