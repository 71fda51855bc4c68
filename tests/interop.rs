//! Registry interop: `relsync sync` from a distribution 2.8 source into distribution v3's
//! `registry` (the second registry implementation, built by `scripts/test-deps.sh`), and
//! into 2.8, read back by two independent clients built the same way, `crane`
//! (go-containerregistry) and `regctl` (regclient): digest equality, `crane validate --fast`
//! of every platform (the test layers are synthetic, not tarballs), and a full `regctl image
//! copy` out of the target (which checks every blob's digest). On v3 a prune deletes tags by
//! name (tag DELETE, which 2.8 refuses), never the manifests under them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relsync::digest::Digest;

use crate::test_deps;
use crate::util::{
    Content, Repo, SOURCE, TARGET, TestRegistry, VERSIONS, block_on, free_port, http_status,
    three_releases, write_channels,
};

/// distribution v3's `registry` on a free loopback port, storage in a temporary folder,
/// deletes enabled; killed on drop. (Also started by `signatures_peers`.)
pub(crate) struct RegistryV3 {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RegistryV3 {
    pub(crate) fn start() -> RegistryV3 {
        let bin = test_deps::binary("registry");
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:5000\n  secret: relsync-test-secret\n",
                storage.display()
            ),
        )
        .unwrap();
        let log_path = dir.path().join("registry.log");
        for _attempt in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut cmd = Command::new(&bin);
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(k);
                }
            }
            let mut child = cmd
                .arg("serve")
                .arg(&config)
                .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if http_status(port, "/v2/") == Some(200) {
                    return RegistryV3 {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "distribution v3 did not come up; its log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RegistryV3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a peer binary; panics with its stderr when it fails. Its output, trimmed.
fn peer(name: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&peer_raw(name, args))
        .trim()
        .to_string()
}

/// As [`peer`], the output as it is.
fn peer_raw(name: &str, args: &[&str]) -> Vec<u8> {
    let bin = test_deps::binary(name);
    let out = Command::new(&bin)
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn crane(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--insecure");
    peer("crane", &all)
}

/// regctl with plain HTTP for `host`, its config in `config_dir`.
fn regctl(config_dir: &Path, host: &str, args: &[&str]) -> String {
    let bin = test_deps::binary("regctl");
    let run = |args: &[&str]| {
        let out = Command::new(&bin)
            .args(args)
            .env("HOME", config_dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        assert!(
            out.status.success(),
            "regctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run(&["registry", "set", host, "--tls", "disabled"]);
    run(args)
}

/// The target registry: distribution v3, or Debian's 2.8.
enum Target {
    V3(RegistryV3),
    V2(TestRegistry),
}

impl Target {
    fn host(&self) -> String {
        match self {
            Target::V3(r) => r.host(),
            Target::V2(r) => r.host(),
        }
    }
}

/// A 2.8 source with three multi-arch releases, a target, and a Git repository whose
/// channels publish them (next = all three, stable = the first two).
struct Setup {
    src: TestRegistry,
    dst: Target,
    repo: Repo,
    digests: Vec<Digest>,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_target(Target::V3(RegistryV3::start()))
    }

    fn with_target(dst: Target) -> Setup {
        let src = TestRegistry::start();
        let (repo, digests) = three_releases(&src, &dst.host(), "");
        Setup {
            src,
            dst,
            repo,
            digests,
        }
    }

    fn digest_of(&self, version: &str) -> String {
        self.digests[VERSIONS.iter().position(|v| *v == version).unwrap()].to_string()
    }

    fn reference(&self, tag: &str) -> String {
        format!("{}/{TARGET}:{tag}", self.dst.host())
    }

    fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = crane(&["ls", &format!("{}/{TARGET}", self.dst.host())])
            .lines()
            .map(str::to_string)
            .collect();
        tags.sort();
        tags
    }
}

#[test]
fn a_sync_into_distribution_v3_reads_back_whole_with_crane_and_regctl() {
    reads_back_whole(Setup::new());
}

#[test]
fn a_sync_into_distribution_2_8_reads_back_whole_with_crane_and_regctl() {
    reads_back_whole(Setup::with_target(Target::V2(TestRegistry::start())));
}

fn reads_back_whole(s: Setup) {
    s.repo.relsync(&["sync"]).expect_code(0);
    let config = tempfile::tempdir().unwrap();
    let mut want: Vec<(String, String)> = VERSIONS
        .iter()
        .map(|v| (v.to_string(), s.digest_of(v)))
        .collect();
    want.push(("next".into(), s.digest_of("4.16.0")));
    want.push(("stable".into(), s.digest_of("4.15.0")));
    for (tag, digest) in &want {
        let reference = s.reference(tag);
        assert_eq!(&crane(&["digest", &reference]), digest, "crane: tag {tag}");
        assert_eq!(
            &regctl(
                config.path(),
                &s.dst.host(),
                &["image", "digest", &reference]
            ),
            digest,
            "regctl: tag {tag}"
        );
        // Every platform is well-formed, every blob present with its digest.
        crane(&["validate", "--fast", "--remote", &reference]);
        let out = tempfile::tempdir().unwrap();
        regctl(
            config.path(),
            &s.dst.host(),
            &[
                "image",
                "copy",
                &reference,
                &format!("ocidir://{}:{tag}", out.path().display()),
            ],
        );
    }
    let mut tags: Vec<String> = want.iter().map(|(t, _)| t.clone()).collect();
    tags.sort();
    assert_eq!(s.tags(), tags);
    // What crane copies out of the source digests the same as what relsync put in v3.
    let src_ref = format!("{}/{SOURCE}:4.15.0", s.src.host());
    assert_eq!(
        crane(&["digest", &src_ref]),
        crane(&["digest", &s.reference("stable")])
    );
    s.repo.relsync(&["sync"]).expect_code(0);
    s.repo.relsync(&["plan"]).expect_code(0);
    s.repo.relsync(&["drift"]).expect_code(0);
}

/// On distribution v3 a pruned tag is deleted by name: the tag goes, the manifest under it
/// (a platform image of a desired index, or a withdrawn release) stays pullable by digest.
#[test]
fn prune_on_distribution_v3_deletes_tags_by_name_and_keeps_their_manifests() {
    let s = Setup::new();
    s.repo.relsync(&["sync"]).expect_code(0);
    let host = s.dst.host();
    let index: serde_json::Value =
        serde_json::from_str(&crane(&["manifest", &s.reference("4.14.0")])).unwrap();
    let child = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let child_bytes = peer_raw(
        "crane",
        &[
            "manifest",
            "--insecure",
            &format!("{host}/{TARGET}@{child}"),
        ],
    );
    assert_eq!(Digest::sha256_of(&child_bytes).to_string(), child);
    block_on(
        crate::util::Pusher::new(&format!("http://{host}"), None).push_manifest(
            TARGET,
            "extra-amd64",
            &Content {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                bytes: child_bytes,
            },
        ),
    );
    write_channels(&s.repo, &VERSIONS[..2], &VERSIONS[..2]);
    s.repo.commit("withdraw 4.16.0 from next");

    let sync = s.repo.relsync(&["sync", "--prune"]);
    sync.expect_code(0);
    assert_eq!(
        s.tags(),
        ["4.14.0", "4.15.0", "next", "stable"],
        "the extra tags are gone: {}",
        sync.stderr()
    );
    assert_eq!(
        crane(&["digest", &s.reference("next")]),
        s.digest_of("4.15.0")
    );
    // The manifests under the deleted tags are still there: the platform image that 4.14.0
    // needs, and the withdrawn 4.16.0.
    crane(&["validate", "--fast", "--remote", &s.reference("4.14.0")]);
    crane(&[
        "validate",
        "--fast",
        "--remote",
        &format!("{host}/{TARGET}@{child}"),
    ]);
    crane(&[
        "validate",
        "--fast",
        "--remote",
        &format!("{host}/{TARGET}@{}", s.digest_of("4.16.0")),
    ]);
    s.repo.relsync(&["plan"]).expect_code(0);
    s.repo.relsync(&["drift"]).expect_code(0);
}
