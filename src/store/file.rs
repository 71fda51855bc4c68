//! The state in `.relsync/state.json`: read-modify-write under an exclusive lock on the
//! `.relsync` directory, written to a temporary file and renamed over the old one.

use std::path::Path;

use super::{StateError, SyncState, parse};

fn io(path: &Path) -> impl Fn(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
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
    let lock_path = dir.join("state.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    let mut state = load(path)?;
    change(&mut state);
    let text = state.to_json_within(None);
    let tmp = dir.join(format!(".state.json.{}.tmp", std::process::id()));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io(&tmp))?;
        // On disk before it replaces the old state: a crash leaves one or the other.
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    drop(lock);
    Ok(state)
}
