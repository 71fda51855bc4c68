//! Payload streams end to end (`relsync sync`, `plan`, `drift`) against real docker-registry
//! processes: release images laid out as `oc adm release new` lays them out
//! (tests/util/payload.rs), components read back with skopeo.

use std::process::Command;

use relsync::digest::Digest;

use crate::util::{
    BuiltRelease, Repo, TestRegistry, block_on, gzip_tar, multiarch_release, payload_releases,
    push_built_image, push_release, release_image, write_registries, write_release_layouts,
};

/// The source registry's repositories.
const RELEASES: &str = "okd/release";
const CONTENT: &str = "okd/content";
/// The target registry's repositories.
const TARGET: &str = "okd/scos-release";
const PAYLOAD: &str = "okd/scos-content";

/// A repository mirroring stream `okd` (releases `versions`, digests `digests`) from `src`
/// to `dst`, payload into `dst/PAYLOAD`, channel `next` (floating tag `next`) listing
/// `published`. `policy`: an optional Policy document.
fn repo_for(
    src: &TestRegistry,
    dst: &TestRegistry,
    releases: &[(&str, Digest)],
    published: &[&str],
    policy: Option<&str>,
) -> Repo {
    let repo = Repo::new();
    write_registries(&repo, &src.host(), &dst.host(), "");
    write_stream(&repo, src, dst, releases, published);
    if let Some(p) = policy {
        repo.write("policies/policy.yaml", p);
    }
    repo.commit("payload stream");
    repo
}

fn write_stream(
    repo: &Repo,
    src: &TestRegistry,
    dst: &TestRegistry,
    releases: &[(&str, Digest)],
    published: &[&str],
) {
    let list: String = releases
        .iter()
        .map(|(v, d)| format!("    - {{version: {v}, digest: '{d}'}}\n"))
        .collect();
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {}/{RELEASES}\n  target: {}/{TARGET}\n  order: listed\n  payload:\n    target: {}/{PAYLOAD}\n  releases:\n{list}",
            src.host(),
            dst.host(),
            dst.host()
        ),
    );
    repo.write(
        "manifests/next.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: next}}\nspec:\n  stream: okd\n  tags: [next]\n  versions: [{}]\n",
            published.join(", ")
        ),
    );
}

fn push_all(src: &TestRegistry, releases: &[BuiltRelease]) {
    let pusher = src.pusher();
    block_on(async {
        for r in releases {
            push_release(&pusher, RELEASES, CONTENT, r).await;
        }
    });
}

/// `skopeo inspect --raw` of `reference`: the manifest's digest as skopeo reads it.
fn skopeo_digest(reference: &str) -> Digest {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", reference])
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Digest::sha256_of(&out.stdout)
}

#[test]
fn sync_mirrors_every_component_before_the_release_and_a_second_sync_writes_nothing() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let releases = payload_releases(
        &["4.14.0-okd.1", "4.14.0-okd.2"],
        8,
        2,
        &format!("{}/{CONTENT}", src.host()),
    );
    push_all(&src, &releases);
    let pins: Vec<(&str, Digest)> = releases
        .iter()
        .map(|r| (r.version.as_str(), r.digest()))
        .collect();
    let repo = repo_for(&src, &dst, &pins, &["4.14.0-okd.1", "4.14.0-okd.2"], None);

    // Before any sync, plan knows nothing of the components: `components` is null.
    let plan = repo.relsync(&["plan", "-o", "json"]);
    plan.expect_code(2);
    let actions = plan.json()["actions"].as_array().unwrap().clone();
    assert!(
        actions
            .iter()
            .all(|a| a["components"].is_null() && a["target"].as_str().unwrap().ends_with(TARGET)),
        "{actions:#?}"
    );

    let sync = repo.relsync(&["sync"]);
    sync.expect_code(0);
    eprintln!("{}", sync.stderr());
    for r in &releases {
        for (tag, digest) in r.component_tags() {
            let reference = format!("docker://{}/{PAYLOAD}:{tag}", dst.host());
            assert_eq!(skopeo_digest(&reference), digest, "{tag}");
        }
        assert_eq!(
            dst.tag_digest(TARGET, &r.version).as_deref(),
            Some(r.digest().as_str())
        );
    }
    assert_eq!(
        dst.tag_digest(TARGET, "next").as_deref(),
        Some(releases[1].digest().as_str())
    );
    // A component copies out of the mirror whole.
    let out_dir = tempfile::tempdir().unwrap();
    let copy = Command::new("skopeo")
        .args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{}/{PAYLOAD}:4.14.0-okd.2-comp-003", dst.host()),
            &format!("oci:{}:c", out_dir.path().display()),
        ])
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );

    // In sync now; the plan shows nothing, the JSON drift carries the release of each
    // component tag.
    repo.relsync(&["plan"]).expect_code(0);
    let drift = repo.relsync(&["drift", "-o", "json"]);
    drift.expect_code(0);
    let items = drift.json()["items"].as_array().unwrap().clone();
    let component = items
        .iter()
        .find(|i| i["tag"] == "4.14.0-okd.1-comp-000")
        .expect("component item");
    assert_eq!(component["release"], "4.14.0-okd.1");
    assert_eq!(component["state"], "ok");
    assert!(
        items
            .iter()
            .filter(|i| i["target"].as_str().unwrap().ends_with(TARGET))
            .all(|i| i.get("release").is_none()),
        "release tags carry no `release`"
    );

    // A second sync reads no layer (the component lists are cached) and writes nothing.
    let src_before = src.served_requests().len();
    let dst_writes = dst.served_writes().len();
    let dst_before = dst.served_requests().len();
    let again = repo.relsync(&["sync"]);
    again.expect_code(0);
    assert!(
        again.stderr().contains("0 created, 0 moved, 0 deleted"),
        "{}",
        again.stderr()
    );
    assert_eq!(
        dst.served_writes().len(),
        dst_writes,
        "{:?}",
        dst.served_writes()
    );
    // At most one tag list per repository and one HEAD per release and component tag.
    let dst_after: Vec<String> = dst.served_requests()[dst_before..].to_vec();
    let lists = dst_after
        .iter()
        .filter(|r| r.contains("/tags/list"))
        .count();
    let heads = dst_after.iter().filter(|r| r.starts_with("HEAD ")).count();
    assert_eq!(lists, 2, "{dst_after:#?}");
    assert_eq!(lists + heads, dst_after.len(), "{dst_after:#?}");
    assert!(heads <= 3 + 16, "{dst_after:#?}");
    let src_after: Vec<String> = src.served_requests()[src_before..].to_vec();
    assert!(
        src_after.is_empty(),
        "a no-op sync read the source: {src_after:#?}"
    );
    assert!(repo.path().join(".relsync/payloads.json").exists());
}

#[test]
fn a_component_moved_or_deleted_behind_relsync_s_back_is_drift_and_restored() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let releases = payload_releases(&["1.0.0"], 4, 0, &format!("{}/{CONTENT}", src.host()));
    push_all(&src, &releases);
    let r = &releases[0];
    let repo = repo_for(&src, &dst, &[("1.0.0", r.digest())], &["1.0.0"], None);
    repo.relsync(&["sync"]).expect_code(0);

    // Someone pushes other content under one component tag, and deletes another component
    // (distribution 2.8 deletes by digest).
    let pusher = dst.pusher();
    let other = block_on(pusher.push_image(PAYLOAD, Some("1.0.0-comp-001"), "someone else"));
    let deleted = r.component("comp-002");
    let del = block_on(
        reqwest::Client::new()
            .delete(format!(
                "{}/v2/{PAYLOAD}/manifests/{deleted}",
                dst.base_url()
            ))
            .send(),
    )
    .unwrap();
    assert_eq!(del.status(), 202);

    let drift = repo.relsync(&["drift", "-o", "json"]);
    drift.expect_code(2);
    let items = drift.json()["items"].as_array().unwrap().clone();
    let state = |tag: &str| {
        items
            .iter()
            .find(|i| i["tag"] == tag)
            .map(|i| (i["state"].clone(), i["release"].clone()))
    };
    assert_eq!(
        state("1.0.0-comp-001"),
        Some(("moved".into(), "1.0.0".into()))
    );
    assert_eq!(
        state("1.0.0-comp-002"),
        Some(("missing".into(), "1.0.0".into()))
    );
    assert_ne!(other.manifest, r.component("comp-001"));

    let text = repo.relsync(&["drift"]);
    text.expect_code(2);
    let out = text.stdout();
    for row in ["missing", "moved"] {
        assert!(
            out.lines().any(|l| l.starts_with(row)
                && l.contains("1.0.0-*")
                && l.contains("1 component tags")
                && l.contains("payload of release 1.0.0")),
            "{out}"
        );
    }
    let plan = repo.relsync(&["plan"]);
    plan.expect_code(2);
    assert!(
        plan.stdout()
            .contains("payload: 4 components, 1 to copy, 1 to restore"),
        "{}",
        plan.stdout()
    );
    repo.relsync(&["sync"]).expect_code(0);
    for (tag, digest) in r.component_tags() {
        assert_eq!(
            dst.tag_digest(PAYLOAD, &tag).as_deref(),
            Some(digest.as_str()),
            "{tag}"
        );
    }
    repo.relsync(&["drift"]).expect_code(0);
}

#[test]
fn a_malformed_payload_is_refused_alone_and_the_floating_tag_stays() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let content = format!("{}/{CONTENT}", src.host());
    let good = payload_releases(&["1.0.0"], 3, 0, &content);
    push_all(&src, &good);
    let pusher = src.pusher();
    let mut pins = vec![("1.0.0", good[0].digest())];
    // Malformed release images: each named by what is wrong with it.
    let not_a_tar = relsync_content(b"not a tar, only words\n".repeat(40));
    let no_refs = gzip_tar(&[("release-manifests/release-metadata", b"{}")]);
    let big = format!(
        "{{\"kind\":\"ImageStream\",\"apiVersion\":\"image.openshift.io/v1\",\"pad\":\"{}\"}}",
        "x".repeat(9 << 20)
    );
    let over = gzip_tar(&[("release-manifests/image-references", big.as_bytes())]);
    // A release whose components were never pushed to the source (content of its own).
    let absent_component = multiarch_release("1.0.4", &content, &["lonely", "alone"], &[]);
    // A release naming a component outside allowedSources.
    let elsewhere = payload_releases(
        &["1.0.5"],
        2,
        0,
        &format!("{}/elsewhere/content", src.host()),
    )
    .pop()
    .unwrap();
    let mut expected = Vec::new();
    block_on(async {
        for (version, layer, why) in [
            ("1.0.1", not_a_tar, "the layer is not a tar archive"),
            (
                "1.0.2",
                no_refs,
                "the layer has no release-manifests/image-references",
            ),
            ("1.0.3", over, "over the budget of 8388608 bytes"),
        ] {
            let layer_digest = layer.digest();
            let d = push_built_image(
                &pusher,
                RELEASES,
                None,
                &release_image(version, "amd64", layer),
            )
            .await;
            pins.push((version, d));
            expected.push(format!("release {version}: layer {layer_digest}: "));
            expected.push(why.to_string());
        }
        // Only the release images, none of the components.
        for (image, _) in &absent_component.images {
            push_built_image(&pusher, RELEASES, None, image).await;
        }
        let index = &absent_component.manifest;
        let d = pusher
            .push_manifest(RELEASES, &index.digest().to_string(), index)
            .await;
        pins.push(("1.0.4", d));
        pins.push((
            "1.0.5",
            push_release(&pusher, RELEASES, "elsewhere/content", &elsewhere).await,
        ));
    });
    let versions: Vec<&str> = pins.iter().map(|(v, _)| *v).collect();
    let policy = format!(
        "apiVersion: relsync.dev/v1alpha1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  allowedSources: ['{}/okd/*']\n",
        src.host()
    );
    let repo = repo_for(&src, &dst, &pins, &versions, Some(&policy));
    // A dry run reads the payloads too, says what it refuses, and exits 1.
    let dry = repo.relsync(&["sync", "--dry-run"]);
    dry.expect_code(1);
    assert!(
        dry.stderr()
            .contains("error: payload refused: release 1.0.1: layer "),
        "{}",
        dry.stderr()
    );
    assert!(dst.served_writes().is_empty());
    let sync = repo.relsync(&["sync"]);
    let stderr = sync.stderr();
    eprintln!("{stderr}");
    sync.expect_code(1);
    for e in &expected {
        assert!(stderr.contains(e.as_str()), "{e}: {stderr}");
    }
    assert!(
        stderr.contains(&format!(
            "component `comp-000` comes from `{}/elsewhere/content`, which allowedSources does not allow",
            src.host()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "release 1.0.4: not written: its payload is incomplete (component tag 1.0.4-"
        ),
        "{stderr}"
    );
    // The good release is mirrored whole; no refused release has a tag; `next` would point
    // at 1.0.5, which is refused, so it is not written at all.
    for (tag, digest) in good[0].component_tags() {
        assert_eq!(
            dst.tag_digest(PAYLOAD, &tag).as_deref(),
            Some(digest.as_str())
        );
    }
    assert!(dst.tag_digest(TARGET, "1.0.0").is_some());
    for v in &versions[1..] {
        assert!(dst.tag_digest(TARGET, v).is_none(), "{v} was tagged");
    }
    assert!(dst.tag_digest(TARGET, "next").is_none());
    // Nothing of the disallowed source was copied.
    let tags = block_on(dst.pusher().tags(PAYLOAD));
    assert!(tags.iter().all(|t| !t.starts_with("1.0.5-")), "{tags:?}");
}

fn relsync_content(bytes: Vec<u8>) -> crate::util::Content {
    crate::util::Content {
        media_type: crate::util::OCI_LAYER.to_string(),
        bytes,
    }
}

/// Reads the tags of an `oci:` layout's index.json.
fn layout_tags(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let Ok(bytes) = std::fs::read(dir.join("index.json")) else {
        return Default::default();
    };
    let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
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
fn a_tombstoned_release_takes_its_component_tags_with_it_as_one_delete() {
    // Source and targets are `oci:` layouts (which delete tags by name).
    let repo = Repo::new();
    let releases = payload_releases(&["1.0.0", "1.1.0"], 3, 3, "src.example/okd/content");
    write_release_layouts(
        &repo.path().join("src/okd/release"),
        &repo.path().join("src/okd/content"),
        &releases,
    );
    repo.write(
        "relsync.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {host: src.example, mapTo: 'oci:src'}\n",
    );
    repo.write(
        "policies/policy.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  maxDeletesPerSync: 1\n",
    );
    let stream = |published: &str, tombstones: &str| {
        repo.write(
            "manifests/stream.yaml",
            &format!(
                "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: src.example/okd/release\n  target: oci:mirror/release\n  payload: {{target: 'oci:mirror/content'}}\n  releases:\n    - {{version: 1.0.0, digest: '{}'}}\n    - {{version: 1.1.0, digest: '{}'}}\n",
                releases[0].digest(),
                releases[1].digest()
            ),
        );
        repo.write(
            "manifests/next.yaml",
            &format!(
                "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: next}}\nspec:\n  stream: okd\n  tags: [next]\n  versions: [{published}]\n  tombstones: [{tombstones}]\n"
            ),
        );
        repo.commit("channels");
    };
    stream("1.0.0, 1.1.0", "");
    repo.relsync(&["sync"]).expect_code(0);
    let content = repo.path().join("mirror/content");
    let tags = layout_tags(&content);
    assert_eq!(tags.len(), 6, "{tags:?}");
    for r in &releases {
        for (tag, d) in r.component_tags() {
            assert_eq!(tags.get(&tag), Some(&d.to_string()), "{tag}");
        }
    }

    // 1.0.0 tombstoned: its version tag and its 3 component tags go, counted as one delete.
    stream("1.1.0", "1.0.0");
    let plan = repo.relsync(&["plan", "-o", "json"]);
    plan.expect_code(2);
    let deletes = plan.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "delete")
        .count();
    assert_eq!(deletes, 4, "{}", plan.stdout());
    repo.relsync(&["sync"]).expect_code(0);
    let tags = layout_tags(&content);
    assert_eq!(
        tags.keys().cloned().collect::<Vec<_>>(),
        releases[1].component_tags().into_keys().collect::<Vec<_>>()
    );
    assert!(!layout_tags(&repo.path().join("mirror/release")).contains_key("1.0.0"));
    repo.relsync(&["plan"]).expect_code(0);
}

/// With the cluster on, the component lists live in their own ConfigMap `relsync-payloads`
/// (not in the history's `relsync-state`), and a second sync reads no layer.
#[test]
fn with_the_cluster_on_the_component_lists_live_in_their_own_configmap() {
    use crate::apiserver::Resource;
    let c = crate::cluster::ClusterRepo::new();
    let releases = payload_releases(
        &["5.0.0"],
        3,
        0,
        "registry.ci.openshift.org/origin/payload-content",
    );
    let src = c
        .repo
        .path()
        .join("example/registry.ci.openshift.org/origin");
    write_release_layouts(
        &src.join("payload-release"),
        &src.join("payload-content"),
        &releases,
    );
    c.repo.write(
        "manifests/streams/payload.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: payload}}\nspec:\n  source: registry.ci.openshift.org/origin/payload-release\n  target: quay.io/okd/payload-release\n  payload: {{target: quay.io/okd/payload-content}}\n  releases:\n    - {{version: 5.0.0, digest: '{}'}}\n",
            releases[0].digest()
        ),
    );
    c.repo.write(
        "manifests/channels/payload.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {name: payload}\nspec:\n  stream: payload\n  versions: [5.0.0]\n",
    );
    c.repo.commit("a payload stream");
    c.relsync(&["sync"]).expect_code(0);
    let cm = c
        .api
        .get(Resource::ConfigMaps, &c.home, "relsync-payloads")
        .expect("the payload ConfigMap");
    let cache: serde_json::Value =
        serde_json::from_str(cm["data"]["payloads.json"].as_str().unwrap()).unwrap();
    let list = &cache["releases"][releases[0].digest().as_str()]["components"];
    assert_eq!(list.as_array().map(Vec::len), Some(3), "{cache:#}");
    let state = c
        .api
        .get(Resource::ConfigMaps, &c.home, "relsync-state")
        .expect("the state ConfigMap");
    assert!(
        !state["data"]["state.json"]
            .as_str()
            .unwrap()
            .contains("payload-content@")
    );
    assert!(
        !c.repo.path().join(".relsync").exists(),
        "nothing beside relsync.yaml"
    );
    let content = c.repo.path().join("example/quay.io/okd/payload-content");
    assert_eq!(layout_tags(&content).len(), 3);

    // The source's release layer gone: a second sync does not need it.
    let layer = releases[0].images[0].0.layers[1].digest();
    std::fs::remove_file(src.join("payload-release/blobs/sha256").join(layer.hex())).unwrap();
    let again = c.relsync(&["sync"]);
    again.expect_code(0);
    assert!(
        again.stderr().contains("0 created, 0 moved, 0 deleted"),
        "{}",
        again.stderr()
    );
}
