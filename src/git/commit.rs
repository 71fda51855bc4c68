//! What sync history records of a commit: its sha, author, subject and time.

use std::path::Path;

use super::{GitError, open};

/// One commit, as history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The full sha.
    pub sha: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// The first line of the message.
    pub subject: String,
    /// Committer time, seconds since the Unix epoch.
    pub committer_time: i64,
}

/// Resolves `revision` (a branch, tag, sha or `HEAD`) to its commit.
pub fn commit_info(repo: &Path, revision: &str) -> Result<CommitInfo, GitError> {
    let git = open(repo)?;
    let commit = git
        .revparse_single(revision)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| GitError::Revision {
            revision: revision.to_string(),
            path: repo.to_path_buf(),
            message: e.message().to_string(),
        })?;
    let author = commit.author();
    let name = String::from_utf8_lossy(author.name_bytes()).into_owned();
    let email = String::from_utf8_lossy(author.email_bytes()).into_owned();
    let subject = commit
        .summary_bytes()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .unwrap_or_default();
    Ok(CommitInfo {
        sha: commit.id().to_string(),
        author: format!("{name} <{email}>"),
        subject,
        committer_time: commit.committer().when().seconds(),
    })
}
