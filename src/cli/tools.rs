//! `relsync completions SHELL`, `relsync man` and `relsync schema`: generated from the
//! command line's own definition and the parser's types; they read no config.

use std::io::Write as _;

use clap::CommandFactory as _;

use super::{Args, CliError};

/// The shells `completions` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    /// GNU bash (source it, or drop it in bash-completion's completions directory).
    Bash,
    /// zsh (save it as `_relsync` in a directory of `$fpath`).
    Zsh,
    /// fish (save it as `~/.config/fish/completions/relsync.fish`).
    Fish,
}

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: Shell) -> Result<i32, CliError> {
    let mut cmd = Args::command();
    let mut out = std::io::stdout().lock();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "relsync", &mut out);
    out.flush().map_err(write_error)?;
    Ok(0)
}

/// Prints the man page (roff, section 1) on stdout: the command, its global flags and every
/// subcommand with its flags.
pub fn man() -> Result<i32, CliError> {
    let cmd = Args::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .map_err(write_error)?;
    page.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        // One subsection per command, `relsync plan`: its synopsis, what it does, its flags.
        let title = format!("relsync {}", sub.get_name());
        let man = clap_mangen::Man::new(sub.clone().name(title.clone()));
        let mut synopsis = Vec::new();
        man.render_synopsis_section(&mut synopsis)
            .map_err(write_error)?;
        let mut description = Vec::new();
        man.render_description_section(&mut description)
            .map_err(write_error)?;
        let mut options = Vec::new();
        man.render_options_section(&mut options)
            .map_err(write_error)?;
        page.extend_from_slice(format!(".SS \"{title}\"\n").as_bytes());
        for (part, heading) in [
            (synopsis, None),
            (description, Some(".PP\n")),
            (options, Some(".PP\nOptions:\n")),
        ] {
            let text = String::from_utf8_lossy(&part);
            let mut body: String = text
                .lines()
                .filter(|l| {
                    !l.starts_with(".SH ") && !l.starts_with(".ie ") && !l.starts_with(".el ")
                })
                .map(|l| format!("{l}\n"))
                .collect();
            if body.trim().is_empty() {
                continue;
            }
            if let Some(h) = heading {
                body.insert_str(0, h);
            }
            page.extend_from_slice(body.as_bytes());
        }
    }
    // roff is ASCII: every other character as its `\[uXXXX]` escape (the help texts have
    // arrows and ellipses), so groff renders the page without preconv.
    let page: String = String::from_utf8_lossy(&page)
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                format!("\\[u{:04X}]", u32::from(c))
            }
        })
        .collect();
    let mut out = std::io::stdout().lock();
    out.write_all(page.as_bytes()).map_err(write_error)?;
    out.flush().map_err(write_error)?;
    Ok(0)
}

/// Prints the JSON Schema of every relsync document and of `relsync.yaml`.
pub fn schema() -> Result<i32, CliError> {
    let text = serde_json::to_string_pretty(&crate::schema::schema())
        .map_err(|e| CliError::Usage(format!("cannot render the schema: {e}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(write_error)?;
    out.flush().map_err(write_error)?;
    Ok(0)
}

fn write_error(e: std::io::Error) -> CliError {
    CliError::Usage(format!("cannot write to stdout: {e}"))
}
