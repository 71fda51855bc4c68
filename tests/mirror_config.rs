//! `relsync mirror-config`: the ImageDigestMirrorSet / ImageTagMirrorSet output parses as
//! YAML (and JSON) and maps each release source and each payload component source to its
//! target.

use serde_json::Value;

use crate::util::{Repo, TestRegistry, block_on, payload_releases, push_release};

/// The YAML documents of `mirror-config`'s output, as JSON values.
fn yaml_documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("mirror-config's output is not YAML ({e}):\n{text}"))
}

/// `source → mirrors` pairs of a mirror list (`imageDigestMirrors`, `imageTagMirrors`,
/// `imageDigestSources`).
fn pairs(list: &Value) -> Vec<(String, Vec<String>)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|e| {
            let mirrors = e["mirrors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_string())
                .collect();
            (e["source"].as_str().unwrap().to_string(), mirrors)
        })
        .collect()
}

fn pair(source: &str, mirror: &str) -> (String, Vec<String>) {
    (source.to_string(), vec![mirror.to_string()])
}

/// The stanza printed as comment lines after the two objects, uncommented and parsed.
fn install_config_stanza(text: &str) -> Value {
    let start = text
        .find("# imageDigestSources:")
        .unwrap_or_else(|| panic!("no install-config stanza in:\n{text}"));
    let stanza: String = text[start..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    serde_saphyr::from_str::<Value>(&stanza).unwrap()
}

/// A stream whose target is an `oci:` layout is left out, with a warning naming it; a
/// source that is its own target is left out too; a source with two targets lists both.
#[test]
fn mirror_config_leaves_out_oci_targets_and_lists_every_target_of_a_source() {
    let repo = Repo::new();
    let stream = |name: &str, source: &str, target: &str| {
        format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: {name}}}\nspec:\n  source: {source}\n  target: {target}\n  releases:\n    - {{version: 1.0.0, digest: 'sha256:{}'}}\n",
            "a".repeat(64)
        )
    };
    let channel = |name: &str, stream: &str| {
        format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: {name}}}\nspec:\n  stream: {stream}\n  versions: [1.0.0]\n"
        )
    };
    repo.write(
        "relsync.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec: {}\n",
    );
    repo.write(
        "manifests/a.yaml",
        &stream("a", "src.example/app", "mirror.example/app"),
    );
    repo.write(
        "manifests/b.yaml",
        &stream("b", "src.example/app", "backup.example/app"),
    );
    repo.write(
        "manifests/c.yaml",
        &stream("c", "src.example/disk", "oci:layouts/disk"),
    );
    repo.write(
        "manifests/d.yaml",
        &stream("d", "self.example/x", "self.example/x"),
    );
    for (c, s) in [("ca", "a"), ("cb", "b"), ("cc", "c"), ("cd", "d")] {
        repo.write(&format!("manifests/{c}.yaml"), &channel(c, s));
    }
    repo.commit("streams");

    let run = repo.relsync(&["mirror-config"]);
    run.expect_code(0);
    assert!(
        run.stderr()
            .contains("oci:layouts/disk is an OCI layout on disk")
            && run.stderr().contains("left out of the mirror sets"),
        "{}",
        run.stderr()
    );
    let docs = yaml_documents(&run.stdout());
    assert_eq!(docs.len(), 2, "{}", run.stdout());
    let both = (
        "src.example/app".to_string(),
        vec![
            "backup.example/app".to_string(),
            "mirror.example/app".to_string(),
        ],
    );
    assert_eq!(
        pairs(&docs[0]["spec"]["imageDigestMirrors"]),
        vec![both.clone()]
    );
    assert_eq!(pairs(&docs[1]["spec"]["imageTagMirrors"]), vec![both]);
}

/// On the bundled example: the YAML is two objects `oc apply -f` takes (an
/// ImageDigestMirrorSet and an ImageTagMirrorSet named `relsync`, annotated with the
/// revision), the install-config stanza in comments parses too, and `-o json` holds the
/// same pairs. Nothing is written.
#[test]
fn mirror_config_of_the_bundled_example_parses_as_yaml_and_json() {
    let repo = Repo::example();
    let head = repo.git(&["rev-parse", "HEAD"]);
    let run = repo.relsync(&["mirror-config"]);
    run.expect_code(0);
    let text = run.stdout();
    let docs = yaml_documents(&text);
    assert_eq!(docs.len(), 2, "{text}");
    for (doc, kind) in docs
        .iter()
        .zip(["ImageDigestMirrorSet", "ImageTagMirrorSet"])
    {
        assert_eq!(doc["apiVersion"], "config.openshift.io/v1", "{text}");
        assert_eq!(doc["kind"], kind, "{text}");
        assert_eq!(doc["metadata"]["name"], "relsync");
        assert_eq!(
            doc["metadata"]["annotations"]["relsync.dev/revision"],
            head.as_str()
        );
    }
    let release = pair(
        "registry.ci.openshift.org/origin/release-scos",
        "quay.io/okd/scos-release",
    );
    let digest_pairs = pairs(&docs[0]["spec"]["imageDigestMirrors"]);
    assert!(digest_pairs.contains(&release), "{text}");
    assert_eq!(
        pairs(&docs[1]["spec"]["imageTagMirrors"]),
        vec![release.clone()],
        "only release repositories are mirrored by tag: {text}"
    );
    let stanza = install_config_stanza(&text);
    assert_eq!(pairs(&stanza["imageDigestSources"]), digest_pairs);

    let json = repo.relsync(&["mirror-config", "-o", "json"]);
    json.expect_code(0);
    let j = json.json();
    assert_eq!(j["revision"], head.as_str());
    assert_eq!(
        pairs(&j["imageDigestMirrorSet"]["spec"]["imageDigestMirrors"]),
        digest_pairs
    );
    assert_eq!(
        pairs(&j["imageTagMirrorSet"]["spec"]["imageTagMirrors"]),
        vec![release]
    );
    assert_eq!(pairs(&j["imageDigestSources"]), digest_pairs);
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        "",
        "mirror-config wrote"
    );
}

/// A payload stream on a real docker-registry: each component source repository is mapped
/// to `payload.target` (by digest only). The component lists come from the cache first,
/// else from the release in its target, else from its source; a release that can be read
/// nowhere fails the command (exit 1, nothing on stdout) naming the release.
#[test]
fn mirror_config_maps_payload_component_sources_from_the_cache_the_target_or_the_source() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let pusher = reg.pusher();
    let in_source = payload_releases(&["4.16.0"], 3, 0, &format!("{host}/okd/content"));
    let in_target = payload_releases(&["4.16.1"], 2, 0, &format!("{host}/okd/other-content"));
    let nowhere = payload_releases(&["4.16.2"], 2, 0, &format!("{host}/okd/content"));
    let cached = payload_releases(&["4.16.3"], 1, 0, &format!("{host}/okd/content"));
    block_on(async {
        push_release(&pusher, "okd/release", "okd/content", &in_source[0]).await;
        // Only in the target (mirrored earlier; the source has dropped it).
        push_release(&pusher, "okd/mirror", "okd/other-content", &in_target[0]).await;
    });
    let all = [&in_source[0], &in_target[0], &nowhere[0], &cached[0]];
    let entries: String = all.iter().map(|r| r.entry()).collect();
    let repo = Repo::new();
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {{host: '{host}', insecure: true}}\n"
        ),
    );
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {host}/okd/release\n  target: {host}/okd/mirror\n  payload:\n    target: {host}/okd/content-mirror\n  releases:\n{entries}"
        ),
    );
    let channel = |versions: &str| {
        format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: next}}\nspec:\n  stream: okd\n  versions: [{versions}]\n"
        )
    };
    repo.write("manifests/next.yaml", &channel("4.16.0, 4.16.1, 4.16.2"));
    repo.commit("three payload releases");

    // 4.16.2 is nowhere: an error naming it, and no partial output.
    let run = repo.relsync(&["mirror-config"]);
    run.expect_code(1);
    assert_eq!(run.stdout(), "", "a partial mirror set was printed");
    assert!(
        run.stderr()
            .contains("cannot read the component list of a payload release: release 4.16.2"),
        "{}",
        run.stderr()
    );

    // Without it: 4.16.0's components read at the source, 4.16.1's in the target; the
    // cached list of 4.16.3 (which no registry holds) is used as it is.
    let cache = serde_json::json!({"releases": {cached[0].digest().to_string(): {"components": [
        {"name": "cli", "source": "cache.example/okd/content",
         "digest": cached[0].components[0].image.digest().to_string()}]}}});
    std::fs::create_dir_all(repo.path().join(".relsync")).unwrap();
    std::fs::write(
        repo.path().join(".relsync/payloads.json"),
        cache.to_string(),
    )
    .unwrap();
    repo.write("manifests/next.yaml", &channel("4.16.0, 4.16.1, 4.16.3"));
    repo.commit("4.16.3 instead of 4.16.2");
    let run = repo.relsync(&["mirror-config"]);
    run.expect_code(0);
    let docs = yaml_documents(&run.stdout());
    let mirror = format!("{host}/okd/content-mirror");
    assert_eq!(
        pairs(&docs[0]["spec"]["imageDigestMirrors"]),
        vec![
            pair(&format!("{host}/okd/content"), &mirror),
            pair(&format!("{host}/okd/other-content"), &mirror),
            pair(
                &format!("{host}/okd/release"),
                &format!("{host}/okd/mirror")
            ),
            pair("cache.example/okd/content", &mirror),
        ],
        "{}",
        run.stdout()
    );
    assert_eq!(
        pairs(&docs[1]["spec"]["imageTagMirrors"]),
        vec![pair(
            &format!("{host}/okd/release"),
            &format!("{host}/okd/mirror")
        )],
        "components are not mirrored by tag"
    );
}
