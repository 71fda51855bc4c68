//! Release payloads laid out the way `oc adm release new` lays them out: a release image
//! whose last layer is a gzip tar holding `release-manifests/image-references` (an
//! `image.openshift.io/v1` ImageStream naming each component `repo@sha256:…`) and
//! `release-manifests/release-metadata` (`cincinnati-metadata-v0`), on top of a small base
//! layer; and the small component images it names. Everything is built in memory first
//! (`Built*`), then pushed into a real registry or written into `oci:` layouts.
//!
//! API (all `pub`, re-exported from `util`):
//! - [`payload_releases`]`(versions, components, changed, component_source)`: one
//!   [`BuiltRelease`] per version, `components` components each (`comp-000`, …); each
//!   release after the first changes `changed` components (new content, new digest), the
//!   rest are shared with the release before. `component_source` is the repository
//!   `from.name` names (`127.0.0.1:PORT/okd/content`).
//! - [`multiarch_release`]`(version, component_source, shared, differing)`: an image index
//!   (amd64, arm64) whose platform images agree on the `shared` components and name the
//!   `differing` ones with different digests (so they get `<version>-<arch>-<name>` tags).
//! - [`push_release`]`(&pusher, release_repo, component_repo, &release)`: pushes the
//!   components (by digest) then the release image (by digest, or tagged with its version
//!   when `tag` is true: [`push_release_tagged`]); returns the release digest.
//! - [`write_release_layouts`]`(release_dir, component_dir, &releases)`: the same content as
//!   two OCI image layouts, release images tagged with their version.
//! - Building blocks for malformed payloads: [`image_references_json`],
//!   [`release_metadata_json`], [`gzip_tar`], [`release_image`] (a release image over any
//!   last layer), [`push_built_image`].
//! - [`BuiltRelease::digest`], [`BuiltRelease::component`] (a component's digest by name),
//!   [`BuiltRelease::component_tags`] (tag → digest as relsync must write them).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use relsync::digest::Digest;

use super::{Content, OCI_LAYER, Pusher, image_index, image_manifest, tiny_image};

/// The media type of a gzip-compressed OCI layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An image built in memory: its config, layers and manifest.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The config blob.
    pub config: Content,
    /// The layers, in order.
    pub layers: Vec<Content>,
    /// The image manifest (OCI).
    pub manifest: Content,
}

impl BuiltImage {
    /// The manifest's digest.
    pub fn digest(&self) -> Digest {
        self.manifest.digest()
    }

    /// Every blob (config first).
    pub fn blobs(&self) -> Vec<&Content> {
        std::iter::once(&self.config).chain(&self.layers).collect()
    }
}

/// One component of a release.
#[derive(Debug, Clone)]
pub struct BuiltComponent {
    /// Its name in image-references.
    pub name: String,
    /// Its image.
    pub image: BuiltImage,
    /// The platform whose image-references names it, where platforms differ.
    pub arch: Option<String>,
}

/// A release built in memory: the release image (an image manifest, or an index over
/// platform images) and its components.
#[derive(Debug, Clone)]
pub struct BuiltRelease {
    /// The version (also its release-metadata version).
    pub version: String,
    /// The top manifest: the release image, or the index of a multi-arch release.
    pub manifest: Content,
    /// The platform images of a multi-arch release (empty for a single image), with their
    /// architectures; the top manifest itself for a single image is `images[0]`.
    pub images: Vec<(BuiltImage, Option<String>)>,
    /// Every component image (a name twice where platforms differ, with `arch` set).
    pub components: Vec<BuiltComponent>,
}

impl BuiltRelease {
    /// The release digest (what a stream pins).
    pub fn digest(&self) -> Digest {
        self.manifest.digest()
    }

    /// The release's entry in a stream's `releases` list (one line, indented).
    pub fn entry(&self) -> String {
        format!(
            "    - {{version: {}, digest: '{}'}}\n",
            self.version,
            self.digest()
        )
    }

    /// The digest of component `name` (the first platform's, where platforms differ).
    pub fn component(&self, name: &str) -> Digest {
        self.components
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no component {name}"))
            .image
            .digest()
    }

    /// The component tags relsync must write for this release: `<version>-<name>`, or
    /// `<version>-<arch>-<name>` where platforms differ; tag → component digest.
    pub fn component_tags(&self) -> BTreeMap<String, Digest> {
        let vtag = self.version.replace('+', "_");
        self.components
            .iter()
            .map(|c| {
                let tag = match &c.arch {
                    Some(a) => format!("{vtag}-{a}-{}", c.name),
                    None => format!("{vtag}-{}", c.name),
                };
                (tag, c.image.digest())
            })
            .collect()
    }
}

/// image-references as `oc adm release new` writes it: an `image.openshift.io/v1`
/// ImageStream named after the version, one `spec.tags[]` entry per `(name, from.name)`.
pub fn image_references_json(version: &str, entries: &[(String, String)]) -> Vec<u8> {
    let tags: Vec<serde_json::Value> = entries
        .iter()
        .map(|(name, from)| {
            serde_json::json!({
                "name": name,
                "annotations": {
                    "io.openshift.build.commit.id": "0123456789abcdef",
                    "io.openshift.build.source-location": format!("https://github.com/openshift/{name}"),
                },
                "from": {"kind": "DockerImage", "name": from},
                "generation": null,
                "importPolicy": {},
                "referencePolicy": {"type": "Source"},
            })
        })
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({
        "kind": "ImageStream",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {"name": version, "creationTimestamp": null,
                     "annotations": {"release.openshift.io/from-image-stream": "origin/scos-4.14"}},
        "spec": {"lookupPolicy": {"local": false}, "tags": tags},
        "status": {"dockerImageRepository": ""},
    }))
    .expect("json")
}

/// release-metadata (`cincinnati-metadata-v0`) for `version`.
pub fn release_metadata_json(version: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({
        "kind": "cincinnati-metadata-v0",
        "version": version,
        "previous": [],
        "metadata": {"url": "https://github.com/okd-project/okd/releases"},
    }))
    .expect("json")
}

/// A gzip-compressed tar layer of `(path, bytes)` files (tar and flate2 crates), with
/// the `release-manifests/` directory entry first, as `oc` writes it.
pub fn gzip_tar(files: &[(&str, &[u8])]) -> Content {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o755);
    dir.set_cksum();
    b.append_data(&mut dir, "release-manifests/", std::io::empty())
        .expect("tar dir");
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, path, *bytes).expect("tar entry");
    }
    let tar = b.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gzip");
    Content {
        media_type: OCI_LAYER_GZIP.to_string(),
        bytes: gz.finish().expect("gzip"),
    }
}

/// The release layer of `version` naming `entries` `(name, from.name)`: a gzip tar with a
/// manifest, release-metadata and image-references.
pub fn release_layer(version: &str, entries: &[(String, String)]) -> Content {
    gzip_tar(&[
        (
            "release-manifests/0000_00_cluster-version-operator_00_namespace.yaml",
            b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: openshift-cluster-version\n",
        ),
        (
            "release-manifests/release-metadata",
            &release_metadata_json(version),
        ),
        (
            "release-manifests/image-references",
            &image_references_json(version, entries),
        ),
    ])
}

/// A release image for `arch`: a small base layer (the cluster-version-operator image, in
/// a real release) and `last` as its last layer.
pub fn release_image(version: &str, arch: &str, last: Content) -> BuiltImage {
    let base = Content {
        media_type: OCI_LAYER.to_string(),
        bytes: super::tar_with_file("usr/bin/cluster-version-operator", b"#!/bin/true\n"),
    };
    let layers = vec![base, last];
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Labels": {"io.openshift.release": version}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest().to_string()).collect::<Vec<_>>()},
    });
    let config = Content {
        media_type: super::OCI_CONFIG.to_string(),
        bytes: serde_json::to_vec(&config).expect("json"),
    };
    let manifest = image_manifest(&config, &layers, None);
    BuiltImage {
        config,
        layers,
        manifest,
    }
}

/// A component image: `layers` (1–3) small layers whose content is `seed`.
pub fn component_image(seed: &str, arch: &str, layers: usize) -> BuiltImage {
    let (config, layers, manifest) = tiny_image(seed, arch, layers);
    BuiltImage {
        config,
        layers,
        manifest,
    }
}

/// `versions.len()` single-image releases of `components` components each; release `i > 0`
/// changes `changed` components of release `i - 1` (a sliding window, so every component
/// changes now and then). `component_source` is the repository `from.name` names.
pub fn payload_releases(
    versions: &[&str],
    components: usize,
    changed: usize,
    component_source: &str,
) -> Vec<BuiltRelease> {
    let mut generation = vec![0usize; components];
    let mut out = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        if i > 0 {
            for k in 0..changed.min(components) {
                let j = ((i - 1) * changed + k) % components;
                generation[j] = i;
            }
        }
        let comps: Vec<BuiltComponent> = (0..components)
            .map(|j| {
                let name = format!("comp-{j:03}");
                BuiltComponent {
                    image: component_image(
                        &format!("{name}-g{}", generation[j]),
                        "amd64",
                        1 + j % 3,
                    ),
                    name,
                    arch: None,
                }
            })
            .collect();
        let entries: Vec<(String, String)> = comps
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    format!("{component_source}@{}", c.image.digest()),
                )
            })
            .collect();
        let image = release_image(version, "amd64", release_layer(version, &entries));
        out.push(BuiltRelease {
            version: version.to_string(),
            manifest: image.manifest.clone(),
            images: vec![(image, None)],
            components: comps,
        });
    }
    out
}

/// A multi-arch release: an index over amd64 and arm64 release images. The `shared`
/// components are the same image on both; each of the `differing` has one image per
/// platform.
pub fn multiarch_release(
    version: &str,
    component_source: &str,
    shared: &[&str],
    differing: &[&str],
) -> BuiltRelease {
    let mut components = Vec::new();
    let mut images = Vec::new();
    for s in shared {
        components.push(BuiltComponent {
            name: s.to_string(),
            image: component_image(&format!("{version}-{s}"), "amd64", 1),
            arch: None,
        });
    }
    for arch in ["amd64", "arm64"] {
        let mut entries: Vec<(String, String)> = components
            .iter()
            .filter(|c| c.arch.is_none())
            .map(|c| {
                (
                    c.name.clone(),
                    format!("{component_source}@{}", c.image.digest()),
                )
            })
            .collect();
        for d in differing {
            let image = component_image(&format!("{version}-{d}-{arch}"), arch, 2);
            entries.push((
                d.to_string(),
                format!("{component_source}@{}", image.digest()),
            ));
            components.push(BuiltComponent {
                name: d.to_string(),
                image,
                arch: Some(arch.to_string()),
            });
        }
        images.push((
            release_image(version, arch, release_layer(version, &entries)),
            Some(arch.to_string()),
        ));
    }
    let pairs: Vec<(&Content, &str)> = images
        .iter()
        .map(|(i, a)| (&i.manifest, a.as_deref().unwrap_or("amd64")))
        .collect();
    let manifest = image_index(&pairs);
    BuiltRelease {
        version: version.to_string(),
        manifest,
        images,
        components,
    }
}

/// Pushes an image's blobs, then its manifest by digest (or under `tag`); returns its digest.
pub async fn push_built_image(
    pusher: &Pusher,
    repo: &str,
    tag: Option<&str>,
    image: &BuiltImage,
) -> Digest {
    for b in image.blobs() {
        pusher.push_blob(repo, &b.bytes).await;
    }
    let reference = tag.map_or_else(|| image.digest().to_string(), str::to_string);
    pusher
        .push_manifest(repo, &reference, &image.manifest)
        .await
}

/// Pushes the components of `release` into `component_repo` (by digest), then the release
/// image into `release_repo` by digest; returns the release digest.
pub async fn push_release(
    pusher: &Pusher,
    release_repo: &str,
    component_repo: &str,
    release: &BuiltRelease,
) -> Digest {
    push_release_as(pusher, release_repo, component_repo, release, None).await
}

/// [`push_release`], the release tagged with its version in `release_repo`.
pub async fn push_release_tagged(
    pusher: &Pusher,
    release_repo: &str,
    component_repo: &str,
    release: &BuiltRelease,
) -> Digest {
    let tag = release.version.replace('+', "_");
    push_release_as(pusher, release_repo, component_repo, release, Some(&tag)).await
}

async fn push_release_as(
    pusher: &Pusher,
    release_repo: &str,
    component_repo: &str,
    release: &BuiltRelease,
    tag: Option<&str>,
) -> Digest {
    for c in &release.components {
        push_built_image(pusher, component_repo, None, &c.image).await;
    }
    let single = release.images.len() == 1 && release.images[0].1.is_none();
    if single {
        return push_built_image(pusher, release_repo, tag, &release.images[0].0).await;
    }
    for (image, _) in &release.images {
        push_built_image(pusher, release_repo, None, image).await;
    }
    let reference = tag.map_or_else(|| release.digest().to_string(), str::to_string);
    pusher
        .push_manifest(release_repo, &reference, &release.manifest)
        .await
}

/// Writes `releases` as two OCI image layouts: every component image into `component_dir`
/// (untagged), every release image into `release_dir`, tagged with its version tag.
pub fn write_release_layouts(release_dir: &Path, component_dir: &Path, releases: &[BuiltRelease]) {
    let mut component_blobs: BTreeMap<Digest, &Content> = BTreeMap::new();
    let mut component_entries: BTreeMap<Digest, &Content> = BTreeMap::new();
    let mut release_blobs: BTreeMap<Digest, &Content> = BTreeMap::new();
    let mut release_entries: Vec<(String, &Content)> = Vec::new();
    for r in releases {
        for c in &r.components {
            for b in c.image.blobs() {
                component_blobs.insert(b.digest(), b);
            }
            component_entries.insert(c.image.digest(), &c.image.manifest);
        }
        let single = r.images.len() == 1 && r.images[0].1.is_none();
        for (image, _) in &r.images {
            for b in image.blobs() {
                release_blobs.insert(b.digest(), b);
            }
            if !single {
                release_blobs.insert(image.digest(), &image.manifest);
            }
        }
        release_entries.push((r.version.replace('+', "_"), &r.manifest));
    }
    let entries: Vec<(Option<&str>, &Content)> =
        component_entries.values().map(|m| (None, *m)).collect();
    let blobs: Vec<&Content> = component_blobs.values().copied().collect();
    super::write_oci_layout(component_dir, &entries, &blobs);
    let entries: Vec<(Option<&str>, &Content)> = release_entries
        .iter()
        .map(|(t, m)| (Some(t.as_str()), *m))
        .collect();
    let blobs: Vec<&Content> = release_blobs.values().copied().collect();
    super::write_oci_layout(release_dir, &entries, &blobs);
}
