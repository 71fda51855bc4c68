//! The mirror engine and `relsync sync` on specific behaviour: byte-exact layout copies of
//! the bundled example, the README's offline plan → sync → drift, one upload per shared
//! blob, cross-repository mounts on one registry, and whole-blob retries after a failed
//! upload. (The broad end-to-end sync tests live in `mirror.rs`.)

use std::path::Path;
use std::sync::Arc;

use relsync::config::Config;
use relsync::digest::Digest;
use relsync::registry::mirror::{Mirror, parse_manifest};
use relsync::registry::{Registries, RetryPolicy};
use serde_json::Value;

use crate::util::{
    Content, Fault, OCI_CONFIG, OCI_LAYER, PagingProxy, ProxyOptions, Repo, TestRegistry, block_on,
    image_index, image_manifest, project, tar_with_file,
};

/// The example's source layout: tag → digest of the releases its stream declares (the
/// layout also holds a nightly that Git does not know yet, for the README's `add`).
fn example_source() -> (std::path::PathBuf, Vec<(String, Digest)>) {
    let dir = project().join("example/registry.ci.openshift.org/origin/release-scos");
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let stream = std::fs::read_to_string(project().join("manifests/streams/4-scos.yaml")).unwrap();
    let releases = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            let tag = m["annotations"]["org.opencontainers.image.ref.name"].as_str();
            tag.is_some_and(|t| stream.contains(&format!("- version: {t}\n")))
        })
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                Digest::parse(m["digest"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    (dir, releases)
}

/// Walks the content of `digest` in the layout `dir`, checking every manifest and blob is
/// there and true to its digest; returns how many it checked.
fn check_complete(dir: &Path, digest: &Digest) -> usize {
    let read = |d: &Digest| {
        let bytes = std::fs::read(dir.join("blobs/sha256").join(d.hex()))
            .unwrap_or_else(|e| panic!("{d} missing in {}: {e}", dir.display()));
        assert_eq!(&Digest::sha256_of(&bytes), d, "{d} is digest-false");
        bytes
    };
    let bytes = read(digest);
    let parsed = parse_manifest("", &bytes).unwrap();
    let mut n = 1;
    for b in &parsed.blobs {
        read(&b.digest);
        n += 1;
    }
    for c in &parsed.children {
        n += check_complete(dir, &c.digest);
    }
    n
}

#[test]
fn copies_the_example_releases_layout_to_layout_byte_exact() {
    let (src_dir, releases) = example_source();
    assert_eq!(releases.len(), 4);
    let out = tempfile::tempdir().unwrap();
    let registries = Registries::from_config(&Config::default(), out.path()).unwrap();
    let source = registries
        .repository(&format!("oci:{}", src_dir.display()))
        .unwrap();
    let target = registries.repository("oci:copy").unwrap();

    let mirror = Arc::new(Mirror::new(4, RetryPolicy::default()));
    block_on(async {
        for (tag, digest) in &releases {
            let raw = mirror
                .copy_image(&source, &target, digest, tag)
                .await
                .unwrap();
            assert_eq!(&raw.digest, digest);
            assert_eq!(raw.media_type, "application/vnd.oci.image.index.v1+json");
        }
    });
    let copy = out.path().join("copy");
    for (_, digest) in &releases {
        // The index and each child manifest byte for byte; every blob present and true.
        let n = check_complete(&copy, digest);
        assert!(n >= 7, "an index, two children, configs and layers: {n}");
        let file = |root: &Path| std::fs::read(root.join("blobs/sha256").join(digest.hex()));
        assert_eq!(file(&copy).unwrap(), file(&src_dir).unwrap());
    }
    let s = mirror.stats();
    assert_eq!(s.images, 4);
    assert_eq!(s.manifests, 12, "4 indexes and 8 children");
    assert!(s.blobs_copied > 0 && s.bytes_copied > 0, "{s:?}");
    // Content only: the engine names nothing.
    let tags: Vec<String> = match std::fs::read(copy.join("index.json")) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).unwrap()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .map(str::to_string)
            .collect(),
        Err(_) => Vec::new(),
    };
    assert!(tags.is_empty(), "no tag written by the engine: {tags:?}");

    // A second engine finds everything in place and copies nothing.
    let again = Arc::new(Mirror::new(4, RetryPolicy::default()));
    block_on(async {
        for (tag, digest) in &releases {
            again
                .copy_image(&source, &target, digest, tag)
                .await
                .unwrap();
        }
    });
    let s = again.stats();
    assert_eq!((s.images, s.manifests, s.blobs_copied), (0, 0, 0), "{s:?}");
}

#[test]
fn the_bundled_example_syncs_offline_and_converges() {
    let repo = Repo::example();
    repo.relsync(&["plan"]).expect_code(2);
    let before = repo.read("example/quay.io/okd/scos-release/index.json");
    let blobs = || {
        std::fs::read_dir(
            repo.path()
                .join("example/quay.io/okd/scos-release/blobs/sha256"),
        )
        .unwrap()
        .count()
    };
    let blob_count = blobs();
    repo.relsync(&["sync", "--dry-run"]).expect_code(2);
    assert_eq!(
        repo.read("example/quay.io/okd/scos-release/index.json"),
        before,
        "--dry-run wrote a tag"
    );
    assert_eq!(blobs(), blob_count, "--dry-run wrote a blob");

    let sync = repo.relsync(&["sync"]);
    sync.expect_code(0);
    assert!(
        sync.stdout().contains("18 actions"),
        "the plan first: {}",
        sync.stdout()
    );
    let summary = sync.stderr();
    assert!(
        summary.contains("3 images mirrored")
            && summary.contains("tags: 11 created, 2 moved, 5 deleted; 0 failed, 0 conflicts"),
        "{summary}"
    );
    assert_ne!(
        repo.read("example/quay.io/okd/scos-release/index.json"),
        before
    );
    repo.relsync(&["plan"]).expect_code(0);
    repo.relsync(&["drift"]).expect_code(0);

    // In sync: nothing to do, nothing written.
    let index = repo.read("example/quay.io/okd/scos-release/index.json");
    let again = repo.relsync(&["sync"]);
    again.expect_code(0);
    assert!(
        again.stderr().contains("0 images mirrored")
            && again.stderr().contains("0 created, 0 moved, 0 deleted"),
        "{}",
        again.stderr()
    );
    assert_eq!(
        repo.read("example/quay.io/okd/scos-release/index.json"),
        index
    );
    let target = repo.path().join("example/quay.io/okd/scos-release");
    let (_, releases) = example_source();
    for (_, digest) in &releases[1..] {
        check_complete(&target, digest);
    }
    // The payload target: each published release's 4 component tags, the tombstoned one's
    // gone.
    let content = repo.read("example/quay.io/okd/scos-content/index.json");
    for (version, count) in [
        ("4.14.0-0.okd-scos-2023-09-29-232633-", 0),
        ("4.14.0-0.okd-scos-2023-10-11-084613-", 4),
        ("4.15.0-0.okd-scos-2024-01-18-223523-", 4),
        ("4.16.0-0.okd-scos-2024-09-24-151747-", 4),
    ] {
        assert_eq!(
            content.matches(&format!("\"{version}")).count(),
            count,
            "{content}"
        );
    }
}

/// Two single-platform releases in `repo` on `registry`, sharing their first layer.
/// Returns (digests, the shared layer).
fn push_sharing_releases(registry: &TestRegistry, repo: &str) -> (Vec<Digest>, Digest) {
    let pusher = registry.pusher();
    let common = Content {
        media_type: OCI_LAYER.to_string(),
        bytes: tar_with_file("common.txt", &vec![b'c'; 64 * 1024]),
    };
    block_on(async {
        let mut digests = Vec::new();
        for v in ["1.0.0", "1.1.0"] {
            let own = Content {
                media_type: OCI_LAYER.to_string(),
                bytes: tar_with_file("own.txt", format!("release {v}").as_bytes()),
            };
            let config = Content {
                media_type: OCI_CONFIG.to_string(),
                bytes: format!(r#"{{"architecture":"amd64","os":"linux","v":"{v}"}}"#).into_bytes(),
            };
            for b in [&common, &own, &config] {
                pusher.push_blob(repo, &b.bytes).await;
            }
            let manifest = image_manifest(&config, &[common.clone(), own], None);
            pusher
                .push_manifest(repo, &manifest.digest().to_string(), &manifest)
                .await;
            let index = image_index(&[(&manifest, "amd64")]);
            digests.push(pusher.push_manifest(repo, v, &index).await);
        }
        (digests, common.digest())
    })
}

/// A Git repository syncing `digests` (versions 1.0.0, 1.1.0) from `source` to `target`;
/// `hosts` are the registries to configure (plain HTTP).
fn sync_repo(hosts: &[String], source: &str, target: &str, digests: &[Digest]) -> Repo {
    let repo = Repo::new();
    let registries: String = hosts
        .iter()
        .map(|h| format!("    - {{host: '{h}', insecure: true}}\n"))
        .collect();
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n{registries}"
        ),
    );
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: app}}\nspec:\n  source: {source}\n  target: {target}\n  releases:\n    - {{version: 1.0.0, digest: '{}'}}\n    - {{version: 1.1.0, digest: '{}'}}\n",
            digests[0], digests[1]
        ),
    );
    repo.write(
        "manifests/channel.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {name: app-stable}\nspec:\n  stream: app\n  tags: [stable]\n  versions: [1.0.0, 1.1.0]\n",
    );
    repo.commit("two releases");
    repo
}

#[test]
fn a_blob_shared_by_two_releases_is_read_and_uploaded_once() {
    let (src, dst) = (TestRegistry::start(), TestRegistry::start());
    let (digests, common) = push_sharing_releases(&src, "app/ci");
    let repo = sync_repo(
        &[src.host(), dst.host()],
        &format!("{}/app/ci", src.host()),
        &format!("{}/app/release", dst.host()),
        &digests,
    );
    let reads_before = src.served_requests().len();
    let sync = repo.relsync(&["sync"]);
    sync.expect_code(0);
    assert!(
        sync.stderr().contains("2 images mirrored (5 blobs"),
        "2 configs, 2 own layers, 1 shared: {}",
        sync.stderr()
    );

    let uploads: Vec<String> = dst
        .served_writes()
        .into_iter()
        .filter(|w| w.starts_with("PUT ") && w.contains("digest=") && w.contains(common.hex()))
        .collect();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    let reads: Vec<String> = src.served_requests()[reads_before..]
        .iter()
        .filter(|r| r.starts_with("GET ") && r.contains(&format!("/blobs/{common}")))
        .cloned()
        .collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
    repo.relsync(&["drift"]).expect_code(0);
}

#[test]
fn on_one_registry_blobs_are_mounted_not_copied() {
    let reg = TestRegistry::start();
    let (digests, _) = push_sharing_releases(&reg, "app/ci");
    let repo = sync_repo(
        &[reg.host()],
        &format!("{}/app/ci", reg.host()),
        &format!("{}/app/release", reg.host()),
        &digests,
    );
    let before = reg.served_requests().len();
    let sync = repo.relsync(&["sync"]);
    sync.expect_code(0);
    assert!(
        sync.stderr()
            .contains("(0 blobs, 0 B copied, 5 mounted, 0 skipped)"),
        "{}",
        sync.stderr()
    );
    let requests = reg.served_requests()[before..].to_vec();
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.starts_with("POST /v2/app/release/blobs/uploads/") && r.contains("mount="))
            .count(),
        5,
        "{requests:?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("GET /v2/app/ci/blobs/")),
        "no blob read: {requests:?}"
    );
    repo.relsync(&["drift"]).expect_code(0);
}

#[test]
fn a_failed_upload_is_retried_whole() {
    let (src, dst) = (TestRegistry::start(), TestRegistry::start());
    let (digests, _) = push_sharing_releases(&src, "app/ci");
    // The target's first two PUTs (blob uploads: content goes first) answer 503.
    let proxy = PagingProxy::start(
        &dst.base_url(),
        ProxyOptions {
            faults: vec![Fault {
                status: 503,
                times: 2,
                retry_after: None,
                method: Some("PUT".to_string()),
            }],
            ..Default::default()
        },
    );
    let repo = sync_repo(
        &[src.host(), proxy.host()],
        &format!("{}/app/ci", src.host()),
        &format!("{}/app/release", proxy.host()),
        &digests,
    );
    let sync = repo.relsync(&["sync"]);
    sync.expect_code(0);
    assert!(
        sync.stderr().contains(" retries)") && sync.stderr().contains("0 failed"),
        "{}",
        sync.stderr()
    );
    // Every blob ended up uploaded exactly once successfully, and the tags hold Git's digests.
    repo.relsync(&["drift"]).expect_code(0);
    repo.relsync(&["plan"]).expect_code(0);
}

/// The example's live index.json, as tag → digest.
fn live_tags(repo: &Repo) -> std::collections::BTreeMap<String, String> {
    let index: Value =
        serde_json::from_str(&repo.read("example/quay.io/okd/scos-release/index.json")).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            Some((
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()?
                    .to_string(),
                m["digest"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn an_immutable_conflict_is_reported_the_rest_synced_and_exit_is_one() {
    const R1: &str = "4.14.0-0.okd-scos-2023-09-29-232633";
    const R2: &str = "4.14.0-0.okd-scos-2023-10-11-084613";
    const R4: &str = "4.16.0-0.okd-scos-2024-09-24-151747";
    let repo = Repo::example();
    let index_path = "example/quay.io/okd/scos-release/index.json";
    let mut index: Value = serde_json::from_str(&repo.read(index_path)).unwrap();
    let r1_digest = live_tags(&repo)[R1].clone();
    for m in index["manifests"].as_array_mut().unwrap() {
        if m["annotations"]["org.opencontainers.image.ref.name"] == R2 {
            m["digest"] = Value::String(r1_digest.clone());
        }
    }
    repo.write(index_path, &serde_json::to_string_pretty(&index).unwrap());
    repo.commit("someone moved an immutable version tag");

    let sync = repo.relsync(&["sync"]);
    sync.expect_code(1);
    assert!(
        sync.stderr()
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains(R2) && l.contains("immutable")),
        "{}",
        sync.stderr()
    );
    assert!(
        sync.stderr().contains("0 failed, 0 conflicts"),
        "{}",
        sync.stderr()
    );
    let live = live_tags(&repo);
    assert_eq!(live[R2], r1_digest, "an immutable tag is never moved");
    assert!(live.contains_key(R4), "the other actions ran");
    assert!(!live.contains_key(R1), "the tombstoned tag is deleted");
}

#[test]
fn a_plan_over_the_delete_cap_writes_nothing() {
    let repo = Repo::example();
    let policy = repo.read("policies/default.yaml");
    repo.write(
        "policies/default.yaml",
        &policy.replace("maxDeletesPerSync: 5", "maxDeletesPerSync: 0"),
    );
    repo.commit("no deletes");
    let before = live_tags(&repo);
    let blobs = || {
        std::fs::read_dir(
            repo.path()
                .join("example/quay.io/okd/scos-release/blobs/sha256"),
        )
        .unwrap()
        .count()
    };
    let blob_count = blobs();
    let sync = repo.relsync(&["sync"]);
    sync.expect_code(1);
    assert!(
        sync.stderr().contains("--allow-deletes 1")
            && sync.stderr().contains("nothing was written"),
        "{}",
        sync.stderr()
    );
    assert_eq!(live_tags(&repo), before);
    assert_eq!(blobs(), blob_count, "not even content");
    // Dry runs never write, and exit like plan.
    repo.relsync(&["sync", "--dry-run", "--allow-deletes", "1"])
        .expect_code(2);
    assert_eq!(live_tags(&repo), before);
    repo.relsync(&["sync", "--allow-deletes", "1"])
        .expect_code(0);
    repo.relsync(&["plan"]).expect_code(0);
}
