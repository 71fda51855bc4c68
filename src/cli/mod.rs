//! The command line, a front end: flags parsed once into [`Settings`], one module per
//! command, each calling the use cases of [`crate::ops`] and printing what they return.
//! No workflow logic lives here.
//!
//! `main.rs` only parses [`Args`], initialises tracing and calls [`run`]; every command
//! returns its exit code or a [`CliError`], which `main` prints and maps to exit code 1.

mod add;
mod check;
mod drift;
mod history;
mod mirror_config;
mod plan;
mod promote;
mod rollback;
mod serve;
mod sync;
mod tools;
mod validate;

pub use tools::Shell;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::ops::{self, OpsError};
use crate::report::{Format, Style};

/// The config file read when `--config` is not given, in the current directory.
const DEFAULT_CONFIG: &str = "relsync.yaml";

/// `relsync [--config FILE] [--revision REV] [-v] COMMAND`
#[derive(Debug, Parser)]
#[command(
    name = "relsync",
    version,
    about = "GitOps reconciler for release manifests"
)]
pub struct Args {
    /// Connection settings (default: ./relsync.yaml, which must then exist).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Git revision to read the desired state from (default: the config's, else HEAD).
    #[arg(long, global = true, value_name = "REV")]
    pub revision: Option<String>,
    /// More logging: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check manifests and policies; no network. Exit 0 valid, 1 invalid.
    Validate,
    /// The actions needed now. Exit 0 in sync, 2 changes pending, 1 error.
    Plan(PlanArgs),
    /// Desired vs live, with a unified diff per target. Exit 0 in sync, 2 drift, 1 error.
    Drift(DriftArgs),
    /// Apply the plan: copy content, then create, move and delete tags. Exit 0 converged,
    /// 1 error (a failed action, a conflict, a refused plan).
    Sync(SyncArgs),
    /// Resolve REF (a tag or digest in the stream's source) and add the release to the stream
    /// file in the working tree. Exit 0 done, 1 refused.
    Add(AddArgs),
    /// Add VERSION to the channel's `versions` in the working tree, keeping comments and
    /// layout; refused when the feeder rule or a policy would fail. Exit 0 done, 1 refused.
    Promote(PromoteArgs),
    /// The PR gate: validate the head and judge it with the base's policies (feeder delay
    /// from the base's first-parent history, channelSubsets, immutableTags, allowedSources,
    /// maxDeletesPerSync, signatures); print the change base → head and, apart, live drift. Exit 0 pass,
    /// 1 fail (policy files needing review and live drift never fail it).
    Check(CheckArgs),
    /// Sync to the desired state of an earlier revision (judged by the branch tip's
    /// policies) and hold it until the branch tip moves. Exit 0 done, 1 error.
    Rollback(RollbackArgs),
    /// Revisions synced, when, by whose commit, and the outcome; newest first. Exit 0.
    History(HistoryArgs),
    /// The controller: sync continuously (poll and webhooks), serve health, metrics, the
    /// status API and page. Runs until SIGTERM.
    Serve(ServeArgs),
    /// Print the JSON Schema (draft 2020-12) of every relsync document and of relsync.yaml,
    /// for editors (`# yaml-language-server: $schema=…`). Needs no config. Exit 0.
    Schema,
    /// Print a shell completion script for bash, zsh or fish. Needs no config. Exit 0.
    Completions(CompletionsArgs),
    /// Print the man page (roff) of relsync and every command. Needs no config. Exit 0.
    Man,
    /// The ImageDigestMirrorSet and ImageTagMirrorSet (config.openshift.io/v1) that make a
    /// cluster pull the releases and their payload components from the targets, and the
    /// install-config `imageDigestSources` stanza; for disconnected installs. Exit 0, 1 error.
    MirrorConfig(MirrorConfigArgs),
}

/// Flags of `completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Flags of `mirror-config`.
#[derive(Debug, clap::Args)]
pub struct MirrorConfigArgs {
    /// Output format (`yaml`: documents for `oc apply -f`; `json`: one object for scripts).
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: MirrorConfigFormat,
}

/// Output format of `mirror-config`.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum MirrorConfigFormat {
    /// The mirror sets as YAML documents (`oc apply -f`), the install-config stanza as comments.
    #[default]
    Yaml,
    /// `{"revision", "imageDigestMirrorSet", "imageTagMirrorSet", "imageDigestSources"}`.
    Json,
}

/// Flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on for health, metrics, status and webhooks.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
}

/// Flags of `rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The revision whose desired state to go back to (a sha, tag or branch).
    #[arg(long, value_name = "REV")]
    pub to_revision: String,
    /// Only the tags this channel claims (shared ones included); the hold is this channel's.
    #[arg(long, value_name = "N")]
    pub channel: Option<String>,
}

/// Flags of `history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Output format (`json`: the stored state, `{"history": [...], "holds": [...]}`).
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Flags of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The base revision (the branch the pull request merges into): its policies judge.
    #[arg(long, value_name = "REV")]
    pub base: String,
    /// The head revision (the pull request), committed content only; default HEAD.
    #[arg(long, value_name = "REV")]
    pub head: Option<String>,
    /// Output format (`markdown`: the pull-request comment).
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Do not contact any registry (no live drift).
    #[arg(long)]
    pub offline: bool,
}

/// Flags of `add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The new release's version.
    #[arg(value_name = "VERSION")]
    pub version: String,
    /// The stream to add it to.
    #[arg(long, value_name = "S")]
    pub stream: String,
    /// A tag or a digest (`sha256:…`) in the stream's source repository.
    #[arg(long, value_name = "REF")]
    pub from: String,
}

/// Flags of `promote`.
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The version to promote (a release of the channel's stream).
    #[arg(value_name = "VERSION")]
    pub version: String,
    /// The channel to add it to.
    #[arg(long, value_name = "CHANNEL")]
    pub to: String,
    /// Commit the edit on a new branch `promote/<channel>/<version>` and switch to it.
    #[arg(long)]
    pub commit: bool,
}

/// Output format flag.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum OutputFormat {
    /// Aligned table (colour on a terminal).
    #[default]
    Text,
    /// The stable JSON contract.
    Json,
    /// A table for a pull-request comment.
    Markdown,
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Format {
        match f {
            OutputFormat::Text => Format::Text,
            OutputFormat::Json => Format::Json,
            OutputFormat::Markdown => Format::Markdown,
        }
    }
}

/// Flags of `plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Only the tags this channel claims (shared ones included).
    #[arg(long, value_name = "N")]
    pub channel: Option<String>,
    /// Plan deletes of tags nobody claims (default: the config's sync.prune).
    #[arg(long)]
    pub prune: bool,
    /// Accept up to N deletes whatever maxDeletesPerSync says.
    #[arg(long, value_name = "N")]
    pub allow_deletes: Option<u32>,
}

/// Flags of `drift`.
#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Only the tags this channel claims (shared ones included).
    #[arg(long, value_name = "N")]
    pub channel: Option<String>,
    /// Count extra tags as drift (default: the config's sync.prune).
    #[arg(long)]
    pub prune: bool,
}

/// Flags of `sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Print the plan and write nothing (exit codes as `plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// Delete tags nobody claims (default: the config's sync.prune).
    #[arg(long)]
    pub prune: bool,
    /// Accept up to N deletes whatever maxDeletesPerSync says.
    #[arg(long, value_name = "N")]
    pub allow_deletes: Option<u32>,
    /// Only the tags this channel claims (shared ones included).
    #[arg(long, value_name = "N")]
    pub channel: Option<String>,
}

/// Settings every command shares, checked once from the raw flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What to load: the config file, if one is used, and `--revision`, when given.
    pub load: ops::Settings,
    /// How text output looks.
    pub style: Style,
}

impl Settings {
    /// Checks the raw flags: an explicit `--config` must exist; without it `./relsync.yaml`
    /// must (every command reads its settings; none runs on silent defaults). Colour is on only when stdout is a terminal and
    /// `NO_COLOR` is unset.
    pub fn from_args(args: &Args) -> Result<Settings, CliError> {
        let config = match &args.config {
            Some(p) if !p.is_file() => {
                return Err(CliError::Usage(format!(
                    "config file {} not found",
                    p.display()
                )));
            }
            Some(p) => Some(p.clone()),
            None if Path::new(DEFAULT_CONFIG).is_file() => Some(PathBuf::from(DEFAULT_CONFIG)),
            // Without one, a pipeline run in the wrong directory would read an unrelated
            // repository with the defaults and pass ("in sync", "0 streams").
            None => {
                let here = std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|_| ".".to_string());
                return Err(CliError::Usage(format!(
                    "no {DEFAULT_CONFIG} in {here} and no --config FILE: run relsync where its {DEFAULT_CONFIG} is, or name the file with --config"
                )));
            }
        };
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Ok(Settings {
            load: ops::Settings {
                config,
                revision: args.revision.clone(),
            },
            style: Style { color },
        })
    }
}

/// Why a command failed (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The use case failed (invalid manifests are printed one problem per line).
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// A flag or file that does not fit.
    #[error("{0}")]
    Usage(String),
}

/// Runs the command and returns its exit code.
pub fn run(args: Args) -> Result<i32, CliError> {
    // These describe relsync itself: no config, no repository.
    match &args.command {
        Command::Schema => return tools::schema(),
        Command::Completions(a) => return tools::completions(a.shell),
        Command::Man => return tools::man(),
        _ => {}
    }
    let settings = Settings::from_args(&args)?;
    match args.command {
        Command::Validate => validate::run(&settings),
        Command::Plan(a) => plan::run(&settings, &a),
        Command::Drift(a) => drift::run(&settings, &a),
        Command::Sync(a) => sync::run(&settings, &a),
        Command::Add(a) => add::run(&settings, &a),
        Command::Promote(a) => promote::run(&settings, &a),
        Command::Check(a) => check::run(&settings, &a),
        Command::Rollback(a) => rollback::run(&settings, &a),
        Command::History(a) => history::run(&settings, &a),
        Command::Serve(a) => serve::run(&settings, &a),
        Command::Schema | Command::Completions(_) | Command::Man => unreachable!("handled above"),
        Command::MirrorConfig(a) => mirror_config::run(&settings, &a),
    }
}

/// Prints lines a use case returned (warnings, problems) on stderr, one each.
fn print_warnings(lines: &[String]) {
    for line in lines {
        eprintln!("{line}");
    }
}

/// `1 stream`, `2 streams`: a count with its noun, singular for one.
fn counted(n: impl TryInto<u64>, one: &str, many: &str) -> String {
    let n: u64 = n.try_into().unwrap_or(u64::MAX);
    format!("{n} {}", if n == 1 { one } else { many })
}
