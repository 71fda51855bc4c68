//! Adapter (git2): reads the desired-state files from a revision's tree, or from the working
//! tree for `validate` as a pre-commit hook.
//!
//! Only `*.yaml`/`*.yml` files below the given directories are read. Symbolic links are
//! refused (a link could point outside the repository), and so are files over
//! [`MAX_FILE_BYTES`].

mod commit;
pub mod history;
pub mod remote;

pub use commit::{CommitInfo, commit_info};

use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository, Status, StatusOptions, Tree};

use crate::manifest::SourceFile;

/// The largest manifest file read; larger ones are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What went wrong reading Git.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The repository could not be opened.
    #[error("cannot open git repository {path}: {message}")]
    Open {
        /// The path tried.
        path: PathBuf,
        /// git2's message.
        message: String,
    },
    /// The revision does not name a commit.
    #[error("revision `{revision}` not found in {path}: {message}")]
    Revision {
        /// The revision asked for.
        revision: String,
        /// The repository.
        path: PathBuf,
        /// git2's message.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// Repository-relative path.
        path: String,
        /// The cause.
        message: String,
    },
    /// A symbolic link among the manifests.
    #[error("{path}: symbolic links are not read in the desired-state directories")]
    Symlink {
        /// Repository-relative path.
        path: String,
    },
    /// A file over the size limit.
    #[error("{path}: file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit for manifests")]
    TooLarge {
        /// Repository-relative path.
        path: String,
        /// Its size.
        size: u64,
    },
    /// Fetching or resolving a remote `git.repo` failed.
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
    /// The repository has no working tree (bare), so it cannot be validated as a worktree.
    #[error("{path} is a bare repository: there is no working tree to validate")]
    Bare {
        /// The repository.
        path: PathBuf,
    },
}

/// The files of the desired state at one revision (or in the working tree).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The commit sha the files were read from; `None` for the working tree.
    pub commit: Option<String>,
    /// Every `*.yaml`/`*.yml` file below the requested directories, sorted by path.
    pub files: Vec<SourceFile>,
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// `a`, `a/b`, `a/b/c` for `a/b/c` (empty components skipped).
fn prefixes(dir: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in dir.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let next = match out.last() {
            Some(last) => format!("{last}/{part}"),
            None => part.to_string(),
        };
        out.push(next);
    }
    out
}

fn open(repo: &Path) -> Result<Repository, GitError> {
    Repository::open(repo).map_err(|e| GitError::Open {
        path: repo.to_path_buf(),
        message: e.message().to_string(),
    })
}

/// Reads the YAML files below `dirs` (repository-relative) from the tree of `revision`.
/// Directories that do not exist at that revision contribute no files.
pub fn read_revision(repo: &Path, revision: &str, dirs: &[&str]) -> Result<Snapshot, GitError> {
    let git = open(repo)?;
    let rev_err = |e: git2::Error| GitError::Revision {
        revision: revision.to_string(),
        path: repo.to_path_buf(),
        message: e.message().to_string(),
    };
    let commit = git
        .revparse_single(revision)
        .and_then(|o| o.peel_to_commit())
        .map_err(rev_err)?;
    let tree = commit.tree().map_err(rev_err)?;
    let mut files = Vec::new();
    for dir in dirs {
        let dir = dir.trim_matches('/');
        let sub = if dir.is_empty() || dir == "." {
            Some(tree.clone())
        } else {
            // The directory itself, or one above it, committed as a symbolic link.
            for prefix in prefixes(dir) {
                if tree
                    .get_path(Path::new(&prefix))
                    .is_ok_and(|e| e.filemode() == 0o120000)
                {
                    return Err(GitError::Symlink { path: prefix });
                }
            }
            match tree.get_path(Path::new(dir)) {
                Ok(entry) if entry.kind() == Some(ObjectType::Tree) => {
                    Some(git.find_tree(entry.id()).map_err(rev_err)?)
                }
                _ => None,
            }
        };
        if let Some(sub) = sub {
            collect_tree(&git, &sub, dir, &mut files)?;
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    Ok(Snapshot {
        commit: Some(commit.id().to_string()),
        files,
    })
}

fn collect_tree(
    git: &Repository,
    tree: &Tree<'_>,
    prefix: &str,
    out: &mut Vec<SourceFile>,
) -> Result<(), GitError> {
    for entry in tree.iter() {
        let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
        let path = if prefix.is_empty() || prefix == "." {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let read_err = |e: git2::Error| GitError::Read {
            path: path.clone(),
            message: e.message().to_string(),
        };
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = git.find_tree(entry.id()).map_err(read_err)?;
                collect_tree(git, &sub, &path, out)?;
            }
            // 0o120000 is a symbolic link stored as a blob. Any link is refused, not only
            // `*.yaml` ones: a link named `sub` may stand for a directory, as it would in
            // the working tree.
            Some(ObjectType::Blob) if entry.filemode() == 0o120000 => {
                return Err(GitError::Symlink { path });
            }
            Some(ObjectType::Blob) if is_yaml(&name) => {
                let blob = git.find_blob(entry.id()).map_err(read_err)?;
                let size = blob.size() as u64;
                if size > MAX_FILE_BYTES {
                    return Err(GitError::TooLarge { path, size });
                }
                out.push(SourceFile {
                    path,
                    contents: blob.content().to_vec(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads the YAML files below `dirs` from the working tree of the repository at `repo`
/// (what `validate` checks as a pre-commit hook).
pub fn read_worktree(repo: &Path, dirs: &[&str]) -> Result<Snapshot, GitError> {
    let git = open(repo)?;
    let root = git
        .workdir()
        .ok_or_else(|| GitError::Bare {
            path: repo.to_path_buf(),
        })?
        .to_path_buf();
    let mut files = Vec::new();
    for dir in dirs {
        let dir = dir.trim_matches('/');
        let start = if dir.is_empty() || dir == "." {
            root.clone()
        } else {
            // `is_dir` follows links: a linked directory (or one above it) would be read
            // from wherever it points, outside the repository.
            for prefix in prefixes(dir) {
                if std::fs::symlink_metadata(root.join(&prefix))
                    .is_ok_and(|m| m.file_type().is_symlink())
                {
                    return Err(GitError::Symlink { path: prefix });
                }
            }
            root.join(dir)
        };
        if start.is_dir() {
            collect_dir(&root, &start, &mut files)?;
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    Ok(Snapshot {
        commit: None,
        files,
    })
}

fn collect_dir(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) -> Result<(), GitError> {
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/")
    };
    let io_err = |p: &Path, e: std::io::Error| GitError::Read {
        path: rel(p),
        message: e.to_string(),
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io_err(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".git" {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io_err(&path, e))?;
        if meta.file_type().is_symlink() {
            return Err(GitError::Symlink { path: rel(&path) });
        }
        if meta.is_dir() {
            collect_dir(root, &path, out)?;
        } else if meta.is_file() && is_yaml(&name) {
            if meta.len() > MAX_FILE_BYTES {
                return Err(GitError::TooLarge {
                    path: rel(&path),
                    size: meta.len(),
                });
            }
            let contents = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
            out.push(SourceFile {
                path: rel(&path),
                contents,
            });
        }
    }
    Ok(())
}

/// Paths below `dirs` with uncommitted changes (modified, added, deleted or untracked YAML),
/// so commands that read a revision can warn that those changes are not desired state.
pub fn uncommitted_changes(repo: &Path, dirs: &[&str]) -> Result<Vec<String>, GitError> {
    let git = open(repo)?;
    if git.is_bare() {
        return Ok(Vec::new());
    }
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    for dir in dirs {
        opts.pathspec(dir.trim_matches('/'));
    }
    let statuses = git.statuses(Some(&mut opts)).map_err(|e| GitError::Read {
        path: repo.display().to_string(),
        message: e.message().to_string(),
    })?;
    let mut out: Vec<String> = statuses
        .iter()
        .filter(|s| s.status() != Status::CURRENT && !s.status().is_ignored())
        .filter_map(|s| s.path().ok().map(str::to_string))
        .filter(|p| is_yaml(p))
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let st = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.org")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.org")
            .status()
            .expect("git must be installed to run these tests");
        assert!(st.success(), "git {args:?} failed");
    }

    #[test]
    fn reads_committed_yaml_only_and_sees_uncommitted_changes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(d.join("manifests/sub")).unwrap();
        std::fs::write(d.join("manifests/a.yaml"), "a: 1\n").unwrap();
        std::fs::write(d.join("manifests/sub/b.yml"), "b: 1\n").unwrap();
        std::fs::write(d.join("manifests/notes.txt"), "x").unwrap();
        git(d, &["add", "."]);
        git(d, &["commit", "-q", "-m", "one"]);
        std::fs::write(d.join("manifests/a.yaml"), "a: 2\n").unwrap();
        std::fs::write(d.join("manifests/c.yaml"), "c: 1\n").unwrap();

        let snap = read_revision(d, "HEAD", &["manifests", "policies"]).unwrap();
        let paths: Vec<_> = snap.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["manifests/a.yaml", "manifests/sub/b.yml"]);
        assert_eq!(snap.files[0].contents, b"a: 1\n");
        assert_eq!(snap.commit.as_deref().map(str::len), Some(40));

        let wt = read_worktree(d, &["manifests"]).unwrap();
        let paths: Vec<_> = wt.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "manifests/a.yaml",
                "manifests/c.yaml",
                "manifests/sub/b.yml"
            ]
        );
        assert_eq!(wt.files[0].contents, b"a: 2\n");

        let dirty = uncommitted_changes(d, &["manifests"]).unwrap();
        assert_eq!(dirty, ["manifests/a.yaml", "manifests/c.yaml"]);

        let err = read_revision(d, "no-such-branch", &["manifests"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("revision `no-such-branch` not found"),
            "{err}"
        );
    }

    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(d.join("manifests")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join("manifests/evil.yaml")).unwrap();
        git(d, &["add", "."]);
        git(d, &["commit", "-q", "-m", "link"]);
        let err = read_revision(d, "HEAD", &["manifests"]).unwrap_err();
        assert!(matches!(err, GitError::Symlink { .. }), "{err}");
        let err = read_worktree(d, &["manifests"]).unwrap_err();
        assert!(matches!(err, GitError::Symlink { .. }), "{err}");
    }
}
