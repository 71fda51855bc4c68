//! What `serve` shows of payloads: per channel of a payload stream, whether each release it
//! publishes has its whole payload in `payload.target` (status API and page), and how many
//! component tags a sync put in place (metrics).

use crate::apply::{ActionResult, Outcome};
use crate::desired::DesiredState;
use crate::manifest::Manifests;
use crate::plan::{ActionKind, DriftItem, DriftState, Target};

use super::status::PayloadStatus;

/// The payload of each release `channel` publishes, in the channel's order, judged from the
/// channel's drift items (component tags carry their release's version): complete when the
/// component list is known, every component tag holds its component, and the release is
/// not refused. Empty for a channel whose stream is not a payload stream.
pub(super) fn channel_payloads(
    manifests: &Manifests,
    desired: &DesiredState,
    channel: &str,
    drift: &[DriftItem],
) -> Vec<PayloadStatus> {
    let Some(c) = manifests.channels.get(channel) else {
        return Vec::new();
    };
    let Some(stream) = manifests.streams.get(&c.stream.value) else {
        return Vec::new();
    };
    let Some(payload) = &stream.payload else {
        return Vec::new();
    };
    let payload_target = Target::Repo(payload.target.value.clone());
    c.published()
        .filter_map(|v| {
            let release = stream
                .releases
                .iter()
                .find(|r| r.version.value == v.value)?;
            let digest = &release.digest.value;
            let components = desired
                .payloads
                .releases
                .get(&(stream.target.value.clone(), digest.clone()))
                .copied()
                .flatten();
            let items: Vec<&DriftItem> = drift
                .iter()
                .filter(|i| i.target == payload_target && i.release.as_deref() == Some(&v.value))
                .collect();
            let ok = items.iter().filter(|i| i.state == DriftState::Ok).count();
            // Known list: what is not in place of it; unknown: the tags seen that differ.
            let missing = components.map_or(items.len() - ok, |n| n.saturating_sub(ok));
            let refused = desired.payloads.refused.contains_key(digest);
            Some(PayloadStatus {
                version: v.value.clone(),
                complete: !refused && components.is_some() && missing == 0,
                components,
                missing,
            })
        })
        .collect()
}

/// How many component tags a sync put in place (created, or moved back): the successful
/// actions on component tags of payload releases, deletes left out.
pub(super) fn components_mirrored(results: &[ActionResult]) -> u64 {
    results
        .iter()
        .filter(|r| r.action.release.is_some())
        .filter(|r| r.action.action != ActionKind::Delete)
        .filter(|r| matches!(r.outcome, Outcome::Done))
        .count() as u64
}
