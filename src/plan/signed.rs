//! PURE: drift state `unsigned`. With signatures required, a release tag that is as
//! desired but whose digest has no signature in the target's tag list (no
//! `sha256-<hex>.sig`, no `sha256-<hex>` referrers index) is `unsigned`: drift, which sync
//! repairs by copying the release's attached artifacts. Judged from the tags the target
//! listed, so it costs no request.

use super::{Drift, DriftState, ObservedState, Target};

/// Marks the `ok` registry items of `drift` whose digest the target shows no signature
/// for as [`DriftState::Unsigned`] (they count as drift).
pub fn mark_unsigned(drift: &mut Drift, observed: &ObservedState) {
    for item in &mut drift.items {
        if item.state != DriftState::Ok {
            continue;
        }
        let (Target::Repo(repo), Some(digest)) = (&item.target, &item.actual) else {
            continue;
        };
        let Some(live) = observed.repos.get(repo) else {
            continue;
        };
        let base = format!("{}-{}", digest.algorithm(), digest.hex());
        let signed =
            live.tags.contains_key(&format!("{base}.sig")) || live.tags.contains_key(&base);
        if !signed {
            item.state = DriftState::Unsigned;
            item.counts = true;
            item.message = Some("no signature in the target".to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::digest::Digest;
    use crate::plan::{DriftItem, ObservedRepo};

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
        let observed = ObservedState {
            repos: [(
                "t/r".to_string(),
                ObservedRepo {
                    tags,
                    manifests: BTreeMap::new(),
                },
            )]
            .into(),
            image_streams: None,
        };
        mark_unsigned(&mut drift, &observed);
        let states: Vec<&str> = drift.items.iter().map(|i| i.state.word()).collect();
        assert_eq!(states, ["ok", "unsigned", "ok", "moved"]);
        assert!(!drift.in_sync());
    }
}
