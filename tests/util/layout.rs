//! Writing OCI image layouts on disk.

use std::path::Path;

use relsync::digest::Digest;

use super::{Content, OCI_INDEX};

/// Writes an OCI image layout at `dir`: each `(tag, manifest)` becomes a blob and an
/// `index.json` entry (annotated with the tag when there is one). Blobs the manifests refer
/// to are not written (pass them in `blobs`). Returns the manifests' digests.
pub fn write_oci_layout(
    dir: &Path,
    entries: &[(Option<&str>, &Content)],
    blobs: &[&Content],
) -> Vec<Digest> {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let mut manifests = Vec::new();
    let mut digests = Vec::new();
    for b in blobs {
        std::fs::write(dir.join("blobs/sha256").join(b.digest().hex()), &b.bytes).expect("blob");
    }
    for (tag, m) in entries {
        let d = m.digest();
        std::fs::write(dir.join("blobs/sha256").join(d.hex()), &m.bytes).expect("blob");
        let mut desc = m.descriptor();
        if let Some(t) = tag {
            desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": t});
        }
        manifests.push(desc);
        digests.push(d);
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec_pretty(&index).expect("json"),
    )
    .expect("index.json");
    digests
}
