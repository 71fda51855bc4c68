//! The `markdown` format: tables for a pull-request comment.

use super::{
    drift_note, drift_summary, drift_table_rows, not_pruned_rows, plan_summary, short_revision,
    target_diffs,
};
use crate::digest::Digest;
use crate::plan::{Drift, DriftItem, Plan};

/// Escapes a table cell: pipes, and line breaks folded into spaces.
pub(super) fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Inline code, or an em dash for empty.
fn code(s: &str) -> String {
    if s.is_empty() {
        "—".to_string()
    } else {
        format!("`{}`", cell(s))
    }
}

/// `version` (`sha256:…`), `sha256:…`, or an em dash.
pub(super) fn version_cell(d: Option<&Digest>, version: Option<&str>) -> String {
    match (d, version) {
        (None, _) => "—".to_string(),
        (Some(d), Some(v)) => format!("{} (`{}`)", code(v), d.short()),
        (Some(d), None) => code(&d.short()),
    }
}

pub(super) fn plan(plan: &Plan) -> String {
    let mut out = format!(
        "#### relsync plan for `{}`\n\n**{}**\n",
        short_revision(&plan.revision),
        plan_summary(plan)
    );
    if let Some(r) = &plan.refusal {
        out.push_str(&format!("\n> [!CAUTION]\n> {}\n", cell(&r.to_string())));
    }
    if !plan.actions.is_empty() {
        out.push_str("\n| action | target | tag | from | to | channels | reason |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for a in plan.actions.iter().filter(|a| a.release.is_none()) {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                a.action,
                code(&a.target.to_string()),
                code(&a.tag),
                version_cell(a.from.as_ref(), a.from_version.as_deref()),
                version_cell(a.to.as_ref(), a.to_version.as_deref()),
                if a.channels.is_empty() {
                    "—".to_string()
                } else {
                    cell(&a.channels.join(", "))
                },
                cell(&a.reason),
            ));
        }
        // Component tags of a payload release: one row per release and target.
        for ((target, version), group) in super::payload_groups(plan) {
            out.push_str(&format!(
                "| payload | {} | {} | — | {} | {} | {} |\n",
                code(&target),
                code(&format!("{}-*", crate::tag::version_tag(&version))),
                cell(&format!("{} tags of {version}", group.len())),
                if group[0].channels.is_empty() {
                    "—".to_string()
                } else {
                    cell(&group[0].channels.join(", "))
                },
                cell(&super::payload_summary(&group)),
            ));
        }
    }
    if !plan.signatures.is_empty() {
        out.push_str(
            "\n**Signatures to copy** (releases in place whose signature the target lacks):\n\n",
        );
        out.push_str("| target | tags | release | reason |\n|---|---|---|---|\n");
        for u in &plan.signatures {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                code(&u.target),
                code(&u.tags.join(", ")),
                version_cell(Some(&u.digest), Some(&u.version)),
                cell(&u.reason),
            ));
        }
    }
    if !plan.conflicts.is_empty() {
        out.push_str("\n**Conflicts** (tags that differ from Git and are never moved):\n\n");
        out.push_str("| target | tag | live | Git | reason |\n|---|---|---|---|---|\n");
        for c in &plan.conflicts {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                code(&c.target.to_string()),
                code(&c.tag),
                code(&c.actual.short()),
                code(&c.desired.short()),
                cell(&c.reason),
            ));
        }
    }
    out
}

/// A table of drift items (after a blank line); the live column is headed `actual`.
pub(super) fn drift_table(rows: &[&DriftItem], actual: &str) -> String {
    let mut out = format!("\n| state | target | tag | desired | {actual} | note |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for i in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            i.state.word(),
            code(&i.target.to_string()),
            code(&i.tag),
            version_cell(i.desired.as_ref(), None),
            version_cell(i.actual.as_ref(), None),
            match drift_note(i) {
                n if n.is_empty() => "—".to_string(),
                n => cell(&n),
            },
        ));
    }
    out
}

pub(super) fn drift(drift: &Drift) -> String {
    let mut out = format!(
        "#### relsync drift for `{}`\n\n**{}**\n",
        short_revision(&drift.revision),
        drift_summary(drift)
    );
    let rows = drift_table_rows(drift);
    if !rows.is_empty() {
        out.push_str(&drift_table(&rows, "actual"));
    }
    for (_, diff) in target_diffs(drift) {
        out.push_str("\n```diff\n");
        out.push_str(&diff);
        if !diff.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("```\n");
    }
    let kept = not_pruned_rows(drift);
    if !kept.is_empty() {
        out.push_str(
            "\n**Not pruned** (no channel claims these tags; deleted only with `--prune` or `sync.prune`):\n\n| target | tag | actual |\n|---|---|---|\n",
        );
        for i in kept {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                code(&i.target.to_string()),
                code(&i.tag),
                version_cell(i.actual.as_ref(), None),
            ));
        }
    }
    out
}

#[cfg(test)]
pub(super) fn cell_for_tests(s: &str) -> String {
    cell(s)
}
