//! Release payloads: an OpenShift/OKD release image names its components in
//! `release-manifests/image-references` (an `image.openshift.io/v1` ImageStream), in the
//! last layer of the release image (of every platform image, for an image index).
//!
//! PURE (no tokio, no registry client): [`reference`] (repository references and
//! `repo@digest` pins), [`image_references`] (the ImageStream JSON → [`ImageReference`]s),
//! [`archive`] (a layer read as a stream — gzip or plain tar — with a [`Budget`], never
//! whole in memory), and the types here: [`Component`], [`ComponentList`] (the components of
//! one release, merged across platforms) and the component tag rule [`component_tag`].
//!
//! The one adapter-facing file is [`read`]: given the registries, a release repository and
//! digest, it finds the layer, streams it into [`archive::read_image_references`] on a
//! blocking thread (checking the layer's digest while it streams) and returns the
//! [`ComponentList`] ([`read::read_components`]).

pub mod archive;
pub mod image_references;
pub mod read;
pub mod reference;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::tag::{TAG_RULE, is_valid_tag};

pub use archive::{Budget, read_image_references};
pub use image_references::parse_image_references;

/// The path of the component list inside a release image's layer.
pub const IMAGE_REFERENCES_PATH: &str = "release-manifests/image-references";
/// The path of the release's Cincinnati metadata inside the same layer.
pub const RELEASE_METADATA_PATH: &str = "release-manifests/release-metadata";

/// One entry of `image-references` (`spec.tags[]`): a component as one platform image of
/// the release names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// `spec.tags[].name`, e.g. `cluster-version-operator`.
    pub name: String,
    /// The repository of `from.name` (`host/path`), where the component is copied from.
    pub source: String,
    /// The digest of `from.name`.
    pub digest: Digest,
}

/// The image-references of one platform image of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformReferences {
    /// The platform's label (`amd64`, `arm64`, `armv7` where two share an architecture);
    /// `None` for a release that is a single image.
    pub arch: Option<String>,
    /// What its image-references names.
    pub references: Vec<ImageReference>,
}

/// One component of a release, as it is mirrored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Component {
    /// The component's name (`spec.tags[].name` of image-references).
    pub name: String,
    /// The platform, only where the platform images of a multi-arch release name this
    /// component with different digests (then one component per platform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// The repository it is copied from (`host/path`).
    pub source: String,
    /// Its manifest digest (byte-exact copy).
    #[serde(with = "digest_text")]
    pub digest: Digest,
}

impl Component {
    /// Its tag in `payload.target` for a release whose version tag is `version_tag`
    /// ([`component_tag`]).
    pub fn tag(&self, version_tag: &str) -> String {
        component_tag(version_tag, self.arch.as_deref(), &self.name)
    }

    /// `source@digest`: where the component is read from.
    pub fn source_reference(&self) -> String {
        format!("{}@{}", self.source, self.digest)
    }
}

/// The component tag rule: `<version tag>-<name>`, or `<version tag>-<arch>-<name>` where
/// the platform images of a release name the component with different digests.
pub fn component_tag(version_tag: &str, arch: Option<&str>, name: &str) -> String {
    match arch {
        Some(arch) => format!("{version_tag}-{arch}-{name}"),
        None => format!("{version_tag}-{name}"),
    }
}

/// Every component of one release, sorted by name then platform. The list of a release
/// digest never changes, so it is cached by digest (`store::payloads`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentList {
    /// The components, sorted by name then platform.
    pub components: Vec<Component>,
}

impl ComponentList {
    /// Merges the image-references of every platform image of a release: a component that
    /// every platform naming it names with one digest is one [`Component`] without `arch`;
    /// one named with different digests becomes one component per platform, each with its
    /// `arch`. A name listed twice within one platform's image-references is an error.
    pub fn from_platforms(platforms: &[PlatformReferences]) -> Result<ComponentList, PayloadError> {
        // name -> [(arch, reference)], in platform order.
        let mut by_name: BTreeMap<&str, Vec<(Option<&str>, &ImageReference)>> = BTreeMap::new();
        for p in platforms {
            let mut seen = std::collections::BTreeSet::new();
            for r in &p.references {
                if !seen.insert(r.name.as_str()) {
                    return Err(PayloadError::Malformed(format!(
                        "component `{}` is listed twice{}",
                        r.name,
                        p.arch
                            .as_deref()
                            .map(|a| format!(" in the {a} image"))
                            .unwrap_or_default()
                    )));
                }
                by_name
                    .entry(r.name.as_str())
                    .or_default()
                    .push((p.arch.as_deref(), r));
            }
        }
        let mut components = Vec::new();
        for (name, named) in by_name {
            let first = named[0].1;
            if named.iter().all(|(_, r)| r.digest == first.digest) {
                components.push(Component {
                    name: name.to_string(),
                    arch: None,
                    source: first.source.clone(),
                    digest: first.digest.clone(),
                });
            } else {
                for (arch, r) in named {
                    components.push(Component {
                        name: name.to_string(),
                        arch: Some(arch.unwrap_or("unknown").to_string()),
                        source: r.source.clone(),
                        digest: r.digest.clone(),
                    });
                }
            }
        }
        components.sort();
        Ok(ComponentList { components })
    }

    /// How many components.
    pub fn len(&self) -> usize {
        self.components.len()
    }

    /// Whether it has no component.
    pub fn is_empty(&self) -> bool {
        self.components.is_empty()
    }

    /// The component tags of the release whose version tag is `version_tag`: tag → its
    /// component. Errors when a tag breaks the tag grammar (too long, say) or two components
    /// would share one tag.
    pub fn tags(&self, version_tag: &str) -> Result<BTreeMap<String, &Component>, PayloadError> {
        let mut out = BTreeMap::new();
        for c in &self.components {
            let tag = c.tag(version_tag);
            if !is_valid_tag(&tag) {
                return Err(PayloadError::InvalidTag {
                    name: c.name.clone(),
                    tag,
                });
            }
            if let Some(other) = out.insert(tag.clone(), c) {
                return Err(PayloadError::Malformed(format!(
                    "components `{}` and `{}` would both be tagged `{tag}`",
                    other.name, c.name
                )));
            }
        }
        Ok(out)
    }
}

/// Why a release's component list cannot be read from its layer. Messages name the cause;
/// the caller adds the version and the layer digest.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The layer is neither a gzip stream nor a tar archive relsync can read.
    #[error("the layer is not a gzip tar: {0}")]
    NotGzip(String),
    /// A compression relsync does not read (zstd).
    #[error("the layer is {0}-compressed (relsync reads gzip and uncompressed tar layers)")]
    Compression(&'static str),
    /// The (decompressed) bytes are not a tar archive.
    #[error("the layer is not a tar archive: {0}")]
    NotTar(String),
    /// The archive has no `release-manifests/image-references`.
    #[error("the layer has no {IMAGE_REFERENCES_PATH} (not a release image?)")]
    Missing,
    /// `release-manifests/image-references` is larger than the budget.
    #[error("{IMAGE_REFERENCES_PATH} is {size} bytes, over the budget of {limit} bytes")]
    OverBudget {
        /// Its size as the tar header announces it.
        size: u64,
        /// The budget ([`Budget::image_references_bytes`]).
        limit: u64,
    },
    /// The layer decompresses to more than the budget before image-references is found.
    #[error(
        "the layer is over the budget of {limit} bytes (decompressed) before {IMAGE_REFERENCES_PATH}"
    )]
    LayerOverBudget {
        /// The budget ([`Budget::layer_bytes`]).
        limit: u64,
    },
    /// image-references is not the ImageStream expected.
    #[error("malformed {IMAGE_REFERENCES_PATH}: {0}")]
    Malformed(String),
    /// A component tag that the tag grammar refuses.
    #[error("component `{name}` cannot be tagged `{tag}`: {TAG_RULE}")]
    InvalidTag {
        /// The component's name.
        name: String,
        /// The tag it would get.
        tag: String,
    },
    /// The reader the layer came from failed (the caller knows the real cause).
    #[error("reading the layer failed")]
    Input(#[source] std::io::Error),
}

/// Serde for a [`Digest`] as its text (the cache file and the ConfigMap keep text).
mod digest_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::digest::Digest;

    pub(super) fn serialize<S: Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
        d.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
