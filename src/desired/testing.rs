//! Test-only builder of [`Manifests`] values with predictable places, so tests need no
//! YAML: stream `S` lives in `streams/S.yaml` (release `i` at line `10 + 3i`, its extra tags
//! on the line below), channel `C` in `channels/C.yaml` (floating tags at line 5, version
//! `i` at line `10 + i`, tombstone `i` at line `40 + i`).

use std::sync::Arc;

use crate::digest::Digest;
use crate::manifest::{
    ImageStreamRef, Located, Manifests, Order, Policy, Release, ReleaseChannel, ReleaseStream, Span,
};

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
                payload: None,
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
