//! `relsync history`: each sync's revision, time, commit author and subject, and outcome,
//! newest first, and the rollback holds in force.

use super::{CliError, HistoryArgs, OutputFormat, Settings};
use crate::ops::{Context, OpsError, connect_cluster};
use crate::report;
use crate::revision::short_revision as short;
use crate::store::StateStore;

/// Prints the history; exit 0.
pub fn run(settings: &Settings, args: &HistoryArgs) -> Result<i32, CliError> {
    let ctx = Context::load(&settings.load)?;
    let runtime = crate::ops::runtime()?;
    let cluster = runtime.block_on(connect_cluster(&ctx))?;
    let store = StateStore::new(&ctx.config_dir, cluster);
    let state = runtime.block_on(store.load()).map_err(OpsError::from)?;
    match args.output {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&state)
                .map_err(|e| CliError::Usage(format!("cannot render the history: {e}")))?;
            println!("{text}");
        }
        OutputFormat::Text | OutputFormat::Markdown => {
            let md = matches!(args.output, OutputFormat::Markdown);
            print!("{}", render(&state, md));
        }
    }
    Ok(0)
}

/// The history as an aligned table (or a Markdown table), holds first.
fn render(state: &crate::store::SyncState, markdown: bool) -> String {
    let mut out = String::new();
    for h in &state.holds {
        let scope = h
            .channel
            .as_ref()
            .map_or("every channel".to_string(), |c| format!("channel {c}"));
        out.push_str(&format!(
            "hold: {scope} kept at {} (rollback at {}) until {} moves from {}\n",
            short(&h.revision),
            h.time,
            h.branch,
            short(&h.tip)
        ));
    }
    if state.history.is_empty() {
        out.push_str("no sync recorded yet\n");
        return out;
    }
    if !state.holds.is_empty() {
        out.push('\n');
    }
    let header = [
        "TIME", "REVISION", "KIND", "OUTCOME", "AUTHOR", "SUBJECT", "SUMMARY",
    ];
    let rows: Vec<Vec<String>> = state
        .history
        .iter()
        .map(|e| {
            let kind = match &e.channel {
                Some(c) => format!("{} ({c})", kind_name(e.kind)),
                None => kind_name(e.kind).to_string(),
            };
            vec![
                e.time.clone(),
                short(&e.revision).to_string(),
                kind,
                e.outcome.to_string(),
                e.author.clone(),
                e.subject.clone(),
                e.summary.clone(),
            ]
        })
        .collect();
    out.push_str(&if markdown {
        report::markdown_table(&header, &rows)
    } else {
        report::text_table(&header, &rows)
    });
    out
}

fn kind_name(kind: crate::store::EntryKind) -> &'static str {
    match kind {
        crate::store::EntryKind::Sync => "sync",
        crate::store::EntryKind::Rollback => "rollback",
    }
}
