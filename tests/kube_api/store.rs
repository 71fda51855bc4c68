//! The stand-in's object store: get, list, create, replace, merge patch, server-side apply,
//! delete and watch events, with Kubernetes' preconditions and Status errors.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::*;

pub(super) const STALE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

impl Store {
    /// The stored object, if any.
    pub fn get(&self, r: Resource, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(r, ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Makes namespace `ns` exist.
    pub fn add_namespace(&mut self, ns: &str) {
        self.namespaces.insert(ns.to_string());
    }

    pub(super) fn check_namespace(&self, ns: &str) -> Result<(), Value> {
        if self.namespaces.contains(ns) {
            return Ok(());
        }
        let mut s = status(
            404,
            "NotFound",
            format!("namespaces \"{ns}\" not found"),
            None,
        );
        s["details"] = json!({"name": ns, "kind": "namespaces"});
        Err(s)
    }

    /// POST: creates `obj` as `manager` (operation Update).
    pub fn create(&mut self, r: Resource, ns: &str, manager: &str, obj: Value) -> Outcome {
        self.check_namespace(ns)?;
        let name = name_of(&obj);
        if name.is_empty() {
            let message = format!(
                "{} \"\" is invalid: metadata.name: Required value",
                r.kind()
            );
            return Err(status(422, "Invalid", message, Some((r, ""))));
        }
        if self.get(r, ns, &name).is_some() {
            let message = format!("{} \"{name}\" already exists", r.qualified());
            return Err(status(409, "AlreadyExists", message, Some((r, &name))));
        }
        if has_resource_version(&obj) {
            return Err(bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        Ok(self.update(r, ns, &name, manager, None, obj))
    }

    /// PUT: replaces the object as `manager` (409 when `metadata.resourceVersion` is stale;
    /// 404 when absent, except that a Lease is created by an unconditional PUT).
    pub fn replace(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        manager: &str,
        obj: Value,
    ) -> Outcome {
        let Some(old) = self.get(r, ns, name) else {
            // Leases allow create-on-update (unconditional only); other kinds do not.
            let creatable = r == Resource::Leases && !has_resource_version(&obj);
            if creatable && obj["metadata"]["name"] == name {
                return self.create(r, ns, manager, obj);
            }
            return Err(not_found(r, name));
        };
        check_precondition(r, name, &obj, &old)?;
        Ok(self.update(r, ns, name, manager, Some(old), obj))
    }

    /// JSON merge patch (RFC 7386) as `manager` (operation Update).
    pub fn merge_patch(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        manager: &str,
        patch: Value,
    ) -> Outcome {
        let old = self.get(r, ns, name).ok_or_else(|| not_found(r, name))?;
        check_precondition(r, name, &patch, &old)?;
        let mut obj = old.clone();
        json_merge_patch(&mut obj, &patch);
        Ok(self.update(r, ns, name, manager, Some(old), obj))
    }

    /// A write with operation Update: changed fields move to `manager`.
    pub(super) fn update(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        manager: &str,
        old: Option<Value>,
        mut obj: Value,
    ) -> Value {
        clear_server_fields(&mut obj);
        obj["metadata"]["managedFields"] = old
            .as_ref()
            .map_or(json!([]), |o| o["metadata"]["managedFields"].clone());
        update_owners(r, old.as_ref(), &mut obj, manager);
        self.store_write(r, ns, name, old, obj)
    }

    /// Server-side apply of `applied` as `manager`; creates the object when absent.
    pub fn apply(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        manager: &str,
        applied: Value,
        force: bool,
    ) -> Outcome {
        let body_name = applied["metadata"]["name"].as_str().unwrap_or_default();
        if body_name != name {
            let message =
                format!("the name of the object ({body_name}) does not match the URL ({name})");
            return Err(bad_request(&message));
        }
        let old = self.get(r, ns, name);
        match &old {
            Some(old) => check_precondition(r, name, &applied, old)?,
            None if has_resource_version(&applied) => return Err(conflict(r, name)),
            None => self.check_namespace(ns)?,
        }
        let live = old
            .clone()
            .unwrap_or_else(|| json!({"metadata": {"name": name}}));
        let applied_view = owned_view(r, &applied);
        let live_view = owned_view(r, &live);
        let applied_set = leaves(r, &applied_view);
        let mut entries = managers(&live);
        let is_mine = |e: &Entry| e.manager == manager && e.operation == "Apply";
        let mut conflicts: BTreeMap<String, Vec<FieldPath>> = BTreeMap::new();
        for e in entries.iter().filter(|e| !is_mine(e)) {
            for p in e.fields.intersection(&applied_set) {
                if !is_item(p) && value_at(&live_view, p) != value_at(&applied_view, p) {
                    conflicts
                        .entry(e.manager.clone())
                        .or_default()
                        .push(p.clone());
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(apply_conflict(r, name, &conflicts));
        }
        for e in entries.iter_mut().filter(|e| !is_mine(e)) {
            if let Some(lost) = conflicts.get(&e.manager) {
                e.fields.retain(|p| !lost.contains(p));
            }
        }
        let previous = entries
            .iter()
            .find(|e| is_mine(e))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let mut obj = live.clone();
        merge_applied(r, &mut obj, &applied, &mut Vec::new());
        let others: Vec<&FieldPath> = entries
            .iter()
            .filter(|e| !is_mine(e))
            .flat_map(|e| e.fields.iter())
            .collect();
        let mut removed: Vec<&FieldPath> = previous.difference(&applied_set).collect();
        removed.sort_by_key(|p| p.len());
        for p in removed {
            if !others.iter().any(|q| q.starts_with(p)) && !is_item_key(p) {
                remove_at(&mut obj, p, &applied_set, &others);
            }
        }
        entries.retain(|e| !is_mine(e));
        entries.push(Entry {
            manager: manager.into(),
            operation: "Apply".into(),
            api_version: r.api_version(),
            time: now(),
            fields: applied_set,
        });
        set_managers(r, &mut obj, entries);
        clear_server_fields(&mut obj);
        Ok(self.store_write(r, ns, name, old, obj))
    }

    /// Deletes the object, answering a `Status` Success.
    pub fn delete(&mut self, r: Resource, ns: &str, name: &str) -> Outcome {
        let obj = self
            .objects
            .remove(&(r, ns.to_string(), name.to_string()))
            .ok_or_else(|| not_found(r, name))?;
        self.rv += 1;
        self.emit(r, ns, "DELETED", obj.clone());
        let details = json!({"name": name, "group": r.group(), "kind": r.plural(), "uid": obj["metadata"]["uid"]});
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
        )
    }

    pub(super) fn emit(&mut self, r: Resource, ns: &str, kind: &str, object: Value) {
        let event = Event {
            resource: r,
            ns: ns.to_string(),
            rv: self.rv,
            json: json!({"type": kind, "object": object}),
        };
        self.history.push(event.clone());
        let _ = self.events.send(event);
    }

    /// Sets server-owned metadata, stores `obj`, emits the event, then imports (Auto mode).
    pub(super) fn store_write(
        &mut self,
        r: Resource,
        ns: &str,
        name: &str,
        old: Option<Value>,
        mut obj: Value,
    ) -> Value {
        self.rv += 1;
        obj["apiVersion"] = json!(r.api_version());
        obj["kind"] = json!(r.kind());
        let meta = &mut obj["metadata"];
        meta["name"] = json!(name);
        meta["namespace"] = json!(ns);
        meta["resourceVersion"] = json!(self.rv.to_string());
        let old_meta = old.as_ref().map(|o| o["metadata"].clone());
        let random_uid = || {
            format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                fastrand::u32(..),
                fastrand::u16(..),
                fastrand::u16(..4096),
                fastrand::u16(..4096),
                fastrand::u64(..1 << 48)
            )
        };
        meta["uid"] = old_meta
            .as_ref()
            .map_or_else(|| json!(random_uid()), |m| m["uid"].clone());
        meta["creationTimestamp"] = old_meta
            .as_ref()
            .map_or_else(|| json!(now()), |m| m["creationTimestamp"].clone());
        if r == Resource::ImageStreams {
            let old_gen = old_meta.as_ref().and_then(|m| m["generation"].as_u64());
            let spec_changed = old
                .as_ref()
                .is_none_or(|o| o.get("spec") != obj.get("spec"));
            let generation = match old_gen {
                Some(g) if spec_changed => g + 1,
                Some(g) => g,
                None => 1,
            };
            obj["metadata"]["generation"] = json!(generation);
            let old_tags = old
                .as_ref()
                .map(|o| o["spec"]["tags"].clone())
                .unwrap_or(Value::Null);
            if let Some(tags) = obj["spec"]["tags"].as_array_mut() {
                for tag in tags {
                    let before = find_item(&old_tags, "name", &tag["name"]);
                    if before.is_none_or(|b| b["from"] != tag["from"])
                        || tag["generation"].is_null()
                    {
                        tag["generation"] = json!(generation);
                    }
                }
            }
            obj["status"] = old
                .as_ref()
                .map(|o| o["status"].clone())
                .unwrap_or(Value::Null);
            if obj["status"].is_null() {
                obj["status"] = json!({"dockerImageRepository": format!("image-registry.openshift-image-registry.svc:5000/{ns}/{name}")});
            }
        }
        self.objects
            .insert((r, ns.into(), name.into()), obj.clone());
        self.emit(
            r,
            ns,
            if old.is_some() { "MODIFIED" } else { "ADDED" },
            obj.clone(),
        );
        if r == Resource::ImageStreams && self.import_mode == ImportMode::Auto {
            self.import(ns, name);
        }
        obj
    }

    /// Imports every ImageStream tag that is behind its spec.
    pub fn import_all(&mut self) {
        let keys: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| k.0 == Resource::ImageStreams)
            .cloned()
            .collect();
        for (_, ns, name) in keys {
            self.import(&ns, &name);
        }
    }

    /// The OpenShift image import for one ImageStream, as a separate status write.
    pub(super) fn import(&mut self, ns: &str, name: &str) {
        let key = (Resource::ImageStreams, ns.to_string(), name.to_string());
        let Some(mut obj) = self.objects.get(&key).cloned() else {
            return;
        };
        let old_status = obj["status"]["tags"].clone();
        let mut status_tags = Vec::new();
        for spec in obj["spec"]["tags"].as_array().cloned().unwrap_or_default() {
            let tag = spec["name"].as_str().unwrap_or_default().to_string();
            let tag_gen = spec["generation"].as_u64().unwrap_or(0);
            let mut entry = find_item(&old_status, "tag", &spec["name"])
                .cloned()
                .unwrap_or_else(|| json!({"tag": tag, "items": []}));
            let seen = |v: &Value| v["generation"].as_u64().is_some_and(|g| g >= tag_gen);
            let done = entry["items"].get(0).is_some_and(seen)
                || entry["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(seen));
            if done || spec["from"]["kind"] != "DockerImage" {
                status_tags.push(entry);
                continue;
            }
            let reference = spec["from"]["name"].as_str().unwrap_or_default();
            let failure = match (
                self.import_failures
                    .get(&(ns.into(), name.into(), tag.clone())),
                reference.split_once('@'),
            ) {
                (Some(message), _) => Some(message.clone()),
                (None, None) => Some(format!(
                    "the test API server imports only references pinned by digest, not {reference}"
                )),
                (None, Some((_, digest))) => {
                    let item = json!({"created": now(), "dockerImageReference": reference, "image": digest, "generation": tag_gen});
                    entry["items"]
                        .as_array_mut()
                        .expect("items")
                        .insert(0, item);
                    entry
                        .as_object_mut()
                        .expect("status tag")
                        .remove("conditions");
                    None
                }
            };
            if let Some(message) = failure {
                entry["conditions"] = json!([{"type": "ImportSuccess", "status": "False", "reason": "NotFound",
                    "message": message, "generation": tag_gen, "lastTransitionTime": now()}]);
            }
            status_tags.push(entry);
        }
        let new_status = Value::Array(status_tags);
        if new_status == old_status || (old_status.is_null() && new_status == json!([])) {
            return;
        }
        self.rv += 1;
        obj["status"]["tags"] = new_status;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key, obj.clone());
        self.emit(Resource::ImageStreams, ns, "MODIFIED", obj);
    }
}

pub(super) fn has_resource_version(obj: &Value) -> bool {
    obj["metadata"]
        .get("resourceVersion")
        .is_some_and(|v| !v.is_null())
}

pub(super) fn check_precondition(
    r: Resource,
    name: &str,
    body: &Value,
    old: &Value,
) -> Result<(), Value> {
    match body["metadata"]
        .get("resourceVersion")
        .and_then(Value::as_str)
    {
        Some(rv)
            if rv
                != old["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default() =>
        {
            Err(conflict(r, name))
        }
        _ => Ok(()),
    }
}

pub(super) fn clear_server_fields(obj: &mut Value) {
    if let Some(m) = obj["metadata"].as_object_mut() {
        for f in [
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
            "selfLink",
        ] {
            m.remove(f);
        }
    }
}

pub(super) fn json_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            json_merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}
