//! Adapter (git2): reads the desired-state files from a revision's tree, or from the working
//! tree for `validate` as a pre-commit hook.
//!
//! Only `*.yaml`/`*.yml` files below the given directories are read, the extension in any
//! case (`*.YAML` too). Symbolic links are refused (a link could point outside the
//! repository), and so are files over [`MAX_FILE_BYTES`]. The files of one revision
//! together have a [`Budget`]: the tree is listed first, counting the sizes Git records
//! (or the file system reports), and only a listing within the budget is read.

mod budget;
mod commit;
pub mod history;
pub mod remote;
pub mod tls;

pub use budget::{
    Budget, DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, ENTRIES_PER_FILE, Limit, MAX_BYTES_ENV,
    MAX_FILES_ENV,
};
pub use commit::{CommitInfo, commit_info};

use std::io::Read as _;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Odb, Oid, Repository, Status, StatusOptions, Tree};

use crate::manifest::SourceFile;
use budget::Tally;

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
    /// The path is not a Git repository (nor inside one).
    #[error("{path} is not a Git repository")]
    NotARepository {
        /// The path tried.
        path: PathBuf,
    },
    /// The repository has no commits, so no revision can be read from it.
    #[error(
        "{path} has no commits yet: relsync reads committed manifests; commit them (git add, git commit) first"
    )]
    NoCommits {
        /// The repository.
        path: PathBuf,
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
    /// The manifests of a revision together are over its [`Budget`]; nothing was read.
    #[error(
        "{revision}: the manifests are over their budget of {limit} {kind} at {path} ({files} files of {bytes} bytes so far), refused before any is read; raise it with {var}",
        var = .kind.env_var()
    )]
    OverBudget {
        /// The revision, as the command named it, with its commit ("revision `HEAD`
        /// (0123456789ab)"), or "the working tree".
        revision: String,
        /// Repository-relative path of the first file (or entry) past the budget.
        path: String,
        /// Which limit was passed.
        kind: Limit,
        /// That limit.
        limit: u64,
        /// Manifest files counted up to and including `path`.
        files: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// An environment variable meant to set the [`Budget`] holds no positive whole number.
    #[error("{var}={value:?} is not a positive whole number")]
    BudgetSetting {
        /// The variable.
        var: &'static str,
        /// What it holds.
        value: String,
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

/// `a.yaml`, `a.yml`, `A.YAML`, `a.Yml`: the extension compared without regard to case, so
/// an upper-case one is read rather than skipped silently.
fn is_yaml(name: &str) -> bool {
    let name = name.as_bytes();
    let ends = |ext: &[u8]| {
        name.len() >= ext.len() && name[name.len() - ext.len()..].eq_ignore_ascii_case(ext)
    };
    ends(b".yaml") || ends(b".yml")
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

/// `dirs` trimmed of slashes (`.` for the root), without those equal to or inside an
/// earlier or wider one: each file is listed once, so it is counted once against the budget.
fn distinct_dirs<'d>(dirs: &[&'d str]) -> Vec<&'d str> {
    let dirs: Vec<&str> = dirs
        .iter()
        .map(|d| match d.trim_matches('/') {
            "" => ".",
            d => d,
        })
        .collect();
    let inside = |d: &str, o: &str| {
        o == "." || d == o || d.strip_prefix(o).is_some_and(|rest| rest.starts_with('/'))
    };
    dirs.iter()
        .enumerate()
        .filter(|&(i, d)| {
            !dirs
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && inside(d, o) && (d != o || j < i))
        })
        .map(|(_, d)| *d)
        .collect()
}

fn open(repo: &Path) -> Result<Repository, GitError> {
    Repository::open(repo).map_err(|e| match e.code() {
        git2::ErrorCode::NotFound => GitError::NotARepository {
            path: repo.to_path_buf(),
        },
        _ => GitError::Open {
            path: repo.to_path_buf(),
            message: e.message().to_string(),
        },
    })
}

/// Checks that `repo` is a Git repository that can be opened.
pub fn check_repository(repo: &Path) -> Result<(), GitError> {
    open(repo).map(drop)
}

/// Whether `dir` (repository-relative; `.` or empty for the root) is a directory in the
/// tree of `revision`.
pub fn has_dir(repo: &Path, revision: &str, dir: &str) -> Result<bool, GitError> {
    let dir = dir.trim_matches('/');
    if dir.is_empty() || dir == "." {
        return Ok(true);
    }
    let git = open(repo)?;
    let commit = peel_commit(&git, repo, revision)?;
    let tree = commit.tree().map_err(|e| GitError::Read {
        path: dir.to_string(),
        message: e.message().to_string(),
    })?;
    Ok(tree
        .get_path(Path::new(dir))
        .is_ok_and(|e| e.kind() == Some(ObjectType::Tree)))
}

/// The commit `revision` names; in a repository with no commits yet,
/// [`GitError::NoCommits`] rather than git2's "revspec 'HEAD' not found".
fn peel_commit<'r>(
    git: &'r Repository,
    repo: &Path,
    revision: &str,
) -> Result<git2::Commit<'r>, GitError> {
    git.revparse_single(revision)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| {
            let unborn = matches!(git.head(), Err(h) if h.code() == git2::ErrorCode::UnbornBranch);
            if unborn && (revision == "HEAD" || git.is_empty().unwrap_or(false)) {
                GitError::NoCommits {
                    path: repo.to_path_buf(),
                }
            } else {
                GitError::Revision {
                    revision: revision.to_string(),
                    path: repo.to_path_buf(),
                    message: e.message().to_string(),
                }
            }
        })
}

/// Reads the YAML files below `dirs` (repository-relative) from the tree of `revision`,
/// within the [`Budget`] the environment sets. Directories that do not exist at that
/// revision contribute no files.
pub fn read_revision(repo: &Path, revision: &str, dirs: &[&str]) -> Result<Snapshot, GitError> {
    read_revision_within(repo, revision, dirs, Budget::from_env()?)
}

/// [`read_revision`] within `budget`: the tree is listed first, and when its manifests are
/// over the budget, [`GitError::OverBudget`] is returned before any of them is read.
pub fn read_revision_within(
    repo: &Path,
    revision: &str,
    dirs: &[&str],
    budget: Budget,
) -> Result<Snapshot, GitError> {
    let git = open(repo)?;
    let rev_err = |e: git2::Error| GitError::Revision {
        revision: revision.to_string(),
        path: repo.to_path_buf(),
        message: e.message().to_string(),
    };
    let commit = peel_commit(&git, repo, revision)?;
    let tree = commit.tree().map_err(rev_err)?;
    let sha = commit.id().to_string();
    let label = if revision == sha {
        format!("revision {sha}")
    } else {
        format!("revision `{revision}` ({})", &sha[..12])
    };
    let files = tree_files(&git, &tree, dirs, &mut Tally::new(budget, &label))?;
    Ok(Snapshot {
        commit: Some(sha),
        files,
    })
}

/// The YAML files below `dirs` in `tree`, sorted by path: listed with their sizes against
/// `tally` first, read only once the whole listing is within the budget.
fn tree_files(
    git: &Repository,
    tree: &Tree<'_>,
    dirs: &[&str],
    tally: &mut Tally<'_>,
) -> Result<Vec<SourceFile>, GitError> {
    let odb = git.odb().map_err(|e| GitError::Read {
        path: ".git".to_string(),
        message: e.message().to_string(),
    })?;
    let mut listed = Vec::new();
    for dir in distinct_dirs(dirs) {
        let read_err = |e: git2::Error| GitError::Read {
            path: dir.to_string(),
            message: e.message().to_string(),
        };
        let sub = if dir == "." {
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
                    Some(git.find_tree(entry.id()).map_err(read_err)?)
                }
                _ => None,
            }
        };
        if let Some(sub) = sub {
            list_tree(git, &odb, &sub, dir, tally, &mut listed)?;
        }
    }
    listed.sort();
    listed.dedup_by(|a, b| a.0 == b.0);
    // The listing is within the budget: only now is a blob read.
    let mut files = Vec::with_capacity(listed.len());
    for (path, id) in listed {
        let blob = git.find_blob(id).map_err(|e| GitError::Read {
            path: path.clone(),
            message: e.message().to_string(),
        })?;
        files.push(SourceFile {
            path,
            contents: blob.content().to_vec(),
        });
    }
    Ok(files)
}

/// Lists the YAML blobs below `tree` (at `prefix`) into `out`, each counted against `tally`
/// with the size its object header records; no blob is read.
fn list_tree(
    git: &Repository,
    odb: &Odb<'_>,
    tree: &Tree<'_>,
    prefix: &str,
    tally: &mut Tally<'_>,
    out: &mut Vec<(String, Oid)>,
) -> Result<(), GitError> {
    for entry in tree.iter() {
        let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
        let path = if prefix.is_empty() || prefix == "." {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        tally.walk(&path)?;
        let read_err = |e: git2::Error| GitError::Read {
            path: path.clone(),
            message: e.message().to_string(),
        };
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = git.find_tree(entry.id()).map_err(read_err)?;
                list_tree(git, odb, &sub, &path, tally, out)?;
            }
            // 0o120000 is a symbolic link stored as a blob. Any link is refused, not only
            // `*.yaml` ones: a link named `sub` may stand for a directory, as it would in
            // the working tree.
            Some(ObjectType::Blob) if entry.filemode() == 0o120000 => {
                return Err(GitError::Symlink { path });
            }
            Some(ObjectType::Blob) if is_yaml(&name) => {
                let (size, _) = odb.read_header(entry.id()).map_err(read_err)?;
                tally.admit(&path, size as u64)?;
                out.push((path, entry.id()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads the YAML files below `dirs` from the working tree of the repository at `repo`
/// (what `validate` checks as a pre-commit hook), within the [`Budget`] the environment
/// sets.
pub fn read_worktree(repo: &Path, dirs: &[&str]) -> Result<Snapshot, GitError> {
    read_worktree_within(repo, dirs, Budget::from_env()?)
}

/// [`read_worktree`] within `budget`: the directories are listed first, and when their
/// manifests are over the budget, [`GitError::OverBudget`] is returned before any of them
/// is read. A file is read at most at the size it had when listed.
pub fn read_worktree_within(
    repo: &Path,
    dirs: &[&str],
    budget: Budget,
) -> Result<Snapshot, GitError> {
    let git = open(repo)?;
    let root = git
        .workdir()
        .ok_or_else(|| GitError::Bare {
            path: repo.to_path_buf(),
        })?
        .to_path_buf();
    let mut tally = Tally::new(budget, "the working tree");
    let mut listed = Vec::new();
    for dir in distinct_dirs(dirs) {
        let start = if dir == "." {
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
            list_dir(&root, &start, &mut tally, &mut listed)?;
        }
    }
    listed.sort();
    listed.dedup_by(|a, b| a.0 == b.0);
    // The listing is within the budget: only now is a file read.
    let mut files = Vec::with_capacity(listed.len());
    for (path, abs, size) in listed {
        let contents = read_at_most(&abs, size).map_err(|message| GitError::Read {
            path: path.clone(),
            message,
        })?;
        files.push(SourceFile { path, contents });
    }
    Ok(Snapshot {
        commit: None,
        files,
    })
}

/// The file at `path`, which was `size` bytes when listed; one that has grown since is
/// refused rather than read past what the budget counted.
fn read_at_most(path: &Path, size: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut contents = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(size.saturating_add(1))
        .read_to_end(&mut contents)
        .map_err(|e| e.to_string())?;
    if contents.len() as u64 > size {
        return Err(format!(
            "the file grew past the {size} bytes it had when listed, while it was read"
        ));
    }
    Ok(contents)
}

/// Lists the YAML files below `dir` into `out` (repository-relative path, path, size), each
/// counted against `tally` with the size the file system reports; no file is read.
fn list_dir(
    root: &Path,
    dir: &Path,
    tally: &mut Tally<'_>,
    out: &mut Vec<(String, PathBuf, u64)>,
) -> Result<(), GitError> {
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
        tally.walk(&rel(&path))?;
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io_err(&path, e))?;
        if meta.file_type().is_symlink() {
            return Err(GitError::Symlink { path: rel(&path) });
        }
        if meta.is_dir() {
            list_dir(root, &path, tally, out)?;
        } else if meta.is_file() && is_yaml(&name) {
            tally.admit(&rel(&path), meta.len())?;
            out.push((rel(&path), path, meta.len()));
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
    fn upper_case_yaml_extensions_are_read_from_the_tree_and_the_working_tree() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(d.join("manifests")).unwrap();
        for name in ["A.YAML", "b.YML", "c.Yaml", "d.yaml", "e.YAML.txt", "fyaml"] {
            std::fs::write(d.join("manifests").join(name), name).unwrap();
        }
        git(d, &["add", "."]);
        git(d, &["commit", "-q", "-m", "one"]);
        let expected = [
            "manifests/A.YAML",
            "manifests/b.YML",
            "manifests/c.Yaml",
            "manifests/d.yaml",
        ];
        let snap = read_revision(d, "HEAD", &["manifests"]).unwrap();
        let paths: Vec<_> = snap.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, expected);
        assert_eq!(snap.files[0].contents, b"A.YAML");
        let wt = read_worktree(d, &["manifests"]).unwrap();
        let paths: Vec<_> = wt.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, expected);

        std::fs::write(d.join("manifests/A.YAML"), "changed").unwrap();
        let dirty = uncommitted_changes(d, &["manifests"]).unwrap();
        assert_eq!(dirty, ["manifests/A.YAML"]);
    }

    #[test]
    fn a_revision_over_its_budget_is_refused_naming_the_revision_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(d.join("manifests/p")).unwrap();
        std::fs::write(d.join("manifests/a.yaml"), "x".repeat(60)).unwrap();
        std::fs::write(d.join("manifests/b.yaml"), "x".repeat(40)).unwrap();
        std::fs::write(d.join("manifests/p/c.yaml"), "x").unwrap();
        std::fs::write(d.join("manifests/p/notes.txt"), "x".repeat(1000)).unwrap();
        git(d, &["add", "."]);
        git(d, &["commit", "-q", "-m", "one"]);
        let budget = |max_bytes, max_files| Budget {
            max_bytes,
            max_files,
        };
        let sha = read_revision(d, "HEAD", &["manifests"])
            .unwrap()
            .commit
            .unwrap();

        // 101 bytes in three files: one byte over, at the last file listed.
        let err = read_revision_within(d, "HEAD", &["manifests"], budget(100, 10)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("revision `HEAD` ({}): ", &sha[..12])),
            "{msg}"
        );
        assert!(
            msg.contains("budget of 100 bytes at manifests/p/c.yaml"),
            "{msg}"
        );
        assert!(msg.contains("RELSYNC_MAX_MANIFEST_BYTES"), "{msg}");
        let err = read_worktree_within(d, &["manifests"], budget(100, 10)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("the working tree: "), "{msg}");
        assert!(msg.contains("at manifests/p/c.yaml"), "{msg}");

        // Two files allowed, three present.
        let err = read_revision_within(d, "HEAD", &["manifests"], budget(1000, 2)).unwrap_err();
        assert!(
            matches!(&err, GitError::OverBudget { kind: Limit::Files, path, .. } if path == "manifests/p/c.yaml"),
            "{err}"
        );

        // Exactly at the budget passes, and a directory named twice or inside another is
        // counted once (the non-YAML file counts for nothing).
        let dirs = ["manifests", "manifests/p", "/manifests/"];
        let snap = read_revision_within(d, "HEAD", &dirs, budget(101, 3)).unwrap();
        assert_eq!(snap.files.len(), 3);
        let wt = read_worktree_within(d, &dirs, budget(101, 3)).unwrap();
        assert_eq!(wt.files.len(), 3);
        let snap = read_revision_within(d, &sha, &[".", "manifests"], budget(101, 3)).unwrap();
        assert_eq!(snap.files.len(), 3);
        let err = read_revision_within(d, &sha, &["."], budget(100, 3)).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!("revision {sha}: ")),
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
