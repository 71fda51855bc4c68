//! What every use case loads first: the config, the repository, the manifests at the chosen
//! revision, and the desired state derived from them. Nothing is printed: warnings (an
//! uncommitted change that is not desired state, the manifests' own warnings) are pushed
//! onto the caller's [`Warnings`] as they arise, so they are there even when loading then
//! fails.

use std::path::{Path, PathBuf};

use super::{OpsError, Warnings};
use crate::config::{self, Config};
use crate::desired::{self, DesiredState};
use crate::git;
use crate::manifest::Manifests;
use crate::revision::short_revision;

/// Where to load from: the config file and the revision, as the front end was told.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The config file, if one is used (none: the defaults, the repository in `.`).
    pub config: Option<PathBuf>,
    /// The revision to read instead of the config's `git.revision`, when given.
    pub revision: Option<String>,
}

/// The config and the repository it points at.
#[derive(Debug)]
pub struct Context {
    /// The parsed config (defaults when there is no relsync.yaml).
    pub config: Config,
    /// The directory relative paths in the config resolve from.
    pub config_dir: PathBuf,
    /// The desired-state repository: the local repository, or for a remote `git.repo` its
    /// freshly fetched bare mirror in the cache (so every revision read, history walk and
    /// diff works on either alike; there is no working tree for a remote).
    pub repo: PathBuf,
    /// The remote `git.repo` was fetched from, when it is a URL.
    pub remote: Option<git::remote::Mirror>,
}

/// The desired state read from one revision (or the working tree).
#[derive(Debug)]
pub struct Loaded {
    /// The commit sha, or `working tree`.
    pub revision: String,
    /// The validated manifests.
    pub manifests: Manifests,
    /// The desired state derived from them.
    pub desired: DesiredState,
}

impl Context {
    /// Reads the config named by the settings (or uses the defaults) and locates the
    /// repository.
    pub fn load(settings: &Settings) -> Result<Context, OpsError> {
        let (config, config_dir) = match &settings.config {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|source| OpsError::Io {
                    path: path.clone(),
                    source,
                })?;
                let shown = path.display().to_string();
                let config = config::load(&shown, &bytes).map_err(OpsError::Invalid)?;
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                let dir = if dir.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    dir
                };
                (config, dir)
            }
            None => (Config::default(), PathBuf::from(".")),
        };
        let repo_setting = &config.git.repo.value;
        let (repo, remote) = if git::remote::is_remote(repo_setting) {
            let mirror = Self::fetch_remote(repo_setting)?;
            (mirror.path.clone(), Some(mirror))
        } else {
            let repo = config_dir.join(repo_setting);
            git::check_repository(&repo).map_err(|e| match e {
                git::GitError::NotARepository { path } => OpsError::Usage(format!(
                    "{}: git.repo `{repo_setting}`: {} is not a Git repository (relsync reads the desired state from the repository its config names)",
                    config.git.repo.span,
                    path.display()
                )),
                e => e.into(),
            })?;
            (repo, None)
        };
        Ok(Context {
            config,
            config_dir,
            repo,
            remote,
        })
    }

    /// Fetches a remote `git.repo` into its mirror in the cache (credentials from the URL,
    /// the environment or the SSH agent). A failed fetch is an error: the copy fetched
    /// earlier is never read in its place.
    fn fetch_remote(url: &str) -> Result<git::remote::Mirror, OpsError> {
        let url = git::remote::RemoteUrl::parse(url).map_err(git::GitError::from)?;
        let cache = git::remote::cache_root().map_err(git::GitError::from)?;
        let auth = git::remote::Auth::from_env();
        Ok(git::remote::fetch(&url, &cache, &auth).map_err(git::GitError::from)?)
    }

    /// The working tree of a local `git.repo`, for the commands that edit files (`add`,
    /// `promote`); refused for a remote, which has none.
    pub fn worktree(&self) -> Result<&Path, OpsError> {
        match &self.remote {
            Some(mirror) => Err(OpsError::Usage(format!(
                "{}: git.repo is the remote {}; editing files needs a working tree: clone it and point git.repo at the clone",
                self.config.git.repo.span, mirror.url
            ))),
            None => Ok(&self.repo),
        }
    }

    /// The directories read from the repository: manifests and policies.
    fn dirs(&self) -> [&str; 2] {
        [
            self.config.git.path.as_str(),
            self.config.git.policies.as_str(),
        ]
    }

    /// Reads, validates and derives the desired state. With `worktree`, the working tree is
    /// read; otherwise the revision (`--revision`, else the config's), committed content
    /// only, with a warning when uncommitted changes touch the manifests. Warnings are
    /// pushed onto `warnings`.
    ///
    /// A remote `git.repo` has no working tree: it is always read at the revision.
    pub fn desired(
        &self,
        settings: &Settings,
        worktree: bool,
        warnings: &mut Warnings,
    ) -> Result<Loaded, OpsError> {
        self.desired_with(settings, worktree, None, warnings)
    }

    /// [`Context::desired`], with the policies read at `policies_at` instead of the
    /// revision when given (a rollback is judged by the policies of the branch tip).
    pub fn desired_with(
        &self,
        settings: &Settings,
        worktree: bool,
        policies_at: Option<&str>,
        warnings: &mut Warnings,
    ) -> Result<Loaded, OpsError> {
        let dirs = self.dirs();
        let mut snapshot = if let Some(mirror) = &self.remote {
            let revision = settings
                .revision
                .as_deref()
                .unwrap_or(&self.config.git.revision);
            let sha = mirror.resolve(revision).map_err(git::GitError::from)?;
            tracing::info!(url = %mirror.url, revision, commit = %sha, "reading the desired state");
            git::read_revision(&self.repo, &sha, &dirs)?
        } else if worktree {
            git::read_worktree(&self.repo, &dirs)?
        } else {
            let revision = settings
                .revision
                .as_deref()
                .unwrap_or(&self.config.git.revision);
            let snap = git::read_revision(&self.repo, revision, &dirs)?;
            let dirty = git::uncommitted_changes(&self.repo, &dirs)?;
            if !dirty.is_empty() {
                warnings.push(format!(
                    "warning: uncommitted changes are not desired state; {} reads {revision} ({}): {}",
                    env!("CARGO_PKG_NAME"),
                    snap.commit.as_deref().map(short_revision).unwrap_or("?"),
                    dirty.join(", ")
                ));
            }
            snap
        };
        let asked = settings
            .revision
            .as_deref()
            .unwrap_or(&self.config.git.revision);
        self.check_manifests_dir(&snapshot, asked)?;
        // (With policies at the repository root they cannot be told apart from the
        // manifests: then the revision's own are used.)
        let policies = self.config.git.policies.trim_matches('/');
        if let Some(at) = policies_at.filter(|_| !policies.is_empty() && policies != ".") {
            let tip = git::read_revision(&self.repo, at, &[policies])?;
            let prefix = format!("{policies}/");
            snapshot.files.retain(|f| !f.path.starts_with(&prefix));
            snapshot.files.extend(tip.files);
            snapshot.files.sort_by(|a, b| a.path.cmp(&b.path));
        }
        let manifests =
            desired::load(&snapshot.files, &self.config.git.policies).map_err(OpsError::Invalid)?;
        warnings.extend(manifests.warnings.iter().map(ToString::to_string));
        let desired = desired::derive(&manifests).map_err(OpsError::Invalid)?;
        let revision = snapshot
            .commit
            .unwrap_or_else(|| "working tree".to_string());
        Ok(Loaded {
            revision,
            manifests,
            desired,
        })
    }

    /// A `git.path` that does not exist where the manifests were read is an error naming
    /// it and the revision (read as "no manifests", a mistyped path would plan nothing).
    fn check_manifests_dir(&self, snapshot: &git::Snapshot, asked: &str) -> Result<(), OpsError> {
        let path = self.config.git.path.as_str();
        let exists = match &snapshot.commit {
            Some(sha) => git::has_dir(&self.repo, sha, path)?,
            None => self.repo.join(path.trim_matches('/')).is_dir(),
        };
        if exists {
            return Ok(());
        }
        let at = match &snapshot.commit {
            Some(sha) if asked == sha => format!("revision {}", short_revision(sha)),
            Some(sha) => format!("revision `{asked}` ({})", short_revision(sha)),
            None => "the working tree".to_string(),
        };
        Err(OpsError::Usage(format!(
            "git.path `{path}`: no such directory at {at} of {} (set git.path in the config to the directory holding the manifests)",
            self.repo.display()
        )))
    }

    /// Checks that `--channel N` names a channel.
    pub fn check_channel(loaded: &Loaded, channel: Option<&str>) -> Result<(), OpsError> {
        match channel {
            Some(c) if !loaded.manifests.channels.contains_key(c) => {
                let known: Vec<&str> = loaded
                    .manifests
                    .channels
                    .keys()
                    .map(String::as_str)
                    .collect();
                let hint = crate::manifest::parse::did_you_mean(c, known.iter().copied())
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                Err(OpsError::Usage(format!(
                    "--channel {c}: no such channel{hint} (channels: {})",
                    known.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }
}
