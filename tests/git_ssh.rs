//! `git.repo` over SSH for real: Debian's OpenSSH server (`/usr/sbin/sshd`) on a free
//! loopback port with a throwaway host key, the test user's key authorized, and the key
//! handed to relsync through a real `ssh-agent` (relsync reads SSH keys from the agent
//! only). The host key is trusted through `~/.ssh/known_hosts` of the run's own `$HOME`.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Repo, Run, copy_dir, free_port, project};

const SSHD: &str = "/usr/sbin/sshd";

fn run(program: &str, args: &[&str], env: &[(&str, &Path)]) {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): Debian's openssh-server and openssh-client are needed")
    });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new ed25519 key pair at `path` (and `path.pub`), without a passphrase.
fn keygen(path: &Path) {
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            path.to_str().unwrap(),
        ],
        &[],
    );
}

/// sshd serving the current user on a free loopback port, only with the key `client_key`;
/// killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sshd {
    fn start() -> Sshd {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} is missing: install Debian's openssh-server (.ci/run does)"
        );
        // sshd refuses to start without its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        keygen(&d.join("stranger_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let user = whoami();
        for _attempt in 0..5 {
            let port = free_port();
            let config = d.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
                     AuthorizedKeysFile {keys}\nStrictModes no\nUsePAM no\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\nAllowUsers {user}\nLogLevel VERBOSE\n\
                     MaxAuthTries 6\n",
                    host = d.join("host_key").display(),
                    pid = d.join("sshd.pid").display(),
                    keys = d.join("authorized_keys").display(),
                ),
            )
            .unwrap();
            let log = std::fs::File::create(d.join("sshd.log")).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if banner(port) {
                    return Sshd { child, port, dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "sshd did not come up; its log:\n{}",
            std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
        );
    }

    /// `ssh://<user>@127.0.0.1:<port><path>`.
    fn url(&self, path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            whoami(),
            self.port,
            path.display()
        )
    }

    /// A `known_hosts` line for this server's host key.
    fn known_hosts_line(&self) -> String {
        let key = std::fs::read_to_string(self.dir.path().join("host_key.pub")).unwrap();
        let mut parts = key.split_whitespace();
        let (kind, blob) = (parts.next().unwrap(), parts.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {blob}\n", self.port)
    }

    /// Public-key attempts sshd logged so far.
    fn key_attempts(&self) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("publickey") && (l.contains("Failed") || l.contains("Accepted")))
            .count()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn banner(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-2.0")
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A real `ssh-agent` on its own socket holding `key`; killed on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn with_key(key: &Path) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent (Debian's openssh-client)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent made no socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The socket file exists from bind(), before ssh-agent listens on it: under load
        // ssh-add may still be refused for a moment, so it is tried again until the deadline.
        loop {
            let out = Command::new("ssh-add")
                .args(["-q", key.to_str().unwrap()])
                .env("SSH_AUTH_SOCK", &socket)
                .output()
                .expect("ssh-add (Debian's openssh-client)");
            if out.status.success() {
                break;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("Connection refused") && Instant::now() < deadline,
                "ssh-add: {err}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Agent {
            child,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example pushed into a bare repository, a site whose relsync.yaml reads it over SSH,
/// and a `$HOME` whose known_hosts trusts the server.
struct Setup {
    sshd: Sshd,
    work: Repo,
    bare: PathBuf,
    site: tempfile::TempDir,
    home: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let sshd = Sshd::start();
        let work = Repo::example();
        let bare = sshd.dir.path().join("repo.git");
        work.git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
        work.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
        let site = tempfile::tempdir().unwrap();
        copy_dir(&project().join("example"), &site.path().join("example"));
        let config = std::fs::read_to_string(project().join("relsync.yaml")).unwrap();
        assert!(config.contains("repo: .,"), "relsync.yaml changed shape");
        let config = config.replace("repo: .,", &format!("repo: \"{}\",", sshd.url(&bare)));
        std::fs::write(site.path().join("relsync.yaml"), config).unwrap();
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(
            home.path().join(".ssh/known_hosts"),
            sshd.known_hosts_line(),
        )
        .unwrap();
        Setup {
            sshd,
            work,
            bare,
            site,
            home,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn relsync(&self, args: &[&str], agent: Option<&Agent>) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_relsync"));
        cmd.args(args)
            .current_dir(self.site.path())
            .env_remove("RUST_LOG")
            .env_remove("KUBECONFIG")
            .env_remove("SSH_AUTH_SOCK")
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("RELSYNC_CACHE_DIR", self.cache.path());
        if let Some(agent) = agent {
            cmd.env("SSH_AUTH_SOCK", &agent.socket);
        }
        Run(cmd.output().unwrap())
    }

    fn client_key(&self) -> PathBuf {
        self.sshd.dir.path().join("client_key")
    }
}

#[test]
fn an_ssh_remote_is_fetched_with_the_agents_key_and_new_commits_are_seen() {
    let s = Setup::new();
    let agent = Agent::with_key(&s.client_key());
    let c1 = s.work.git(&["rev-parse", "HEAD"]);
    let first = s.relsync(&["validate"], Some(&agent));
    first.expect_code(0);
    assert!(first.stdout().contains(&c1), "{}", first.stdout());

    s.work.write("NOTES", "a new commit\n");
    let c2 = s.work.commit("a new commit");
    assert_ne!(c1, c2);
    s.work.git(&["push", "-q", "origin", "HEAD"]);
    let second = s.relsync(&["validate"], Some(&agent));
    second.expect_code(0);
    assert!(
        second.stdout().contains(&c2),
        "sees the new commit: {}",
        second.stdout()
    );
    assert!(s.bare.is_dir());
    assert!(s.sshd.key_attempts() >= 2, "sshd logged the accepted keys");
}

#[test]
fn refused_ssh_credentials_fail_once_and_say_why() {
    let s = Setup::new();
    // No agent at all.
    let run = s.relsync(&["validate"], None);
    run.expect_code(1);
    assert!(
        run.stderr().contains("no SSH agent is running"),
        "{}",
        run.stderr()
    );

    // An agent whose key the server does not know: refused, and not tried again and again.
    let stranger = Agent::with_key(&s.sshd.dir.path().join("stranger_key"));
    let before = s.sshd.key_attempts();
    let started = Instant::now();
    let run = s.relsync(&["validate"], Some(&stranger));
    run.expect_code(1);
    assert!(
        run.stderr().contains("the SSH agent's keys were refused"),
        "{}",
        run.stderr()
    );
    assert!(started.elapsed() < Duration::from_secs(20), "no retry loop");
    let attempts = s.sshd.key_attempts() - before;
    assert!(attempts <= 2, "{attempts} key attempts for one refused key");
}

#[test]
fn an_ssh_server_whose_host_key_is_not_known_is_refused() {
    let s = Setup::new();
    let agent = Agent::with_key(&s.client_key());
    std::fs::write(s.home.path().join(".ssh/known_hosts"), "").unwrap();
    let run = s.relsync(&["validate"], Some(&agent));
    run.expect_code(1);
    assert!(
        run.stderr().contains("unknown remote ssh hostkey"),
        "the refusal says it is the host key: {}",
        run.stderr()
    );
    assert_eq!(
        s.sshd.key_attempts(),
        0,
        "no key was offered to an unknown host"
    );
}
