//! What `serve` shows of signatures: per published release, whether the target holds a
//! signature and whether a sync verified it; and the verdicts a sync's report carries
//! (releases refused as unsigned or wrongly signed, counted by the metric
//! `relsync_signature_verification_failures_total`).

use std::collections::BTreeSet;

use super::status::ReleaseSignature;
use crate::apply::{ApplyError, ApplyReport, Outcome};
use crate::digest::Digest;
use crate::ops::Loaded;
use crate::plan::{ActionKind, ObservedState, Target};

/// The verdicts of one sync run with signatures required: digests whose tags were written
/// (their signature passed) and digests refused.
#[derive(Debug, Clone, Default)]
pub(super) struct Verdicts {
    /// Verified: a tag of it was written or found as planned.
    pub(super) verified: BTreeSet<Digest>,
    /// Refused: a tag of it was not written because its signature did not pass.
    pub(super) refused: BTreeSet<Digest>,
}

impl Verdicts {
    /// The verdicts in `report`.
    pub(super) fn of(report: &ApplyReport) -> Verdicts {
        let mut v = Verdicts::default();
        for r in &report.results {
            let (Target::Repo(_), Some(to)) = (&r.action.target, &r.action.to) else {
                continue;
            };
            if r.action.action == ActionKind::Delete {
                continue;
            }
            match &r.outcome {
                Outcome::Done | Outcome::Unchanged => {
                    v.verified.insert(to.clone());
                }
                Outcome::Failed(ApplyError::Unsigned { .. }) => {
                    v.refused.insert(to.clone());
                }
                _ => {}
            }
        }
        v.verified.retain(|d| !v.refused.contains(d));
        v
    }

    /// Folds a newer run's verdicts into these.
    pub(super) fn update(&mut self, newer: Verdicts) {
        for d in &newer.verified {
            self.refused.remove(d);
        }
        for d in &newer.refused {
            self.verified.remove(d);
        }
        self.verified.extend(newer.verified);
        self.refused.extend(newer.refused);
    }
}

/// The releases channel `name` publishes, with their signature state (empty unless the
/// policy requires signatures).
pub(super) fn releases(
    loaded: &Loaded,
    name: &str,
    observed: &ObservedState,
    verdicts: &Verdicts,
) -> Vec<ReleaseSignature> {
    if !loaded.manifests.policy.signatures.required() {
        return Vec::new();
    }
    let Some(channel) = loaded.manifests.channels.get(name) else {
        return Vec::new();
    };
    let Some(stream) = loaded.manifests.streams.get(&channel.stream.value) else {
        return Vec::new();
    };
    let live = observed.repos.get(&stream.target.value);
    channel
        .published()
        .filter_map(|v| {
            let r = stream
                .releases
                .iter()
                .find(|r| r.version.value == v.value)?;
            let d = &r.digest.value;
            let base = format!("{}-{}", d.algorithm(), d.hex());
            let signed = live.is_some_and(|l| {
                l.tags.contains_key(&format!("{base}.sig")) || l.tags.contains_key(&base)
            });
            let verified = if verdicts.refused.contains(d) {
                Some(false)
            } else if verdicts.verified.contains(d) {
                Some(true)
            } else {
                None
            };
            Some(ReleaseSignature {
                version: v.value.clone(),
                digest: d.clone(),
                signed,
                verified,
            })
        })
        .collect()
}
