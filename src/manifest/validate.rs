//! Semantic checks on parsed documents: digests, versions, tags, references between
//! documents, and the rules of the policies. Every problem is reported, at the offending value.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use globset::{GlobBuilder, GlobMatcher};

use super::parse::{Kind, ParsedDocs, RawChannel, RawPolicy, RawStream, parse_duration, shown};
use super::{
    Diagnostic, Diagnostics, Feeder, Located, Manifests, Order, Policy, Release, ReleaseChannel,
    ReleaseStream, StreamPayload, Validated,
};
use crate::digest::Digest;
use crate::tag::{TAG_RULE, is_valid_tag, version_tag};

fn check_tag(diags: &mut Diagnostics, tag: &Located<String>, what: &str) -> bool {
    if is_valid_tag(&tag.value) {
        true
    } else {
        diags.push(Diagnostic::error(
            tag.span.clone(),
            format!("invalid {what} `{}`: {TAG_RULE}", tag.value),
        ));
        false
    }
}

pub(super) fn validate(docs: ParsedDocs) -> Validated {
    let ParsedDocs {
        mut problems,
        mut streams,
        mut channels,
        mut policies,
        broken,
    } = docs;
    let broken_streams: BTreeSet<&str> = broken
        .iter()
        .filter(|(k, _)| *k == Kind::ReleaseStream)
        .map(|(_, n)| n.as_str())
        .collect();
    let broken_channels: BTreeSet<&str> = broken
        .iter()
        .filter(|(k, _)| *k == Kind::ReleaseChannel)
        .map(|(_, n)| n.as_str())
        .collect();
    let diags = &mut problems;

    // Files may come in any order: the first definition is the first by place.
    streams.sort_by(|a, b| a.name.span.cmp(&b.name.span));
    channels.sort_by(|a, b| a.name.span.cmp(&b.name.span));
    policies.sort_by(|a, b| a.name.span.cmp(&b.name.span));
    let streams = dedupe(diags, streams, "ReleaseStream", |s| &s.name);
    let channels = dedupe(diags, channels, "ReleaseChannel", |c| &c.name);
    let policies = dedupe(diags, policies, "Policy", |p| &p.name);

    let mut out_streams = BTreeMap::new();
    let mut stream_versions: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for s in &streams {
        stream_versions.insert(&s.name.value, check_stream(diags, s, &mut out_streams));
    }

    let mut out_channels = BTreeMap::new();
    for c in &channels {
        let stream = match stream_versions.get(c.stream.value.as_str()) {
            Some(known) => StreamRef::Known(known),
            None if broken_streams.contains(c.stream.value.as_str()) => StreamRef::Broken,
            None => StreamRef::Unknown,
        };
        check_channel(
            diags,
            c,
            stream,
            &channels,
            &broken_channels,
            &mut out_channels,
        );
    }

    let policy = check_policies(diags, &policies, &streams, &channels, &broken_channels);

    // Messages quote what users wrote: keep control characters from reaching a terminal.
    for d in diags.0.iter_mut() {
        d.message = shown(&d.message);
    }
    diags.sort();
    let manifests = Manifests {
        streams: out_streams,
        channels: out_channels,
        policy,
        warnings: Diagnostics::default(),
    };
    Validated {
        manifests,
        problems,
    }
}

/// Keeps the first document of each name; reports the others naming both places.
fn dedupe<T>(
    diags: &mut Diagnostics,
    docs: Vec<T>,
    kind: &str,
    name: impl Fn(&T) -> &Located<String>,
) -> Vec<T> {
    let mut first: HashMap<String, super::Span> = HashMap::new();
    let mut kept = Vec::new();
    for d in docs {
        let n = name(&d);
        if let Some(at) = first.get(&n.value) {
            diags.push(Diagnostic::error(
                n.span.clone(),
                format!("duplicate {kind} `{}` (also defined at {at})", n.value),
            ));
            continue;
        }
        first.insert(n.value.clone(), n.span.clone());
        kept.push(d);
    }
    kept
}

/// Checks one stream; adds it to `out` when it is valid. Returns the versions it defines.
fn check_stream<'a>(
    diags: &mut Diagnostics,
    s: &'a RawStream,
    out: &mut BTreeMap<String, ReleaseStream>,
) -> BTreeSet<&'a str> {
    let mut versions: BTreeMap<&str, &Located<String>> = BTreeMap::new();
    let mut releases = Vec::new();
    let mut valid = true;
    for r in &s.releases {
        let mut ok = r.digest.is_some() && r.version.is_some();
        let digest = r
            .digest
            .as_ref()
            .and_then(|d| match Digest::parse_release(&d.value) {
                Ok(digest) => Some(Located::new(digest, d.span.clone())),
                Err(e) => {
                    diags.push(Diagnostic::error(d.span.clone(), e.to_string()));
                    ok = false;
                    None
                }
            });
        for t in &r.tags {
            ok &= check_tag(diags, t, "tag");
        }
        if let Some(v) = &r.version {
            if let Some(first) = versions.get(v.value.as_str()) {
                diags.push(Diagnostic::error(
                    v.span.clone(),
                    format!(
                        "version `{}` is listed twice in stream `{}` (first at {})",
                        v.value, s.name.value, first.span
                    ),
                ));
                ok = false;
            } else {
                versions.insert(&v.value, v);
                ok &= check_version(diags, v, s.order, &s.name.value);
            }
        }
        valid &= ok;
        if let (true, Some(version), Some(digest)) = (ok, &r.version, digest) {
            releases.push(Release {
                version: version.clone(),
                digest,
                tags: r.tags.clone(),
            });
        }
    }
    let payload = s.payload_target.as_ref().and_then(|t| {
        match crate::payload::reference::check_target(&t.value) {
            Ok(()) => Some(StreamPayload { target: t.clone() }),
            Err(reason) => {
                diags.push(Diagnostic::error(
                    t.span.clone(),
                    format!("invalid `spec.payload.target` `{}`: {reason}", t.value),
                ));
                valid = false;
                None
            }
        }
    });
    if valid {
        out.insert(
            s.name.value.clone(),
            ReleaseStream {
                name: s.name.clone(),
                source: s.source.clone(),
                target: s.target.clone(),
                order: s.order,
                releases,
                payload,
            },
        );
    }
    versions.into_keys().collect()
}

/// A version must be usable as a tag once `+` is written `_`, and be semver under
/// `order: semver`.
fn check_version(diags: &mut Diagnostics, v: &Located<String>, order: Order, stream: &str) -> bool {
    if v.value.is_empty() {
        diags.push(Diagnostic::error(
            v.span.clone(),
            "version must not be empty",
        ));
        return false;
    }
    if order == Order::Semver
        && let Err(e) = semver::Version::parse(&v.value)
    {
        diags.push(
            Diagnostic::error(
                v.span.clone(),
                format!(
                    "version `{}` of stream `{stream}` is not semver: {e}",
                    v.value
                ),
            )
            .with_hint("versions that are not semver need `order: listed` in the stream"),
        );
        return false;
    }
    let tag = version_tag(&v.value);
    if !is_valid_tag(&tag) {
        diags.push(Diagnostic::error(
            v.span.clone(),
            format!(
                "version `{}` cannot be a registry tag (`+` is written `_`): {TAG_RULE}",
                v.value
            ),
        ));
        return false;
    }
    true
}

/// What a channel's `stream` names.
enum StreamRef<'a> {
    /// A stream that was read: its versions.
    Known(&'a BTreeSet<&'a str>),
    /// A stream whose document could not be read (already reported).
    Broken,
    /// No such stream.
    Unknown,
}

fn check_channel(
    diags: &mut Diagnostics,
    c: &RawChannel,
    stream: StreamRef<'_>,
    all: &[RawChannel],
    broken_channels: &BTreeSet<&str>,
    out: &mut BTreeMap<String, ReleaseChannel>,
) {
    let name = &c.name.value;
    let mut ok = true;
    for t in &c.tags {
        ok &= check_tag(diags, t, "floating tag");
    }
    match stream {
        StreamRef::Broken => ok = false,
        StreamRef::Unknown => {
            diags.push(Diagnostic::error(
                c.stream.span.clone(),
                format!(
                    "channel `{name}` follows unknown stream `{}`",
                    c.stream.value
                ),
            ));
            ok = false;
        }
        StreamRef::Known(known) => {
            for (list, what) in [(&c.versions, "version"), (&c.tombstones, "tombstone")] {
                let mut seen: HashMap<&str, &Located<String>> = HashMap::new();
                for v in list {
                    if let Some(first) = seen.get(v.value.as_str()) {
                        diags.push(Diagnostic::error(
                            v.span.clone(),
                            format!(
                                "{what} `{}` is listed twice in channel `{name}` (first at {})",
                                v.value, first.span
                            ),
                        ));
                        ok = false;
                        continue;
                    }
                    seen.insert(&v.value, v);
                    if !known.contains(v.value.as_str()) {
                        diags.push(Diagnostic::error(
                            v.span.clone(),
                            format!(
                                "{what} `{}` of channel `{name}` is not in stream `{}`",
                                v.value, c.stream.value
                            ),
                        ));
                        ok = false;
                    }
                }
            }
        }
    }
    // The first listing of each version, so that checking every tombstone stays linear.
    let mut listed: HashMap<&str, &Located<String>> = HashMap::new();
    for v in &c.versions {
        listed.entry(v.value.as_str()).or_insert(v);
    }
    for t in &c.tombstones {
        if let Some(v) = listed.get(t.value.as_str()) {
            diags.push(Diagnostic::warning(
                t.span.clone(),
                format!(
                    "version `{}` is both listed (at {}) and tombstoned in channel `{name}`; the tombstone wins",
                    t.value,
                    v.span
                ),
            ));
        }
    }
    let mut feeder = None;
    if let Some(f) = &c.feeder {
        match all.iter().find(|o| o.name.value == f.channel.value) {
            None if broken_channels.contains(f.channel.value.as_str()) => ok = false,
            None => {
                diags.push(Diagnostic::error(
                    f.channel.span.clone(),
                    format!(
                        "feeder channel `{}` of channel `{name}` does not exist",
                        f.channel.value
                    ),
                ));
                ok = false;
            }
            Some(o) if o.name.value == *name => {
                diags.push(Diagnostic::error(
                    f.channel.span.clone(),
                    format!("channel `{name}` cannot feed itself"),
                ));
                ok = false;
            }
            Some(o) if o.stream.value != c.stream.value => {
                diags.push(Diagnostic::error(
                    f.channel.span.clone(),
                    format!(
                        "feeder channel `{}` follows stream `{}`, but channel `{name}` follows `{}`",
                        o.name.value, o.stream.value, c.stream.value
                    ),
                ));
                ok = false;
            }
            Some(_) => {}
        }
        let delay = match &f.delay {
            None => Some(0),
            Some(d) => match parse_duration(&d.value) {
                Ok(secs) => Some(secs),
                Err(e) => {
                    diags.push(Diagnostic::error(
                        d.span.clone(),
                        format!(
                            "invalid feeder delay `{}`: {e}; write e.g. `72h`, `1h30m`, `3d` or ISO-8601 `PT72H`",
                            d.value
                        ),
                    ));
                    ok = false;
                    None
                }
            },
        };
        feeder = delay.map(|delay_seconds| Feeder {
            channel: f.channel.clone(),
            delay_seconds,
        });
    }
    if ok {
        out.insert(
            name.clone(),
            ReleaseChannel {
                name: c.name.clone(),
                stream: c.stream.clone(),
                tags: c.tags.clone(),
                image_stream: c.image_stream.clone(),
                feeder,
                versions: c.versions.clone(),
                tombstones: c.tombstones.clone(),
            },
        );
    }
}

/// Compiles every policy document, checks `allowedSources` against the streams and
/// `channelSubsets` against the channels, and merges the documents into one policy.
fn check_policies(
    diags: &mut Diagnostics,
    policies: &[RawPolicy],
    streams: &[RawStream],
    channels: &[RawChannel],
    broken_channels: &BTreeSet<&str>,
) -> Policy {
    let mut merged = Policy::default();
    for p in policies {
        merged.names.push(p.name.clone());

        // allowedSources: every stream's source matches one glob of this policy.
        let mut matchers: Vec<GlobMatcher> = Vec::new();
        let mut globs_ok = true;
        for g in &p.allowed_sources {
            match GlobBuilder::new(&g.value).literal_separator(true).build() {
                Ok(glob) => matchers.push(glob.compile_matcher()),
                Err(e) => {
                    globs_ok = false;
                    diags.push(Diagnostic::error(
                        g.span.clone(),
                        format!("invalid glob `{}` in allowedSources: {}", g.value, e.kind()),
                    ));
                }
            }
        }
        if globs_ok && !matchers.is_empty() {
            for s in streams {
                if !matchers.iter().any(|m| m.is_match(&s.source.value)) {
                    let globs: Vec<&str> =
                        p.allowed_sources.iter().map(|g| g.value.as_str()).collect();
                    diags.push(Diagnostic::error(
                        s.source.span.clone(),
                        format!(
                            "source `{}` of stream `{}` is not allowed by policy `{}` (allowedSources: {})",
                            s.source.value,
                            s.name.value,
                            p.name.value,
                            globs.join(", ")
                        ),
                    ));
                }
            }
        }
        merged
            .allowed_sources
            .extend(p.allowed_sources.iter().cloned());

        if let Some(re) = &p.immutable_tags {
            match regex::Regex::new(&re.value) {
                Ok(r) => merged.immutable_tags.push(Located::new(r, re.span.clone())),
                Err(e) => diags.push(Diagnostic::error(
                    re.span.clone(),
                    format!(
                        "invalid regular expression `{}` in immutableTags: {}",
                        re.value,
                        regex_error(&e)
                    ),
                )),
            }
        }

        if let Some(m) = &p.max_deletes_per_sync
            && merged
                .max_deletes_per_sync
                .as_ref()
                .is_none_or(|cur| m.value < cur.value)
        {
            merged.max_deletes_per_sync = Some(m.clone());
        }

        for subset in &p.channel_subsets {
            let [from, to] = subset.channels.as_slice() else {
                diags.push(Diagnostic::error(
                    subset.span.clone(),
                    format!(
                        "a channelSubsets entry names two channels, [subset, superset]; found {}",
                        subset.channels.len()
                    ),
                ));
                continue;
            };
            let find = |n: &Located<String>| channels.iter().find(|c| c.name.value == n.value);
            let mut both = true;
            for n in [from, to] {
                if find(n).is_none() {
                    both = false;
                    if broken_channels.contains(n.value.as_str()) {
                        continue;
                    }
                    diags.push(Diagnostic::error(
                        n.span.clone(),
                        format!(
                            "channelSubsets of policy `{}` names unknown channel `{}`",
                            p.name.value, n.value
                        ),
                    ));
                }
            }
            let (Some(a), Some(b)) = (find(from), find(to)) else {
                continue;
            };
            if !both {
                continue;
            }
            let tombstoned = |c: &RawChannel| -> BTreeSet<String> {
                c.tombstones.iter().map(|t| t.value.clone()).collect()
            };
            let published = |c: &RawChannel| -> BTreeSet<String> {
                let gone = tombstoned(c);
                c.versions
                    .iter()
                    .filter(|v| !gone.contains(&v.value))
                    .map(|v| v.value.clone())
                    .collect()
            };
            let in_b = published(b);
            let gone_from_a = tombstoned(a);
            let mut reported = BTreeSet::new();
            for v in &a.versions {
                if gone_from_a.contains(&v.value)
                    || in_b.contains(&v.value)
                    || !reported.insert(v.value.as_str())
                {
                    continue;
                }
                diags.push(Diagnostic::error(
                    v.span.clone(),
                    format!(
                        "version {} is in channel {} but not in {} (policy channelSubsets [{}, {}])",
                        v.value, a.name.value, b.name.value, from.value, to.value
                    ),
                ));
            }
            merged.channel_subsets.push((from.clone(), to.clone()));
        }
    }
    merged
}

/// The last line of a regex syntax error (the one that says what is wrong).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid");
    line.trim().trim_start_matches("error: ").to_string()
}
