//! Signatures with real peers built by `scripts/test-deps.sh`: releases signed by the real
//! `cosign` CLI (cosign 3's default, a sigstore bundle referrer, and the legacy `.sig`
//! format), verified by relsync's policy and, once mirrored, by `cosign verify --key`
//! against the target; and distribution v3's `registry` (which, at 3.1.2, serves no
//! referrers API: referrers travel through the tag schema there too).

use std::path::Path;
use std::process::Command;

use relsync::digest::Digest;
use serde_json::Value;

use crate::signatures::manifest_of;
use crate::test_deps;
use crate::util::Distribution;
use crate::util::{
    CosignKey, Pusher, Repo, SOURCE, TARGET, TestRegistry, block_on, push_bundle_referrer,
    signature_policy, three_releases, write_registries,
};

const PASSWORD: &str = "relsync-test";

/// Runs cosign in `dir` with `args`; its exit status and output (stdout and stderr).
fn cosign(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(test_deps::binary("cosign"))
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("HOME", dir)
        .env("SIGSTORE_NO_CACHE", "1")
        .output()
        .expect("run cosign");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn cosign_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = cosign(dir, args);
    assert!(ok, "cosign {args:?} failed:\n{out}");
    out
}

/// A plain-HTTP loopback registry, no transparency log, no timestamp authority.
const INSECURE: [&str; 2] = ["--allow-http-registry", "--allow-insecure-registry"];

#[test]
fn releases_signed_by_cosign_pass_the_policy_and_cosign_verify_against_the_target() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (repo, d) = three_releases(&src, &dst.host(), "");
    let keys = tempfile::tempdir().unwrap();
    let dir = keys.path();
    cosign_ok(dir, &["generate-key-pair"]);
    // No transparency log: a signing config without services (cosign 3 refuses
    // --tlog-upload=false with its default signing config).
    cosign_ok(dir, &["signing-config", "create", "--out", "signing.json"]);
    let image = |i: usize| format!("{}/{SOURCE}@{}", src.host(), d[i]);
    // cosign 3's default: a sigstore bundle attached as a referrer (the tag schema on 2.8).
    for i in [0, 2] {
        let mut args = vec![
            "sign",
            "--key",
            "cosign.key",
            "--signing-config",
            "signing.json",
            "-y",
        ];
        args.extend(INSECURE);
        let image = image(i);
        args.push(&image);
        cosign_ok(dir, &args);
    }
    // The legacy format: a `.sig` tag with a simple-signing payload.
    {
        let image = image(1);
        let mut args = vec![
            "sign",
            "--key",
            "cosign.key",
            "--new-bundle-format=false",
            "--use-signing-config=false",
            "--tlog-upload=false",
            "-y",
        ];
        args.extend(INSECURE);
        args.push(&image);
        cosign_ok(dir, &args);
    }
    let public = std::fs::read_to_string(dir.join("cosign.pub")).unwrap();
    repo.write(
        "policies/signed.yaml",
        &signature_policy(&[("release", &public)]),
    );
    repo.commit("signatures required");

    let run = repo.relsync(&["sync"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());

    for digest in &d {
        let target = format!("{}/{TARGET}@{digest}", dst.host());
        let mut args = vec![
            "verify",
            "--key",
            "cosign.pub",
            "--insecure-ignore-tlog",
            "--insecure-ignore-sct",
        ];
        args.extend(INSECURE);
        args.push(&target);
        let out = cosign_ok(dir, &args);
        assert!(out.contains(digest.as_str()), "{out}");
    }
    // And a release the source never signed fails cosign verify (the check can fail).
    let unsigned = block_on(src.pusher().push_image(SOURCE, Some("x"), "unsigned")).manifest;
    let target = format!("{}/{SOURCE}@{unsigned}", src.host());
    let mut args = vec!["verify", "--key", "cosign.pub", "--insecure-ignore-tlog"];
    args.extend(INSECURE);
    args.push(&target);
    assert!(!cosign(dir, &args).0);
}

/// The status of the referrers API of `base` for `digest` in `repo`.
async fn referrers_status(base: &str, repo: &str, digest: &Digest) -> u16 {
    reqwest::get(format!("{base}/v2/{repo}/referrers/{digest}"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// distribution v3 (3.1.2, the version `scripts/test-deps.sh` builds) serves no referrers
/// API, nor does `crane registry serve`: the API path has no real peer here, and the test
/// says so. What v3 does test: relsync asks the API, tells a registry's plain 404 from an
/// API answer, and falls back to the referrers tag schema on both sides, with a signed
/// release judged from a referrer the source lists only in its `sha256-<hex>` index.
#[test]
fn on_distribution_v3_without_a_referrers_api_referrers_travel_through_the_tag_schema() {
    let src = TestRegistry::start_of(Distribution::V3);
    let dst = TestRegistry::start_of(Distribution::V3);
    let src_base = format!("http://{}", src.host());
    let dst_base = format!("http://{}", dst.host());
    let key = CosignKey::generate();
    let pusher = Pusher::new(&src_base, None);
    let identity = format!("{}/{SOURCE}", src.host());
    let (release, referrer) = block_on(async {
        let release = pusher.push_index(SOURCE, "1.0.0", "v3-release").await;
        let referrer = push_bundle_referrer(
            &pusher,
            SOURCE,
            &release.index,
            crate::util::OCI_INDEX,
            release.index_bytes.len(),
            &identity,
            &key,
            true,
        )
        .await;
        (release, referrer)
    });
    let status = block_on(referrers_status(&src_base, SOURCE, &release.index));
    if status == 404 {
        println!(
            "note: distribution v3 at {src_base} serves no referrers API (404): the referrers tag schema is tested instead"
        );
    }
    let repo = Repo::new();
    write_registries(&repo, &src.host(), &dst.host(), "");
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {}/{SOURCE}\n  target: {}/{TARGET}\n  releases:\n    - {{version: 1.0.0, digest: '{}'}}\n",
            src.host(),
            dst.host(),
            release.index
        ),
    );
    repo.write(
        "manifests/okd.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {name: okd}\nspec:\n  stream: okd\n  tags: [latest]\n  versions: [1.0.0]\n",
    );
    repo.write(
        "policies/signed.yaml",
        &signature_policy(&[("release", &key.public_pem())]),
    );
    repo.commit("one signed release on v3");

    let run = repo.relsync(&["sync"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
    // The referrer is in the target by digest, byte-exact, and listed by its index.
    let (_, bytes) = block_on(manifest_of(&dst_base, TARGET, referrer.digest.as_str()));
    assert_eq!(bytes, referrer.bytes);
    let tag = format!("sha256-{}", release.index.hex());
    let (_, index) = block_on(manifest_of(&dst_base, TARGET, &tag));
    let index: Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"].as_str(),
        Some(referrer.digest.as_str())
    );
    // A second sync is a no-op.
    let run = repo.relsync(&["sync"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
}
