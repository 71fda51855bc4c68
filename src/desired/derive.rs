//! Validated manifests → the desired state, with the checks that need the derived state itself
//! (tags claimed with two digests, ties for newest, floating tags with nothing to point at).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::order::{newest_version, release_index, version_key};
use super::types::{
    AbsentTag, DesiredImageStreamTag, DesiredState, DesiredTag, KnownRelease, TagKind,
};
use crate::digest::Digest;
use crate::manifest::{
    Diagnostic, Diagnostics, ImageStreamRef, Manifests, Release, Span, VersionKey,
};
use crate::tag::version_tag;

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
