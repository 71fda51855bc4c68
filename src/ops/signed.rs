//! `check`'s rule `signatures`: with the base's `signatures.require`, every release the
//! head newly publishes (a version a channel lists in the head and not in the base, or one
//! whose digest changed) must have a cosign signature, read from the stream's source, that
//! verifies with one of the base's keys, names the release's digest and names the stream's
//! source or target repository. `--offline`: not checked, and the verdict says so.

use std::collections::BTreeSet;

use super::Context;
use crate::digest::Digest;
use crate::manifest::{Manifests, Policy};
use crate::registry::Registries;
use crate::registry::referrers;
use crate::report::check::{Rule, Verdict, Violation};
use crate::signature::{self, TrustedKey};

/// One release the head publishes anew.
struct Judged<'a> {
    version: &'a str,
    at: String,
    digest: &'a Digest,
    source: &'a str,
    target: &'a str,
}

/// The releases the head publishes that the base does not (by version and digest).
fn newly_published<'a>(base: &Manifests, head: &'a Manifests) -> Vec<Judged<'a>> {
    let published = |m: &Manifests| -> BTreeSet<(String, Digest)> {
        let mut out = BTreeSet::new();
        for c in m.channels.values() {
            let Some(s) = m.streams.get(&c.stream.value) else {
                continue;
            };
            for v in c.published() {
                if let Some(r) = s.releases.iter().find(|r| r.version.value == v.value) {
                    out.insert((v.value.clone(), r.digest.value.clone()));
                }
            }
        }
        out
    };
    let before = published(base);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in head.channels.values() {
        let Some(s) = head.streams.get(&c.stream.value) else {
            continue;
        };
        for v in c.published() {
            let Some(r) = s.releases.iter().find(|r| r.version.value == v.value) else {
                continue;
            };
            let key = (v.value.clone(), r.digest.value.clone());
            if before.contains(&key) || !seen.insert(key) {
                continue;
            }
            out.push(Judged {
                version: &v.value,
                at: v.span.to_string(),
                digest: &r.digest.value,
                source: &s.source.value,
                target: &s.target.value,
            });
        }
    }
    out
}

/// The verdict of rule `signatures`, judged with the base's policy; `None` when the base
/// does not require signatures (the rule is then not shown, and reports of repositories
/// without it read as before).
pub(super) fn verdict(
    ctx: &Context,
    policy: &Policy,
    base: &Manifests,
    head: &Manifests,
    offline: bool,
) -> Option<Verdict> {
    let sigs = &policy.signatures;
    if !sigs.required() {
        return None;
    }
    let mut verdict = Verdict {
        rule: Rule::Signatures,
        checked: String::new(),
        violations: Vec::new(),
    };
    let judged = newly_published(base, head);
    let keys: Vec<TrustedKey> = sigs.trusted_keys();
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    if offline {
        verdict.checked = format!(
            "not checked (--offline): {} newly published release(s) would need a signature by {}",
            judged.len(),
            names.join(", ")
        );
        return Some(verdict);
    }
    verdict.checked = format!(
        "{} newly published release(s), each signed by one of {} (read from the source)",
        judged.len(),
        names.join(", ")
    );
    if judged.is_empty() {
        return Some(verdict);
    }
    let outcome = (|| -> Result<Vec<Violation>, String> {
        let registries =
            Registries::from_config(&ctx.config, &ctx.config_dir).map_err(|e| e.to_string())?;
        let runtime = super::runtime().map_err(|e| e.to_string())?;
        Ok(runtime.block_on(async {
            let mut violations = Vec::new();
            for j in &judged {
                let why = match judge_one(&registries, j, &keys).await {
                    Ok(signature::Verdict::Verified { .. }) => continue,
                    Ok(signature::Verdict::Refused(r)) => r.to_string(),
                    Err(e) => format!("cannot read its signatures: {e}"),
                };
                violations.push(Violation {
                    at: Some(j.at.clone()),
                    message: format!(
                        "release {} ({} in {}): {why}",
                        j.version,
                        j.digest.short(),
                        j.source
                    ),
                });
            }
            violations
        }))
    })();
    match outcome {
        Ok(v) => verdict.violations = v,
        Err(e) => verdict.violations.push(Violation {
            at: None,
            message: format!("cannot reach the sources to judge signatures: {e}"),
        }),
    }
    Some(verdict)
}

async fn judge_one(
    registries: &Registries,
    j: &Judged<'_>,
    keys: &[TrustedKey],
) -> Result<signature::Verdict, String> {
    let repo = registries.repository(j.source).map_err(|e| e.to_string())?;
    let chain = |e: &dyn std::error::Error| {
        let mut s = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cur = c.source();
        }
        s
    };
    let attached = referrers::discover(&repo, j.digest)
        .await
        .map_err(|e| chain(&e))?;
    let candidates = referrers::signature_candidates(&repo, &attached)
        .await
        .map_err(|e| chain(&e))?;
    Ok(signature::judge(
        j.digest,
        &[j.source, j.target],
        &candidates,
        keys,
    ))
}
