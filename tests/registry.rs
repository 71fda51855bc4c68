//! The registry adapter and `observe()` against real registry processes (and a paging /
//! token-issuing proxy in front of them), and the `oci:` layout reader. Every registry test
//! runs twice, against distribution 2.8 (`registry::distribution_2_8::*`) and v3
//! (`registry::distribution_3::*`), by `on_both_distributions!` at the end of the file;
//! where the two answer differently, each is asserted precisely.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use relsync::config::{Config, RegistrySettings};
use relsync::desired::{AbsentTag, DesiredRepo, DesiredState, DesiredTag, TagKind};
use relsync::digest::Digest;
use relsync::manifest::{Located, Span, VersionKey};
use relsync::observe::{ObserveOptions, observe};
use relsync::plan::ObservedRepo;
use relsync::registry::{
    BlobStream, ContentStore, CredentialLookup, EnvLookup, RawManifest, Registries, RegistryError,
    Repository, TagDeletion, TargetReader,
};

use crate::util::{
    BearerAuth, Content, Distribution, Fault, LinkStyle, OCI_INDEX, OCI_MANIFEST, PagingProxy,
    ProxyOptions, TestRegistry, image_index, on_both_distributions, tiny_image, write_oci_layout,
};

fn settings(host: &str) -> RegistrySettings {
    RegistrySettings {
        host: Located::new(host.to_string(), Span::file("relsync.yaml")),
        insecure: true,
        ca_file: None,
        username_env: None,
        password_env: None,
        map_to: None,
        token_realms: Vec::new(),
        delete_by_digest: false,
        rate_limit: None,
    }
}

/// A config marking every host insecure (plain HTTP on loopback).
fn config_for(hosts: &[String]) -> Config {
    Config {
        registries: hosts.iter().map(|h| settings(h)).collect(),
        ..Default::default()
    }
}

fn no_credentials() -> CredentialLookup {
    CredentialLookup::new(Arc::new(|_: &str| None), Vec::new())
}

fn registries(config: &Config) -> Registries {
    Registries::from_config_with(config, Path::new("/nonexistent"), no_credentials())
        .expect("registries")
}

fn repo(r: &Registries, name: &str) -> Repository {
    r.repository(name).expect("repository")
}

fn random_digest(seed: &str) -> Digest {
    Digest::sha256_of(format!("not pushed anywhere: {seed}").as_bytes())
}

async fn lists_resolves_and_checks_manifests(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let pusher = reg.pusher();
    let img = pusher.push_image("okd/release", Some("v1"), "one").await;
    pusher
        .push_manifest(
            "okd/release",
            "v2",
            &Content {
                media_type: OCI_MANIFEST.to_string(),
                bytes: img.manifest_bytes.clone(),
            },
        )
        .await;
    let idx = pusher.push_index("okd/release", "multi", "idx").await;

    let r = registries(&config_for(&[reg.host()]));
    let release = repo(&r, &format!("{}/okd/release", reg.host()));
    let before = r.request_count();

    assert_eq!(release.list_tags().await.unwrap(), ["multi", "v1", "v2"]);
    assert_eq!(r.request_count() - before, 1, "one GET for the tag list");

    // An index tag resolves to the index itself, not to one platform's child.
    let multi = release.resolve_tag("multi").await.unwrap();
    assert_eq!(multi, Some(idx.index.clone()));
    assert!(
        idx.children
            .iter()
            .all(|c| Some(&c.manifest) != multi.as_ref())
    );
    assert_eq!(
        release.resolve_tag("v1").await.unwrap(),
        Some(img.manifest.clone())
    );
    assert_eq!(
        release.resolve_tag("v2").await.unwrap(),
        Some(img.manifest.clone())
    );
    assert_eq!(release.resolve_tag("nope").await.unwrap(), None);
    assert_eq!(r.request_count() - before, 5, "one HEAD per resolve");

    // By digest: children pushed without a tag are present, random digests are not.
    for child in &idx.children {
        assert!(release.has_manifest(&child.manifest).await.unwrap());
    }
    assert!(!release.has_manifest(&random_digest("x")).await.unwrap());
    assert_eq!(r.request_count() - before, 8);

    // A repository that does not exist is empty.
    let missing = repo(&r, &format!("{}/no/such/repo", reg.host()));
    assert!(missing.list_tags().await.unwrap().is_empty());
    assert_eq!(missing.resolve_tag("v1").await.unwrap(), None);
    assert!(!missing.has_manifest(&img.manifest).await.unwrap());

    // Invalid tags are refused before any request.
    let n = r.request_count();
    let e = release.resolve_tag("../v1").await.unwrap_err();
    assert!(matches!(e, RegistryError::InvalidTag { .. }), "{e}");
    assert_eq!(r.request_count(), n);

    // A registry that does not answer: a transport error naming the repository.
    let dead_host = format!("127.0.0.1:{}", crate::util::free_port());
    let r2 = registries(&config_for(std::slice::from_ref(&dead_host)));
    let e = repo(&r2, &format!("{dead_host}/a/b"))
        .list_tags()
        .await
        .unwrap_err();
    assert!(matches!(e.cause(), RegistryError::Transport { .. }), "{e}");
    assert!(e.to_string().contains(&format!("{dead_host}/a/b")), "{e}");
}

async fn follows_link_pagination_through_a_paging_proxy(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let tags: Vec<String> = (0..250)
        .map(|i| format!("4.{}.{}", i / 10, i % 10))
        .collect();
    let pushed = reg.pusher().push_many("paged/many", &tags, 8).await;
    assert_eq!(pushed.len(), 250);
    let expected: Vec<String> = reg.pusher().tags("paged/many").await;
    assert_eq!(expected.len(), 250);

    for (style, page, pages) in [(LinkStyle::Relative, 7, 36), (LinkStyle::Absolute, 100, 3)] {
        let proxy = PagingProxy::start(
            &reg.base_url(),
            ProxyOptions {
                page_size: Some(page),
                link: style,
                ..Default::default()
            },
        );
        let r = registries(&config_for(&[proxy.host()]));
        let listed = repo(&r, &format!("{}/paged/many", proxy.host()))
            .list_tags()
            .await
            .unwrap();
        assert_eq!(listed, expected, "{style:?}");
        assert_eq!(r.request_count(), pages, "{style:?}: one GET per page");
        assert_eq!(proxy.request_count(), pages);
        let log = proxy.log();
        assert!(log[0].ends_with("/tags/list?n=1000"), "{log:?}");
        assert!(log[1].contains("&last="), "{log:?}");
    }
}

async fn refuses_foreign_links_and_loops(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let tags: Vec<String> = (0..30).map(|i| format!("t{i:02}")).collect();
    reg.pusher().push_many("paged/few", &tags, 8).await;

    let foreign = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            page_size: Some(10),
            link: LinkStyle::ForeignHost,
            ..Default::default()
        },
    );
    let r = registries(&config_for(&[foreign.host()]));
    let e = repo(&r, &format!("{}/paged/few", foreign.host()))
        .list_tags()
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::Pagination { .. }), "{e}");
    assert!(e.to_string().contains("http://localhost:"), "{e}");
    assert_eq!(
        foreign.request_count(),
        1,
        "the foreign link is not followed"
    );

    let looping = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            page_size: Some(10),
            link: LinkStyle::Loop,
            ..Default::default()
        },
    );
    let r = registries(&config_for(&[looping.host()]));
    let e = repo(&r, &format!("{}/paged/few", looping.host()))
        .list_tags()
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::Pagination { .. }), "{e}");
    assert!(e.to_string().contains("loop"), "{e}");
    assert_eq!(
        looping.request_count(),
        2,
        "page 1, page 2, then the loop is seen"
    );
}

async fn basic_auth_from_env_and_from_auth_file(kind: Distribution) {
    const USER: &str = "relsync";
    const PASSWORD: &str = "s3cret-Pw-9f2c";
    let reg = TestRegistry::start_of_with_basic_auth(kind, USER, PASSWORD);
    let img = reg
        .pusher()
        .push_image("secure/app", Some("v1"), "sec")
        .await;
    let name = format!("{}/secure/app", reg.host());

    // Anonymous: refused with the registry's 401 and error code.
    let r = registries(&config_for(&[reg.host()]));
    let e = repo(&r, &name).list_tags().await.unwrap_err();
    match &e {
        RegistryError::Status { status, code, .. } => {
            assert_eq!(*status, 401);
            assert_eq!(code.as_deref(), Some("UNAUTHORIZED"));
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains(&name), "{e}");

    // Credentials from the variables named by usernameEnv/passwordEnv (injected env).
    let mut config = config_for(&[reg.host()]);
    config.registries[0].username_env = Some("T_USER".into());
    config.registries[0].password_env = Some("T_PASS".into());
    let env: EnvLookup = Arc::new(|k: &str| match k {
        "T_USER" => Some(USER.to_string()),
        "T_PASS" => Some(PASSWORD.to_string()),
        _ => None,
    });
    let r = Registries::from_config_with(
        &config,
        Path::new("/nonexistent"),
        CredentialLookup::from_env_fn(env),
    )
    .unwrap();
    let app = repo(&r, &name);
    assert_eq!(app.list_tags().await.unwrap(), ["v1"]);
    assert_eq!(r.request_count(), 2, "401, then the retry with credentials");
    assert_eq!(
        app.resolve_tag("v1").await.unwrap(),
        Some(img.manifest.clone())
    );
    assert_eq!(
        r.request_count(),
        3,
        "basic auth is sent up front once learnt"
    );
    assert!(!format!("{r:?}").contains(PASSWORD));

    // Credentials from the auth file $REGISTRY_AUTH_FILE names.
    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("auth.json");
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        &auth_file,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{encoded}"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let file = auth_file.to_string_lossy().into_owned();
    let env: EnvLookup = Arc::new(move |k: &str| (k == "REGISTRY_AUTH_FILE").then(|| file.clone()));
    let r = Registries::from_config_with(
        &config_for(&[reg.host()]),
        Path::new("/nonexistent"),
        CredentialLookup::from_env_fn(env),
    )
    .unwrap();
    assert_eq!(
        repo(&r, &name).resolve_tag("v1").await.unwrap(),
        Some(img.manifest.clone())
    );

    // A wrong password: refused, and the password is in no message.
    let wrong = "wrong-Pw-771";
    let env: EnvLookup = Arc::new(move |k: &str| match k {
        "T_USER" => Some(USER.to_string()),
        "T_PASS" => Some(wrong.to_string()),
        _ => None,
    });
    let r = Registries::from_config_with(
        &config,
        Path::new("/nonexistent"),
        CredentialLookup::from_env_fn(env),
    )
    .unwrap();
    let e = repo(&r, &name).list_tags().await.unwrap_err();
    assert!(
        matches!(e, RegistryError::Status { status: 401, .. }),
        "{e}"
    );
    let shown = format!("{e} {e:?} {r:?}");
    assert!(
        !shown.contains(wrong) && !shown.contains(PASSWORD),
        "{shown}"
    );
}

async fn bearer_tokens_are_fetched_cached_and_reused(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let pusher = reg.pusher();
    let a = pusher.push_image("tok/a", Some("v1"), "a").await;
    let b = pusher.push_image("tok/b", Some("v1"), "b").await;

    // A token endpoint that wants credentials, answering `token`.
    let proxy = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            bearer: Some(BearerAuth {
                credentials: Some(("robot".into(), "tok-pass-123".into())),
                access_token_field: false,
            }),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let docker_config = dir.path().join(".docker/config.json");
    std::fs::create_dir_all(docker_config.parent().unwrap()).unwrap();
    std::fs::write(
        &docker_config,
        format!(
            r#"{{"auths": {{"http://{}/v1/": {{"username": "robot", "password": "tok-pass-123"}}}}}}"#,
            proxy.host()
        ),
    )
    .unwrap();
    let home = dir.path().to_string_lossy().into_owned();
    let env: EnvLookup = Arc::new(move |k: &str| (k == "HOME").then(|| home.clone()));
    let r = Registries::from_config_with(
        &config_for(&[proxy.host()]),
        Path::new("/nonexistent"),
        CredentialLookup::from_env_fn(env),
    )
    .unwrap();
    let repo_a = repo(&r, &format!("{}/tok/a", proxy.host()));
    assert_eq!(
        repo_a.resolve_tag("v1").await.unwrap(),
        Some(a.manifest.clone())
    );
    assert_eq!(
        (r.request_count(), proxy.token_request_count()),
        (3, 1),
        "401, token, retry"
    );
    assert_eq!(repo_a.list_tags().await.unwrap(), ["v1"]);
    assert_eq!(r.request_count(), 4, "the cached token is sent up front");
    let repo_b = repo(&r, &format!("{}/tok/b", proxy.host()));
    assert_eq!(
        repo_b.resolve_tag("v1").await.unwrap(),
        Some(b.manifest.clone())
    );
    assert_eq!(
        (r.request_count(), proxy.token_request_count()),
        (6, 2),
        "a new scope: token first (the realm is known), then the request"
    );
    let log = proxy.log();
    assert!(
        log.iter().any(
            |l| l.starts_with("GET /token?") && l.contains("scope=repository%3Atok%2Fb%3Apull")
        ),
        "{log:?}"
    );

    // Anonymous tokens, answered as `access_token`.
    let anon = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            bearer: Some(BearerAuth {
                credentials: None,
                access_token_field: true,
            }),
            ..Default::default()
        },
    );
    let r = registries(&config_for(&[anon.host()]));
    assert_eq!(
        repo(&r, &format!("{}/tok/b", anon.host()))
            .resolve_tag("v1")
            .await
            .unwrap(),
        Some(b.manifest.clone())
    );

    // No credentials for an endpoint that wants them: an auth error, naming the repository.
    let r = registries(&config_for(&[proxy.host()]));
    let e = repo(&r, &format!("{}/tok/a", proxy.host()))
        .list_tags()
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::Auth { .. }), "{e}");
    assert!(
        e.to_string().contains("tok/a") && e.to_string().contains("401"),
        "{e}"
    );
}

async fn hashes_the_manifest_when_the_digest_header_is_missing(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let idx = reg.pusher().push_index("nohdr/app", "multi", "nohdr").await;
    let proxy = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            strip_digest_header: true,
            ..Default::default()
        },
    );
    let r = registries(&config_for(&[proxy.host()]));
    let app = repo(&r, &format!("{}/nohdr/app", proxy.host()));
    assert_eq!(
        app.resolve_tag("multi").await.unwrap(),
        Some(idx.index.clone())
    );
    assert_eq!(r.request_count(), 2, "HEAD, then GET to hash the body");
    assert_eq!(proxy.log()[1], "GET /v2/nohdr/app/manifests/multi");
}

fn desired_tag(digest: &Digest, version: &str) -> DesiredTag {
    DesiredTag {
        digest: digest.clone(),
        version: version.to_string(),
        stream: "s".to_string(),
        source: "example.invalid/src".to_string(),
        kind: TagKind::Version,
        key: VersionKey::Listed(0),
        channels: BTreeSet::from(["c".to_string()]),
        span: Span::file("test.yaml"),
    }
}

fn absent_tag(version: &str) -> AbsentTag {
    AbsentTag {
        version: version.to_string(),
        channels: BTreeSet::from(["c".to_string()]),
        span: Span::file("test.yaml"),
    }
}

async fn observe_makes_one_request_per_named_tag_across_two_registries(kind: Distribution) {
    let a = TestRegistry::start_of(kind);
    let b = TestRegistry::start_of(kind);
    // Registry A behind a counting proxy (no paging), to count what the server sees.
    let proxy = PagingProxy::start(&a.base_url(), ProxyOptions::default());
    let pa = a.pusher();
    let img1 = pa.push_image("okd/release", Some("v1"), "one").await;
    let img2 = pa.push_image("okd/release", Some("v2"), "two").await;
    let img3 = pa.push_image("okd/release", None, "three").await; // by digest only
    let retag = |tag: &'static str, img: &crate::util::PushedImage| {
        let pa = pa.clone();
        let content = Content {
            media_type: OCI_MANIFEST.to_string(),
            bytes: img.manifest_bytes.clone(),
        };
        async move { pa.push_manifest("okd/release", tag, &content).await }
    };
    retag("extra1", &img2).await;
    retag("old", &img2).await;
    let sig_tag = format!("sha256-{}.sig", img1.manifest.hex());
    retag("sig", &img1).await;
    // A signature tag (name only matters here).
    pa.push_manifest(
        "okd/release",
        &sig_tag,
        &Content {
            media_type: OCI_MANIFEST.to_string(),
            bytes: img1.manifest_bytes.clone(),
        },
    )
    .await;
    let pb = b.pusher();
    let other = pb.push_image("other/y", Some("a"), "other").await;

    let missing = random_digest("missing");
    let host_a = proxy.host();
    let host_b = b.host();
    let release = format!("{host_a}/okd/release");
    let mirror = format!("{host_b}/mirror/x");
    let other_repo = format!("{host_b}/other/y");
    let mut desired = DesiredState::default();
    desired.repos.insert(
        release.clone(),
        DesiredRepo {
            tags: BTreeMap::from([
                ("v1".to_string(), desired_tag(&img1.manifest, "1")), // listed, ok
                ("v2".to_string(), desired_tag(&img3.manifest, "2")), // listed, moved
                ("new1".to_string(), desired_tag(&img3.manifest, "3")), // not listed, present
                ("float2".to_string(), desired_tag(&img3.manifest, "3")), // same digest: deduped
                ("new2".to_string(), desired_tag(&missing, "4")),     // not listed, absent
                ("float".to_string(), desired_tag(&img1.manifest, "1")), // held by v1: no request
            ]),
            absent: BTreeMap::from([
                ("old".to_string(), absent_tag("0")),   // listed: resolved
                ("gone".to_string(), absent_tag("-1")), // not listed: nothing
            ]),
            known: BTreeMap::new(),
        },
    );
    desired.repos.insert(
        mirror.clone(),
        DesiredRepo {
            tags: BTreeMap::from([("t1".to_string(), desired_tag(&img1.manifest, "1"))]),
            ..Default::default()
        },
    );
    desired.repos.insert(
        other_repo.clone(),
        DesiredRepo {
            tags: BTreeMap::from([("a".to_string(), desired_tag(&other.manifest, "1"))]),
            ..Default::default()
        },
    );

    let config = config_for(&[host_a.clone(), host_b.clone()]);
    let r = registries(&config);
    let observed = observe(&desired, &r, &ObserveOptions::default())
        .await
        .unwrap();
    // A: 1 tag list + HEAD v1, v2, old + HEAD img3, missing = 6.
    // B: (1 tag list of mirror/x, which does not exist: nothing to HEAD; issue 16)
    //    + (1 tag list + HEAD a) = 3.
    assert_eq!(proxy.request_count(), 6, "{:?}", proxy.log());
    assert_eq!(r.request_count(), 9);

    let rel = &observed.repos[&release];
    assert_eq!(
        rel.tags,
        BTreeMap::from([
            ("extra1".to_string(), None),
            ("old".to_string(), Some(img2.manifest.clone())),
            ("sig".to_string(), None),
            (sig_tag.clone(), None),
            ("v1".to_string(), Some(img1.manifest.clone())),
            ("v2".to_string(), Some(img2.manifest.clone())),
        ])
    );
    assert_eq!(
        rel.manifests,
        BTreeMap::from([(img3.manifest.clone(), true), (missing.clone(), false)])
    );
    assert_eq!(
        observed.repos[&mirror],
        ObservedRepo {
            tags: BTreeMap::new(),
            manifests: BTreeMap::from([(img1.manifest.clone(), false)]),
        }
    );
    assert_eq!(
        observed.repos[&other_repo].tags,
        BTreeMap::from([("a".to_string(), Some(other.manifest.clone()))])
    );
    assert!(observed.repos[&other_repo].manifests.is_empty());

    // Drift and prune also resolve unclaimed tags, but never signature tags.
    let r = registries(&config);
    let before = proxy.request_count();
    let observed = observe(
        &desired,
        &r,
        &ObserveOptions {
            resolve_unclaimed: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(proxy.request_count() - before, 8, "+ HEAD extra1, sig");
    assert_eq!(
        r.request_count(),
        11,
        "B's absent mirror/x still sends no HEAD"
    );
    let rel = &observed.repos[&release];
    assert_eq!(rel.tags["extra1"], Some(img2.manifest.clone()));
    assert_eq!(rel.tags["sig"], Some(img1.manifest.clone()));
    assert_eq!(rel.tags[&sig_tag], None);
    assert!(
        !proxy
            .log()
            .iter()
            .any(|l| l.contains(&format!("manifests/{sig_tag}")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_oci_layouts_directly_and_through_map_to() {
    let dir = tempfile::tempdir().unwrap();
    let (config_a, layers_a, manifest_a) = tiny_image("layout-a", "amd64", 2);
    let (_, _, manifest_b) = tiny_image("layout-b", "arm64", 1);
    let index = image_index(&[(&manifest_a, "amd64"), (&manifest_b, "arm64")]);
    let mut blobs: Vec<&Content> = layers_a.iter().collect();
    blobs.push(&config_a);
    let layout = dir.path().join("layouts/okd/release");
    let digests = write_oci_layout(
        &layout,
        &[
            (Some("a"), &manifest_a),
            (Some("multi"), &index),
            (None, &manifest_b),
        ],
        &blobs,
    );

    let mut mapped = settings("mirror.example");
    mapped.insecure = false;
    mapped.map_to = Some(Located::new(
        "oci:layouts".to_string(),
        Span::file("relsync.yaml"),
    ));
    let config = Config {
        registries: vec![mapped],
        ..Default::default()
    };
    let r = Registries::from_config_with(&config, dir.path(), no_credentials()).unwrap();

    for name in ["oci:layouts/okd/release", "mirror.example/okd/release"] {
        let l = repo(&r, name);
        assert!(matches!(l, Repository::Layout(_)), "{name}");
        assert_eq!(l.list_tags().await.unwrap(), ["a", "multi"], "{name}");
        assert_eq!(
            l.resolve_tag("multi").await.unwrap(),
            Some(digests[1].clone())
        );
        assert_eq!(l.resolve_tag("a").await.unwrap(), Some(digests[0].clone()));
        assert_eq!(l.resolve_tag("zzz").await.unwrap(), None);
        assert!(
            l.has_manifest(&digests[2]).await.unwrap(),
            "untagged manifest"
        );
        assert!(!l.has_manifest(&random_digest("l")).await.unwrap());
    }
    // A layout that does not exist yet is an empty repository.
    let empty = repo(&r, "mirror.example/not/there");
    assert!(empty.list_tags().await.unwrap().is_empty());
    assert_eq!(empty.resolve_tag("a").await.unwrap(), None);

    // observe() over a layout target: no HTTP at all.
    let name = "oci:layouts/okd/release".to_string();
    let mut desired = DesiredState::default();
    desired.repos.insert(
        name.clone(),
        DesiredRepo {
            tags: BTreeMap::from([
                ("a".to_string(), desired_tag(&digests[0], "1")),
                ("b".to_string(), desired_tag(&digests[2], "2")),
            ]),
            ..Default::default()
        },
    );
    let observed = observe(&desired, &r, &ObserveOptions::default())
        .await
        .unwrap();
    assert_eq!(
        observed.repos[&name],
        ObservedRepo {
            tags: BTreeMap::from([
                ("a".to_string(), Some(digests[0].clone())),
                ("multi".to_string(), None),
            ]),
            manifests: BTreeMap::from([(digests[2].clone(), true)]),
        }
    );
    assert_eq!(r.request_count(), 0);

    // A malformed digest in index.json is refused.
    let bad = dir.path().join("bad");
    write_oci_layout(&bad, &[(Some("a"), &manifest_a)], &[]);
    let text = std::fs::read_to_string(bad.join("index.json")).unwrap();
    std::fs::write(
        bad.join("index.json"),
        text.replace(&digests[0].to_string(), "sha256:NOTHEX"),
    )
    .unwrap();
    let e = repo(&r, "oci:bad").list_tags().await.unwrap_err();
    assert!(matches!(e, RegistryError::BadDigest { .. }), "{e}");
    assert!(e.to_string().contains("index.json"), "{e}");

    // index.json without oci-layout is not a layout.
    let half = dir.path().join("half");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(
        half.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    let e = repo(&r, "oci:half").list_tags().await.unwrap_err();
    assert!(matches!(e, RegistryError::Layout { .. }), "{e}");
}

async fn https_by_default_with_ca_file(kind: Distribution) {
    let reg = TestRegistry::start_tls_of(kind);
    let img = reg.pusher().push_image("tls/app", Some("v1"), "tls").await;
    let name = format!("{}/tls/app", reg.host());

    // HTTPS (not `insecure`), trusting the test CA through caFile (relative to the
    // config directory).
    let mut s = settings(&reg.host());
    s.insecure = false;
    s.ca_file = Some("ca.pem".to_string());
    let config = Config {
        registries: vec![s],
        ..Default::default()
    };
    let r =
        Registries::from_config_with(&config, &crate::util::tls_dir(), no_credentials()).unwrap();
    let app = repo(&r, &name);
    assert_eq!(app.list_tags().await.unwrap(), ["v1"]);
    assert_eq!(app.resolve_tag("v1").await.unwrap(), Some(img.manifest));

    // A host not in the config is HTTPS with the system roots only: the test CA is not
    // trusted, so TLS fails.
    let r = registries(&Config::default());
    let e = repo(&r, &name).list_tags().await.unwrap_err();
    assert!(matches!(e, RegistryError::Transport { .. }), "{e}");

    // A caFile that holds no certificate is refused at setup.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let mut s = settings(&reg.host());
    s.insecure = false;
    s.ca_file = Some("empty.pem".to_string());
    let config = Config {
        registries: vec![s],
        ..Default::default()
    };
    let e = Registries::from_config_with(&config, dir.path(), no_credentials()).unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::Settings { .. } | RegistryError::Client { .. }
        ),
        "{e}"
    );
}

async fn observe_bounds_requests_in_flight_per_host(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let tags: Vec<String> = (0..40).map(|i| format!("1.0.{i}")).collect();
    let pushed = reg.pusher().push_many("busy/app", &tags, 8).await;
    let proxy = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            delay: Some(std::time::Duration::from_millis(20)),
            ..Default::default()
        },
    );
    let name = format!("{}/busy/app", proxy.host());
    let mut desired = DesiredState::default();
    desired.repos.insert(
        name.clone(),
        DesiredRepo {
            tags: pushed
                .iter()
                .map(|(t, d)| (t.clone(), desired_tag(d, t)))
                .collect(),
            ..Default::default()
        },
    );
    let mut config = config_for(&[proxy.host()]);
    config.sync.concurrency = 3;
    let r = registries(&config);
    let observed = observe(&desired, &r, &ObserveOptions::default())
        .await
        .unwrap();
    assert_eq!(r.request_count(), 41);
    assert_eq!(
        observed.repos[&name].tags,
        pushed
            .iter()
            .map(|(t, d)| (t.clone(), Some(d.clone())))
            .collect::<BTreeMap<_, _>>()
    );
    assert_eq!(
        proxy.max_in_flight(),
        3,
        "requests overlap, but never more than sync.concurrency"
    );
}

// ---- The write side: ContentStore against a real registry -------------------------------

/// A blob source handing out `bytes` in `n` chunks, announcing `size`.
fn blob_source(bytes: &[u8], n: usize, size: Option<u64>) -> BlobStream {
    let step = bytes.len().div_ceil(n.max(1)).max(1);
    let chunks: Vec<Result<Bytes, RegistryError>> = bytes
        .chunks(step)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    BlobStream {
        size,
        chunks: Box::pin(futures_util::stream::iter(chunks)),
    }
}

async fn read_all(blob: BlobStream) -> Vec<u8> {
    use futures_util::StreamExt as _;
    let mut out = Vec::new();
    let mut chunks = blob.chunks;
    while let Some(c) = chunks.next().await {
        out.extend_from_slice(&c.expect("chunk"));
    }
    out
}

fn raw(content: &Content) -> RawManifest {
    RawManifest {
        media_type: content.media_type.clone(),
        bytes: Bytes::from(content.bytes.clone()),
        digest: content.digest(),
    }
}

/// Uploads every blob of an image (config and layers) with `put_blob`.
async fn put_image_blobs(repo: &Repository, config: &Content, layers: &[Content]) {
    for b in std::iter::once(config).chain(layers) {
        let n = repo
            .put_blob(
                &b.digest(),
                blob_source(&b.bytes, 3, Some(b.bytes.len() as u64)),
            )
            .await
            .expect("put_blob");
        assert_eq!(n, b.bytes.len() as u64);
    }
}

async fn writes_blobs_and_manifests_and_reads_them_back(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let r = registries(&config_for(&[reg.host()]));
    let app = repo(&r, &format!("{}/w/app", reg.host()));
    let (config, layers, manifest) = tiny_image("write", "amd64", 2);

    // Blobs: absent, uploaded (with and without an announced size), present, readable.
    assert!(!app.has_blob(&layers[0].digest()).await.unwrap());
    let n = app
        .put_blob(
            &layers[0].digest(),
            blob_source(&layers[0].bytes, 4, Some(layers[0].bytes.len() as u64)),
        )
        .await
        .unwrap();
    assert_eq!(n, layers[0].bytes.len() as u64);
    for b in [&layers[1], &config] {
        app.put_blob(&b.digest(), blob_source(&b.bytes, 2, None))
            .await
            .unwrap();
    }
    for b in [&layers[0], &layers[1], &config] {
        assert!(app.has_blob(&b.digest()).await.unwrap());
        let blob = app.open_blob(&b.digest()).await.unwrap();
        assert_eq!(blob.size, Some(b.bytes.len() as u64));
        assert_eq!(read_all(blob).await, b.bytes);
    }
    // Reading a blob that is not there is an error naming it.
    let missing = random_digest("blob");
    let e = app.open_blob(&missing).await.unwrap_err();
    assert!(e.to_string().contains(missing.as_str()), "{e}");

    // Manifest by digest: content only, no tag.
    let m = raw(&manifest);
    app.put_manifest(m.digest.as_str(), &m).await.unwrap();
    assert_eq!(
        app.get_manifest(m.digest.as_str()).await.unwrap(),
        Some(m.clone())
    );
    assert!(app.list_tags().await.unwrap().is_empty());
    // Then by tag.
    app.put_manifest("v1", &m).await.unwrap();
    assert_eq!(app.resolve_tag("v1").await.unwrap(), Some(m.digest.clone()));
    assert_eq!(app.get_manifest("v1").await.unwrap(), Some(m.clone()));
    assert_eq!(app.get_manifest("nope").await.unwrap(), None);
    assert_eq!(
        app.get_manifest(random_digest("m").as_str()).await.unwrap(),
        None
    );

    // An index over two children: the raw bytes read back are the bytes written.
    let (c2, l2, m2) = tiny_image("write", "arm64", 1);
    put_image_blobs(&app, &c2, &l2).await;
    app.put_manifest(m2.digest().as_str(), &raw(&m2))
        .await
        .unwrap();
    let index = image_index(&[(&manifest, "amd64"), (&m2, "arm64")]);
    app.put_manifest("multi", &raw(&index)).await.unwrap();
    let got = app.get_manifest("multi").await.unwrap().expect("index");
    assert_eq!(got.bytes.as_ref(), index.bytes.as_slice());
    assert_eq!(got.media_type, OCI_INDEX);
    assert_eq!(got.digest, index.digest());
    // skopeo-style independent check: the registry serves the same bytes to another client.
    assert_eq!(reg.pusher().tags("w/app").await, ["multi", "v1"]);

    // A manifest naming a blob the registry lacks is refused by the registry.
    let (c3, l3, m3) = tiny_image("never-uploaded", "amd64", 1);
    let _ = (c3, l3);
    let e = app.put_manifest("broken", &raw(&m3)).await.unwrap_err();
    assert!(
        matches!(e, RegistryError::Status { status: 400, .. }),
        "{e}"
    );
    assert!(!e.is_retryable());
    // A manifest whose bytes are not its digest is refused before any request.
    let before = r.request_count();
    let mut lie = raw(&m2);
    lie.digest = m.digest.clone();
    let e = app.put_manifest("lie", &lie).await.unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
    assert_eq!(r.request_count(), before);
}

async fn write_requests_are_counted_apart_from_reads(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let r = registries(&config_for(&[reg.host()]));
    let app = repo(&r, &format!("{}/count/app", reg.host()));
    let (config, layers, manifest) = tiny_image("count", "amd64", 1);
    let served_before = reg.served_writes().len();
    put_image_blobs(&app, &config, &layers).await;
    app.put_manifest("v1", &raw(&manifest)).await.unwrap();
    // Two blobs (POST + PUT each) and one manifest PUT.
    assert_eq!(r.write_count(), 5);
    let writes = r.write_count();
    let reads_before = r.request_count();
    app.list_tags().await.unwrap();
    app.resolve_tag("v1").await.unwrap();
    app.has_blob(&config.digest()).await.unwrap();
    app.get_manifest("v1").await.unwrap();
    assert_eq!(r.request_count() - reads_before, 4);
    assert_eq!(r.write_count(), writes, "reads are not writes");
    // The registry's own access log agrees.
    let served: Vec<String> = reg.served_writes()[served_before..].to_vec();
    assert_eq!(served.len(), 5, "{served:?}");
}

async fn a_lying_source_is_refused_and_leaves_no_blob(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let r = registries(&config_for(&[reg.host()]));
    let app = repo(&r, &format!("{}/lies/app", reg.host()));
    let honest = b"the real layer content, long enough to come in a few chunks".to_vec();
    let digest = Digest::sha256_of(&honest);
    let len = honest.len() as u64;

    let mut wrong = honest.clone();
    wrong[5] ^= 0x20;
    let short = honest[..20].to_vec();
    let mut long = honest.clone();
    long.extend_from_slice(b"and then some");
    let cases: Vec<(&str, Vec<u8>, Option<u64>)> = vec![
        ("wrong bytes, right size", wrong.clone(), Some(len)),
        ("wrong bytes, no size", wrong, None),
        ("short", short.clone(), Some(len)),
        ("short, no size", short, None),
        ("long", long.clone(), Some(len)),
        ("long, no size", long, None),
        ("right bytes, wrong size", honest.clone(), Some(len + 1)),
        ("nothing, announced as nothing", Vec::new(), Some(0)),
        ("nothing", Vec::new(), None),
    ];
    for (what, bytes, size) in cases {
        let e = app
            .put_blob(&digest, blob_source(&bytes, 3, size))
            .await
            .unwrap_err();
        match &e {
            RegistryError::DigestMismatch { context, .. } => {
                assert!(context.contains(digest.as_str()), "{what}: {e}");
                assert!(context.contains("lies/app"), "{what}: {e}");
            }
            other => panic!("{what}: expected a digest mismatch, got {other:?}"),
        }
        assert!(!e.is_retryable(), "{what}");
        assert!(
            !app.has_blob(&digest).await.unwrap(),
            "{what}: nothing stored"
        );
    }
    // A source that fails mid-stream: its own error comes back (retryable if it is).
    let failing: Vec<Result<Bytes, RegistryError>> = vec![
        Ok(Bytes::from(honest[..10].to_vec())),
        Err(RegistryError::Status {
            context: "reading the source".into(),
            status: 503,
            code: None,
            message: None,
        }),
    ];
    let e = app
        .put_blob(
            &digest,
            BlobStream {
                size: Some(len),
                chunks: Box::pin(futures_util::stream::iter(failing)),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::Status { status: 503, .. }) && e.is_retryable(),
        "{e}"
    );
    assert!(!app.has_blob(&digest).await.unwrap());
    // The honest source then goes through.
    app.put_blob(&digest, blob_source(&honest, 3, Some(len)))
        .await
        .unwrap();
    assert!(app.has_blob(&digest).await.unwrap());
    // So does an honest empty blob, with or without an announced size.
    let empty = Digest::sha256_of(b"");
    for size in [Some(0), None] {
        assert_eq!(
            app.put_blob(&empty, blob_source(b"", 1, size))
                .await
                .unwrap(),
            0
        );
    }
    assert!(app.has_blob(&empty).await.unwrap());
}

async fn mounts_across_repositories_of_one_registry(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let r = registries(&config_for(&[reg.host()]));
    let a = repo(&r, &format!("{}/m/a", reg.host()));
    let b = repo(&r, &format!("{}/m/b", reg.host()));
    let c = repo(&r, &format!("{}/m/c", reg.host()));
    let blob = b"a layer shared by two repositories".to_vec();
    let d = Digest::sha256_of(&blob);
    a.put_blob(&d, blob_source(&blob, 1, Some(blob.len() as u64)))
        .await
        .unwrap();

    // 201: mounted from a repository that has it.
    assert!(b.mount_blob(&d, "m/a").await.unwrap());
    assert!(b.has_blob(&d).await.unwrap());
    assert_eq!(read_all(b.open_blob(&d).await.unwrap()).await, blob);
    // 202: the source repository lacks it (and a digest nobody has): the caller copies.
    let writes = r.write_count();
    assert!(!c.mount_blob(&random_digest("nobody"), "m/a").await.unwrap());
    assert!(!c.mount_blob(&d, "m/nothing-here").await.unwrap());
    assert!(!c.has_blob(&d).await.unwrap());
    assert_eq!(
        r.write_count() - writes,
        4,
        "each declined mount: the POST and the DELETE closing its upload session"
    );
    // From itself: the blob is there or not.
    assert!(a.mount_blob(&d, "m/a").await.unwrap());
    // A bad source path is refused before any request.
    let e = c.mount_blob(&d, "../etc").await.unwrap_err();
    assert!(matches!(e, RegistryError::InvalidRepository { .. }), "{e}");
}

/// distribution 2.8 cannot delete a tag by name, only a manifest by digest (every tag on it
/// goes); v3 deletes the tag and keeps the manifest under it.
async fn deletes_tags_by_name_where_the_registry_can(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let pusher = reg.pusher();
    let img = pusher.push_image("del/app", Some("v1"), "del").await;
    pusher
        .push_manifest(
            "del/app",
            "v2",
            &Content {
                media_type: OCI_MANIFEST.to_string(),
                bytes: img.manifest_bytes.clone(),
            },
        )
        .await;
    let r = registries(&config_for(&[reg.host()]));
    let app = repo(&r, &format!("{}/del/app", reg.host()));

    let before = reg.served_requests().len();
    if kind.deletes_tags() {
        assert_eq!(app.delete_tag("v1").await.unwrap(), TagDeletion::Deleted);
        assert_eq!(app.resolve_tag("v1").await.unwrap(), None);
        // The manifest stays, under its other tag and by digest.
        assert_eq!(
            app.resolve_tag("v2").await.unwrap(),
            Some(img.manifest.clone())
        );
        assert!(app.has_manifest(&img.manifest).await.unwrap());
        // Deleting a tag that is gone is fine.
        assert_eq!(app.delete_tag("v1").await.unwrap(), TagDeletion::Deleted);
    } else {
        assert_eq!(
            app.delete_tag("v1").await.unwrap(),
            TagDeletion::Unsupported
        );
        assert_eq!(
            app.resolve_tag("v1").await.unwrap(),
            Some(img.manifest.clone())
        );
    }
    assert_eq!(
        reg.served_requests()[before..]
            .iter()
            .filter(|r| r.starts_with("DELETE "))
            .cloned()
            .collect::<Vec<_>>(),
        if kind.deletes_tags() {
            vec!["DELETE /v2/del/app/manifests/v1".to_string(); 2]
        } else {
            vec!["DELETE /v2/del/app/manifests/v1".to_string()]
        },
        "by name, never by digest"
    );
    // By digest both can (the test registries have deletes enabled): every tag on it goes.
    app.delete_manifest(&img.manifest).await.unwrap();
    assert_eq!(app.resolve_tag("v1").await.unwrap(), None);
    assert_eq!(app.resolve_tag("v2").await.unwrap(), None);
    assert!(!app.has_manifest(&img.manifest).await.unwrap());
    // Deleting what is gone is fine.
    app.delete_manifest(&img.manifest).await.unwrap();
    let e = app.delete_tag("../x").await.unwrap_err();
    assert!(matches!(e, RegistryError::InvalidTag { .. }), "{e}");
}

async fn retries_through_injected_503_and_429(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let pusher = reg.pusher();
    pusher.push_image("flaky/app", Some("v1"), "flaky").await;
    let faults = vec![
        Fault {
            status: 503,
            times: 2,
            retry_after: None,
            method: None,
        },
        Fault {
            status: 429,
            times: 1,
            retry_after: Some("1".into()),
            method: None,
        },
    ];
    let proxy = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            faults,
            ..Default::default()
        },
    );
    let r = registries(&config_for(&[proxy.host()]));
    let app = repo(&r, &format!("{}/flaky/app", proxy.host()));
    let start = std::time::Instant::now();
    assert_eq!(app.list_tags().await.unwrap(), ["v1"]);
    assert!(
        start.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(proxy.faults_served(), 3);
    assert_eq!(r.request_count(), 4, "three failures, then the answer");

    // Five failures in a row: the error names what was done, the status, the tries.
    let proxy = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            faults: vec![Fault {
                status: 502,
                times: 5,
                retry_after: Some("0".into()),
                method: None,
            }],
            ..Default::default()
        },
    );
    let r = registries(&config_for(&[proxy.host()]));
    let app = repo(&r, &format!("{}/flaky/app", proxy.host()));
    let e = app.resolve_tag("v1").await.unwrap_err();
    assert!(
        matches!(e.cause(), RegistryError::Status { status: 502, .. }),
        "{e}"
    );
    // Retried here until the tries ran out: an operation around it must not redo it
    // (that would multiply the tries), though the failure itself was a retryable one.
    assert!(!e.is_retryable());
    assert!(e.cause().is_retryable());
    let msg = e.to_string();
    assert!(msg.contains("flaky/app:v1"), "{msg}");
    assert!(msg.contains("after 5 tries"), "{msg}");
    assert!(msg.contains("502"), "{msg}");
    assert_eq!(r.request_count(), 5);
    // The sixth request gets through.
    assert!(app.resolve_tag("v1").await.unwrap().is_some());

    // A blob upload's streamed PUT is not replayed: put_blob fails retryably, and the
    // caller's second try (a new upload) succeeds. The POST is retried by itself.
    let proxy = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            faults: vec![
                Fault {
                    status: 503,
                    times: 1,
                    retry_after: Some("0".into()),
                    method: Some("POST".into()),
                },
                Fault {
                    status: 503,
                    times: 1,
                    retry_after: None,
                    method: Some("PUT".into()),
                },
            ],
            ..Default::default()
        },
    );
    let r = registries(&config_for(&[proxy.host()]));
    let app = repo(&r, &format!("{}/flaky/app", proxy.host()));
    let blob = b"uploaded through a flaky proxy".to_vec();
    let d = Digest::sha256_of(&blob);
    let e = app
        .put_blob(&d, blob_source(&blob, 2, Some(blob.len() as u64)))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains(d.as_str()), "{e}");
    assert_eq!(proxy.faults_served(), 2);
    app.put_blob(&d, blob_source(&blob, 2, Some(blob.len() as u64)))
        .await
        .unwrap();
    assert!(app.has_blob(&d).await.unwrap());
}

async fn blob_redirects_to_another_host_carry_no_credentials(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let pusher = reg.pusher();
    let img = pusher.push_image("redir/app", Some("v1"), "redir").await;
    let proxy = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            bearer: Some(BearerAuth {
                credentials: None,
                access_token_field: false,
            }),
            redirect_blobs: true,
            ..Default::default()
        },
    );
    let r = registries(&config_for(&[proxy.host()]));
    let app = repo(&r, &format!("{}/redir/app", proxy.host()));
    let blob = app.open_blob(&img.config).await.unwrap();
    let bytes = read_all(blob).await;
    assert_eq!(Digest::sha256_of(&bytes), img.config);
    // The blob GET carried a token (the proxy demands one), the redirected one did not.
    assert_eq!(proxy.storage_authorizations(), vec![None]);
    let log = proxy.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /_storage/v2/redir/app/blobs/")),
        "{log:?}"
    );

    // Writes through bearer auth ask for a push token.
    let (config, layers, manifest) = tiny_image("redir-push", "amd64", 1);
    put_image_blobs(&app, &config, &layers).await;
    app.put_manifest("v2", &raw(&manifest)).await.unwrap();
    assert_eq!(
        app.resolve_tag("v2").await.unwrap(),
        Some(manifest.digest())
    );
    let log = proxy.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /token") && l.contains("pull%2Cpush")),
        "{log:?}"
    );
}

async fn refuses_digest_false_and_oversized_manifests(kind: Distribution) {
    let reg = TestRegistry::start_of(kind);
    let idx = reg
        .pusher()
        .push_index("hostile/app", "v1", "hostile")
        .await;
    for (padding, strip) in [(1usize, false), (1, true)] {
        let proxy = PagingProxy::start(
            &reg.base_url(),
            ProxyOptions {
                manifest_padding: Some(padding),
                strip_digest_header: strip,
                ..Default::default()
            },
        );
        let r = registries(&config_for(&[proxy.host()]));
        let app = repo(&r, &format!("{}/hostile/app", proxy.host()));
        // By digest: the bytes must hash to it.
        let e = app.get_manifest(idx.index.as_str()).await.unwrap_err();
        assert!(
            matches!(&e, RegistryError::DigestMismatch { expected, .. } if *expected == idx.index.to_string()),
            "{e}"
        );
        assert!(!e.is_retryable());
        // By tag: checked against the registry's Docker-Content-Digest when it sends one;
        // without it, the digest returned is the hash of what was received.
        match app.get_manifest("v1").await {
            Err(RegistryError::DigestMismatch { .. }) => assert!(!strip),
            Ok(Some(m)) => {
                assert!(strip);
                assert_ne!(m.digest, idx.index);
                assert_eq!(m.digest, Digest::sha256_of(&m.bytes));
            }
            other => panic!("{other:?}"),
        }
    }
    // Past the limit: refused without reading it whole.
    let proxy = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            manifest_padding: Some(relsync::registry::MAX_MANIFEST_BYTES + 1),
            ..Default::default()
        },
    );
    let r = registries(&config_for(&[proxy.host()]));
    let app = repo(&r, &format!("{}/hostile/app", proxy.host()));
    let e = app.get_manifest("v1").await.unwrap_err();
    assert!(matches!(e, RegistryError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("hostile/app:v1"), "{e}");
}

/// Regression (review finding): a redirect to another host that answers 401 with its own
/// bearer realm must not receive the registry's credentials, nor become its auth scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_hosts_challenge_never_gets_the_registrys_credentials() {
    use axum::http::{HeaderMap as H, StatusCode as S, header};
    use std::sync::Mutex;

    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr.to_string()
    }
    // The attacker's token realm: records every Authorization it is sent.
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let record = seen.clone();
    let realm = serve(axum::Router::new().route(
        "/token",
        axum::routing::get(move |h: H| {
            let record = record.clone();
            async move {
                let auth = h
                    .get(header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap().to_string());
                record.lock().unwrap().push(auth);
                r#"{"token":"stolen"}"#
            }
        }),
    ))
    .await;
    // The host the registry redirects to: demands a token from that realm.
    let challenge = format!("Bearer realm=\"http://{realm}/token\",service=\"evil\"");
    let storage = serve(axum::Router::new().fallback(move || {
        let challenge = challenge.clone();
        async move { (S::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)], "") }
    }))
    .await;
    // The registry: redirects its tag list to that host.
    let target = format!("http://{storage}/v2/app/tags/list");
    let registry = serve(axum::Router::new().fallback(move || {
        let target = target.clone();
        async move { (S::TEMPORARY_REDIRECT, [(header::LOCATION, target)], "") }
    }))
    .await;

    let mut config = config_for(std::slice::from_ref(&registry));
    config.registries[0].username_env = Some("T_USER".into());
    config.registries[0].password_env = Some("T_PASS".into());
    let env: EnvLookup = Arc::new(|k: &str| match k {
        "T_USER" => Some("alice".to_string()),
        "T_PASS" => Some("s3cret-password".to_string()),
        _ => None,
    });
    let r = Registries::from_config_with(
        &config,
        Path::new("/nonexistent"),
        CredentialLookup::from_env_fn(env),
    )
    .unwrap();
    let err = repo(&r, &format!("{registry}/app"))
        .list_tags()
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("redirected host"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "the foreign realm was asked: {:?}",
        seen.lock().unwrap()
    );
}

on_both_distributions!(async:
    lists_resolves_and_checks_manifests,
    follows_link_pagination_through_a_paging_proxy,
    refuses_foreign_links_and_loops,
    basic_auth_from_env_and_from_auth_file,
    bearer_tokens_are_fetched_cached_and_reused,
    hashes_the_manifest_when_the_digest_header_is_missing,
    observe_makes_one_request_per_named_tag_across_two_registries,
    https_by_default_with_ca_file,
    observe_bounds_requests_in_flight_per_host,
    writes_blobs_and_manifests_and_reads_them_back,
    write_requests_are_counted_apart_from_reads,
    a_lying_source_is_refused_and_leaves_no_blob,
    mounts_across_repositories_of_one_registry,
    deletes_tags_by_name_where_the_registry_can,
    retries_through_injected_503_and_429,
    blob_redirects_to_another_host_carry_no_credentials,
    refuses_digest_false_and_oversized_manifests,
);
