//! `relsync add VERSION --stream S --from REF`: add a release to a stream file in the
//! working tree ([`crate::ops::edit::add`]). Exit 0 when added or already there, 1 refused.

use super::{AddArgs, CliError, Settings};
use crate::ops::Context;
use crate::ops::edit::{self, AddRequest, Added};

/// Runs `add`.
pub fn run(settings: &Settings, args: &AddArgs) -> Result<i32, CliError> {
    if let Some(rev) = &settings.load.revision {
        return Err(CliError::Usage(format!(
            "--revision {rev}: `add` edits the working tree; it reads no other revision"
        )));
    }
    let ctx = Context::load(&settings.load)?;
    let request = AddRequest {
        version: &args.version,
        stream: &args.stream,
        from: &args.from,
    };
    let version = &args.version;
    match edit::add(&ctx, &request, &crate::ops::runtime()?)? {
        Added::Unchanged { digest, at } => println!(
            "{version} is already in stream {} with {digest} ({at}); nothing to do",
            args.stream
        ),
        Added::Written {
            digest,
            path,
            line,
            source,
        } => println!(
            "added {version} to stream {} ({path}:{line}): {digest} from {source}",
            args.stream
        ),
    }
    Ok(0)
}
