//! Signatures travel with payload components, against real docker-registry processes: what
//! is attached to a component's digest (a cosign `.sig`, made in cosign's exact format by
//! `util::sign`) lands in `payload.target` byte-exact, before the component tag and so
//! before any tag of its release; a second sync writes nothing. A Policy's signature
//! requirement judges releases, never components.

use relsync::digest::Digest;

use crate::signatures::manifest_of;
use crate::util::{
    BuiltRelease, CosignKey, Repo, TestRegistry, block_on, payload_releases, push_legacy_signature,
    push_release, sig_tag, signature_policy, write_registries,
};

/// The source registry's repositories.
const RELEASES: &str = "okd/release";
const CONTENT: &str = "okd/content";
/// The target registry's repositories.
const TARGET: &str = "okd/scos-release";
const PAYLOAD: &str = "okd/scos-content";
const VERSION: &str = "4.14.0-okd.1";

/// One payload release of four components pushed to `src`, and a repository mirroring it
/// to `dst` (payload into `dst/PAYLOAD`), channel `next` listing it; `policy`: an optional
/// Policy document (committed with the rest).
fn one_payload_release(
    src: &TestRegistry,
    dst: &TestRegistry,
    policy: Option<&str>,
) -> (Repo, BuiltRelease) {
    let release = payload_releases(&[VERSION], 4, 0, &format!("{}/{CONTENT}", src.host()))
        .pop()
        .unwrap();
    block_on(push_release(&src.pusher(), RELEASES, CONTENT, &release));
    let repo = Repo::new();
    write_registries(&repo, &src.host(), &dst.host(), "");
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {}/{RELEASES}\n  target: {}/{TARGET}\n  order: listed\n  payload:\n    target: {}/{PAYLOAD}\n  releases:\n    - {{version: {VERSION}, digest: '{}'}}\n",
            src.host(),
            dst.host(),
            dst.host(),
            release.digest()
        ),
    );
    repo.write(
        "manifests/next.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: next}}\nspec:\n  stream: okd\n  tags: [next]\n  versions: [{VERSION}]\n"
        ),
    );
    if let Some(p) = policy {
        repo.write("policies/policy.yaml", p);
    }
    repo.commit("payload stream");
    (repo, release)
}

/// Signs `digest` in the source repository `repo` of `src` with a legacy `.sig`.
fn sign(src: &TestRegistry, repo: &str, digest: &Digest, key: &CosignKey) -> Digest {
    block_on(push_legacy_signature(
        &src.pusher(),
        repo,
        digest,
        digest,
        &format!("{}/{repo}", src.host()),
        key,
    ))
}

#[test]
fn a_components_signature_lands_byte_exact_in_the_payload_target_before_its_tag_and_a_second_sync_writes_nothing()
 {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (repo, release) = one_payload_release(&src, &dst, None);
    let key = CosignKey::generate();
    let component = release.component("comp-001");
    let sig = sign(&src, CONTENT, &component, &key);
    let before = dst.served_writes().len();

    let run = repo.relsync(&["sync"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());

    // The `.sig` tag is in the payload target, holding the source's manifest byte for byte.
    let signature = sig_tag(&component, "sig");
    assert_eq!(dst.tag_digest(PAYLOAD, &signature), Some(sig.to_string()));
    let (_, copied) = block_on(manifest_of(&dst.base_url(), PAYLOAD, sig.as_str()));
    let (_, original) = block_on(manifest_of(&src.base_url(), CONTENT, sig.as_str()));
    assert_eq!(copied, original);
    // Every component tag is in place; the unsigned components got no `.sig`.
    for (tag, digest) in release.component_tags() {
        assert_eq!(dst.tag_digest(PAYLOAD, &tag), Some(digest.to_string()));
        if digest != component {
            assert_eq!(dst.tag_digest(PAYLOAD, &sig_tag(&digest, "sig")), None);
        }
    }
    // Content before names: the signature went out before the component's tag, and that
    // before the release's tags.
    let writes = dst.served_writes()[before..].to_vec();
    let position = |needle: &str| {
        writes
            .iter()
            .position(|w| w.starts_with("PUT ") && w.ends_with(needle))
            .unwrap_or_else(|| panic!("no PUT of {needle} in {writes:#?}"))
    };
    let component_tag = format!("/manifests/{VERSION}-comp-001");
    assert!(position(&format!("/manifests/{signature}")) < position(&component_tag));
    assert!(position(&component_tag) < position(&format!("{TARGET}/manifests/{VERSION}")));
    assert!(position(&component_tag) < position(&format!("{TARGET}/manifests/next")));

    // A second sync writes nothing; plan and drift are in sync.
    let before = dst.served_writes().len();
    repo.relsync(&["sync"]).expect_code(0);
    assert_eq!(dst.served_writes()[before..], [] as [String; 0]);
    repo.relsync(&["plan"]).expect_code(0);
    repo.relsync(&["drift"]).expect_code(0);
}

#[test]
fn required_signatures_judge_the_release_not_its_unsigned_components() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let key = CosignKey::generate();
    let policy = signature_policy(&[("okd-release", &key.public_pem())]);
    let (repo, release) = one_payload_release(&src, &dst, Some(&policy));
    // The release is signed; none of its components is.
    let sig = sign(&src, RELEASES, &release.digest(), &key);

    let run = repo.relsync(&["sync"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
    assert_eq!(
        dst.tag_digest(TARGET, VERSION),
        Some(release.digest().to_string())
    );
    assert_eq!(
        dst.tag_digest(TARGET, &sig_tag(&release.digest(), "sig")),
        Some(sig.to_string())
    );
    for (tag, digest) in release.component_tags() {
        assert_eq!(dst.tag_digest(PAYLOAD, &tag), Some(digest.to_string()));
    }
    // Unsigned components are not `unsigned` drift, nor signatures for plan to copy.
    let drift = repo.relsync(&["drift", "-o", "json"]);
    assert_eq!(drift.code(), 0, "{}", drift.stdout());
    let items = drift.json()["items"].as_array().unwrap().clone();
    assert!(items.iter().all(|i| i["state"] == "ok"), "{items:#?}");
    assert!(
        items.iter().any(|i| !i["release"].is_null()),
        "the component tags are drift items: {items:#?}"
    );
    let plan = repo.relsync(&["plan", "-o", "json"]);
    assert_eq!(plan.code(), 0, "{}", plan.stdout());
    assert!(plan.json().get("signatures").is_none(), "{}", plan.stdout());
    let before = dst.served_writes().len();
    repo.relsync(&["sync"]).expect_code(0);
    assert_eq!(dst.served_writes()[before..], [] as [String; 0]);
}
