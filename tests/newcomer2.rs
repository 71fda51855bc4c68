//! What a newcomer hits (issue 16), the rest: no relsync.yaml, a directory that is not a
//! Git repository, an empty repository, a mistyped `git.path`; a web server that is not a
//! registry; `promote --commit` right after a plain `promote`; the words (plurals, the
//! commit subject in `history`, a rollback hold named by `plan`, `serve` logging the sync
//! it applied); and `plan` against an absent target repository sending no HEAD. Each checks
//! the exit code, the message, and that nothing was written.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relsync::registry::{Registries, RegistryError, TargetReader};

use crate::util::{Repo, TestRegistry, block_on, free_port, relsync_in};

const R3: &str = "4.15.0-0.okd-scos-2024-01-18-223523";
const R4: &str = "4.16.0-0.okd-scos-2024-09-24-151747";
const STABLE: &str = "manifests/channels/4-scos-stable.yaml";
const PAST: &str = "2020-01-01T00:00:00Z";

/// Every file below `dir` (relative paths, sorted), `.git` skipped.
fn files_in(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_name() == ".git" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            } else {
                out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Every command that reads a config, with its arguments.
const CONFIGURED: &[&[&str]] = &[
    &["validate"],
    &["plan"],
    &["drift"],
    &["sync"],
    &["sync", "--dry-run"],
    &["add", "1.0.0", "--stream", "s", "--from", "t"],
    &["promote", "1.0.0", "--to", "c"],
    &["check", "--base", "HEAD"],
    &["rollback", "--to-revision", "HEAD"],
    &["history"],
    &["serve", "--listen", "127.0.0.1:1"],
];

#[test]
fn without_relsync_yaml_or_config_every_command_says_so_and_exits_1() {
    // A directory that is not a repository, and an unrelated repository with manifests of
    // its own: neither passes silently.
    let plain = tempfile::tempdir().unwrap();
    let unrelated = Repo::new();
    unrelated.write("manifests/readme.yaml", "just: yaml\n");
    unrelated.commit("unrelated");
    for dir in [plain.path(), unrelated.path()] {
        let before = files_in(dir);
        for args in CONFIGURED {
            let run = relsync_in(dir, args, &[]);
            run.expect_code(1);
            let err = run.stderr();
            assert!(
                err.contains("no relsync.yaml in") && err.contains("--config"),
                "relsync {args:?}: {err}"
            );
            assert_eq!(run.stdout(), "", "relsync {args:?} printed a result");
        }
        assert_eq!(files_in(dir), before, "something was written in {dir:?}");
    }
    // Help and version need no config.
    relsync_in(plain.path(), &["--help"], &[]).expect_code(0);
    relsync_in(plain.path(), &["plan", "--help"], &[]).expect_code(0);
    relsync_in(plain.path(), &["--version"], &[]).expect_code(0);
    // --config names one elsewhere: the bundled example, read from another directory.
    let example = Repo::example();
    let config = example.path().join("relsync.yaml");
    relsync_in(
        plain.path(),
        &["--config", config.to_str().unwrap(), "validate"],
        &[],
    )
    .expect_code(0);
}

#[test]
fn a_git_repo_that_is_not_a_repository_names_git_repo_and_relsync_yaml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("relsync.yaml"),
        "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  git: {repo: ., path: manifests}\n",
    )
    .unwrap();
    for args in [&["plan"][..], &["validate"], &["sync"]] {
        let run = relsync_in(dir.path(), args, &[]);
        run.expect_code(1);
        let err = run.stderr();
        assert!(
            err.contains("relsync.yaml") && err.contains("git.repo `.`"),
            "{args:?}: {err}"
        );
        assert!(err.contains("is not a Git repository"), "{args:?}: {err}");
        assert!(!err.contains("cannot open git repository"), "{err}");
    }
    assert_eq!(files_in(dir.path()), ["relsync.yaml"]);
}

#[test]
fn an_empty_repository_says_it_has_no_commits() {
    let repo = Repo::new();
    repo.write(
        "relsync.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec: {}\n",
    );
    for args in [
        &["plan"][..],
        &["sync"],
        &["validate", "--revision", "HEAD"],
    ] {
        let run = repo.relsync(args);
        run.expect_code(1);
        let err = run.stderr();
        assert!(err.contains("has no commits yet"), "{args:?}: {err}");
        assert!(!err.contains("revspec"), "{args:?}: {err}");
    }
    assert_eq!(files_in(repo.path()), ["relsync.yaml"]);
}

#[test]
fn a_git_path_missing_at_the_revision_names_the_path_and_the_revision() {
    let repo = Repo::example();
    let config = repo
        .read("relsync.yaml")
        .replace("path: manifests", "path: deploy/manifests");
    repo.write("relsync.yaml", &config);
    let sha = repo.commit("git.path: deploy/manifests");
    let run = repo.relsync(&["plan"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "git.path `deploy/manifests`: no such directory at revision `HEAD` ({})",
            &sha[..12]
        )),
        "{}",
        run.stderr()
    );
    assert_eq!(run.stdout(), "");
    let run = repo.relsync(&["validate"]);
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains("git.path `deploy/manifests`: no such directory at the working tree"),
        "{}",
        run.stderr()
    );
    // Written as it is, all is well again.
    repo.write(
        "relsync.yaml",
        &config.replace("deploy/manifests", "manifests"),
    );
    repo.commit("git.path: manifests");
    repo.relsync(&["validate"]).expect_code(0);
}

/// `python3 -m http.server` on a loopback port: a web server that answers 404 for every
/// path under /v2/; killed on drop.
struct WebServer {
    child: Child,
    port: u16,
    _root: tempfile::TempDir,
}

impl WebServer {
    fn start() -> WebServer {
        let root = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 must be installed to run these tests");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        WebServer {
            child,
            port,
            _root: root,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repository with one stream (two releases) into `target` on `host` (plain HTTP).
fn one_stream(host: &str, target: &str) -> Repo {
    let repo = Repo::new();
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {{host: '{host}', insecure: true}}\n"
        ),
    );
    let d1 = relsync::digest::Digest::sha256_of(b"one");
    let d2 = relsync::digest::Digest::sha256_of(b"two");
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: app}}\nspec:\n  source: quay.io/example/app\n  target: {target}\n  releases:\n    - {{version: 1.0.0, digest: '{d1}'}}\n    - {{version: 1.1.0, digest: '{d2}'}}\n"
        ),
    );
    repo.write(
        "manifests/channel.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {name: app-stable}\nspec:\n  stream: app\n  tags: [stable]\n  versions: [1.0.0, 1.1.0]\n",
    );
    repo.commit("one stream");
    repo
}

#[test]
fn a_web_server_that_is_not_a_registry_is_an_error_naming_the_host() {
    let web = WebServer::start();
    let host = web.host();
    let repo = one_stream(&host, &format!("{host}/app/release"));
    let before = files_in(repo.path());
    for args in [&["plan"][..], &["drift"], &["sync"]] {
        let run = repo.relsync(args);
        run.expect_code(1);
        assert!(
            run.stderr()
                .contains(&format!("{host} is not an OCI registry")),
            "{args:?}: {}",
            run.stderr()
        );
        assert!(!run.stdout().contains("mirror"), "{}", run.stdout());
    }
    assert_eq!(files_in(repo.path()), before, "nothing written");

    // The HEAD paths (a tag, a digest) say the same, not "absent".
    let config = relsync::config::load(
        "relsync.yaml",
        format!("apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {{host: '{host}', insecure: true}}\n").as_bytes(),
    )
    .unwrap();
    let registries = Registries::from_config(&config, repo.path()).unwrap();
    let target = registries
        .repository(&format!("{host}/app/release"))
        .unwrap();
    let digest = relsync::digest::Digest::sha256_of(b"one");
    let (tag, manifest) = block_on(async {
        (
            target.resolve_tag("stable").await,
            target.has_manifest(&digest).await,
        )
    });
    for result in [tag.map(|_| ()), manifest.map(|_| ())] {
        match result {
            Err(e @ RegistryError::NotARegistry { .. }) => {
                assert!(e.to_string().contains(&host), "{e}")
            }
            other => panic!("not an OCI registry, got {other:?}"),
        }
    }
}

#[test]
fn plan_against_an_absent_repository_lists_its_tags_once_and_sends_no_head() {
    let registry = TestRegistry::start();
    let repo = one_stream(
        &registry.host(),
        &format!("{}/absent/release", registry.host()),
    );
    let before = registry.served_requests().len();
    let run = repo.relsync(&["plan"]);
    run.expect_code(2);
    assert!(run.stdout().contains("mirror"), "{}", run.stdout());
    let served: Vec<String> = registry.served_requests()[before..].to_vec();
    let lists = served
        .iter()
        .filter(|r| r.starts_with("GET /v2/absent/release/tags/list"))
        .count();
    assert_eq!(lists, 1, "one tag list: {served:#?}");
    assert!(
        !served.iter().any(|r| r.starts_with("HEAD ")),
        "no HEAD for an absent repository: {served:#?}"
    );
    // A distribution registry's own 404 is still "absent", not "not a registry".
    assert!(
        !run.stderr().contains("not an OCI registry"),
        "{}",
        run.stderr()
    );
}

/// The bundled example, committed long ago (older than any feeder delay).
fn example_long_ago() -> Repo {
    let repo = Repo::new();
    repo.copy_example();
    repo.commit_dated("the bundled example", PAST);
    repo
}

#[test]
fn promote_commit_right_after_a_plain_promote_commits_that_entry() {
    let repo = example_long_ago();
    let head = repo.git(&["rev-parse", "HEAD"]);
    relsync_in(repo.path(), &["promote", R4, "--to", "4-scos-stable"], &[]).expect_code(0);
    let promoted = repo.read(STABLE);
    let run = relsync_in(
        repo.path(),
        &["promote", R4, "--to", "4-scos-stable", "--commit"],
        &[
            ("GIT_AUTHOR_NAME", "A"),
            ("GIT_AUTHOR_EMAIL", "a@example.org"),
            ("GIT_COMMITTER_NAME", "C"),
            ("GIT_COMMITTER_EMAIL", "c@example.org"),
        ],
    );
    run.expect_code(0);
    let branch = format!("promote/4-scos-stable/{R4}");
    assert!(
        run.stdout().contains(&format!("on branch {branch}")),
        "{}",
        run.stdout()
    );
    assert_eq!(repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]), branch);
    assert_eq!(repo.git(&["rev-parse", "HEAD~1"]), head);
    assert_eq!(
        repo.git(&["diff", "--name-only", "HEAD~1", "HEAD"]),
        STABLE,
        "the commit holds only the channel file"
    );
    assert_eq!(
        repo.git(&["show", &format!("HEAD:{STABLE}")]) + "\n",
        promoted
    );
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        "",
        "nothing left over"
    );
    // Again: committed now, so nothing to do.
    let again = relsync_in(
        repo.path(),
        &["promote", R4, "--to", "4-scos-stable", "--commit"],
        &[],
    );
    again.expect_code(0);
    assert!(
        again.stdout().contains("nothing to do"),
        "{}",
        again.stdout()
    );
}

#[test]
fn promote_commit_after_a_promote_and_another_edit_says_why_not() {
    let repo = example_long_ago();
    relsync_in(repo.path(), &["promote", R4, "--to", "4-scos-stable"], &[]).expect_code(0);
    let edited = format!("{}# another change\n", repo.read(STABLE));
    repo.write(STABLE, &edited);
    let run = relsync_in(
        repo.path(),
        &["promote", R4, "--to", "4-scos-stable", "--commit"],
        &[],
    );
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "{R4} is in 4-scos-stable in the working tree but not at HEAD, and {STABLE} has other uncommitted changes besides that entry"
        )),
        "{}",
        run.stderr()
    );
    assert_eq!(repo.read(STABLE), edited, "nothing written");
    assert_eq!(repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]), "main");
    assert_eq!(
        repo.git(&["branch", "--list", "promote/*"]),
        "",
        "no branch made"
    );
}

#[test]
fn validate_counts_one_in_the_singular() {
    let repo = Repo::new();
    repo.write(
        "relsync.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec: {}\n",
    );
    let digest = "sha256:ce5c67d67537572f0455aa30b5cc3bc87b938d9e10c70c9e010c24f448c27e9d";
    repo.write(
        "manifests/one.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: registry.ci.openshift.org/origin/release-scos\n  target: quay.io/okd/scos-release\n  releases:\n    - {{version: {R3}, digest: '{digest}'}}\n---\napiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: one}}\nspec:\n  stream: okd\n  tags: [one]\n  versions: [{R3}]\n"
        ),
    );
    repo.commit("one of each");
    let run = repo.relsync(&["validate"]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("1 stream, 1 channel, 1 release, ")
            && out.trim_end().ends_with(" in 1 target"),
        "{out}"
    );
    // The tag count (the channel's tag, and the version's own when published) agrees too.
    let tags = out.split("1 release, ").nth(1).unwrap();
    let n: u64 = tags.split(' ').next().unwrap().parse().unwrap();
    let noun = if n == 1 {
        "desired tag in"
    } else {
        "desired tags in"
    };
    assert!(tags.starts_with(&format!("{n} {noun}")), "{out}");
}

#[test]
fn history_shows_the_commit_subject() {
    let repo = Repo::example();
    repo.relsync(&["sync"]).expect_code(0);
    let run = repo.relsync(&["history"]);
    run.expect_code(0);
    let text = run.stdout();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().contains("SUBJECT"), "{text}");
    assert!(lines.next().unwrap().contains("  example  "), "{text}");
}

#[test]
fn plan_during_a_rollback_hold_says_the_hold_keeps_the_pending_change() {
    let repo = Repo::example();
    let before = repo.git(&["rev-parse", "HEAD"]);
    repo.relsync(&["sync"]).expect_code(0);
    let text = repo.read(STABLE);
    let edited = text.replace(
        &format!("    - {R3}\n"),
        &format!("    - {R3}\n    - {R4}\n"),
    );
    assert_ne!(text, edited);
    repo.write(STABLE, &edited);
    let tip = repo.commit("stable: 4.16");
    repo.relsync(&["sync"]).expect_code(0);
    repo.relsync(&["rollback", "--to-revision", &before])
        .expect_code(0);
    let plan = repo.relsync(&["plan"]);
    plan.expect_code(2);
    assert!(
        plan.stderr().contains(&format!(
            "note: a rollback hold keeps every channel at {} (rollback at ",
            &before[..12]
        )) && plan.stderr().contains(&format!(
            "while HEAD is at {}: serve does not apply the pending changes of every channel until HEAD moves",
            &tip[..12]
        )),
        "{}",
        plan.stderr()
    );
    // In sync after a sync (which ends the hold): no note.
    repo.relsync(&["sync"]).expect_code(0);
    let plan = repo.relsync(&["plan"]);
    plan.expect_code(0);
    assert!(
        !plan.stderr().contains("rollback hold"),
        "{}",
        plan.stderr()
    );
}

#[test]
fn serve_logs_the_sync_it_applied_at_its_default_level_and_counts_one_reconcile() {
    let repo = Repo::example();
    let log = tempfile::tempdir().unwrap();
    let err_path = log.path().join("err");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_relsync"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(repo.path())
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .env("RELSYNC_CACHE_DIR", log.path().join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let read = || std::fs::read_to_string(&err_path).unwrap_or_default();
    while !read().contains("synced") {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve logged no sync within 60 s:\n{}", read());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let err = read();
    let synced = err
        .lines()
        .find(|l| l.contains("synced"))
        .unwrap_or_default()
        .to_string();
    assert!(
        synced.contains("INFO") && synced.contains("outcome=succeeded"),
        "{err}"
    );
    let stopped = err
        .lines()
        .find_map(|l| l.strip_prefix("relsync serve: stopped after "))
        .unwrap_or_else(|| panic!("no closing line: {err}"));
    let n: u64 = stopped.split(' ').next().unwrap().parse().unwrap();
    let noun = if n == 1 { "reconcile" } else { "reconciles" };
    assert_eq!(stopped, format!("{n} {noun}"));
}
