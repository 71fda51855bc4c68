//! From strict structs to raw manifests: required fields, names, and the kinds' own shapes.

use serde_saphyr::Location;

use super::S;
use super::fault::shown;
use super::raw::{ParsedDocs, RawChannel, RawFeeder, RawPolicy, RawRelease, RawStream, RawSubset};
use super::read::DocCtx;
use super::shape::{DocDe, Kind, SpecDe};
use crate::manifest::{API_VERSION, ImageStreamRef, Located, Span};

/// `required(ctx, field, "spec.stream", at)`: the value, or an error at `at` when missing.
pub(crate) fn required<T>(
    ctx: &DocCtx<'_>,
    field: Option<S<T>>,
    path: &str,
    at: Location,
) -> Option<Located<T>> {
    match field {
        Some(v) => Some(ctx.located(v)),
        None => {
            // Written but null (`stream:`) reads as absent; say so at the key.
            match ctx.key_at(path) {
                Some(span) => ctx.error(span, format!("`{path}` must not be empty")),
                None => ctx.error(ctx.span(at), format!("missing field `{path}`")),
            }
            None
        }
    }
}

/// A string that must not be empty (or only blanks).
pub(crate) fn non_empty(
    ctx: &DocCtx<'_>,
    v: Located<String>,
    path: &str,
) -> Option<Located<String>> {
    if v.value.trim().is_empty() {
        ctx.error(v.span.clone(), format!("`{path}` must not be empty"));
        None
    } else {
        Some(v)
    }
}

/// A list of strings (absent means empty).
fn string_list(ctx: &DocCtx<'_>, v: Option<S<Vec<S<String>>>>) -> Vec<Located<String>> {
    v.map(|l| l.value.into_iter().map(|s| ctx.located(s)).collect())
        .unwrap_or_default()
}

/// Checks `apiVersion` and `kind`; returns the kind (any of the four) and its place.
pub(crate) fn header(
    ctx: &DocCtx<'_>,
    root: Location,
    api_version: Option<S<String>>,
    kind: Option<S<String>>,
    expected_kinds: &str,
) -> Option<(Kind, Span)> {
    match api_version {
        None => ctx.error(ctx.span(root), "missing field `apiVersion`"),
        Some(v) if v.value != API_VERSION => ctx.error(
            ctx.span(v.referenced),
            format!(
                "unsupported apiVersion `{}` (expected `{API_VERSION}`)",
                shown(&v.value)
            ),
        ),
        Some(_) => {}
    }
    let Some(kind) = kind else {
        ctx.error(ctx.span(root), "missing field `kind`");
        return None;
    };
    let span = ctx.span(kind.referenced);
    match Kind::parse(&kind.value) {
        Some(k) => Some((k, span)),
        None => {
            ctx.error(
                span,
                format!(
                    "unknown kind `{}` (expected {expected_kinds})",
                    shown(&kind.value)
                ),
            );
            None
        }
    }
}

/// Reports `spec` fields that belong to another kind.
pub(crate) fn check_spec_fields(ctx: &DocCtx<'_>, kind: Kind, spec: &SpecDe) {
    for (field, loc) in spec.present() {
        if !kind.allows(field) {
            ctx.error(
                ctx.key_span(&["spec", field], loc),
                format!("unknown field `{field}` in {} spec", kind.name()),
            );
        }
    }
}

pub(super) fn convert_manifest(
    ctx: &DocCtx<'_>,
    doc: S<DocDe>,
    under_policies: bool,
    policies_prefix: &str,
    out: &mut ParsedDocs,
) {
    let root = doc.referenced;
    let DocDe {
        api_version,
        kind,
        metadata,
        spec,
    } = doc.value;
    let Some((kind, kind_span)) = header(
        ctx,
        root,
        api_version,
        kind,
        "ReleaseStream, ReleaseChannel or Policy",
    ) else {
        return;
    };
    if kind == Kind::Config {
        ctx.error(
            kind_span,
            "kind `Config` belongs in relsync.yaml, not among the manifests",
        );
        return;
    }
    if !policies_prefix.is_empty() {
        match kind {
            Kind::Policy if !under_policies => ctx.error(
                kind_span.clone(),
                format!(
                    "a Policy must live under `{policies_prefix}/`, not in {}",
                    ctx.file()
                ),
            ),
            Kind::ReleaseStream | Kind::ReleaseChannel if under_policies => ctx.error(
                kind_span.clone(),
                format!(
                    "a {} belongs with the manifests, not under `{policies_prefix}/`",
                    kind.name()
                ),
            ),
            _ => {}
        }
    }
    let name = match metadata {
        None => {
            ctx.error(ctx.span(root), "missing field `metadata.name`");
            None
        }
        Some(m) => required(ctx, m.value.name, "metadata.name", m.referenced)
            .and_then(|n| non_empty(ctx, n, "metadata.name")),
    };
    let Some(spec) = spec else {
        ctx.error(ctx.span(root), "missing field `spec`");
        if let Some(name) = name {
            out.broken.push((kind, name.value));
        }
        return;
    };
    check_spec_fields(ctx, kind, &spec.value);
    let Some(name) = name else {
        return;
    };
    let at = spec.referenced;
    let spec = spec.value;
    let name_text = name.value.clone();
    match kind {
        Kind::ReleaseStream => match convert_stream(ctx, name, spec, at) {
            Some(s) => out.streams.push(s),
            None => out.broken.push((kind, name_text)),
        },
        Kind::ReleaseChannel => match convert_channel(ctx, name, spec, at) {
            Some(c) => out.channels.push(c),
            None => out.broken.push((kind, name_text)),
        },
        Kind::Policy => out.policies.push(convert_policy(ctx, name, spec)),
        Kind::Config => {}
    }
}

fn convert_stream(
    ctx: &DocCtx<'_>,
    name: Located<String>,
    spec: SpecDe,
    at: Location,
) -> Option<RawStream> {
    // An empty source or target is reported but kept, so the releases are still checked.
    let source = required(ctx, spec.source, "spec.source", at).inspect(|v| {
        non_empty(ctx, v.clone(), "spec.source");
    });
    let target = required(ctx, spec.target, "spec.target", at).inspect(|v| {
        non_empty(ctx, v.clone(), "spec.target");
    });
    let order = match spec.order {
        None => crate::manifest::Order::Semver,
        Some(o) => match o.value.as_str() {
            "semver" => crate::manifest::Order::Semver,
            "listed" => crate::manifest::Order::Listed,
            other => {
                ctx.error(
                    ctx.span(o.referenced),
                    format!(
                        "`spec.order` must be `semver` or `listed`, found `{}`",
                        shown(other)
                    ),
                );
                crate::manifest::Order::Semver
            }
        },
    };
    let mut releases = Vec::new();
    if let Some(list) = spec.releases {
        for (i, r) in list.value.into_iter().enumerate() {
            let at = r.referenced;
            let r = r.value;
            let version = required(ctx, r.version, &format!("spec.releases[{i}].version"), at);
            let digest = required(ctx, r.digest, &format!("spec.releases[{i}].digest"), at);
            releases.push(RawRelease {
                version,
                digest,
                tags: string_list(ctx, r.tags),
            });
        }
    }
    // `payload: {}` without its target is reported; the stream is kept as a plain one.
    let payload_target = spec.payload.and_then(|p| {
        let at = p.referenced;
        required(ctx, p.value.target, "spec.payload.target", at)
    });
    Some(RawStream {
        name,
        source: source?,
        target: target?,
        order,
        releases,
        payload_target,
    })
}

fn convert_channel(
    ctx: &DocCtx<'_>,
    name: Located<String>,
    spec: SpecDe,
    at: Location,
) -> Option<RawChannel> {
    let stream = required(ctx, spec.stream, "spec.stream", at);
    let image_stream = spec.image_stream.and_then(|is| {
        let at = is.referenced;
        let namespace = required(ctx, is.value.namespace, "spec.imageStream.namespace", at);
        let name = required(ctx, is.value.name, "spec.imageStream.name", at);
        let namespace = namespace.and_then(|n| k8s_name(ctx, n, "spec.imageStream.namespace", 63));
        let name = name.and_then(|n| k8s_name(ctx, n, "spec.imageStream.name", 253));
        Some(ImageStreamRef {
            namespace: namespace?.value,
            name: name?.value,
        })
    });
    let feeder = spec.feeder.and_then(|f| {
        let at = f.referenced;
        let channel = required(ctx, f.value.channel, "spec.feeder.channel", at)?;
        Some(RawFeeder {
            channel,
            delay: f.value.delay.map(|d| ctx.located(d)),
        })
    });
    Some(RawChannel {
        name,
        stream: stream?,
        tags: string_list(ctx, spec.tags),
        image_stream,
        feeder,
        versions: string_list(ctx, spec.versions),
        tombstones: string_list(ctx, spec.tombstones),
    })
}

/// A Kubernetes name: lowercase letters, digits, `-` (and `.` when `max` is 253), starting and
/// ending with a letter or digit.
fn k8s_name(
    ctx: &DocCtx<'_>,
    v: Located<String>,
    path: &str,
    max: usize,
) -> Option<Located<String>> {
    let s = v.value.as_str();
    let dots = max > 63;
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.')
        })
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Some(v)
    } else {
        ctx.error(
            v.span.clone(),
            format!(
                "`{path}` must be a Kubernetes name (lowercase letters, digits{} and `-`, at most {max} characters), found `{}`",
                if dots { ", `.`" } else { "" },
                shown(s)
            ),
        );
        None
    }
}

fn convert_policy(ctx: &DocCtx<'_>, name: Located<String>, spec: SpecDe) -> RawPolicy {
    let channel_subsets = spec
        .channel_subsets
        .map(|l| {
            l.value
                .into_iter()
                .map(|pair| RawSubset {
                    span: ctx.span(pair.referenced),
                    channels: pair.value.into_iter().map(|c| ctx.located(c)).collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    RawPolicy {
        name,
        allowed_sources: string_list(ctx, spec.allowed_sources),
        immutable_tags: spec.immutable_tags.map(|t| ctx.located(t)),
        max_deletes_per_sync: spec.max_deletes_per_sync.map(|m| ctx.located(m)),
        channel_subsets,
    }
}
