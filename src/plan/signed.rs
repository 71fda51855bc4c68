//! PURE: drift state `unsigned`. With signatures required, a release tag that is as
//! desired but whose digest has no signature in the target's tag list (no
//! `sha256-<hex>.sig`, no `sha256-<hex>` referrers index) is `unsigned`: drift, which sync
//! repairs by copying the release's attached artifacts. Judged from the tags the target
//! listed, so it costs no request. `plan` shows the same releases
//! ([`Plan::signatures`](super::Plan::signatures), [`unsigned_releases`]), so plan, drift
//! and sync agree.
//!
//! The requirement is the release's (DESIGN "Signatures and referrers"): payload
//! component tags are never `unsigned`.

use serde::Serialize;

use super::{Drift, DriftState, ObservedState, Target};
use crate::desired::{DesiredState, TagKind};
use crate::digest::Digest;

/// Whether the target's tag list shows a signature of `digest`.
fn signed_in(tags: &std::collections::BTreeMap<String, Option<Digest>>, digest: &Digest) -> bool {
    let base = format!("{}-{}", digest.algorithm(), digest.hex());
    tags.contains_key(&format!("{base}.sig")) || tags.contains_key(&base)
}

/// Marks the `ok` registry items of `drift` whose digest the target shows no signature
/// for as [`DriftState::Unsigned`] (they count as drift). Component tags of payload
/// releases (items with a `release`) are left as they are.
pub fn mark_unsigned(drift: &mut Drift, observed: &ObservedState) {
    for item in &mut drift.items {
        if item.state != DriftState::Ok || item.release.is_some() {
            continue;
        }
        let (Target::Repo(repo), Some(digest)) = (&item.target, &item.actual) else {
            continue;
        };
        let Some(live) = observed.repos.get(repo) else {
            continue;
        };
        if !signed_in(&live.tags, digest) {
            item.state = DriftState::Unsigned;
            item.counts = true;
            item.message = Some("no signature in the target".to_string());
        }
    }
}

/// A release whose tags are as desired but whose signature the target lacks: `plan`
/// shows it (its signature will be copied), `sync` copies what is attached to it.
/// Serializes as an entry of the plan JSON's `signatures`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsignedRelease {
    /// The target repository.
    pub target: String,
    /// The release's digest.
    pub digest: Digest,
    /// The release's version.
    pub version: String,
    /// Its tags in the target that are as desired (sorted).
    pub tags: Vec<String>,
    /// Why, in words.
    pub reason: String,
    /// Where its attached artifacts are copied from (not part of the JSON contract).
    #[serde(skip)]
    pub source: String,
}

/// The releases (not payload components) whose tags are as desired in the target but
/// whose digest has no signature there, one entry per (target, digest), sorted; with
/// `channel`, only the tags that channel claims.
pub fn unsigned_releases(
    desired: &DesiredState,
    observed: &ObservedState,
    channel: Option<&str>,
) -> Vec<UnsignedRelease> {
    let mut out: Vec<UnsignedRelease> = Vec::new();
    for (name, repo) in &desired.repos {
        let Some(live) = observed.repos.get(name) else {
            continue;
        };
        for (tag, t) in &repo.tags {
            if t.kind == TagKind::Component
                || channel.is_some_and(|c| !t.channels.contains(c))
                || live.tags.get(tag) != Some(&Some(t.digest.clone()))
                || signed_in(&live.tags, &t.digest)
            {
                continue;
            }
            match out
                .iter_mut()
                .find(|u| u.target == *name && u.digest == t.digest)
            {
                Some(u) => u.tags.push(tag.clone()),
                None => out.push(UnsignedRelease {
                    target: name.clone(),
                    digest: t.digest.clone(),
                    version: t.version.clone(),
                    tags: vec![tag.clone()],
                    reason: "no signature in the target: copied from the source with what is attached to the release".to_string(),
                    source: t.source.clone(),
                }),
            }
        }
    }
    for u in &mut out {
        u.tags.sort();
    }
    out.sort_by(|a, b| (&a.target, &a.digest).cmp(&(&b.target, &b.digest)));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::digest::Digest;
    use crate::plan::{DriftItem, ObservedRepo};

    /// What the target `t/r` is seen to hold: `tags`, no manifests read.
    fn observed_target(tags: BTreeMap<String, Option<Digest>>) -> ObservedState {
        ObservedState {
            repos: [(
                "t/r".to_string(),
                ObservedRepo {
                    tags,
                    manifests: BTreeMap::new(),
                },
            )]
            .into(),
            image_streams: None,
        }
    }

    #[test]
    fn an_ok_release_without_a_sig_or_referrers_tag_in_the_target_is_unsigned() {
        let d = |b: u8| Digest::parse(&format!("sha256:{}", hex::encode([b; 32]))).unwrap();
        let item = |tag: &str, digest: Digest, state| DriftItem {
            target: Target::Repo("t/r".into()),
            tag: tag.into(),
            desired: Some(digest.clone()),
            actual: Some(digest),
            state,
            message: None,
            release: None,
            counts: false,
        };
        let mut drift = Drift {
            revision: "r".into(),
            items: vec![
                item("1.0", d(1), DriftState::Ok),
                item("2.0", d(2), DriftState::Ok),
                item("3.0", d(3), DriftState::Ok),
                item("4.0", d(4), DriftState::Moved),
            ],
        };
        let mut tags: BTreeMap<String, Option<Digest>> = BTreeMap::new();
        tags.insert(format!("sha256-{}.sig", d(1).hex()), None);
        tags.insert(format!("sha256-{}", d(3).hex()), None);
        let observed = observed_target(tags);
        mark_unsigned(&mut drift, &observed);
        let states: Vec<&str> = drift.items.iter().map(|i| i.state.word()).collect();
        assert_eq!(states, ["ok", "unsigned", "ok", "moved"]);
        assert!(!drift.in_sync());
    }

    #[test]
    fn unsigned_releases_group_a_release_s_tags_skip_components_and_follow_the_channel() {
        use crate::desired::{DesiredRepo, DesiredState, DesiredTag, TagKind};
        use crate::manifest::{Span, VersionKey};
        let d = |b: u8| Digest::parse(&format!("sha256:{}", hex::encode([b; 32]))).unwrap();
        let tag = |digest: Digest, version: &str, kind, channel: &str| DesiredTag {
            digest,
            version: version.into(),
            stream: "okd".into(),
            source: "src/r".into(),
            kind,
            key: VersionKey::Listed(0),
            channels: [channel.to_string()].into(),
            span: Span {
                file: "m.yaml".into(),
                line: 1,
                col: 1,
            },
        };
        let mut want = DesiredRepo::default();
        want.tags
            .insert("1.0".into(), tag(d(1), "1.0", TagKind::Version, "a"));
        want.tags
            .insert("latest".into(), tag(d(1), "1.0", TagKind::Floating, "a"));
        want.tags
            .insert("2.0".into(), tag(d(2), "2.0", TagKind::Version, "b"));
        want.tags
            .insert("1.0-comp".into(), tag(d(3), "1.0", TagKind::Component, "a"));
        want.tags
            .insert("3.0".into(), tag(d(4), "3.0", TagKind::Version, "a"));
        let desired = DesiredState {
            repos: [("t/r".to_string(), want)].into(),
            ..DesiredState::default()
        };
        // Everything in place; only 3.0 is signed; 3.0's tag aside, nothing else is.
        let mut tags: BTreeMap<String, Option<Digest>> = [
            ("1.0", d(1)),
            ("latest", d(1)),
            ("2.0", d(2)),
            ("1.0-comp", d(3)),
            ("3.0", d(4)),
        ]
        .into_iter()
        .map(|(t, d)| (t.to_string(), Some(d)))
        .collect();
        tags.insert(format!("sha256-{}.sig", d(4).hex()), None);
        let observed = observed_target(tags);
        let got: Vec<(String, Vec<String>)> = unsigned_releases(&desired, &observed, None)
            .into_iter()
            .map(|u| (u.version, u.tags))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "1.0".to_string(),
                    vec!["1.0".to_string(), "latest".to_string()]
                ),
                ("2.0".to_string(), vec!["2.0".to_string()]),
            ]
        );
        let only_b: Vec<String> = unsigned_releases(&desired, &observed, Some("b"))
            .into_iter()
            .map(|u| u.version)
            .collect();
        assert_eq!(only_b, ["2.0"]);
    }
}
