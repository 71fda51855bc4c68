//! Manifest formats: the four relsync copies (OCI image index and manifest, Docker manifest
//! list and v2 schema 2 manifest), parsed just enough to find what a manifest names
//! ([`parse_manifest`]); the bytes themselves are never re-serialized.

use super::MANIFEST_MEDIA_TYPES;
use crate::digest::Digest;

/// The four manifest formats relsync copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// `application/vnd.oci.image.index.v1+json`.
    OciIndex,
    /// `application/vnd.oci.image.manifest.v1+json`.
    OciManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`.
    DockerList,
    /// `application/vnd.docker.distribution.manifest.v2+json`.
    DockerManifest,
}

impl ManifestKind {
    /// The kind a media type names, if it is one of the four.
    pub fn from_media_type(media_type: &str) -> Option<ManifestKind> {
        // Parameters (`; charset=utf-8`) are not part of the type.
        let base = media_type.split(';').next().unwrap_or("").trim();
        match base {
            t if t == MANIFEST_MEDIA_TYPES[0] => Some(ManifestKind::OciIndex),
            t if t == MANIFEST_MEDIA_TYPES[1] => Some(ManifestKind::OciManifest),
            t if t == MANIFEST_MEDIA_TYPES[2] => Some(ManifestKind::DockerList),
            t if t == MANIFEST_MEDIA_TYPES[3] => Some(ManifestKind::DockerManifest),
            _ => None,
        }
    }

    /// The media type that names this format.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::OciIndex => MANIFEST_MEDIA_TYPES[0],
            ManifestKind::OciManifest => MANIFEST_MEDIA_TYPES[1],
            ManifestKind::DockerList => MANIFEST_MEDIA_TYPES[2],
            ManifestKind::DockerManifest => MANIFEST_MEDIA_TYPES[3],
        }
    }

    /// Whether this is an index (a list of child manifests).
    pub fn is_index(self) -> bool {
        matches!(self, ManifestKind::OciIndex | ManifestKind::DockerList)
    }
}

/// A content descriptor named by a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Its media type, when given.
    pub media_type: Option<String>,
    /// The digest of the content it names.
    pub digest: Digest,
    /// Its size in bytes, when given.
    pub size: Option<u64>,
}

/// What a manifest names: for an index its child manifests, for an image manifest its
/// config and layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The manifest's format, which says whether it lists children or blobs.
    pub kind: ManifestKind,
    /// Child manifests (an index), in order.
    pub children: Vec<Descriptor>,
    /// Blobs (an image manifest): the config first, then the layers, in order, without
    /// duplicates. Non-distributable layers fetched from `urls` are left out.
    pub blobs: Vec<Descriptor>,
}

/// Why a manifest cannot be copied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestFormatError {
    /// A format other than the four relsync copies.
    #[error(
        "media type `{0}` is not copied (relsync copies OCI image indexes and manifests, Docker manifest lists and Docker v2 schema 2 manifests)"
    )]
    Unsupported(String),
    /// Not the JSON its format requires.
    #[error("malformed manifest: {0}")]
    Malformed(String),
}

/// Parses a manifest just enough to find what it names. The format is the manifest's own
/// `mediaType` field when present (it must be one of the four), else `media_type` (the
/// `Content-Type` it was served with), else inferred from a `schemaVersion: 2` body
/// (`manifests` → OCI index, `config` → OCI manifest).
pub fn parse_manifest(
    media_type: &str,
    bytes: &[u8],
) -> Result<ParsedManifest, ManifestFormatError> {
    let malformed = |m: String| ManifestFormatError::Malformed(m);
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON ({e})")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| malformed("not a JSON object".to_string()))?;
    let schema = obj.get("schemaVersion").and_then(serde_json::Value::as_u64);
    let kind = match obj.get("mediaType") {
        Some(serde_json::Value::String(t)) => ManifestKind::from_media_type(t)
            .ok_or_else(|| ManifestFormatError::Unsupported(t.clone()))?,
        Some(_) => return Err(malformed("`mediaType` is not a string".to_string())),
        None => match ManifestKind::from_media_type(media_type) {
            Some(k) => k,
            None if schema == Some(2) && obj.contains_key("manifests") => ManifestKind::OciIndex,
            None if schema == Some(2) && obj.contains_key("config") => ManifestKind::OciManifest,
            None if schema == Some(1) => {
                return Err(ManifestFormatError::Unsupported(format!(
                    "{media_type} (Docker schema 1)"
                )));
            }
            None => {
                return Err(ManifestFormatError::Unsupported(if media_type.is_empty() {
                    "(none)".to_string()
                } else {
                    media_type.to_string()
                }));
            }
        },
    };
    if schema != Some(2) {
        return Err(malformed("`schemaVersion` is not 2".to_string()));
    }
    let descriptor = |v: &serde_json::Value, at: &str| -> Result<Descriptor, ManifestFormatError> {
        let o = v
            .as_object()
            .ok_or_else(|| malformed(format!("{at} is not an object")))?;
        let digest = o
            .get("digest")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| malformed(format!("{at} has no digest")))?;
        let digest = Digest::parse(digest).map_err(|e| malformed(format!("{at}: {e}")))?;
        let size = match o.get("size") {
            None => None,
            Some(s) => Some(
                s.as_u64()
                    .ok_or_else(|| malformed(format!("{at}: size is not a whole number")))?,
            ),
        };
        let media_type = o
            .get("mediaType")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        Ok(Descriptor {
            media_type,
            digest,
            size,
        })
    };
    let mut parsed = ParsedManifest {
        kind,
        children: Vec::new(),
        blobs: Vec::new(),
    };
    if kind.is_index() {
        let list = obj
            .get("manifests")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| malformed("an index without a `manifests` list".to_string()))?;
        for (i, m) in list.iter().enumerate() {
            parsed
                .children
                .push(descriptor(m, &format!("manifests[{i}]"))?);
        }
    } else {
        let config = obj
            .get("config")
            .ok_or_else(|| malformed("an image manifest without `config`".to_string()))?;
        parsed.blobs.push(descriptor(config, "config")?);
        let layers = match obj.get("layers") {
            Some(serde_json::Value::Array(l)) => l.as_slice(),
            None => &[],
            Some(_) => return Err(malformed("`layers` is not a list".to_string())),
        };
        for (i, l) in layers.iter().enumerate() {
            let d = descriptor(l, &format!("layers[{i}]"))?;
            let foreign = d
                .media_type
                .as_deref()
                .is_some_and(|t| t.contains("foreign") || t.contains("nondistributable"))
                && l.get("urls").is_some();
            if foreign || parsed.blobs.iter().any(|b| b.digest == d.digest) {
                continue;
            }
            parsed.blobs.push(d);
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::memory::{OCI_INDEX, OCI_MANIFEST};

    const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn parses_the_four_formats() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10}},{{"digest":"{}","size":11}}]}}"#,
            d('a'),
            d('b')
        );
        let p = parse_manifest("", index.as_bytes()).unwrap();
        assert_eq!(p.kind, ManifestKind::OciIndex);
        assert_eq!(
            p.children
                .iter()
                .map(|c| c.digest.to_string())
                .collect::<Vec<_>>(),
            [d('a'), d('b')]
        );
        assert_eq!(p.children[1].size, Some(11));
        assert!(p.blobs.is_empty());

        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{{"mediaType":"{DOCKER_V2}","digest":"{}","size":5,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            d('c')
        );
        let p = parse_manifest(DOCKER_LIST, list.as_bytes()).unwrap();
        assert_eq!(p.kind, ManifestKind::DockerList);
        assert_eq!(p.children.len(), 1);

        // Config first, then layers; a repeated layer once.
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":3}},"layers":[{{"digest":"{}","size":4}},{{"digest":"{}","size":5}},{{"digest":"{}","size":4}}]}}"#,
            d('1'),
            d('2'),
            d('3'),
            d('2')
        );
        let p = parse_manifest(DOCKER_V2, image.as_bytes()).unwrap();
        assert_eq!(p.kind, ManifestKind::DockerManifest);
        assert_eq!(
            p.blobs
                .iter()
                .map(|b| b.digest.to_string())
                .collect::<Vec<_>>(),
            [d('1'), d('2'), d('3')]
        );

        // An OCI manifest without mediaType: the served type, else the shape.
        let bare = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":3}},"layers":[]}}"#,
            d('4')
        );
        assert_eq!(
            parse_manifest(OCI_MANIFEST, bare.as_bytes()).unwrap().kind,
            ManifestKind::OciManifest
        );
        assert_eq!(
            parse_manifest("application/json", bare.as_bytes())
                .unwrap()
                .kind,
            ManifestKind::OciManifest
        );
        assert_eq!(
            ManifestKind::from_media_type(&format!("{OCI_INDEX}; charset=utf-8")),
            Some(ManifestKind::OciIndex)
        );
    }

    #[test]
    fn skips_foreign_layers_and_refuses_other_formats() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2}","config":{{"digest":"{}","size":3}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":4,"urls":["https://example.com/x"]}},{{"digest":"{}","size":5}}]}}"#,
            d('1'),
            d('2'),
            d('3')
        );
        let p = parse_manifest(DOCKER_V2, image.as_bytes()).unwrap();
        assert_eq!(
            p.blobs
                .iter()
                .map(|b| b.digest.to_string())
                .collect::<Vec<_>>(),
            [d('1'), d('3')]
        );

        let schema1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let e = parse_manifest(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1.as_bytes(),
        )
        .unwrap_err();
        assert!(matches!(e, ManifestFormatError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("v1+prettyjws"), "{e}");

        let artifact = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[]}"#;
        let e = parse_manifest("", artifact.as_bytes()).unwrap_err();
        assert_eq!(
            e,
            ManifestFormatError::Unsupported(
                "application/vnd.oci.artifact.manifest.v1+json".to_string()
            )
        );
        for bad in [
            "not json",
            "[]",
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:zz"}}"#,
            r#"{"schemaVersion":3,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}"#,
        ] {
            assert!(
                matches!(
                    parse_manifest("", bad.as_bytes()),
                    Err(ManifestFormatError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }
}
