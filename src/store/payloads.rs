//! The component-list cache of payload releases, kept apart from the history so it never
//! crowds the history's 1 MiB cap: `.relsync/payloads.json` beside relsync.yaml, or with the
//! cluster on the ConfigMap `relsync-payloads` (key `payloads.json`). A release digest's
//! component list never changes, so an entry is never invalidated; a no-op sync reads no
//! layer. Written read-modify-write under its own lock (`.relsync/payloads.lock`, or the
//! ConfigMap's `resourceVersion`), so two processes adding lists lose neither.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{StateError, StateStore, blocking};
use crate::digest::Digest;
use crate::fs_durable::{FileLock, write_durably};
use crate::payload::ComponentList;

/// The ConfigMap of the cache when the cluster is on.
pub const PAYLOADS_CONFIG_MAP: &str = "relsync-payloads";
/// Its key.
pub const PAYLOADS_CONFIG_MAP_KEY: &str = "payloads.json";
/// The file name beside `state.json`.
pub const PAYLOADS_FILE: &str = "payloads.json";

/// The cached component lists, by release digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadCache {
    /// Release digest (text) → its components.
    #[serde(default)]
    pub releases: BTreeMap<String, ComponentList>,
}

impl PayloadCache {
    /// The lists by parsed digest (entries whose key is not a digest are skipped).
    pub fn lists(&self) -> BTreeMap<Digest, ComponentList> {
        self.releases
            .iter()
            .filter_map(|(d, l)| Digest::parse(d).ok().map(|d| (d, l.clone())))
            .collect()
    }

    /// JSON within `limit` bytes when given: entries whose digest is not in `keep` go first,
    /// then the rest (by digest order) until it fits.
    fn to_json_within(&self, limit: Option<usize>, keep: &BTreeSet<String>) -> String {
        let mut cache = self.clone();
        loop {
            let text = serde_json::to_string(&cache).unwrap_or_else(|_| "{}".to_string());
            match limit {
                Some(limit) if text.len() > limit && !cache.releases.is_empty() => {
                    let victim = cache
                        .releases
                        .keys()
                        .find(|k| !keep.contains(*k))
                        .or_else(|| cache.releases.keys().next())
                        .cloned();
                    if let Some(v) = victim {
                        cache.releases.remove(&v);
                    }
                }
                _ => return text,
            }
        }
    }
}

impl StateStore {
    /// Where the component-list cache lives, for messages.
    pub fn describe_payloads(&self) -> String {
        match self {
            StateStore::File(p) => payloads_path(p).display().to_string(),
            StateStore::ConfigMap(c) => {
                format!("configmap {}/{PAYLOADS_CONFIG_MAP}", c.default_namespace())
            }
        }
    }

    /// Reads the component-list cache (empty when there is none yet).
    pub async fn load_payloads(&self) -> Result<PayloadCache, StateError> {
        let place = self.describe_payloads();
        match self {
            StateStore::File(p) => {
                let path = payloads_path(p);
                blocking(&path.clone(), move || load_file(&path)).await
            }
            StateStore::ConfigMap(c) => c
                .read_state(PAYLOADS_CONFIG_MAP, PAYLOADS_CONFIG_MAP_KEY)
                .await?
                .map(|text| parse(&place, &text))
                .transpose()
                .map(Option::unwrap_or_default),
        }
    }

    /// Adds `lists` to the cache. With the cluster on the ConfigMap stays under its cap:
    /// lists of digests outside `keep` (the releases Git names now) are dropped first.
    pub async fn add_payloads(
        &self,
        lists: BTreeMap<Digest, ComponentList>,
        keep: BTreeSet<Digest>,
    ) -> Result<(), StateError> {
        let keep: BTreeSet<String> = keep.iter().map(Digest::to_string).collect();
        let add = move |cache: &mut PayloadCache| {
            for (d, l) in &lists {
                cache.releases.insert(d.to_string(), l.clone());
            }
        };
        match self {
            StateStore::File(p) => {
                let path = payloads_path(p);
                blocking(&path.clone(), move || {
                    let dir = path.parent().unwrap_or(Path::new("."));
                    std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                    let lock = FileLock::file(&dir.join("payloads.lock"), || {}).map_err(fs)?;
                    let mut cache = load_file(&path)?;
                    add(&mut cache);
                    write_durably(&path, cache.to_json_within(None, &keep).as_bytes())
                        .map_err(fs)?;
                    drop(lock);
                    Ok(())
                })
                .await
            }
            StateStore::ConfigMap(c) => {
                let place = self.describe_payloads();
                c.update_state(PAYLOADS_CONFIG_MAP, PAYLOADS_CONFIG_MAP_KEY, |text| {
                    let mut cache = match text {
                        Some(t) => parse(&place, t)?,
                        None => PayloadCache::default(),
                    };
                    add(&mut cache);
                    Ok::<_, StateError>(cache.to_json_within(Some(super::CONFIG_MAP_LIMIT), &keep))
                })
                .await
                .map(|_| ())
            }
        }
    }
}

/// `.relsync/payloads.json` beside the state file.
fn payloads_path(state_file: &Path) -> std::path::PathBuf {
    state_file
        .parent()
        .unwrap_or(Path::new("."))
        .join(PAYLOADS_FILE)
}

fn fs(e: crate::fs_durable::FsError) -> StateError {
    StateError::Io {
        path: e.path,
        source: e.source,
    }
}

fn load_file(path: &Path) -> Result<PayloadCache, StateError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&path.display().to_string(), &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PayloadCache::default()),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse(place: &str, text: &str) -> Result<PayloadCache, StateError> {
    serde_json::from_str(text).map_err(|e| StateError::Corrupt {
        place: place.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Component;

    fn list(n: usize) -> ComponentList {
        ComponentList {
            components: (0..n)
                .map(|i| Component {
                    name: format!("c{i}"),
                    arch: None,
                    source: "q.io/c".into(),
                    digest: Digest::sha256_of(format!("{i}").as_bytes()),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn lists_are_added_and_read_back_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), None);
        assert_eq!(
            store.load_payloads().await.unwrap(),
            PayloadCache::default()
        );
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        store
            .add_payloads(BTreeMap::from([(a.clone(), list(2))]), BTreeSet::new())
            .await
            .unwrap();
        store
            .add_payloads(BTreeMap::from([(b.clone(), list(3))]), BTreeSet::new())
            .await
            .unwrap();
        let lists = store.load_payloads().await.unwrap().lists();
        assert_eq!(lists[&a].len(), 2);
        assert_eq!(lists[&b].len(), 3);
        assert!(dir.path().join(".relsync/payloads.json").exists());
        assert!(
            !dir.path().join(".relsync/state.json").exists(),
            "apart from history"
        );
    }

    #[test]
    fn over_the_cap_lists_outside_keep_go_first() {
        let mut cache = PayloadCache::default();
        for k in ["a", "b", "c"] {
            cache.releases.insert(k.to_string(), list(20));
        }
        let keep = BTreeSet::from(["b".to_string()]);
        let one = serde_json::to_string(&cache).unwrap().len() / 3;
        let text = cache.to_json_within(Some(one + 40), &keep);
        let kept: PayloadCache = serde_json::from_str(&text).unwrap();
        assert_eq!(kept.releases.keys().collect::<Vec<_>>(), ["b"]);
    }
}
