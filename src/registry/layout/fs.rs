//! A layout's files: blob paths (never through a link), locked temporary files and the sweep
//! of those a killed writer left, the layout's lock, its creation, and durable writes
//! ([`crate::fs_durable`]), all run off the async threads.

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::fs_durable::{FileLock, FsError, sync_dir, write_durably};
use crate::registry::{MANIFEST_MEDIA_TYPES, RegistryError};

/// The `oci-layout` file written into new layouts.
pub(super) const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// The path of the blob `digest` in the layout `dir`; a parsed [`Digest`] cannot leave it.
pub(super) fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm())
        .join(digest.hex())
}

/// Refuses a symbolic link at `blobs`, `blobs/<alg>` or the blob `digest` itself: a link
/// would make the layout read (or write) a file outside it.
pub(super) async fn refuse_blob_links(dir: &Path, digest: &Digest) -> Result<(), RegistryError> {
    let alg = Path::new("blobs").join(digest.algorithm());
    for rel in [PathBuf::from("blobs"), alg.join(digest.hex()), alg] {
        refuse_link(dir, &rel).await?;
    }
    Ok(())
}

/// Refuses `dir/rel` when it is a symbolic link (absent is fine).
pub(super) async fn refuse_link(dir: &Path, rel: &Path) -> Result<(), RegistryError> {
    let path = dir.join(rel);
    match tokio::fs::symlink_metadata(&path).await {
        Ok(m) if m.file_type().is_symlink() => Err(RegistryError::Layout {
            path: dir.to_path_buf(),
            reason: format!(
                "{} is a symbolic link; refusing to follow it out of the layout",
                rel.display()
            ),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RegistryError::Io { path, source }),
    }
}

/// Runs blocking file work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    crate::fs_durable::run(f, |source| RegistryError::Io {
        path: PathBuf::new(),
        source,
    })
    .await
}

/// Creates `dir/.tmp-<random>` and locks it (`flock`, released when the file is closed,
/// also by a killed process), so that [`sweep_leftovers`] can tell a live writer's file
/// from a dead one's. A name a sweep removed between the creation and the lock is given up
/// for another.
pub(super) fn locked_temp_file(dir: &Path) -> Result<(PathBuf, std::fs::File), RegistryError> {
    let mut last = None;
    for _ in 0..8 {
        let tmp = dir.join(format!(".tmp-{:016x}", fastrand::u64(..)));
        let io = |source| RegistryError::Io {
            path: tmp.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                last = Some(tmp);
                continue;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
        }
        if same_file(&tmp, &file) {
            return Ok((tmp, file));
        }
        last = Some(tmp);
    }
    let path = last.unwrap_or_else(|| dir.to_path_buf());
    Err(RegistryError::Io {
        source: std::io::Error::other("temporary files keep being swept away"),
        path,
    })
}

/// Whether `path` still names the open `file` (a sweep may have removed it).
pub(super) fn same_file(path: &Path, file: &std::fs::File) -> bool {
    let (Ok(on_disk), Ok(open)) = (std::fs::symlink_metadata(path), file.metadata()) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        on_disk.ino() == open.ino() && on_disk.dev() == open.dev()
    }
    #[cfg(not(unix))]
    {
        let _ = (on_disk, open);
        true
    }
}

/// Removes what writers killed mid-write left in the layout at `dir`: `blobs/<alg>/.tmp-*`
/// files no live writer holds locked (each removed while this process holds its lock, so
/// a writer that locks it later sees it gone), and `*.tmp-*` files beside `index.json`
/// (written under the layout lock, which the caller holds). A leftover is only wasted
/// space, so failures are ignored.
pub(super) fn sweep_leftovers(dir: &Path) {
    let temporary = |e: &std::fs::DirEntry| {
        e.file_name().to_string_lossy().contains(".tmp-")
            && e.file_type().is_ok_and(|t| t.is_file())
    };
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten().filter(temporary) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let Ok(algorithms) = std::fs::read_dir(dir.join("blobs")) else {
        return;
    };
    for alg in algorithms.flatten() {
        if !alg.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(alg.path()) else {
            continue;
        };
        for e in entries.flatten().filter(temporary) {
            let Ok(file) = std::fs::OpenOptions::new().write(true).open(e.path()) else {
                continue;
            };
            if file.try_lock().is_ok() {
                tracing::debug!(path = %e.path().display(), "removing a dead writer's temporary file");
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The exclusive lock on the layout at `dir`, held until dropped: on the directory itself,
/// so that no lock file is left in the layout (`index.json.lock` where a directory cannot
/// be locked).
pub(super) fn lock_layout(dir: &Path) -> Result<FileLock, RegistryError> {
    FileLock::directory(dir, "index.json.lock").map_err(fs_error)
}

/// A failed file operation as a [`RegistryError::Io`].
pub(super) fn fs_error(e: FsError) -> RegistryError {
    RegistryError::Io {
        path: e.path,
        source: e.source,
    }
}

/// Creates what is missing of a layout at `dir`; the caller holds its lock ([`lock_layout`]).
pub(super) fn ensure_layout_locked(dir: &Path) -> Result<(), RegistryError> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|source| RegistryError::Io {
        path: blobs.clone(),
        source,
    })?;
    let oci_layout = dir.join("oci-layout");
    let index = dir.join("index.json");
    let has = |p: &Path| {
        std::fs::symlink_metadata(p).map(|_| true).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(false)
            } else {
                Err(RegistryError::Io {
                    path: p.to_path_buf(),
                    source: e,
                })
            }
        })
    };
    let (has_layout, has_index) = (has(&oci_layout)?, has(&index)?);
    if !has_layout {
        if has_index {
            return Err(RegistryError::Layout {
                path: dir.to_path_buf(),
                reason: "index.json without an oci-layout file: not an OCI image layout"
                    .to_string(),
            });
        }
        write_atomically(dir, "oci-layout", OCI_LAYOUT.as_bytes())?;
    }
    if !has_index {
        let empty = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPES[0],
            "manifests": [],
        });
        let bytes = serde_json::to_vec_pretty(&empty).map_err(|source| RegistryError::Json {
            context: format!("writing {}", index.display()),
            source,
        })?;
        write_atomically(dir, "index.json", &bytes)?;
    }
    Ok(())
}

/// Writes `dir/name` durably ([`write_durably`]).
pub(super) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RegistryError> {
    write_durably(&dir.join(name), bytes).map_err(fs_error)
}

pub(super) async fn sync_dir_async(dir: PathBuf) -> Result<(), RegistryError> {
    blocking(move || sync_dir(&dir).map_err(fs_error)).await
}
