//! How manifest files are read, end to end through the `relsync` binary (issue 19): the
//! total budget of a revision and of the working tree, with the peak memory of a refused
//! run measured; `*.YAML`/`*.YML` read like `*.yaml`; a release pinned by `sha512:` refused
//! at validation rather than accepted and checked against something else.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::Repo;

const CONFIG: &str =
    "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  sync: {prune: false}\n";

/// A generous bound on the peak RSS of a refused run: it reads no manifest. Before the fix
/// the run below took 4.6 GB (`check`) and 1.6 GB (`plan`).
const REFUSED_PEAK_KB: u64 = 256 * 1024;

/// `relsync args` in `dir` with `env`: its exit code, stderr and peak resident set size in
/// KiB, from `/usr/bin/time` (the kernel's own account of a waited-for child) when it is
/// installed, else from the child's `VmHWM` polled in `/proc` until it exits.
fn relsync_measured(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, u64) {
    let time = Path::new("/usr/bin/time");
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(out_file.path())
            .arg(env!("CARGO_BIN_EXE_relsync"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_relsync"))
    };
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG")
        .env_remove("RELSYNC_MAX_MANIFEST_BYTES")
        .env_remove("RELSYNC_MAX_MANIFEST_FILES")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut polled_kb = 0;
    if !time.exists() {
        let status = format!("/proc/{}/status", child.id());
        while child.try_wait().unwrap().is_none() {
            let hwm = std::fs::read_to_string(&status).ok().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            });
            polled_kb = polled_kb.max(hwm.unwrap_or(0));
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let peak_kb = if time.exists() {
        let text = std::fs::read_to_string(out_file.path()).unwrap();
        text.lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .next_back()
            .unwrap_or_else(|| panic!("/usr/bin/time wrote no peak RSS: {text:?}"))
    } else {
        assert!(polled_kb > 0, "no VmHWM was read from /proc");
        polled_kb
    };
    let code = out.status.code().expect("killed by a signal");
    (code, stderr, peak_kb)
}

/// Every path below `dir` outside `.git`, with its size and modification time.
fn tree_state(dir: &Path) -> BTreeMap<String, (u64, std::time::SystemTime)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, std::time::SystemTime)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            out.insert(rel, (meta.len(), meta.modified().unwrap()));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Writes `bytes` into the repository's object database and returns the blob's id.
fn write_blob(repo: &Repo, bytes: &[u8]) -> String {
    let mut child = repo
        .git_command(&["hash-object", "-w", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_tiny_commit_naming_one_big_blob_many_times_is_refused_before_it_is_read() {
    let repo = Repo::new();
    repo.write("relsync.yaml", CONFIG);
    repo.write("manifests/empty.yaml", "# nothing yet\n");
    repo.commit("base");

    // One 15 MiB blob of YAML comments (a valid, empty manifest, under the 16 MiB limit for
    // one file) named by 100 tree entries: 1.5 GB of manifests in a commit of a few
    // hundred kilobytes.
    let line = "# padding padding padding padding padding padding padding padding padding\n";
    let blob = line.repeat(15 * 1024 * 1024 / line.len());
    let id = write_blob(&repo, blob.as_bytes());
    let mut index_info = String::new();
    for i in 0..100 {
        index_info += &format!("100644 {id}\tmanifests/big/{i:03}.yaml\n");
    }
    let mut child = repo
        .git_command(&["update-index", "--index-info"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(index_info.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    repo.git(&["commit", "-q", "-m", "one blob, 100 names"]);
    let head = repo.git(&["rev-parse", "HEAD"]);
    // The whole commit is small: the blob compresses to kilobytes.
    let objects = repo.git(&["count-objects", "-v"]);
    let loose_kib: u64 = objects
        .lines()
        .find_map(|l| l.strip_prefix("size: "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{objects}"));
    assert!(loose_kib < 2048, "{objects}");

    let before = tree_state(repo.path());
    let status_before = repo.git(&["status", "--porcelain"]);
    for args in [vec!["plan"], vec!["check", "--base", "HEAD~1", "--offline"]] {
        let (code, stderr, peak_kb) = relsync_measured(repo.path(), &args, &[]);
        assert_eq!(code, 1, "relsync {args:?}: {stderr}");
        // The revision (and its commit), the first path past the budget, the budget and the
        // knob that raises it. Files are listed in path order: 004.yaml is the fifth 15 MiB
        // file, the first past 64 MiB.
        let expected = format!(
            "revision `HEAD` ({}): the manifests are over their budget of 67108864 bytes at manifests/big/004.yaml (5 files of 78643130 bytes so far), refused before any is read; raise it with RELSYNC_MAX_MANIFEST_BYTES",
            &head[..12]
        );
        assert!(
            stderr.contains(&expected),
            "relsync {args:?}:\n{stderr}\nexpected: {expected}"
        );
        assert!(
            peak_kb < REFUSED_PEAK_KB,
            "relsync {args:?} peaked at {peak_kb} KiB"
        );
        // Nothing was written: no state file, no change to the working tree.
        assert_eq!(tree_state(repo.path()), before, "relsync {args:?}");
        assert!(!repo.path().join(".relsync").exists());
        assert_eq!(repo.git(&["status", "--porcelain"]), status_before);
    }
}

#[test]
fn the_working_tree_has_the_same_budget_and_the_environment_sets_it() {
    let repo = Repo::new();
    repo.write("relsync.yaml", CONFIG);
    repo.write("manifests/a.yaml", "# a\n");
    repo.write("manifests/b.yaml", "# b\n");
    // Five sparse 15 MiB files: 75 MiB by their size, none of it on disk or read.
    for i in 0..5 {
        let f =
            std::fs::File::create(repo.path().join(format!("manifests/sparse{i}.yaml"))).unwrap();
        f.set_len(15 * 1024 * 1024).unwrap();
    }
    let (code, stderr, peak_kb) = relsync_measured(repo.path(), &["validate"], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "the working tree: the manifests are over their budget of 67108864 bytes at manifests/sparse4.yaml"
        ),
        "{stderr}"
    );
    assert!(
        peak_kb < REFUSED_PEAK_KB,
        "validate peaked at {peak_kb} KiB"
    );

    // Raised, the same files are read (and then refused for what they hold).
    let raised = [("RELSYNC_MAX_MANIFEST_BYTES", "100000000")];
    let (code, stderr, _) = relsync_measured(repo.path(), &["validate"], &raised);
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("budget"), "{stderr}");
    assert!(stderr.contains("manifests/sparse0.yaml"), "{stderr}");

    // A file budget, and a setting that is not a number.
    for i in 0..5 {
        std::fs::remove_file(repo.path().join(format!("manifests/sparse{i}.yaml"))).unwrap();
    }
    let (code, stderr, _) = relsync_measured(repo.path(), &["validate"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let one = [("RELSYNC_MAX_MANIFEST_FILES", "1")];
    let (code, stderr, _) = relsync_measured(repo.path(), &["validate"], &one);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("over their budget of 1 files at manifests/b.yaml")
            && stderr.contains("raise it with RELSYNC_MAX_MANIFEST_FILES"),
        "{stderr}"
    );
    let bad = [("RELSYNC_MAX_MANIFEST_BYTES", "64MiB")];
    let (code, stderr, _) = relsync_measured(repo.path(), &["validate"], &bad);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("RELSYNC_MAX_MANIFEST_BYTES=\"64MiB\" is not a positive whole number"),
        "{stderr}"
    );
}

#[test]
fn upper_case_yaml_extensions_are_read_not_skipped_by_validate_and_plan() {
    let repo = Repo::new();
    repo.write("relsync.yaml", CONFIG);
    let bad = |name: &str| {
        format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: {name}}}\nspec:\n  stream: s\n  colour: red\n"
        )
    };
    repo.write("manifests/UPPER.YAML", &bad("upper"));
    repo.write("manifests/Short.Yml", &bad("short"));
    repo.write("manifests/notes.YAML.txt", &bad("not-read"));
    let check = |stderr: &str, command: &str| {
        for name in ["manifests/UPPER.YAML:6:3:", "manifests/Short.Yml:6:3:"] {
            assert!(stderr.contains(name), "{command}: {name} not in\n{stderr}");
        }
        assert!(!stderr.contains("notes.YAML.txt"), "{command}: {stderr}");
    };
    let run = repo.relsync(&["validate"]);
    run.expect_code(1);
    check(&run.stderr(), "validate");
    repo.commit("upper-case extensions");
    let run = repo.relsync(&["plan"]);
    run.expect_code(1);
    check(&run.stderr(), "plan");
}

#[test]
fn a_release_pinned_by_sha512_is_refused_at_validation_naming_the_field() {
    let repo = Repo::new();
    repo.write("relsync.yaml", CONFIG);
    let sha256 = format!("sha256:{}", "1".repeat(64));
    let sha512 = format!("sha512:{}", "2".repeat(128));
    let stream = |second: &str| {
        format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: s}}\nspec:\n  source: r.example/a\n  target: q.example/a\n  releases:\n    - version: 1.0.0\n      digest: {sha256}\n    - version: 1.1.0\n      digest: {second}\n"
        )
    };
    // The same stream with a sha256 pin is valid, so the refusal is the algorithm's.
    repo.write(
        "manifests/s.yaml",
        &stream(&format!("sha256:{}", "3".repeat(64))),
    );
    repo.relsync(&["validate"]).expect_code(0);

    repo.write("manifests/s.yaml", &stream(&sha512));
    let run = repo.relsync(&["validate"]);
    run.expect_code(1);
    let expected = format!("manifests/s.yaml:11:15: release `digest` `{sha512}` is not sha256");
    assert!(run.stderr().contains(&expected), "{}", run.stderr());
    repo.commit("sha512");
    let run = repo.relsync(&["plan"]);
    run.expect_code(1);
    assert!(run.stderr().contains(&expected), "{}", run.stderr());
}
