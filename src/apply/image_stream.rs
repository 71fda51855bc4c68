//! The ImageStream step of [`apply`](super::apply): after the registries, each ImageStream
//! with an action is applied once with its whole desired tag set.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracing::Instrument;

use super::{ApplyError, Outcome, log_outcome, span_of};
use crate::cluster::{Cluster, ImageStreamApply};
use crate::desired::DesiredImageStreamTag;
use crate::manifest::ImageStreamRef;
use crate::plan::{
    Action, ActionKind, ObservedImageStream, ObservedState, Plan, Target, pull_spec_digest,
};

/// What applying ImageStreams needs beyond the plan: the cluster, every desired tag set
/// (an ImageStream is applied whole) and what the plan saw.
#[derive(Debug, Clone)]
pub struct ImageStreamTargets {
    /// The cluster adapter the ImageStreams are applied through (server-side apply).
    pub cluster: Cluster,
    /// ImageStream → tag → desired image, for every ImageStream Git names.
    pub desired: BTreeMap<ImageStreamRef, BTreeMap<String, DesiredImageStreamTag>>,
    /// The ImageStreams as the plan saw them (absent ones left out).
    pub observed: BTreeMap<ImageStreamRef, ObservedImageStream>,
    /// The registry content the plan saw in place, as pull specs `repo@digest`
    /// ([`live_content`]).
    pub live: BTreeSet<String>,
}

/// Every `repo@digest` the observation saw in place in the target repositories.
pub fn live_content(observed: &ObservedState) -> BTreeSet<String> {
    let mut live = BTreeSet::new();
    for (repo, o) in &observed.repos {
        for d in o.tags.values().flatten() {
            live.insert(format!("{repo}@{d}"));
        }
        for (d, present) in &o.manifests {
            if *present {
                live.insert(format!("{repo}@{d}"));
            }
        }
    }
    live
}

/// What registry content this run wrote or found in place, and why some is not: a
/// pull spec `repo@digest` is in place when the plan saw it live or a registry action of
/// this run succeeded on it; otherwise the reason is that of a failed action on it, or
/// that it is not in the target at all (its copy was not part of this run, e.g. under
/// `--channel`).
pub(super) struct ContentCheck {
    done: BTreeSet<String>,
    failed: BTreeMap<String, String>,
}

impl ContentCheck {
    /// Why `pull_spec` is not in place (`None`: it is).
    pub(super) fn missing(&self, pull_spec: &str, live: &BTreeSet<String>) -> Option<String> {
        if live.contains(pull_spec) || self.done.contains(pull_spec) {
            return None;
        }
        Some(
            self.failed
                .get(pull_spec)
                .cloned()
                .unwrap_or_else(|| "it is not in the target registry".to_string()),
        )
    }
}

/// Sorts this run's registry outcomes into what got in place and what failed.
pub(super) fn content_check(plan: &Plan, outcomes: &[(usize, Outcome)]) -> ContentCheck {
    let mut failed = BTreeMap::new();
    let mut done = BTreeSet::new();
    for (i, outcome) in outcomes {
        let a = &plan.actions[*i];
        let (Target::Repo(repo), Some(to)) = (&a.target, &a.to) else {
            continue;
        };
        let spec = format!("{repo}@{to}");
        match outcome {
            Outcome::Done | Outcome::Unchanged => {
                done.insert(spec);
            }
            Outcome::Conflict { .. } => {
                failed.insert(spec, format!("tag {} changed since the plan", a.tag));
            }
            Outcome::Left { reason } => {
                failed.insert(spec, reason.clone());
            }
            Outcome::Failed(e) => {
                failed.insert(spec, format!("{} of tag {} failed: {e}", a.action, a.tag));
            }
        }
    }
    failed.retain(|spec, _| !done.contains(spec));
    ContentCheck { done, failed }
}

/// Applies every ImageStream that has actions; returns an outcome per action.
pub(super) async fn apply(
    targets: Option<&ImageStreamTargets>,
    by_image_stream: BTreeMap<&ImageStreamRef, Vec<(usize, &Action)>>,
    content: &ContentCheck,
    may_write: Option<&super::WriteGuard>,
) -> Vec<(usize, Outcome)> {
    if may_write.is_some_and(|g| !g.allowed()) {
        return by_image_stream
            .into_values()
            .flatten()
            .map(|(i, _)| (i, Outcome::Failed(ApplyError::Stopped)))
            .collect();
    }
    let Some(targets) = targets else {
        return by_image_stream
            .into_values()
            .flatten()
            .map(|(i, a)| {
                let e = format!("{}: the cluster is not enabled (cluster.enabled)", a.target);
                (i, Outcome::Failed(ApplyError::Unsupported(e)))
            })
            .collect();
    };
    let per_stream = by_image_stream
        .into_iter()
        .map(|(is, actions)| async move {
            let span = tracing::info_span!("apply", target = %format!("imagestream:{}/{}", is.namespace, is.name));
            one(targets, is, actions, content).instrument(span).await
        });
    futures_util::future::join_all(per_stream)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Applies one ImageStream.
async fn one(
    targets: &ImageStreamTargets,
    is: &ImageStreamRef,
    actions: Vec<(usize, &Action)>,
    content: &ContentCheck,
) -> Vec<(usize, Outcome)> {
    let observed = targets.observed.get(is);
    let empty = BTreeMap::new();
    let desired = targets.desired.get(is).unwrap_or(&empty);
    // The whole tag set; a tag whose content is not in place keeps what relsync had it
    // point to (or is left out: absent stays absent, another manager's stays theirs).
    let mut tags = BTreeMap::new();
    let mut held = BTreeMap::new();
    for (tag, d) in desired {
        match content.missing(&d.from, &targets.live) {
            None => {
                tags.insert(tag.clone(), d.from.clone());
            }
            Some(why) => {
                held.insert(tag.clone(), (d.from.clone(), why));
                if let Some(spec) = observed
                    .and_then(|o| o.spec_tags.get(tag))
                    .filter(|s| s.managed_by_relsync)
                {
                    tags.insert(tag.clone(), spec.from.clone());
                }
            }
        }
    }
    let request = ImageStreamApply {
        image_stream: is,
        tags,
        observed,
    };
    let result = targets.cluster.apply_image_stream(&request).await;
    let applied = match result {
        Ok(applied) => applied,
        Err(e) => {
            let e = Arc::new(e);
            return actions
                .into_iter()
                .map(|(i, a)| {
                    let outcome = Outcome::Failed(ApplyError::Cluster(e.clone()));
                    span_of(a).in_scope(|| log_outcome(a, &outcome));
                    (i, outcome)
                })
                .collect();
        }
    };
    let conflicts: BTreeMap<&str, _> = applied
        .conflicts
        .iter()
        .map(|c| (c.tag.as_str(), c))
        .collect();
    actions
        .into_iter()
        .map(|(i, a)| {
            let outcome = if let Some(c) = conflicts.get(a.tag.as_str()) {
                Outcome::Conflict {
                    expected: c.planned.as_deref().and_then(pull_spec_digest),
                    actual: c.now.as_deref().and_then(pull_spec_digest),
                }
            } else if let (Some((pull_spec, why)), true) =
                (held.get(&a.tag), a.action != ActionKind::Delete)
            {
                Outcome::Failed(ApplyError::ContentNotInPlace {
                    pull_spec: pull_spec.clone(),
                    why: why.clone(),
                })
            } else {
                Outcome::Done
            };
            span_of(a).in_scope(|| log_outcome(a, &outcome));
            (i, outcome)
        })
        .collect()
}
