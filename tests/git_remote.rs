//! Remote desired-state repositories (`git.repo` as a URL), against real Git servers:
//! `git daemon` (git://), Git's own smart-HTTP CGI `git http-backend` behind a small
//! loopback server with Basic auth (http://), and `file://`. relsync.yaml lives outside the
//! repository in every test, and every run gets its own cache (`RELSYNC_CACHE_DIR`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;

use crate::util::{Repo, Run, ServerThread, copy_dir, free_port, project};

/// `git daemon` serving every repository below a base directory on a free loopback port;
/// killed on drop.
pub struct GitDaemon {
    child: Child,
    port: u16,
}

/// The `git-daemon` program in Git's exec path (Debian's git package ships it).
fn git_daemon() -> PathBuf {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("git must be installed to run these tests");
    let dir = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(dir.trim()).join("git-daemon");
    assert!(
        path.is_file(),
        "{} is missing: `git daemon` is part of Debian's git package, which .ci/run installs",
        path.display()
    );
    path
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            // `git-daemon` itself, not `git daemon`: the `git` wrapper would leave its
            // child serving after a kill.
            let mut child = Command::new(git_daemon())
                .arg("--export-all")
                .arg(format!("--base-path={}", base.display()))
                .arg("--reuseaddr")
                .arg(format!("--port={port}"))
                .arg("--listen=127.0.0.1")
                .arg("--informative-errors")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start git-daemon");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait().expect("wait for git daemon") {
                    let mut err = String::new();
                    if let Some(mut s) = child.stderr.take() {
                        let _ = s.read_to_string(&mut err);
                    }
                    last = format!("git daemon exited with {status}: {err}");
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return GitDaemon { child, port };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "`git daemon` did not start ({last}); it is part of Debian's git package, which .ci/run installs"
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("git://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The desired-state repository: a working repository holding the bundled example, and the
/// bare repository `repo.git` it pushes to, which the servers serve.
struct Upstream {
    work: Repo,
    base: tempfile::TempDir,
}

impl Upstream {
    fn new() -> Upstream {
        let work = Repo::example();
        let base = tempfile::tempdir().unwrap();
        let bare = base.path().join("repo.git");
        work.git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
        work.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
        Upstream { work, base }
    }

    fn bare(&self) -> PathBuf {
        self.base.path().join("repo.git")
    }

    fn push(&self) {
        self.work.git(&["push", "-q", "--force", "origin", "--all"]);
        self.work
            .git(&["push", "-q", "--force", "origin", "--tags"]);
    }

    fn bare_git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.bare())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// A directory outside the repository with relsync.yaml pointing `git.repo` at `url` (and
/// the example's OCI layouts beside it, which `mapTo` resolves from relsync.yaml's
/// directory), and a cache directory of its own.
struct Site {
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Site {
    fn new(url: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&project().join("example"), &dir.path().join("example"));
        let config = std::fs::read_to_string(project().join("relsync.yaml")).unwrap();
        assert!(config.contains("repo: .,"), "relsync.yaml changed shape");
        let config = config.replace("repo: .,", &format!("repo: \"{url}\","));
        std::fs::write(dir.path().join("relsync.yaml"), config).unwrap();
        Site {
            dir,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn set_url(&self, url: &str) {
        let path = self.dir.path().join("relsync.yaml");
        let config = std::fs::read_to_string(&path).unwrap();
        let start = config.find("repo: \"").unwrap() + "repo: \"".len();
        let end = start + config[start..].find('"').unwrap();
        let config = format!("{}{url}{}", &config[..start], &config[end..]);
        std::fs::write(path, config).unwrap();
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_relsync"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("KUBECONFIG")
            .env_remove("RELSYNC_GIT_USERNAME")
            .env_remove("RELSYNC_GIT_PASSWORD")
            .env("NO_COLOR", "1")
            .env("RELSYNC_CACHE_DIR", self.cache.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn relsync(&self, args: &[&str]) -> Run {
        self.relsync_env(args, &[])
    }

    fn relsync_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        Run(self.command(args, env).output().unwrap())
    }

    /// The mirrors in the cache (directory names).
    fn mirrors(&self) -> Vec<String> {
        let git = self.cache.path().join("git");
        let mut names: Vec<String> = std::fs::read_dir(&git)
            .unwrap_or_else(|e| panic!("no cache at {}: {e}", git.display()))
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// `received_objects=N` from relsync's info log of a fetch.
fn received_objects(run: &Run) -> u64 {
    let err = run.stderr();
    let at = err
        .find("received_objects=")
        .unwrap_or_else(|| panic!("no fetch log line:\n{err}"));
    err[at + "received_objects=".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

const INFO: &[(&str, &str)] = &[("RUST_LOG", "relsync=info")];

#[test]
fn git_daemon_remote_reads_branch_tag_sha_and_default_branch_and_sees_new_commits() {
    let up = Upstream::new();
    let c1 = up.work.git(&["rev-parse", "HEAD"]);
    up.work.git(&["tag", "v1"]);
    up.push();
    let daemon = GitDaemon::start(up.base.path());
    let site = Site::new(&daemon.url("repo.git"));

    let run = site.relsync_env(&["validate"], INFO);
    run.expect_code(0);
    assert!(run.stdout().contains(&c1), "{}", run.stdout());
    let first = received_objects(&run);
    let mirrors = site.mirrors();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    assert_eq!(mirrors[0].len(), 64, "named by a sha-256: {mirrors:?}");
    assert!(
        site.cache
            .path()
            .join("git")
            .join(format!("{}.lock", mirrors[0]))
            .is_file()
    );

    // The plan of the remote is the plan of the same repository read locally.
    let remote_plan = site.relsync(&["plan", "-o", "json"]);
    assert_ne!(remote_plan.code(), 1, "{}", remote_plan.stderr());
    let local_plan = up.work.relsync(&["plan", "-o", "json"]);
    assert_eq!(remote_plan.json(), local_plan.json());
    assert_eq!(remote_plan.json()["revision"], c1.as_str());

    // Unchanged remote: nothing to receive.
    let run = site.relsync_env(&["validate"], INFO);
    run.expect_code(0);
    assert_eq!(received_objects(&run), 0, "{}", run.stderr());

    // A new commit on main, and a branch whose tree holds an invalid manifest.
    let c2 = up.work.commit("second");
    up.work.git(&["switch", "-q", "-c", "broken"]);
    up.work.write("manifests/broken.yaml", "apiVersion: [\n");
    let c3 = up.work.commit("broken manifest");
    up.work.git(&["switch", "-q", "main"]);
    up.push();

    let run = site.relsync_env(&["plan", "-o", "json"], INFO);
    assert_eq!(run.json()["revision"], c2.as_str(), "{}", run.stderr());
    let second = received_objects(&run);
    assert!(
        second > 0 && second < first,
        "the second fetch is incremental: {second} objects after {first}"
    );
    assert_eq!(site.mirrors(), mirrors, "the cache is reused");

    for (rev, want) in [("v1", &c1), (c1.as_str(), &c1), ("main", &c2)] {
        let run = site.relsync(&["--revision", rev, "plan", "-o", "json"]);
        assert_eq!(run.json()["revision"], want.as_str(), "--revision {rev}");
    }
    let run = site.relsync(&["--revision", "broken", "validate"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("manifests/broken.yaml"),
        "{}",
        run.stderr()
    );
    let run = site.relsync(&["--revision", &c3[..12], "validate"]);
    run.expect_code(1);

    // HEAD is the remote's default branch, followed when it changes.
    up.bare_git(&["symbolic-ref", "HEAD", "refs/heads/broken"]);
    let run = site.relsync(&["validate"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("manifests/broken.yaml"),
        "{}",
        run.stderr()
    );
    up.bare_git(&["symbolic-ref", "HEAD", "refs/heads/main"]);

    // A branch deleted on the remote is pruned from the mirror.
    up.work.git(&["push", "-q", "origin", "--delete", "broken"]);
    let run = site.relsync(&["--revision", "broken", "validate"]);
    run.expect_code(1);
    let url = daemon.url("repo.git");
    assert!(
        run.stderr()
            .contains(&format!("revision `broken` not found in {url}")),
        "{}",
        run.stderr()
    );
    site.relsync(&["validate"]).expect_code(0);
}

#[test]
fn file_url_remote_is_read_without_a_working_tree() {
    let up = Upstream::new();
    up.work.write("manifests/uncommitted.yaml", "not: [valid\n");
    let c1 = up.work.git(&["rev-parse", "HEAD"]);
    let url = format!("file://{}", up.bare().display());
    let site = Site::new(&url);
    // `validate` of a remote reads the revision: there is no working tree to check.
    let run = site.relsync(&["validate"]);
    run.expect_code(0);
    assert!(run.stdout().contains(&c1), "{}", run.stdout());
    let run = site.relsync(&["plan", "-o", "json"]);
    assert_eq!(run.json()["revision"], c1.as_str(), "{}", run.stderr());
    assert_eq!(site.mirrors().len(), 1);
}

#[test]
fn unreachable_remote_is_an_error_naming_the_url_without_credentials() {
    let port = free_port();
    let site = Site::new(&format!(
        "git://alice:hunter2-secret@127.0.0.1:{port}/repo.git"
    ));
    let run = site.relsync_env(&["-vvv", "plan"], &[("RUST_LOG", "trace")]);
    run.expect_code(1);
    let out = format!("{}{}", run.stdout(), run.stderr());
    assert!(
        out.contains(&format!("cannot fetch git://127.0.0.1:{port}/repo.git")),
        "{out}"
    );
    assert!(!out.contains("hunter2-secret"), "{out}");
    assert!(!out.contains("alice"), "{out}");
    // Nothing was fetched before, so no talk of an earlier copy.
    assert!(!out.contains("fetched earlier"), "{out}");
}

#[test]
fn failed_fetch_never_falls_back_to_the_cached_copy() {
    let up = Upstream::new();
    let daemon = GitDaemon::start(up.base.path());
    let url = daemon.url("repo.git");
    let site = Site::new(&url);
    site.relsync(&["validate"]).expect_code(0);
    drop(daemon);
    let run = site.relsync(&["plan", "-o", "json"]);
    run.expect_code(1);
    assert!(
        run.stdout().is_empty(),
        "no plan from a stale copy: {}",
        run.stdout()
    );
    assert!(
        run.stderr().contains(&format!("cannot fetch {url}")),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr()
            .contains("the copy fetched earlier is not used"),
        "{}",
        run.stderr()
    );
}

#[test]
fn credentials_in_a_git_url_are_never_printed_and_do_not_name_the_cache() {
    let up = Upstream::new();
    let daemon = GitDaemon::start(up.base.path());
    let plain = daemon.url("repo.git");
    let with_creds = plain.replace("git://", "git://bob:s3cr3t-pw@");
    let site = Site::new(&with_creds);
    let run = site.relsync_env(&["-vvv", "validate"], &[("RUST_LOG", "trace")]);
    run.expect_code(0);
    let out = format!("{}{}", run.stdout(), run.stderr());
    assert!(out.contains(&plain), "the URL is named: {out}");
    assert!(!out.contains("s3cr3t-pw"), "{out}");
    let mirrors = site.mirrors();
    site.set_url(&plain);
    site.relsync(&["validate"]).expect_code(0);
    assert_eq!(
        site.mirrors(),
        mirrors,
        "one mirror per URL without credentials"
    );
    let description = std::fs::read_to_string(
        site.cache
            .path()
            .join("git")
            .join(&mirrors[0])
            .join("description"),
    )
    .unwrap();
    assert!(description.contains(&plain), "{description}");
    assert!(!description.contains("s3cr3t"), "{description}");
}

#[test]
fn concurrent_runs_share_one_cache_under_its_lock() {
    let up = Upstream::new();
    let c1 = up.work.git(&["rev-parse", "HEAD"]);
    let daemon = GitDaemon::start(up.base.path());
    let site = Site::new(&daemon.url("repo.git"));
    let children: Vec<_> = (0..4)
        .map(|_| {
            site.command(&["plan", "-o", "json"], &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let run = Run(child.wait_with_output().unwrap());
        assert_eq!(run.json()["revision"], c1.as_str(), "{}", run.stderr());
    }
    let mirrors = site.mirrors();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    let fsck = Command::new("git")
        .args(["fsck", "--full"])
        .current_dir(site.cache.path().join("git").join(&mirrors[0]))
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{fsck:?}");
}

#[test]
fn add_and_promote_refuse_a_remote_which_has_no_working_tree() {
    let up = Upstream::new();
    let url = format!("file://{}", up.bare().display());
    let site = Site::new(&url);
    let run = site.relsync(&["promote", "4.15.0", "--to", "4-scos-next"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("needs a working tree"),
        "{}",
        run.stderr()
    );
}

// ---- smart HTTP with Basic auth -----------------------------------------------------------

/// Git's smart-HTTP CGI (`git http-backend`) behind a loopback HTTP server that demands
/// Basic auth; counts the requests it answers 401.
pub struct GitHttp {
    port: u16,
    refused: Arc<AtomicU64>,
    _server: ServerThread,
}

struct HttpState {
    root: PathBuf,
    authorization: String,
    refused: Arc<AtomicU64>,
}

impl GitHttp {
    pub fn start(root: &Path, user: &str, password: &str) -> GitHttp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let refused = Arc::new(AtomicU64::new(0));
        let state = Arc::new(HttpState {
            root: root.to_path_buf(),
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            refused: refused.clone(),
        });
        let app = axum::Router::new().fallback(cgi).with_state(state);
        GitHttp {
            port,
            refused,
            _server: ServerThread::serve(listener, app),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

async fn cgi(
    State(st): State<Arc<HttpState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if given != st.authorization {
        st.refused.fetch_add(1, Ordering::SeqCst);
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Basic realm=\"git\"")
            .body(Body::from("authentication required\n"))
            .unwrap();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", &st.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "test")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("git http-backend");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        out.stdout
    })
    .await
    .unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .expect("CGI headers");
    let head = String::from_utf8_lossy(&out[..split.0]).into_owned();
    let mut response = Response::builder().status(StatusCode::OK);
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value[..3].parse().unwrap();
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value);
        }
    }
    response.body(Body::from(out[split.1..].to_vec())).unwrap()
}

#[test]
fn http_remote_takes_credentials_from_the_environment_or_the_url_and_gives_up_when_refused() {
    let up = Upstream::new();
    let c1 = up.work.git(&["rev-parse", "HEAD"]);
    let server = GitHttp::start(up.base.path(), "alice", "tok3n-s3cret");
    let url = server.url("repo.git");
    let site = Site::new(&url);
    let trace = [("RUST_LOG", "trace")];

    // No credentials: a clear error, no endless asking.
    let run = site.relsync_env(&["-vvv", "validate"], &trace);
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!("cannot fetch {url}")),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("RELSYNC_GIT_PASSWORD"),
        "says where credentials come from: {}",
        run.stderr()
    );

    // Wrong credentials: refused once, then relsync gives up (libgit2 would ask forever).
    let before = server.refused.load(Ordering::SeqCst);
    let start = Instant::now();
    let run = site.relsync_env(
        &["-vvv", "validate"],
        &[
            ("RUST_LOG", "trace"),
            ("RELSYNC_GIT_USERNAME", "alice"),
            ("RELSYNC_GIT_PASSWORD", "wrong-pa55word"),
        ],
    );
    run.expect_code(1);
    let out = format!("{}{}", run.stdout(), run.stderr());
    assert!(out.contains("authentication failed"), "{out}");
    assert!(out.contains("were refused"), "{out}");
    assert!(!out.contains("wrong-pa55word"), "{out}");
    assert!(
        !out.contains("fetched earlier"),
        "no fetch succeeded yet: {out}"
    );
    let refusals = server.refused.load(Ordering::SeqCst) - before;
    assert!(
        (1..=4).contains(&refusals),
        "bounded retries: {refusals} refused requests"
    );
    assert!(start.elapsed() < Duration::from_secs(30));

    // Right credentials from the environment.
    let run = site.relsync_env(
        &["-vvv", "validate"],
        &[
            ("RUST_LOG", "trace"),
            ("RELSYNC_GIT_USERNAME", "alice"),
            ("RELSYNC_GIT_PASSWORD", "tok3n-s3cret"),
        ],
    );
    run.expect_code(0);
    let out = format!("{}{}", run.stdout(), run.stderr());
    assert!(out.contains(&c1), "{out}");
    assert!(!out.contains("tok3n-s3cret"), "{out}");

    // Right credentials in the URL (percent-encoded where needed), never printed.
    site.set_url(&url.replace("http://", "http://alice:tok3n-s3cret@"));
    let run = site.relsync_env(&["-vvv", "plan", "-o", "json"], &trace);
    assert_eq!(run.json()["revision"], c1.as_str(), "{}", run.stderr());
    let out = format!("{}{}", run.stdout(), run.stderr());
    assert!(!out.contains("tok3n-s3cret"), "{out}");
    assert!(out.contains(&url), "{out}");
    assert_eq!(
        site.mirrors().len(),
        1,
        "one mirror per URL without credentials"
    );
}
