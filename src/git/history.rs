//! History queries: since when has something been true on a branch?
//!
//! A feeder delay (docs/reference.md, "The promotion gate") runs from the committer time of the
//! first first-parent commit of the branch whose feeder channel lists the version. This
//! module walks the first-parent chain and asks a caller-given predicate about each
//! commit's desired-state files; what "lists the version" means stays with the caller
//! (which parses manifests), so this module knows nothing of channels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};

use super::budget::Tally;
use super::{Budget, GitError, open, tree_files};
use crate::manifest::SourceFile;

/// Why a history query failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Opening the repository or reading a commit failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The repository is a shallow clone: the history the rule needs may be cut off, so it
    /// cannot be judged (an error, never a pass).
    #[error(
        "{path} is a shallow clone: the history needed to measure the feeder delay is missing (run `git fetch --unshallow`)"
    )]
    Shallow {
        /// The repository.
        path: PathBuf,
    },
    /// Walking the history failed.
    #[error("cannot walk the history of {revision} in {path}: {message}")]
    Walk {
        /// The revision walked from.
        revision: String,
        /// The repository.
        path: PathBuf,
        /// git2's message.
        message: String,
    },
}

/// The commit at which something first held on a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstCommit {
    /// The commit sha.
    pub commit: String,
    /// Its committer time, seconds since the Unix epoch.
    pub committer_time: i64,
}

/// Walks the first-parent chain from `revision` (newest first, down to the root commit)
/// and returns the oldest commit on it for which `holds` is true of the YAML files below
/// `dirs` at that commit (read as [`super::read_revision`] reads them), or `None` when it
/// holds at no commit. The predicate runs once per distinct content of `dirs` (commits that
/// do not touch them reuse the answer). A commit whose files cannot be read counts as "does
/// not hold".
///
/// A shallow repository is [`HistoryError::Shallow`]: its cut-off history could make a
/// rule pass that should not.
pub fn first_first_parent_commit<F>(
    repo: &Path,
    revision: &str,
    dirs: &[&str],
    mut holds: F,
) -> Result<Option<FirstCommit>, HistoryError>
where
    F: FnMut(&[SourceFile]) -> bool,
{
    let budget = Budget::from_env()?;
    let git = open(repo)?;
    if git.is_shallow() {
        return Err(HistoryError::Shallow {
            path: repo.to_path_buf(),
        });
    }
    let walk_err = |e: git2::Error| HistoryError::Walk {
        revision: revision.to_string(),
        path: repo.to_path_buf(),
        message: e.message().to_string(),
    };
    let start = git
        .revparse_single(revision)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| {
            HistoryError::Git(GitError::Revision {
                revision: revision.to_string(),
                path: repo.to_path_buf(),
                message: e.message().to_string(),
            })
        })?;
    let mut walk = git.revwalk().map_err(walk_err)?;
    walk.push(start.id()).map_err(walk_err)?;
    walk.simplify_first_parent().map_err(walk_err)?;
    let mut answers: HashMap<Vec<Option<Oid>>, bool> = HashMap::new();
    let mut first = None;
    for oid in walk {
        let oid = oid.map_err(walk_err)?;
        let commit = git.find_commit(oid).map_err(walk_err)?;
        let tree = commit.tree().map_err(walk_err)?;
        let key: Vec<Option<Oid>> = dirs.iter().map(|d| dir_tree(&tree, d)).collect();
        let answer = match answers.get(&key) {
            Some(a) => *a,
            None => {
                let a = files_at(&git, oid, &tree, dirs, budget).is_ok_and(|files| holds(&files));
                answers.insert(key, a);
                a
            }
        };
        if answer {
            first = Some(FirstCommit {
                commit: oid.to_string(),
                committer_time: commit.committer().when().seconds(),
            });
        }
    }
    Ok(first)
}

/// The tree id of `dir` in `tree` (the whole tree for `.` or empty), if it is a directory.
fn dir_tree(tree: &git2::Tree<'_>, dir: &str) -> Option<Oid> {
    let dir = dir.trim_matches('/');
    if dir.is_empty() || dir == "." {
        return Some(tree.id());
    }
    tree.get_path(Path::new(dir))
        .ok()
        .filter(|e| e.kind() == Some(ObjectType::Tree))
        .map(|e| e.id())
}

/// The YAML files below `dirs` in `tree` (the tree of `commit`), sorted by path, read as
/// [`super::read_revision`] reads them, within `budget`.
fn files_at(
    git: &Repository,
    commit: Oid,
    tree: &git2::Tree<'_>,
    dirs: &[&str],
    budget: Budget,
) -> Result<Vec<SourceFile>, GitError> {
    let label = format!("revision {commit}");
    tree_files(git, tree, dirs, &mut Tally::new(budget, &label))
}

/// The name of the branch HEAD is on (`main`), or `None` for a detached HEAD.
pub fn head_branch(repo: &Path) -> Result<Option<String>, GitError> {
    let git = open(repo)?;
    let head = git.head().map_err(|e| GitError::Revision {
        revision: "HEAD".to_string(),
        path: repo.to_path_buf(),
        message: e.message().to_string(),
    })?;
    Ok(if head.is_branch() {
        head.shorthand().ok().map(str::to_string)
    } else {
        None
    })
}

/// Why `promote --commit` could not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Opening the repository or reading HEAD failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The branch to create exists already.
    #[error("branch `{0}` already exists (delete it or promote without --commit)")]
    BranchExists(String),
    /// The file to edit has uncommitted changes, which the commit would mix in or lose.
    #[error(
        "{0} has uncommitted changes; commit or discard them first (or promote without --commit)"
    )]
    Dirty(String),
    /// A git operation failed.
    #[error("{action}: {message}")]
    Failed {
        /// What was being done.
        action: String,
        /// git2's message.
        message: String,
    },
}

/// Checks what [`commit_on_new_branch`] needs before anything is edited: HEAD is a commit,
/// `branch` does not exist, and `path` (repository-relative) has no uncommitted changes
/// (staged or not).
pub fn check_commit(repo: &Path, branch: &str, path: &str) -> Result<(), CommitError> {
    let git = open(repo)?;
    check_commit_in(&git, branch, path, None)
}

/// [`check_commit`]; with `contents`, uncommitted changes to `path` are accepted when the
/// working-tree file holds exactly `contents` (the change being committed, made already).
fn check_commit_in(
    git: &Repository,
    branch: &str,
    path: &str,
    contents: Option<&[u8]>,
) -> Result<(), CommitError> {
    let failed = |action: &str| {
        let action = action.to_string();
        move |e: git2::Error| CommitError::Failed {
            action,
            message: e.message().to_string(),
        }
    };
    git.head()
        .and_then(|h| h.peel_to_commit())
        .map_err(failed("reading HEAD"))?;
    if git.find_branch(branch, git2::BranchType::Local).is_ok() {
        return Err(CommitError::BranchExists(branch.to_string()));
    }
    let status = git
        .status_file(Path::new(path))
        .map_err(failed(&format!("reading the status of {path}")))?;
    let made_already = || {
        let file = git.workdir().map(|w| w.join(path));
        contents.is_some_and(|c| file.and_then(|f| std::fs::read(f).ok()).as_deref() == Some(c))
    };
    if status != git2::Status::CURRENT && !made_already() {
        return Err(CommitError::Dirty(path.to_string()));
    }
    Ok(())
}

/// Commits `contents` as the repository-relative `path` on a new branch `branch` made from
/// HEAD, with `message`, and switches to it like `git switch -c` (HEAD on the new branch,
/// the file written in the working tree and staged; other changes in the working tree and
/// the index are carried over untouched). The commit holds HEAD's tree with only that file
/// replaced. Author and committer come from `GIT_AUTHOR_*`/`GIT_COMMITTER_*` when set, else
/// from `user.name`/`user.email`. Returns the new commit's sha.
///
/// Refuses, writing nothing, what [`check_commit`] refuses, except uncommitted changes to
/// `path` that leave it holding exactly `contents` (a promotion made in the working tree
/// and now committed).
pub fn commit_on_new_branch(
    repo: &Path,
    branch: &str,
    path: &str,
    contents: &[u8],
    message: &str,
) -> Result<String, CommitError> {
    let git = open(repo)?;
    check_commit_in(&git, branch, path, Some(contents))?;
    let failed = |action: &str| {
        let action = action.to_string();
        move |e: git2::Error| CommitError::Failed {
            action,
            message: e.message().to_string(),
        }
    };
    let head = git
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(failed("reading HEAD"))?;
    let head_tree = head.tree().map_err(failed("reading HEAD's tree"))?;
    let mode = head_tree
        .get_path(Path::new(path))
        .map(|e| e.filemode())
        .unwrap_or(0o100644);
    let blob = git.blob(contents).map_err(failed("writing the blob"))?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    let mode = if mode == 0o100755 {
        git2::FileMode::BlobExecutable
    } else {
        git2::FileMode::Blob
    };
    update.upsert(path, blob, mode);
    let tree_id = update
        .create_updated(&git, &head_tree)
        .map_err(failed("building the tree"))?;
    let tree = git.find_tree(tree_id).map_err(failed("reading the tree"))?;
    let author = signature(&git, "AUTHOR").map_err(failed("reading the author identity"))?;
    let committer =
        signature(&git, "COMMITTER").map_err(failed("reading the committer identity"))?;
    let commit_id = git
        .commit(None, &author, &committer, message, &tree, &[&head])
        .map_err(failed("committing"))?;
    let commit = git
        .find_commit(commit_id)
        .map_err(failed("reading the commit"))?;
    git.branch(branch, &commit, false)
        .map_err(failed(&format!("creating branch {branch}")))?;
    let workdir = git.workdir().ok_or_else(|| {
        CommitError::Git(GitError::Bare {
            path: repo.to_path_buf(),
        })
    })?;
    std::fs::write(workdir.join(path), contents).map_err(|e| CommitError::Failed {
        action: format!("writing {path}"),
        message: e.to_string(),
    })?;
    let mut index = git.index().map_err(failed("reading the index"))?;
    index
        .add_path(Path::new(path))
        .map_err(failed(&format!("staging {path}")))?;
    index.write().map_err(failed("writing the index"))?;
    git.set_head(&format!("refs/heads/{branch}"))
        .map_err(failed(&format!("switching to {branch}")))?;
    Ok(commit_id.to_string())
}

/// A signature from `GIT_<who>_NAME`/`_EMAIL` when both are set, else the repository's
/// configured identity.
fn signature(git: &Repository, who: &str) -> Result<git2::Signature<'static>, git2::Error> {
    let name = std::env::var(format!("GIT_{who}_NAME")).ok();
    let email = std::env::var(format!("GIT_{who}_EMAIL")).ok();
    match (name, email) {
        (Some(n), Some(e)) => git2::Signature::now(&n, &e),
        _ => git.signature(),
    }
}
