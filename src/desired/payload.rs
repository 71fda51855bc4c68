//! PURE: the component tags of payload streams. They are desired tags of `payload.target`,
//! derived from content (a release digest's component list, which never changes), so they are
//! added to a derived [`DesiredState`] once the lists are known ([`add_components`]): from
//! the cache for `plan` and `drift`, and read from the sources by `sync`.
//!
//! - A published release with a known list: each component tag (`<version tag>-<name>`) is a
//!   desired tag of `payload.target` holding the component's digest, copied from the
//!   component's own repository, claimed by the channels that publish the release.
//! - A tombstoned release with a known list: its component tags must be absent.
//! - A release whose list is unknown (not cached, or unreadable), refused, or whose
//!   components break `allowedSources`: no component tag; the tags in `payload.target` that
//!   start with its version tag are never extra (a prune never removes a payload it cannot
//!   see), and a refused release's own tags are not written ([`DesiredPayloads::refused`]).

use std::collections::{BTreeMap, BTreeSet};

use super::types::{AbsentTag, DesiredState, DesiredTag, TagKind};
use crate::digest::Digest;
use crate::manifest::{Manifests, Policy};
use crate::payload::ComponentList;
use crate::tag::version_tag;

/// The release a component tag belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ComponentOf {
    /// The release's version.
    pub version: String,
    /// The release's digest.
    pub release: Digest,
    /// How many components the release has.
    pub components: usize,
}

/// What the desired state knows of payloads (empty without payload streams).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredPayloads {
    /// `(payload target, tag)` → the release of that component tag, for every desired and
    /// every absent component tag.
    pub component_tags: BTreeMap<(String, String), ComponentOf>,
    /// `(stream target, release digest)` → the release's component count (`None`: not known
    /// yet), for every published release of a payload stream.
    pub releases: BTreeMap<(String, Digest), Option<usize>>,
    /// Release digest → why its payload cannot be mirrored in this run (unreadable,
    /// malformed, over budget, a component source not allowed): its tags are not written.
    pub refused: BTreeMap<Digest, String>,
    /// `(payload target, "<version tag>-")` of releases without a usable list: tags of the
    /// payload target with that prefix are never extra.
    pub unknown: BTreeSet<(String, String)>,
}

impl DesiredPayloads {
    /// The release `tag` of `target` is a component tag of, if it is one.
    pub fn component_of(&self, target: &str, tag: &str) -> Option<&ComponentOf> {
        self.component_tags
            .get(&(target.to_string(), tag.to_string()))
    }

    /// Whether `tag` of `target` may belong to a payload whose list is not known.
    pub fn protects(&self, target: &str, tag: &str) -> bool {
        self.unknown
            .iter()
            .any(|(t, prefix)| t == target && tag.starts_with(prefix.as_str()))
    }
}

/// A release of a payload stream that the desired state names: published (its version tag
/// is desired) or tombstoned (its version tag must be absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadRelease {
    /// The stream's name.
    pub stream: String,
    /// The release's version.
    pub version: String,
    /// The release's digest.
    pub digest: Digest,
    /// The stream's source (where the release image, and its image-references, are read).
    pub source: String,
    /// The stream's target.
    pub target: String,
    /// `payload.target`.
    pub payload_target: String,
    /// Published (else tombstoned).
    pub published: bool,
}

/// Every release of a payload stream that `desired` (derived from `manifests`) publishes or
/// tombstones, in stream order.
pub fn payload_releases(manifests: &Manifests, desired: &DesiredState) -> Vec<PayloadRelease> {
    let mut out = Vec::new();
    for (name, stream) in &manifests.streams {
        let Some(payload) = &stream.payload else {
            continue;
        };
        let Some(repo) = desired.repos.get(&stream.target.value) else {
            continue;
        };
        for r in &stream.releases {
            let tag = version_tag(&r.version.value);
            let published = match (repo.tags.get(&tag), repo.absent.get(&tag)) {
                (Some(t), _) if t.stream == *name && t.digest == r.digest.value => true,
                (None, Some(a)) if a.version == r.version.value => false,
                _ => continue,
            };
            out.push(PayloadRelease {
                stream: name.clone(),
                version: r.version.value.clone(),
                digest: r.digest.value.clone(),
                source: stream.source.value.clone(),
                target: stream.target.value.clone(),
                payload_target: payload.target.value.clone(),
                published,
            });
        }
    }
    out
}

/// Whether the policy's `allowedSources` (when any) allows `source` (the globs of every
/// Policy document together).
pub fn source_allowed(policy: &Policy, source: &str) -> bool {
    policy.allowed_sources.is_empty()
        || policy.allowed_sources.iter().any(|g| {
            globset::GlobBuilder::new(&g.value)
                .literal_separator(true)
                .build()
                .is_ok_and(|glob| glob.compile_matcher().is_match(source))
        })
}

/// Adds the component tags of every payload release to `desired` (as the module doc says),
/// with `lists` the known component lists by release digest and `refused` the releases whose
/// list could not be read (release digest → why). Returns the releases refused here or
/// before, release digest → why (also kept in [`DesiredState::payloads`]).
pub fn add_components(
    desired: &mut DesiredState,
    manifests: &Manifests,
    lists: &BTreeMap<Digest, ComponentList>,
    refused: &BTreeMap<Digest, String>,
) -> BTreeMap<Digest, String> {
    let releases = payload_releases(manifests, desired);
    let mut payloads = std::mem::take(&mut desired.payloads);
    for r in &releases {
        desired.repos.entry(r.payload_target.clone()).or_default();
        let vtag = version_tag(&r.version);
        let prefix = (r.payload_target.clone(), format!("{vtag}-"));
        if r.published {
            payloads.releases.insert(
                (r.target.clone(), r.digest.clone()),
                lists.get(&r.digest).map(ComponentList::len),
            );
        }
        let refuse = |why: String, payloads: &mut DesiredPayloads| {
            if r.published {
                payloads.refused.insert(r.digest.clone(), why);
            }
            payloads.unknown.insert(prefix.clone());
        };
        if let Some(why) = refused.get(&r.digest) {
            refuse(why.clone(), &mut payloads);
            continue;
        }
        let Some(list) = lists.get(&r.digest) else {
            // Not known yet (plan and drift read no source): nothing to say about it.
            payloads.unknown.insert(prefix.clone());
            continue;
        };
        if let Some(c) = list
            .components
            .iter()
            .find(|c| !source_allowed(&manifests.policy, &c.source))
        {
            let globs: Vec<&str> = manifests
                .policy
                .allowed_sources
                .iter()
                .map(|g| g.value.as_str())
                .collect();
            refuse(
                format!(
                    "release {}: component `{}` comes from `{}`, which allowedSources does not allow ({})",
                    r.version,
                    c.name,
                    c.source,
                    globs.join(", ")
                ),
                &mut payloads,
            );
            continue;
        }
        let tags = match list.tags(&vtag) {
            Ok(t) => t,
            Err(e) => {
                refuse(format!("release {}: {e}", r.version), &mut payloads);
                continue;
            }
        };
        let of = ComponentOf {
            version: r.version.clone(),
            release: r.digest.clone(),
            components: list.len(),
        };
        if r.published {
            let Some(release_tag) = desired
                .repos
                .get(&r.target)
                .and_then(|repo| repo.tags.get(&vtag))
                .cloned()
            else {
                continue;
            };
            let repo = desired.repos.entry(r.payload_target.clone()).or_default();
            // A tag Git (or another release) claims with other content: refused, not overwritten.
            if let Some((tag, other)) = tags.iter().find_map(|(tag, c)| {
                repo.tags
                    .get(tag)
                    .filter(|t| t.digest != c.digest)
                    .map(|t| (tag, t))
            }) {
                refuse(
                    format!(
                        "release {}: component tag {tag} of {} is also claimed for {} (at {})",
                        r.version, r.payload_target, other.version, other.span
                    ),
                    &mut payloads,
                );
                continue;
            }
            for (tag, c) in tags {
                repo.tags.insert(
                    tag.clone(),
                    DesiredTag {
                        digest: c.digest.clone(),
                        version: r.version.clone(),
                        stream: r.stream.clone(),
                        source: c.source.clone(),
                        kind: TagKind::Component,
                        key: release_tag.key.clone(),
                        channels: release_tag.channels.clone(),
                        span: release_tag.span.clone(),
                    },
                );
                repo.absent.remove(&tag);
                claim(
                    &mut desired.channel_claims,
                    &mut payloads.component_tags,
                    &release_tag.channels,
                    (r.payload_target.clone(), tag),
                    &of,
                );
            }
        } else {
            let Some(absent) = desired
                .repos
                .get(&r.target)
                .and_then(|repo| repo.absent.get(&vtag))
                .cloned()
            else {
                continue;
            };
            let repo = desired.repos.entry(r.payload_target.clone()).or_default();
            for tag in tags.into_keys() {
                if repo.tags.contains_key(&tag) {
                    continue;
                }
                repo.absent.insert(
                    tag.clone(),
                    AbsentTag {
                        version: r.version.clone(),
                        channels: absent.channels.clone(),
                        span: absent.span.clone(),
                    },
                );
                claim(
                    &mut desired.channel_claims,
                    &mut payloads.component_tags,
                    &absent.channels,
                    (r.payload_target.clone(), tag),
                    &of,
                );
            }
        }
    }
    let out = payloads.refused.clone();
    desired.payloads = payloads;
    out
}

/// Records that `channels` claim the component tag `key` (payload target, tag) of release
/// `of`, whether it is desired or must be absent.
fn claim(
    channel_claims: &mut BTreeMap<String, BTreeSet<(String, String)>>,
    component_tags: &mut BTreeMap<(String, String), ComponentOf>,
    channels: &BTreeSet<String>,
    key: (String, String),
    of: &ComponentOf,
) {
    for ch in channels {
        channel_claims
            .entry(ch.clone())
            .or_default()
            .insert(key.clone());
    }
    component_tags.insert(key, of.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::derive;
    use crate::desired::testing::{Builder, dg, policy};
    use crate::manifest::{Located, Order, Span, StreamPayload};
    use crate::payload::Component;
    use crate::plan::{ActionKind, ObservedRepo, ObservedState, PlanOptions, drift, plan};

    const T: &str = "t.example/release";
    const P: &str = "t.example/content";

    /// A repository seen holding `tags`, each at `dg(byte)`.
    fn holding(tags: &[(&str, u8)]) -> ObservedRepo {
        ObservedRepo {
            tags: tags
                .iter()
                .map(|(t, b)| (t.to_string(), Some(dg(*b))))
                .collect(),
            ..Default::default()
        }
    }

    fn manifests(versions: &[&str], tombstones: &[&str]) -> Manifests {
        let mut m = Builder::new()
            .stream("s", T, Order::Semver, &[("1.0.0", dg(1)), ("1.1.0", dg(2))])
            .channel("next", "s", &["next"], versions, tombstones)
            .build();
        m.streams.get_mut("s").unwrap().payload = Some(StreamPayload {
            target: Located::new(P.to_string(), Span::file("streams/s.yaml")),
        });
        m
    }

    fn list(base: u8, source: &str) -> ComponentList {
        ComponentList {
            components: ["cli", "installer"]
                .iter()
                .enumerate()
                .map(|(i, n)| Component {
                    name: n.to_string(),
                    arch: None,
                    source: source.to_string(),
                    digest: dg(base + i as u8),
                })
                .collect(),
        }
    }

    fn lists() -> BTreeMap<Digest, ComponentList> {
        BTreeMap::from([
            (dg(1), list(0x10, "src.example/c")),
            (dg(2), list(0x20, "src.example/c")),
        ])
    }

    #[test]
    fn component_tags_are_desired_in_the_payload_target() {
        let m = manifests(&["1.0.0", "1.1.0"], &[]);
        let mut d = derive(&m).unwrap();
        let refused = add_components(&mut d, &m, &lists(), &BTreeMap::new());
        assert!(refused.is_empty());
        let tags = &d.repos[P].tags;
        assert_eq!(
            tags.keys().collect::<Vec<_>>(),
            [
                "1.0.0-cli",
                "1.0.0-installer",
                "1.1.0-cli",
                "1.1.0-installer"
            ]
        );
        let t = &tags["1.1.0-installer"];
        assert_eq!((t.digest.clone(), t.kind), (dg(0x21), TagKind::Component));
        assert_eq!(t.source, "src.example/c");
        assert_eq!(t.version, "1.1.0");
        assert!(d.channel_claims["next"].contains(&(P.to_string(), "1.0.0-cli".to_string())));
        assert_eq!(d.payloads.releases[&(T.to_string(), dg(2))], Some(2));
        assert_eq!(
            d.payloads.component_of(P, "1.0.0-cli").unwrap().version,
            "1.0.0"
        );

        // Planned against an empty target: the release mirrors carry their component count,
        // the component mirrors copy from the component's own source.
        let p = plan(
            "r",
            &d,
            &ObservedState::default(),
            &policy(&[], None),
            &PlanOptions::default(),
        );
        let release = p
            .actions
            .iter()
            .find(|a| a.target.to_string() == T && a.tag == "1.1.0")
            .unwrap();
        assert_eq!(release.components, Some(Some(2)));
        let comp = p.actions.iter().find(|a| a.tag == "1.0.0-cli").unwrap();
        assert_eq!(comp.action, ActionKind::Mirror);
        assert_eq!(comp.source.as_deref(), Some("src.example/c"));
        assert_eq!(comp.components, None);
        let json = serde_json::to_value(release).unwrap();
        assert_eq!(json["components"], 2);
        assert!(
            serde_json::to_value(comp)
                .unwrap()
                .get("components")
                .is_none()
        );

        // Without the list (plan before any sync): `components: null`, no component tag.
        let mut d = derive(&m).unwrap();
        add_components(&mut d, &m, &BTreeMap::new(), &BTreeMap::new());
        assert!(d.repos[P].tags.is_empty());
        let p = plan(
            "r",
            &d,
            &ObservedState::default(),
            &policy(&[], None),
            &PlanOptions::default(),
        );
        let release = p.actions.iter().find(|a| a.tag == "1.1.0").unwrap();
        assert_eq!(
            serde_json::to_value(release).unwrap()["components"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn a_moved_component_tag_is_restored_even_when_immutable_tags_match_it() {
        let m = manifests(&["1.0.0"], &[]);
        let mut d = derive(&m).unwrap();
        add_components(&mut d, &m, &lists(), &BTreeMap::new());
        let mut live = ObservedState::default();
        live.repos.insert(
            P.to_string(),
            holding(&[("1.0.0-cli", 0x99), ("1.0.0-installer", 0x11)]),
        );
        let p = plan(
            "r",
            &d,
            &live,
            &policy(&[r"^\d+\.\d+\.\d+"], None),
            &PlanOptions::default(),
        );
        assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
        let a = p.actions.iter().find(|a| a.tag == "1.0.0-cli").unwrap();
        assert_eq!(a.action, ActionKind::Retag);
        assert!(
            a.reason.contains("component of release 1.0.0"),
            "{}",
            a.reason
        );
        let dr = drift("r", &d, &live, &PlanOptions::default());
        let item = dr.items.iter().find(|i| i.tag == "1.0.0-cli").unwrap();
        assert_eq!(item.release.as_deref(), Some("1.0.0"));
        let release_item = dr.items.iter().find(|i| i.tag == "1.0.0").unwrap();
        assert_eq!(release_item.release, None);
    }

    #[test]
    fn a_tombstoned_release_s_component_tags_are_one_delete() {
        let m = manifests(&["1.1.0"], &["1.0.0"]);
        let mut d = derive(&m).unwrap();
        add_components(&mut d, &m, &lists(), &BTreeMap::new());
        assert_eq!(
            d.repos[P].absent.keys().collect::<Vec<_>>(),
            ["1.0.0-cli", "1.0.0-installer"]
        );
        let mut live = ObservedState::default();
        live.repos.insert(T.to_string(), holding(&[("1.0.0", 1)]));
        live.repos.insert(
            P.to_string(),
            holding(&[("1.0.0-cli", 0x10), ("1.0.0-installer", 0x11)]),
        );
        let p = plan(
            "r",
            &d,
            &live,
            &policy(&[], Some(1)),
            &PlanOptions::default(),
        );
        let deletes = p
            .actions
            .iter()
            .filter(|a| a.action == ActionKind::Delete)
            .count();
        assert_eq!(deletes, 3);
        assert_eq!(p.refusal, None, "three deletes counted as one");
        // The release tag already gone: its component tags still count once.
        live.repos.get_mut(T).unwrap().tags.clear();
        let p = plan(
            "r",
            &d,
            &live,
            &policy(&[], Some(0)),
            &PlanOptions::default(),
        );
        assert!(p.refusal.is_some());
        let p = plan(
            "r",
            &d,
            &live,
            &policy(&[], Some(1)),
            &PlanOptions::default(),
        );
        assert_eq!(p.refusal, None);
    }

    #[test]
    fn refused_payloads_and_unknown_lists_protect_their_tags() {
        let mut m = manifests(&["1.0.0", "1.1.0"], &[]);
        m.policy.allowed_sources = vec![Located::new(
            "src.example/*".to_string(),
            Span::file("p.yaml"),
        )];
        let mut lists = lists();
        lists.insert(dg(2), list(0x20, "elsewhere.example/c"));
        let mut d = derive(&m).unwrap();
        let refused = add_components(&mut d, &m, &lists, &BTreeMap::new());
        assert_eq!(refused.len(), 1);
        assert!(
            refused[&dg(2)].contains("allowedSources does not allow"),
            "{refused:?}"
        );
        assert!(!d.repos[P].tags.contains_key("1.1.0-cli"));
        // A tag of the refused release in the payload target is not extra, even with prune.
        let mut live = ObservedState::default();
        live.repos.insert(
            P.to_string(),
            holding(&[("1.1.0-cli", 0x20), ("stray", 0x30)]),
        );
        let options = PlanOptions {
            prune: true,
            ..Default::default()
        };
        let p = plan("r", &d, &live, &policy(&[], None), &options);
        let deleted: Vec<&str> = p
            .actions
            .iter()
            .filter(|a| a.action == ActionKind::Delete)
            .map(|a| a.tag.as_str())
            .collect();
        assert_eq!(deleted, ["stray"]);
    }

    #[test]
    fn a_component_tag_git_claims_otherwise_refuses_the_release() {
        let m = Builder::new()
            .stream("s", T, Order::Semver, &[("1.0.0", dg(1))])
            .pin("s", "1.0.0", &["1.0.0-cli"])
            .channel("next", "s", &[], &["1.0.0"], &[])
            .build();
        let mut m = m;
        m.streams.get_mut("s").unwrap().payload = Some(StreamPayload {
            target: Located::new(T.to_string(), Span::file("streams/s.yaml")),
        });
        let mut d = derive(&m).unwrap();
        let refused = add_components(&mut d, &m, &lists(), &BTreeMap::new());
        assert!(refused[&dg(1)].contains("also claimed"), "{refused:?}");
    }
}
