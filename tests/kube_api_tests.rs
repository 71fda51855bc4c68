//! Self-tests of the test Kubernetes API server (`kube_api`), through the real `kube`
//! client and a kubeconfig, as the product reaches it: what only the stand-in does
//! (injected faults, the hook, OpenShift's spec tag generations and import) and where it is
//! simpler than a real server (FieldsV1 without `.` entries, no watch bookmarks, objects
//! without apiVersion/kind accepted). The API behaviour relsync relies on is tested against
//! the real kube-apiserver in `apiserver_tests`.

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::kube_api::{ImportMode, KubeApi, Resource};
use crate::util::{api_code, dynamic, imagestreams, owners, owns_tag, spec_tag, stream, tag_names};

const NS: &str = "okd";
const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DIGEST_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A kube client built from a kubeconfig written by the server, as the product builds one.
async fn client(server: &KubeApi) -> (kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = server.write_kubeconfig(dir.path(), NS);
    let kubeconfig = Kubeconfig::read_from(&path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    assert_eq!(config.default_namespace, NS);
    (kube::Client::try_from(config).expect("client"), dir)
}

#[tokio::test]
async fn configmap_create_get_list_404_delete() {
    let server = KubeApi::start();
    server.add_namespace(NS);
    let (client, _dir) = client(&server).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let (code, msg) = api_code(api.get("relsync-state").await.unwrap_err());
    assert_eq!(code, 404);
    assert!(
        msg.contains("NotFound") && msg.contains("configmaps \"relsync-state\" not found"),
        "{msg}"
    );
    assert!(api.get_opt("relsync-state").await.unwrap().is_none());

    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "relsync-state"}, "data": {"state.json": "{}"}}),
    )
    .unwrap();
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let (code, msg) = api_code(api.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!(
        (code, msg.starts_with("AlreadyExists")),
        (409, true),
        "{msg}"
    );

    let stored = server
        .get(Resource::ConfigMaps, NS, "relsync-state")
        .unwrap();
    let ts = stored["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(
        ts.len() == 20 && ts.ends_with('Z'),
        "RFC 3339 in whole seconds: {ts}"
    );
    let managed = &stored["metadata"]["managedFields"][0];
    assert_eq!(managed["operation"], "Update");
    assert_eq!(managed["fieldsV1"], json!({"f:data": {"f:state.json": {}}}));
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].data.as_ref().unwrap()["state.json"], "{}");

    // Replace with the current resourceVersion works; with the old one it is a conflict.
    let mut next = created.clone();
    next.data = Some([("state.json".to_string(), "{\"a\":1}".to_string())].into());
    let replaced = api
        .replace("relsync-state", &PostParams::default(), &next)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    let (code, msg) = api_code(
        api.replace("relsync-state", &PostParams::default(), &next)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    assert!(msg.contains("the object has been modified"), "{msg}");

    api.delete("relsync-state", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        server
            .get(Resource::ConfigMaps, NS, "relsync-state")
            .is_none()
    );
    // Every request carried the kubeconfig's token (the server answers 401 otherwise).
    assert!(server.requests().len() >= 7);
}

#[tokio::test]
async fn merge_patch_edits_and_records_an_update_owner() {
    let server = KubeApi::start();
    server.insert(
        Resource::ImageStreams,
        NS,
        "relsync",
        stream(vec![spec_tag("a", DIGEST_A), spec_tag("b", DIGEST_A)]),
    );
    let (client, _dir) = client(&server).await;
    let api = imagestreams(&client, NS);
    let patch =
        json!({"metadata": {"labels": {"team": "okd"}}, "spec": {"lookupPolicy": {"local": true}}});
    let pp = PatchParams {
        field_manager: Some("someone".into()),
        ..Default::default()
    };
    let out = api
        .patch("release-scos", &pp, &Patch::Merge(patch))
        .await
        .unwrap();
    assert_eq!(out.metadata.labels.unwrap()["team"], "okd");
    let obj = server
        .get(Resource::ImageStreams, NS, "release-scos")
        .unwrap();
    assert_eq!(obj["spec"]["lookupPolicy"]["local"], true);
    assert_eq!(tag_names(&obj), ["a", "b"]);
    let someone = owners(&obj).into_iter().find(|o| o.0 == "someone").unwrap();
    assert_eq!(someone.1, "Update");
    assert_eq!(
        someone.2,
        json!({"f:metadata": {"f:labels": {"f:team": {}}}, "f:spec": {"f:lookupPolicy": {"f:local": {}}}})
    );
    // A merge patch that replaces the (atomic-to-JSON-merge) tag list moves those tags.
    let list = json!({"spec": {"tags": [spec_tag("a", DIGEST_B)]}});
    server
        .merge_patch_as(Resource::ImageStreams, NS, "release-scos", "someone", list)
        .unwrap();
    let obj = server
        .get(Resource::ImageStreams, NS, "release-scos")
        .unwrap();
    assert_eq!(tag_names(&obj), ["a"]);
    assert!(owns_tag(&obj, "relsync", "a") && !owns_tag(&obj, "relsync", "b"));
    let err = api
        .patch("nope", &pp, &Patch::Merge(json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_code(err).0, 404);
}

#[tokio::test]
async fn generation_bumps_and_import_fills_status_with_the_digest() {
    let server = KubeApi::start();
    let obj = server.insert(
        Resource::ImageStreams,
        NS,
        "relsync",
        stream(vec![spec_tag("next", DIGEST_A)]),
    );
    assert_eq!(obj["metadata"]["generation"], 1);
    assert_eq!(obj["spec"]["tags"][0]["generation"], 1);
    let status = &obj["status"]["tags"][0];
    assert_eq!(
        (status["tag"].as_str(), status["items"][0]["image"].as_str()),
        (Some("next"), Some(DIGEST_A))
    );
    assert_eq!(status["items"][0]["generation"], 1);

    let (client, _dir) = client(&server).await;
    let api = imagestreams(&client, NS);
    let moved = Patch::Apply(dynamic(stream(vec![spec_tag("next", DIGEST_B)])));
    let answer = api
        .patch(
            "release-scos",
            &PatchParams::apply("relsync").force(),
            &moved,
        )
        .await
        .unwrap();
    // The response is the write itself; the import is a later write, as on OpenShift.
    assert_eq!(
        answer.data["status"]["tags"][0]["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let obj = api.get("release-scos").await.unwrap().data;
    let items = obj["status"]["tags"][0]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["image"].as_str(), items[0]["generation"].as_u64()),
        (Some(DIGEST_B), Some(2))
    );
    assert_eq!(items[1]["image"].as_str(), Some(DIGEST_A));
    assert_eq!(
        items[0]["dockerImageReference"],
        format!("quay.io/okd/scos-release@{DIGEST_B}")
    );
    assert_eq!(obj["spec"]["tags"][0]["generation"], 2);
    // The same apply again changes nothing.
    let again = Patch::Apply(dynamic(stream(vec![spec_tag("next", DIGEST_B)])));
    api.patch(
        "release-scos",
        &PatchParams::apply("relsync").force(),
        &again,
    )
    .await
    .unwrap();
    assert_eq!(
        server
            .get(Resource::ImageStreams, NS, "release-scos")
            .unwrap()["metadata"]["generation"],
        2
    );
}

#[tokio::test]
async fn manual_import_mode_leaves_the_tag_behind_until_import_now() {
    let server = KubeApi::start();
    server.set_import_mode(ImportMode::Manual);
    let obj = server.insert(
        Resource::ImageStreams,
        NS,
        "relsync",
        stream(vec![spec_tag("next", DIGEST_A)]),
    );
    assert!(obj["status"].get("tags").is_none(), "{obj}");
    server.import_now();
    let obj = server
        .get(Resource::ImageStreams, NS, "release-scos")
        .unwrap();
    assert_eq!(obj["status"]["tags"][0]["items"][0]["image"], DIGEST_A);
}

#[tokio::test]
async fn failed_import_sets_the_import_success_condition() {
    let server = KubeApi::start();
    server.fail_import(NS, "release-scos", "next", "manifest unknown");
    let obj = server.insert(
        Resource::ImageStreams,
        NS,
        "relsync",
        stream(vec![spec_tag("next", DIGEST_A)]),
    );
    let status = &obj["status"]["tags"][0];
    assert_eq!(status["items"], json!([]));
    let cond = &status["conditions"][0];
    assert_eq!(
        (cond["type"].as_str(), cond["status"].as_str()),
        (Some("ImportSuccess"), Some("False"))
    );
    assert_eq!(
        (cond["message"].as_str(), cond["generation"].as_u64()),
        (Some("manifest unknown"), Some(1))
    );
}

#[tokio::test]
async fn watch_delivers_added_and_modified_events() {
    let server = KubeApi::start();
    server.add_namespace(NS);
    let (client, _dir) = client(&server).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let version = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = api
        .watch(&WatchParams::default().timeout(10), &version)
        .await
        .unwrap()
        .boxed();
    server.insert(
        Resource::ConfigMaps,
        NS,
        "other",
        json!({"metadata": {"name": "w"}, "data": {"a": "1"}}),
    );
    server
        .merge_patch_as(
            Resource::ConfigMaps,
            NS,
            "w",
            "t",
            json!({"data": {"a": "2"}}),
        )
        .unwrap();
    match events.next().await.unwrap().unwrap() {
        WatchEvent::Added(cm) => assert_eq!(cm.data.unwrap()["a"], "1"),
        other => panic!("expected ADDED, got {other:?}"),
    }
    match events.next().await.unwrap().unwrap() {
        WatchEvent::Modified(cm) => assert_eq!(cm.data.unwrap()["a"], "2"),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.param("watch").as_deref() == Some("true"))
    );
}

#[tokio::test]
async fn on_next_apply_hook_makes_the_apply_stale() {
    let server = KubeApi::start();
    server.insert(
        Resource::ImageStreams,
        NS,
        "relsync",
        stream(vec![spec_tag("a", DIGEST_A)]),
    );
    let (client, _dir) = client(&server).await;
    let api = imagestreams(&client, NS);
    let seen = api
        .get("release-scos")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    server.on_next_apply(Box::new(|store| {
        store
            .merge_patch(
                Resource::ImageStreams,
                NS,
                "release-scos",
                "oc",
                json!({"spec": {"lookupPolicy": {"local": true}}}),
            )
            .unwrap();
    }));
    let mut body = stream(vec![spec_tag("a", DIGEST_B)]);
    body["metadata"]["resourceVersion"] = json!(seen);
    let pp = PatchParams::apply("relsync").force();
    let err = api
        .patch("release-scos", &pp, &Patch::Apply(dynamic(body.clone())))
        .await
        .unwrap_err();
    assert_eq!(api_code(err).0, 409);
    body["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    api.patch("release-scos", &pp, &Patch::Apply(dynamic(body)))
        .await
        .unwrap();
}

#[tokio::test]
async fn faults_answer_the_next_requests() {
    let server = KubeApi::start();
    server.add_namespace(NS);
    let (client, _dir) = client(&server).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    // 500 is not retried by the kube client: the first request fails, the second works.
    server.fail_next(1, 500);
    assert_eq!(
        api_code(api.list(&ListParams::default()).await.unwrap_err()).0,
        500
    );
    api.list(&ListParams::default()).await.unwrap();
    let apply_without_manager = reqwest::Client::new()
        .patch(format!(
            "{}/api/v1/namespaces/okd/configmaps/x",
            server.url()
        ))
        .bearer_auth(server.token())
        .header("content-type", "application/apply-patch+yaml")
        .body("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
        .send()
        .await
        .unwrap();
    assert_eq!(apply_without_manager.status().as_u16(), 422);
    let yaml_apply = reqwest::Client::new()
        .patch(format!(
            "{}/api/v1/namespaces/okd/configmaps/x?fieldManager=t",
            server.url()
        ))
        .bearer_auth(server.token())
        .header("content-type", "application/apply-patch+yaml")
        .body("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: v\n")
        .send()
        .await
        .unwrap();
    assert_eq!(yaml_apply.status().as_u16(), 201);
    assert_eq!(
        server.get(Resource::ConfigMaps, NS, "x").unwrap()["data"]["k"],
        "v"
    );
}

#[tokio::test]
async fn lease_put_creates_when_absent_and_watch_from_zero_lists_first() {
    let server = KubeApi::start();
    server.add_namespace(NS);
    let (client, _dir) = client(&server).await;
    let api: Api<Lease> = Api::default_namespaced(client.clone());
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "relsync"}, "spec": {"holderIdentity": "a"}}),
    )
    .unwrap();
    api.replace("relsync", &PostParams::default(), &lease)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    let (code, _) = api_code(
        cms.replace("c", &PostParams::default(), &cm)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404, "ConfigMaps are not created by PUT");

    let mut events = api
        .watch(&WatchParams::default().timeout(10), "0")
        .await
        .unwrap()
        .boxed();
    match events.next().await.unwrap().unwrap() {
        WatchEvent::Added(l) => assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("a")),
        other => panic!("expected the synthetic ADDED, got {other:?}"),
    }
    api.delete("relsync", &DeleteParams::default())
        .await
        .unwrap();
    match events.next().await.unwrap().unwrap() {
        WatchEvent::Deleted(l) => assert_eq!(l.metadata.name.as_deref(), Some("relsync")),
        other => panic!("expected DELETED, got {other:?}"),
    }
}
