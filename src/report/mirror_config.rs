//! PURE: `relsync mirror-config`'s output: the `ImageDigestMirrorSet` and
//! `ImageTagMirrorSet` (config.openshift.io/v1) that make a cluster pull the releases and
//! their payload components from the targets, and the install-config
//! `imageDigestSources` stanza for a new cluster.
//!
//! - `yaml` (the default): the two objects as YAML documents separated by `---`, so
//!   `relsync mirror-config | oc apply -f -` applies them; the install-config stanza follows
//!   as comment lines (it is not an object `oc apply` takes), ready to paste.
//! - `json`: `{"revision", "imageDigestMirrorSet", "imageTagMirrorSet",
//!   "imageDigestSources"}` — the two objects and the stanza, for scripts (`jq`).

use std::collections::BTreeMap;

use serde::Serialize;

/// The name both mirror sets get (`metadata.name`).
pub const MIRROR_SET_NAME: &str = "relsync";

/// The annotation naming the revision the mirror sets were made from.
pub const REVISION_ANNOTATION: &str = "relsync.dev/revision";

/// The output format of `mirror-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MirrorFormat {
    /// YAML documents for `oc apply -f`, the install-config stanza as comments.
    #[default]
    Yaml,
    /// One JSON object holding both mirror sets and the stanza.
    Json,
}

/// One source repository and the repositories that mirror it, as the three outputs
/// (`imageDigestMirrors`, `imageTagMirrors`, `imageDigestSources`) all write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorEntry {
    /// The repository the cluster is told to pull from (`host/path`).
    pub source: String,
    /// Where the content is instead, in order of preference.
    pub mirrors: Vec<String>,
}

/// What the mirror sets map: each source repository to its mirrors, by digest and by tag.
/// Built with [`MirrorConfig::digest`] and [`MirrorConfig::tag`]; entries come out sorted
/// by source, each source once with its mirrors deduplicated in the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorConfig {
    /// The revision of the desired state the mappings come from.
    pub revision: String,
    digest: BTreeMap<String, Vec<String>>,
    tag: BTreeMap<String, Vec<String>>,
}

impl MirrorConfig {
    /// An empty mapping made from `revision`.
    pub fn new(revision: &str) -> MirrorConfig {
        MirrorConfig {
            revision: revision.to_string(),
            ..MirrorConfig::default()
        }
    }

    /// Content of `source` is pulled by digest from `mirror` (a source that is its own
    /// mirror is left out: nothing to redirect).
    pub fn digest(&mut self, source: &str, mirror: &str) {
        add(&mut self.digest, source, mirror);
    }

    /// Tags of `source` are pulled from `mirror`, where they have the same names (the
    /// release repositories: their version tags are the source's).
    pub fn tag(&mut self, source: &str, mirror: &str) {
        add(&mut self.tag, source, mirror);
    }

    /// The `imageDigestMirrors` entries, sorted by source.
    pub fn digest_mirrors(&self) -> Vec<MirrorEntry> {
        entries(&self.digest)
    }

    /// The `imageTagMirrors` entries, sorted by source.
    pub fn tag_mirrors(&self) -> Vec<MirrorEntry> {
        entries(&self.tag)
    }
}

fn add(map: &mut BTreeMap<String, Vec<String>>, source: &str, mirror: &str) {
    if source == mirror {
        return;
    }
    let mirrors = map.entry(source.to_string()).or_default();
    if !mirrors.iter().any(|m| m == mirror) {
        mirrors.push(mirror.to_string());
    }
}

fn entries(map: &BTreeMap<String, Vec<String>>) -> Vec<MirrorEntry> {
    map.iter()
        .map(|(source, mirrors)| MirrorEntry {
            source: source.clone(),
            mirrors: mirrors.clone(),
        })
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Object<S: Serialize> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: S,
}

#[derive(Serialize)]
struct Metadata {
    name: &'static str,
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DigestSpec {
    image_digest_mirrors: Vec<MirrorEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TagSpec {
    image_tag_mirrors: Vec<MirrorEntry>,
}

fn object<S: Serialize>(kind: &'static str, revision: &str, spec: S) -> Object<S> {
    Object {
        api_version: "config.openshift.io/v1",
        kind,
        metadata: Metadata {
            name: MIRROR_SET_NAME,
            annotations: BTreeMap::from([(REVISION_ANNOTATION, revision.to_string())]),
        },
        spec,
    }
}

/// Renders the mirror sets (see the module's notes for each format). Every format ends
/// with a newline.
pub fn render_mirror_config(config: &MirrorConfig, format: MirrorFormat) -> String {
    let idms = object(
        "ImageDigestMirrorSet",
        &config.revision,
        DigestSpec {
            image_digest_mirrors: config.digest_mirrors(),
        },
    );
    let itms = object(
        "ImageTagMirrorSet",
        &config.revision,
        TagSpec {
            image_tag_mirrors: config.tag_mirrors(),
        },
    );
    match format {
        MirrorFormat::Json => {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Out<'a, A: Serialize, B: Serialize> {
                revision: &'a str,
                image_digest_mirror_set: A,
                image_tag_mirror_set: B,
                image_digest_sources: Vec<MirrorEntry>,
            }
            super::json(&Out {
                revision: &config.revision,
                image_digest_mirror_set: idms,
                image_tag_mirror_set: itms,
                image_digest_sources: config.digest_mirrors(),
            })
        }
        MirrorFormat::Yaml => {
            let mut out = format!(
                "# relsync mirror-config (revision {}): apply with `oc apply -f`\n",
                config.revision
            );
            out.push_str(&yaml(&idms));
            out.push_str("---\n");
            out.push_str(&yaml(&itms));
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Stanza {
                image_digest_sources: Vec<MirrorEntry>,
            }
            out.push_str("# For a new cluster, the same mirrors in install-config.yaml:\n");
            let stanza = yaml(&Stanza {
                image_digest_sources: config.digest_mirrors(),
            });
            for line in stanza.lines() {
                out.push_str("# ");
                out.push_str(line);
                out.push('\n');
            }
            out
        }
    }
}

/// One YAML document, ending with a newline.
fn yaml<T: Serialize>(value: &T) -> String {
    let mut s = serde_saphyr::to_string(value).expect("mirror sets are plain strings and lists");
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> MirrorConfig {
        let mut c = MirrorConfig::new("abc123");
        c.digest(
            "registry.ci.openshift.org/origin/release-scos",
            "quay.io/okd/scos-release",
        );
        c.tag(
            "registry.ci.openshift.org/origin/release-scos",
            "quay.io/okd/scos-release",
        );
        c.digest(
            "registry.ci.openshift.org/origin/scos-content",
            "quay.io/okd/scos-content",
        );
        c.digest(
            "registry.ci.openshift.org/origin/scos-content",
            "quay.io/okd/scos-content",
        );
        c.digest("same.example/a", "same.example/a");
        c
    }

    #[test]
    fn sources_are_grouped_sorted_and_deduplicated() {
        let c = example();
        assert_eq!(
            c.digest_mirrors(),
            vec![
                MirrorEntry {
                    source: "registry.ci.openshift.org/origin/release-scos".into(),
                    mirrors: vec!["quay.io/okd/scos-release".into()]
                },
                MirrorEntry {
                    source: "registry.ci.openshift.org/origin/scos-content".into(),
                    mirrors: vec!["quay.io/okd/scos-content".into()]
                },
            ]
        );
        assert_eq!(c.tag_mirrors().len(), 1);
    }

    #[test]
    fn yaml_is_two_documents_and_a_commented_stanza() {
        let out = render_mirror_config(&example(), MirrorFormat::Yaml);
        let docs: Vec<&str> = out.split("\n---\n").collect();
        assert_eq!(docs.len(), 2, "{out}");
        assert!(docs[0].contains("kind: ImageDigestMirrorSet"), "{out}");
        assert!(docs[1].contains("kind: ImageTagMirrorSet"), "{out}");
        assert!(out.contains("# imageDigestSources:"), "{out}");
        assert!(out.ends_with('\n'));
    }

    #[test]
    fn json_holds_both_sets_and_the_stanza() {
        let out = render_mirror_config(&example(), MirrorFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["revision"], "abc123");
        assert_eq!(v["imageDigestMirrorSet"]["kind"], "ImageDigestMirrorSet");
        assert_eq!(
            v["imageDigestMirrorSet"]["spec"]["imageDigestMirrors"][1]["mirrors"][0],
            "quay.io/okd/scos-content"
        );
        assert_eq!(
            v["imageTagMirrorSet"]["spec"]["imageTagMirrors"][0]["source"],
            "registry.ci.openshift.org/origin/release-scos"
        );
        assert_eq!(v["imageDigestSources"].as_array().unwrap().len(), 2);
    }
}
