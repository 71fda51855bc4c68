//! PURE: the result of `relsync check` (the PR gate) and its renderings: text, Markdown (the
//! pull-request comment) and JSON.
//!
//! `ops::gate` fills a [`CheckReport`]; this module only presents it. Whether the check
//! passes is [`CheckReport::passed`]: the head is valid and no policy verdict failed. Policy
//! files needing review and live drift are shown but never decide it.

use serde::Serialize;

pub use super::check_payload::PayloadRelease;
use super::check_payload::markdown_payloads;
use super::markdown::{self, cell, version_cell};
use super::{count, digest_and_version, drift_note, drift_summary_after, short_revision};
use crate::digest::Digest;
use crate::plan::{Action, Drift, DriftItem, DriftState, Plan};

/// A rule `check` judges the head by (each with the base's policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Rule {
    /// A channel's `feeder`: a newly added version spent `delay` in the feeder channel on the
    /// base branch.
    Feeder,
    /// `channelSubsets`: every version of the first channel is in the second.
    ChannelSubsets,
    /// `immutableTags`: a tag the base already has never moves.
    ImmutableTags,
    /// `allowedSources`: every stream's source matches a glob.
    AllowedSources,
    /// `maxDeletesPerSync`: the base → head change deletes no more tags than this.
    MaxDeletesPerSync,
    /// `signatures`: every newly published release has a trusted cosign signature.
    Signatures,
    /// `payload`: each release newly published in a payload stream has a readable
    /// image-references at its source, and every component it names is at its source.
    Payload,
}

impl Rule {
    /// The rule as written in manifests (`feeder`, `channelSubsets`, …).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Feeder => "feeder",
            Rule::ChannelSubsets => "channelSubsets",
            Rule::ImmutableTags => "immutableTags",
            Rule::AllowedSources => "allowedSources",
            Rule::MaxDeletesPerSync => "maxDeletesPerSync",
            Rule::Signatures => "signatures",
            Rule::Payload => "payload",
        }
    }
}

/// One broken rule: where (`file:line:col`, when a file is at fault) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// `file:line:col` of the offending entry (or of the rule, for `maxDeletesPerSync`).
    pub at: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

/// The verdict of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The rule.
    pub rule: Rule,
    /// What was judged, in words (`2 promotions`, `not set in the base's policies`).
    pub checked: String,
    /// Every violation; empty means the rule passes.
    pub violations: Vec<Violation>,
}

impl Verdict {
    /// Whether the rule passes.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// How a file under the policies directory differs between base and head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileChange {
    /// New in the head.
    Added,
    /// In both, with other contents.
    Modified,
    /// Gone in the head.
    Deleted,
}

/// A policy file the pull request changes: listed for review, never used to judge itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewFile {
    /// Repository-relative path.
    pub path: String,
    /// How it changed.
    pub change: FileChange,
}

/// What `check` learnt of the live registry (never part of the verdict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveDrift {
    /// `--offline`: no registry was contacted.
    NotChecked,
    /// The live state of the targets against the base's desired state.
    Checked(Drift),
    /// Observing failed: the reason.
    Failed(String),
}

/// Everything `relsync check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The base commit sha.
    pub base: String,
    /// The head commit sha.
    pub head: String,
    /// Why the head is invalid (`file:line:col: message` lines); non-empty fails the check,
    /// and then nothing else is judged.
    pub invalid: Vec<String>,
    /// The plan from the base's desired state (as the registry) to the head's.
    pub change: Option<Plan>,
    /// One verdict per rule, in [`Rule`] order.
    pub verdicts: Vec<Verdict>,
    /// Policy files the head changes.
    pub review: Vec<ReviewFile>,
    /// The live drift, apart.
    pub live: LiveDrift,
    /// What each release newly published in a payload stream brings (empty with
    /// `--offline`, or when there is none).
    pub payloads: Vec<PayloadRelease>,
}

impl CheckReport {
    /// Number of violations (an invalid head counts its problems).
    pub fn violations(&self) -> usize {
        self.invalid.len()
            + self
                .verdicts
                .iter()
                .map(|v| v.violations.len())
                .sum::<usize>()
    }

    /// Whether the check passes (exit 0): a valid head breaking no rule.
    pub fn passed(&self) -> bool {
        self.violations() == 0
    }

    /// The exit code of `check`: 0 pass, 1 fail.
    pub fn exit_code(&self) -> i32 {
        if self.passed() { 0 } else { 1 }
    }

    fn actions(&self) -> &[Action] {
        self.change.as_ref().map_or(&[], |p| p.actions.as_slice())
    }
}

/// `3d`, `5h12m`, `40s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3_600,
        secs % 3_600 / 60,
        secs % 60,
    );
    let mut out = String::new();
    for (n, unit) in [(d, "d"), (h, "h"), (m, "m")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() || (d == 0 && h == 0 && s > 0) {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// `✅ check passed: 2 tag changes in quay.io/okd/scos-release`, or
/// `❌ check failed: 1 violation (feeder); 2 tag changes in …`.
pub fn summary(report: &CheckReport) -> String {
    let actions = report.actions();
    let mut targets: Vec<String> = actions.iter().map(|a| a.target.to_string()).collect();
    targets.dedup();
    let changes = match targets.as_slice() {
        [] => "no tag changes".to_string(),
        [one] => format!("{} in {one}", count(actions.len(), "tag change")),
        many => format!(
            "{} in {} targets",
            count(actions.len(), "tag change"),
            many.len()
        ),
    };
    if !report.invalid.is_empty() {
        return format!(
            "❌ check failed: the head is invalid ({})",
            count(report.invalid.len(), "problem")
        );
    }
    if report.passed() {
        return format!("✅ check passed: {changes}");
    }
    let rules: Vec<&str> = report
        .verdicts
        .iter()
        .filter(|v| !v.passed())
        .map(|v| v.rule.name())
        .collect();
    format!(
        "❌ check failed: {} ({}); {changes}",
        count(report.violations(), "violation"),
        rules.join(", ")
    )
}

fn version_or_digest(d: Option<&Digest>, v: Option<&str>) -> String {
    match (d, v) {
        (_, Some(v)) => v.to_string(),
        (Some(d), None) => d.short(),
        (None, None) => "-".to_string(),
    }
}

/// What the live drift comes to; `lead` goes before the counts when there is drift
/// (`"drift: "` under a heading of its own, `""` after the text's `live drift: `, which
/// already says it).
fn live_heading(live: &LiveDrift, lead: &str) -> String {
    match live {
        LiveDrift::NotChecked => "not checked (--offline)".to_string(),
        LiveDrift::Failed(e) => format!("could not observe the registry: {e}"),
        LiveDrift::Checked(d) => drift_summary_after(d, lead),
    }
}

fn drift_rows(d: &Drift) -> impl Iterator<Item = &DriftItem> {
    d.items.iter().filter(|i| i.state != DriftState::Ok)
}

/// The text rendering: summary, tag changes, verdicts, review, live drift.
pub fn text(report: &CheckReport) -> String {
    let mut out = format!(
        "{}\nbase {} → head {}\n",
        summary(report),
        short_revision(&report.base),
        short_revision(&report.head)
    );
    if !report.invalid.is_empty() {
        out.push_str("\ninvalid head:\n");
        for line in &report.invalid {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str(&text_review(report));
        return out;
    }
    out.push_str("\ntag changes (base → head):\n");
    if report.actions().is_empty() {
        out.push_str("  none\n");
    }
    for a in report.actions() {
        out.push_str(&format!(
            "  {:<8} {}:{}  {} → {}\n",
            a.action.to_string(),
            a.target,
            a.tag,
            version_or_digest(a.from.as_ref(), a.from_version.as_deref()),
            version_or_digest(a.to.as_ref(), a.to_version.as_deref()),
        ));
    }
    out.push_str("\npolicies (the base's):\n");
    for v in &report.verdicts {
        if v.passed() {
            out.push_str(&format!("  pass  {}: {}\n", v.rule.name(), v.checked));
        }
        for x in &v.violations {
            match &x.at {
                Some(at) => {
                    out.push_str(&format!("  FAIL  {}: {at}: {}\n", v.rule.name(), x.message))
                }
                None => out.push_str(&format!("  FAIL  {}: {}\n", v.rule.name(), x.message)),
            }
        }
    }
    if !report.payloads.is_empty() {
        out.push_str("\npayloads (releases newly published):\n");
        for p in &report.payloads {
            out.push_str(&format!("  {}\n", p.sentence()));
        }
    }
    out.push_str(&text_review(report));
    out.push_str(&format!(
        "\nlive drift: {}\n",
        live_heading(&report.live, "")
    ));
    if let LiveDrift::Checked(d) = &report.live {
        for i in drift_rows(d) {
            out.push_str(&format!(
                "  {:<8} {}:{}  desired {}  live {}{}\n",
                i.state.word(),
                i.target,
                i.tag,
                digest_and_version(i.desired.as_ref(), None),
                digest_and_version(i.actual.as_ref(), None),
                match drift_note(i) {
                    n if n.is_empty() => String::new(),
                    n => format!("  ({n})"),
                }
            ));
        }
    }
    out
}

fn text_review(report: &CheckReport) -> String {
    let mut out = String::new();
    if !report.review.is_empty() {
        out.push_str("\nneeds review (policy changes are judged by the base's copy):\n");
        for f in &report.review {
            out.push_str(&format!("  {} ({})\n", f.path, change_word(f.change)));
        }
    }
    out
}

fn markdown_review(report: &CheckReport) -> String {
    let mut out = String::new();
    if !report.review.is_empty() {
        out.push_str(
            "\n##### Needs review\n\nPolicy changes are not used to judge this pull request (it is judged by the base's policies); a reviewer must approve them:\n\n",
        );
        for f in &report.review {
            out.push_str(&format!(
                "- {} ({})\n",
                code(&f.path),
                change_word(f.change)
            ));
        }
    }
    out
}

fn change_word(c: FileChange) -> &'static str {
    match c {
        FileChange::Added => "added",
        FileChange::Modified => "modified",
        FileChange::Deleted => "deleted",
    }
}

/// A table cell of prose that may hold `code spans`: outside them, `*`, `_` and `<` are
/// escaped so globs and versions read as written.
fn prose(s: &str) -> String {
    cell(s)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                part.to_string()
            } else {
                part.replace('*', "\\*")
                    .replace('_', "\\_")
                    .replace('<', "&lt;")
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

pub(super) fn code(s: &str) -> String {
    format!("`{}`", cell(s).replace('`', "'"))
}

/// The Markdown rendering, a pull-request comment: a summary line, a table of tag changes,
/// each policy verdict, files needing review, and the live drift in its own section.
pub fn markdown(report: &CheckReport) -> String {
    let mut out = format!(
        "#### relsync check: `{}` → `{}`\n\n**{}**\n",
        short_revision(&report.base),
        short_revision(&report.head),
        summary(report)
    );
    if !report.invalid.is_empty() {
        out.push_str("\nThe head's manifests are invalid:\n\n```\n");
        for line in &report.invalid {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("```\n");
        out.push_str(&markdown_review(report));
        return out;
    }
    out.push_str("\n##### Tag changes (base → head)\n\n");
    if report.actions().is_empty() {
        out.push_str("No tag changes.\n");
    } else {
        out.push_str("| action | target | tag | from | to |\n|---|---|---|---|---|\n");
        for a in report.actions() {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                a.action,
                code(&a.target.to_string()),
                code(&a.tag),
                version_cell(a.from.as_ref(), a.from_version.as_deref()),
                version_cell(a.to.as_ref(), a.to_version.as_deref()),
            ));
        }
    }
    out.push_str("\n##### Policies (the base's)\n\n| rule | verdict | details |\n|---|---|---|\n");
    for v in &report.verdicts {
        if v.passed() {
            out.push_str(&format!(
                "| `{}` | ✅ pass | {} |\n",
                v.rule.name(),
                prose(&v.checked)
            ));
        }
        for x in &v.violations {
            let at =
                x.at.as_deref()
                    .map(|a| format!("{}: ", code(a)))
                    .unwrap_or_default();
            out.push_str(&format!(
                "| `{}` | ❌ fail | {at}{} |\n",
                v.rule.name(),
                prose(&x.message)
            ));
        }
    }
    out.push_str(&markdown_payloads(report));
    out.push_str(&markdown_review(report));
    out.push_str(&format!(
        "\n##### Live drift\n\n{}\n",
        prose(&live_heading(&report.live, "drift: "))
    ));
    if let LiveDrift::Checked(d) = &report.live {
        let rows: Vec<&DriftItem> = drift_rows(d).collect();
        if !rows.is_empty() {
            out.push_str(&markdown::drift_table(&rows, "live"));
        }
        out.push_str("\nLive drift is where the registry differs from the base; it does not change the verdict.\n");
    }
    out
}

/// The JSON rendering (a stable shape):
///
/// ```json
/// {"base": "<sha>", "head": "<sha>", "passed": false, "violations": 1,
///  "invalid": ["file:line:col: message"],
///  "actions": [/* the plan's actions, as `plan -o json` */],
///  "policies": [{"rule": "feeder|channelSubsets|immutableTags|allowedSources|maxDeletesPerSync|signatures|payload",
///                "passed": true, "checked": "…",
///                "violations": [{"at": "file:line:col|null", "message": "…"}]}],
///  "review": [{"path": "policies/default.yaml", "change": "added|modified|deleted"}],
///  "payloads": [{"version", "payloadTarget", "components": 4, "newToTarget": 2,
///                "missingAtSource": 0}],
///  "liveDrift": {"checked": false}
///            | {"checked": true, "inSync": true, "items": [/* as `drift -o json` */]}
///            | {"checked": true, "error": "…"}}
/// ```
pub fn json(report: &CheckReport) -> String {
    #[derive(Serialize)]
    struct PolicyJson<'a> {
        rule: Rule,
        passed: bool,
        checked: &'a str,
        violations: &'a [Violation],
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct LiveJson<'a> {
        checked: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        in_sync: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        items: Option<&'a [DriftItem]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct CheckJson<'a> {
        base: &'a str,
        head: &'a str,
        passed: bool,
        violations: usize,
        invalid: &'a [String],
        actions: &'a [Action],
        policies: Vec<PolicyJson<'a>>,
        review: &'a [ReviewFile],
        payloads: &'a [PayloadRelease],
        live_drift: LiveJson<'a>,
    }
    let live_drift = match &report.live {
        LiveDrift::NotChecked => LiveJson {
            checked: false,
            in_sync: None,
            items: None,
            error: None,
        },
        LiveDrift::Checked(d) => LiveJson {
            checked: true,
            in_sync: Some(d.in_sync()),
            items: Some(&d.items),
            error: None,
        },
        LiveDrift::Failed(e) => LiveJson {
            checked: true,
            in_sync: None,
            items: None,
            error: Some(e),
        },
    };
    super::json(&CheckJson {
        base: &report.base,
        head: &report.head,
        passed: report.passed(),
        violations: report.violations(),
        invalid: &report.invalid,
        actions: report.actions(),
        policies: report
            .verdicts
            .iter()
            .map(|v| PolicyJson {
                rule: v.rule,
                passed: v.passed(),
                checked: &v.checked,
                violations: &v.violations,
            })
            .collect(),
        review: &report.review,
        payloads: &report.payloads,
        live_drift,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(40), "40s");
        assert_eq!(duration(72 * 3600), "3d");
        assert_eq!(duration(5 * 3600 + 12 * 60 + 3), "5h12m");
        assert_eq!(duration(61), "1m1s");
    }

    fn report(violations: Vec<Violation>) -> CheckReport {
        CheckReport {
            base: "a".repeat(40),
            head: "b".repeat(40),
            invalid: Vec::new(),
            change: None,
            verdicts: vec![Verdict {
                rule: Rule::Feeder,
                checked: "1 promotion".to_string(),
                violations,
            }],
            review: Vec::new(),
            live: LiveDrift::NotChecked,
            payloads: Vec::new(),
        }
    }

    #[test]
    fn a_violation_fails_and_is_named_in_every_format() {
        let r = report(vec![Violation {
            at: Some("manifests/c.yaml:3:7".to_string()),
            message: "too | recent".to_string(),
        }]);
        assert_eq!(r.exit_code(), 1);
        assert_eq!(
            summary(&r),
            "❌ check failed: 1 violation (feeder); no tag changes"
        );
        assert!(
            markdown(&r)
                .contains("| `feeder` | ❌ fail | `manifests/c.yaml:3:7`: too \\| recent |")
        );
        assert!(text(&r).contains("FAIL  feeder: manifests/c.yaml:3:7: too | recent"));
        let j: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(j["passed"], false);
        assert_eq!(
            j["policies"][0]["violations"][0]["at"],
            "manifests/c.yaml:3:7"
        );
        assert_eq!(j["liveDrift"]["checked"], false);
    }

    #[test]
    fn no_violation_passes() {
        let r = report(Vec::new());
        assert_eq!(r.exit_code(), 0);
        assert_eq!(summary(&r), "✅ check passed: no tag changes");
        assert!(markdown(&r).contains("not checked (--offline)"));
    }
}
