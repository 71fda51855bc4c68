//! The newest-version order: a version's sort key under its stream's `order`, and the newest
//! version a channel publishes (ties under semver precedence are errors).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use crate::manifest::{
    Diagnostic, Diagnostics, Located, Order, Release, ReleaseChannel, ReleaseStream, VersionKey,
};

/// The sort key of `version` in a stream with `order`, given its index in `releases`.
/// Returns `None` for a version that is not semver under `Order::Semver` (validation
/// rejects those before this is reached).
pub fn version_key(order: Order, version: &str, index: usize) -> Option<VersionKey> {
    match order {
        Order::Semver => semver::Version::parse(version).ok().map(VersionKey::Semver),
        Order::Listed => Some(VersionKey::Listed(index)),
    }
}

/// The newest published version of `channel` (its `versions` minus its `tombstones`) under
/// `stream`'s order, with its release.
///
/// Returns `Ok(None)` when the channel publishes no version of the stream, and every
/// version tied for newest as errors at the channel's `versions` entries (two versions of
/// equal semver precedence, such as `4.2.14` and `4.2.14+amd64`). Versions the stream does
/// not list, or that are not semver in a semver stream, are left out (validation reports
/// those).
pub fn newest_version<'a>(
    stream: &'a ReleaseStream,
    channel: &ReleaseChannel,
) -> Result<Option<&'a Release>, Diagnostics> {
    let index = release_index(stream);
    let mut seen = BTreeSet::new();
    let mut candidates: Vec<(&Located<String>, &Release, VersionKey)> = Vec::new();
    for v in channel.published() {
        if !seen.insert(v.value.as_str()) {
            continue;
        }
        if let Some(&(i, release)) = index.get(v.value.as_str())
            && let Some(key) = version_key(stream.order, &v.value, i)
        {
            candidates.push((v, release, key));
        }
    }
    let Some(best) = candidates
        .iter()
        .max_by(|a, b| a.2.precedence(&b.2))
        .map(|c| c.2.clone())
    else {
        return Ok(None);
    };
    let tied: Vec<_> = candidates
        .iter()
        .filter(|c| c.2.precedence(&best) == Ordering::Equal)
        .collect();
    if let [only] = tied.as_slice() {
        return Ok(Some(only.1));
    }
    let mut diags = Diagnostics::default();
    for (entry, _, _) in &tied {
        let others: Vec<&str> = tied
            .iter()
            .filter(|o| o.0.value != entry.value)
            .map(|o| o.0.value.as_str())
            .collect();
        diags.push(
            Diagnostic::error(
                entry.span.clone(),
                format!(
                    "version {} of channel {} ties with {} for the channel's newest version: equal semver precedence (build metadata is ignored)",
                    entry.value,
                    channel.name.value,
                    others.join(", ")
                ),
            )
            .with_hint(format!(
                "list only one of them, or set `order: listed` on stream {}",
                stream.name.value
            )),
        );
    }
    Err(diags)
}

/// Version string → (index in `releases`, release); the first of duplicates wins.
pub(super) fn release_index(stream: &ReleaseStream) -> HashMap<&str, (usize, &Release)> {
    let mut index = HashMap::new();
    for (i, r) in stream.releases.iter().enumerate() {
        index.entry(r.version.value.as_str()).or_insert((i, r));
    }
    index
}
