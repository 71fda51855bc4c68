//! Durable file writes and file locks, the one way relsync does each: the `oci:` layouts,
//! the state file and the Git cache all use these.
//!
//! - [`write_durably`]: write a temporary file beside the target, fsync it, rename it over
//!   the target, fsync the directory; a crash at any point leaves the old content or the
//!   new, never a mix, and a rename that returned survives a power cut.
//! - [`FileLock`]: an exclusive advisory lock (`flock` on Unix) on a file or a directory,
//!   released when dropped or when the process dies.
//! - [`run`]: runs such blocking work on tokio's blocking threads, so that waiting on a
//!   disk or on another process's lock never holds up the async runtime.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A file operation that failed, with the path it failed on; each caller turns it into its
/// own error type.
#[derive(Debug)]
pub(crate) struct FsError {
    /// The file or directory the operation was on.
    pub path: PathBuf,
    /// Why it failed.
    pub source: std::io::Error,
}

impl FsError {
    fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FsError + '_ {
        move |source| FsError {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Replaces `path` with `bytes` durably: writes `<name>.tmp-<random>` beside it, syncs it,
/// renames it over `path` and syncs the directory. The temporary file is removed when a
/// step fails; one left by a killed process carries `.tmp-` in its name, for sweeps.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!("{name}.tmp-{:016x}", fastrand::u64(..)));
    let guard = RemoveOnDrop(Some(tmp.clone()));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(FsError::at(&tmp))?;
    f.write_all(bytes).map_err(FsError::at(&tmp))?;
    // On disk before it replaces the old content: a crash leaves one or the other.
    f.sync_all().map_err(FsError::at(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(FsError::at(path))?;
    guard.keep();
    sync_dir(dir)
}

/// Makes the renames and creations done in `dir` durable (fsync of the directory; nothing
/// to do where directories cannot be synced).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), FsError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FsError::at(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes a file when dropped, unless kept.
pub(crate) struct RemoveOnDrop(pub Option<PathBuf>);

impl RemoveOnDrop {
    /// Keeps the file: it has its final name now.
    pub(crate) fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// An exclusive advisory lock, held until dropped (or until the process dies: the kernel
/// releases it then, so a killed holder never leaves a stale lock).
#[derive(Debug)]
pub(crate) struct FileLock(File);

impl FileLock {
    /// Locks the file `path`, creating it when missing (its content is never touched).
    /// When another holder has it, `waiting` is called once and the lock is waited for.
    pub(crate) fn file(path: &Path, waiting: impl FnOnce()) -> Result<FileLock, FsError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(FsError::at(path))?;
        Self::hold(file, path, waiting)
    }

    /// Locks the directory `dir` (created when missing) itself, so that no lock file is left
    /// in it; where a directory cannot be opened as a file, the file `dir/<fallback>`.
    pub(crate) fn directory(dir: &Path, fallback: &str) -> Result<FileLock, FsError> {
        std::fs::create_dir_all(dir).map_err(FsError::at(dir))?;
        #[cfg(unix)]
        {
            let _ = fallback;
            let file = File::open(dir).map_err(FsError::at(dir))?;
            Self::hold(file, dir, || {})
        }
        #[cfg(not(unix))]
        Self::file(&dir.join(fallback), || {})
    }

    fn hold(file: File, path: &Path, waiting: impl FnOnce()) -> Result<FileLock, FsError> {
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting();
                file.lock().map_err(FsError::at(path))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(FsError::at(path)(e)),
        }
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Runs `work` on a blocking thread and returns its result. A panic there is carried on as
/// a panic (it is a bug); a runtime shutting down before the work ran becomes the error
/// `cancelled` makes of an [`std::io::ErrorKind::Interrupted`] error.
pub(crate) async fn run<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
    cancelled: impl FnOnce(std::io::Error) -> E,
) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(cancelled(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            format!("file work cancelled: {e}"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_durably(&path, b"one").unwrap();
        write_durably(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn a_failed_durable_write_keeps_the_old_content_and_removes_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        write_durably(&path, b"old").unwrap();
        // A directory in the way of the rename: the write fails after the temporary file
        // was written.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        let e = write_durably(&blocked, b"new").unwrap_err();
        assert_eq!(e.path, blocked);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["blocked", "index.json"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn a_lock_excludes_other_holders_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = FileLock::file(&path, || panic!("nobody holds it yet")).unwrap();
        // Another open file description of the same file cannot take it meanwhile.
        let other = File::options().write(true).open(&path).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        let waited = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                FileLock::file(&path, || {
                    waited.store(true, std::sync::atomic::Ordering::SeqCst)
                })
                .unwrap()
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(held);
            drop(t.join().unwrap());
        });
        assert!(waited.load(std::sync::atomic::Ordering::SeqCst));

        let layout = dir.path().join("layout");
        let l = FileLock::directory(&layout, "index.json.lock").unwrap();
        assert!(layout.is_dir());
        let again = File::open(&layout).unwrap();
        assert!(again.try_lock().is_err());
        drop(l);
        assert!(again.try_lock().is_ok());
    }
}
