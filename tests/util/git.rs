//! Throwaway Git repositories (the bundled example committed, edits, commits) and the
//! project root.

use std::path::{Path, PathBuf};

use super::{Run, copy_dir, relsync_in};

/// The project root (where the bundled example lives).
pub fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A throwaway Git repository, and `relsync` run in it.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// A repository holding a copy of the bundled example, committed.
    pub fn example() -> Repo {
        let repo = Repo::new();
        repo.copy_example();
        repo.commit("example");
        repo
    }

    /// Copies the bundled example (manifests, policies, layouts, relsync.yaml) in,
    /// uncommitted.
    pub fn copy_example(&self) {
        for dir in ["manifests", "policies", "example"] {
            copy_dir(&project().join(dir), &self.path().join(dir));
        }
        std::fs::copy(
            project().join("relsync.yaml"),
            self.path().join("relsync.yaml"),
        )
        .unwrap();
    }

    /// Commits everything with the author date `author_date` and the committer date
    /// `committer_date` (`None`: now), e.g. `2026-01-01T00:00:00Z` or `@1700000000 +0000`.
    pub fn commit_at(&self, message: &str, author_date: &str, committer_date: Option<&str>) {
        self.git(&["add", "-A"]);
        let mut cmd = self.git_command(&["commit", "-q", "--allow-empty", "-m", message]);
        cmd.env("GIT_AUTHOR_DATE", author_date)
            .env_remove("GIT_COMMITTER_DATE");
        if let Some(d) = committer_date {
            cmd.env("GIT_COMMITTER_DATE", d);
        }
        let out = cmd
            .output()
            .expect("git must be installed to run these tests");
        assert!(
            out.status.success(),
            "git commit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Commits everything, authored and committed at `date`.
    pub fn commit_dated(&self, message: &str, date: &str) {
        self.commit_at(message, date, Some(date));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `git ARGS` in the repository, as "Test Author" and "Test Committer".
    pub fn git_command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new("git");
        cmd.args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.org")
            .env("GIT_COMMITTER_NAME", "Test Committer")
            .env("GIT_COMMITTER_EMAIL", "committer@example.org");
        cmd
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = self
            .git_command(args)
            .output()
            .expect("git must be installed to run these tests");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn write(&self, path: &str, contents: &str) {
        let p = self.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).unwrap()
    }

    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn relsync(&self, args: &[&str]) -> Run {
        self.relsync_env(args, &[])
    }

    /// `relsync` with extra environment variables (e.g. `KUBECONFIG`).
    pub fn relsync_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        relsync_in(self.path(), args, env)
    }
}
