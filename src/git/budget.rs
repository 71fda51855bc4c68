//! The budget of one revision's manifests: how many bytes and files may be read in total.
//!
//! Each manifest file is capped at [`MAX_FILE_BYTES`], but a small commit can name one
//! large blob many times (100 tree entries pointing at one 15 MiB blob make a 300 KB
//! `.git`), and every name would be read and parsed in full. So the files of a revision (or
//! of the working tree) are counted while the tree is listed, from the sizes Git records (or
//! the file system reports), and the revision is refused at the first file past the budget,
//! before any file is read: the memory a read takes is bounded by the budget. The number of
//! directory entries walked is bounded too (a tree can hold the same subtree many times,
//! with no manifest in it at all), at [`ENTRIES_PER_FILE`] times the file budget.
//!
//! The limits are [`DEFAULT_MAX_BYTES`] and [`DEFAULT_MAX_FILES`], raised (or lowered) with
//! the environment variables [`MAX_BYTES_ENV`] and [`MAX_FILES_ENV`].

use std::fmt;

use super::{GitError, MAX_FILE_BYTES};

/// The default total size of the manifests of one revision: 64 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The default number of manifest files of one revision.
pub const DEFAULT_MAX_FILES: u64 = 10_000;

/// Directory entries (of any kind) walked per manifest file of the budget.
pub const ENTRIES_PER_FILE: u64 = 100;

/// The environment variable that sets the byte budget (a positive number of bytes).
pub const MAX_BYTES_ENV: &str = "RELSYNC_MAX_MANIFEST_BYTES";

/// The environment variable that sets the file budget (a positive number of files).
pub const MAX_FILES_ENV: &str = "RELSYNC_MAX_MANIFEST_FILES";

/// How much the manifests of one revision may hold in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The most bytes, summed over every manifest file read.
    pub max_bytes: u64,
    /// The most manifest files.
    pub max_files: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_bytes: DEFAULT_MAX_BYTES,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

impl Budget {
    /// The budget the environment sets ([`MAX_BYTES_ENV`], [`MAX_FILES_ENV`]), each limit
    /// defaulting when its variable is unset or empty; a value that is not a positive whole
    /// number is [`GitError::BudgetSetting`].
    pub fn from_env() -> Result<Budget, GitError> {
        Ok(Budget {
            max_bytes: limit_from_env(MAX_BYTES_ENV, DEFAULT_MAX_BYTES)?,
            max_files: limit_from_env(MAX_FILES_ENV, DEFAULT_MAX_FILES)?,
        })
    }

    fn max_entries(&self) -> u64 {
        self.max_files.saturating_mul(ENTRIES_PER_FILE)
    }
}

fn limit_from_env(var: &'static str, default: u64) -> Result<u64, GitError> {
    let value = match std::env::var(var) {
        Err(std::env::VarError::NotPresent) => return Ok(default),
        Err(std::env::VarError::NotUnicode(v)) => v.to_string_lossy().into_owned(),
        Ok(v) if v.trim().is_empty() => return Ok(default),
        Ok(v) => v,
    };
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(GitError::BudgetSetting { var, value })
}

/// Which limit of a [`Budget`] a revision went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The total size of the manifest files.
    Bytes,
    /// The number of manifest files.
    Files,
    /// The number of directory entries walked ([`ENTRIES_PER_FILE`] per file of the budget).
    Entries,
}

impl Limit {
    /// The environment variable that raises this limit.
    pub fn env_var(self) -> &'static str {
        match self {
            Limit::Bytes => MAX_BYTES_ENV,
            Limit::Files | Limit::Entries => MAX_FILES_ENV,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Bytes => "bytes",
            Limit::Files => "files",
            Limit::Entries => "directory entries walked",
        })
    }
}

/// The files of one revision counted against its budget while its tree is listed.
pub(super) struct Tally<'a> {
    budget: Budget,
    revision: &'a str,
    bytes: u64,
    files: u64,
    entries: u64,
}

impl<'a> Tally<'a> {
    /// A tally for `revision` (as errors name it: "revision `HEAD` (0123456789ab)").
    pub(super) fn new(budget: Budget, revision: &'a str) -> Tally<'a> {
        Tally {
            budget,
            revision,
            bytes: 0,
            files: 0,
            entries: 0,
        }
    }

    /// Counts one directory entry walked, at `path`.
    pub(super) fn walk(&mut self, path: &str) -> Result<(), GitError> {
        self.entries += 1;
        if self.entries > self.budget.max_entries() {
            return Err(self.over(Limit::Entries, self.budget.max_entries(), path));
        }
        Ok(())
    }

    /// Counts one manifest file of `size` bytes at `path`, to be read once the whole tree is
    /// listed; refuses it when it is over [`MAX_FILE_BYTES`] or takes the revision past its
    /// budget.
    pub(super) fn admit(&mut self, path: &str, size: u64) -> Result<(), GitError> {
        if size > MAX_FILE_BYTES {
            return Err(GitError::TooLarge {
                path: path.to_string(),
                size,
            });
        }
        self.files += 1;
        self.bytes = self.bytes.saturating_add(size);
        if self.files > self.budget.max_files {
            return Err(self.over(Limit::Files, self.budget.max_files, path));
        }
        if self.bytes > self.budget.max_bytes {
            return Err(self.over(Limit::Bytes, self.budget.max_bytes, path));
        }
        Ok(())
    }

    fn over(&self, kind: Limit, limit: u64, path: &str) -> GitError {
        GitError::OverBudget {
            revision: self.revision.to_string(),
            path: path.to_string(),
            kind,
            limit,
            files: self.files,
            bytes: self.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_file_past_either_limit_is_refused_and_named() {
        let budget = Budget {
            max_bytes: 100,
            max_files: 3,
        };
        let mut tally = Tally::new(budget, "revision `HEAD` (0123456789ab)");
        tally.admit("m/a.yaml", 60).unwrap();
        tally.admit("m/b.yaml", 40).unwrap();
        let err = tally.admit("m/c.yaml", 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "revision `HEAD` (0123456789ab): the manifests are over their budget of 100 bytes \
             at m/c.yaml (3 files of 101 bytes so far), refused before any is read; raise it \
             with RELSYNC_MAX_MANIFEST_BYTES"
        );

        let mut tally = Tally::new(budget, "the working tree");
        for name in ["a", "b", "c"] {
            tally.admit(name, 0).unwrap();
        }
        let err = tally.admit("d", 0).unwrap_err();
        assert!(
            matches!(&err, GitError::OverBudget { kind: Limit::Files, path, .. } if path == "d"),
            "{err}"
        );
        assert!(
            err.to_string().contains("RELSYNC_MAX_MANIFEST_FILES"),
            "{err}"
        );

        let err = Tally::new(budget, "r")
            .admit("huge.yaml", MAX_FILE_BYTES + 1)
            .unwrap_err();
        assert!(matches!(err, GitError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn the_entries_walked_are_bounded_by_the_file_budget() {
        let budget = Budget {
            max_bytes: 100,
            max_files: 2,
        };
        let mut tally = Tally::new(budget, "r");
        for i in 0..2 * ENTRIES_PER_FILE {
            tally.walk(&format!("d/{i}")).unwrap();
        }
        let err = tally.walk("d/last").unwrap_err();
        assert!(
            matches!(
                err,
                GitError::OverBudget {
                    kind: Limit::Entries,
                    limit: 200,
                    ..
                }
            ),
            "{err}"
        );
    }
}
