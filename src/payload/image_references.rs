//! PURE: `release-manifests/image-references`, the `image.openshift.io/v1` ImageStream that
//! `oc adm release new` writes into a release image: `spec.tags[].name` is a component,
//! `spec.tags[].from.name` the component pinned by digest (`host/path@sha256:…`).

use serde::Deserialize;

use super::reference::split_pinned;
use super::{ImageReference, PayloadError};

/// The `apiVersion` image-references carries.
pub const IMAGE_API_VERSION: &str = "image.openshift.io/v1";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamDoc {
    kind: Option<String>,
    api_version: Option<String>,
    spec: Option<SpecDoc>,
}

#[derive(Deserialize)]
struct SpecDoc {
    #[serde(default)]
    tags: Option<Vec<TagDoc>>,
}

#[derive(Deserialize)]
struct TagDoc {
    name: Option<String>,
    from: Option<FromDoc>,
}

#[derive(Deserialize)]
struct FromDoc {
    kind: Option<String>,
    name: Option<String>,
}

/// Parses image-references (JSON, as `oc adm release new` writes it; unknown fields are
/// ignored, as `oc` ignores them) into its entries, in file order. Refused: not JSON, not
/// an `image.openshift.io/v1` ImageStream, no `spec.tags`, an entry without a name or whose
/// `from` is not a `DockerImage` pinned by digest, a name listed twice.
pub fn parse_image_references(bytes: &[u8]) -> Result<Vec<ImageReference>, PayloadError> {
    let malformed = |m: String| PayloadError::Malformed(m);
    let doc: StreamDoc = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("not the JSON of an ImageStream ({e})")))?;
    if doc.kind.as_deref() != Some("ImageStream") {
        return Err(malformed(format!(
            "`kind` is {}, expected `ImageStream`",
            shown(doc.kind.as_deref())
        )));
    }
    if doc.api_version.as_deref() != Some(IMAGE_API_VERSION) {
        return Err(malformed(format!(
            "`apiVersion` is {}, expected `{IMAGE_API_VERSION}`",
            shown(doc.api_version.as_deref())
        )));
    }
    let tags = doc
        .spec
        .and_then(|s| s.tags)
        .ok_or_else(|| malformed("no `spec.tags`".to_string()))?;
    if tags.is_empty() {
        return Err(malformed("`spec.tags` names no component".to_string()));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(tags.len());
    for (i, t) in tags.into_iter().enumerate() {
        let name = match t.name {
            Some(n) if !n.is_empty() => n,
            _ => return Err(malformed(format!("`spec.tags[{i}].name` is missing"))),
        };
        let what = format!("`spec.tags[{i}]` (`{}`)", shown_text(&name));
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(malformed(format!(
                "{what}: a component name is letters, digits, `.`, `_` and `-`"
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(malformed(format!("{what}: the name is listed twice")));
        }
        let from = t
            .from
            .ok_or_else(|| malformed(format!("{what}: `from` is missing")))?;
        if let Some(kind) = from.kind.as_deref()
            && kind != "DockerImage"
        {
            return Err(malformed(format!(
                "{what}: `from.kind` is `{}`, expected `DockerImage`",
                shown_text(kind)
            )));
        }
        let reference = from
            .name
            .ok_or_else(|| malformed(format!("{what}: `from.name` is missing")))?;
        let (source, digest) = split_pinned(&reference)
            .map_err(|e| malformed(format!("{what}: `from.name`: {}", shown_text(&e))))?;
        out.push(ImageReference {
            name,
            source,
            digest,
        });
    }
    Ok(out)
}

fn shown(v: Option<&str>) -> String {
    match v {
        Some(v) => format!("`{}`", shown_text(v)),
        None => "missing".to_string(),
    }
}

/// Text from the layer, safe for a terminal: control characters escaped, at most 200
/// characters.
fn shown_text(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars().take(200) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if v.chars().count() > 200 {
        out.push('…');
    }
    out
}
