//! The Kubernetes API behaviour relsync relies on, against the real kube-apiserver of
//! `apiserver` through the real `kube` client and a kubeconfig (as the product reaches it),
//! with the ImageStream CRD's OpenShift list semantics: ConfigMap and Lease CRUD and
//! conflicts, server-side apply ownership of `spec.tags`, merge patches. (Moved from
//! the stand-in's self-tests, `kube_api_tests`, with the same assertions; what only the
//! stand-in can do — injected faults, OpenShift's spec tag generations — stays there.)

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::apiserver::{Resource, TestCluster};
use crate::util::{api_code, dynamic, imagestreams, owners, owns_tag, spec_tag, stream, tag_names};

const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DIGEST_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A kube client from a kubeconfig for the front of `server`, context namespace `ns`.
async fn client(server: &TestCluster, ns: &str) -> (kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = server.write_kubeconfig(dir.path(), ns);
    let kubeconfig = Kubeconfig::read_from(&path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    assert_eq!(config.default_namespace, ns);
    (kube::Client::try_from(config).expect("client"), dir)
}

#[tokio::test]
async fn unknown_namespace_and_missing_token_are_refused() {
    let server = TestCluster::new();
    let ns = server.ns("okd");
    let (client, _dir) = client(&server, &ns).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    let (code, msg) = api_code(api.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!(code, 404);
    assert!(
        msg.contains(&format!("namespaces \"{ns}\" not found")),
        "{msg}"
    );

    let anonymous = reqwest::get(format!(
        "{}/api/v1/namespaces/{ns}/configmaps",
        server.url()
    ))
    .await
    .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[tokio::test]
async fn lease_replace_with_stale_resource_version_conflicts() {
    let server = TestCluster::new();
    let ns = server.ns("okd");
    server.add_namespace(&ns);
    let (client, _dir) = client(&server, &ns).await;
    let api: Api<Lease> = Api::default_namespaced(client);
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "relsync"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}))
    .unwrap();
    let first = api.create(&PostParams::default(), &lease).await.unwrap();
    let mut mine = first.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let mut theirs = first.clone();
    theirs.spec.as_mut().unwrap().holder_identity = Some("c".into());
    api.replace("relsync", &PostParams::default(), &mine)
        .await
        .unwrap();
    let (code, _) = api_code(
        api.replace("relsync", &PostParams::default(), &theirs)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    let now = api.get("relsync").await.unwrap();
    assert_eq!(now.spec.unwrap().holder_identity.as_deref(), Some("b"));
}

#[tokio::test]
async fn apply_keeps_other_managers_tags_and_drops_own_omitted_tags() {
    let server = TestCluster::new();
    let ns = server.ns("okd");
    server.add_namespace(&ns);
    server.insert(
        Resource::ImageStreams,
        &ns,
        "oc",
        stream(vec![spec_tag("manual", DIGEST_A)]),
    );
    let (client, _dir) = client(&server, &ns).await;
    let api = imagestreams(&client, &ns);
    let pp = PatchParams::apply("relsync").force();
    let two = stream(vec![
        spec_tag("4-scos-stable", DIGEST_A),
        spec_tag("4-scos-next", DIGEST_B),
    ]);
    api.patch("release-scos", &pp, &Patch::Apply(dynamic(two)))
        .await
        .unwrap();
    let obj = server
        .get(Resource::ImageStreams, &ns, "release-scos")
        .unwrap();
    assert_eq!(tag_names(&obj), ["manual", "4-scos-stable", "4-scos-next"]);
    assert!(owns_tag(&obj, "oc", "manual") && owns_tag(&obj, "relsync", "4-scos-next"));
    assert!(!owns_tag(&obj, "relsync", "manual"));
    let fields = &owners(&obj)
        .into_iter()
        .find(|o| o.0 == "relsync")
        .unwrap()
        .2;
    let key = "k:{\"name\":\"4-scos-stable\"}";
    assert_eq!(fields["f:spec"]["f:tags"][key]["."], json!({}));
    assert_eq!(
        fields["f:spec"]["f:tags"][key]["f:from"],
        json!({"f:kind": {}, "f:name": {}})
    );

    let one = stream(vec![spec_tag("4-scos-stable", DIGEST_A)]);
    api.patch("release-scos", &pp, &Patch::Apply(dynamic(one)))
        .await
        .unwrap();
    let obj = server
        .get(Resource::ImageStreams, &ns, "release-scos")
        .unwrap();
    assert_eq!(tag_names(&obj), ["manual", "4-scos-stable"]);
    let status_tags: Vec<&str> = obj["status"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(status_tags, ["manual", "4-scos-stable"]);

    let applies: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(applies.len(), 2);
    assert_eq!(
        applies[0].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(applies[0].param("fieldManager").as_deref(), Some("relsync"));
    assert_eq!(applies[0].param("force").as_deref(), Some("true"));
}

#[tokio::test]
async fn apply_conflict_without_force_and_ownership_moves_with_force() {
    let server = TestCluster::new();
    let ns = server.ns("okd");
    server.add_namespace(&ns);
    server.insert(
        Resource::ImageStreams,
        &ns,
        "oc",
        stream(vec![spec_tag("4-scos-next", DIGEST_A)]),
    );
    let (client, _dir) = client(&server, &ns).await;
    let api = imagestreams(&client, &ns);
    let moved = || Patch::Apply(dynamic(stream(vec![spec_tag("4-scos-next", DIGEST_B)])));
    let err = api
        .patch("release-scos", &PatchParams::apply("relsync"), &moved())
        .await
        .unwrap_err();
    let (code, msg) = api_code(err);
    assert_eq!(code, 409);
    assert!(
        msg.contains("conflict")
            && msg.contains("\"oc\"")
            && msg.contains(".spec.tags[name=\"4-scos-next\"].from.name"),
        "{msg}"
    );
    // Same value: shared ownership, no conflict.
    let same = Patch::Apply(dynamic(stream(vec![spec_tag("4-scos-next", DIGEST_A)])));
    api.patch("release-scos", &PatchParams::apply("relsync"), &same)
        .await
        .unwrap();

    api.patch(
        "release-scos",
        &PatchParams::apply("relsync").force(),
        &moved(),
    )
    .await
    .unwrap();
    let obj = server
        .get(Resource::ImageStreams, &ns, "release-scos")
        .unwrap();
    assert!(
        obj["spec"]["tags"][0]["from"]["name"]
            .as_str()
            .unwrap()
            .ends_with(DIGEST_B)
    );
    let oc = owners(&obj).into_iter().find(|o| o.0 == "oc").unwrap().2;
    let key = "k:{\"name\":\"4-scos-next\"}";
    assert!(
        oc["f:spec"]["f:tags"][key]["f:from"]
            .get("f:name")
            .is_none(),
        "oc lost from.name: {oc}"
    );
    assert!(
        oc["f:spec"]["f:tags"][key]["f:from"]
            .get("f:kind")
            .is_some(),
        "same value stays shared: {oc}"
    );
    assert!(
        oc["f:spec"]["f:tags"][key].get("f:importPolicy").is_some(),
        "oc keeps the rest: {oc}"
    );
}

#[tokio::test]
async fn stale_resource_version_in_apply_and_merge_patch_conflicts() {
    let server = TestCluster::new();
    let ns = server.ns("okd");
    server.add_namespace(&ns);
    let seeded = server.insert(
        Resource::ImageStreams,
        &ns,
        "oc",
        stream(vec![spec_tag("a", DIGEST_A)]),
    );
    let (client, _dir) = client(&server, &ns).await;
    let api = imagestreams(&client, &ns);
    let rv = seeded["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Someone else writes: rv is stale now.
    let lookup = json!({"spec": {"lookupPolicy": {"local": false}}});
    server
        .merge_patch_as(Resource::ImageStreams, &ns, "release-scos", "oc", lookup)
        .unwrap();
    let mut body = stream(vec![spec_tag("b", DIGEST_B)]);
    body["metadata"]["resourceVersion"] = json!(rv);
    let err = api
        .patch(
            "release-scos",
            &PatchParams::apply("relsync").force(),
            &Patch::Apply(dynamic(body.clone())),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(err).0, 409);
    let merge =
        json!({"metadata": {"resourceVersion": rv}, "spec": {"lookupPolicy": {"local": true}}});
    let err = api
        .patch(
            "release-scos",
            &PatchParams::default(),
            &Patch::Merge(merge),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(err).0, 409);
    // With the current version both go through.
    let current = server
        .get(Resource::ImageStreams, &ns, "release-scos")
        .unwrap();
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    api.patch(
        "release-scos",
        &PatchParams::apply("relsync").force(),
        &Patch::Apply(dynamic(body)),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_dropped_tag_that_another_manager_also_owns_stays_and_all_namespaces_list() {
    let server = TestCluster::new();
    let ns = server.ns("okd");
    server.add_namespace(&ns);
    let both = || {
        stream(vec![
            spec_tag("shared", DIGEST_A),
            spec_tag("mine", DIGEST_A),
        ])
    };
    server.insert(
        Resource::ImageStreams,
        &ns,
        "oc",
        stream(vec![spec_tag("shared", DIGEST_A)]),
    );
    server
        .apply_as(Resource::ImageStreams, &ns, "relsync", both(), false)
        .unwrap();
    let obj = server
        .get(Resource::ImageStreams, &ns, "release-scos")
        .unwrap();
    assert!(owns_tag(&obj, "relsync", "shared") && owns_tag(&obj, "oc", "shared"));
    server
        .apply_as(
            Resource::ImageStreams,
            &ns,
            "relsync",
            stream(vec![]),
            false,
        )
        .unwrap();
    let obj = server
        .get(Resource::ImageStreams, &ns, "release-scos")
        .unwrap();
    assert_eq!(tag_names(&obj), ["shared"]);
    assert_eq!(
        obj["spec"]["tags"][0]["importPolicy"]["importMode"],
        "PreserveOriginal"
    );
    assert!(!owns_tag(&obj, "relsync", "shared"));

    let other = server.ns("other");
    server.add_namespace(&other);
    server.insert(Resource::ImageStreams, &other, "oc", stream(vec![]));
    let (client, _dir) = client(&server, &ns).await;
    let gvk = GroupVersionKind::gvk("image.openshift.io", "v1", "ImageStream");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "imagestreams");
    let all: Api<DynamicObject> = Api::all_with(client, &ar);
    let mut namespaces: Vec<String> = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.metadata.namespace.unwrap())
        // The server is shared: other tests' ImageStreams are listed too.
        .filter(|n| *n == ns || *n == other)
        .collect();
    namespaces.sort();
    assert_eq!(namespaces, [ns.clone(), other.clone()]);
    let last = server.requests().pop().unwrap();
    assert_eq!(last.path, "/apis/image.openshift.io/v1/imagestreams");
}
