//! PURE: validated manifests → the desired state, keyed by target repository across all
//! streams (two streams may share a target; their tags are one set), plus one desired tag set
//! per ImageStream.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::digest::Digest;
use crate::manifest::{
    Diagnostic, Diagnostics, ImageStreamRef, Located, Manifests, Order, Release, ReleaseChannel,
    ReleaseStream, Span, VersionKey,
};

/// What a desired tag is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TagKind {
    /// The version's own tag (`4.2.14_amd64` for `4.2.14+amd64`).
    Version,
    /// An extra tag pinned to a release in the stream (`tags:` of a release).
    Pinned,
    /// A channel's floating tag (newest version of the channel).
    Floating,
}

/// One tag Git wants in a target repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredTag {
    /// The digest the tag must hold.
    pub digest: Digest,
    /// The version that digest is.
    pub version: String,
    /// The stream the version belongs to.
    pub stream: String,
    /// The source repository content is copied from.
    pub source: String,
    /// Why the tag is wanted.
    pub kind: TagKind,
    /// The version's sort key under its stream's order (to tell a retag from a rollback).
    pub key: VersionKey,
    /// The channels that claim this tag (sorted).
    pub channels: BTreeSet<String>,
    /// Where the claim is written (the release or the channel's floating tag).
    pub span: Span,
}

/// A tag Git wants gone: a tombstoned version that no channel still lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsentTag {
    /// The tombstoned version.
    pub version: String,
    /// The channels that tombstone it.
    pub channels: BTreeSet<String>,
    /// Where the (first) tombstone is written.
    pub span: Span,
}

/// A release the stream catalogue knows, for mapping a live digest back to a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRelease {
    /// The stream.
    pub stream: String,
    /// The version.
    pub version: String,
    /// Its sort key under the stream's order.
    pub key: VersionKey,
}

/// The desired state of one target repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredRepo {
    /// Tags that must exist, tag → what it must hold.
    pub tags: BTreeMap<String, DesiredTag>,
    /// Tags that must not exist (explicit deletes, made whether or not prune is on).
    pub absent: BTreeMap<String, AbsentTag>,
    /// Every release of the streams that publish here, by digest (a digest may be several
    /// versions; the first in stream order is kept).
    pub known: BTreeMap<Digest, KnownRelease>,
}

/// One tag of an ImageStream: `<stream.target>@<digest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredImageStreamTag {
    /// The pull spec `<target>@<digest>`.
    pub from: String,
    /// The digest.
    pub digest: Digest,
    /// The version.
    pub version: String,
    /// The channels that claim it.
    pub channels: BTreeSet<String>,
}

/// Everything Git wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// Target repository (`host/path` or `oci:PATH`) → its desired tags.
    pub repos: BTreeMap<String, DesiredRepo>,
    /// ImageStream → tag → desired image.
    pub image_streams: BTreeMap<ImageStreamRef, BTreeMap<String, DesiredImageStreamTag>>,
    /// Channel name → the tags it claims, as `(target, tag)` pairs (for `--channel`
    /// narrowing): its versions' tags, their pinned extra tags, its floating tags and its
    /// tombstones' tags, in its stream's target; and, when it publishes into an ImageStream,
    /// every tag of that ImageStream (which is always applied whole), with the target written
    /// as [`crate::plan::Target`] displays it (`imagestream:<ns>/<name>`).
    pub channel_claims: BTreeMap<String, BTreeSet<(String, String)>>,
}

/// The registry tag of a version: the version itself, with `+` written `_`.
pub fn version_tag(version: &str) -> String {
    version.replace('+', "_")
}

/// The sort key of `version` in a stream with `order`, given its index in `releases`.
/// Returns `None` for a version that is not semver under `Order::Semver` (validation
/// rejects those before this is reached).
pub fn version_key(order: Order, version: &str, index: usize) -> Option<VersionKey> {
    match order {
        Order::Semver => semver::Version::parse(version).ok().map(VersionKey::Semver),
        Order::Listed => Some(VersionKey::Listed(index)),
    }
}

/// Whether `tag` fits the distribution grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Whether a tag is a signature or attestation tag (`sha256-<hex>.sig|.att|.sbom`), which is
/// never extra.
pub fn is_signature_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let Some((hex, suffix)) = rest.split_once('.') else {
        return false;
    };
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && matches!(suffix, "sig" | "att" | "sbom")
}

/// The newest published version of `channel` (its `versions` minus its `tombstones`) under
/// `stream`'s order, with its release.
///
/// Returns `Ok(None)` when the channel publishes no version of the stream, and every
/// version tied for newest as errors at the channel's `versions` entries (two versions of
/// equal semver precedence, such as `4.2.14` and `4.2.14+amd64`). Versions the stream does
/// not list, or that are not semver in a semver stream, are left out (validation reports
/// those).
pub fn newest_version<'a>(
    stream: &'a ReleaseStream,
    channel: &ReleaseChannel,
) -> Result<Option<&'a Release>, Diagnostics> {
    let index = release_index(stream);
    let mut seen = BTreeSet::new();
    let mut candidates: Vec<(&Located<String>, &Release, VersionKey)> = Vec::new();
    for v in channel.published() {
        if !seen.insert(v.value.as_str()) {
            continue;
        }
        if let Some(&(i, release)) = index.get(v.value.as_str())
            && let Some(key) = version_key(stream.order, &v.value, i)
        {
            candidates.push((v, release, key));
        }
    }
    let Some(best) = candidates
        .iter()
        .max_by(|a, b| a.2.precedence(&b.2))
        .map(|c| c.2.clone())
    else {
        return Ok(None);
    };
    let tied: Vec<_> = candidates
        .iter()
        .filter(|c| c.2.precedence(&best) == Ordering::Equal)
        .collect();
    if let [only] = tied.as_slice() {
        return Ok(Some(only.1));
    }
    let mut diags = Diagnostics::default();
    for (entry, _, _) in &tied {
        let others: Vec<&str> = tied
            .iter()
            .filter(|o| o.0.value != entry.value)
            .map(|o| o.0.value.as_str())
            .collect();
        diags.push(
            Diagnostic::error(
                entry.span.clone(),
                format!(
                    "version {} of channel {} ties with {} for the channel's newest version: equal semver precedence (build metadata is ignored)",
                    entry.value,
                    channel.name.value,
                    others.join(", ")
                ),
            )
            .with_hint(format!(
                "list only one of them, or set `order: listed` on stream {}",
                stream.name.value
            )),
        );
    }
    Err(diags)
}

/// Version string → (index in `releases`, release); the first of duplicates wins.
fn release_index(stream: &ReleaseStream) -> HashMap<&str, (usize, &Release)> {
    let mut index = HashMap::new();
    for (i, r) in stream.releases.iter().enumerate() {
        index.entry(r.version.value.as_str()).or_insert((i, r));
    }
    index
}

/// One claim on a tag, before claims on the same tag are merged.
struct Claim {
    tag: DesiredTag,
}

/// Merges the claims on one tag: one digest → one desired tag (channels united); several
/// digests → an error at the first place of each later digest naming the first place.
fn merge_claims(
    what: &str,
    tag: &str,
    mut claims: Vec<Claim>,
    diags: &mut Diagnostics,
) -> Option<DesiredTag> {
    claims.sort_by(|a, b| (&a.tag.span, a.tag.kind).cmp(&(&b.tag.span, b.tag.kind)));
    let mut groups: Vec<(Digest, Vec<Claim>)> = Vec::new();
    for c in claims {
        match groups.iter_mut().find(|(d, _)| *d == c.tag.digest) {
            Some((_, g)) => g.push(c),
            None => groups.push((c.tag.digest.clone(), vec![c])),
        }
    }
    let mut groups = groups.into_iter();
    let (first_digest, first) = groups.next()?;
    let first_span = first[0].tag.span.clone();
    let mut conflicted = false;
    for (digest, group) in groups {
        conflicted = true;
        diags.push(Diagnostic::error(
            group[0].tag.span.clone(),
            format!(
                "tag {tag} of {what} is claimed with digest {digest} here and with digest {first_digest} at {first_span}"
            ),
        ));
    }
    if conflicted {
        return None;
    }
    let mut channels = BTreeSet::new();
    let mut best: Option<DesiredTag> = None;
    for c in first {
        channels.extend(c.tag.channels.iter().cloned());
        if best.as_ref().is_none_or(|b| c.tag.kind < b.kind) {
            best = Some(c.tag);
        }
    }
    best.map(|mut t| {
        t.channels = channels;
        t
    })
}

/// Derives the desired state from validated manifests.
///
/// The checks that need the derived state itself are made here and returned as errors, all
/// of them in one run: a tag claimed twice with different digests (naming both places), a
/// tie for a channel's newest version, and floating tags on a channel that publishes no
/// version.
///
/// Channels naming an unknown stream and versions their stream does not list are skipped:
/// validation reports those.
pub fn derive(manifests: &Manifests) -> Result<DesiredState, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut state = DesiredState::default();
    let indexes: BTreeMap<&str, HashMap<&str, (usize, &Release)>> = manifests
        .streams
        .iter()
        .map(|(name, s)| (name.as_str(), release_index(s)))
        .collect();

    // Every stream's target is a desired repository, and knows all of its releases.
    for (name, stream) in &manifests.streams {
        let repo = state.repos.entry(stream.target.value.clone()).or_default();
        for (i, r) in stream.releases.iter().enumerate() {
            let Some(key) = version_key(stream.order, &r.version.value, i) else {
                continue;
            };
            repo.known
                .entry(r.digest.value.clone())
                .or_insert_with(|| KnownRelease {
                    stream: name.clone(),
                    version: r.version.value.clone(),
                    key,
                });
        }
    }

    // (stream, version) published by at least one channel.
    let published: BTreeSet<(&str, &str)> = manifests
        .channels
        .values()
        .flat_map(|c| {
            c.published()
                .map(move |v| (c.stream.value.as_str(), v.value.as_str()))
        })
        .collect();

    let mut repo_claims: BTreeMap<(String, String), Vec<Claim>> = BTreeMap::new();
    let mut is_claims: BTreeMap<(ImageStreamRef, String), Vec<Claim>> = BTreeMap::new();
    let mut absent: BTreeMap<(String, String), AbsentTag> = BTreeMap::new();

    for (cname, channel) in &manifests.channels {
        let Some(stream) = manifests.streams.get(&channel.stream.value) else {
            continue;
        };
        let Some(index) = indexes.get(channel.stream.value.as_str()) else {
            continue;
        };
        let target = &stream.target.value;
        let claims = state.channel_claims.entry(cname.clone()).or_default();
        let one = |c: &str| BTreeSet::from([c.to_string()]);
        let desired = |release: &Release, key: VersionKey, kind: TagKind, span: Span| DesiredTag {
            digest: release.digest.value.clone(),
            version: release.version.value.clone(),
            stream: stream.name.value.clone(),
            source: stream.source.value.clone(),
            kind,
            key,
            channels: one(cname),
            span,
        };

        let mut seen = BTreeSet::new();
        for v in channel.published() {
            if !seen.insert(v.value.as_str()) {
                continue;
            }
            let Some(&(i, release)) = index.get(v.value.as_str()) else {
                continue;
            };
            let Some(key) = version_key(stream.order, &v.value, i) else {
                continue;
            };
            let tag = version_tag(&v.value);
            claims.insert((target.clone(), tag.clone()));
            let vt = desired(
                release,
                key.clone(),
                TagKind::Version,
                release.version.span.clone(),
            );
            if let Some(is) = &channel.image_stream {
                is_claims
                    .entry((is.clone(), tag.clone()))
                    .or_default()
                    .push(Claim { tag: vt.clone() });
            }
            repo_claims
                .entry((target.clone(), tag))
                .or_default()
                .push(Claim { tag: vt });
            for extra in &release.tags {
                claims.insert((target.clone(), extra.value.clone()));
                repo_claims
                    .entry((target.clone(), extra.value.clone()))
                    .or_default()
                    .push(Claim {
                        tag: desired(release, key.clone(), TagKind::Pinned, extra.span.clone()),
                    });
            }
        }

        if !channel.tags.is_empty() {
            match newest_version(stream, channel) {
                Err(ties) => diags.0.extend(ties.0),
                Ok(Some(release)) => {
                    let i = index
                        .get(release.version.value.as_str())
                        .map(|&(i, _)| i)
                        .unwrap_or(0);
                    if let Some(key) = version_key(stream.order, &release.version.value, i) {
                        for ft in &channel.tags {
                            claims.insert((target.clone(), ft.value.clone()));
                            let t =
                                desired(release, key.clone(), TagKind::Floating, ft.span.clone());
                            if let Some(is) = &channel.image_stream {
                                is_claims
                                    .entry((is.clone(), ft.value.clone()))
                                    .or_default()
                                    .push(Claim { tag: t.clone() });
                            }
                            repo_claims
                                .entry((target.clone(), ft.value.clone()))
                                .or_default()
                                .push(Claim { tag: t });
                        }
                    }
                }
                Ok(None) => {
                    // Only an error when the channel publishes nothing at all; versions
                    // that merely fail to resolve are validation's to report.
                    if channel.published().next().is_none() {
                        for ft in &channel.tags {
                            diags.push(
                                Diagnostic::error(
                                    ft.span.clone(),
                                    format!(
                                        "floating tag {} of channel {} has nothing to point at: the channel publishes no version",
                                        ft.value, cname
                                    ),
                                )
                                .with_hint("list a version under `versions`, or remove the floating tag"),
                            );
                        }
                    }
                }
            }
        } else if let Err(ties) = newest_version(stream, channel) {
            diags.0.extend(ties.0);
        }

        for t in &channel.tombstones {
            let tag = version_tag(&t.value);
            claims.insert((target.clone(), tag.clone()));
            if published.contains(&(channel.stream.value.as_str(), t.value.as_str())) {
                continue;
            }
            let a = absent
                .entry((target.clone(), tag))
                .or_insert_with(|| AbsentTag {
                    version: t.value.clone(),
                    channels: BTreeSet::new(),
                    span: t.span.clone(),
                });
            a.channels.insert(cname.clone());
            if t.span < a.span {
                a.span = t.span.clone();
            }
        }
    }

    for ((target, tag), claims) in repo_claims {
        let what = format!("target {target}");
        if let Some(t) = merge_claims(&what, &tag, claims, &mut diags) {
            state.repos.entry(target).or_default().tags.insert(tag, t);
        }
    }
    for ((target, tag), a) in absent {
        let repo = state.repos.entry(target).or_default();
        if !repo.tags.contains_key(&tag) {
            repo.absent.insert(tag, a);
        }
    }
    for ((is, tag), claims) in is_claims {
        let what = format!("imagestream {}/{}", is.namespace, is.name);
        if let Some(t) = merge_claims(&what, &tag, claims, &mut diags) {
            let target = manifests
                .streams
                .get(&t.stream)
                .map(|s| s.target.value.as_str())
                .unwrap_or_default();
            state.image_streams.entry(is).or_default().insert(
                tag,
                DesiredImageStreamTag {
                    from: format!("{target}@{}", t.digest),
                    digest: t.digest,
                    version: t.version,
                    channels: t.channels,
                },
            );
        }
    }
    // A channel publishing into an ImageStream claims that ImageStream's whole tag set.
    for (cname, channel) in &manifests.channels {
        let Some(is) = &channel.image_stream else {
            continue;
        };
        let Some(tags) = state.image_streams.get(is) else {
            continue;
        };
        let target = format!("imagestream:{}/{}", is.namespace, is.name);
        let claims = state.channel_claims.entry(cname.clone()).or_default();
        for tag in tags.keys() {
            claims.insert((target.clone(), tag.clone()));
        }
    }

    if diags.has_errors() {
        diags.sort();
        diags.0.dedup();
        return Err(diags);
    }
    Ok(state)
}

/// Test-only builder of [`Manifests`] values with predictable places, so tests need no
/// YAML: stream `S` lives in `streams/S.yaml` (release `i` at line `10 + 3i`, its extra tags
/// on the line below), channel `C` in `channels/C.yaml` (floating tags at line 5, version
/// `i` at line `10 + i`, tombstone `i` at line `40 + i`).
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::*;
    use crate::manifest::{Policy, Release, ReleaseChannel, ReleaseStream};

    /// A digest made of one repeated hex digit pair: `dg(0xab)` = `sha256:abab…`.
    pub(crate) fn dg(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32)))
            .expect("a well-formed digest")
    }

    fn at(file: &str, line: u64, col: u64) -> Span {
        Span::new(Arc::<str>::from(file), line, col)
    }

    /// Builds [`Manifests`] step by step.
    #[derive(Default)]
    pub(crate) struct Builder {
        m: Manifests,
    }

    impl Builder {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        /// A stream with `releases` (version, digest), copied from `src/<name>`.
        pub(crate) fn stream(
            mut self,
            name: &str,
            target: &str,
            order: Order,
            releases: &[(&str, Digest)],
        ) -> Self {
            let file = format!("streams/{name}.yaml");
            let releases = releases
                .iter()
                .enumerate()
                .map(|(i, (v, d))| {
                    let line = 10 + 3 * i as u64;
                    Release {
                        version: Located::new(v.to_string(), at(&file, line, 16)),
                        digest: Located::new(d.clone(), at(&file, line + 1, 15)),
                        tags: Vec::new(),
                    }
                })
                .collect();
            self.m.streams.insert(
                name.to_string(),
                ReleaseStream {
                    name: Located::new(name.to_string(), at(&file, 4, 9)),
                    source: Located::new(format!("src.example/{name}"), at(&file, 6, 11)),
                    target: Located::new(target.to_string(), at(&file, 7, 11)),
                    order,
                    releases,
                },
            );
            self
        }

        /// Pins extra `tags` to `version` of `stream`.
        pub(crate) fn pin(mut self, stream: &str, version: &str, tags: &[&str]) -> Self {
            let file = format!("streams/{stream}.yaml");
            let s = self
                .m
                .streams
                .get_mut(stream)
                .expect("stream defined first");
            let (i, r) = s
                .releases
                .iter_mut()
                .enumerate()
                .find(|(_, r)| r.version.value == version)
                .expect("release defined first");
            let line = 12 + 3 * i as u64;
            r.tags = tags
                .iter()
                .enumerate()
                .map(|(j, t)| Located::new(t.to_string(), at(&file, line, 14 + 10 * j as u64)))
                .collect();
            self
        }

        /// A channel of `stream` with floating `tags`, `versions` and `tombstones`.
        pub(crate) fn channel(
            mut self,
            name: &str,
            stream: &str,
            tags: &[&str],
            versions: &[&str],
            tombstones: &[&str],
        ) -> Self {
            let file = format!("channels/{name}.yaml");
            let list = |items: &[&str], first: u64| {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Located::new(v.to_string(), at(&file, first + i as u64, 7)))
                    .collect::<Vec<_>>()
            };
            self.m.channels.insert(
                name.to_string(),
                ReleaseChannel {
                    name: Located::new(name.to_string(), at(&file, 4, 9)),
                    stream: Located::new(stream.to_string(), at(&file, 6, 11)),
                    tags: tags
                        .iter()
                        .enumerate()
                        .map(|(i, t)| Located::new(t.to_string(), at(&file, 7, 10 + 20 * i as u64)))
                        .collect(),
                    image_stream: None,
                    feeder: None,
                    versions: list(versions, 10),
                    tombstones: list(tombstones, 40),
                },
            );
            self
        }

        /// Makes `channel` publish into the ImageStream `ns/name`.
        pub(crate) fn image_stream(mut self, channel: &str, ns: &str, name: &str) -> Self {
            self.m
                .channels
                .get_mut(channel)
                .expect("channel defined first")
                .image_stream = Some(ImageStreamRef {
                namespace: ns.to_string(),
                name: name.to_string(),
            });
            self
        }

        /// The manifests.
        pub(crate) fn build(self) -> Manifests {
            self.m
        }
    }

    /// A policy with these immutable-tag regexes and delete cap.
    pub(crate) fn policy(immutable: &[&str], max_deletes: Option<u32>) -> Policy {
        let file = "policies/default.yaml";
        Policy {
            names: vec![Located::new("default".to_string(), at(file, 4, 9))],
            allowed_sources: Vec::new(),
            immutable_tags: immutable
                .iter()
                .map(|r| {
                    Located::new(
                        regex::Regex::new(r).expect("test regex compiles"),
                        at(file, 7, 18),
                    )
                })
                .collect(),
            max_deletes_per_sync: max_deletes.map(|n| Located::new(n, at(file, 8, 22))),
            channel_subsets: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Builder, dg};
    use super::*;

    const T: &str = "quay.io/okd/scos-release";

    fn errors(m: &Manifests) -> Vec<String> {
        derive(m)
            .expect_err("derive must fail")
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn version_floating_and_pinned_tags() {
        let m = Builder::new()
            .stream(
                "4-scos",
                T,
                Order::Semver,
                &[
                    ("4.14.0-0.a", dg(1)),
                    ("4.14.0-0.b", dg(2)),
                    ("4.15.0-0.c", dg(3)),
                ],
            )
            .pin("4-scos", "4.14.0-0.b", &["4.14.0-okd-scos.0"])
            .channel(
                "next",
                "4-scos",
                &["4-scos-next"],
                &["4.14.0-0.a", "4.15.0-0.c", "4.14.0-0.b"],
                &[],
            )
            .channel(
                "stable",
                "4-scos",
                &["4-scos-stable", "stable"],
                &["4.14.0-0.a", "4.14.0-0.b"],
                &[],
            )
            .build();
        let d = derive(&m).unwrap();
        let repo = &d.repos[T];
        let want: Vec<(&str, Digest, TagKind, BTreeSet<String>)> = vec![
            ("4-scos-next", dg(3), TagKind::Floating, set(&["next"])),
            ("4-scos-stable", dg(2), TagKind::Floating, set(&["stable"])),
            (
                "4.14.0-0.a",
                dg(1),
                TagKind::Version,
                set(&["next", "stable"]),
            ),
            (
                "4.14.0-0.b",
                dg(2),
                TagKind::Version,
                set(&["next", "stable"]),
            ),
            (
                "4.14.0-okd-scos.0",
                dg(2),
                TagKind::Pinned,
                set(&["next", "stable"]),
            ),
            ("4.15.0-0.c", dg(3), TagKind::Version, set(&["next"])),
            ("stable", dg(2), TagKind::Floating, set(&["stable"])),
        ];
        let got: Vec<_> = repo
            .tags
            .iter()
            .map(|(t, d)| (t.as_str(), d.digest.clone(), d.kind, d.channels.clone()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(repo.tags["4-scos-stable"].version, "4.14.0-0.b");
        assert_eq!(repo.tags["4-scos-stable"].source, "src.example/4-scos");
        assert!(repo.absent.is_empty());
        assert_eq!(repo.known.len(), 3);
        assert_eq!(repo.known[&dg(3)].version, "4.15.0-0.c");
        let stable: Vec<_> = d.channel_claims["stable"]
            .iter()
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(
            stable,
            [
                "4-scos-stable",
                "4.14.0-0.a",
                "4.14.0-0.b",
                "4.14.0-okd-scos.0",
                "stable"
            ]
        );
    }

    #[test]
    fn plus_is_written_underscore_and_build_metadata_is_ignored_for_newest() {
        let m = Builder::new()
            .stream(
                "s",
                T,
                Order::Semver,
                &[("4.2.14+amd64", dg(1)), ("4.2.13", dg(2))],
            )
            .channel(
                "c",
                "s",
                &["latest"],
                &["4.2.13", "4.2.14+amd64"],
                &["4.2.9+amd64"],
            )
            .build();
        let d = derive(&m).unwrap();
        let repo = &d.repos[T];
        assert_eq!(repo.tags["4.2.14_amd64"].version, "4.2.14+amd64");
        assert!(!repo.tags.contains_key("4.2.14+amd64"));
        assert_eq!(repo.tags["latest"].digest, dg(1));
        assert!(repo.absent.contains_key("4.2.9_amd64"));
        assert_eq!(version_tag("4.2.14+amd64.1"), "4.2.14_amd64.1");
    }

    #[test]
    fn listed_order_uses_stream_position_not_semver() {
        // Listed: the stream's last release is newest. Semver: the alphanumeric prerelease
        // `ec.1` outranks the numeric `0`.
        for (order, newest) in [(Order::Listed, dg(2)), (Order::Semver, dg(1))] {
            let m = Builder::new()
                .stream(
                    "s",
                    T,
                    order,
                    &[
                        ("4.15.0-okd-scos.ec.1", dg(1)),
                        ("4.15.0-okd-scos.0", dg(2)),
                    ],
                )
                .channel(
                    "c",
                    "s",
                    &["f"],
                    &["4.15.0-okd-scos.0", "4.15.0-okd-scos.ec.1"],
                    &[],
                )
                .build();
            assert_eq!(
                derive(&m).unwrap().repos[T].tags["f"].digest,
                newest,
                "{order:?}"
            );
        }
    }

    #[test]
    fn tie_for_newest_is_an_error_at_each_entry() {
        let m = Builder::new()
            .stream(
                "s",
                T,
                Order::Semver,
                &[("4.2.14", dg(1)), ("4.2.14+amd64", dg(2)), ("4.2.1", dg(3))],
            )
            .channel("c", "s", &["f"], &["4.2.1", "4.2.14", "4.2.14+amd64"], &[])
            .build();
        assert_eq!(
            errors(&m),
            [
                "channels/c.yaml:11:7: version 4.2.14 of channel c ties with 4.2.14+amd64 for the channel's newest version: equal semver precedence (build metadata is ignored) (hint: list only one of them, or set `order: listed` on stream s)",
                "channels/c.yaml:12:7: version 4.2.14+amd64 of channel c ties with 4.2.14 for the channel's newest version: equal semver precedence (build metadata is ignored) (hint: list only one of them, or set `order: listed` on stream s)",
            ]
        );
        // Equal precedence below the newest is fine.
        let m = Builder::new()
            .stream(
                "s",
                T,
                Order::Semver,
                &[("4.2.14", dg(1)), ("4.2.14+amd64", dg(2)), ("4.3.1", dg(3))],
            )
            .channel("c", "s", &["f"], &["4.2.14", "4.2.14+amd64", "4.3.1"], &[])
            .build();
        assert_eq!(derive(&m).unwrap().repos[T].tags["f"].digest, dg(3));
        assert_eq!(
            newest_version(&m.streams["s"], &m.channels["c"])
                .unwrap()
                .map(|r| r.version.value.as_str()),
            Some("4.3.1")
        );
    }

    #[test]
    fn floating_tags_without_versions_are_errors_at_each_tag() {
        let m = Builder::new()
            .stream("s", T, Order::Semver, &[("1.0.0", dg(1))])
            .channel("c", "s", &["a", "b"], &["1.0.0"], &["1.0.0"])
            .build();
        assert_eq!(
            errors(&m),
            [
                "channels/c.yaml:7:10: floating tag a of channel c has nothing to point at: the channel publishes no version (hint: list a version under `versions`, or remove the floating tag)",
                "channels/c.yaml:7:30: floating tag b of channel c has nothing to point at: the channel publishes no version (hint: list a version under `versions`, or remove the floating tag)",
            ]
        );
    }

    #[test]
    fn a_tag_claimed_with_two_digests_names_both_places() {
        // Two streams share a target and both publish 1.0.0 with different digests; and a
        // pinned tag collides with a floating tag.
        let m = Builder::new()
            .stream("a", T, Order::Semver, &[("1.0.0", dg(1)), ("1.1.0", dg(3))])
            .stream("b", T, Order::Semver, &[("1.0.0", dg(2))])
            .pin("a", "1.0.0", &["latest"])
            .channel("ca", "a", &[], &["1.0.0"], &[])
            .channel("cb", "b", &["latest"], &["1.0.0"], &[])
            .build();
        assert_eq!(
            errors(&m),
            [
                format!(
                    "streams/a.yaml:12:14: tag latest of target {T} is claimed with digest {} here and with digest {} at channels/cb.yaml:7:10",
                    dg(1),
                    dg(2)
                ),
                format!(
                    "streams/b.yaml:10:16: tag 1.0.0 of target {T} is claimed with digest {} here and with digest {} at streams/a.yaml:10:16",
                    dg(2),
                    dg(1)
                ),
            ]
        );
    }

    #[test]
    fn the_same_digest_from_two_places_merges_channels() {
        let m = Builder::new()
            .stream("a", T, Order::Semver, &[("1.0.0", dg(1))])
            .stream("b", T, Order::Semver, &[("1.0.0", dg(1)), ("2.0.0", dg(2))])
            .channel("ca", "a", &["latest"], &["1.0.0"], &[])
            .channel("cb", "b", &["latest"], &["1.0.0"], &["2.0.0"])
            .build();
        let d = derive(&m).unwrap();
        let repo = &d.repos[T];
        assert_eq!(repo.tags["1.0.0"].channels, set(&["ca", "cb"]));
        assert_eq!(repo.tags["latest"].channels, set(&["ca", "cb"]));
        // Both streams' releases are known in the shared target; one tag set.
        assert_eq!(repo.known.len(), 2);
        assert_eq!(repo.known[&dg(2)].stream, "b");
        assert_eq!(d.repos.len(), 1);
        assert!(repo.absent.contains_key("2.0.0"));
    }

    #[test]
    fn tombstones() {
        let m = Builder::new()
            .stream(
                "s",
                T,
                Order::Semver,
                &[
                    ("1.0.0", dg(1)),
                    ("1.1.0", dg(2)),
                    ("1.2.0", dg(3)),
                    ("1.3.0", dg(4)),
                ],
            )
            .pin("s", "1.3.0", &["1.0.0-hotfix"])
            // 1.0.0: tombstoned in next, still in stable → desired.
            // 1.1.0: tombstoned in next and stable (listed in stable too: tombstone wins) → absent.
            // 1.0.0-hotfix: tombstoned but claimed as a pinned tag of 1.3.0 → desired.
            .channel(
                "next",
                "s",
                &[],
                &["1.2.0", "1.3.0"],
                &["1.0.0", "1.1.0", "1.0.0-hotfix"],
            )
            .channel("stable", "s", &[], &["1.0.0", "1.1.0"], &["1.1.0"])
            .build();
        let d = derive(&m).unwrap();
        let repo = &d.repos[T];
        assert_eq!(repo.tags["1.0.0"].channels, set(&["stable"]));
        assert_eq!(repo.tags["1.0.0-hotfix"].digest, dg(4));
        assert_eq!(repo.absent.keys().collect::<Vec<_>>(), ["1.1.0"]);
        let a = &repo.absent["1.1.0"];
        assert_eq!(a.channels, set(&["next", "stable"]));
        assert_eq!(a.span.to_string(), "channels/next.yaml:41:7");
        assert!(d.channel_claims["stable"].contains(&(T.to_string(), "1.1.0".to_string())));
        assert!(d.channel_claims["next"].contains(&(T.to_string(), "1.0.0".to_string())));
    }

    #[test]
    fn every_stream_target_is_a_repo_even_unpublished() {
        let m = Builder::new()
            .stream("s", T, Order::Semver, &[("1.0.0", dg(1))])
            .stream("o", "oci:/srv/other", Order::Semver, &[("2.0.0", dg(2))])
            .channel("c", "s", &[], &["1.0.0"], &[])
            .build();
        let d = derive(&m).unwrap();
        assert_eq!(d.repos.keys().collect::<Vec<_>>(), ["oci:/srv/other", T]);
        assert!(d.repos["oci:/srv/other"].tags.is_empty());
        assert_eq!(d.repos["oci:/srv/other"].known[&dg(2)].version, "2.0.0");
    }

    #[test]
    fn image_streams_gather_every_channel_and_report_conflicts() {
        let m = Builder::new()
            .stream("s", T, Order::Semver, &[("1.0.0", dg(1)), ("1.1.0", dg(2))])
            .channel("next", "s", &["next"], &["1.0.0", "1.1.0"], &[])
            .channel("stable", "s", &["stable"], &["1.0.0"], &[])
            .image_stream("next", "origin", "release")
            .image_stream("stable", "origin", "release")
            .build();
        let d = derive(&m).unwrap();
        let is = ImageStreamRef {
            namespace: "origin".into(),
            name: "release".into(),
        };
        let tags = &d.image_streams[&is];
        assert_eq!(
            tags.keys().collect::<Vec<_>>(),
            ["1.0.0", "1.1.0", "next", "stable"]
        );
        assert_eq!(tags["stable"].from, format!("{T}@{}", dg(1)));
        assert_eq!(tags["1.0.0"].channels, set(&["next", "stable"]));
        assert!(d.channel_claims["stable"].contains(&(
            "imagestream:origin/release".to_string(),
            "1.1.0".to_string()
        )));

        // Two streams in different targets publish 1.0.0 into one ImageStream.
        let m = Builder::new()
            .stream("a", "r.example/a", Order::Semver, &[("1.0.0", dg(1))])
            .stream("b", "r.example/b", Order::Semver, &[("1.0.0", dg(2))])
            .channel("ca", "a", &[], &["1.0.0"], &[])
            .channel("cb", "b", &[], &["1.0.0"], &[])
            .image_stream("ca", "ns", "is")
            .image_stream("cb", "ns", "is")
            .build();
        assert_eq!(
            errors(&m),
            [format!(
                "streams/b.yaml:10:16: tag 1.0.0 of imagestream ns/is is claimed with digest {} here and with digest {} at streams/a.yaml:10:16",
                dg(2),
                dg(1)
            )]
        );
    }

    #[test]
    fn all_problems_in_one_run_sorted() {
        let m = Builder::new()
            .stream(
                "s",
                T,
                Order::Semver,
                &[("1.0.0", dg(1)), ("1.0.0+x", dg(2))],
            )
            .channel("z", "s", &["f"], &[], &[])
            .channel("a", "s", &["g"], &["1.0.0", "1.0.0+x"], &[])
            .build();
        let e = errors(&m);
        assert_eq!(e.len(), 3);
        assert!(e[0].starts_with("channels/a.yaml:10:7: version 1.0.0 of channel a ties"));
        assert!(e[1].starts_with("channels/a.yaml:11:7: version 1.0.0+x of channel a ties"));
        assert!(e[2].starts_with("channels/z.yaml:7:10: floating tag f of channel z"));
    }

    #[test]
    fn signature_tags() {
        let h = "a".repeat(64);
        assert!(is_signature_tag(&format!("sha256-{h}.sig")));
        assert!(is_signature_tag(&format!("sha256-{h}.att")));
        assert!(is_signature_tag(&format!("sha256-{h}.sbom")));
        assert!(!is_signature_tag(&format!("sha256-{h}.tar")));
        assert!(!is_signature_tag("sha256-abc.sig"));
        assert!(!is_signature_tag("4-scos-stable"));
    }
}
