//! What a sync did: each action's [`Outcome`], and the [`ApplyReport`] that sums them up
//! (counts, the failure lines, the summary line).

use std::time::Duration;

use super::ApplyError;
use crate::digest::Digest;
use crate::plan::{Action, ActionKind, Refusal};
use crate::registry::mirror::MirrorStats;

/// What became of one action.
#[derive(Debug)]
pub enum Outcome {
    /// Written (a tag created or moved) or deleted, as planned.
    Done,
    /// Nothing to write: the tag already was as the plan wants (changed meanwhile by
    /// someone else, or written by an earlier action of this run).
    Unchanged,
    /// The tag changed since the plan: left alone.
    Conflict {
        /// What the plan saw.
        expected: Option<Digest>,
        /// What the tag holds now.
        actual: Option<Digest>,
    },
    /// A delete that cannot be made safely: the tag is left.
    Left {
        /// Why the delete is not safe (shown to the user as is).
        reason: String,
    },
    /// The action failed.
    Failed(ApplyError),
}

/// One action and its outcome.
#[derive(Debug)]
pub struct ActionResult {
    /// The action, as planned.
    pub action: Action,
    /// What became of it.
    pub outcome: Outcome,
}

impl ActionResult {
    /// A one-line message for an outcome that makes the run fail (`None` otherwise).
    pub fn problem(&self) -> Option<String> {
        let a = &self.action;
        let short = |d: &Option<Digest>| d.as_ref().map_or("nothing".to_string(), Digest::short);
        match &self.outcome {
            Outcome::Done | Outcome::Unchanged => None,
            Outcome::Conflict { expected, actual } => Some(format!(
                "conflict: {} tag {}: changed since the plan (plan saw {}, now {}); left alone",
                a.target,
                a.tag,
                short(expected),
                short(actual)
            )),
            Outcome::Left { reason } => Some(format!(
                "error: {} tag {}: not deleted: {reason}",
                a.target, a.tag
            )),
            Outcome::Failed(e) => {
                let mut msg = format!("error: {} {} {}: {e}", a.action, a.target, a.tag);
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    source = s.source();
                }
                Some(msg)
            }
        }
    }
}

/// What a sync did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Every action of the plan, in plan order, with its outcome.
    pub results: Vec<ActionResult>,
    /// What the mirror engine did.
    pub stats: MirrorStats,
    /// How long it took.
    pub elapsed: Duration,
    /// Set when the plan was refused (nothing written).
    pub refused: Option<Refusal>,
    /// Tags the plan itself left alone, which are no action of it: `immutableTags` tags
    /// whose live digest differs from Git's (the plan's conflicts). Set by whoever applies
    /// the plan, so the summary counts them by their own name, not as `0 conflicts`.
    pub immutable: usize,
    /// Payload releases refused before the apply (their tags not written), one message each.
    pub payload_refusals: Vec<String>,
}

impl ApplyReport {
    fn count(&self, f: impl Fn(&ActionResult) -> bool) -> usize {
        self.results.iter().filter(|r| f(r)).count()
    }

    fn done(&self, kinds: &[ActionKind]) -> usize {
        self.count(|r| matches!(r.outcome, Outcome::Done) && kinds.contains(&r.action.action))
    }

    /// Tags created (`mirror`, `tag`).
    pub fn tags_created(&self) -> usize {
        self.done(&[ActionKind::Mirror, ActionKind::Tag])
    }

    /// Tags moved (`retag`, `rollback`).
    pub fn tags_moved(&self) -> usize {
        self.done(&[ActionKind::Retag, ActionKind::Rollback])
    }

    /// Tags deleted.
    pub fn tags_deleted(&self) -> usize {
        self.done(&[ActionKind::Delete])
    }

    /// Actions that failed.
    pub fn failed(&self) -> usize {
        self.count(|r| matches!(r.outcome, Outcome::Failed(_)))
    }

    /// Tags left alone because they changed since the plan.
    pub fn conflicts(&self) -> usize {
        self.count(|r| matches!(r.outcome, Outcome::Conflict { .. }))
    }

    /// Deletes left because the registry cannot make them safely.
    pub fn left(&self) -> usize {
        self.count(|r| matches!(r.outcome, Outcome::Left { .. }))
    }

    /// Whether every action succeeded, no tag was refused for any reason, and the plan
    /// was not refused.
    pub fn succeeded(&self) -> bool {
        self.refused.is_none()
            && self.failed() == 0
            && self.conflicts() == 0
            && self.left() == 0
            && self.immutable == 0
            && self.payload_refusals.is_empty()
    }

    /// One line per action that makes the run fail.
    pub fn problems(&self) -> Vec<String> {
        self.payload_refusals
            .iter()
            .map(|m| format!("error: payload refused: {m}; its tags are not written"))
            .chain(self.results.iter().filter_map(ActionResult::problem))
            .collect()
    }

    /// The final summary line, e.g. `synced in 3.2s: 4 images mirrored (12 blobs, 38.1 MiB
    /// copied, 3 mounted, 9 skipped), tags: 5 created, 2 moved, 1 deleted; 0 failed, 0
    /// conflicts`. Each other kind of refusal is counted by its name after the conflicts,
    /// when there are any: `2 immutable tags left as they are`, `1 not deleted`.
    pub fn summary(&self) -> String {
        if let Some(r) = &self.refused {
            return format!("nothing synced: {r}");
        }
        let s = &self.stats;
        let mut line = format!(
            "synced in {:.1}s: {} mirrored ({}, {} copied, {} mounted, {} skipped), tags: {} created, {} moved, {} deleted; {} failed, {}",
            self.elapsed.as_secs_f64(),
            counted(s.images, "image", "images"),
            counted(s.blobs_copied, "blob", "blobs"),
            human_bytes(s.bytes_copied),
            s.blobs_mounted,
            s.blobs_skipped,
            self.tags_created(),
            self.tags_moved(),
            self.tags_deleted(),
            self.failed(),
            counted(self.conflicts(), "conflict", "conflicts"),
        );
        match self.immutable {
            0 => {}
            1 => line.push_str(", 1 immutable tag left as it is"),
            n => line.push_str(&format!(", {n} immutable tags left as they are")),
        }
        if self.left() > 0 {
            line.push_str(&format!(", {} not deleted", self.left()));
        }
        if !self.payload_refusals.is_empty() {
            line.push_str(&format!(
                ", {} refused",
                counted(self.payload_refusals.len(), "payload", "payloads")
            ));
        }
        if s.retries > 0 {
            line.push_str(&format!(" ({})", counted(s.retries, "retry", "retries")));
        }
        line
    }
}

/// `1 image`, `2 images`: a count with its noun, singular for one.
fn counted(n: impl TryInto<u64>, one: &str, many: &str) -> String {
    let n: u64 = n.try_into().unwrap_or(u64::MAX);
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `1.5 KiB`, `38.1 MiB`: binary units, one decimal.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
