//! The `text` format: aligned tables, short digests, ANSI colour on request.

use super::{
    Style, digest_and_version, drift_note, drift_summary, drift_table_rows, not_pruned_rows,
    plan_summary, short_revision, target_diffs,
};
use crate::plan::{ActionKind, Drift, DriftState, Plan};

const RESET: &str = "\x1b[0m";

fn verb_color(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Mirror | ActionKind::Tag => "\x1b[32m",
        ActionKind::Retag => "\x1b[33m",
        ActionKind::Rollback => "\x1b[35m",
        ActionKind::Delete => "\x1b[31m",
    }
}

fn state_color(state: DriftState) -> &'static str {
    match state {
        DriftState::Missing | DriftState::ImportFailed => "\x1b[31m",
        DriftState::Moved | DriftState::Unsigned => "\x1b[33m",
        DriftState::Extra => "\x1b[36m",
        DriftState::Ok => "\x1b[32m",
        DriftState::Importing => "\x1b[34m",
    }
}

const CONFLICT_COLOR: &str = "\x1b[1;31m";

/// One cell: its text, and the colour of its text when colour is on.
struct Cell {
    text: String,
    color: Option<&'static str>,
}

impl Cell {
    fn plain(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            color: None,
        }
    }

    fn colored(text: impl Into<String>, color: &'static str) -> Self {
        Cell {
            text: text.into(),
            color: Some(color),
        }
    }
}

/// An aligned table: columns separated by two spaces, padded to their widest cell (in
/// characters), no padding after the last column, colour around the text only.
fn table(header: &[&str], rows: Vec<Vec<Cell>>, style: Style) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.text.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<Cell> = header.iter().map(|h| Cell::plain(*h)).collect();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            match cell.color {
                Some(c) if style.color => {
                    line.push_str(c);
                    line.push_str(&cell.text);
                    line.push_str(RESET);
                }
                _ => line.push_str(&cell.text),
            }
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.text.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// [`table`] of plain cells.
pub(super) fn plain_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows = rows
        .iter()
        .map(|r| r.iter().map(|c| Cell::plain(c.as_str())).collect())
        .collect();
    table(header, rows, Style::default())
}

/// A version, unless it is the tag itself (a version tag's own action says it already).
fn unless_tag<'a>(version: Option<&'a str>, tag: &str) -> Option<&'a str> {
    version.filter(|v| crate::tag::version_tag(v) != tag)
}

/// One side of a move, as short as it can be and still say what it is: the version when Git
/// knows it (unless it is the tag itself), else the short digest; `-` when absent. Full
/// digests are in `-o json`.
fn version_or_digest(
    digest: Option<&crate::digest::Digest>,
    version: Option<&str>,
    tag: &str,
) -> String {
    match (digest, unless_tag(version, tag)) {
        (None, _) => "-".to_string(),
        (Some(_), Some(v)) => v.to_string(),
        (Some(d), None) => d.short(),
    }
}

/// `summary line`, table of actions and conflicts, refusal.
pub(super) fn plan(plan: &Plan, style: Style) -> String {
    let mut out = format!(
        "{} (revision {})\n",
        plan_summary(plan),
        short_revision(&plan.revision)
    );
    // Releases in place whose signature the target lacks: copied by sync, no tag changes.
    for u in &plan.signatures {
        out.push_str(&format!(
            "signature  {}  {}  {} ({}): {}\n",
            u.target,
            u.tags.join(","),
            u.digest.short(),
            u.version,
            u.reason
        ));
    }
    if plan.actions.is_empty() && plan.conflicts.is_empty() {
        return out;
    }
    // Component tags of a payload release: one row per release and target, not one per tag.
    let mut payload_rows: Vec<Vec<Cell>> = Vec::new();
    for ((target, version), group) in super::payload_groups(plan) {
        let first = group[0];
        let reason = super::payload_summary(&group);
        payload_rows.push(vec![
            Cell::colored("payload", verb_color(first.action)),
            Cell::plain(target),
            Cell::plain(format!("{}-*", crate::tag::version_tag(&version))),
            Cell::plain(format!("{} tags of {version}", group.len())),
            Cell::plain(reason),
        ]);
    }
    let mut rows: Vec<Vec<Cell>> = plan
        .actions
        .iter()
        .filter(|a| a.release.is_none())
        .map(|a| {
            vec![
                Cell::colored(a.action.to_string(), verb_color(a.action)),
                Cell::plain(a.target.to_string()),
                Cell::plain(a.tag.clone()),
                Cell::plain(format!(
                    "{} → {}",
                    version_or_digest(a.from.as_ref(), a.from_version.as_deref(), &a.tag),
                    version_or_digest(a.to.as_ref(), a.to_version.as_deref(), &a.tag),
                )),
                Cell::plain(a.reason.clone()),
            ]
        })
        .collect();
    rows.extend(payload_rows);
    rows.extend(plan.conflicts.iter().map(|c| {
        vec![
            Cell::colored("conflict", CONFLICT_COLOR),
            Cell::plain(c.target.to_string()),
            Cell::plain(c.tag.clone()),
            Cell::plain(format!("{} ≠ {}", c.actual.short(), c.desired.short())),
            Cell::plain(c.reason.clone()),
        ]
    }));
    out.push('\n');
    out.push_str(&table(
        &["ACTION", "TARGET", "TAG", "FROM → TO", "REASON"],
        rows,
        style,
    ));
    if let Some(r) = &plan.refusal {
        out.push('\n');
        if style.color {
            out.push_str(&format!("{CONFLICT_COLOR}{r}{RESET}\n"));
        } else {
            out.push_str(&format!("{r}\n"));
        }
    }
    out
}

/// Summary line, table of items that are not `ok`, a unified diff per target that drifts,
/// then the unclaimed tags kept while prune is off, apart.
pub(super) fn drift(drift: &Drift, style: Style) -> String {
    let mut out = format!(
        "{} (revision {})\n",
        drift_summary(drift),
        short_revision(&drift.revision)
    );
    out.push_str(&drift_body(drift, style));
    let kept = not_pruned_rows(drift);
    if !kept.is_empty() {
        out.push_str(
            "\nnot pruned (no channel claims these tags; deleted only with --prune or sync.prune):\n",
        );
        let rows = kept
            .iter()
            .map(|i| {
                vec![
                    Cell::plain(i.target.to_string()),
                    Cell::plain(i.tag.clone()),
                    Cell::plain(digest_and_version(i.actual.as_ref(), None)),
                ]
            })
            .collect();
        out.push_str(&table(&["TARGET", "TAG", "ACTUAL"], rows, style));
    }
    out
}

/// The table of drift items and the diffs, empty when nothing drifts.
fn drift_body(drift: &Drift, style: Style) -> String {
    let mut out = String::new();
    let all = drift_table_rows(drift);
    // Component tags of a payload release: one row per release, target and state.
    let mut groups: Vec<((String, String, DriftState), usize)> = Vec::new();
    for i in all.iter().filter(|i| i.release.is_some()) {
        let key = (
            i.target.to_string(),
            i.release.clone().unwrap_or_default(),
            i.state,
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => groups.push((key, 1)),
        }
    }
    let mut rows: Vec<Vec<Cell>> = all
        .into_iter()
        .filter(|i| i.release.is_none())
        .map(|i| {
            vec![
                Cell::colored(i.state.word(), state_color(i.state)),
                Cell::plain(i.target.to_string()),
                Cell::plain(i.tag.clone()),
                Cell::plain(digest_and_version(i.desired.as_ref(), None)),
                Cell::plain(digest_and_version(i.actual.as_ref(), None)),
                Cell::plain(drift_note(i)),
            ]
        })
        .collect();
    rows.extend(groups.into_iter().map(|((target, version, state), n)| {
        vec![
            Cell::colored(state.word(), state_color(state)),
            Cell::plain(target),
            Cell::plain(format!("{}-*", crate::tag::version_tag(&version))),
            Cell::plain(format!("{n} component tags")),
            Cell::plain("-"),
            Cell::plain(format!("payload of release {version}")),
        ]
    }));
    if rows.is_empty() {
        return out;
    }
    out.push('\n');
    out.push_str(&table(
        &["STATE", "TARGET", "TAG", "DESIRED", "ACTUAL", "NOTE"],
        rows,
        style,
    ));
    for (_, diff) in target_diffs(drift) {
        out.push('\n');
        for line in diff.lines() {
            let color = if !style.color || line.starts_with("---") || line.starts_with("+++") {
                None
            } else if line.starts_with('+') {
                Some("\x1b[32m")
            } else if line.starts_with('-') {
                Some("\x1b[31m")
            } else if line.starts_with("@@") {
                Some("\x1b[36m")
            } else {
                None
            };
            match color {
                Some(c) => out.push_str(&format!("{c}{line}{RESET}\n")),
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    out
}
