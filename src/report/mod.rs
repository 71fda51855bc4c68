//! PURE: renders plans and drift as text (an aligned table; colour only when asked),
//! JSON (exactly docs/reference.md's contract) and Markdown (a PR-comment table). Drift also gets a
//! unified diff per target of `tag digest` lines, desired vs live, made with `similar`.

pub mod check;
mod check_payload;
mod markdown;
pub mod mirror_config;
mod text;

use serde::Serialize;

use crate::digest::Digest;
use crate::plan::{Action, ActionKind, Drift, DriftItem, DriftState, Plan, Target};
use crate::revision::short_revision;

/// Output format, `-o text|json|markdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned table.
    #[default]
    Text,
    /// The stable machine-readable contract.
    Json,
    /// A table for a pull-request comment.
    Markdown,
}

/// Presentation switches for `text`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// ANSI colour (only on a terminal).
    pub color: bool,
}

/// Renders a plan.
///
/// - `text`: a summary line, then an aligned table `ACTION TARGET TAG FROM → TO REASON`
///   (short digests, versions in brackets), conflicts as `conflict` rows, and the refusal if
///   any; colour on the verbs only when `style.color`.
/// - `json`: `{"revision", "actions": [...]}`, exactly docs/reference.md's contract, pretty-printed.
/// - `markdown`: a summary line and a PR-comment table, conflicts and refusal called out.
///
/// Every format ends with a newline.
pub fn render_plan(plan: &Plan, format: Format, style: Style) -> String {
    match format {
        Format::Text => text::plan(plan, style),
        Format::Json => {
            #[derive(Serialize)]
            struct PlanJson<'a> {
                revision: &'a str,
                actions: &'a [Action],
                #[serde(skip_serializing_if = "<[_]>::is_empty")]
                signatures: &'a [crate::plan::UnsignedRelease],
            }
            json(&PlanJson {
                revision: &plan.revision,
                actions: &plan.actions,
                signatures: &plan.signatures,
            })
        }
        Format::Markdown => markdown::plan(plan),
    }
}

/// Renders a drift report.
///
/// - `text`: a summary line, a table of the items that are not `ok`, then for each target
///   that drifts a unified diff (made with `similar`) of sorted `tag digest` lines, desired
///   vs live, and last, apart, the tags no channel claims that are kept because prune is off
///   ("not pruned"): they are not drift, so they alone neither fill the table nor make a diff.
/// - `json`: `{"revision", "inSync", "items": [...]}` with the `ok` rows, exactly docs/reference.md's
///   contract, pretty-printed.
/// - `markdown`: the summary, a table of the items that are not `ok`, a `diff` block per
///   target that drifts, and the "not pruned" tags apart.
///
/// Every format ends with a newline.
pub fn render_drift(drift: &Drift, format: Format, style: Style) -> String {
    match format {
        Format::Text => text::drift(drift, style),
        Format::Json => {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct DriftJson<'a> {
                revision: &'a str,
                in_sync: bool,
                items: &'a [DriftItem],
            }
            json(&DriftJson {
                revision: &drift.revision,
                in_sync: drift.in_sync(),
                items: &drift.items,
            })
        }
        Format::Markdown => markdown::drift(drift),
    }
}

/// An aligned plain-text table of `rows` under `header`, drawn as the `text` format draws
/// its tables (two spaces between columns, no colour).
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    text::plain_table(header, rows)
}

/// A Markdown table of `rows` under `header`, every cell escaped.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| markdown::cell(c)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// The component-tag actions of a plan, by (target, release version), in plan order.
fn payload_groups(plan: &Plan) -> Vec<((String, String), Vec<&Action>)> {
    let mut groups: Vec<((String, String), Vec<&Action>)> = Vec::new();
    for a in &plan.actions {
        let Some(r) = &a.release else { continue };
        let key = (a.target.to_string(), r.version.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(a),
            None => groups.push((key, vec![a])),
        }
    }
    groups
}

/// One line for the component tags of one release in one target:
/// `payload: 190 components, 12 to copy, 1 to restore`.
fn payload_summary(group: &[&Action]) -> String {
    let count = |k: ActionKind| group.iter().filter(|a| a.action == k).count();
    let mut line = format!(
        "payload: {} components, {} to copy",
        group
            .first()
            .and_then(|a| a.release.as_ref())
            .map_or(0, |r| r.components),
        count(ActionKind::Mirror)
    );
    for (kind, word) in [
        (ActionKind::Tag, "to tag"),
        (ActionKind::Retag, "to restore"),
        (ActionKind::Delete, "to delete"),
    ] {
        if count(kind) > 0 {
            line.push_str(&format!(", {} {word}", count(kind)));
        }
    }
    line
}

/// Pretty JSON with a trailing newline.
fn json<T: Serialize>(value: &T) -> String {
    // Plans and drift hold only strings, booleans, nulls and lists: serializing them into a
    // String cannot fail.
    let mut out = serde_json::to_string_pretty(value)
        .expect("serializing strings, booleans and lists into a String cannot fail");
    out.push('\n');
    out
}

/// "1 action" / "2 actions".
fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The plan's summary: `in sync: nothing to do`, or `N actions: 2 mirror, 1 retag`, plus
/// conflicts.
fn plan_summary(plan: &Plan) -> String {
    let kinds = [
        ActionKind::Mirror,
        ActionKind::Tag,
        ActionKind::Retag,
        ActionKind::Rollback,
        ActionKind::Delete,
    ];
    let mut out = if plan.actions.is_empty() && plan.conflicts.is_empty() {
        if plan.signatures.is_empty() {
            "in sync: nothing to do".to_string()
        } else {
            count(0, "action")
        }
    } else {
        let per_kind: Vec<String> = kinds
            .iter()
            .filter_map(|k| {
                let n = plan.actions.iter().filter(|a| a.action == *k).count();
                (n > 0).then(|| format!("{n} {k}"))
            })
            .collect();
        if per_kind.is_empty() {
            count(0, "action")
        } else {
            format!(
                "{}: {}",
                count(plan.actions.len(), "action"),
                per_kind.join(", ")
            )
        }
    };
    if !plan.conflicts.is_empty() {
        out.push_str(&format!(
            "; {} (never moved)",
            count(plan.conflicts.len(), "conflict")
        ));
    }
    if !plan.signatures.is_empty() {
        out.push_str(&format!(
            "; {} to copy (releases in place whose signature the target lacks)",
            count(plan.signatures.len(), "signature")
        ));
    }
    if let Some(refusal) = &plan.refusal {
        out.push_str(match refusal {
            crate::plan::Refusal::DeleteCap { .. } => "; refused: over the delete cap",
        });
    }
    out
}

/// The drift's summary: `in sync: N tags as desired` or `drift: 1 missing, 2 moved`, plus
/// extras that do not count and ImageStream tags still importing (which never count).
fn drift_summary(drift: &Drift) -> String {
    drift_summary_after(drift, "drift: ")
}

/// [`drift_summary`] with `lead` in front of the counts when there is drift: `"drift: "`
/// alone, `""` after a heading that already says "drift" (`live drift: 3 missing; …`).
fn drift_summary_after(drift: &Drift, lead: &str) -> String {
    let ok = drift
        .items
        .iter()
        .filter(|i| i.state == DriftState::Ok)
        .count();
    let ignored = drift
        .items
        .iter()
        .filter(|i| i.state == DriftState::Extra && !i.counts)
        .count();
    let mut out = if drift.in_sync() {
        format!("in sync: {} as desired", count(ok, "tag"))
    } else {
        let states = [
            DriftState::Missing,
            DriftState::Moved,
            DriftState::Extra,
            DriftState::Importing,
            DriftState::ImportFailed,
            DriftState::Unsigned,
        ];
        let parts: Vec<String> = states
            .iter()
            .filter_map(|s| {
                let n = drift
                    .items
                    .iter()
                    .filter(|i| i.state == *s && i.counts)
                    .count();
                (n > 0).then(|| format!("{n} {}", s.word()))
            })
            .collect();
        format!(
            "{lead}{}; {} as desired",
            parts.join(", "),
            count(ok, "tag")
        )
    };
    if ignored > 0 {
        out.push_str(&format!(
            "; {} not claimed by any channel (not drift while prune is off)",
            count(ignored, "extra tag")
        ));
    }
    let importing = drift
        .items
        .iter()
        .filter(|i| i.state == DriftState::Importing)
        .count();
    if importing > 0 {
        out.push_str(&format!(
            "; {} importing (not drift until the import catches up)",
            count(importing, "ImageStream tag")
        ));
    }
    out
}

/// An extra tag no channel claims, kept because prune is off: not drift, shown apart.
fn not_pruned(item: &DriftItem) -> bool {
    item.state == DriftState::Extra && !item.counts
}

/// The rows of a drift table: every item that is neither `ok` nor [`not_pruned`].
fn drift_table_rows(drift: &Drift) -> Vec<&DriftItem> {
    drift
        .items
        .iter()
        .filter(|i| i.state != DriftState::Ok && !not_pruned(i))
        .collect()
}

/// The [`not_pruned`] items, in order.
fn not_pruned_rows(drift: &Drift) -> Vec<&DriftItem> {
    drift.items.iter().filter(|i| not_pruned(i)).collect()
}

/// The note shown beside a drift item: its message, and whether it counts.
fn drift_note(item: &DriftItem) -> String {
    let mut note = item.message.clone().unwrap_or_default();
    if item.state == DriftState::Extra && !item.counts {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str("not drift while prune is off");
    }
    note
}

/// A digest with its version, shortened: `sha256:0123456789ab (4.14.0)`, or `-`.
fn digest_and_version(d: Option<&Digest>, version: Option<&str>) -> String {
    match (d, version) {
        (None, _) => "-".to_string(),
        (Some(d), Some(v)) => format!("{} ({v})", d.short()),
        (Some(d), None) => d.short(),
    }
}

/// For each target with an item that is neither `ok`, `importing` nor [`not_pruned`], in
/// order: the unified diff of sorted `tag digest` lines, desired (the claimed tags) vs live
/// (every live tag the report holds). A target whose only difference is unclaimed tags kept
/// while prune is off does not drift, so it gets no diff.
fn target_diffs(drift: &Drift) -> Vec<(&Target, String)> {
    let mut out = Vec::new();
    let mut rest = drift.items.as_slice();
    while let Some(first) = rest.first() {
        let n = rest.iter().take_while(|i| i.target == first.target).count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        if group
            .iter()
            .all(|i| matches!(i.state, DriftState::Ok | DriftState::Importing) || not_pruned(i))
        {
            continue;
        }
        let mut desired = String::new();
        let mut live = String::new();
        for i in group {
            if let Some(d) = &i.desired {
                desired.push_str(&format!("{} {d}\n", i.tag));
            }
            if i.state != DriftState::Missing {
                match &i.actual {
                    Some(a) => live.push_str(&format!("{} {a}\n", i.tag)),
                    None => live.push_str(&format!("{} (not resolved)\n", i.tag)),
                }
            }
        }
        let diff = similar::TextDiff::from_lines(&desired, &live)
            .unified_diff()
            .header(
                &format!("desired {}", first.target),
                &format!("live {}", first.target),
            )
            .to_string();
        out.push((&first.target, diff));
    }
    out
}

#[cfg(test)]
mod payload_tests;
#[cfg(test)]
mod tests;
