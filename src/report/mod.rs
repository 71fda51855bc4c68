//! PURE: renders plans and drift as text (an aligned table; colour only when asked),
//! JSON (exactly DESIGN.md's contract) and Markdown (a PR-comment table). Drift also gets a
//! unified diff per target of `tag digest` lines, desired vs live, made with `similar`.

use crate::plan::{Drift, Plan};

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
pub fn render_plan(plan: &Plan, format: Format, style: Style) -> String {
    todo!("{} {format:?} {style:?}", plan.revision)
}

/// Renders a drift report.
pub fn render_drift(drift: &Drift, format: Format, style: Style) -> String {
    todo!("{} {format:?} {style:?}", drift.revision)
}
