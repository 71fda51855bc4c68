//! PURE: desired state + observed state → the plan (ordered actions) and the drift (the
//! difference itself, item by item).

use crate::desired::DesiredState;
use crate::digest::Digest;
use crate::manifest::VersionKey;

mod image_stream;
mod signed;
mod types;

pub use image_stream::{
    ImportFailure, ObservedImageStream, ObservedSpecTag, ObservedStatusTag, pull_spec_digest,
};

pub use signed::{UnsignedRelease, mark_unsigned, unsigned_releases};
pub use types::{
    Action, ActionKind, Conflict, Drift, DriftItem, DriftState, ObservedRepo, ObservedState, Plan,
    PlanOptions, Refusal, Target,
};

/// Computes the plan. Pure: the same inputs give the same plan.
///
/// For each desired tag of each target repository: a missing tag is a `mirror` (content
/// copied from the stream's source) or a `tag` (content already in the target); a tag
/// holding another digest is a `retag` (to a newer version, an equal one, or off a digest
/// Git does not know) or a `rollback` (to an older version), unless the policy makes it
/// immutable, in which case it is a [`Conflict`] and never an action. Tombstoned tags
/// present live are deleted whether or not prune is on; unclaimed tags (signature and
/// attestation tags excepted) are deleted only with `options.prune`.
///
/// Deletes are counted on the whole plan, before `--channel` narrowing, against
/// `options.allow_deletes`, else the policy's `maxDeletesPerSync`; a plan over the cap keeps
/// its actions (so a report shows what is refused) and gets a [`Refusal`]. `--channel N`
/// then keeps the actions and conflicts on the `(target, tag)` pairs N claims.
///
/// A desired tag that the registry listed but that was not resolved (which observation
/// never leaves for tags Git names) is retagged from an unknown digest, or left alone if
/// immutable.
///
/// When the cluster was observed (`observed.image_streams` is `Some`), ImageStream actions
/// follow every repository's: see [`ObservedImageStream`] for what is compared. Deletes of
/// relsync's own ImageStream tags count against the cap, and under `--channel N` they stay
/// in the plan for every ImageStream N publishes into (it is applied with its whole tag
/// set).
pub fn plan(
    revision: &str,
    desired: &DesiredState,
    observed: &ObservedState,
    policy: &crate::manifest::Policy,
    options: &PlanOptions,
) -> Plan {
    let empty = ObservedRepo::default();
    let mut actions = Vec::new();
    let mut conflicts = Vec::new();

    for (repo, want) in &desired.repos {
        let live = observed.repos.get(repo).unwrap_or(&empty);
        let target = Target::Repo(repo.clone());
        let version_of = |d: &Digest| want.known.get(d).map(|k| k.version.clone());
        let payloads = &desired.payloads;

        for (tag, d) in &want.tags {
            let channels: Vec<String> = d.channels.iter().cloned().collect();
            let release = payloads.component_of(repo, tag).cloned();
            // Component tags follow their release's content: never immutable, always restored.
            let immutable = release.is_none() && policy.is_immutable(tag);
            let action = |kind: ActionKind, from: Option<Digest>, reason: String| Action {
                action: kind,
                target: target.clone(),
                tag: tag.clone(),
                from_version: from.as_ref().and_then(version_of),
                from,
                to: Some(d.digest.clone()),
                to_version: Some(d.version.clone()),
                copy: kind == ActionKind::Mirror,
                channels: channels.clone(),
                reason,
                source: (kind == ActionKind::Mirror).then(|| d.source.clone()),
                components: (kind == ActionKind::Mirror)
                    .then(|| {
                        payloads
                            .releases
                            .get(&(repo.clone(), d.digest.clone()))
                            .copied()
                    })
                    .flatten(),
                release: release.clone(),
            };
            match live.tags.get(tag) {
                None if live.has_manifest(&d.digest) => actions.push(action(
                    ActionKind::Tag,
                    None,
                    "tag missing; content already in target".to_string(),
                )),
                None => actions.push(action(
                    ActionKind::Mirror,
                    None,
                    "tag missing; content not in target".to_string(),
                )),
                Some(Some(actual)) if *actual == d.digest => {}
                Some(None) => {
                    if !immutable {
                        actions.push(action(
                            ActionKind::Retag,
                            None,
                            "live digest not resolved".to_string(),
                        ));
                    }
                }
                Some(Some(actual)) if immutable => conflicts.push(Conflict {
                    target: target.clone(),
                    tag: tag.clone(),
                    desired: d.digest.clone(),
                    actual: actual.clone(),
                    reason: match want.known.get(actual) {
                        Some(k) => format!(
                            "immutable tag holds {} instead of {}; relsync never moves it (policy immutableTags)",
                            k.version, d.version
                        ),
                        None => format!(
                            "immutable tag holds a digest Git does not know instead of {}; relsync never moves it (policy immutableTags)",
                            d.version
                        ),
                    },
                }),
                Some(Some(actual)) if release.is_some() => actions.push(action(
                    ActionKind::Retag,
                    Some(actual.clone()),
                    format!(
                        "component of release {} moved; restored to the release's content",
                        d.version
                    ),
                )),
                Some(Some(actual)) => {
                    let (kind, reason) =
                        move_verdict(tag, &Wanted::from(d), want.known.get(actual));
                    actions.push(action(kind, Some(actual.clone()), reason));
                }
            }
        }

        for (tag, a) in &want.absent {
            if let Some(actual) = live.tags.get(tag) {
                let channels: Vec<String> = a.channels.iter().cloned().collect();
                let release = desired.payloads.component_of(repo, tag).cloned();
                let reason = match &release {
                    Some(r) => format!(
                        "component of release {}, tombstoned in {}",
                        r.version,
                        channels.join(", ")
                    ),
                    None => format!("tombstoned in {}", channels.join(", ")),
                };
                let mut d = delete(
                    &target,
                    tag,
                    actual.clone(),
                    actual.as_ref().and_then(version_of),
                    channels.clone(),
                    reason,
                );
                d.release = release;
                actions.push(d);
            }
        }

        if options.prune {
            for (tag, actual) in &live.tags {
                if is_extra(want, &desired.payloads, repo, tag) {
                    actions.push(delete(
                        &target,
                        tag,
                        actual.clone(),
                        actual.as_ref().and_then(version_of),
                        Vec::new(),
                        "not claimed by any channel (prune)".to_string(),
                    ));
                }
            }
        }
    }

    // ImageStreams, when the cluster was observed; `Target::ImageStream` sorts after every
    // repository.
    if let Some(live) = &observed.image_streams {
        image_stream::plan(desired, live, &mut actions);
    }

    let deletes = count_deletes(&actions);
    let cap = options
        .allow_deletes
        .or(policy.max_deletes_per_sync.as_ref().map(|m| m.value));
    let refusal = match cap {
        Some(max) if deletes > max as usize => Some(Refusal::DeleteCap { deletes, max }),
        _ => None,
    };

    if let Some(channel) = &options.channel {
        let claims = desired.channel_claims.get(channel);
        let claimed = |target: &Target, tag: &str| {
            claims.is_some_and(|c| c.contains(&(target.to_string(), tag.to_string())))
        };
        // An ImageStream is applied with its whole tag set, so deleting relsync's tags that
        // Git no longer wants is part of applying any ImageStream the channel publishes into.
        let publishes_into = |target: &Target| {
            matches!(target, Target::ImageStream(_)) && {
                let t = target.to_string();
                claims.is_some_and(|c| c.iter().any(|(ct, _)| *ct == t))
            }
        };
        actions.retain(|a| {
            claimed(&a.target, &a.tag)
                || (a.action == ActionKind::Delete && publishes_into(&a.target))
        });
        conflicts.retain(|c| claimed(&c.target, &c.tag));
    }

    actions.sort_by(|a, b| {
        (&a.target, a.action.rank(), &a.tag).cmp(&(&b.target, b.action.rank(), &b.tag))
    });
    conflicts.sort_by(|a, b| (&a.target, &a.tag).cmp(&(&b.target, &b.tag)));
    Plan {
        revision: revision.to_string(),
        actions,
        conflicts,
        refusal,
        signatures: Vec::new(),
    }
}

/// Whether a live tag of a repository is extra: neither desired, nor explicitly absent, nor a
/// signature or attestation tag. A name that is not a registry tag at all (an `oci:`
/// layout's `index.json` may hold `host/repo:tag` names written by other tools) is outside
/// relsync's reach: it can be neither resolved nor deleted, so it is never extra.
fn is_extra(
    want: &crate::desired::DesiredRepo,
    payloads: &crate::desired::DesiredPayloads,
    repo: &str,
    tag: &str,
) -> bool {
    !want.tags.contains_key(tag)
        && !want.absent.contains_key(tag)
        && !payloads.protects(repo, tag)
        && !crate::tag::is_signature_tag(tag)
        && crate::tag::is_valid_tag(tag)
}

/// The deletes a plan makes, as `maxDeletesPerSync` counts them: a tombstoned payload
/// release's component tags count as one delete with the release (none more when the
/// release's own tag is deleted in the same plan).
fn count_deletes(actions: &[Action]) -> usize {
    let deletes = actions.iter().filter(|a| a.action == ActionKind::Delete);
    let releases_deleted: std::collections::BTreeSet<&Digest> = deletes
        .clone()
        .filter(|a| a.release.is_none())
        .filter_map(|a| a.from.as_ref())
        .collect();
    let own = deletes.clone().filter(|a| a.release.is_none()).count();
    let payloads: std::collections::BTreeSet<&Digest> = deletes
        .filter_map(|a| a.release.as_ref().map(|r| &r.release))
        .filter(|r| !releases_deleted.contains(r))
        .collect();
    own + payloads.len()
}

/// A delete action.
fn delete(
    target: &Target,
    tag: &str,
    from: Option<Digest>,
    from_version: Option<String>,
    channels: Vec<String>,
    reason: String,
) -> Action {
    Action {
        action: ActionKind::Delete,
        target: target.clone(),
        tag: tag.to_string(),
        from,
        to: None,
        from_version,
        to_version: None,
        copy: false,
        channels,
        reason,
        source: None,
        components: None,
        release: None,
    }
}

/// What a moved tag must hold, for telling a retag from a rollback.
struct Wanted<'a> {
    version: &'a str,
    stream: &'a str,
    key: &'a VersionKey,
    floating: bool,
}

impl<'a> From<&'a crate::desired::DesiredTag> for Wanted<'a> {
    fn from(t: &'a crate::desired::DesiredTag) -> Self {
        Wanted {
            version: &t.version,
            stream: &t.stream,
            key: &t.key,
            floating: t.kind == crate::desired::TagKind::Floating,
        }
    }
}

/// Retag or rollback, and why, for a mutable tag that holds `live` instead of `want`.
fn move_verdict(
    tag: &str,
    want: &Wanted<'_>,
    live: Option<&crate::desired::KnownRelease>,
) -> (ActionKind, String) {
    use std::cmp::Ordering;
    let Some(live) = live else {
        return (
            ActionKind::Retag,
            "moved off a digest Git does not know".to_string(),
        );
    };
    if live.stream != want.stream {
        return (
            ActionKind::Retag,
            format!(
                "holds {} of stream {}; Git pins {}",
                live.version, live.stream, want.version
            ),
        );
    }
    let floating = want.floating;
    match live.key.precedence(want.key) {
        Ordering::Greater if floating => (
            ActionKind::Rollback,
            format!("floating tag {tag} ahead: {} is newest", want.version),
        ),
        Ordering::Greater => (
            ActionKind::Rollback,
            format!("holds newer {}; Git pins {}", live.version, want.version),
        ),
        Ordering::Less if floating => (
            ActionKind::Retag,
            format!("floating tag {tag} behind: {} is newest", want.version),
        ),
        Ordering::Less => (
            ActionKind::Retag,
            format!("holds older {}; Git pins {}", live.version, want.version),
        ),
        Ordering::Equal => (
            ActionKind::Retag,
            format!("holds {}; Git pins {}", live.version, want.version),
        ),
    }
}

/// Computes the drift. Pure.
///
/// One item per desired tag (`ok`, `missing` or `moved`), per tombstoned tag still present
/// (`extra`, always counted) and per unclaimed live tag (`extra`, counted only with
/// `options.prune`; signature and attestation tags are never extra), sorted by target, then
/// tag. `--channel N` keeps the items on the `(target, tag)` pairs N claims; unclaimed extras
/// belong to no channel, so a narrowed report leaves them out. When the cluster was observed,
/// ImageStream items follow (`ok`, `missing`, `moved`, `importing` (not counted),
/// `import-failed`, and `extra` for relsync's own tags Git no longer wants, kept under
/// `--channel N` for the ImageStreams N publishes into).
pub fn drift(
    revision: &str,
    desired: &DesiredState,
    observed: &ObservedState,
    options: &PlanOptions,
) -> Drift {
    let empty = ObservedRepo::default();
    let mut items = Vec::new();
    for (repo, want) in &desired.repos {
        let live = observed.repos.get(repo).unwrap_or(&empty);
        let target = Target::Repo(repo.clone());
        let payloads = &desired.payloads;
        let item = |tag: &str, desired, actual, state, counts, message| DriftItem {
            target: target.clone(),
            tag: tag.to_string(),
            desired,
            actual,
            state,
            message,
            counts,
            release: payloads.component_of(repo, tag).map(|r| r.version.clone()),
        };
        for (tag, d) in &want.tags {
            let want_digest = Some(d.digest.clone());
            items.push(match live.tags.get(tag) {
                None => item(tag, want_digest, None, DriftState::Missing, true, None),
                Some(Some(a)) if *a == d.digest => item(
                    tag,
                    want_digest,
                    Some(a.clone()),
                    DriftState::Ok,
                    false,
                    None,
                ),
                Some(Some(a)) => item(
                    tag,
                    want_digest,
                    Some(a.clone()),
                    DriftState::Moved,
                    true,
                    None,
                ),
                Some(None) => item(
                    tag,
                    want_digest,
                    None,
                    DriftState::Moved,
                    true,
                    Some("live digest not resolved".to_string()),
                ),
            });
        }
        for (tag, actual) in &live.tags {
            if want.absent.contains_key(tag) {
                items.push(item(
                    tag,
                    None,
                    actual.clone(),
                    DriftState::Extra,
                    true,
                    Some("tombstoned".to_string()),
                ));
            } else if options.channel.is_none() && is_extra(want, payloads, repo, tag) {
                items.push(item(
                    tag,
                    None,
                    actual.clone(),
                    DriftState::Extra,
                    options.prune,
                    Some("not claimed by any channel".to_string()),
                ));
            }
        }
    }

    // ImageStream items, when the cluster was observed.
    if let Some(live) = &observed.image_streams {
        image_stream::drift(desired, live, &mut items);
    }

    if let Some(channel) = &options.channel {
        let claims = desired.channel_claims.get(channel);
        // relsync's own ImageStream tags that Git no longer wants go when any ImageStream the
        // channel publishes into is applied, so they stay in a narrowed report.
        let publishes_into = |target: &Target| {
            matches!(target, Target::ImageStream(_)) && {
                let t = target.to_string();
                claims.is_some_and(|c| c.iter().any(|(ct, _)| *ct == t))
            }
        };
        items.retain(|i| {
            claims.is_some_and(|c| c.contains(&(i.target.to_string(), i.tag.clone())))
                || (i.state == DriftState::Extra && publishes_into(&i.target))
        });
    }
    items.sort_by(|a, b| (&a.target, &a.tag).cmp(&(&b.target, &b.tag)));
    Drift {
        revision: revision.to_string(),
        items,
    }
}

#[cfg(test)]
mod tests;
