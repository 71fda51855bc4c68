//! What a newcomer meets first (issue 16): every command the README shows works, offline
//! and as written, on a copy of the bundled example; the README's sample output is what the
//! example prints; and `.ci/run` ends with its count line whether the tests passed or not.
//!
//! The commands are read from README.md itself (its `sh` blocks and the inline `relsync add`
//! and "start over" commands), so the README cannot drift from what works.

use std::path::Path;
use std::process::Command;

use crate::util::{Repo, Run, project};

const INDEX: &str = "example/quay.io/okd/scos-release/index.json";

fn readme() -> String {
    std::fs::read_to_string(project().join("README.md")).expect("README.md")
}

/// The lines of the README's ```sh blocks, comments removed.
fn sh_lines(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in readme.lines() {
        match line.trim() {
            "```sh" => inside = true,
            "```" => inside = false,
            l if inside => {
                let l = l.split(" #").next().unwrap_or("").trim();
                if !l.is_empty() && !l.starts_with('#') {
                    out.push(l.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// Each `cargo run -q -- ARGS` of one README line (split at `&&`), as relsync's arguments.
fn relsync_commands(line: &str) -> Vec<Vec<String>> {
    line.split("&&")
        .filter_map(|c| c.trim().strip_prefix("cargo run -q -- "))
        .map(|args| args.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The first inline code span of the README that starts with `prefix` and is an example,
/// not a synopsis (no `VERSION` placeholder).
fn code_span<'a>(readme: &'a str, prefix: &str) -> &'a str {
    readme
        .split('`')
        .skip(1)
        .step_by(2)
        .find(|s| s.starts_with(prefix) && !s.contains("VERSION"))
        .unwrap_or_else(|| panic!("the README shows `{prefix}…`"))
}

/// A clone's worth of the example: manifests, policies, layouts, relsync.yaml and the
/// project's .gitignore, committed long ago (as in a clone of the project, whose history
/// is older than the example's feeder delay).
fn clone_of_the_example() -> Repo {
    let repo = Repo::new();
    repo.copy_example();
    std::fs::copy(project().join(".gitignore"), repo.path().join(".gitignore")).unwrap();
    repo.commit_dated("the bundled example", "2020-01-01T00:00:00Z");
    repo
}

fn run_args(repo: &Repo, args: &[String]) -> Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    repo.relsync(&args)
}

fn sh(dir: &Path, script: &str) -> std::process::Output {
    Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("sh")
}

/// The README's first command (`sync && drift`), then its "Try also" list, as written: on
/// the example as shipped each exits as its comment says, and after the sync all are in
/// sync. `sync --dry-run` writes nothing.
#[test]
fn every_command_the_readme_shows_works_on_the_bundled_example() {
    let readme = readme();
    let lines = sh_lines(&readme);
    let commands: Vec<Vec<Vec<String>>> = lines
        .iter()
        .map(|l| relsync_commands(l))
        .filter(|c| !c.is_empty())
        .collect();
    assert!(
        commands.len() >= 7,
        "the README's `cargo run -q --` lines: {lines:#?}"
    );
    let first = &commands[0];
    assert_eq!(
        first,
        &[vec!["sync".to_string()], vec!["drift".to_string()]],
        "the README's first command is `sync && drift`"
    );
    let try_also: Vec<&Vec<String>> = commands[1..].iter().flatten().collect();

    // As shipped, part-way through a promotion: validate passes, the rest report changes.
    let fresh = clone_of_the_example();
    let shipped = fresh.read(INDEX);
    for args in &try_also {
        let run = run_args(&fresh, args);
        let want = if args[0] == "validate" { 0 } else { 2 };
        assert_eq!(
            run.code(),
            want,
            "relsync {args:?} on the example as shipped\n{}{}",
            run.stdout(),
            run.stderr()
        );
        assert!(!run.stdout().is_empty(), "relsync {args:?} printed nothing");
    }
    assert_eq!(
        fresh.read(INDEX),
        shipped,
        "only sync writes; --dry-run did"
    );

    // The first command, then the list again: everything in sync.
    let repo = clone_of_the_example();
    for args in first {
        run_args(&repo, args).expect_code(0);
    }
    let synced = repo.read(INDEX);
    for args in &try_also {
        let run = run_args(&repo, args);
        assert_eq!(
            run.code(),
            0,
            "relsync {args:?} after the README's sync\n{}{}",
            run.stdout(),
            run.stderr()
        );
    }
    assert_eq!(repo.read(INDEX), synced);
    let drift = repo.relsync(&["drift"]);
    assert!(
        drift.stdout().starts_with("in sync: "),
        "{}",
        drift.stdout()
    );
    assert!(
        !drift.stdout().contains("+++ live"),
        "in sync, yet a diff: {}",
        drift.stdout()
    );
    assert!(
        drift.stdout().contains("\nnot pruned (") && drift.stdout().contains(" latest "),
        "the README: drift lists `latest` apart: {}",
        drift.stdout()
    );
}

/// The README's sample `plan` output is what the example as shipped prints (revision aside).
#[test]
fn the_readmes_plan_output_is_what_the_example_prints() {
    let readme = readme();
    let sample = readme
        .split("```\n$ cargo run -q -- plan\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the README shows `$ cargo run -q -- plan` and its output");
    let repo = clone_of_the_example();
    let run = repo.relsync(&["plan"]);
    run.expect_code(2);
    let head = repo.git(&["rev-parse", "HEAD"]);
    let printed = run.stdout().replace(&head[..12], "<revision>");
    let revision = regex::Regex::new(r"\(revision [0-9a-f]{12}\)").unwrap();
    let sample = revision.replace(sample, "(revision <revision>)");
    assert_eq!(printed.trim_end(), sample.trim_end());
}

/// The README's `add` example adds the nightly the example's source holds and prints what
/// the README says; its `promote` example prints what the README says too.
#[test]
fn the_readmes_add_and_promote_examples_work_as_written() {
    let readme = readme();
    let add = code_span(&readme, "relsync add ");
    let repo = clone_of_the_example();
    let args: Vec<&str> = add.split_whitespace().skip(1).collect();
    let run = repo.relsync(&args);
    run.expect_code(0);
    // `added … to stream 4-scos (…:22): sha256:… from …`: every piece, in order.
    let printed = code_span(&readme, "added ");
    let mut rest = run.stdout();
    for piece in printed.split('…') {
        let at = rest
            .find(piece)
            .unwrap_or_else(|| panic!("{piece:?} in {rest:?} (README: {printed})"));
        rest = rest[at + piece.len()..].to_string();
    }
    assert!(
        run.stdout()
            .starts_with("added 4.17.0-0.okd-scos-2024-12-01-000000 to stream 4-scos "),
        "{}",
        run.stdout()
    );
    repo.relsync(&["validate"]).expect_code(0);
    // Run again: the stream has it, with that digest: nothing to do.
    let stream = repo.read("manifests/streams/4-scos.yaml");
    repo.relsync(&args).expect_code(0);
    assert_eq!(repo.read("manifests/streams/4-scos.yaml"), stream);

    let promoted = code_span(&readme, "promoted ");
    let (version, channel) = promoted
        .strip_prefix("promoted ")
        .and_then(|r| r.split_once(" to "))
        .map(|(v, r)| (v, r.split(' ').next().unwrap_or("")))
        .expect("`promoted VERSION to CHANNEL (…)`");
    let run = repo.relsync(&["promote", version, "--to", channel]);
    run.expect_code(0);
    assert_eq!(run.stdout(), format!("{promoted}\n"));
}

/// The README's "start over" leaves nothing behind: the target layout, the history file
/// and the edited manifests are as shipped.
#[test]
fn the_readmes_start_over_restores_the_example_and_drops_the_history() {
    let readme = readme();
    let start_over = code_span(&readme, "git checkout -- example/");
    let repo = clone_of_the_example();
    repo.relsync(&["sync"]).expect_code(0);
    assert!(repo.path().join(".relsync/state.json").is_file());
    let add = code_span(&readme, "relsync add ");
    let args: Vec<&str> = add.split_whitespace().skip(1).collect();
    repo.relsync(&args).expect_code(0);
    assert_ne!(repo.git(&["status", "--porcelain"]), "");

    let out = sh(repo.path(), start_over);
    assert!(
        out.status.success(),
        "{start_over}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        repo.git(&["status", "--porcelain", "--ignored"]),
        "",
        "after `{start_over}`"
    );
    assert!(!repo.path().join(".relsync").exists());
    repo.relsync(&["plan"]).expect_code(2);
}

/// `python3 example/generate.py`, which the README names, reproduces the shipped layouts
/// byte for byte, the `add` example's nightly included.
#[test]
fn example_generate_py_reproduces_the_shipped_layouts() {
    let repo = clone_of_the_example();
    let generator = repo.path().join("example/generate.py");
    let out = Command::new("python3")
        .arg(&generator)
        .current_dir(repo.path())
        .output()
        .expect("python3 must be installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("4.17.0-0.okd-scos-2024-12-01-000000 sha256:"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

// ---------------------------------------------------------------------------------------------
// .ci/run

/// The test-run lines of `.ci/run`: from the comment that introduces the README's test
/// command to the script's `exit`.
fn ci_test_run_lines() -> String {
    let script = std::fs::read_to_string(project().join(".ci/run")).expect(".ci/run");
    let start = script
        .find("# The README's test command")
        .expect(".ci/run introduces its test run");
    let tail = &script[start..];
    let end = tail
        .find("\nexit \"$status\"")
        .map(|i| i + "\nexit \"$status\"".len())
        .expect(".ci/run exits with the test run's status");
    tail[..end].to_string()
}

/// Issue 16: with `set -euo pipefail`, a failing `cargo test | tee` ended `.ci/run` before
/// its count line. The count is printed in every case, then the run's status is the
/// script's. Run on a real (tiny) crate with one test that fails on demand.
#[test]
fn ci_run_prints_its_count_whether_tests_pass_or_fail_and_exits_with_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("probe");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"ci-count-probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        krate.join("src/lib.rs"),
        "#[test]\nfn passes() {}\n#[test]\nfn passes_too() {}\n#[test]\nfn fails_on_demand() {\n    assert!(std::env::var_os(\"PROBE_FAIL\").is_none(), \"asked to fail\");\n}\n",
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let cargo_dir = Path::new(&cargo)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = format!(
        "{}:{}",
        cargo_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!("set -euo pipefail\n{}\n", ci_test_run_lines());
    let run = |fail: bool| {
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &script])
            .current_dir(&krate)
            .env("PATH", &path)
            .env("CARGO_TARGET_DIR", dir.path().join("target"))
            .env("CARGO_NET_OFFLINE", "true");
        if fail {
            cmd.env("PROBE_FAIL", "1");
        } else {
            cmd.env_remove("PROBE_FAIL");
        }
        cmd.output().expect("bash")
    };
    let lock = Command::new(&cargo)
        .args(["generate-lockfile", "--offline"])
        .current_dir(&krate)
        .output()
        .expect("cargo");
    assert!(
        lock.status.success(),
        "{}",
        String::from_utf8_lossy(&lock.stderr)
    );

    let failed = run(true);
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("ci: 2 passed, 1 failed"),
        "the count closes a failed run:\n{stdout}\n{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    assert_eq!(failed.status.code(), Some(101), "cargo test's own status");

    let passed = run(false);
    let stdout = String::from_utf8_lossy(&passed.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("ci: 3 passed, 0 failed"),
        "{stdout}"
    );
    assert_eq!(passed.status.code(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// A clone is self-contained

/// Every relative link of the README and of docs/ names a file of the repository: a reader
/// of the repository alone can open each.
#[test]
fn the_docs_link_only_to_files_inside_the_repository() {
    let root = project().canonicalize().unwrap();
    let mut docs = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut checked = 0;
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for m in link.captures_iter(&text) {
            let target = m[1].split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let path = doc.parent().unwrap().join(target);
            let resolved = path
                .canonicalize()
                .unwrap_or_else(|e| panic!("{}: link {target}: {e}", doc.display()));
            assert!(
                resolved.starts_with(&root),
                "{}: link {target} leaves the repository",
                doc.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "the README links docs/reference.md and more");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("](docs/reference.md)"),
        "the README links the reference"
    );
}

/// No test, benchmark, source file or doc reads the project's surroundings (a clone has
/// nothing beside it): no path climbs out of the repository to a sibling directory.
#[test]
fn nothing_reaches_outside_the_repository() {
    // Built from pieces so that this file does not match itself.
    let needles = [concat!("..", "/shared"), concat!("..", "/data/")];
    let mut offenders = Vec::new();
    let mut scanned = 0;
    let mut stack = vec![
        project().join("tests"),
        project().join("benches"),
        project().join("src"),
        project().join("docs"),
        project().join("example"),
    ];
    let mut files = vec![project().join("README.md"), project().join(".ci/run")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // Layout blobs are binary content, not paths.
                if !path.ends_with("blobs") {
                    stack.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        scanned += 1;
        for needle in needles {
            if text.contains(needle) {
                offenders.push(format!("{} contains {needle}", file.display()));
            }
        }
    }
    assert!(scanned > 50, "scanned {scanned} files");
    assert!(offenders.is_empty(), "{offenders:#?}");
}
