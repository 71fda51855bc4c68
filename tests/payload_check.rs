//! `relsync check`'s rule `payload` against a real docker-registry holding release images
//! laid out as `oc adm release new` lays them out (tests/util/payload.rs): a release the
//! head newly publishes in a payload stream must have a readable image-references at its
//! source and every component at its source; the comment counts each new release's
//! components and those new to `payload.target`. `--offline` says it did not check.

use crate::util::{
    Repo, Run, TestRegistry, block_on, gzip_tar, payload_releases, push_built_image, push_release,
    release_image, release_metadata_json, rule_verdict,
};

/// A repository whose stream `okd` (source `HOST/okd/release`, target `HOST/okd/mirror`,
/// payload target `HOST/okd/content-mirror`) lists `releases` (version, digest), and whose
/// channel `next` publishes `published`; policy: sources under `HOST/okd/`.
fn write_manifests(repo: &Repo, host: &str, releases: &[(String, String)], published: &[&str]) {
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {{host: '{host}', insecure: true}}\n"
        ),
    );
    let entries: String = releases
        .iter()
        .map(|(v, d)| format!("    - {{version: {v}, digest: '{d}'}}\n"))
        .collect();
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {host}/okd/release\n  target: {host}/okd/mirror\n  payload:\n    target: {host}/okd/content-mirror\n  releases:\n{entries}"
        ),
    );
    repo.write(
        "manifests/next.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: next}}\nspec:\n  stream: okd\n  versions: [{}]\n",
            published.join(", ")
        ),
    );
    repo.write(
        "policies/default.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Policy\nmetadata: {{name: default}}\nspec:\n  allowedSources: ['{host}/okd/*']\n"
        ),
    );
}

fn check(repo: &Repo, base: &str, args: &[&str]) -> Run {
    let mut all = vec!["check", "--base", base];
    all.extend_from_slice(args);
    repo.relsync(&all)
}

/// Base publishes 4.14.0 (whose components the payload target already has); the head adds
/// 4.14.1, which changes 2 of its 5 components: the rule passes and the comment says 5
/// components, 2 new to the target. Offline, the rule says it did not look.
#[test]
fn check_counts_the_components_a_new_payload_release_brings_and_those_new_to_the_target() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let source = format!("{host}/okd/content");
    let releases = payload_releases(&["4.14.0", "4.14.1"], 5, 2, &source);
    let pusher = reg.pusher();
    block_on(async {
        for r in &releases {
            push_release(&pusher, "okd/release", "okd/content", r).await;
        }
        // What an earlier sync mirrored: 4.14.0's components.
        for c in &releases[0].components {
            push_built_image(&pusher, "okd/content-mirror", None, &c.image).await;
        }
    });
    let pinned: Vec<(String, String)> = releases
        .iter()
        .map(|r| (r.version.clone(), r.digest().to_string()))
        .collect();
    let repo = Repo::new();
    write_manifests(&repo, &host, &pinned, &["4.14.0"]);
    let base = repo.commit("base");
    write_manifests(&repo, &host, &pinned, &["4.14.0", "4.14.1"]);
    repo.commit("publish 4.14.1");

    let md = check(&repo, &base, &["-o", "markdown"]);
    md.expect_code(0);
    let target = format!("{host}/okd/content-mirror");
    assert!(
        md.stdout().contains(&format!(
            "##### Payloads\n\n| release | payload target | components | new to the target |\n|---|---|---|---|\n| `4.14.1` | `{target}` | 5 | 2 |\n"
        )),
        "{}",
        md.stdout()
    );
    assert!(
        md.stdout().contains("| `payload` | ✅ pass | 1 release newly published in payload streams: 4.14.1: 5 components, 2 new to "),
        "{}",
        md.stdout()
    );

    let json = check(&repo, &base, &["-o", "json"]);
    json.expect_code(0);
    let j = json.json();
    assert_eq!(
        j["payloads"],
        serde_json::json!([{"version": "4.14.1", "payloadTarget": target, "components": 5,
                            "newToTarget": 2, "missingAtSource": 0}])
    );
    assert_eq!(rule_verdict(&j, "payload")["passed"], true);

    let offline = check(&repo, &base, &["-o", "json", "--offline"]);
    offline.expect_code(0);
    let j = offline.json();
    assert_eq!(
        rule_verdict(&j, "payload")["checked"],
        "not checked (--offline): 1 release newly published in payload streams"
    );
    assert_eq!(j["payloads"], serde_json::json!([]));

    // Nothing new in a payload stream: nothing to read.
    let same = check(&repo, "HEAD", &["-o", "json"]);
    same.expect_code(0);
    assert_eq!(
        rule_verdict(&same.json(), "payload")["checked"],
        "no release newly published in a payload stream"
    );
}

/// Each broken payload fails the rule alone, at the release's line, with the cause: a
/// component missing at its source, a layer without image-references, a component from a
/// source the base's allowedSources does not allow.
#[test]
fn check_fails_a_new_payload_release_whose_payload_is_broken_naming_the_cause() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let pusher = reg.pusher();
    let good = payload_releases(&["4.15.0"], 3, 0, &format!("{host}/okd/content"));
    let unpushed = payload_releases(&["4.15.1"], 3, 0, &format!("{host}/okd/gone"));
    let foreign = payload_releases(&["4.15.2"], 2, 0, &format!("{host}/elsewhere/content"));
    let no_refs = release_image(
        "4.15.3",
        "amd64",
        gzip_tar(&[(
            "release-manifests/release-metadata",
            &release_metadata_json("4.15.3"),
        )]),
    );
    let digests = block_on(async {
        let g = push_release(&pusher, "okd/release", "okd/content", &good[0]).await;
        // The release image alone: its components were never pushed.
        let u = push_built_image(&pusher, "okd/release", None, &unpushed[0].images[0].0).await;
        let f = push_release(&pusher, "okd/release", "elsewhere/content", &foreign[0]).await;
        let n = push_built_image(&pusher, "okd/release", None, &no_refs).await;
        [g, u, f, n]
    });
    let versions = ["4.15.0", "4.15.1", "4.15.2", "4.15.3"];
    let pinned: Vec<(String, String)> = versions
        .iter()
        .zip(&digests)
        .map(|(v, d)| (v.to_string(), d.to_string()))
        .collect();
    let repo = Repo::new();
    write_manifests(&repo, &host, &pinned, &[]);
    let base = repo.commit("base: nothing published");
    write_manifests(&repo, &host, &pinned, &versions);
    repo.commit("publish all four");

    let run = check(&repo, &base, &["-o", "json"]);
    run.expect_code(1);
    let j = run.json();
    let failed: Vec<&str> = j["policies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["passed"] == false)
        .map(|p| p["rule"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["payload"], "{j}");
    let messages: Vec<String> = rule_verdict(&j, "payload")["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let at = v["at"].as_str().unwrap_or_default();
            assert!(at.starts_with("manifests/stream.yaml:"), "{v}");
            v["message"].as_str().unwrap().to_string()
        })
        .collect();
    let one = |needle: &str| {
        assert!(
            messages.iter().any(|m| m.contains(needle)),
            "no violation with {needle:?} in {messages:#?}"
        )
    };
    one(&format!(
        "release 4.15.1: component `comp-000` ({host}/okd/gone@sha256:"
    ));
    one("is not in its source repository");
    one(&format!(
        "release 4.15.2: component `comp-000` comes from {host}/elsewhere/content, which the base's allowedSources do not allow"
    ));
    one("release 4.15.3: layer sha256:");
    one("has no release-manifests/image-references");
    assert!(
        !messages.iter().any(|m| m.contains("4.15.0")),
        "the good release is not blamed: {messages:#?}"
    );
    // 3 missing components of 4.15.1, 2 foreign ones of 4.15.2, 1 unreadable layer.
    assert_eq!(messages.len(), 6, "{messages:#?}");

    let md = check(&repo, &base, &["-o", "markdown"]);
    md.expect_code(1);
    assert!(
        md.stdout().contains("(payload)"),
        "the summary names the rule: {}",
        md.stdout()
    );
    assert!(
        md.stdout().contains("| `4.15.1` | ")
            && md.stdout().contains(" | 3 (3 missing at the source) | "),
        "{}",
        md.stdout()
    );
}
