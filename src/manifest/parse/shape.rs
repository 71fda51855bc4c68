//! The strict shape of a document: one struct per YAML mapping, every field `Spanned`,
//! unknown fields refused; the spec of every kind is one union struct ([`SpecDe`]) and [`Kind`]
//! says which fields belong to which kind.

use schemars::JsonSchema;
use serde::Deserialize;

use serde_saphyr::Location;

use super::{S, StringList};

/// One YAML document of any kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DocDe {
    #[schemars(with = "Option<String>")]
    pub(crate) api_version: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) kind: Option<S<String>>,
    #[schemars(with = "Option<MetaDe>")]
    pub(crate) metadata: Option<S<MetaDe>>,
    #[schemars(with = "Option<SpecDe>")]
    pub(crate) spec: Option<S<SpecDe>>,
}

/// `metadata`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct MetaDe {
    #[schemars(with = "Option<String>")]
    pub(crate) name: Option<S<String>>,
}

/// The union of every kind's `spec` fields; [`Kind::allows`] says which belong to which kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SpecDe {
    // ReleaseStream
    #[schemars(with = "Option<String>")]
    pub(crate) source: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) target: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) order: Option<S<String>>,
    #[schemars(with = "Option<Vec<ReleaseDe>>")]
    pub(crate) releases: Option<S<Vec<S<ReleaseDe>>>>,
    #[schemars(with = "Option<PayloadDe>")]
    pub(crate) payload: Option<S<PayloadDe>>,
    // ReleaseChannel
    #[schemars(with = "Option<String>")]
    pub(crate) stream: Option<S<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) tags: Option<S<Vec<S<String>>>>,
    #[schemars(with = "Option<ImageStreamDe>")]
    pub(crate) image_stream: Option<S<ImageStreamDe>>,
    #[schemars(with = "Option<FeederDe>")]
    pub(crate) feeder: Option<S<FeederDe>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) versions: Option<S<Vec<S<String>>>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) tombstones: Option<S<Vec<S<String>>>>,
    // Policy
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) allowed_sources: Option<S<Vec<S<String>>>>,
    #[schemars(with = "Option<String>")]
    pub(crate) immutable_tags: Option<S<String>>,
    #[schemars(with = "Option<u32>")]
    pub(crate) max_deletes_per_sync: Option<S<u32>>,
    #[schemars(with = "Option<Vec<Vec<String>>>")]
    pub(crate) channel_subsets: Option<S<Vec<S<StringList>>>>,
    #[schemars(with = "Option<SignaturesDe>")]
    pub(crate) signatures: Option<S<SignaturesDe>>,
    // Config
    #[schemars(with = "Option<GitDe>")]
    pub(crate) git: Option<S<GitDe>>,
    #[schemars(with = "Option<Vec<RegistryDe>>")]
    pub(crate) registries: Option<S<Vec<S<RegistryDe>>>>,
    #[schemars(with = "Option<ClusterDe>")]
    pub(crate) cluster: Option<S<ClusterDe>>,
    #[schemars(with = "Option<SyncDe>")]
    pub(crate) sync: Option<S<SyncDe>>,
    #[schemars(with = "Option<WebhookDe>")]
    pub(crate) webhook: Option<S<WebhookDe>>,
    #[schemars(with = "Option<Vec<NotificationDe>>")]
    pub(crate) notifications: Option<S<Vec<S<NotificationDe>>>>,
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
        at(&mut out, "signatures", &self.signatures);
        at(&mut out, "git", &self.git);
        at(&mut out, "registries", &self.registries);
        at(&mut out, "cluster", &self.cluster);
        at(&mut out, "sync", &self.sync);
        at(&mut out, "webhook", &self.webhook);
        at(&mut out, "notifications", &self.notifications);
        out
    }
}

/// One entry of a stream's `releases`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("required" = ["version", "digest"]))]
pub(crate) struct ReleaseDe {
    #[schemars(with = "Option<String>")]
    pub(crate) version: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) digest: Option<S<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) tags: Option<S<Vec<S<String>>>>,
}

/// A stream's `payload`: its releases are OpenShift/OKD payloads.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("required" = ["target"]))]
pub(crate) struct PayloadDe {
    #[schemars(with = "Option<String>")]
    pub(crate) target: Option<S<String>>,
}

/// A channel's `imageStream`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("required" = ["namespace", "name"]))]
pub(crate) struct ImageStreamDe {
    #[schemars(with = "Option<String>")]
    pub(crate) namespace: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) name: Option<S<String>>,
}

/// A channel's `feeder`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("required" = ["channel"]))]
pub(crate) struct FeederDe {
    #[schemars(with = "Option<String>")]
    pub(crate) channel: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) delay: Option<S<String>>,
}

/// A Policy's `signatures`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SignaturesDe {
    #[schemars(with = "Option<bool>")]
    pub(crate) require: Option<S<bool>>,
    #[schemars(with = "Option<Vec<KeyDe>>")]
    pub(crate) keys: Option<S<Vec<S<KeyDe>>>>,
}

/// One entry of a Policy's `signatures.keys`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("required" = ["name", "publicKey"]))]
pub(crate) struct KeyDe {
    #[schemars(with = "Option<String>")]
    pub(crate) name: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) public_key: Option<S<String>>,
}

/// Config `spec.git`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GitDe {
    #[schemars(with = "Option<String>")]
    pub(crate) repo: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) revision: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) path: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) policies: Option<S<String>>,
}

/// Config `spec.registries[]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("required" = ["host"]))]
pub(crate) struct RegistryDe {
    #[schemars(with = "Option<String>")]
    pub(crate) host: Option<S<String>>,
    #[schemars(with = "Option<bool>")]
    pub(crate) insecure: Option<S<bool>>,
    #[schemars(with = "Option<String>")]
    pub(crate) ca_file: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) username_env: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) password_env: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) map_to: Option<S<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) token_realms: Option<Vec<S<String>>>,
    #[schemars(with = "Option<bool>")]
    pub(crate) delete_by_digest: Option<S<bool>>,
    #[schemars(with = "Option<RateLimitDe>")]
    pub(crate) rate_limit: Option<S<RateLimitDe>>,
}

/// Config `spec.registries[].rateLimit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("required" = ["requestsPerSecond"]))]
pub(crate) struct RateLimitDe {
    #[schemars(with = "Option<f64>")]
    pub(crate) requests_per_second: Option<S<f64>>,
    #[schemars(with = "Option<u32>")]
    pub(crate) burst: Option<S<u32>>,
}

/// Config `spec.notifications[]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("required" = ["url"]))]
pub(crate) struct NotificationDe {
    #[schemars(with = "Option<String>")]
    pub(crate) url: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    pub(crate) secret_env: Option<S<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) events: Option<S<Vec<S<String>>>>,
}

/// Config `spec.cluster`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ClusterDe {
    #[schemars(with = "Option<bool>")]
    pub(crate) enabled: Option<S<bool>>,
}

/// Config `spec.sync`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SyncDe {
    #[schemars(with = "Option<u64>")]
    pub(crate) concurrency: Option<S<u64>>,
    #[schemars(with = "Option<bool>")]
    pub(crate) prune: Option<S<bool>>,
    #[schemars(with = "Option<bool>")]
    pub(crate) auto: Option<S<bool>>,
    #[schemars(with = "Option<bool>")]
    pub(crate) self_heal: Option<S<bool>>,
    #[schemars(with = "Option<String>")]
    pub(crate) interval: Option<S<String>>,
}

/// Config `spec.webhook`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct WebhookDe {
    #[schemars(with = "Option<String>")]
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
    /// Every kind, in the order messages and the schema list them.
    pub(super) const ALL: [Kind; 4] = [
        Kind::ReleaseStream,
        Kind::ReleaseChannel,
        Kind::Policy,
        Kind::Config,
    ];

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
        self.fields().contains(&field)
    }

    /// The names of this kind's `spec` fields.
    pub(super) fn fields(self) -> &'static [&'static str] {
        match self {
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
                "signatures",
            ],
            Kind::Config => &[
                "git",
                "registries",
                "cluster",
                "sync",
                "webhook",
                "notifications",
            ],
        }
    }
}
