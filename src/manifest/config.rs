//! `relsync.yaml`: where Git is, how to reach registries and the cluster, how to sync.

use super::diagnostic::{Diagnostics, Located};

/// The whole `relsync.yaml` (`kind: Config`).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where the desired state lives.
    pub git: GitSettings,
    /// Per-host connection settings.
    pub registries: Vec<RegistrySettings>,
    /// Cluster access.
    pub cluster: ClusterSettings,
    /// Sync behaviour.
    pub sync: SyncSettings,
    /// Webhook settings for `serve`.
    pub webhook: WebhookSettings,
}

impl Config {
    /// The settings for `host`, if the config names it.
    pub fn registry(&self, host: &str) -> Option<&RegistrySettings> {
        self.registries.iter().find(|r| r.host.value == host)
    }
}

/// `spec.git`.
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// A local path (relative to relsync.yaml's directory) or a URL.
    pub repo: Located<String>,
    /// The revision read by every command but `validate` on a working tree.
    pub revision: String,
    /// Directory of manifests inside the repository.
    pub path: String,
    /// Directory of policies inside the repository.
    pub policies: String,
}

impl Default for GitSettings {
    fn default() -> Self {
        GitSettings {
            repo: Located::new(".".to_string(), super::Span::file("relsync.yaml")),
            revision: "HEAD".to_string(),
            path: "manifests".to_string(),
            policies: "policies".to_string(),
        }
    }
}

/// One entry of `spec.registries`.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Host (and port) this entry is for, e.g. `quay.io` or `127.0.0.1:5000`.
    pub host: Located<String>,
    /// Plain HTTP.
    pub insecure: bool,
    /// Extra CA bundle (PEM), resolved relative to relsync.yaml's directory by the caller.
    pub ca_file: Option<String>,
    /// Environment variable holding the user name.
    pub username_env: Option<String>,
    /// Environment variable holding the password or token.
    pub password_env: Option<String>,
    /// `oci:DIR`: read and write this host's repositories under DIR instead.
    pub map_to: Option<Located<String>>,
}

/// `spec.cluster`.
#[derive(Debug, Clone, Default)]
pub struct ClusterSettings {
    /// Whether ImageStreams are read and written.
    pub enabled: bool,
}

/// `spec.sync`.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Parallel copies per registry.
    pub concurrency: usize,
    /// Delete tags nobody claims.
    pub prune: bool,
    /// `serve`: apply plans by itself.
    pub auto: bool,
    /// `serve`: re-sync drift even when Git did not change.
    pub self_heal: bool,
    /// `serve`: how often Git and the live state are compared, in seconds.
    pub interval_seconds: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            concurrency: 8,
            prune: false,
            auto: true,
            self_heal: true,
            interval_seconds: 180,
        }
    }
}

/// `spec.webhook`.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    /// Environment variable holding the HMAC secret.
    pub secret_env: Option<String>,
}

pub(super) fn parse_config(path: &str, contents: &[u8]) -> Result<Config, Diagnostics> {
    super::parse::parse_config(path, contents)
}
