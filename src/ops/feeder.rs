//! The feeder rule, once for `check` and `promote`: a version may enter a channel fed by
//! another only when the feeder lists it at the revision judged, and has since the
//! committer time of the first first-parent commit listing it, at least the feeder's
//! `delay` ago. Dates written in files are never read; a shallow clone is refused.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Context, OpsError};
use crate::desired;
use crate::git::history;
use crate::manifest::{Manifests, SourceFile};

/// Whether `manifests` publish `version` in channel `channel`.
pub fn lists(manifests: &Manifests, channel: &str, version: &str) -> bool {
    manifests
        .channels
        .get(channel)
        .is_some_and(|c| c.published().any(|p| p.value == version))
}

/// What the feeder rule says of one version entering a channel fed by another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeederVerdict {
    /// In the feeder at the revision, for at least the delay.
    Passed,
    /// Not in the feeder at the revision, or never on its first-parent history.
    NotInFeeder,
    /// In the feeder, but for less than the delay.
    TooSoon {
        /// The first first-parent commit that listed it in the feeder.
        commit: String,
        /// Seconds since that commit's committer time.
        elapsed: u64,
        /// The feeder's delay, in seconds.
        delay: u64,
    },
}

/// The feeder rule: a version may enter a fed channel when the feeder lists it at the
/// revision (`in_feeder`) and has since `first` (the first first-parent commit listing
/// it), at least `delay` seconds before `now` (seconds since the Unix epoch). Dates
/// written in files are never read: only the committer time.
pub fn judge_feeder(
    first: Option<&history::FirstCommit>,
    in_feeder: bool,
    delay: u64,
    now: i64,
) -> FeederVerdict {
    let Some(first) = first.filter(|_| in_feeder) else {
        return FeederVerdict::NotInFeeder;
    };
    let elapsed = now.saturating_sub(first.committer_time).max(0) as u64;
    if elapsed < delay {
        FeederVerdict::TooSoon {
            commit: first.commit.clone(),
            elapsed,
            delay,
        }
    } else {
        FeederVerdict::Passed
    }
}

/// The first-parent history the feeder rule reads, from one revision: when each version
/// first entered each feeder, one walk per `(feeder, version)`.
pub struct FeederHistory<'a> {
    repo: &'a std::path::Path,
    revision: &'a str,
    dirs: &'a [&'a str],
    policies: &'a str,
    firsts: BTreeMap<(String, String), Option<history::FirstCommit>>,
}

impl<'a> FeederHistory<'a> {
    /// The history of `revision` in `ctx`'s repository, reading `dirs`.
    pub fn new(ctx: &'a Context, revision: &'a str, dirs: &'a [&'a str]) -> FeederHistory<'a> {
        FeederHistory {
            repo: &ctx.repo,
            revision,
            dirs,
            policies: ctx.config.git.policies.as_str(),
            firsts: BTreeMap::new(),
        }
    }

    /// Whether the manifests in `files` publish `version` in `feeder`.
    pub fn lists(&self, files: &[SourceFile], feeder: &str, version: &str) -> bool {
        desired::load(files, self.policies).is_ok_and(|m| lists(&m, feeder, version))
    }

    /// The oldest commit on the first-parent chain from the revision whose manifests list
    /// `version` in `feeder` (`None`: none does). A shallow clone is refused.
    pub fn first_listed(
        &mut self,
        feeder: &str,
        version: &str,
    ) -> Result<Option<history::FirstCommit>, OpsError> {
        let key = (feeder.to_string(), version.to_string());
        if let Some(first) = self.firsts.get(&key) {
            return Ok(first.clone());
        }
        let policies = self.policies;
        let holds = |files: &[SourceFile]| {
            desired::load(files, policies).is_ok_and(|m| lists(&m, feeder, version))
        };
        let first = history::first_first_parent_commit(self.repo, self.revision, self.dirs, holds)
            .map_err(|e| match e {
                history::HistoryError::Git(g) => OpsError::Git(g),
                other => OpsError::Refused(other.to_string()),
            })?;
        self.firsts.insert(key, first.clone());
        Ok(first)
    }
}

/// Now, in seconds since the Unix epoch (0 should the clock be before it).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(time: i64) -> history::FirstCommit {
        history::FirstCommit {
            commit: "c".repeat(40),
            committer_time: time,
        }
    }

    #[test]
    fn the_feeder_rule_needs_the_feeder_to_list_the_version_for_its_delay() {
        let day: u64 = 86_400;
        let now: i64 = 10 * 86_400;
        let iday = day as i64;
        assert_eq!(
            judge_feeder(None, true, day, now),
            FeederVerdict::NotInFeeder,
            "never on the feeder's history"
        );
        assert_eq!(
            judge_feeder(Some(&first(0)), false, day, now),
            FeederVerdict::NotInFeeder,
            "listed once, but no longer at the revision"
        );
        assert_eq!(
            judge_feeder(Some(&first(now - iday + 1)), true, day, now),
            FeederVerdict::TooSoon {
                commit: "c".repeat(40),
                elapsed: day - 1,
                delay: day
            }
        );
        assert_eq!(
            judge_feeder(Some(&first(now - iday)), true, day, now),
            FeederVerdict::Passed,
            "exactly the delay is enough"
        );
        assert_eq!(
            judge_feeder(Some(&first(now + 60)), true, 0, now),
            FeederVerdict::Passed,
            "a committer clock ahead counts as no time, and no delay needs none"
        );
        assert!(matches!(
            judge_feeder(Some(&first(now + 60)), true, 1, now),
            FeederVerdict::TooSoon { elapsed: 0, .. }
        ));
    }
}
