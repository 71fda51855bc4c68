//! Real registry processes on free loopback ports, plain or TLS, open or with htpasswd
//! auth: Debian's `docker-registry` (CNCF distribution 2.8), or distribution v3's
//! `registry` (built by `scripts/test-deps.sh`), chosen by [`Distribution`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{DOCKER_REGISTRY, Pusher, block_on, deps, free_port};

/// Which implementation of the OCI distribution API a [`TestRegistry`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// Debian's `docker-registry`, CNCF distribution 2.8: no tag DELETE, no referrers API,
    /// ignores `n` on tag lists.
    V2,
    /// distribution v3's `registry` (`$RELSYNC_TEST_DEPS/registry`): tag DELETE; v3.1.2
    /// answers the referrers API with 404.
    V3,
    /// go-containerregistry's in-memory registry (`$RELSYNC_TEST_DEPS/ggcr-registry`, built
    /// by `scripts/test-deps.sh`) with the OCI 1.1 referrers API switched on; no auth or TLS.
    Ggcr,
}

impl Distribution {
    /// The binary to start.
    fn binary(self) -> PathBuf {
        match self {
            Distribution::V2 => {
                assert!(
                    Path::new(DOCKER_REGISTRY).exists(),
                    "{DOCKER_REGISTRY} is missing: install Debian's docker-registry package (apt-get install docker-registry); registry tests cannot run without it"
                );
                PathBuf::from(DOCKER_REGISTRY)
            }
            Distribution::V3 => deps::binary("registry"),
            Distribution::Ggcr => deps::binary("ggcr-registry"),
        }
    }

    /// Whether the registry deletes a tag by name (`DELETE /v2/<name>/manifests/<tag>`);
    /// 2.8 refuses it.
    pub fn deletes_tags(self) -> bool {
        self != Distribution::V2
    }
}

/// A registry process on a free loopback port, with its own config file and storage in a
/// temporary directory; killed on drop.
pub struct TestRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    basic: Option<(String, String)>,
    tls: bool,
    kind: Distribution,
}

/// The test CA and server certificate for [`TestRegistry::start_tls`].
pub fn tls_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/registry-tls")
}

impl TestRegistry {
    /// Starts an anonymous distribution 2.8 registry (no auth, deletes enabled).
    pub fn start() -> TestRegistry {
        Self::start_of(Distribution::V2)
    }

    /// Starts an anonymous registry of implementation `kind` (no auth, deletes enabled).
    pub fn start_of(kind: Distribution) -> TestRegistry {
        Self::launch(kind, None, false)
    }

    /// Starts a registry that requires htpasswd basic auth for `user`/`password`.
    pub fn start_with_basic_auth(user: &str, password: &str) -> TestRegistry {
        Self::start_of_with_basic_auth(Distribution::V2, user, password)
    }

    /// [`TestRegistry::start_with_basic_auth`] on implementation `kind`.
    pub fn start_of_with_basic_auth(
        kind: Distribution,
        user: &str,
        password: &str,
    ) -> TestRegistry {
        Self::launch(kind, Some((user.to_string(), password.to_string())), false)
    }

    /// Starts an anonymous registry serving HTTPS only, with the certificate of
    /// [`tls_dir`] (signed by the test CA `tls_dir()/ca.pem`).
    pub fn start_tls() -> TestRegistry {
        Self::start_tls_of(Distribution::V2)
    }

    /// [`TestRegistry::start_tls`] on implementation `kind`.
    pub fn start_tls_of(kind: Distribution) -> TestRegistry {
        Self::launch(kind, None, true)
    }

    /// Starts a registry serving HTTPS only (as [`TestRegistry::start_tls`]) that requires
    /// htpasswd basic auth for `user`/`password`.
    pub fn start_tls_with_basic_auth(user: &str, password: &str) -> TestRegistry {
        Self::launch(
            Distribution::V2,
            Some((user.to_string(), password.to_string())),
            true,
        )
    }

    fn launch(kind: Distribution, basic: Option<(String, String)>, tls: bool) -> TestRegistry {
        let binary = kind.binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:5000\n  secret: relsync-test-secret\n",
            storage.display()
        );
        if tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                tls_dir().join("server.pem").display(),
                tls_dir().join("server.key").display()
            ));
        }
        if let Some((user, password)) = &basic {
            let hash = bcrypt::hash(password, 4).expect("bcrypt");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: relsync-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("config");
        let log_path = dir.path().join("registry.log");

        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(&log_path).expect("log file");
            let mut cmd = Command::new(&binary);
            if kind == Distribution::Ggcr {
                assert!(
                    basic.is_none() && !tls,
                    "ggcr-registry serves plain HTTP only"
                );
                cmd.arg("-addr").arg(format!("127.0.0.1:{port}"));
            } else {
                cmd.arg("serve").arg(&config_path);
            }
            // distribution reads REGISTRY_* variables as config overrides: drop any from
            // the developer's environment (REGISTRY_AUTH_FILE would become `auth.file`).
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(k);
                }
            }
            let mut child = cmd
                .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
                .env(
                    "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                    storage.as_os_str(),
                )
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_status)) = child.try_wait() {
                    break;
                }
                if let Some(status) = http_status(port, "/v2/")
                    && (status == 200
                        || (status == 401 && basic.is_some())
                        // A TLS port answers plain HTTP with 400.
                        || (status == 400 && tls))
                {
                    return TestRegistry {
                        child,
                        port,
                        dir,
                        basic,
                        tls,
                        kind,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!(
            "{} did not come up on a loopback port; its log:\n{last_log}",
            binary.display()
        );
    }

    /// Which implementation this is.
    pub fn kind(&self) -> Distribution {
        self.kind
    }

    /// Every request the registry served so far, as `METHOD /path` from its own access log
    /// (an independent count of what a client sent, e.g. to prove a sync wrote nothing).
    pub fn served_requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        if self.kind == Distribution::Ggcr {
            // `2006/01/02 15:04:05 METHOD /path[ STATUS CODE MESSAGE]`
            return log
                .lines()
                .filter_map(|line| {
                    let mut parts = line.split_whitespace().skip(2);
                    let method = parts.next()?;
                    let path = parts.next()?;
                    matches!(method, "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE")
                        .then(|| format!("{method} {path}"))
                })
                .collect();
        }
        log.lines()
            .filter_map(|line| {
                let start = line.find('"')? + 1;
                let request = &line[start..];
                let mut parts = request.split_whitespace();
                let method = parts.next()?;
                let path = parts.next()?;
                matches!(method, "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE")
                    .then(|| format!("{method} {path}"))
            })
            .collect()
    }

    /// Every request the registry served so far with the User-Agent it carried, as
    /// (`METHOD /path`, agent), from its access log (combined format: the agent is the last
    /// quoted field).
    pub fn served_user_agents(&self) -> Vec<(String, String)> {
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split('"').collect();
                // `… "METHOD PATH PROTO" STATUS BYTES "REFERER" "AGENT"…`
                if fields.len() < 7 {
                    return None;
                }
                let mut request = fields[1].split_whitespace();
                let method = request.next()?;
                let path = request.next()?;
                matches!(method, "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE")
                    .then(|| (format!("{method} {path}"), fields[5].to_string()))
            })
            .collect()
    }

    /// The write requests (POST, PUT, PATCH, DELETE) among [`TestRegistry::served_requests`].
    pub fn served_writes(&self) -> Vec<String> {
        self.served_requests()
            .into_iter()
            .filter(|r| !r.starts_with("GET ") && !r.starts_with("HEAD "))
            .collect()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, the host part of repository strings.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The digest `repo:tag` holds, read by a HEAD with the four manifest types; `None` when
    /// the tag is absent or the registry does not answer.
    pub fn tag_digest(&self, repo: &str, tag: &str) -> Option<String> {
        block_on(head_tag_digest(&self.base_url(), repo, tag))
    }

    /// `http://127.0.0.1:PORT` (`https://` for a TLS registry).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Where it stores content.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// A pusher for this registry (with its basic credentials, if any).
    pub fn pusher(&self) -> Pusher {
        Pusher::new(&self.base_url(), self.basic.clone())
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of a plain `GET path` on loopback `port`, or `None` if nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

/// The digest `repo:tag` holds at the registry `base` (`http://host:port`), by a HEAD with
/// the four manifest types; `None` when the tag is absent or the registry does not answer.
pub async fn head_tag_digest(base: &str, repo: &str, tag: &str) -> Option<String> {
    let res = reqwest::Client::new()
        .head(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header(
            "Accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .ok()?;
    if !res.status().is_success() {
        return None;
    }
    res.headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_string())
}

/// Generates, for each function `name(kind: Distribution)` listed, one test per registry
/// implementation, `distribution_2_8::name` and `distribution_3::name`, in the module that
/// invokes it: `on_both_distributions!(async: a, b)` for `async fn`s (run on a two-thread
/// tokio runtime), `on_both_distributions!(sync: c)` for plain ones.
#[allow(unused_macros)]
macro_rules! on_both_distributions {
    (async: $($name:ident),* $(,)?) => {
        /// The tests against Debian's distribution 2.8.
        mod distribution_2_8 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::util::Distribution::V2).await
                }
            )*
        }
        /// The same tests against distribution v3.
        mod distribution_3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::util::Distribution::V3).await
                }
            )*
        }
    };
    (sync: $($name:ident),* $(,)?) => {
        /// The tests against Debian's distribution 2.8.
        mod distribution_2_8 {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::util::Distribution::V2)
                }
            )*
        }
        /// The same tests against distribution v3.
        mod distribution_3 {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::util::Distribution::V3)
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_distributions;
