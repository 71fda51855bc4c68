//! The use cases, front-end neutral: what `relsync`'s commands and `serve`'s loop do, written
//! once. Both front ends ([`crate::cli`], [`crate::controller`]) call these; nothing here
//! prints. Warnings come back as values ([`Warnings`]) for the front end to print or log,
//! failures as an [`OpsError`].
//!
//! - [`load`]: the config, the repository, and the desired state at a revision;
//! - [`observe`]: the live state of the targets, and the plan made from it;
//! - [`sync`]: apply a plan, its outcome, its history entry, and the holds it ends;
//! - [`gate`]: `check`'s rules; [`feeder`]: the feeder rule `check` and `promote` share;
//! - [`edit`]: `add` and `promote`, the working-tree edits;
//! - [`rollback`]: the hold a rollback makes and takes back;
//! - [`mirror_config`]: the mirror sets a disconnected cluster pulls through;
//! - [`payload`]: the component lists of payload releases (cache, or read by sync) turned
//!   into component tags of the desired state.
//!
//! The use cases work through a [`Workspace`]: the loaded repository and config, the
//! registry routes, the cluster when it is on, and the state store they imply.

pub mod edit;
pub mod feeder;
pub mod gate;
mod gate_payload;
pub mod load;
pub mod mirror_config;
pub mod observe;
pub mod payload;
pub mod rollback;
mod signed;
pub mod sync;

use std::path::PathBuf;
use std::sync::Arc;

pub use load::{Context, Loaded, Settings};

use crate::cluster::Cluster;
use crate::manifest::Diagnostics;
use crate::registry::Registries;
use crate::store::StateStore;

/// Lines a use case wants shown (on stderr, or in the log), in the order they arose.
pub type Warnings = Vec<String>;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Invalid manifests, policies or config: one problem per line.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// Reading Git failed.
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    /// Setting up registry access failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// Observing the live state failed.
    #[error(transparent)]
    Observe(#[from] crate::observe::ObserveError),
    /// Reaching the cluster failed.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Reading or writing the sync history and holds failed.
    #[error(transparent)]
    State(#[from] crate::store::StateError),
    /// An argument or setting that does not fit (a channel that does not exist, an edit
    /// of a repository without a working tree).
    #[error("{0}")]
    Usage(String),
    /// A payload release's component list could not be read (`mirror-config`): the error
    /// names the release, the layer and the cause.
    #[error("cannot read the component list of a payload release")]
    Payload(#[source] Box<crate::payload::read::PayloadReadError>),
    /// `add`, `promote` or `check` refused the change (nothing was written): the reason.
    #[error("{0}")]
    Refused(String),
    /// Reading or writing a local file failed.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What the use cases work through: the repository and its config, the registry routes,
/// and the cluster when `cluster.enabled`.
#[derive(Debug)]
pub struct Workspace {
    /// The config and the repository.
    pub ctx: Context,
    /// The registry routes (shared: `serve` keeps one for every pass, so its connection
    /// pools and request counts last).
    pub registries: Arc<Registries>,
    /// The cluster, when `cluster.enabled` (else it is never contacted).
    pub cluster: Option<Cluster>,
}

impl Workspace {
    /// Builds the registry routes from the config, then connects to the cluster when
    /// `cluster.enabled`.
    pub async fn connect(ctx: Context) -> Result<Workspace, OpsError> {
        Self::connect_as(ctx, None).await
    }

    /// [`Workspace::connect`] for the replica `identity` (`serve`): every registry and
    /// cluster request carries the User-Agent `relsync/<version> (<identity>)`.
    pub async fn connect_as(ctx: Context, identity: Option<&str>) -> Result<Workspace, OpsError> {
        let registries = Arc::new(Registries::from_config_as(
            &ctx.config,
            &ctx.config_dir,
            identity,
        )?);
        let cluster = match ctx.config.cluster.enabled {
            true => Some(Cluster::connect_as(identity).await?),
            false => None,
        };
        Ok(Workspace {
            ctx,
            registries,
            cluster,
        })
    }

    /// Where the history and holds live: the ConfigMap with the cluster on, else the file
    /// beside relsync.yaml.
    pub fn store(&self) -> StateStore {
        StateStore::new(&self.ctx.config_dir, self.cluster.clone())
    }
}

/// The cluster when the config enables it; `None` (and no call at all) otherwise.
pub async fn connect_cluster(ctx: &Context) -> Result<Option<Cluster>, OpsError> {
    match ctx.config.cluster.enabled {
        true => Ok(Some(Cluster::connect().await?)),
        false => Ok(None),
    }
}

/// A tokio runtime for the synchronous use cases that talk to registries (the commands run
/// one per process; `serve` has its own).
pub fn runtime() -> Result<tokio::runtime::Runtime, OpsError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| OpsError::Usage(format!("cannot start the async runtime: {e}")))
}

/// The bundled example (manifests, policies, `oci:` layouts, relsync.yaml) committed in a
/// temporary Git repository, for the unit tests of the use cases and of `serve`'s loop.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    /// A copy of the bundled example, committed on branch `main`; returns the directory
    /// and the commit.
    pub fn example_repo() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let project = Path::new(env!("CARGO_MANIFEST_DIR"));
        for d in ["manifests", "policies", "example"] {
            copy_dir(&project.join(d), &dir.path().join(d));
        }
        std::fs::copy(
            project.join("relsync.yaml"),
            dir.path().join("relsync.yaml"),
        )
        .unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "example"]);
        let sha = git(dir.path(), &["rev-parse", "HEAD"]);
        (dir, sha)
    }

    /// `git ARGS` in `dir` as a test identity; its trimmed output.
    pub fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.org")
            .env("GIT_COMMITTER_NAME", "Test Committer")
            .env("GIT_COMMITTER_EMAIL", "committer@example.org")
            .output()
            .expect("git must be installed to run these tests");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }

    /// The settings of the example in `dir`.
    pub fn settings(dir: &Path) -> super::Settings {
        super::Settings {
            config: Some(dir.join("relsync.yaml")),
            revision: None,
        }
    }
}
