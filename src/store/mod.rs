//! Sync history and rollback holds (DESIGN.md, "Rollback"), stored together: with the
//! cluster on, in the ConfigMap `relsync-state` of the kubeconfig context's namespace
//! (the newest entries that fit 1 MiB); otherwise in `.relsync/state.json` beside
//! relsync.yaml, without a cap.
//!
//! The model ([`SyncState`]) is plain data; [`StateStore`] reads and updates it where it
//! lives, read-modify-write under a lock (a file lock, or the ConfigMap's
//! `resourceVersion` with a retry on 409), so two processes recording at once lose
//! nothing. A sync is recorded before its first write as interrupted and that entry is
//! replaced when it ends, so one that never ends (abandoned at shutdown, killed) still
//! shows.
//!
//! The component-list cache of payload releases lives apart from the history, in its own
//! file or ConfigMap ([`payloads`]).

mod file;
pub mod payloads;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, ClusterError};

/// The ConfigMap that holds the state when the cluster is on.
pub const CONFIG_MAP: &str = "relsync-state";
/// The key of the state in that ConfigMap.
pub const CONFIG_MAP_KEY: &str = "state.json";
/// The most the ConfigMap's state may take: the newest history entries that fit are kept
/// (Kubernetes refuses ConfigMaps over 1 MiB; this leaves room for the object's metadata).
pub const CONFIG_MAP_LIMIT: usize = 1024 * 1024 - 16 * 1024;

/// What a history entry was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// `relsync sync` (or a sync by `serve`).
    Sync,
    /// `relsync rollback`.
    Rollback,
}

/// How a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncOutcome {
    /// Every action succeeded.
    Succeeded,
    /// Some action failed or met a conflict (the others were applied).
    Failed,
    /// The plan was refused: nothing was written.
    Refused,
    /// The sync began writing and never finished: `serve` abandoned it at the end of its
    /// grace period, or the process died. Some of its tags may have been written.
    Interrupted,
}

impl std::fmt::Display for SyncOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SyncOutcome::Succeeded => "succeeded",
            SyncOutcome::Failed => "failed",
            SyncOutcome::Refused => "refused",
            SyncOutcome::Interrupted => "interrupted",
        })
    }
}

/// One sync, as `relsync history` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The commit sha synced.
    pub revision: String,
    /// When the sync ended (RFC 3339, UTC); for an interrupted one, when it began.
    pub time: String,
    /// The commit's author, `Name <email>`.
    pub author: String,
    /// The commit's subject line.
    pub subject: String,
    /// Sync or rollback.
    pub kind: EntryKind,
    /// `--channel`, when the sync was narrowed to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// How it ended.
    pub outcome: SyncOutcome,
    /// The sync's summary line.
    pub summary: String,
}

/// A rollback hold: `serve` keeps `revision`'s desired state while the branch tip is still
/// `tip`, then follows Git again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// The commit rolled back to.
    pub revision: String,
    /// The revision followed (the config's `git.revision`, e.g. `HEAD` or `main`).
    pub branch: String,
    /// The branch tip when the hold was made.
    pub tip: String,
    /// The channel held (`None`: every channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// When it was made (RFC 3339, UTC).
    pub time: String,
}

/// History (newest first) and holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// Syncs, newest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Rollback holds, at most one per channel (and one for all channels).
    #[serde(default)]
    pub holds: Vec<Hold>,
}

impl SyncState {
    /// Records a sync as the newest entry.
    pub fn record(&mut self, entry: HistoryEntry) {
        self.history.insert(0, entry);
    }

    /// Records a sync, but one that failed (or was refused) the same way at the same
    /// revision as the newest entry replaces it instead of adding another: a controller
    /// retrying a failing sync every few seconds keeps one entry, with its last time.
    pub fn record_repeat(&mut self, entry: HistoryEntry) {
        let repeat = self.history.first().is_some_and(|last| {
            entry.outcome != SyncOutcome::Succeeded
                && last.outcome == entry.outcome
                && last.revision == entry.revision
                && last.kind == entry.kind
                && last.channel == entry.channel
        });
        if repeat {
            self.history[0] = entry;
        } else {
            self.record(entry);
        }
    }

    /// Records a sync that is about to write, as [`SyncOutcome::Interrupted`]: should it
    /// never finish (abandoned at shutdown, or killed), the history still shows it.
    /// [`SyncState::finish`] replaces it with the sync's own entry.
    pub fn record_started(&mut self, started: HistoryEntry) {
        self.record(started);
    }

    /// Replaces `started` (recorded by [`SyncState::record_started`]) with `entry`, as
    /// [`SyncState::record`] (with `collapse_repeats`, [`SyncState::record_repeat`]) records
    /// it; when `started` is not in the history (never recorded, or cut by the ConfigMap's
    /// cap), just records `entry`.
    pub fn finish(&mut self, started: &HistoryEntry, entry: HistoryEntry, collapse_repeats: bool) {
        if let Some(i) = self.history.iter().position(|e| e == started) {
            self.history.remove(i);
        }
        if collapse_repeats {
            self.record_repeat(entry);
        } else {
            self.record(entry);
        }
    }

    /// Sets a hold, replacing one for the same channel.
    pub fn hold(&mut self, hold: Hold) {
        self.holds.retain(|h| h.channel != hold.channel);
        self.holds.push(hold);
    }

    /// The hold in force for `channel` (`None`: the whole state) while the branch tip is
    /// `tip`: a hold of that channel, else one of every channel; holds made at another tip
    /// are over.
    pub fn hold_for(&self, channel: Option<&str>, tip: &str) -> Option<&Hold> {
        let live = |h: &&Hold| h.tip == tip;
        self.holds
            .iter()
            .filter(live)
            .find(|h| h.channel.as_deref() == channel)
            .or_else(|| self.holds.iter().filter(live).find(|h| h.channel.is_none()))
    }

    /// Removes the holds made at another tip than `tip` (the branch moved on: the revert
    /// or a fix) and returns them.
    pub fn release_moved(&mut self, tip: &str) -> Vec<Hold> {
        let (kept, released) = self.holds.drain(..).partition(|h| h.tip == tip);
        self.holds = kept;
        released
    }

    /// The JSON text, dropping the oldest history entries until it fits in `limit` bytes
    /// (holds are always kept).
    pub fn to_json_within(&self, limit: Option<usize>) -> String {
        let mut state = self.clone();
        loop {
            let text = serde_json::to_string_pretty(&state).unwrap_or_default();
            match limit {
                Some(limit) if text.len() > limit && !state.history.is_empty() => {
                    // Drop roughly the share that is over, at least one entry.
                    let over = text.len() - limit;
                    let per = text.len() / (state.history.len() + 1);
                    let n = (over / per.max(1)).max(1).min(state.history.len());
                    state.history.truncate(state.history.len() - n);
                }
                _ => return text,
            }
        }
    }
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state file could not be read or written.
    #[error("sync state file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The stored state is not valid JSON of the expected shape.
    #[error("{place}: unreadable sync state: {message}")]
    Corrupt {
        /// The file or ConfigMap.
        place: String,
        /// What is wrong.
        message: String,
    },
    /// The ConfigMap could not be read or written.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub enum StateStore {
    /// `.relsync/state.json` beside relsync.yaml.
    File(PathBuf),
    /// ConfigMap `relsync-state` in the kubeconfig context's namespace.
    ConfigMap(Cluster),
}

impl StateStore {
    /// The store for a config in `config_dir`: the ConfigMap when `cluster` is given,
    /// else the file.
    pub fn new(config_dir: &std::path::Path, cluster: Option<Cluster>) -> StateStore {
        match cluster {
            Some(c) => StateStore::ConfigMap(c),
            None => StateStore::File(config_dir.join(".relsync").join("state.json")),
        }
    }

    /// Where, for messages: the file's path or `configmap <ns>/relsync-state`.
    pub fn describe(&self) -> String {
        match self {
            StateStore::File(p) => p.display().to_string(),
            StateStore::ConfigMap(c) => format!("configmap {}/{CONFIG_MAP}", c.default_namespace()),
        }
    }

    /// Reads the state (empty when there is none yet).
    pub async fn load(&self) -> Result<SyncState, StateError> {
        match self {
            StateStore::File(p) => {
                let path = p.clone();
                blocking(p, move || file::load(&path)).await
            }
            StateStore::ConfigMap(c) => c
                .read_state(CONFIG_MAP, CONFIG_MAP_KEY)
                .await?
                .map(|text| parse(&self.describe(), &text))
                .transpose()
                .map(Option::unwrap_or_default),
        }
    }

    /// Reads, changes with `change`, and writes back, atomically with respect to other
    /// relsync processes; returns the state written. The file is locked, read and written
    /// on a blocking thread, so waiting for another process's lock never holds up the
    /// runtime.
    pub async fn update(
        &self,
        change: impl Fn(&mut SyncState) + Send + Sync + 'static,
    ) -> Result<SyncState, StateError> {
        match self {
            StateStore::File(p) => {
                let path = p.clone();
                blocking(p, move || file::update(&path, change)).await
            }
            StateStore::ConfigMap(c) => {
                let place = self.describe();
                let updated = c
                    .update_state(CONFIG_MAP, CONFIG_MAP_KEY, |text| {
                        let mut state = match text {
                            Some(t) => parse(&place, t)?,
                            None => SyncState::default(),
                        };
                        change(&mut state);
                        Ok::<_, StateError>(state.to_json_within(Some(CONFIG_MAP_LIMIT)))
                    })
                    .await?;
                parse(&place, &updated)
            }
        }
    }
}

/// Runs file work on tokio's blocking threads; a cancelled run is an I/O error on `path`.
async fn blocking<T: Send + 'static>(
    path: &std::path::Path,
    work: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    let path = path.to_path_buf();
    crate::fs_durable::run(work, |source| StateError::Io { path, source }).await
}

/// Parses stored state.
fn parse(place: &str, text: &str) -> Result<SyncState, StateError> {
    serde_json::from_str(text).map_err(|e| StateError::Corrupt {
        place: place.to_string(),
        message: e.to_string(),
    })
}

/// Now, RFC 3339 in UTC to the second.
pub fn now() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> HistoryEntry {
        HistoryEntry {
            revision: format!("{n:040}"),
            time: "2026-11-24T01:00:00Z".into(),
            author: "A <a@example.org>".into(),
            subject: "x".repeat(100),
            kind: EntryKind::Sync,
            channel: None,
            outcome: SyncOutcome::Succeeded,
            summary: "synced".into(),
        }
    }

    fn hold(channel: Option<&str>, tip: &str) -> Hold {
        Hold {
            revision: "r".into(),
            branch: "HEAD".into(),
            tip: tip.into(),
            channel: channel.map(str::to_string),
            time: "t".into(),
        }
    }

    #[test]
    fn json_within_a_limit_keeps_the_newest_entries_and_every_hold() {
        let mut s = SyncState::default();
        for n in 0..1000 {
            s.record(entry(n));
        }
        s.hold(hold(None, "tip"));
        let text = s.to_json_within(Some(20_000));
        assert!(text.len() <= 20_000, "{}", text.len());
        let back: SyncState = serde_json::from_str(&text).unwrap();
        assert!(back.history.len() > 10);
        assert_eq!(back.history[0], entry(999), "newest first, kept");
        assert_eq!(back.holds.len(), 1);
        assert_eq!(
            s.to_json_within(None).len(),
            serde_json::to_string_pretty(&s).unwrap().len()
        );
    }

    #[test]
    fn a_repeated_failure_replaces_the_newest_entry_a_success_never_does() {
        let mut s = SyncState::default();
        let failed = |summary: &str| HistoryEntry {
            outcome: SyncOutcome::Failed,
            summary: summary.into(),
            ..entry(1)
        };
        s.record_repeat(entry(1));
        s.record_repeat(failed("first"));
        s.record_repeat(failed("second"));
        assert_eq!(s.history.len(), 2);
        assert_eq!(s.history[0].summary, "second");
        s.record_repeat(entry(1));
        s.record_repeat(entry(1));
        assert_eq!(s.history.len(), 4, "successes are all kept");
        s.record_repeat(HistoryEntry {
            revision: "other".into(),
            ..failed("third")
        });
        assert_eq!(s.history.len(), 5, "another revision is another entry");
    }

    #[test]
    fn a_started_sync_stays_interrupted_unless_finished_and_finishing_collapses_repeats() {
        let mut s = SyncState::default();
        let failed = HistoryEntry {
            outcome: SyncOutcome::Failed,
            ..entry(1)
        };
        s.record(failed.clone());
        let started = HistoryEntry {
            outcome: SyncOutcome::Interrupted,
            summary: "interrupted".into(),
            ..entry(1)
        };
        s.record_started(started.clone());
        assert_eq!(s.history[0].outcome, SyncOutcome::Interrupted);
        // Finished: the placeholder goes, and a repeated failure collapses as before.
        s.finish(&started, failed.clone(), true);
        assert_eq!(s.history, vec![failed.clone()]);
        // Never finished (abandoned): it stays, and the next sync is recorded beside it.
        s.record_started(started.clone());
        let next = HistoryEntry {
            time: "later".into(),
            ..started.clone()
        };
        s.record_started(next.clone());
        s.finish(&next, entry(1), true);
        let outcomes: Vec<SyncOutcome> = s.history.iter().map(|e| e.outcome).collect();
        assert_eq!(
            outcomes,
            [
                SyncOutcome::Succeeded,
                SyncOutcome::Interrupted,
                SyncOutcome::Failed
            ]
        );
        assert_eq!(s.history[1].outcome.to_string(), "interrupted");
    }

    #[test]
    fn a_hold_lasts_while_the_tip_is_unchanged_and_a_channel_hold_wins() {
        let mut s = SyncState::default();
        s.hold(hold(None, "t1"));
        s.hold(hold(Some("stable"), "t1"));
        assert_eq!(
            s.hold_for(Some("stable"), "t1").unwrap().channel.as_deref(),
            Some("stable")
        );
        assert!(s.hold_for(Some("next"), "t1").unwrap().channel.is_none());
        assert!(s.hold_for(None, "t2").is_none());
        s.hold(hold(Some("stable"), "t2"));
        assert_eq!(s.holds.len(), 2, "a channel has one hold");
        let released = s.release_moved("t2");
        assert_eq!(released.len(), 1);
        assert_eq!(s.holds.len(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiting_for_another_process_s_state_lock_does_not_stop_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), None);
        let lock_path = dir.path().join(".relsync").join("state.lock");
        std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
        // "Another process": a second open file description holding the flock, released
        // once the runtime has shown it still runs tasks (or after 10 s, so that a
        // blocked runtime fails the test instead of hanging it).
        let held = std::fs::File::create(&lock_path).unwrap();
        held.lock().unwrap();
        let (progress_tx, progress_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let progressed = progress_rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .is_ok();
            drop(held);
            progressed
        });

        let update = tokio::spawn(async move { store.update(|s| s.record(entry(1))).await });
        // Other tasks of this one-thread runtime run while the update waits.
        for _ in 0..10 {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let waiting = !update.is_finished();
        progress_tx.send(()).ok();
        let state = update.await.unwrap().unwrap();
        assert!(
            holder.join().unwrap(),
            "the runtime stood still while the lock was held"
        );
        assert!(waiting, "the update did not wait for the lock");
        assert_eq!(state.history.len(), 1);
    }
}
