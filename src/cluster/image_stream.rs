//! ImageStreams: read into [`ObservedImageStream`], written by server-side apply.
//!
//! An ImageStream is applied with the whole tag set relsync wants in it, under the field
//! manager `relsync` with `force=true` and the `resourceVersion` the plan saw. Tags of other
//! managers are never in that set, so the API server leaves them alone; a tag relsync owned
//! and no longer sends is dropped by the server. On 409 (the object changed since the
//! plan) the ImageStream is read again, every tag whose spec changed since the plan is
//! reported as a conflict and left out, and the apply is made once more.

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;

use super::{Cluster, ClusterError, FIELD_MANAGER};
use crate::digest::Digest;
use crate::manifest::ImageStreamRef;
use crate::plan::{ImportFailure, ObservedImageStream, ObservedSpecTag, ObservedStatusTag};

/// `image.openshift.io/v1` `ImageStream`.
fn resource() -> ApiResource {
    ApiResource {
        group: "image.openshift.io".into(),
        version: "v1".into(),
        api_version: "image.openshift.io/v1".into(),
        kind: "ImageStream".into(),
        plural: "imagestreams".into(),
    }
}

/// `imagestream:ns/name`, as plans and errors name it.
fn object_name(is: &ImageStreamRef) -> String {
    format!("imagestream:{}/{}", is.namespace, is.name)
}

/// One ImageStream apply: the tags to send (tag → pull spec) and what the plan saw.
#[derive(Debug, Clone)]
pub struct ImageStreamApply<'a> {
    /// The ImageStream.
    pub image_stream: &'a ImageStreamRef,
    /// Every tag relsync wants in it now, tag → `DockerImage` pull spec. A tag relsync owns
    /// and leaves out is dropped by the API server.
    pub tags: BTreeMap<String, String>,
    /// The ImageStream as the plan saw it (`None`: absent then).
    pub observed: Option<&'a ObservedImageStream>,
}

/// A tag whose spec changed between the plan and the apply: left out of the apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagConflict {
    /// The tag.
    pub tag: String,
    /// Its `from` when the plan was made (`None`: absent).
    pub planned: Option<String>,
    /// Its `from` now (`None`: absent).
    pub now: Option<String>,
}

/// What an ImageStream apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageStreamApplied {
    /// The tag set applied last (tag → pull spec).
    pub applied: BTreeMap<String, String>,
    /// Tags left out because they changed since the plan (found after a 409).
    pub conflicts: Vec<TagConflict>,
    /// Whether a 409 made it re-read and apply again.
    pub retried_after_conflict: bool,
}

// ---- the wire shape (only the fields relsync reads) ----------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct Wire {
    metadata: WireMeta,
    spec: WireSpec,
    status: WireStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireMeta {
    resource_version: Option<String>,
    managed_fields: Vec<WireManagedFields>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireManagedFields {
    manager: String,
    fields_v1: Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireSpec {
    tags: Vec<WireSpecTag>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireSpecTag {
    name: String,
    from: Option<WireFrom>,
    generation: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireFrom {
    kind: String,
    name: String,
    namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireStatus {
    tags: Vec<WireStatusTag>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireStatusTag {
    tag: String,
    items: Vec<WireTagEvent>,
    conditions: Vec<WireCondition>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireTagEvent {
    image: String,
    generation: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireCondition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
    message: String,
    generation: Option<i64>,
}

/// The spec tags field manager `relsync` owns, from `metadata.managedFields`: the keys
/// `k:{"name":"<tag>"}` under `f:spec` → `f:tags`.
fn owned_tags(meta: &WireMeta) -> std::collections::BTreeSet<String> {
    meta.managed_fields
        .iter()
        .filter(|m| m.manager == FIELD_MANAGER)
        .filter_map(|m| m.fields_v1.get("f:spec")?.get("f:tags")?.as_object())
        .flat_map(|tags| tags.keys())
        .filter_map(|k| k.strip_prefix("k:"))
        .filter_map(|k| serde_json::from_str::<Value>(k).ok())
        .filter_map(|k| k.get("name")?.as_str().map(str::to_string))
        .collect()
}

/// Translates an ImageStream as the API server sent it.
fn observed(object: &str, value: Value) -> Result<ObservedImageStream, ClusterError> {
    let wire: Wire = serde_json::from_value(value).map_err(|source| ClusterError::Decode {
        object: object.to_string(),
        source,
    })?;
    let owned = owned_tags(&wire.metadata);
    let spec_tags = wire
        .spec
        .tags
        .into_iter()
        .map(|t| {
            let from = match t.from {
                Some(f) if f.kind == "DockerImage" => f.name,
                Some(f) => match f.namespace {
                    Some(ns) => format!("{}:{ns}/{}", f.kind, f.name),
                    None => format!("{}:{}", f.kind, f.name),
                },
                None => String::new(),
            };
            let spec = ObservedSpecTag {
                from,
                generation: t.generation,
                managed_by_relsync: owned.contains(&t.name),
            };
            (t.name, spec)
        })
        .collect();
    let status_tags = wire
        .status
        .tags
        .into_iter()
        .map(|t| {
            let newest = t.items.first();
            let import_failure = t
                .conditions
                .iter()
                .find(|c| c.kind == "ImportSuccess" && c.status == "False")
                .map(|c| ImportFailure {
                    message: c.message.clone(),
                    generation: c.generation,
                });
            let status = ObservedStatusTag {
                image: newest.and_then(|i| Digest::parse(&i.image).ok()),
                generation: newest.and_then(|i| i.generation),
                import_failure,
            };
            (t.tag, status)
        })
        .collect();
    Ok(ObservedImageStream {
        resource_version: wire.metadata.resource_version,
        spec_tags,
        status_tags,
    })
}

/// Whether an observed `from` is a `DockerImage` pull spec (others are written
/// `<kind>:…`, see [`observed`]).
fn is_docker_image(from: &str) -> bool {
    !from.is_empty()
        && !from.starts_with("ImageStreamTag:")
        && !from.starts_with("ImageStreamImage:")
}

/// The apply body: the ImageStream with only relsync's tags.
fn body(is: &ImageStreamRef, tags: &BTreeMap<String, String>, rv: Option<&str>) -> Value {
    let mut metadata = json!({"name": is.name, "namespace": is.namespace});
    if let Some(rv) = rv {
        metadata["resourceVersion"] = json!(rv);
    }
    let tags: Vec<Value> = tags
        .iter()
        .map(|(name, from)| {
            json!({
                "name": name,
                "from": {"kind": "DockerImage", "name": from},
                "importPolicy": {"importMode": "PreserveOriginal"},
                "referencePolicy": {"type": "Source"},
            })
        })
        .collect();
    json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "metadata": metadata,
        "spec": {"tags": tags},
    })
}

impl Cluster {
    fn image_streams(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &resource())
    }

    /// Reads one ImageStream (`None`: it does not exist, or its namespace does not).
    pub async fn image_stream(
        &self,
        is: &ImageStreamRef,
    ) -> Result<Option<ObservedImageStream>, ClusterError> {
        let object = object_name(is);
        let api = self.image_streams(&is.namespace);
        let found = self
            .retrying(&object, "read", || api.get_opt(&is.name))
            .await?;
        let Some(found) = found else {
            return Ok(None);
        };
        let value = serde_json::to_value(found).map_err(|source| ClusterError::Decode {
            object: object.clone(),
            source,
        })?;
        observed(&object, value).map(Some)
    }

    /// Reads every ImageStream in `refs` (absent ones are left out), concurrently.
    pub async fn observe_image_streams<'a>(
        &self,
        refs: impl IntoIterator<Item = &'a ImageStreamRef>,
    ) -> Result<BTreeMap<ImageStreamRef, ObservedImageStream>, ClusterError> {
        let reads = refs.into_iter().map(|is| async move {
            let span = tracing::debug_span!("observe", target = %object_name(is));
            (is, self.image_stream(is).instrument(span).await)
        });
        let mut out = BTreeMap::new();
        for (is, read) in futures_util::future::join_all(reads).await {
            if let Some(o) = read? {
                out.insert(is.clone(), o);
            }
        }
        Ok(out)
    }

    /// Applies `request`: server-side apply under `relsync`, `force=true`, carrying the
    /// `resourceVersion` the plan saw. On 409 it re-reads, leaves out the tags whose spec
    /// changed since the plan (reported in [`ImageStreamApplied::conflicts`]) and applies
    /// once more with the fresh `resourceVersion`.
    pub async fn apply_image_stream(
        &self,
        request: &ImageStreamApply<'_>,
    ) -> Result<ImageStreamApplied, ClusterError> {
        let is = request.image_stream;
        let object = object_name(is);
        let api = self.image_streams(&is.namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let planned_rv = request.observed.and_then(|o| o.resource_version.clone());
        let send = |tags: BTreeMap<String, String>, rv: Option<String>| {
            let api = api.clone();
            let params = params.clone();
            let object = object.clone();
            async move {
                let patch = Patch::Apply(body(is, &tags, rv.as_deref()));
                let result = self
                    .retrying(&object, "apply", || api.patch(&is.name, &params, &patch))
                    .await;
                (tags, result)
            }
        };
        let (tags, first) = send(request.tags.clone(), planned_rv).await;
        match first {
            Ok(_) => {
                return Ok(ImageStreamApplied {
                    applied: tags,
                    ..ImageStreamApplied::default()
                });
            }
            Err(ClusterError::Api { code: 409, .. }) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(target = %object, "changed since the plan (409): reading it again");
        let now = self.image_stream(is).await?;
        let planned_from = |tag: &str| {
            request
                .observed
                .and_then(|o| o.spec_tags.get(tag))
                .map(|s| s.from.clone())
        };
        let now_from = |tag: &str| {
            now.as_ref()
                .and_then(|o| o.spec_tags.get(tag))
                .map(|s| s.from.clone())
        };
        let mut conflicts = Vec::new();
        let mut kept = BTreeMap::new();
        for (tag, from) in tags {
            let (planned, current) = (planned_from(&tag), now_from(&tag));
            if planned != current && current.as_ref() != Some(&from) {
                // Left as the other writer set it: sent with its current `from` (so relsync
                // keeps owning the tag's policies instead of dropping them), or not at all
                // when it was removed.
                if let Some(c) = current.as_ref().filter(|c| is_docker_image(c)) {
                    kept.insert(tag.clone(), c.clone());
                }
                conflicts.push(TagConflict {
                    tag,
                    planned,
                    now: current,
                });
            } else {
                kept.insert(tag, from);
            }
        }
        // Tags relsync drops (owned at plan time, not sent): changed meanwhile is a conflict
        // too; the API server keeps them when another manager now shares them.
        for (tag, spec) in request.observed.iter().flat_map(|o| &o.spec_tags) {
            if spec.managed_by_relsync && !request.tags.contains_key(tag) {
                let current = now_from(tag);
                if current.as_deref().is_some_and(|c| c != spec.from) {
                    conflicts.push(TagConflict {
                        tag: tag.clone(),
                        planned: Some(spec.from.clone()),
                        now: current,
                    });
                }
            }
        }
        let rv = now.as_ref().and_then(|o| o.resource_version.clone());
        let (applied, second) = send(kept, rv).await;
        second?;
        Ok(ImageStreamApplied {
            applied,
            conflicts,
            retried_after_conflict: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isr() -> ImageStreamRef {
        ImageStreamRef {
            namespace: "origin".into(),
            name: "release".into(),
        }
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn observed_reads_owned_tags_status_and_failed_imports() {
        let value = json!({
            "metadata": {
                "name": "release", "namespace": "origin", "resourceVersion": "42",
                "managedFields": [
                    {"manager": "relsync", "operation": "Apply", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:tags": {
                        "k:{\"name\":\"4-stable\"}": {".": {}, "f:from": {"f:name": {}}}}}}},
                    {"manager": "oc", "operation": "Update", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:tags": {
                        "k:{\"name\":\"theirs\"}": {".": {}}}}}}
                ]
            },
            "spec": {"tags": [
                {"name": "4-stable", "generation": 3,
                 "from": {"kind": "DockerImage", "name": format!("quay.io/okd/release@{D1}")}},
                {"name": "theirs", "from": {"kind": "ImageStreamTag", "name": "other:latest", "namespace": "ns"}}
            ]},
            "status": {"tags": [
                {"tag": "4-stable", "items": [{"image": D1, "generation": 2}],
                 "conditions": [{"type": "ImportSuccess", "status": "False", "message": "not found", "generation": 3}]}
            ]}
        });
        let o = observed("imagestream:origin/release", value).unwrap();
        assert_eq!(o.resource_version.as_deref(), Some("42"));
        let ours = &o.spec_tags["4-stable"];
        assert!(ours.managed_by_relsync);
        assert_eq!(ours.generation, Some(3));
        assert_eq!(ours.from, format!("quay.io/okd/release@{D1}"));
        let theirs = &o.spec_tags["theirs"];
        assert!(!theirs.managed_by_relsync);
        assert_eq!(theirs.from, "ImageStreamTag:ns/other:latest");
        let status = &o.status_tags["4-stable"];
        assert_eq!(
            status.image.as_ref().map(|d| d.to_string()),
            Some(D1.to_string())
        );
        assert_eq!(status.generation, Some(2));
        assert_eq!(
            status.import_failure,
            Some(ImportFailure {
                message: "not found".into(),
                generation: Some(3)
            })
        );
    }

    #[test]
    fn body_carries_only_relsyncs_tags_with_the_design_policies() {
        let tags = BTreeMap::from([("4-stable".to_string(), format!("q/r@{D1}"))]);
        let b = body(&isr(), &tags, Some("7"));
        assert_eq!(b["metadata"]["resourceVersion"], "7");
        assert_eq!(b["metadata"]["namespace"], "origin");
        let t = &b["spec"]["tags"][0];
        assert_eq!(t["name"], "4-stable");
        assert_eq!(t["from"]["kind"], "DockerImage");
        assert_eq!(t["importPolicy"]["importMode"], "PreserveOriginal");
        assert_eq!(t["referencePolicy"]["type"], "Source");
        assert!(
            body(&isr(), &tags, None)["metadata"]
                .get("resourceVersion")
                .is_none()
        );
    }
}
