//! Signatures and referrers against real docker-registry (distribution 2.8) processes:
//! cosign's `.sig` tags and sigstore bundle referrers (referrers tag schema, as 2.8 has no
//! referrers API) copied byte-exact before the release tags; the target's referrers index
//! keeps another tool's entries; `check`'s rule `signatures` naming each failing version
//! with why; `sync` publishing the signed releases and refusing the unsigned in one run;
//! `drift`'s state `unsigned`, repaired by `sync`.
//! Signatures are made in cosign's exact formats (`util::sign`).

use relsync::digest::Digest;
use serde_json::{Value, json};

use crate::util::{
    CosignKey, OCI_MANIFEST, Repo, SOURCE, TARGET, TestRegistry, VERSIONS, block_on,
    push_bundle_referrer, push_legacy_signature, push_referrers_index, rule_verdict, sig_tag,
    signature_policy, three_releases, write_registries,
};

/// The manifest `reference` of `repo` at `base`: its media type and bytes.
pub(crate) async fn manifest_of(base: &str, repo: &str, reference: &str) -> (String, Vec<u8>) {
    let resp = reqwest::Client::new()
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("accept", relsync::registry::MANIFEST_MEDIA_TYPES.join(", "))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET {repo}:{reference}");
    let mt = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (mt, resp.bytes().await.unwrap().to_vec())
}

/// The digests an index's bytes list.
fn listed(index: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(index).unwrap();
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn attached_artifacts_are_copied_byte_exact_before_the_tags_and_a_second_sync_writes_nothing() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (repo, d) = three_releases(&src, &dst.host(), "");
    let key = CosignKey::generate();
    let identity = format!("{}/{SOURCE}", src.host());
    let (sig, referrer, foreign) = block_on(async {
        let pusher = src.pusher();
        let sig = push_legacy_signature(&pusher, SOURCE, &d[0], &d[0], &identity, &key).await;
        let (mt, bytes) = manifest_of(&src.base_url(), SOURCE, d[1].as_str()).await;
        let referrer = push_bundle_referrer(
            &pusher,
            SOURCE,
            &d[1],
            &mt,
            bytes.len(),
            &identity,
            &key,
            true,
        )
        .await;
        // Another tool's entry in the target's referrers index of the second release.
        let dst_pusher = dst.pusher();
        let other = dst_pusher
            .push_image(TARGET, None, "sbom-by-another-tool")
            .await;
        let foreign = json!({
            "mediaType": OCI_MANIFEST,
            "digest": other.manifest.to_string(),
            "size": other.manifest_bytes.len(),
            "artifactType": "application/spdx+json",
        });
        push_referrers_index(&dst_pusher, TARGET, &d[1], std::slice::from_ref(&foreign)).await;
        (sig, referrer, foreign)
    });
    let writes_before = dst.served_writes().len();

    let run = repo.relsync(&["sync"]);
    run.expect_code(0);

    // The `.sig` tag holds the source's manifest, byte for byte.
    assert_eq!(
        dst.tag_digest(TARGET, &sig_tag(&d[0], "sig")),
        Some(sig.to_string())
    );
    let (_, copied) = block_on(manifest_of(&dst.base_url(), TARGET, sig.as_str()));
    let (_, original) = block_on(manifest_of(&src.base_url(), SOURCE, sig.as_str()));
    assert_eq!(copied, original);
    // The referrer is in the target by digest, byte for byte, and the target's index lists
    // it beside the other tool's entry.
    let (_, bytes) = block_on(manifest_of(
        &dst.base_url(),
        TARGET,
        referrer.digest.as_str(),
    ));
    assert_eq!(bytes, referrer.bytes);
    let (_, index) = block_on(manifest_of(
        &dst.base_url(),
        TARGET,
        &format!("sha256-{}", d[1].hex()),
    ));
    let entries = listed(&index);
    assert!(
        entries.contains(&foreign["digest"].as_str().unwrap().to_string()),
        "the other tool's entry is kept: {entries:?}"
    );
    assert!(
        entries.contains(&referrer.digest.to_string()),
        "{entries:?}"
    );
    // Content before names: the `.sig` tag and the index went out before the release tags.
    let writes: Vec<String> = dst.served_writes()[writes_before..].to_vec();
    let position = |needle: &str| {
        writes
            .iter()
            .position(|w| w.starts_with("PUT ") && w.ends_with(needle))
            .unwrap_or_else(|| panic!("no PUT of {needle} in {writes:#?}"))
    };
    assert!(position(&sig_tag(&d[0], "sig")) < position(&format!("/manifests/{}", VERSIONS[0])));
    assert!(
        position(&format!("sha256-{}", d[1].hex()))
            < position(&format!("/manifests/{}", VERSIONS[1]))
    );

    // A second sync writes nothing.
    let before = dst.served_writes().len();
    repo.relsync(&["sync"]).expect_code(0);
    assert_eq!(dst.served_writes()[before..], [] as [String; 0]);
}

/// Five releases in `src` (v1 … v5) published by one channel `okd` (floating tag
/// `latest`) to `dst`; the base lists `base_versions`. Returns the repo and the digests.
fn five_releases(src: &TestRegistry, dst: &TestRegistry, listed: &[&str]) -> (Repo, Vec<Digest>) {
    let pusher = src.pusher();
    let versions = ["1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0"];
    let digests: Vec<Digest> = block_on(async {
        let mut out = Vec::new();
        for v in versions {
            out.push(
                pusher
                    .push_index(SOURCE, v, &format!("rel-{v}"))
                    .await
                    .index,
            );
        }
        out
    });
    let repo = Repo::new();
    write_registries(&repo, &src.host(), &dst.host(), "");
    let releases: String = versions
        .iter()
        .zip(&digests)
        .map(|(v, d)| format!("    - {{version: {v}, digest: '{d}'}}\n"))
        .collect();
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {}/{SOURCE}\n  target: {}/{TARGET}\n  releases:\n{releases}",
            src.host(),
            dst.host()
        ),
    );
    write_channel(&repo, listed);
    (repo, digests)
}

/// Commit a policy asking every `okd-release` tag to be signed by `key`.
fn require_signatures(repo: &Repo, key: &CosignKey, message: &str) {
    repo.write(
        "policies/signed.yaml",
        &signature_policy(&[("okd-release", &key.public_pem())]),
    );
    repo.commit(message);
}

fn write_channel(repo: &Repo, versions: &[&str]) {
    repo.write(
        "manifests/okd.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: okd}}\nspec:\n  stream: okd\n  tags: [latest]\n  versions: [{}]\n",
            versions.join(", ")
        ),
    );
}

#[test]
fn check_fails_each_untrusted_release_with_rule_signatures_naming_the_version_and_why() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let trusted = CosignKey::generate();
    let other = CosignKey::generate();
    let (repo, d) = five_releases(&src, &dst, &["1.0.0"]);
    require_signatures(&repo, &trusted, "base: signatures required");
    let identity = format!("{}/{SOURCE}", src.host());
    block_on(async {
        let p = src.pusher();
        // 1.0.0 is published by the base: not judged. 2.0.0: trusted.
        push_legacy_signature(&p, SOURCE, &d[1], &d[1], &identity, &trusted).await;
        // 3.0.0: another key's signature.
        push_legacy_signature(&p, SOURCE, &d[2], &d[2], &identity, &other).await;
        // 4.0.0: a trusted signature of 2.0.0, replayed under 4.0.0's `.sig` tag.
        push_legacy_signature(&p, SOURCE, &d[3], &d[1], &identity, &trusted).await;
        // 5.0.0: a trusted signature naming another repository; and 6 would be "none".
        push_legacy_signature(&p, SOURCE, &d[4], &d[4], "evil.example/other", &trusted).await;
    });
    write_channel(&repo, &["1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0"]);
    repo.commit("head: publish four more");

    let run = repo.relsync(&["check", "--base", "HEAD~1", "-o", "json"]);
    assert_eq!(run.code(), 1, "{}{}", run.stdout(), run.stderr());
    let out = run.json();
    let rule = rule_verdict(&out, "signatures");
    assert_eq!(rule["passed"], false);
    let messages: Vec<String> = rule["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    let about = |v: &str| {
        messages
            .iter()
            .find(|m| m.contains(&format!("release {v} ")))
            .unwrap_or_else(|| panic!("{v} not named: {messages:#?}"))
    };
    assert!(about("3.0.0").contains("no trusted key"), "{messages:#?}");
    assert!(about("4.0.0").contains("another digest"), "{messages:#?}");
    assert!(about("4.0.0").contains(d[1].as_str()), "{messages:#?}");
    assert!(
        about("5.0.0").contains("identity mismatch"),
        "{messages:#?}"
    );
    assert!(
        !messages.iter().any(|m| m.contains("release 2.0.0 ")),
        "the trusted one passes"
    );
    let at = rule["violations"][0]["at"].as_str().unwrap();
    assert!(at.starts_with("manifests/okd.yaml:"), "{at}");

    // Unsigned: no signature at all.
    write_channel(&repo, &["1.0.0", "2.0.0"]);
    repo.commit("back to the trusted two");
    let unsigned_digest = block_on(src.pusher().push_index(SOURCE, "6.0.0", "rel-6")).index;
    let stream = repo.read("manifests/stream.yaml");
    repo.write(
        "manifests/stream.yaml",
        &format!("{stream}    - {{version: 6.0.0, digest: '{unsigned_digest}'}}\n"),
    );
    repo.commit("base 2");
    write_channel(&repo, &["1.0.0", "2.0.0", "6.0.0"]);
    repo.commit("head 2");
    let run = repo.relsync(&["check", "--base", "HEAD~1"]);
    assert_eq!(run.code(), 1, "{}", run.stdout());
    assert!(
        run.stdout().contains("release 6.0.0") && run.stdout().contains("no signature"),
        "{}",
        run.stdout()
    );
    // Offline: not checked, and said so.
    let run = repo.relsync(&["check", "--base", "HEAD~1", "--offline"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
    assert!(
        run.stdout().contains("not checked (--offline)"),
        "{}",
        run.stdout()
    );
}

#[test]
fn sync_publishes_the_signed_releases_and_refuses_the_unsigned_in_one_run() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let key = CosignKey::generate();
    let (repo, d) = five_releases(&src, &dst, &["1.0.0", "2.0.0", "3.0.0"]);
    require_signatures(&repo, &key, "three releases, signatures required");
    let identity = format!("{}/{TARGET}", dst.host());
    block_on(async {
        let p = src.pusher();
        // Signed for the target repository (an identity as good as the source).
        push_legacy_signature(&p, SOURCE, &d[0], &d[0], &identity, &key).await;
        push_legacy_signature(&p, SOURCE, &d[1], &d[1], &identity, &key).await;
        // 3.0.0, the newest, is unsigned.
    });

    let run = repo.relsync(&["sync"]);
    assert_eq!(run.code(), 1, "{}{}", run.stdout(), run.stderr());
    assert!(dst.tag_digest(TARGET, "1.0.0").is_some());
    assert!(dst.tag_digest(TARGET, "2.0.0").is_some());
    assert_eq!(
        dst.tag_digest(TARGET, "3.0.0"),
        None,
        "the unsigned one is refused"
    );
    // The floating tag follows Git's newest version, which is unsigned: it is not written
    // (it never falls back to an older version).
    assert_eq!(dst.tag_digest(TARGET, "latest"), None);
    let err = run.stderr();
    assert!(
        err.contains("3.0.0") && err.contains("not published: no signature"),
        "{err}"
    );
    // The signatures travelled with the signed releases.
    assert!(dst.tag_digest(TARGET, &sig_tag(&d[0], "sig")).is_some());

    // Drift says so: 3.0.0 missing, the signed ones ok.
    let drift = repo.relsync(&["drift", "-o", "json"]);
    assert_eq!(drift.code(), 2);
    let items = drift.json()["items"].as_array().unwrap().clone();
    let state = |tag: &str| {
        items
            .iter()
            .find(|i| i["tag"] == tag)
            .map(|i| i["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state("1.0.0").as_deref(), Some("ok"));
    assert_eq!(state("3.0.0").as_deref(), Some("missing"));

    // Once signed, the next sync publishes it and moves the floating tag.
    block_on(push_legacy_signature(
        &src.pusher(),
        SOURCE,
        &d[2],
        &d[2],
        &identity,
        &key,
    ));
    repo.relsync(&["sync"]).expect_code(0);
    assert_eq!(dst.tag_digest(TARGET, "latest"), Some(d[2].to_string()));
}

#[test]
fn drift_and_plan_report_a_release_whose_signature_is_missing_in_the_target_and_sync_repairs_it() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let key = CosignKey::generate();
    let (repo, d) = five_releases(&src, &dst, &["1.0.0"]);
    repo.commit("one release, no policy yet");
    repo.relsync(&["sync"]).expect_code(0);
    // Signed later in the source, and signatures required: the target lacks it.
    block_on(push_legacy_signature(
        &src.pusher(),
        SOURCE,
        &d[0],
        &d[0],
        &format!("{}/{SOURCE}", src.host()),
        &key,
    ));
    require_signatures(&repo, &key, "signatures required");
    let drift = repo.relsync(&["drift", "-o", "json"]);
    assert_eq!(drift.code(), 2, "{}", drift.stdout());
    let items = drift.json()["items"].as_array().unwrap().clone();
    let unsigned: Vec<&str> = items
        .iter()
        .filter(|i| i["state"] == "unsigned")
        .map(|i| i["tag"].as_str().unwrap())
        .collect();
    assert_eq!(unsigned, ["1.0.0", "latest"]);
    // Plan agrees: no tag changes, yet changes pending (exit 2), the signature to copy
    // named with the release's tags, in JSON and in text.
    let plan = repo.relsync(&["plan", "-o", "json"]);
    assert_eq!(plan.code(), 2, "{}", plan.stdout());
    let json = plan.json();
    assert_eq!(json["actions"], json!([]), "{json:#}");
    let signatures = json["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 1, "{json:#}");
    assert_eq!(signatures[0]["digest"], d[0].to_string());
    assert_eq!(signatures[0]["version"], "1.0.0");
    assert_eq!(signatures[0]["tags"], json!(["1.0.0", "latest"]));
    assert!(
        signatures[0]["target"].as_str().unwrap().ends_with(TARGET),
        "{json:#}"
    );
    let text = repo.relsync(&["plan"]);
    assert_eq!(text.code(), 2);
    assert!(
        text.stdout().contains("1 signature to copy") && text.stdout().contains("1.0.0,latest"),
        "{}",
        text.stdout()
    );
    // `sync --dry-run` writes nothing and says the same.
    let before = dst.served_writes().len();
    repo.relsync(&["sync", "--dry-run"]).expect_code(2);
    assert_eq!(dst.served_writes()[before..], [] as [String; 0]);

    // Sync copies the signature; then the target is in sync, and a second sync writes
    // nothing.
    let run = repo.relsync(&["sync"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
    assert!(dst.tag_digest(TARGET, &sig_tag(&d[0], "sig")).is_some());
    repo.relsync(&["drift"]).expect_code(0);
    repo.relsync(&["plan"]).expect_code(0);
    let before = dst.served_writes().len();
    repo.relsync(&["sync"]).expect_code(0);
    assert_eq!(dst.served_writes()[before..], [] as [String; 0]);
}

#[test]
fn serve_shows_per_release_whether_it_is_signed_and_verified_and_counts_failures() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let key = CosignKey::generate();
    let (repo, d) = five_releases(&src, &dst, &["1.0.0", "2.0.0"]);
    require_signatures(&repo, &key, "two releases, signatures required");
    block_on(push_legacy_signature(
        &src.pusher(),
        SOURCE,
        &d[0],
        &d[0],
        &format!("{}/{SOURCE}", src.host()),
        &key,
    ));
    let serve = crate::serve::Serve::start(repo.path(), &[]);
    serve.wait_until("a sync", |s| {
        s.status()["channels"][0]["lastSync"].is_string()
            && s.status()["channels"][0]["releases"].is_array()
    });
    let status = serve.status();
    let releases = status["channels"][0]["releases"]
        .as_array()
        .unwrap()
        .clone();
    let of = |v: &str| {
        releases
            .iter()
            .find(|r| r["version"] == v)
            .unwrap_or_else(|| panic!("{v}: {releases:#?}"))
            .clone()
    };
    assert_eq!(of("1.0.0")["signed"], true, "{releases:#?}");
    assert_eq!(of("1.0.0")["verified"], true, "{releases:#?}");
    assert_eq!(of("2.0.0")["signed"], false, "{releases:#?}");
    assert_eq!(of("2.0.0")["verified"], false, "{releases:#?}");
    assert!(
        status["channels"][0]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("no signature")),
        "{status:#}"
    );
    let metrics = serve.get("/metrics");
    let failures = crate::serve::metric(&metrics, "relsync_signature_verification_failures_total");
    assert!(failures.is_some_and(|n| n >= 1.0), "{metrics}");
    let page = serve.get("/");
    assert!(page.contains("<table class=\"signatures\">"), "{page}");
    assert!(page.contains("data-verified=\"refused\""), "{page}");
}
