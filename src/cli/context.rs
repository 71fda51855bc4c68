//! What every command loads first: the config, the repository, the manifests at the chosen
//! revision, and the desired state derived from them.

use std::path::{Path, PathBuf};

use super::{CliError, Settings};
use crate::desired::{self, DesiredState};
use crate::git;
use crate::manifest::{self, Config, Manifests};

/// The config and the repository it points at.
#[derive(Debug)]
pub struct Context {
    /// The parsed config (defaults when there is no relsync.yaml).
    pub config: Config,
    /// The directory relative paths in the config resolve from.
    pub config_dir: PathBuf,
    /// The local desired-state repository.
    pub repo: PathBuf,
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
    pub fn load(settings: &Settings) -> Result<Context, CliError> {
        let (config, config_dir) = match &settings.config {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|source| CliError::Io {
                    path: path.clone(),
                    source,
                })?;
                let shown = path.display().to_string();
                let config = manifest::load_config(&shown, &bytes).map_err(CliError::Invalid)?;
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
        if repo_setting.contains("://") || repo_setting.starts_with("git@") {
            return Err(CliError::Usage(format!(
                "{}: git.repo `{repo_setting}` is a remote; this version reads local repositories only (clone it and point git.repo at the clone)",
                config.git.repo.span
            )));
        }
        let repo = config_dir.join(repo_setting);
        Ok(Context {
            config,
            config_dir,
            repo,
        })
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
    /// printed to stderr.
    pub fn desired(&self, settings: &Settings, worktree: bool) -> Result<Loaded, CliError> {
        let dirs = self.dirs();
        let snapshot = if worktree {
            git::read_worktree(&self.repo, &dirs)?
        } else {
            let revision = settings
                .revision
                .as_deref()
                .unwrap_or(&self.config.git.revision);
            let snap = git::read_revision(&self.repo, revision, &dirs)?;
            let dirty = git::uncommitted_changes(&self.repo, &dirs)?;
            if !dirty.is_empty() {
                eprintln!(
                    "warning: uncommitted changes are not desired state; {} reads {revision} ({}): {}",
                    env!("CARGO_PKG_NAME"),
                    snap.commit.as_deref().map(|c| &c[..12]).unwrap_or("?"),
                    dirty.join(", ")
                );
            }
            snap
        };
        let manifests = manifest::load(&snapshot.files, &self.config.git.policies)
            .map_err(CliError::Invalid)?;
        for w in manifests.warnings.iter() {
            eprintln!("{w}");
        }
        let desired = desired::derive(&manifests).map_err(CliError::Invalid)?;
        let revision = snapshot
            .commit
            .unwrap_or_else(|| "working tree".to_string());
        Ok(Loaded {
            revision,
            manifests,
            desired,
        })
    }

    /// Checks that `--channel N` names a channel.
    pub fn check_channel(loaded: &Loaded, channel: Option<&str>) -> Result<(), CliError> {
        match channel {
            Some(c) if !loaded.manifests.channels.contains_key(c) => {
                let known: Vec<&str> = loaded
                    .manifests
                    .channels
                    .keys()
                    .map(String::as_str)
                    .collect();
                Err(CliError::Usage(format!(
                    "--channel {c}: no such channel (channels: {})",
                    known.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }
}
