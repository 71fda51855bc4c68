//! `git.repo` over HTTPS for real: Git's own `git http-backend` behind a TLS server
//! (`tests/git_https.py`, Python's `ssl` with the test certificate of
//! `tests/data/registry-tls`) with Basic auth. relsync (libgit2 over OpenSSL) trusts the
//! test CA through `SSL_CERT_FILE`, as a machine with an extra CA bundle would; a different
//! CA is refused before any request is sent, and wrong credentials are refused once, not
//! in a loop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::util::{Repo, Run, copy_dir, project, tls_dir};

const USER: &str = "relsync";
const PASSWORD: &str = "s3cret-git-password";

/// The HTTPS Git server; killed on drop.
struct GitHttps {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl GitHttps {
    fn start(root: &Path, log_dir: &Path) -> GitHttps {
        let script = project().join("tests/git_https.py");
        let log = log_dir.join("git_https.log");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(root)
            .arg(tls_dir().join("server.pem"))
            .arg(tls_dir().join("server.key"))
            .args([USER, PASSWORD])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "git_https.py did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        GitHttps { child, port, log }
    }

    /// `(METHOD PATH, status)` of every request answered so far.
    fn answered(&self) -> Vec<(String, u16)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (request, status) = l.rsplit_once(' ')?;
                Some((request.to_string(), status.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for GitHttps {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example pushed into `repo.git` served over HTTPS, and a site reading it.
struct Setup {
    server: GitHttps,
    work: Repo,
    dir: tempfile::TempDir,
    site: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let work = Repo::example();
        let bare = dir.path().join("repo.git");
        work.git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
        work.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
        let server = GitHttps::start(dir.path(), dir.path());
        let site = tempfile::tempdir().unwrap();
        copy_dir(&project().join("example"), &site.path().join("example"));
        let config = std::fs::read_to_string(project().join("relsync.yaml")).unwrap();
        assert!(config.contains("repo: .,"), "relsync.yaml changed shape");
        let url = format!("https://127.0.0.1:{}/repo.git", server.port);
        let config = config.replace("repo: .,", &format!("repo: \"{url}\","));
        std::fs::write(site.path().join("relsync.yaml"), config).unwrap();
        Setup {
            server,
            work,
            dir,
            site,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn relsync(&self, ca: &Path, password: &str) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_relsync"))
            .arg("validate")
            .current_dir(self.site.path())
            .env_remove("RUST_LOG")
            .env_remove("KUBECONFIG")
            .env_remove("SSL_CERT_DIR")
            .env("SSL_CERT_FILE", ca)
            .env("RELSYNC_GIT_USERNAME", USER)
            .env("RELSYNC_GIT_PASSWORD", password)
            .env("NO_COLOR", "1")
            .env("RELSYNC_CACHE_DIR", self.cache.path())
            .output()
            .unwrap();
        Run(out)
    }
}

#[test]
fn an_https_remote_signed_by_a_trusted_ca_is_fetched_and_new_commits_are_seen() {
    let s = Setup::new();
    let ca = tls_dir().join("ca.pem");
    let c1 = s.work.git(&["rev-parse", "HEAD"]);
    let run = s.relsync(&ca, PASSWORD);
    run.expect_code(0);
    assert!(run.stdout().contains(&c1), "{}", run.stdout());

    s.work.write("NOTES", "a new commit\n");
    let c2 = s.work.commit("a new commit");
    s.work.git(&["push", "-q", "origin", "HEAD"]);
    let run = s.relsync(&ca, PASSWORD);
    run.expect_code(0);
    assert!(
        run.stdout().contains(&c2),
        "sees the new commit: {}",
        run.stdout()
    );
    assert!(
        s.server
            .answered()
            .iter()
            .any(|(r, c)| r.ends_with("/git-upload-pack") && *c == 200),
        "{:?}",
        s.server.answered()
    );
}

#[test]
fn an_https_remote_signed_by_another_ca_is_refused_before_any_request() {
    let s = Setup::new();
    let other = s.dir.path().join("other-ca.pem");
    let key = s.dir.path().join("other-ca.key");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        ])
        .arg("/CN=another test CA")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&other)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{out:?}");
    let run = s.relsync(&other, PASSWORD);
    run.expect_code(1);
    assert!(
        run.stderr().contains("certificate"),
        "the refusal is about the certificate: {}",
        run.stderr()
    );
    assert!(!run.stderr().contains(PASSWORD));
    assert!(s.server.answered().is_empty(), "{:?}", s.server.answered());
}

#[test]
fn wrong_https_credentials_are_refused_once_without_a_retry_loop() {
    let s = Setup::new();
    let run = s.relsync(&tls_dir().join("ca.pem"), "wrong-password");
    run.expect_code(1);
    assert!(
        run.stderr().contains("were refused"),
        "says the credentials were refused: {}",
        run.stderr()
    );
    assert!(!run.stderr().contains("wrong-password"));
    let refused = s
        .server
        .answered()
        .iter()
        .filter(|(_, c)| *c == 401)
        .count();
    assert!(
        (1..=2).contains(&refused),
        "{refused} refused requests: {:?}",
        s.server.answered()
    );
}
