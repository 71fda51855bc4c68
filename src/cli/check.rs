//! `relsync check --base REV [--head REV] [-o text|json|markdown] [--offline]`: the PR gate.
//! The rules are [`crate::ops::gate`]'s; this module prints the report. Exit 0 pass, 1 fail.

use super::{CheckArgs, CliError, OutputFormat, Settings, print_warnings};
use crate::ops::Context;
use crate::ops::gate::{self, GateRequest};
use crate::report::check;

/// Runs `check`; exit 0 when the head passes, 1 when it fails.
pub fn run(settings: &Settings, args: &CheckArgs) -> Result<i32, CliError> {
    if let Some(rev) = &settings.load.revision {
        return Err(CliError::Usage(format!(
            "check compares two revisions: use --base and --head, not --revision {rev}"
        )));
    }
    let ctx = Context::load(&settings.load)?;
    let request = GateRequest {
        base: &args.base,
        head: args.head.as_deref().unwrap_or("HEAD"),
        offline: args.offline,
    };
    let mut warnings = Vec::new();
    let report = gate::check(&ctx, &request, &mut warnings);
    print_warnings(&warnings);
    let report = report?;
    print!(
        "{}",
        match args.output {
            OutputFormat::Text => check::text(&report),
            OutputFormat::Json => check::json(&report),
            OutputFormat::Markdown => check::markdown(&report),
        }
    );
    Ok(report.exit_code())
}
