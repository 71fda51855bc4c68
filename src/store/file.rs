//! The state in `.relsync/state.json`: read-modify-write under an exclusive lock on
//! `.relsync/state.lock`, written durably ([`crate::fs_durable::write_durably`]).

use std::path::Path;

use super::{StateError, SyncState, parse};
use crate::fs_durable::{FileLock, FsError, write_durably};

fn io(path: &Path) -> impl Fn(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn fs(e: FsError) -> StateError {
    StateError::Io {
        path: e.path,
        source: e.source,
    }
}

/// Reads the state file (empty state when it does not exist).
pub(super) fn load(path: &Path) -> Result<SyncState, StateError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&path.display().to_string(), &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncState::default()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Reads, changes and writes the state file under the directory's lock.
pub(super) fn update(
    path: &Path,
    change: impl Fn(&mut SyncState),
) -> Result<SyncState, StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lock = FileLock::file(&dir.join("state.lock"), || {}).map_err(fs)?;
    let mut state = load(path)?;
    change(&mut state);
    write_durably(path, state.to_json_within(None).as_bytes()).map_err(fs)?;
    drop(lock);
    Ok(state)
}
