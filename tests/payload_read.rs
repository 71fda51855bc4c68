//! Reading a release's component list (`relsync::payload::read::read_components`) from
//! release images laid out as `oc adm release new` lays them out (tests/util/payload.rs),
//! in a real docker-registry and in `oci:` layouts.

use std::path::Path;

use relsync::config::Config;
use relsync::digest::Digest;
use relsync::payload::Budget;
use relsync::payload::read::read_components;
use relsync::registry::{CredentialLookup, Registries};

use crate::util::{
    BuiltRelease, Content, OCI_LAYER, TestRegistry, gzip_tar, multiarch_release, payload_releases,
    push_built_image, push_release, release_image, write_release_layouts,
};

fn registries(hosts: &[String], dir: &Path) -> Registries {
    let entries: String = hosts
        .iter()
        .map(|h| format!("    - {{host: '{h}', insecure: true}}\n"))
        .collect();
    let yaml =
        format!("apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n{entries}");
    let config: Config = relsync::config::load("relsync.yaml", yaml.as_bytes()).expect("config");
    let lookup = CredentialLookup::new(std::sync::Arc::new(|_: &str| None), Vec::new());
    Registries::from_config_with(&config, dir, lookup).expect("registries")
}

/// Component name → (tag, digest) as the reader returns them, for comparing with
/// [`BuiltRelease::component_tags`].
fn tags_of(list: &relsync::payload::ComponentList, version: &str) -> Vec<(String, Digest)> {
    list.tags(version)
        .expect("tags")
        .into_iter()
        .map(|(t, c)| (t, c.digest.clone()))
        .collect()
}

fn expected(r: &BuiltRelease) -> Vec<(String, Digest)> {
    r.component_tags().into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_component_list_of_each_release_from_a_registry() {
    let reg = TestRegistry::start();
    let pusher = reg.pusher();
    let source = format!("{}/okd/content", reg.host());
    let releases = payload_releases(&["4.14.0", "4.14.1"], 6, 2, &source);
    for r in &releases {
        push_release(&pusher, "okd/release", "okd/content", r).await;
    }
    // Consecutive releases share most components.
    let a = releases[0].component_tags();
    let b = releases[1].component_tags();
    let shared = a.values().filter(|d| b.values().any(|e| e == *d)).count();
    assert_eq!(shared, 4, "{a:?} {b:?}");

    let dir = tempfile::tempdir().unwrap();
    let regs = registries(&[reg.host()], dir.path());
    let repo = regs
        .repository(&format!("{}/okd/release", reg.host()))
        .unwrap();
    for r in &releases {
        let list = read_components(&repo, &r.version, &r.digest(), &Budget::default())
            .await
            .expect("component list");
        assert_eq!(list.len(), 6);
        assert!(
            list.components
                .iter()
                .all(|c| c.source == source && c.arch.is_none())
        );
        assert_eq!(tags_of(&list, &r.version), expected(r));
    }
    // Only the release manifest and its last layer were read: one GET each per release.
    let gets: Vec<String> = reg
        .served_requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /v2/okd/release/"))
        .collect();
    assert_eq!(gets.len(), 4, "{gets:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_every_platform_of_a_multiarch_release() {
    let reg = TestRegistry::start();
    let pusher = reg.pusher();
    let source = format!("{}/okd/content", reg.host());
    let r = multiarch_release("4.15.0", &source, &["cli", "etcd"], &["installer"]);
    push_release(&pusher, "okd/release", "okd/content", &r).await;
    let dir = tempfile::tempdir().unwrap();
    let regs = registries(&[reg.host()], dir.path());
    let repo = regs
        .repository(&format!("{}/okd/release", reg.host()))
        .unwrap();
    let list = read_components(&repo, &r.version, &r.digest(), &Budget::default())
        .await
        .expect("component list");
    let tags = tags_of(&list, "4.15.0");
    assert_eq!(tags, expected(&r));
    let names: Vec<&str> = tags.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        [
            "4.15.0-amd64-installer",
            "4.15.0-arm64-installer",
            "4.15.0-cli",
            "4.15.0-etcd"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_payload_is_refused_naming_version_layer_and_cause() {
    let reg = TestRegistry::start();
    let pusher = reg.pusher();
    let dir = tempfile::tempdir().unwrap();
    let regs = registries(&[reg.host()], dir.path());
    let repo = regs
        .repository(&format!("{}/okd/release", reg.host()))
        .unwrap();
    let not_a_tar = Content {
        media_type: OCI_LAYER.to_string(),
        bytes: b"this is not a tar archive at all, only some words in a layer\n".repeat(20),
    };
    let no_refs = gzip_tar(&[("release-manifests/release-metadata", b"{}")]);
    let not_json = gzip_tar(&[(
        "release-manifests/image-references",
        b"{\"kind\": ImageStream",
    )]);
    let big = format!(
        "{{\"kind\":\"ImageStream\",\"apiVersion\":\"image.openshift.io/v1\",\"padding\":\"{}\"}}",
        "x".repeat(9 << 20)
    );
    let over = gzip_tar(&[("release-manifests/image-references", big.as_bytes())]);
    for (version, layer, cause) in [
        ("4.0.1", not_a_tar, "the layer is not a tar archive"),
        (
            "4.0.2",
            no_refs,
            "the layer has no release-manifests/image-references",
        ),
        (
            "4.0.3",
            not_json,
            "malformed release-manifests/image-references",
        ),
        ("4.0.4", over, "over the budget of 8388608 bytes"),
    ] {
        let layer_digest = layer.digest();
        let image = release_image(version, "amd64", layer);
        let digest = push_built_image(&pusher, "okd/release", None, &image).await;
        let e = read_components(&repo, version, &digest, &Budget::default())
            .await
            .expect_err("refused");
        let msg = e.full_message();
        assert!(
            msg.starts_with(&format!("release {version}: layer {layer_digest}: ")),
            "{msg}"
        );
        assert!(msg.contains(cause), "{cause}: {msg}");
        assert!(e.is_payload_fault(), "{msg}");
    }
    // A release digest the source does not have.
    let missing = Digest::sha256_of(b"no such release");
    let e = read_components(&repo, "4.0.5", &missing, &Budget::default())
        .await
        .expect_err("absent");
    let msg = e.full_message();
    assert!(
        msg.contains("release 4.0.5") && msg.contains("not found in"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_releases_from_an_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let releases = payload_releases(&["1.0.0", "1.1.0", "1.2.0"], 4, 1, "quay.io/okd/content");
    write_release_layouts(
        &dir.path().join("release"),
        &dir.path().join("content"),
        &releases,
    );
    let regs = registries(&[], dir.path());
    let repo = regs.repository("oci:release").unwrap();
    for r in &releases {
        let list = read_components(&repo, &r.version, &r.digest(), &Budget::default())
            .await
            .expect("component list");
        assert_eq!(tags_of(&list, &r.version), expected(r));
    }
    // The component layout holds every component image.
    let content = regs.repository("oci:content").unwrap();
    use relsync::registry::TargetReader;
    for r in &releases {
        for d in r.component_tags().values() {
            assert!(content.has_manifest(d).await.unwrap(), "{d}");
        }
    }
}
