//! Signatures attached as OCI 1.1 referrers, read and written through the referrers API of a
//! real registry that serves it: go-containerregistry's registry (`ggcr-registry`, built by
//! `scripts/test-deps.sh`), with a recording proxy in front of source and target. `sync`
//! finds the sigstore bundles by `GET /v2/<name>/referrers/<digest>`, copies them
//! byte-exact by digest (no `sha256-<hex>` tag on the target, whose own referrers API then
//! lists them), `check` with signatures required passes, and a second sync writes nothing.

use relsync::digest::Digest;
use serde_json::Value;

use crate::signatures::manifest_of;
use crate::util::{
    CosignKey, Distribution, PagingProxy, ProxyOptions, Repo, SOURCE, TARGET, TestRegistry,
    block_on, push_bundle_referrer, rule_verdict, signature_policy, write_registries,
};

const RELEASES: [&str; 2] = ["1.0.0", "2.0.0"];

/// The digests `base`'s referrers API lists for `subject` in `repo`.
async fn referrers_of(base: &str, repo: &str, subject: &Digest) -> Vec<String> {
    let resp = reqwest::Client::new()
        .get(format!("{base}/v2/{repo}/referrers/{subject}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "referrers of {repo}@{subject}");
    let index: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

fn channel(versions: &[&str]) -> String {
    format!(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: okd}}\nspec:\n  stream: okd\n  tags: [latest]\n  versions: [{}]\n",
        versions.join(", ")
    )
}

#[test]
fn bundles_listed_by_the_referrers_api_are_copied_through_it_verified_and_not_written_twice() {
    let src = TestRegistry::start_of(Distribution::Ggcr);
    let dst = TestRegistry::start_of(Distribution::Ggcr);
    let src_proxy = PagingProxy::start(&src.base_url(), ProxyOptions::default());
    let dst_proxy = PagingProxy::start(&dst.base_url(), ProxyOptions::default());
    let key = CosignKey::generate();
    let identity = format!("{}/{SOURCE}", src_proxy.host());
    let (digests, referrers) = block_on(async {
        let pusher = src.pusher();
        let mut digests = Vec::new();
        let mut referrers = Vec::new();
        for v in RELEASES {
            let d = pusher
                .push_index(SOURCE, v, &format!("release-{v}"))
                .await
                .index;
            let (mt, bytes) = manifest_of(&src.base_url(), SOURCE, d.as_str()).await;
            // By digest only: no referrers tag schema index in the source.
            referrers.push(
                push_bundle_referrer(
                    &pusher,
                    SOURCE,
                    &d,
                    &mt,
                    bytes.len(),
                    &identity,
                    &key,
                    false,
                )
                .await,
            );
            digests.push(d);
        }
        (digests, referrers)
    });
    // The source's own API lists each bundle; there is no tag schema tag.
    for (d, r) in digests.iter().zip(&referrers) {
        assert_eq!(
            block_on(referrers_of(&src.base_url(), SOURCE, d)),
            [r.digest.to_string()]
        );
        assert_eq!(src.tag_digest(SOURCE, &format!("sha256-{}", d.hex())), None);
    }

    let repo = Repo::new();
    write_registries(&repo, &src_proxy.host(), &dst_proxy.host(), "");
    let releases: String = RELEASES
        .iter()
        .zip(&digests)
        .map(|(v, d)| format!("    - {{version: {v}, digest: '{d}'}}\n"))
        .collect();
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {}/{SOURCE}\n  target: {}/{TARGET}\n  releases:\n{releases}",
            src_proxy.host(),
            dst_proxy.host(),
        ),
    );
    repo.write(
        "policies/signed.yaml",
        &signature_policy(&[("okd-release", &key.public_pem())]),
    );
    repo.write("manifests/channel.yaml", &channel(&RELEASES[..1]));
    repo.commit("base: one release, signatures required");
    repo.write("manifests/channel.yaml", &channel(&RELEASES));
    repo.commit("head: publish the second");

    // `check` judges the added release by its bundle, found through the source's API.
    let run = repo.relsync(&["check", "--base", "HEAD~1", "-o", "json"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
    let out = run.json();
    let rule = rule_verdict(&out, "signatures");
    assert_eq!(rule["passed"], true, "{rule:#}");
    let asked = src_proxy.log();
    assert!(
        asked.contains(&format!("GET /v2/{SOURCE}/referrers/{}", digests[1])),
        "check did not ask the source's referrers API: {asked:#?}"
    );

    let run = repo.relsync(&["sync"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());

    let src_asked = src_proxy.log();
    let dst_asked = dst_proxy.log();
    for (d, r) in digests.iter().zip(&referrers) {
        let listing = format!("GET /v2/{SOURCE}/referrers/{d}");
        assert!(
            src_asked.iter().any(|l| l.starts_with(&listing)),
            "no {listing} in {src_asked:#?}"
        );
        let listing = format!("GET /v2/{TARGET}/referrers/{d}");
        assert!(
            dst_asked.iter().any(|l| l.starts_with(&listing)),
            "no {listing} in {dst_asked:#?}"
        );
        // The bundle is in the target by digest, byte for byte, listed by its API.
        let (_, bytes) = block_on(manifest_of(&dst.base_url(), TARGET, r.digest.as_str()));
        assert_eq!(bytes, r.bytes);
        assert_eq!(
            block_on(referrers_of(&dst.base_url(), TARGET, d)),
            [r.digest.to_string()]
        );
        // The API made a tag schema index needless: none was written.
        assert_eq!(dst.tag_digest(TARGET, &format!("sha256-{}", d.hex())), None);
    }
    let tag_schema_writes: Vec<&String> = dst_asked
        .iter()
        .filter(|l| l.starts_with("PUT ") && l.contains("/manifests/sha256-"))
        .collect();
    assert!(tag_schema_writes.is_empty(), "{tag_schema_writes:#?}");
    assert_eq!(
        dst.tag_digest(TARGET, "latest"),
        Some(digests[1].to_string())
    );

    // A second sync writes nothing: not by the proxy's count, nor by the registry's own log.
    let (proxy_before, served_before) = (dst_proxy.log().len(), dst.served_writes().len());
    repo.relsync(&["sync"]).expect_code(0);
    let writes: Vec<String> = dst_proxy.log()[proxy_before..]
        .iter()
        .filter(|l| !l.starts_with("GET ") && !l.starts_with("HEAD "))
        .cloned()
        .collect();
    assert_eq!(writes, [] as [String; 0]);
    assert_eq!(dst.served_writes()[served_before..], [] as [String; 0]);
}
