//! `relsync promote VERSION --to CHANNEL [--commit]`: add a version to a channel's
//! `versions` in the working tree ([`crate::ops::edit::promote`]). Exit 0 when promoted or
//! already there, 1 refused.

use super::{CliError, PromoteArgs, Settings};
use crate::ops::Context;
use crate::ops::edit::{self, PromoteRequest, Promoted};
use crate::revision::short_revision;

/// Runs `promote`.
pub fn run(settings: &Settings, args: &PromoteArgs) -> Result<i32, CliError> {
    if let Some(rev) = &settings.load.revision {
        return Err(CliError::Usage(format!(
            "--revision {rev}: `promote` edits the working tree; it reads no other revision"
        )));
    }
    let ctx = Context::load(&settings.load)?;
    let request = PromoteRequest {
        version: &args.version,
        to: &args.to,
        commit: args.commit,
    };
    let (version, name) = (&args.version, &args.to);
    match edit::promote(&ctx, &request)? {
        Promoted::Unchanged { at } => {
            println!("{version} is already in {name} ({at}); nothing to do")
        }
        Promoted::Written { at } => println!("promoted {version} to {name} ({at})"),
        Promoted::Committed { at, commit, branch } => println!(
            "promoted {version} to {name} ({at}), committed {} on branch {branch}",
            short_revision(&commit)
        ),
    }
    Ok(0)
}
