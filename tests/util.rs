//! Test helpers: real docker-registry processes, a paging (and token-issuing) proxy in
//! front of them, pushing real images over HTTP, and writing OCI image layouts.
//!
//! Everything here is `pub` so that every test module (and the benchmark, which includes
//! this file with `#[path]`) can use it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relsync::digest::Digest;

/// The Debian binary of CNCF distribution 2.8.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// OCI media types used by the pushed images.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer media type.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Runs `fut` to completion on a fresh current-thread runtime (for synchronous tests).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(fut)
}

/// A free loopback port (bound, read, released; the caller retries on the rare clash).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A `docker-registry` (distribution 2.8) process on a free loopback port, with its own
/// config file and storage in a temporary directory; killed on drop.
pub struct TestRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    basic: Option<(String, String)>,
    tls: bool,
}

/// The test CA and server certificate for [`TestRegistry::start_tls`].
pub fn tls_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/registry-tls")
}

impl TestRegistry {
    /// Starts an anonymous registry (no auth, deletes enabled).
    pub fn start() -> TestRegistry {
        Self::launch(None, false)
    }

    /// Starts a registry that requires htpasswd basic auth for `user`/`password`.
    pub fn start_with_basic_auth(user: &str, password: &str) -> TestRegistry {
        Self::launch(Some((user.to_string(), password.to_string())), false)
    }

    /// Starts an anonymous registry serving HTTPS only, with the certificate of
    /// [`tls_dir`] (signed by the test CA `tls_dir()/ca.pem`).
    pub fn start_tls() -> TestRegistry {
        Self::launch(None, true)
    }

    /// Starts a registry serving HTTPS only (as [`TestRegistry::start_tls`]) that requires
    /// htpasswd basic auth for `user`/`password`.
    pub fn start_tls_with_basic_auth(user: &str, password: &str) -> TestRegistry {
        Self::launch(Some((user.to_string(), password.to_string())), true)
    }

    fn launch(basic: Option<(String, String)>, tls: bool) -> TestRegistry {
        assert!(
            Path::new(DOCKER_REGISTRY).exists(),
            "{DOCKER_REGISTRY} is missing: install Debian's docker-registry package (apt-get install docker-registry); registry tests cannot run without it"
        );
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
            let mut cmd = Command::new(DOCKER_REGISTRY);
            cmd.arg("serve").arg(&config_path);
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
                .unwrap_or_else(|e| panic!("cannot start {DOCKER_REGISTRY}: {e}"));
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
        panic!("docker-registry did not come up on a loopback port; its log:\n{last_log}");
    }

    /// Every request the registry served so far, as `METHOD /path` from its own access log
    /// (an independent count of what a client sent, e.g. to prove a sync wrote nothing).
    pub fn served_requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
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

/// An image pushed by [`Pusher::push_image`].
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// The manifest's digest.
    pub manifest: Digest,
    /// The manifest's bytes.
    pub manifest_bytes: Vec<u8>,
    /// The config blob's digest.
    pub config: Digest,
    /// The layers' digests.
    pub layers: Vec<Digest>,
}

/// An image index pushed by [`Pusher::push_index`].
#[derive(Debug, Clone)]
pub struct PushedIndex {
    /// The index's digest.
    pub index: Digest,
    /// The index's bytes.
    pub index_bytes: Vec<u8>,
    /// The per-platform images (amd64, arm64).
    pub children: Vec<PushedImage>,
}

/// A blob or manifest to write: its media type and bytes.
#[derive(Debug, Clone)]
pub struct Content {
    /// Media type.
    pub media_type: String,
    /// Bytes.
    pub bytes: Vec<u8>,
}

impl Content {
    /// Its sha256 digest.
    pub fn digest(&self) -> Digest {
        Digest::sha256_of(&self.bytes)
    }

    /// A descriptor JSON object for it.
    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest().to_string(),
            "size": self.bytes.len(),
        })
    }
}

/// A small uncompressed tar archive holding one file `name` with `content`.
pub fn tar_with_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, s: &[u8]| h[at..at + s.len()].copy_from_slice(s);
    put(&mut header, 0, &name.as_bytes()[..name.len().min(99)]);
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 148, b"        ");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    let sum: u32 = header.iter().map(|&b| b as u32).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The blobs and manifest of a tiny image for `arch`, distinct per `seed`: `layers` (1–3)
/// small tar layers and a config. Returns `(config, layers, manifest)`.
pub fn tiny_image(seed: &str, arch: &str, layers: usize) -> (Content, Vec<Content>, Content) {
    let layers: Vec<Content> = (1..=layers.clamp(1, 3))
        .map(|i| Content {
            media_type: OCI_LAYER.to_string(),
            bytes: tar_with_file(
                &format!("layer-{i}.txt"),
                format!("{seed} {arch} layer {i}\n").as_bytes(),
            ),
        })
        .collect();
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Labels": {"relsync.test.seed": seed}},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest().to_string()).collect::<Vec<_>>(),
        },
    });
    let config = Content {
        media_type: OCI_CONFIG.to_string(),
        bytes: serde_json::to_vec(&config).expect("json"),
    };
    let manifest = image_manifest(&config, &layers, None);
    (config, layers, manifest)
}

/// An OCI image manifest over `config` and `layers`, with optional annotations (which make
/// otherwise identical manifests distinct).
pub fn image_manifest(
    config: &Content,
    layers: &[Content],
    annotations: Option<&BTreeMap<String, String>>,
) -> Content {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Content::descriptor).collect::<Vec<_>>(),
    });
    if let Some(a) = annotations {
        m["annotations"] = serde_json::json!(a);
    }
    Content {
        media_type: OCI_MANIFEST.to_string(),
        bytes: serde_json::to_vec(&m).expect("json"),
    }
}

/// An OCI image index over `(manifest, architecture)` pairs.
pub fn image_index(children: &[(&Content, &str)]) -> Content {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .map(|(m, arch)| {
            let mut d = m.descriptor();
            d["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
            d
        })
        .collect();
    Content {
        media_type: OCI_INDEX.to_string(),
        bytes: serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
        .expect("json"),
    }
}

/// Pushes content to a registry over the distribution HTTP API (monolithic blob uploads,
/// manifest PUTs), as a real client would.
#[derive(Clone)]
pub struct Pusher {
    client: reqwest::Client,
    base: String,
    basic: Option<(String, String)>,
}

impl Pusher {
    /// A pusher for the registry at `base` (`http://host:port`).
    pub fn new(base: &str, basic: Option<(String, String)>) -> Pusher {
        let ca = std::fs::read(tls_dir().join("ca.pem")).expect("test CA");
        Pusher {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("test CA"))
                .build()
                .expect("client"),
            base: base.trim_end_matches('/').to_string(),
            basic,
        }
    }

    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let rb = self.client.request(method, url);
        match &self.basic {
            Some((u, p)) => rb.basic_auth(u, Some(p)),
            None => rb,
        }
    }

    /// Uploads a blob (POST, then PUT `?digest=`) unless the registry has it; returns its
    /// digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        let head = self
            .req(
                reqwest::Method::HEAD,
                &format!("{}/v2/{repo}/blobs/{digest}", self.base),
            )
            .send()
            .await
            .expect("blob HEAD");
        if head.status() == 200 {
            return digest;
        }
        let start = self
            .req(
                reqwest::Method::POST,
                &format!("{}/v2/{repo}/blobs/uploads/", self.base),
            )
            .send()
            .await
            .expect("upload POST");
        assert_eq!(start.status(), 202, "upload POST to {repo}");
        let location = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("upload Location")
            .to_string();
        let url = reqwest::Url::parse(&self.base)
            .and_then(|b| b.join(&location))
            .expect("upload URL");
        let sep = if url.query().is_some() { '&' } else { '?' };
        let put = self
            .req(reqwest::Method::PUT, &format!("{url}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("upload PUT");
        assert_eq!(put.status(), 201, "upload PUT to {repo}");
        digest
    }

    /// PUTs a manifest under `reference` (a tag or its digest); returns its digest.
    pub async fn push_manifest(&self, repo: &str, reference: &str, manifest: &Content) -> Digest {
        let resp = self
            .req(
                reqwest::Method::PUT,
                &format!("{}/v2/{repo}/manifests/{reference}", self.base),
            )
            .header("content-type", &manifest.media_type)
            .body(manifest.bytes.clone())
            .send()
            .await
            .expect("manifest PUT");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 201, "manifest PUT {repo}:{reference}: {body}");
        manifest.digest()
    }

    /// Pushes a tiny image (config + `layers` layers) tagged `tag` (by digest only when
    /// `None`).
    pub async fn push_image(&self, repo: &str, tag: Option<&str>, seed: &str) -> PushedImage {
        self.push_image_for(repo, tag, seed, "amd64", 2).await
    }

    /// Pushes a tiny image for `arch` with `layers` layers.
    pub async fn push_image_for(
        &self,
        repo: &str,
        tag: Option<&str>,
        seed: &str,
        arch: &str,
        layers: usize,
    ) -> PushedImage {
        let (config, layers, manifest) = tiny_image(seed, arch, layers);
        let mut layer_digests = Vec::new();
        for l in &layers {
            layer_digests.push(self.push_blob(repo, &l.bytes).await);
        }
        let config_digest = self.push_blob(repo, &config.bytes).await;
        let reference = match tag {
            Some(t) => t.to_string(),
            None => manifest.digest().to_string(),
        };
        let digest = self.push_manifest(repo, &reference, &manifest).await;
        PushedImage {
            manifest: digest,
            manifest_bytes: manifest.bytes,
            config: config_digest,
            layers: layer_digests,
        }
    }

    /// Pushes a two-platform image index (amd64, arm64) tagged `tag`: children by digest
    /// first, then the index.
    pub async fn push_index(&self, repo: &str, tag: &str, seed: &str) -> PushedIndex {
        let mut children = Vec::new();
        let mut contents = Vec::new();
        for (arch, layers) in [("amd64", 1), ("arm64", 3)] {
            let img = self
                .push_image_for(repo, None, &format!("{seed}-{arch}"), arch, layers)
                .await;
            contents.push((
                Content {
                    media_type: OCI_MANIFEST.to_string(),
                    bytes: img.manifest_bytes.clone(),
                },
                arch,
            ));
            children.push(img);
        }
        let pairs: Vec<(&Content, &str)> = contents.iter().map(|(c, a)| (c, *a)).collect();
        let index = image_index(&pairs);
        let digest = self.push_manifest(repo, tag, &index).await;
        PushedIndex {
            index: digest,
            index_bytes: index.bytes,
            children,
        }
    }

    /// Pushes `tags.len()` distinct small manifests sharing one config and one layer, one
    /// per tag, with up to `parallel` manifest PUTs in flight. Returns tag → digest.
    pub async fn push_many(
        &self,
        repo: &str,
        tags: &[String],
        parallel: usize,
    ) -> BTreeMap<String, Digest> {
        let (config, layers, _) = tiny_image(repo, "amd64", 1);
        for l in &layers {
            self.push_blob(repo, &l.bytes).await;
        }
        self.push_blob(repo, &config.bytes).await;
        let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for tag in tags {
            let mut ann = BTreeMap::new();
            ann.insert(
                "org.opencontainers.image.version".to_string(),
                tag.to_string(),
            );
            let manifest = image_manifest(&config, &layers, Some(&ann));
            let pusher = self.clone();
            let sem = sem.clone();
            let repo = repo.to_string();
            let tag = tag.clone();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore");
                let d = pusher.push_manifest(&repo, &tag, &manifest).await;
                (tag, d)
            });
        }
        let mut out = BTreeMap::new();
        while let Some(r) = set.join_next().await {
            let (tag, d) = r.expect("push task");
            out.insert(tag, d);
        }
        out
    }

    /// The registry's own tag list of `repo` (no pagination: distribution 2.8 sends all).
    pub async fn tags(&self, repo: &str) -> Vec<String> {
        let resp = self
            .req(
                reqwest::Method::GET,
                &format!("{}/v2/{repo}/tags/list", self.base),
            )
            .send()
            .await
            .expect("tags GET");
        if resp.status() == 404 {
            return Vec::new();
        }
        let v: serde_json::Value =
            serde_json::from_slice(&resp.bytes().await.expect("tags body")).expect("tags JSON");
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }
}

/// Writes an OCI image layout at `dir`: each `(tag, manifest)` becomes a blob and an
/// `index.json` entry (annotated with the tag when there is one). Blobs the manifests refer
/// to are not written (pass them in `blobs`). Returns the manifests' digests.
pub fn write_oci_layout(
    dir: &Path,
    entries: &[(Option<&str>, &Content)],
    blobs: &[&Content],
) -> Vec<Digest> {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let mut manifests = Vec::new();
    let mut digests = Vec::new();
    for b in blobs {
        std::fs::write(dir.join("blobs/sha256").join(b.digest().hex()), &b.bytes).expect("blob");
    }
    for (tag, m) in entries {
        let d = m.digest();
        std::fs::write(dir.join("blobs/sha256").join(d.hex()), &m.bytes).expect("blob");
        let mut desc = m.descriptor();
        if let Some(t) = tag {
            desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": t});
        }
        manifests.push(desc);
        digests.push(d);
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec_pretty(&index).expect("json"),
    )
    .expect("index.json");
    digests
}

/// Where a paging proxy's `Link` headers point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkStyle {
    /// `</v2/NAME/tags/list?n=N&last=T>` (what distribution 3 sends).
    #[default]
    Relative,
    /// `<http://127.0.0.1:PORT/v2/...>`: absolute, same origin.
    Absolute,
    /// `<http://localhost:PORT/v2/...>`: another host (the same server under another
    /// name), which a client must refuse to follow.
    ForeignHost,
    /// Every page after the first links to itself: an endless loop.
    Loop,
}

/// Bearer-token auth demanded by the proxy.
#[derive(Debug, Clone, Default)]
pub struct BearerAuth {
    /// Credentials the token endpoint requires (anonymous tokens when `None`).
    pub credentials: Option<(String, String)>,
    /// Answer with `access_token` instead of `token`.
    pub access_token_field: bool,
}

/// How a [`PagingProxy`] rewrites answers.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Page tag lists with at most this many tags per page (also honouring a smaller `n`).
    pub page_size: Option<usize>,
    /// Where `Link` points.
    pub link: LinkStyle,
    /// Demand bearer tokens issued by the proxy's `/token` endpoint.
    pub bearer: Option<BearerAuth>,
    /// Drop `Docker-Content-Digest` from manifest answers (clients must hash the body).
    pub strip_digest_header: bool,
    /// Hold every answer this long (to make concurrent requests overlap).
    pub delay: Option<Duration>,
    /// Answer requests with these faults first, in order (see [`Fault`]).
    pub faults: Vec<Fault>,
    /// Answer blob GETs with a 307 to another host name of the proxy
    /// (`http://localhost:PORT/_storage/...`), which serves the blob without auth and
    /// records the `Authorization` header it was sent (see
    /// [`PagingProxy::storage_authorizations`]).
    pub redirect_blobs: bool,
    /// Append this many spaces to every manifest GET answer (a digest-false body; past
    /// 4 MiB, an oversized one).
    pub manifest_padding: Option<usize>,
    /// Answer tag lists with a list that never ends: every page holds `page_size` (default
    /// 1000) new tags and a relative `Link` to the next page.
    pub endless_tags: bool,
    /// Bearer tokens stop being accepted this long after they were issued, although the
    /// token endpoint still announces `expires_in: 300` (a token revoked early): a client
    /// must fetch a new one when a request with its cached token gets 401.
    pub token_ttl: Option<Duration>,
}

/// A failure the proxy answers instead of forwarding, for `times` requests (of `method`
/// only, when given) to `/v2/`, after reading their bodies.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The status to answer (503, 429...).
    pub status: u16,
    /// How many requests get it.
    pub times: u64,
    /// A `Retry-After` header to send.
    pub retry_after: Option<String>,
    /// Only requests of this method (`PUT`...) get it; others pass.
    pub method: Option<String>,
}

struct ProxyState {
    upstream: String,
    self_base: String,
    port: u16,
    options: ProxyOptions,
    client: reqwest::Client,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    token_requests: AtomicU64,
    log: Mutex<Vec<String>>,
    tokens: Mutex<HashSet<String>>,
    token_issued: Mutex<HashMap<String, Instant>>,
    faults: Mutex<std::collections::VecDeque<Fault>>,
    faults_served: AtomicU64,
    storage_auth: Mutex<Vec<Option<String>>>,
}

/// A proxy in front of a real registry that forwards every request and rewrites answers:
/// pages `/tags/list` with `Link` headers (distribution 2.8 ignores `n` and sends no
/// `Link`), optionally demands bearer tokens it issues itself, and counts what it sees.
/// Runs on its own thread; stopped on drop.
pub struct PagingProxy {
    state: Arc<ProxyState>,
    _server: ServerThread,
}

impl PagingProxy {
    /// Starts a proxy for the registry at `upstream` (`http://host:port`).
    pub fn start(upstream: &str, options: ProxyOptions) -> PagingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let faults = options.faults.iter().cloned().collect();
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            self_base: format!("http://127.0.0.1:{port}"),
            port,
            options,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            tokens: Mutex::new(HashSet::new()),
            token_issued: Mutex::new(HashMap::new()),
            faults: Mutex::new(faults),
            faults_served: AtomicU64::new(0),
            storage_auth: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(proxy_handler)
            .with_state(state.clone());
        PagingProxy {
            state,
            _server: ServerThread::serve(listener, app),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.state.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.state.self_base.clone()
    }

    /// Requests received (token requests included).
    pub fn request_count(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The most requests that were being answered at once.
    pub fn max_in_flight(&self) -> u64 {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests received by the token endpoint.
    pub fn token_request_count(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Requests answered with an injected [`Fault`].
    pub fn faults_served(&self) -> u64 {
        self.state.faults_served.load(Ordering::SeqCst)
    }

    /// The `Authorization` header (if any) of every request to the redirect target of
    /// [`ProxyOptions::redirect_blobs`].
    pub fn storage_authorizations(&self) -> Vec<Option<String>> {
        self.state.storage_auth.lock().expect("storage log").clone()
    }

    /// Every bearer token the token endpoint issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state
            .tokens
            .lock()
            .expect("tokens")
            .iter()
            .cloned()
            .collect()
    }

    /// `METHOD path?query` of every request received, in order.
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().expect("log").clone()
    }
}

/// An axum app served on its own thread and one-thread runtime (so that it answers while
/// a test blocks); stopped and joined on drop.
pub struct ServerThread {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Serves `app` on `listener` (bound, non-blocking) until dropped.
    pub fn serve(listener: TcpListener, app: axum::Router) -> ServerThread {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .expect("test server");
            });
        });
        ServerThread {
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    let q = query?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn respond(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> axum::response::Response {
    let mut b = axum::response::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(axum::body::Body::from(body)).expect("response")
}

async fn proxy_handler(
    axum::extract::State(st): axum::extract::State<Arc<ProxyState>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if let Some(d) = st.options.delay {
        tokio::time::sleep(d).await;
    }
    let resp = proxy_answer(&st, req).await;
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    resp
}

async fn proxy_answer(st: &ProxyState, req: axum::extract::Request) -> axum::response::Response {
    st.requests.fetch_add(1, Ordering::SeqCst);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    st.log.lock().expect("log").push(match &query {
        Some(q) => format!("{method} {path}?{q}"),
        None => format!("{method} {path}"),
    });

    // The token endpoint.
    if path == "/token" {
        st.token_requests.fetch_add(1, Ordering::SeqCst);
        let Some(bearer) = &st.options.bearer else {
            return respond(404, vec![], vec![]);
        };
        if let Some((user, pass)) = &bearer.credentials {
            use base64::Engine as _;
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            );
            let given = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if given != Some(expected.as_str()) {
                return respond(
                    401,
                    vec![("content-type".into(), "application/json".into())],
                    br#"{"details":"bad credentials"}"#.to_vec(),
                );
            }
        }
        let scope = query_param(query.as_deref(), "scope").unwrap_or_default();
        let token = format!(
            "tok-{}-{}",
            st.token_requests.load(Ordering::SeqCst),
            scope.replace([':', '/'], "_")
        );
        st.tokens.lock().expect("tokens").insert(token.clone());
        st.token_issued
            .lock()
            .expect("tokens")
            .insert(token.clone(), Instant::now());
        let field = if bearer.access_token_field {
            "access_token"
        } else {
            "token"
        };
        let body = serde_json::json!({ field: token, "expires_in": 300 });
        return respond(
            200,
            vec![("content-type".into(), "application/json".into())],
            serde_json::to_vec(&body).expect("json"),
        );
    }

    // The redirect target of blob GETs: another host name, no auth.
    let storage = path.starts_with("/_storage/v2/");
    let path = if storage {
        st.storage_auth.lock().expect("storage log").push(
            req.headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        );
        path["/_storage".len()..].to_string()
    } else {
        path
    };

    // Bearer auth in front of /v2/.
    if st.options.bearer.is_some() && path.starts_with("/v2/") && !storage {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let live = |t: &String| match st.options.token_ttl {
            None => true,
            Some(ttl) => st
                .token_issued
                .lock()
                .expect("tokens")
                .get(t)
                .is_some_and(|at| at.elapsed() < ttl),
        };
        let ok = given.is_some_and(|t| st.tokens.lock().expect("tokens").contains(&t) && live(&t));
        if !ok {
            let name = repo_of(&path).unwrap_or_default();
            let challenge = format!(
                r#"Bearer realm="{}/token",service="relsync-test",scope="repository:{name}:pull""#,
                st.self_base
            );
            return respond(
                401,
                vec![
                    ("www-authenticate".into(), challenge),
                    ("content-type".into(), "application/json".into()),
                ],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                    .to_vec(),
            );
        }
    }

    if st.options.redirect_blobs
        && !storage
        && method == axum::http::Method::GET
        && path.contains("/blobs/")
        && !path.contains("/blobs/uploads")
    {
        return respond(
            307,
            vec![(
                "location".into(),
                format!("http://localhost:{}/_storage{path}", st.port),
            )],
            vec![],
        );
    }

    if st.options.endless_tags && method == axum::http::Method::GET && path.ends_with("/tags/list")
    {
        let n = st.options.page_size.unwrap_or(1000);
        let start = query_param(query.as_deref(), "last")
            .and_then(|l| l.strip_prefix('t').and_then(|i| i.parse::<usize>().ok()))
            .map_or(0, |i| i + 1);
        let tags: Vec<String> = (start..start + n).map(|i| format!("t{i:09}")).collect();
        let link = format!(
            "<{path}?n={n}&last={}>; rel=\"next\"",
            tags.last().cloned().unwrap_or_default()
        );
        let body = serde_json::json!({"name": repo_of(&path), "tags": tags});
        return respond(
            200,
            vec![
                ("content-type".into(), "application/json".into()),
                ("link".into(), link),
            ],
            serde_json::to_vec(&body).expect("json"),
        );
    }

    // Forward upstream.
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 256 * 1024 * 1024)
        .await
        .unwrap_or_default();
    if path.starts_with("/v2/") && !storage {
        let fault = {
            let mut faults = st.faults.lock().expect("faults");
            let applies = faults
                .front()
                .is_some_and(|f| f.method.as_deref().is_none_or(|m| m == method.as_str()));
            if applies {
                let f = faults.front_mut().expect("front");
                f.times = f.times.saturating_sub(1);
                let answer = f.clone();
                if f.times == 0 {
                    faults.pop_front();
                }
                Some(answer)
            } else {
                None
            }
        };
        if let Some(f) = fault {
            st.faults_served.fetch_add(1, Ordering::SeqCst);
            let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
            if let Some(ra) = f.retry_after {
                headers.push(("retry-after".into(), ra));
            }
            return respond(
                f.status,
                headers,
                br#"{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}"#.to_vec(),
            );
        }
    }
    let is_tag_list = method == axum::http::Method::GET && path.ends_with("/tags/list");
    // Tag lists are fetched whole (without paging parameters) and paged here.
    let upstream_url = if is_tag_list && st.options.page_size.is_some() {
        format!("{}{path}", st.upstream)
    } else {
        match &query {
            Some(q) => format!("{}{path}?{q}", st.upstream),
            None => format!("{}{path}", st.upstream),
        }
    };
    let mut rb = st.client.request(method.clone(), &upstream_url);
    for (k, v) in headers.iter() {
        let name = k.as_str();
        if matches!(
            name,
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) || (name == "authorization" && st.options.bearer.is_some())
        {
            continue;
        }
        rb = rb.header(k.clone(), v.clone());
    }
    let resp = match rb.body(body.to_vec()).send().await {
        Ok(r) => r,
        Err(e) => return respond(502, vec![], format!("upstream: {e}").into_bytes()),
    };
    let status = resp.status().as_u16();
    let mut out_headers: Vec<(String, String)> = Vec::new();
    for (k, v) in resp.headers() {
        let name = k.as_str();
        if matches!(name, "connection" | "transfer-encoding") {
            continue;
        }
        if st.options.strip_digest_header && name == "docker-content-digest" {
            continue;
        }
        let Ok(v) = v.to_str() else { continue };
        let v = if name == "location" {
            v.replace(&st.upstream, &st.self_base)
        } else {
            v.to_string()
        };
        out_headers.push((name.to_string(), v));
    }
    let mut bytes = resp.bytes().await.unwrap_or_default().to_vec();
    if let (Some(n), 200, true) = (
        st.options.manifest_padding,
        status,
        method == axum::http::Method::GET && path.contains("/manifests/"),
    ) {
        bytes.resize(bytes.len() + n, b' ');
        out_headers.retain(|(k, _)| k != "content-length");
    }

    if let (true, 200, Some(page_size)) = (is_tag_list, status, st.options.page_size) {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        let n = query_param(query.as_deref(), "n")
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(page_size, |n| n.min(page_size))
            .max(1);
        let last = query_param(query.as_deref(), "last");
        let rest: Vec<String> = tags
            .into_iter()
            .filter(|t| last.as_ref().is_none_or(|l| t > l))
            .collect();
        let page: Vec<String> = rest.iter().take(n).cloned().collect();
        let mut headers: Vec<(String, String)> = out_headers
            .into_iter()
            .filter(|(k, _)| k != "content-length" && k != "link")
            .collect();
        if rest.len() > page.len() {
            let page_last = page.last().cloned().unwrap_or_default();
            let link_last = match st.options.link {
                // Page 2 onwards links to itself.
                LinkStyle::Loop => last.clone().unwrap_or(page_last),
                _ => page_last,
            };
            let rel = format!("{path}?n={n}&last={link_last}");
            let target = match st.options.link {
                LinkStyle::Relative | LinkStyle::Loop => rel,
                LinkStyle::Absolute => format!("{}{rel}", st.self_base),
                LinkStyle::ForeignHost => format!("http://localhost:{}{rel}", st.port),
            };
            headers.push(("link".into(), format!("<{target}>; rel=\"next\"")));
        }
        let body = serde_json::json!({"name": v["name"], "tags": page});
        return respond(status, headers, serde_json::to_vec(&body).expect("json"));
    }
    respond(status, out_headers, bytes)
}

/// The repository name of a `/v2/<name>/(tags|manifests|blobs)/...` path.
fn repo_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    for marker in ["/tags/", "/manifests/", "/blobs/"] {
        if let Some(i) = rest.find(marker) {
            return Some(rest[..i].to_string());
        }
    }
    None
}

// ---- Git repositories and the relsync binary --------------------------------------------

/// The project root (where the bundled example lives).
pub fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A throwaway Git repository, and `relsync` run in it.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// A repository holding a copy of the bundled example, committed.
    pub fn example() -> Repo {
        let repo = Repo::new();
        repo.copy_example();
        repo.commit("example");
        repo
    }

    /// Copies the bundled example (manifests, policies, layouts, relsync.yaml) in,
    /// uncommitted.
    pub fn copy_example(&self) {
        for dir in ["manifests", "policies", "example"] {
            copy_dir(&project().join(dir), &self.path().join(dir));
        }
        std::fs::copy(
            project().join("relsync.yaml"),
            self.path().join("relsync.yaml"),
        )
        .unwrap();
    }

    /// Commits everything with the author date `author_date` and the committer date
    /// `committer_date` (`None`: now), e.g. `2026-01-01T00:00:00Z` or `@1700000000 +0000`.
    pub fn commit_at(&self, message: &str, author_date: &str, committer_date: Option<&str>) {
        self.git(&["add", "-A"]);
        let mut cmd = self.git_command(&["commit", "-q", "--allow-empty", "-m", message]);
        cmd.env("GIT_AUTHOR_DATE", author_date)
            .env_remove("GIT_COMMITTER_DATE");
        if let Some(d) = committer_date {
            cmd.env("GIT_COMMITTER_DATE", d);
        }
        let out = cmd
            .output()
            .expect("git must be installed to run these tests");
        assert!(
            out.status.success(),
            "git commit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Commits everything, authored and committed at `date`.
    pub fn commit_dated(&self, message: &str, date: &str) {
        self.commit_at(message, date, Some(date));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `git ARGS` in the repository, as "Test Author" and "Test Committer".
    pub fn git_command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new("git");
        cmd.args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.org")
            .env("GIT_COMMITTER_NAME", "Test Committer")
            .env("GIT_COMMITTER_EMAIL", "committer@example.org");
        cmd
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = self
            .git_command(args)
            .output()
            .expect("git must be installed to run these tests");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn write(&self, path: &str, contents: &str) {
        let p = self.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).unwrap()
    }

    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn relsync(&self, args: &[&str]) -> Run {
        self.relsync_env(args, &[])
    }

    /// `relsync` with extra environment variables (e.g. `KUBECONFIG`).
    pub fn relsync_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        relsync_in(self.path(), args, env)
    }
}

/// `relsync ARGS` run in `dir` with `env` added, no `RUST_LOG`, `KUBECONFIG` or Git
/// identity inherited from the test's environment, no colour.
pub fn relsync_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_relsync"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG")
        .env_remove("GIT_AUTHOR_NAME")
        .env_remove("GIT_AUTHOR_EMAIL")
        .env_remove("GIT_COMMITTER_NAME")
        .env_remove("GIT_COMMITTER_EMAIL")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run(cmd.output().unwrap())
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub struct Run(pub std::process::Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().expect("killed by a signal")
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout()))
    }
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}
