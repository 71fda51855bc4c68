//! Field ownership in the real FieldsV1 format: which manager owns which leaf, and the
//! associative lists of ImageStreams (`spec.tags` by `name`, `status.tags` by `tag`).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::*;

pub(super) struct Entry {
    pub(super) manager: String,
    pub(super) operation: String,
    pub(super) api_version: String,
    pub(super) time: String,
    pub(super) fields: BTreeSet<FieldPath>,
}

/// The part of an object whose fields managers own (not apiVersion, kind, server metadata,
/// nor an ImageStream's status).
pub(super) fn owned_view(r: Resource, obj: &Value) -> Value {
    let mut view = obj.clone();
    if let Some(o) = view.as_object_mut() {
        for f in ["apiVersion", "kind"] {
            o.remove(f);
        }
        if r == Resource::ImageStreams {
            o.remove("status");
        }
        if let Some(Value::Object(m)) = o.get_mut("metadata") {
            m.retain(|k, _| k == "labels" || k == "annotations");
        }
        if o.get("metadata")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            o.remove("metadata");
        }
    }
    view
}

/// Whether `p` is the key field of a list item (never removed on its own).
pub(super) fn is_item_key(p: &FieldPath) -> bool {
    let n = p.len();
    n >= 2 && key_of(&p[n - 2]).is_some_and(|(k, _)| p[n - 1] == format!("f:{k}"))
}

pub(super) fn is_item(p: &FieldPath) -> bool {
    p.last().is_some_and(|e| e.starts_with("k:"))
}

/// Leaf field paths of `v`: maps recurse, associative list items are keyed (the item's own
/// path is included), anything else is a leaf.
pub(super) fn leaves(r: Resource, v: &Value) -> BTreeSet<FieldPath> {
    pub(super) fn walk(
        r: Resource,
        v: &Value,
        path: &mut FieldPath,
        out: &mut BTreeSet<FieldPath>,
    ) {
        match v {
            Value::Object(m) if !m.is_empty() || path.is_empty() => {
                for (k, child) in m.iter().filter(|(_, c)| !c.is_null()) {
                    path.push(format!("f:{k}"));
                    walk(r, child, path, out);
                    path.pop();
                }
            }
            Value::Array(items) if r.list_key(path).is_some() => {
                let key = r.list_key(path).expect("key");
                for item in items {
                    path.push(format!("k:{}", json!({key: item[key]})));
                    out.insert(path.clone());
                    walk(r, item, path, out);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(r, v, &mut Vec::new(), &mut out);
    out
}

pub(super) fn find_item<'a>(list: &'a Value, key: &str, want: &Value) -> Option<&'a Value> {
    list.as_array()?.iter().find(|i| &i[key] == want)
}

pub(super) fn key_of(elem: &str) -> Option<(String, Value)> {
    let m: Map<String, Value> = serde_json::from_str(elem.strip_prefix("k:")?).ok()?;
    m.into_iter().next()
}

pub(super) fn value_at<'a>(mut v: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    for elem in path {
        v = match elem.strip_prefix("f:") {
            Some(f) => v.get(f)?,
            None => {
                let (k, want) = key_of(elem)?;
                find_item(v, &k, &want)?
            }
        };
    }
    Some(v)
}

/// Removes the field at `path`, then parents left empty that nobody owns.
pub(super) fn remove_at(
    obj: &mut Value,
    path: &FieldPath,
    kept: &BTreeSet<FieldPath>,
    others: &[&FieldPath],
) {
    for depth in (1..=path.len()).rev() {
        let (parent, last) = (&path[..depth - 1], &path[depth - 1]);
        let owned = |p: &[String]| {
            kept.iter()
                .chain(others.iter().copied())
                .any(|q| q.starts_with(p))
        };
        if depth < path.len()
            && (owned(&path[..depth])
                || value_at(obj, &path[..depth].to_vec())
                    .is_none_or(|v| v.as_object().is_none_or(|m| !m.is_empty())))
        {
            return;
        }
        let Some(p) = value_at_mut(obj, parent) else {
            return;
        };
        match (last.strip_prefix("f:"), p) {
            (Some(f), Value::Object(m)) => {
                m.remove(f);
            }
            (None, Value::Array(items)) => {
                if let Some((k, want)) = key_of(last) {
                    items.retain(|i| i[&k] != want);
                }
            }
            _ => return,
        }
    }
}

pub(super) fn value_at_mut<'a>(mut v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    for elem in path {
        v = match elem.strip_prefix("f:") {
            Some(f) => v.get_mut(f)?,
            None => {
                let (k, want) = key_of(elem)?;
                v.as_array_mut()?.iter_mut().find(|i| i[&k] == want)?
            }
        };
    }
    Some(v)
}

/// Merges an applied configuration into the live object: maps recursively, associative
/// lists by key, everything else replaced.
pub(super) fn merge_applied(r: Resource, live: &mut Value, applied: &Value, path: &mut FieldPath) {
    let (Value::Object(l), Value::Object(a)) = (&mut *live, applied) else {
        *live = applied.clone();
        return;
    };
    for (k, av) in a.iter().filter(|(_, v)| !v.is_null()) {
        path.push(format!("f:{k}"));
        let lv = l.entry(k.clone()).or_insert(Value::Null);
        match (r.list_key(path), &mut *lv, av) {
            (Some(key), Value::Array(litems), Value::Array(aitems)) => {
                for ai in aitems {
                    match litems.iter_mut().find(|li| li[key] == ai[key]) {
                        Some(li) => merge_applied(r, li, ai, &mut path.clone()),
                        None => litems.push(ai.clone()),
                    }
                }
            }
            (_, Value::Object(_), Value::Object(_)) => merge_applied(r, lv, av, path),
            _ => *lv = av.clone(),
        }
        path.pop();
    }
}

pub(super) fn managers(obj: &Value) -> Vec<Entry> {
    pub(super) fn walk(node: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        for (k, child) in node.as_object().into_iter().flatten() {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            if child.as_object().is_some_and(|m| m.is_empty()) {
                out.insert(path.clone());
            }
            walk(child, path, out);
            path.pop();
        }
    }
    let list = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.iter()
        .map(|e| {
            let mut fields = BTreeSet::new();
            walk(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            let s = |f: &str| e[f].as_str().unwrap_or_default().to_string();
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                fields,
            }
        })
        .collect()
}

pub(super) fn set_managers(r: Resource, obj: &mut Value, entries: Vec<Entry>) {
    let present = leaves(r, &owned_view(r, obj));
    let list: Vec<Value> = entries
        .into_iter()
        .filter_map(|mut e| {
            e.fields.retain(|p| present.contains(p));
            if e.fields.is_empty() {
                return None;
            }
            let mut tree = json!({});
            for p in &e.fields {
                let mut node = &mut tree;
                for elem in p {
                    node = node
                        .as_object_mut()
                        .expect("node")
                        .entry(elem.clone())
                        .or_insert(json!({}));
                }
                if is_item(p) {
                    node[".".to_string()] = json!({});
                }
            }
            Some(
                json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                        "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": tree}),
            )
        })
        .collect();
    obj["metadata"]["managedFields"] = Value::Array(list);
}

/// Ownership for an Update (create, replace, merge patch): changed fields move to `manager`.
pub(super) fn update_owners(r: Resource, old: Option<&Value>, new: &mut Value, manager: &str) {
    let old_view = old.map(|o| owned_view(r, o)).unwrap_or(Value::Null);
    let new_view = owned_view(r, new);
    let changed: BTreeSet<FieldPath> = leaves(r, &new_view)
        .into_iter()
        .filter(|p| {
            if is_item(p) {
                value_at(&old_view, p).is_none()
            } else {
                value_at(&old_view, p) != value_at(&new_view, p)
            }
        })
        .collect();
    let mut entries = managers(new);
    for e in &mut entries {
        e.fields.retain(|p| !changed.contains(p));
    }
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update")
    {
        Some(e) => {
            e.fields.extend(changed);
            e.time = now();
        }
        None => entries.push(Entry {
            manager: manager.into(),
            operation: "Update".into(),
            api_version: r.api_version(),
            time: now(),
            fields: changed,
        }),
    }
    set_managers(r, new, entries);
}

pub(super) fn display_path(p: &FieldPath) -> String {
    p.iter()
        .map(|e| match e.strip_prefix("f:") {
            Some(f) => format!(".{f}"),
            None => key_of(e)
                .map(|(k, v)| format!("[{k}={v}]"))
                .unwrap_or_default(),
        })
        .collect()
}

pub(super) fn apply_conflict(
    r: Resource,
    name: &str,
    conflicts: &BTreeMap<String, Vec<FieldPath>>,
) -> Value {
    let total: usize = conflicts.values().map(Vec::len).sum();
    let mut lines = Vec::new();
    let mut causes = Vec::new();
    for (manager, paths) in conflicts {
        // As apimachinery words it: one field inline, several as a list.
        let using = format!("conflict with \"{manager}\" using {}", r.api_version());
        match paths.as_slice() {
            [one] => lines.push(format!("{using}: {}", display_path(one))),
            _ => {
                lines.push(format!("{}:", using.replacen("conflict", "conflicts", 1)));
                lines.extend(paths.iter().map(|p| format!("- {}", display_path(p))));
            }
        }
        for p in paths {
            let field = display_path(p);
            causes
                .push(json!({"reason": "FieldManagerConflict", "message": using, "field": field}));
        }
    }
    let s = if total == 1 { "" } else { "s" };
    let message = format!(
        "Apply failed with {total} conflict{s}: {}",
        lines.join("\n")
    );
    let mut s = status(409, "Conflict", message, Some((r, name)));
    s["details"]["causes"] = Value::Array(causes);
    s
}
