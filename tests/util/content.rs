//! Images and indexes made in memory: tar layers, configs, manifests, and what a push
//! gives back.

use std::collections::BTreeMap;

use relsync::digest::Digest;

use super::{OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST};

/// An image pushed by [`Pusher::push_image`].
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// The manifest's digest.
    pub manifest: Digest,
    /// The manifest's bytes.
    pub manifest_bytes: Vec<u8>,
    /// The config blob's digest.
    pub config: Digest,
    /// The layers' digests.
    pub layers: Vec<Digest>,
}

/// An image index pushed by [`Pusher::push_index`].
#[derive(Debug, Clone)]
pub struct PushedIndex {
    /// The index's digest.
    pub index: Digest,
    /// The index's bytes.
    pub index_bytes: Vec<u8>,
    /// The per-platform images (amd64, arm64).
    pub children: Vec<PushedImage>,
}

/// A blob or manifest to write: its media type and bytes.
#[derive(Debug, Clone)]
pub struct Content {
    /// Media type.
    pub media_type: String,
    /// Bytes.
    pub bytes: Vec<u8>,
}

impl Content {
    /// Its sha256 digest.
    pub fn digest(&self) -> Digest {
        Digest::sha256_of(&self.bytes)
    }

    /// A descriptor JSON object for it.
    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest().to_string(),
            "size": self.bytes.len(),
        })
    }
}

/// A small uncompressed tar archive holding one file `name` with `content`.
pub fn tar_with_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, s: &[u8]| h[at..at + s.len()].copy_from_slice(s);
    put(&mut header, 0, &name.as_bytes()[..name.len().min(99)]);
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 148, b"        ");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    let sum: u32 = header.iter().map(|&b| b as u32).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The blobs and manifest of a tiny image for `arch`, distinct per `seed`: `layers` (1–3)
/// small tar layers and a config. Returns `(config, layers, manifest)`.
pub fn tiny_image(seed: &str, arch: &str, layers: usize) -> (Content, Vec<Content>, Content) {
    let layers: Vec<Content> = (1..=layers.clamp(1, 3))
        .map(|i| Content {
            media_type: OCI_LAYER.to_string(),
            bytes: tar_with_file(
                &format!("layer-{i}.txt"),
                format!("{seed} {arch} layer {i}\n").as_bytes(),
            ),
        })
        .collect();
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Labels": {"relsync.test.seed": seed}},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest().to_string()).collect::<Vec<_>>(),
        },
    });
    let config = Content {
        media_type: OCI_CONFIG.to_string(),
        bytes: serde_json::to_vec(&config).expect("json"),
    };
    let manifest = image_manifest(&config, &layers, None);
    (config, layers, manifest)
}

/// An OCI image manifest over `config` and `layers`, with optional annotations (which make
/// otherwise identical manifests distinct).
pub fn image_manifest(
    config: &Content,
    layers: &[Content],
    annotations: Option<&BTreeMap<String, String>>,
) -> Content {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Content::descriptor).collect::<Vec<_>>(),
    });
    if let Some(a) = annotations {
        m["annotations"] = serde_json::json!(a);
    }
    Content {
        media_type: OCI_MANIFEST.to_string(),
        bytes: serde_json::to_vec(&m).expect("json"),
    }
}

/// An OCI image index over `(manifest, architecture)` pairs.
pub fn image_index(children: &[(&Content, &str)]) -> Content {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .map(|(m, arch)| {
            let mut d = m.descriptor();
            d["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
            d
        })
        .collect();
    Content {
        media_type: OCI_INDEX.to_string(),
        bytes: serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
        .expect("json"),
    }
}
