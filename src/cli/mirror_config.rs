//! `relsync mirror-config`: the `ImageDigestMirrorSet`, `ImageTagMirrorSet` and
//! install-config `imageDigestSources` that make a cluster pull from the targets.

use super::{CliError, MirrorConfigArgs, MirrorConfigFormat, Settings, print_warnings};
use crate::ops::mirror_config::mirror_config;
use crate::report::mirror_config::{MirrorFormat, render_mirror_config};

/// Prints the mirror sets; exit 0, or 1 on an error (nothing printed on stdout then).
pub fn run(settings: &Settings, args: &MirrorConfigArgs) -> Result<i32, CliError> {
    let mut warnings = Vec::new();
    let runtime = crate::ops::runtime()?;
    let config = mirror_config(&settings.load, &runtime, &mut warnings);
    print_warnings(&warnings);
    let format = match args.output {
        MirrorConfigFormat::Yaml => MirrorFormat::Yaml,
        MirrorConfigFormat::Json => MirrorFormat::Json,
    };
    print!("{}", render_mirror_config(&config?, format));
    Ok(0)
}
