//! Kubernetes object helpers shared by the API tests against the real kube-apiserver
//! (`apiserver_tests`) and against the stand-in (`kube_api_tests`): ImageStream bodies,
//! API error codes and `managedFields` ownership.

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

/// The ImageStreams of namespace `ns`, through the dynamic API.
pub fn imagestreams(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("image.openshift.io", "v1", "ImageStream");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "imagestreams");
    Api::namespaced_with(client.clone(), ns, &ar)
}

pub fn spec_tag(name: &str, digest: &str) -> Value {
    json!({"name": name, "from": {"kind": "DockerImage", "name": format!("quay.io/okd/scos-release@{digest}")},
           "importPolicy": {"importMode": "PreserveOriginal"}, "referencePolicy": {"type": "Source"}})
}

pub fn stream(tags: Vec<Value>) -> Value {
    json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
           "metadata": {"name": "release-scos"}, "spec": {"tags": tags}})
}

pub fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("dynamic object")
}

pub fn api_code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, format!("{} {}", s.reason, s.message)),
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn tag_names(obj: &Value) -> Vec<String> {
    let tags = obj["spec"]["tags"].as_array().cloned().unwrap_or_default();
    tags.iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

pub fn owners(obj: &Value) -> Vec<(String, String, Value)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let m = e["manager"].as_str().unwrap().to_string();
            (
                m,
                e["operation"].as_str().unwrap().to_string(),
                e["fieldsV1"].clone(),
            )
        })
        .collect()
}

pub fn owns_tag(obj: &Value, manager: &str, tag: &str) -> bool {
    let key = format!("k:{{\"name\":\"{tag}\"}}");
    owners(obj)
        .iter()
        .any(|(m, _, f)| m == manager && f["f:spec"]["f:tags"].get(&key).is_some())
}
