//! `relsync`: parses flags, initialises tracing, runs the command, maps errors to exit codes.
//!
//! Exit code 2 means "changes pending" (`plan`, `drift`, `sync --dry-run`), so a usage error
//! (an unknown flag, a missing argument, a bad value) exits 1 like every other error, not
//! clap's 2: a CI job must never read a typo in its own flags as drift. `--help` and
//! `--version` exit 0.
//!
//! Logs go to stderr: relsync's own at warn (`serve`: info, so the syncs it applies are
//! logged), others at warn; `-v` raises relsync's, `RUST_LOG` replaces the filter.

use clap::Parser;
use relsync::cli::{self, Args, CliError};
use relsync::ops::OpsError;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    // SAFETY: first thing in the process, before any thread or git2 call.
    unsafe { relsync::git::tls::init() };
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // Help and version go to stdout and succeed; everything else is a usage error.
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return std::process::ExitCode::from(code);
        }
    };
    // serve is a daemon: its own lines at info by default, so a sync it applied is logged
    // (other crates stay at warn).
    let serve = matches!(args.command, cli::Command::Serve(_));
    let level = match args.verbose {
        0 if !serve => "warn",
        0 | 1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,relsync={level}")));
    tracing_subscriber::fmt()
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    match cli::run(args) {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(CliError::Ops(OpsError::Invalid(diagnostics))) => {
            eprint!("{diagnostics}");
            let errors = diagnostics
                .iter()
                .filter(|d| d.severity == relsync::manifest::Severity::Error)
                .count();
            eprintln!("relsync: {errors} error(s); nothing was written");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            let mut msg = format!("relsync: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{msg}");
            std::process::ExitCode::from(1)
        }
    }
}
