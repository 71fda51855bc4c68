//! The PR gate of `relsync check`, and the feeder rule it shares with `promote`.
//!
//! Reads the manifests committed at the head (default `HEAD`) and at the base, validates the
//! head, and judges it with the base's policies only (docs/reference.md, "The promotion gate"): a
//! pull request cannot relax the rules it is judged by. Files it changes under the policies
//! directory are listed as needing review.
//!
//! - **Validity**: the head's manifests, with its own policies, are valid, except for rule
//!   violations the base's policies report too (those are verdicts, below). A head that
//!   breaks a rule only its own policies add is invalid as well: merged, it would fail
//!   `validate` and `sync`.
//! - **feeder**: every version newly published in a channel with a feeder (the base's
//!   feeder of that channel, and the head's if it differs) must be in the feeder channel at
//!   the base, and must have been since the committer time of the first first-parent commit
//!   of the base whose feeder channel lists it, at least the feeder's `delay` ago. Dates
//!   written in files are never read. A shallow clone is an error.
//! - **channelSubsets**, **allowedSources**: the head's manifests loaded with the base's
//!   policy files; each problem the base's policies add is a violation.
//! - **immutableTags**, **maxDeletesPerSync**: the plan base → head, made offline with the
//!   base's desired state as the registry and the base's policy: a conflict is a tag the
//!   base has that the head would move; a refusal is too many deletes.
//! - **payload**: each release the head newly publishes in a payload stream has a readable
//!   image-references at its source and every component at its source
//!   ([`super::gate_payload`]; `--offline`: not checked, said so).
//!
//! - **signatures** (when the base requires them, [`super::signed`]): every release the head
//!   newly publishes has a cosign signature, read from the source, by one of the base's keys.
//!
//! Without `--offline`, the live registry is observed for the targets of the base and the
//! head, and its drift from the base's desired state is reported apart. Neither live drift
//! (nor a failure to observe it) nor a policy file needing review changes the exit code:
//! 0 pass, 1 fail.
//!
//! The feeder rule itself is [`super::feeder`]'s: `check` judges it on the base's
//! first-parent history, `promote` on HEAD's.

use std::collections::{BTreeMap, BTreeSet};

use super::feeder::{FeederHistory, FeederVerdict, judge_feeder, lists, unix_now};
use super::{Context, OpsError, Warnings};
use crate::desired::{self, DesiredState};
use crate::git;
use crate::manifest::{self, Diagnostic, Manifests, Severity, SourceFile};
use crate::observe::{self, ObserveOptions};
use crate::plan::{
    self, ObservedImageStream, ObservedRepo, ObservedSpecTag, ObservedState, ObservedStatusTag,
    PlanOptions, Refusal, Target,
};
use crate::registry::Registries;
use crate::report::check::{
    CheckReport, FileChange, LiveDrift, ReviewFile, Rule, Verdict, Violation, duration,
};
use crate::revision::short_revision;

/// What `check` asks.
#[derive(Debug, Clone)]
pub struct GateRequest<'a> {
    /// The base revision (the branch the pull request merges into): its policies judge.
    pub base: &'a str,
    /// The head revision (the pull request), committed content only.
    pub head: &'a str,
    /// Do not contact any registry (no live drift).
    pub offline: bool,
}

/// Judges the head against the base; the report says whether it passes. Problems that
/// make the head invalid, and the head's warnings, are pushed onto `warnings`.
pub fn check(
    ctx: &Context,
    request: &GateRequest<'_>,
    warnings: &mut Warnings,
) -> Result<CheckReport, OpsError> {
    let policies_dir = ctx.config.git.policies.as_str();
    let dirs = [ctx.config.git.path.as_str(), policies_dir];
    let head_rev = request.head;
    let base_rev = request.base;
    let base_snap = git::read_revision(&ctx.repo, base_rev, &dirs)?;
    let head_snap = git::read_revision(&ctx.repo, head_rev, &dirs)?;
    let base_sha = base_snap
        .commit
        .clone()
        .unwrap_or_else(|| base_rev.to_string());
    let head_sha = head_snap
        .commit
        .clone()
        .unwrap_or_else(|| head_rev.to_string());

    let (base_policies, _) = split(&base_snap.files, policies_dir);
    let (head_policies, head_manifests) = split(&head_snap.files, policies_dir);

    // The base: its policies judge, its desired state is the "registry" of the change.
    let base = desired::load(&base_snap.files, policies_dir).map_err(|d| {
        OpsError::Refused(format!(
            "the base {} is invalid, so it cannot judge the head (fix the base first):\n{}",
            base_rev,
            d.to_string().trim_end()
        ))
    })?;
    let base_desired = desired::derive(&base).map_err(OpsError::Invalid)?;

    // The head: alone, with its own policies, and with the base's policies.
    let alone = desired::load(&head_manifests, policies_dir);
    let own = desired::load(&head_snap.files, policies_dir);
    let with_base: Vec<SourceFile> = head_manifests
        .iter()
        .chain(base_policies.iter())
        .cloned()
        .collect();
    let judged = desired::load(&with_base, policies_dir);
    let alone_errors = errors(&alone);
    let base_rule_problems: Vec<Diagnostic> = errors(&judged)
        .into_iter()
        .filter(|d| !alone_errors.contains(d))
        .collect();
    let mut invalid: Vec<Diagnostic> = Vec::new();
    for d in alone_errors.iter().cloned().chain(errors(&own)) {
        if !base_rule_problems.contains(&d) && !invalid.contains(&d) {
            invalid.push(d);
        }
    }
    let (subsets, sources, other): (Vec<_>, Vec<_>, Vec<_>) = classify(base_rule_problems);
    invalid.extend(other);

    let review = review(&base_policies, &head_policies);
    let head = match (&alone, invalid.is_empty()) {
        (Ok(m), true) => m,
        _ => {
            warnings.extend(invalid.iter().map(ToString::to_string));
            return Ok(CheckReport {
                base: base_sha,
                head: head_sha,
                invalid: invalid.iter().map(ToString::to_string).collect(),
                change: None,
                verdicts: Vec::new(),
                review,
                live: LiveDrift::NotChecked,
                payloads: Vec::new(),
            });
        }
    };
    warnings.extend(head.warnings.iter().map(ToString::to_string));
    let head_desired = desired::derive(head).map_err(OpsError::Invalid)?;

    // The change base → head, offline.
    let options = PlanOptions {
        prune: ctx.config.sync.prune,
        allow_deletes: None,
        channel: None,
    };
    let as_registry = registry_as_left_by(&base_desired, ctx.config.cluster.enabled);
    let change = plan::plan(
        &head_sha,
        &head_desired,
        &as_registry,
        &base.policy,
        &options,
    );

    let policy = &base.policy;
    let mut verdicts = vec![feeder_verdict(
        ctx, &dirs, base_rev, &base_sha, &base, head,
    )?];
    verdicts.push(Verdict {
        rule: Rule::ChannelSubsets,
        checked: if policy.channel_subsets.is_empty() {
            "not set in the base's policies".to_string()
        } else {
            policy
                .channel_subsets
                .iter()
                .map(|(a, b)| format!("[{}, {}]", a.value, b.value))
                .collect::<Vec<_>>()
                .join(", ")
        },
        violations: subsets.into_iter().map(violation).collect(),
    });
    verdicts.push(Verdict {
        rule: Rule::ImmutableTags,
        checked: if policy.immutable_tags.is_empty() {
            "not set in the base's policies".to_string()
        } else {
            let res: Vec<String> = policy
                .immutable_tags
                .iter()
                .map(|r| format!("`{}`", r.value.as_str()))
                .collect();
            format!("no tag of the base matching {} moves", res.join(", "))
        },
        violations: change
            .conflicts
            .iter()
            .map(|c| {
                let repo = match &c.target {
                    Target::Repo(r) => r.as_str(),
                    Target::ImageStream(_) => "",
                };
                let old = base_desired
                    .repos
                    .get(repo)
                    .and_then(|r| r.tags.get(&c.tag));
                let new = head_desired
                    .repos
                    .get(repo)
                    .and_then(|r| r.tags.get(&c.tag));
                let shown = |t: Option<&desired::DesiredTag>, d: &crate::digest::Digest| {
                    t.map_or_else(|| d.short(), |t| format!("{} ({})", t.version, d.short()))
                };
                Violation {
                    at: new.map(|t| t.span.to_string()),
                    message: format!(
                        "would move immutable tag {}:{} from {} to {}",
                        c.target,
                        c.tag,
                        shown(old, &c.actual),
                        shown(new, &c.desired)
                    ),
                }
            })
            .collect(),
    });
    verdicts.push(Verdict {
        rule: Rule::AllowedSources,
        checked: if policy.allowed_sources.is_empty() {
            "not set in the base's policies".to_string()
        } else {
            let globs: Vec<String> = policy
                .allowed_sources
                .iter()
                .map(|g| format!("`{}`", g.value))
                .collect();
            format!("every source matches {}", globs.join(", "))
        },
        violations: sources.into_iter().map(violation).collect(),
    });
    let deletes = change
        .actions
        .iter()
        .filter(|a| a.action == plan::ActionKind::Delete)
        .count();
    verdicts.push(Verdict {
        rule: Rule::MaxDeletesPerSync,
        checked: match &policy.max_deletes_per_sync {
            Some(m) => format!("{deletes} of at most {} deletes", m.value),
            None => format!("not set in the base's policies ({deletes} deletes)"),
        },
        violations: match &change.refusal {
            Some(Refusal::DeleteCap { deletes, max }) => vec![Violation {
                at: policy
                    .max_deletes_per_sync
                    .as_ref()
                    .map(|m| m.span.to_string()),
                message: format!(
                    "merging would delete {deletes} tags and the base's maxDeletesPerSync allows {max}"
                ),
            }],
            None => Vec::new(),
        },
    });

    verdicts.extend(super::signed::verdict(
        ctx,
        policy,
        &base,
        head,
        request.offline,
    ));
    let (payload, payloads) = super::gate_payload::payload_verdict(
        ctx,
        policy,
        &base_desired,
        head,
        &head_desired,
        request.offline,
    );
    verdicts.push(payload);

    let live = if request.offline {
        LiveDrift::NotChecked
    } else {
        live_drift(ctx, &base_sha, &base_desired, &head_desired, &options)
    };
    Ok(CheckReport {
        base: base_sha,
        head: head_sha,
        invalid: Vec::new(),
        change: Some(change),
        verdicts,
        review,
        live,
        payloads,
    })
}

/// The files under the policies directory (as `manifest::load` decides it), and the others.
fn split(files: &[SourceFile], policies_dir: &str) -> (Vec<SourceFile>, Vec<SourceFile>) {
    let prefix = policies_dir.trim_end_matches('/');
    files.iter().cloned().partition(|f| {
        !prefix.is_empty()
            && f.path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The errors of a load (warnings left out).
fn errors(loaded: &Result<Manifests, manifest::Diagnostics>) -> Vec<Diagnostic> {
    match loaded {
        Ok(_) => Vec::new(),
        Err(d) => d
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .cloned()
            .collect(),
    }
}

/// Splits the problems the base's policies find in the head by rule: channelSubsets,
/// allowedSources, and anything else (which makes the head invalid). The rule is told by
/// the name `manifest::validate` puts in each message (`policy channelSubsets [a, b]`,
/// `allowedSources: …`); tests/check.rs pins both wordings.
fn classify(problems: Vec<Diagnostic>) -> (Vec<Diagnostic>, Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut subsets = Vec::new();
    let mut sources = Vec::new();
    let mut other = Vec::new();
    for d in problems {
        if d.message.contains("channelSubsets") {
            subsets.push(d);
        } else if d.message.contains("allowedSources") {
            sources.push(d);
        } else {
            other.push(d);
        }
    }
    (subsets, sources, other)
}

fn violation(d: Diagnostic) -> Violation {
    Violation {
        at: d.span.as_ref().map(ToString::to_string),
        message: match &d.hint {
            Some(h) => format!("{} (hint: {h})", d.message),
            None => d.message,
        },
    }
}

/// Policy files added, changed or removed by the head.
fn review(base: &[SourceFile], head: &[SourceFile]) -> Vec<ReviewFile> {
    let base: BTreeMap<&str, &[u8]> = base
        .iter()
        .map(|f| (f.path.as_str(), f.contents.as_slice()))
        .collect();
    let head: BTreeMap<&str, &[u8]> = head
        .iter()
        .map(|f| (f.path.as_str(), f.contents.as_slice()))
        .collect();
    let paths: BTreeSet<&str> = base.keys().chain(head.keys()).copied().collect();
    paths
        .into_iter()
        .filter_map(|p| {
            let change = match (base.get(p), head.get(p)) {
                (None, Some(_)) => FileChange::Added,
                (Some(_), None) => FileChange::Deleted,
                (Some(a), Some(b)) if a != b => FileChange::Modified,
                _ => return None,
            };
            Some(ReviewFile {
                path: p.to_string(),
                change,
            })
        })
        .collect()
}

/// The registry (and, with the cluster on, the ImageStreams) exactly as the base's desired
/// state leaves them: every desired tag holding its digest, nothing else.
fn registry_as_left_by(base: &DesiredState, cluster: bool) -> ObservedState {
    let repos = base
        .repos
        .iter()
        .map(|(name, repo)| {
            let tags = repo
                .tags
                .iter()
                .map(|(tag, t)| (tag.clone(), Some(t.digest.clone())))
                .collect();
            (
                name.clone(),
                ObservedRepo {
                    tags,
                    manifests: BTreeMap::new(),
                },
            )
        })
        .collect();
    let image_streams = cluster.then(|| {
        base.image_streams
            .iter()
            .map(|(is, tags)| {
                let spec_tags = tags
                    .iter()
                    .map(|(tag, t)| {
                        (
                            tag.clone(),
                            ObservedSpecTag {
                                from: t.from.clone(),
                                generation: Some(1),
                                managed_by_relsync: true,
                            },
                        )
                    })
                    .collect();
                let status_tags = tags
                    .iter()
                    .map(|(tag, t)| {
                        (
                            tag.clone(),
                            ObservedStatusTag {
                                image: Some(t.digest.clone()),
                                generation: Some(1),
                                import_failure: None,
                            },
                        )
                    })
                    .collect();
                (
                    is.clone(),
                    ObservedImageStream {
                        resource_version: None,
                        spec_tags,
                        status_tags,
                    },
                )
            })
            .collect()
    });
    ObservedState {
        repos,
        image_streams,
    }
}

/// The feeder verdict: every version the head newly publishes in a fed channel.
fn feeder_verdict(
    ctx: &Context,
    dirs: &[&str],
    base_rev: &str,
    base_sha: &str,
    base: &Manifests,
    head: &Manifests,
) -> Result<Verdict, OpsError> {
    let base_short = short_revision(base_sha);
    let now = unix_now();
    let mut judged = 0usize;
    let mut violations = Vec::new();
    let mut history = FeederHistory::new(ctx, base_rev, dirs);
    for (name, channel) in &head.channels {
        let before = base.channels.get(name);
        let mut feeders: Vec<(&str, u64)> = Vec::new();
        for f in before
            .and_then(|c| c.feeder.as_ref())
            .into_iter()
            .chain(channel.feeder.as_ref())
        {
            let f = (f.channel.value.as_str(), f.delay_seconds);
            if !feeders.contains(&f) {
                feeders.push(f);
            }
        }
        if feeders.is_empty() {
            continue;
        }
        let listed: BTreeSet<&str> = before
            .map(|c| c.published().map(|v| v.value.as_str()).collect())
            .unwrap_or_default();
        for v in channel
            .published()
            .filter(|v| !listed.contains(v.value.as_str()))
        {
            judged += 1;
            let version = v.value.as_str();
            for &(feeder, delay) in &feeders {
                let in_base = lists(base, feeder, version);
                let first = history.first_listed(feeder, version)?;
                let at = Some(v.span.to_string());
                match judge_feeder(first.as_ref(), in_base, delay, now) {
                    FeederVerdict::Passed => {}
                    FeederVerdict::NotInFeeder => violations.push(Violation {
                        at,
                        message: format!(
                            "{version} is not in channel {feeder} on the base ({base_short}), and channel {name} is fed by {feeder}: promote it to {feeder} first"
                        ),
                    }),
                    FeederVerdict::TooSoon {
                        commit,
                        elapsed,
                        delay,
                    } => violations.push(Violation {
                        at,
                        message: format!(
                            "{version} entered channel {feeder} in commit {} of the base {} ago; channel {name} requires {} in {feeder} ({} to go)",
                            short_revision(&commit),
                            duration(elapsed),
                            duration(delay),
                            duration(delay - elapsed)
                        ),
                    }),
                }
            }
        }
    }
    Ok(Verdict {
        rule: Rule::Feeder,
        checked: match judged {
            0 => "no version newly added to a channel with a feeder".to_string(),
            1 => "1 promotion into a channel with a feeder".to_string(),
            n => format!("{n} promotions into channels with a feeder"),
        },
        violations,
    })
}

/// The live registry's drift from the base's desired state, for every target of the base
/// and the head. Failing to observe is reported, not an error.
fn live_drift(
    ctx: &Context,
    base_sha: &str,
    base: &DesiredState,
    head: &DesiredState,
    options: &PlanOptions,
) -> LiveDrift {
    let mut targets = head.clone();
    for (name, repo) in &base.repos {
        targets
            .repos
            .entry(name.clone())
            .or_insert_with(|| repo.clone());
    }
    let observed = (|| -> Result<ObservedState, OpsError> {
        let registries = Registries::from_config(&ctx.config, &ctx.config_dir)?;
        let runtime = super::runtime()?;
        let observe_options = ObserveOptions {
            resolve_unclaimed: true,
        };
        Ok(runtime.block_on(observe::observe(&targets, &registries, &observe_options))?)
    })();
    match observed {
        Ok(o) => LiveDrift::Checked(plan::drift(base_sha, base, &o, options)),
        Err(e) => LiveDrift::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{example_repo, git, settings};

    const STABLE: &str = "manifests/channels/4-scos-stable.yaml";
    const V416: &str = "4.16.0-0.okd-scos-2024-09-24-151747";

    fn file(path: &str, contents: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            contents: contents.as_bytes().to_vec(),
        }
    }

    #[test]
    fn policy_files_are_told_apart_and_each_change_to_them_needs_review() {
        let files = [
            file("manifests/a.yaml", "a"),
            file("policies/p.yaml", "p"),
            file("policiesx/q.yaml", "q"),
        ];
        let (policies, others) = split(&files, "policies/");
        let paths = |fs: &[SourceFile]| fs.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&policies), ["policies/p.yaml"]);
        assert_eq!(
            others.len(),
            2,
            "a sibling with the same prefix is no policy"
        );
        let (none, all) = split(&files, "");
        assert!(none.is_empty() && all.len() == 3);

        let base = [
            file("policies/same.yaml", "1"),
            file("policies/changed.yaml", "1"),
            file("policies/gone.yaml", "1"),
        ];
        let head = [
            file("policies/same.yaml", "1"),
            file("policies/changed.yaml", "2"),
            file("policies/new.yaml", "1"),
        ];
        let changes: Vec<(String, FileChange)> = review(&base, &head)
            .into_iter()
            .map(|r| (r.path, r.change))
            .collect();
        assert_eq!(
            changes,
            [
                ("policies/changed.yaml".to_string(), FileChange::Modified),
                ("policies/gone.yaml".to_string(), FileChange::Deleted),
                ("policies/new.yaml".to_string(), FileChange::Added),
            ]
        );
    }

    #[test]
    fn problems_the_base_policies_add_are_sorted_by_rule() {
        let d = |m: &str| Diagnostic {
            severity: Severity::Error,
            span: None,
            message: m.into(),
            hint: None,
        };
        let (subsets, sources, other) = classify(vec![
            d("policy channelSubsets [a, b]: x is not in b"),
            d("allowedSources: quay.io/x is not allowed"),
            d("something else"),
        ]);
        assert_eq!(subsets.len(), 1);
        assert_eq!(sources.len(), 1);
        assert_eq!(other, [d("something else")]);
        let v = violation(Diagnostic {
            hint: Some("do y".into()),
            ..d("x")
        });
        assert_eq!(v.message, "x (hint: do y)");
    }

    /// The example and its context.
    fn example() -> (tempfile::TempDir, String, Context) {
        let (dir, sha) = example_repo();
        let ctx = Context::load(&settings(dir.path())).unwrap();
        (dir, sha, ctx)
    }

    fn request<'a>(base: &'a str, head: &'a str) -> GateRequest<'a> {
        GateRequest {
            base,
            head,
            offline: true,
        }
    }

    #[test]
    fn the_base_as_a_registry_holds_every_desired_tag_and_nothing_else() {
        let (dir, _, ctx) = example();
        let loaded = ctx
            .desired(&settings(dir.path()), false, &mut Warnings::new())
            .unwrap();
        let left = registry_as_left_by(&loaded.desired, false);
        assert!(left.image_streams.is_none(), "no cluster, no ImageStreams");
        for (name, repo) in &loaded.desired.repos {
            let observed = &left.repos[name];
            assert_eq!(observed.tags.len(), repo.tags.len());
            for (tag, t) in &repo.tags {
                assert_eq!(observed.tags[tag].as_ref(), Some(&t.digest));
            }
        }
        let with_cluster = registry_as_left_by(&loaded.desired, true);
        let streams = with_cluster.image_streams.clone().unwrap();
        assert_eq!(streams.len(), loaded.desired.image_streams.len());
        assert!(
            streams
                .values()
                .flat_map(|s| s.spec_tags.values())
                .all(|t| t.managed_by_relsync)
        );
        // So the change base → base plans nothing.
        let none = plan::plan(
            &loaded.revision,
            &loaded.desired,
            &with_cluster,
            &loaded.manifests.policy,
            &PlanOptions::default(),
        );
        assert!(none.actions.is_empty(), "{:?}", none.actions);
    }

    #[test]
    fn an_unchanged_head_passes_every_rule_in_order() {
        let (_dir, sha, ctx) = example();
        let mut warnings = Warnings::new();
        let report = check(&ctx, &request("HEAD", "HEAD"), &mut warnings).unwrap();
        assert!(report.passed(), "{}", crate::report::check::text(&report));
        assert_eq!((report.base.as_str(), report.head.as_str()), (&*sha, &*sha));
        let rules: Vec<Rule> = report.verdicts.iter().map(|v| v.rule).collect();
        assert_eq!(
            rules,
            [
                Rule::Feeder,
                Rule::ChannelSubsets,
                Rule::ImmutableTags,
                Rule::AllowedSources,
                Rule::MaxDeletesPerSync,
                Rule::Payload
            ]
        );
        assert_eq!(
            report.verdicts[0].checked,
            "no version newly added to a channel with a feeder"
        );
        assert!(report.review.is_empty());
        assert!(matches!(report.live, LiveDrift::NotChecked));
    }

    #[test]
    fn a_promotion_too_soon_after_the_feeder_fails_the_feeder_rule_alone() {
        let (dir, base, ctx) = example();
        let path = dir.path().join(STABLE);
        let text = std::fs::read_to_string(&path).unwrap();
        let promoted = format!(
            "{}    - {V416}\n",
            text.trim_end_matches('\n').to_string() + "\n"
        );
        std::fs::write(&path, promoted).unwrap();
        git(dir.path(), &["commit", "-qam", "stable: 4.16"]);

        let report = check(&ctx, &request(&base, "HEAD"), &mut Warnings::new()).unwrap();
        assert!(!report.passed());
        let failed: Vec<Rule> = report
            .verdicts
            .iter()
            .filter(|v| !v.passed())
            .map(|v| v.rule)
            .collect();
        assert_eq!(failed, [Rule::Feeder]);
        let feeder = &report.verdicts[0];
        assert_eq!(feeder.checked, "1 promotion into a channel with a feeder");
        let message = &feeder.violations[0].message;
        assert!(
            message.starts_with(&format!(
                "{V416} entered channel 4-scos-next in commit {} of the base ",
                short_revision(&base)
            )) && message.contains("channel 4-scos-stable requires 3d in 4-scos-next"),
            "{message}"
        );

        // The history the rule read: 4.16 entered the feeder in the example's commit;
        // a version never in it has no first commit.
        let dirs = ["manifests", "policies"];
        let mut history = FeederHistory::new(&ctx, &base, &dirs);
        let first = history.first_listed("4-scos-next", V416).unwrap().unwrap();
        assert_eq!(first.commit, base);
        assert!(
            history
                .first_listed("4-scos-next", "9.9.9")
                .unwrap()
                .is_none()
        );
    }
}
