//! The strict shape of a document: one struct per YAML mapping, every field `Spanned`,
//! unknown fields refused; the spec of every kind is one union struct ([`SpecDe`]) and [`Kind`]
//! says which fields belong to which kind.

use serde::Deserialize;

use serde_saphyr::Location;

use super::{S, StringList};

/// One YAML document of any kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DocDe {
    pub(crate) api_version: Option<S<String>>,
    pub(crate) kind: Option<S<String>>,
    pub(crate) metadata: Option<S<MetaDe>>,
    pub(crate) spec: Option<S<SpecDe>>,
}

/// `metadata`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct MetaDe {
    pub(crate) name: Option<S<String>>,
}

/// The union of every kind's `spec` fields; [`Kind::allows`] says which belong to which kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SpecDe {
    // ReleaseStream
    pub(crate) source: Option<S<String>>,
    pub(crate) target: Option<S<String>>,
    pub(crate) order: Option<S<String>>,
    pub(crate) releases: Option<S<Vec<S<ReleaseDe>>>>,
    pub(crate) payload: Option<S<PayloadDe>>,
    // ReleaseChannel
    pub(crate) stream: Option<S<String>>,
    pub(crate) tags: Option<S<Vec<S<String>>>>,
    pub(crate) image_stream: Option<S<ImageStreamDe>>,
    pub(crate) feeder: Option<S<FeederDe>>,
    pub(crate) versions: Option<S<Vec<S<String>>>>,
    pub(crate) tombstones: Option<S<Vec<S<String>>>>,
    // Policy
    pub(crate) allowed_sources: Option<S<Vec<S<String>>>>,
    pub(crate) immutable_tags: Option<S<String>>,
    pub(crate) max_deletes_per_sync: Option<S<u32>>,
    pub(crate) channel_subsets: Option<S<Vec<S<StringList>>>>,
    // Config
    pub(crate) git: Option<S<GitDe>>,
    pub(crate) registries: Option<S<Vec<S<RegistryDe>>>>,
    pub(crate) cluster: Option<S<ClusterDe>>,
    pub(crate) sync: Option<S<SyncDe>>,
    pub(crate) webhook: Option<S<WebhookDe>>,
}

impl SpecDe {
    /// The fields present, by their YAML name, with the place of their value.
    pub(super) fn present(&self) -> Vec<(&'static str, Location)> {
        fn at<T>(out: &mut Vec<(&'static str, Location)>, name: &'static str, f: &Option<S<T>>) {
            if let Some(v) = f {
                out.push((name, v.referenced));
            }
        }
        let mut out = Vec::new();
        at(&mut out, "source", &self.source);
        at(&mut out, "target", &self.target);
        at(&mut out, "order", &self.order);
        at(&mut out, "releases", &self.releases);
        at(&mut out, "payload", &self.payload);
        at(&mut out, "stream", &self.stream);
        at(&mut out, "tags", &self.tags);
        at(&mut out, "imageStream", &self.image_stream);
        at(&mut out, "feeder", &self.feeder);
        at(&mut out, "versions", &self.versions);
        at(&mut out, "tombstones", &self.tombstones);
        at(&mut out, "allowedSources", &self.allowed_sources);
        at(&mut out, "immutableTags", &self.immutable_tags);
        at(&mut out, "maxDeletesPerSync", &self.max_deletes_per_sync);
        at(&mut out, "channelSubsets", &self.channel_subsets);
        at(&mut out, "git", &self.git);
        at(&mut out, "registries", &self.registries);
        at(&mut out, "cluster", &self.cluster);
        at(&mut out, "sync", &self.sync);
        at(&mut out, "webhook", &self.webhook);
        out
    }
}

/// One entry of a stream's `releases`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ReleaseDe {
    pub(crate) version: Option<S<String>>,
    pub(crate) digest: Option<S<String>>,
    pub(crate) tags: Option<S<Vec<S<String>>>>,
}

/// A stream's `payload`: its releases are OpenShift/OKD payloads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PayloadDe {
    pub(crate) target: Option<S<String>>,
}

/// A channel's `imageStream`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ImageStreamDe {
    pub(crate) namespace: Option<S<String>>,
    pub(crate) name: Option<S<String>>,
}

/// A channel's `feeder`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct FeederDe {
    pub(crate) channel: Option<S<String>>,
    pub(crate) delay: Option<S<String>>,
}

/// Config `spec.git`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GitDe {
    pub(crate) repo: Option<S<String>>,
    pub(crate) revision: Option<S<String>>,
    pub(crate) path: Option<S<String>>,
    pub(crate) policies: Option<S<String>>,
}

/// Config `spec.registries[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RegistryDe {
    pub(crate) host: Option<S<String>>,
    pub(crate) insecure: Option<S<bool>>,
    pub(crate) ca_file: Option<S<String>>,
    pub(crate) username_env: Option<S<String>>,
    pub(crate) password_env: Option<S<String>>,
    pub(crate) map_to: Option<S<String>>,
    pub(crate) token_realms: Option<Vec<S<String>>>,
    pub(crate) delete_by_digest: Option<S<bool>>,
}

/// Config `spec.cluster`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ClusterDe {
    pub(crate) enabled: Option<S<bool>>,
}

/// Config `spec.sync`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SyncDe {
    pub(crate) concurrency: Option<S<u64>>,
    pub(crate) prune: Option<S<bool>>,
    pub(crate) auto: Option<S<bool>>,
    pub(crate) self_heal: Option<S<bool>>,
    pub(crate) interval: Option<S<String>>,
}

/// Config `spec.webhook`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct WebhookDe {
    pub(crate) secret_env: Option<S<String>>,
}

/// The kinds of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    ReleaseStream,
    ReleaseChannel,
    Policy,
    Config,
}

impl Kind {
    pub(super) fn parse(s: &str) -> Option<Kind> {
        match s {
            "ReleaseStream" => Some(Kind::ReleaseStream),
            "ReleaseChannel" => Some(Kind::ReleaseChannel),
            "Policy" => Some(Kind::Policy),
            "Config" => Some(Kind::Config),
            _ => None,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::ReleaseStream => "ReleaseStream",
            Kind::ReleaseChannel => "ReleaseChannel",
            Kind::Policy => "Policy",
            Kind::Config => "Config",
        }
    }

    /// The `spec` fields of this kind.
    pub(super) fn allows(self, field: &str) -> bool {
        let fields: &[&str] = match self {
            Kind::ReleaseStream => &["source", "target", "order", "releases", "payload"],
            Kind::ReleaseChannel => &[
                "stream",
                "tags",
                "imageStream",
                "feeder",
                "versions",
                "tombstones",
            ],
            Kind::Policy => &[
                "allowedSources",
                "immutableTags",
                "maxDeletesPerSync",
                "channelSubsets",
            ],
            Kind::Config => &["git", "registries", "cluster", "sync", "webhook"],
        };
        fields.contains(&field)
    }
}
