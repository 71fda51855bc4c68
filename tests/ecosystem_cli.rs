//! `relsync completions`, `relsync man` and `relsync schema` need no config and print what
//! the real shells and man parse; typo hints name the nearest known field or name.

use std::path::Path;
use std::process::Command;

use crate::util::{Repo, Run, relsync_in};

/// Runs relsync in an empty directory (no relsync.yaml anywhere near).
fn bare(args: &[&str]) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().unwrap();
    let run = relsync_in(dir.path(), args, &[]);
    (dir, run)
}

/// Runs `program args` (a real shell or man), failing loudly when it is not installed.
fn tool(program: &str, args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} ({e}): install it (apt-get install {program}; .ci/run does)"
            )
        })
}

#[track_caller]
fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn completion_scripts_parse_in_bash_zsh_and_fish_without_a_config() {
    for shell in ["bash", "zsh", "fish"] {
        let (dir, run) = bare(&["completions", shell]);
        run.expect_code(0);
        let script = run.stdout();
        assert!(
            script.contains("promote") && script.contains("rollback"),
            "{shell}: no subcommands in\n{script}"
        );
        let file = dir.path().join(format!("relsync.{shell}"));
        std::fs::write(&file, &script).unwrap();
        let file = file.to_str().unwrap();
        let out = match shell {
            "bash" => tool("bash", &["-n", file], dir.path()),
            "zsh" => tool("zsh", &["-n", file], dir.path()),
            _ => tool("fish", &["--no-execute", file], dir.path()),
        };
        assert_ok(&out, &format!("{shell} parsing the completion script"));
    }

    // The bash script completes for real: `relsync comp<TAB>` offers `completions`, and
    // `relsync completions <TAB>` the three shells.
    let (dir, run) = bare(&["completions", "bash"]);
    let file = dir.path().join("relsync.bash");
    std::fs::write(&file, run.stdout()).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(relsync comp); COMP_CWORD=1; _relsync relsync comp relsync; echo \"${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(relsync completions ''); COMP_CWORD=2; _relsync relsync '' completions; echo \"${{COMPREPLY[*]}}\"",
        file.display()
    );
    let out = tool("bash", &["-c", &probe], dir.path());
    assert_ok(&out, "bash completing");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first().copied(), Some("completions"), "{text}");
    for shell in ["bash", "zsh", "fish"] {
        assert!(
            lines
                .get(1)
                .is_some_and(|l| l.split(' ').any(|w| w == shell)),
            "{text}"
        );
    }

    // An unknown shell is a usage error (exit 1, not clap's 2).
    let (_dir, run) = bare(&["completions", "tcsh"]);
    run.expect_code(1);
}

#[test]
fn the_man_page_renders_with_man_and_groff_and_lists_every_command() {
    let (dir, run) = bare(&["man"]);
    run.expect_code(0);
    let page = run.stdout();
    assert!(
        page.starts_with(".ie") || page.contains(".TH relsync"),
        "{page}"
    );
    let file = dir.path().join("relsync.1");
    std::fs::write(&file, &page).unwrap();
    let file = file.to_str().unwrap();

    // groff with every warning on: the page must render without a single one.
    let out = tool("groff", &["-man", "-Tutf8", "-ww", "-z", file], dir.path());
    assert_ok(&out, "groff");
    assert!(
        out.stderr.is_empty(),
        "groff warned:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tool("man", &["-l", file], dir.path());
    assert_ok(&out, "man -l");
    let text = String::from_utf8_lossy(&out.stdout);
    for command in [
        "validate",
        "plan",
        "drift",
        "sync",
        "promote",
        "check",
        "rollback",
        "serve",
        "schema",
        "completions",
    ] {
        assert!(
            text.contains(&format!("relsync {command}")),
            "no `relsync {command}` section in\n{text}"
        );
    }
    assert!(text.contains("--allow-deletes"), "sync's flags: {text}");
}

#[test]
fn schema_needs_no_config_and_is_one_draft_2020_12_document() {
    let (_dir, run) = bare(&["schema"]);
    run.expect_code(0);
    let schema = run.json();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let kinds = schema["properties"]["kind"]["enum"].as_array().unwrap();
    for k in ["ReleaseStream", "ReleaseChannel", "Policy", "Config"] {
        assert!(kinds.iter().any(|v| v == k), "{kinds:?}");
    }

    // Every other command still needs its config.
    let (_dir, run) = bare(&["validate"]);
    run.expect_code(1);
    assert!(run.stderr().contains("no relsync.yaml"), "{}", run.stderr());
}

#[test]
fn typos_in_fields_and_names_get_the_nearest_known_one() {
    let repo = Repo::example();
    let config = repo.read("relsync.yaml");
    // relsync.yaml: an event name misspelt.
    repo.write(
        "relsync.yaml",
        &config.replace(
            "  cluster:",
            "  notifications:\n    - {url: 'http://127.0.0.1:1/hook', events: [promotd]}\n  cluster:",
        ),
    );
    let run = repo.relsync(&["validate"]);
    run.expect_code(1);
    expect_hint(
        &run.stderr(),
        "unknown event `promotd`",
        "did you mean `promoted`?",
    );
    repo.write("relsync.yaml", &config.replace("  cluster:", "  clustr:"));
    let run = repo.relsync(&["validate"]);
    run.expect_code(1);
    expect_hint(&run.stderr(), "`clustr`", "did you mean `cluster`?");
    repo.write("relsync.yaml", &config);

    // Manifests: a field of this kind misspelt (in two files).
    let stable = repo.read("manifests/channels/4-scos-stable.yaml");
    repo.write(
        "manifests/channels/4-scos-stable.yaml",
        &stable.replace("versions:", "verisons:"),
    );
    repo.write(
        "manifests/channels/extra.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {name: extra}\nspec:\n  stream: 4-scos\n  tags: [extra]\n  tombstone: [y]\n",
    );
    let run = repo.relsync(&["validate"]);
    run.expect_code(1);
    let err = run.stderr();
    expect_hint(&err, "`verisons`", "did you mean `versions`?");
    expect_hint(&err, "`tombstone`", "did you mean `tombstones`?");

    // Names: a stream and a feeder channel misspelt.
    repo.write("manifests/channels/4-scos-stable.yaml", &stable);
    repo.write(
        "manifests/channels/extra.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {name: extra}\nspec:\n  stream: 4-scso\n  versions: [x]\n  feeder: {channel: 4-scos-nxet}\n",
    );
    let run = repo.relsync(&["validate"]);
    run.expect_code(1);
    let err = run.stderr();
    expect_hint(&err, "unknown stream `4-scso`", "did you mean `4-scos`?");
    expect_hint(&err, "`4-scos-nxet`", "did you mean `4-scos-next`?");
}

#[test]
fn a_misspelt_channel_or_stream_on_the_command_line_gets_a_hint() {
    let repo = Repo::example();
    let run = repo.relsync(&["plan", "--channel", "4-scos-stabel"]);
    run.expect_code(1);
    expect_hint(
        &run.stderr(),
        "no such channel",
        "did you mean `4-scos-stable`?",
    );
    let run = repo.relsync(&["promote", "4.15.0", "--to", "4-scos-nxt"]);
    run.expect_code(1);
    expect_hint(
        &run.stderr(),
        "no channel `4-scos-nxt`",
        "did you mean `4-scos-next`?",
    );
    let run = repo.relsync(&["add", "4.99.0", "--stream", "4-sco", "--from", "x"]);
    run.expect_code(1);
    expect_hint(&run.stderr(), "no stream `4-sco`", "did you mean `4-scos`?");
}

/// The line of `stderr` naming `needle` carries `hint`.
#[track_caller]
fn expect_hint(stderr: &str, needle: &str, hint: &str) {
    let line = stderr
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle}:\n{stderr}"));
    assert!(line.contains(hint), "{line}");
}
