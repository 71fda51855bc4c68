//! `check`'s rule `payload`: each release the head newly publishes in a payload stream
//! (a stream with `payload.target`) has a readable `release-manifests/image-references` at
//! its source, and every component it names exists at the component's source repository
//! (and that repository passes the base's `allowedSources`, as `sync` will judge it).
//!
//! For each such release the report says how many components it brings and how many of
//! them are new to `payload.target` (not there by digest yet: what merging will copy).
//! With `--offline` no registry is read: the rule says so and passes.
//!
//! "Newly published": a version tag the head's desired state has in a stream's target that
//! the base's does not have with that digest.

use super::{Context, OpsError};
use crate::desired::{DesiredState, TagKind, source_allowed};
use crate::digest::Digest;
use crate::manifest::{Manifests, Policy};
use crate::payload::Budget;
use crate::payload::read::read_components;
use crate::registry::{Registries, TargetReader};
use crate::report::check::{PayloadRelease, Rule, Verdict, Violation};

/// One release the head newly publishes in a payload stream.
#[derive(Debug, Clone)]
struct NewRelease {
    version: String,
    digest: Digest,
    source: String,
    payload_target: String,
    at: String,
}

/// The releases the head newly publishes in payload streams, in target then tag order.
fn new_releases(
    head: &Manifests,
    base: &DesiredState,
    head_desired: &DesiredState,
) -> Vec<NewRelease> {
    let mut out = Vec::new();
    for (target, repo) in &head_desired.repos {
        for (tag, t) in &repo.tags {
            if t.kind != TagKind::Version {
                continue;
            }
            let Some(payload) = head.streams.get(&t.stream).and_then(|s| s.payload.as_ref()) else {
                continue;
            };
            let in_base = base
                .repos
                .get(target)
                .and_then(|r| r.tags.get(tag))
                .is_some_and(|b| b.digest == t.digest);
            if !in_base {
                out.push(NewRelease {
                    version: t.version.clone(),
                    digest: t.digest.clone(),
                    source: t.source.clone(),
                    payload_target: payload.target.value.clone(),
                    at: t.span.to_string(),
                });
            }
        }
    }
    out
}

/// The verdict of rule `payload`, and what each new release brings.
pub(super) fn payload_verdict(
    ctx: &Context,
    base_policy: &Policy,
    base: &DesiredState,
    head: &Manifests,
    head_desired: &DesiredState,
    offline: bool,
) -> (Verdict, Vec<PayloadRelease>) {
    let releases = new_releases(head, base, head_desired);
    let verdict = |checked: String, violations: Vec<Violation>| Verdict {
        rule: Rule::Payload,
        checked,
        violations,
    };
    if releases.is_empty() {
        return (
            verdict(
                "no release newly published in a payload stream".to_string(),
                Vec::new(),
            ),
            Vec::new(),
        );
    }
    let count = match releases.len() {
        1 => "1 release".to_string(),
        n => format!("{n} releases"),
    };
    if offline {
        return (
            verdict(
                format!("not checked (--offline): {count} newly published in payload streams"),
                Vec::new(),
            ),
            Vec::new(),
        );
    }
    let judged = (|| -> Result<(Vec<Violation>, Vec<PayloadRelease>), OpsError> {
        let registries = Registries::from_config(&ctx.config, &ctx.config_dir)?;
        let runtime = super::runtime()?;
        Ok(runtime.block_on(judge(&registries, base_policy, &releases)))
    })();
    match judged {
        Ok((violations, summaries)) => {
            let checked = format!(
                "{count} newly published in payload streams: {}",
                summaries
                    .iter()
                    .map(PayloadRelease::sentence)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            (verdict(checked, violations), summaries)
        }
        Err(e) => (
            verdict(
                format!("{count} newly published in payload streams"),
                vec![Violation {
                    at: None,
                    message: format!("cannot read the registries: {e}"),
                }],
            ),
            Vec::new(),
        ),
    }
}

/// Reads each release's components at the source and checks each one there.
async fn judge(
    registries: &Registries,
    policy: &Policy,
    releases: &[NewRelease],
) -> (Vec<Violation>, Vec<PayloadRelease>) {
    let mut violations = Vec::new();
    let mut summaries = Vec::new();
    for r in releases {
        let fail = |message: String| Violation {
            at: Some(r.at.clone()),
            message,
        };
        let source = match registries.repository(&r.source) {
            Ok(s) => s,
            Err(e) => {
                violations.push(fail(format!("release {}: {e}", r.version)));
                continue;
            }
        };
        let list = match read_components(&source, &r.version, &r.digest, &Budget::default()).await {
            Ok(list) => list,
            Err(e) => {
                violations.push(fail(format!(
                    "{} (at {}@{})",
                    e.full_message(),
                    r.source,
                    r.digest
                )));
                continue;
            }
        };
        let target = registries.repository(&r.payload_target);
        let mut new = 0usize;
        let mut missing = 0usize;
        for c in &list.components {
            if !source_allowed(policy, &c.source) {
                violations.push(fail(format!(
                    "release {}: component `{}` comes from {}, which the base's allowedSources do not allow",
                    r.version, c.name, c.source
                )));
                continue;
            }
            let present = match registries.repository(&c.source) {
                Ok(repo) => repo.has_manifest(&c.digest).await,
                Err(e) => Err(e),
            };
            match present {
                Ok(true) => {}
                Ok(false) => {
                    missing += 1;
                    violations.push(fail(format!(
                        "release {}: component `{}` ({}) is not in its source repository",
                        r.version,
                        c.name,
                        c.source_reference()
                    )));
                }
                Err(e) => {
                    missing += 1;
                    violations.push(fail(format!(
                        "release {}: component `{}` ({}) cannot be checked: {e}",
                        r.version,
                        c.name,
                        c.source_reference()
                    )));
                }
            }
            // Whether the target has it already; a target that cannot be read counts it new.
            let there = match &target {
                Ok(t) => t.has_manifest(&c.digest).await.unwrap_or(false),
                Err(_) => false,
            };
            if !there {
                new += 1;
            }
        }
        summaries.push(PayloadRelease {
            version: r.version.clone(),
            payload_target: r.payload_target.clone(),
            components: list.len(),
            new_to_target: new,
            missing_at_source: missing,
        });
    }
    (violations, summaries)
}
