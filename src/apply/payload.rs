//! Content before names, widened to payloads: a release's own tags (version, extra,
//! floating) are written only once every component and every component tag of it is in
//! place. The plan's actions run in three phases:
//! 1. component tags (`mirror`, `tag`, `retag` in `payload.target`: the component copied,
//!    then tagged), every payload target in parallel;
//! 2. everything else, except the tags of a release whose payload was refused before the
//!    apply or one of whose component actions did not succeed: those fail without a write
//!    ([`ApplyError::PayloadIncomplete`]), so a floating tag stays where it is;
//! 3. the component tags of tombstoned releases, deleted after the release's own tags.

use std::collections::BTreeMap;

use super::{ApplyError, Outcome};
use crate::digest::Digest;
use crate::plan::{Action, ActionKind, Plan, Target};

/// Actions with their index in the plan.
type Indexed<'a> = Vec<(usize, &'a Action)>;

/// The plan's actions by phase.
pub(super) struct Phases<'a> {
    /// Phase 1: component tags to create or move.
    pub(super) components: Vec<(usize, &'a Action)>,
    /// Phase 2: every other action (ImageStreams included).
    pub(super) rest: Vec<(usize, &'a Action)>,
    /// Phase 3: component tags to delete.
    pub(super) component_deletes: Vec<(usize, &'a Action)>,
}

/// Splits the plan into its phases.
pub(super) fn phases(plan: &Plan) -> Phases<'_> {
    let mut p = Phases {
        components: Vec::new(),
        rest: Vec::new(),
        component_deletes: Vec::new(),
    };
    for (i, a) in plan.actions.iter().enumerate() {
        match (&a.release, a.action, &a.target) {
            (Some(_), ActionKind::Delete, Target::Repo(_)) => p.component_deletes.push((i, a)),
            (Some(_), _, Target::Repo(_)) => p.components.push((i, a)),
            _ => p.rest.push((i, a)),
        }
    }
    p
}

/// Release digest → why its tags must not be written: refused before the apply, or a
/// component action of phase 1 that did not succeed.
pub(super) fn blocked(
    plan: &Plan,
    outcomes: &[(usize, Outcome)],
    refused: &BTreeMap<Digest, String>,
) -> BTreeMap<Digest, String> {
    let mut blocked: BTreeMap<Digest, String> = refused
        .keys()
        .map(|d| (d.clone(), "the payload was refused".to_string()))
        .collect();
    for (i, outcome) in outcomes {
        if matches!(outcome, Outcome::Done | Outcome::Unchanged) {
            continue;
        }
        let a = &plan.actions[*i];
        if let Some(r) = &a.release {
            blocked.entry(r.release.clone()).or_insert_with(|| {
                format!("component tag {} of {} is not in place", a.tag, a.target)
            });
        }
    }
    blocked
}

/// Of `actions`, those that write a tag onto a blocked release fail here (`held`); the
/// others go on.
pub(super) fn held<'a>(
    actions: Vec<(usize, &'a Action)>,
    blocked: &BTreeMap<Digest, String>,
) -> (Vec<(usize, Outcome)>, Indexed<'a>) {
    let mut held = Vec::new();
    let mut go = Vec::new();
    for (i, a) in actions {
        let why = match (&a.target, a.action, &a.to) {
            (Target::Repo(_), kind, Some(to)) if kind != ActionKind::Delete => blocked.get(to),
            _ => None,
        };
        match why {
            Some(why) => held.push((
                i,
                Outcome::Failed(ApplyError::PayloadIncomplete {
                    version: a.to_version.clone().unwrap_or_else(|| to_text(a)),
                    why: why.clone(),
                }),
            )),
            None => go.push((i, a)),
        }
    }
    (held, go)
}

fn to_text(a: &Action) -> String {
    a.to.as_ref().map(Digest::short).unwrap_or_default()
}
