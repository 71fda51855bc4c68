//! The JSON Schema of every document, generated from the strict shape the parser reads
//! ([`DocDe`] and the structs below it, with `schemars`): one schema, the spec of each kind
//! selected by `kind` and restricted to the fields [`Kind::allows`], unknown fields refused
//! as the parser refuses them.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::shape::{DocDe, Kind};
use crate::manifest::API_VERSION;

/// Where the schema says it lives (its `$id`).
const SCHEMA_ID: &str = "https://relsync.dev/schemas/v1alpha1/relsync.json";

/// The fields each kind's parser requires in `spec` (the nested mappings say theirs on
/// their own struct).
fn required_spec_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::ReleaseStream => &["source", "target"],
        Kind::ReleaseChannel => &["stream"],
        Kind::Policy | Kind::Config => &[],
    }
}

/// The schema, draft 2020-12.
pub(crate) fn document_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let root = generator.into_root_schema_for::<DocDe>();
    let mut root: Value = root.into();
    let Some(obj) = root.as_object_mut() else {
        unreachable!("a struct's schema is an object")
    };
    let mut defs = match obj.remove("$defs") {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    let union = defs.remove("SpecDe").unwrap_or_else(|| json!({}));
    let union_props = union
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut branches = Vec::new();
    for kind in Kind::ALL {
        let props: Map<String, Value> = union_props
            .iter()
            .filter(|(name, _)| kind.allows(name))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let def = format!("{}Spec", kind.name());
        let mut spec = json!({
            "type": "object",
            "description": format!("The spec of a {}.", kind.name()),
            "properties": props,
            "additionalProperties": false,
        });
        let required = required_spec_fields(kind);
        if !required.is_empty() {
            spec["required"] = json!(required);
        }
        defs.insert(def.clone(), spec);
        let mut then = json!({
            "properties": {"spec": {"$ref": format!("#/$defs/{def}")}},
        });
        if kind != Kind::Config {
            // A manifest is named and has a spec; relsync.yaml may leave out both.
            then["required"] = json!(["metadata", "spec"]);
            then["properties"]["metadata"] = json!({"required": ["name"]});
        }
        branches.push(json!({
            "if": {"properties": {"kind": {"const": kind.name()}}, "required": ["kind"]},
            "then": then,
        }));
    }
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        props.insert("apiVersion".into(), json!({"const": API_VERSION}));
        props.insert(
            "kind".into(),
            json!({"enum": kinds, "description": "The kind of document; it selects the fields of `spec`."}),
        );
        props.insert(
            "spec".into(),
            json!({"type": "object", "description": "The document's content; its fields depend on `kind`."}),
        );
    }
    obj.insert("$id".into(), json!(SCHEMA_ID));
    obj.insert(
        "title".into(),
        json!(
            "relsync documents (ReleaseStream, ReleaseChannel, Policy) and relsync.yaml (Config)"
        ),
    );
    obj.insert("required".into(), json!(["apiVersion", "kind"]));
    obj.insert("allOf".into(), Value::Array(branches));
    obj.insert("$defs".into(), Value::Object(defs));
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_exactly_its_own_spec_fields() {
        let s = document_schema();
        let channel = &s["$defs"]["ReleaseChannelSpec"];
        assert_eq!(channel["additionalProperties"], json!(false));
        assert!(channel["properties"]["tombstones"].is_object(), "{channel}");
        assert!(channel["properties"].get("source").is_none(), "{channel}");
        let config = &s["$defs"]["ConfigSpec"];
        assert!(config["properties"]["registries"].is_object(), "{config}");
        assert_eq!(s["properties"]["apiVersion"]["const"], json!(API_VERSION));
        assert_eq!(s["allOf"].as_array().map(Vec::len), Some(Kind::ALL.len()));
    }

    /// A field a kind allows but the shape does not carry (or the reverse) would make the
    /// schema and the parser disagree: every kind's fields are exactly its schema's.
    #[test]
    fn every_field_a_kind_allows_is_in_its_schema_and_no_other() {
        let s = document_schema();
        for kind in Kind::ALL {
            let props = s["$defs"][format!("{}Spec", kind.name())]["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut in_schema: Vec<&str> = props.keys().map(String::as_str).collect();
            let mut allowed: Vec<&str> = kind.fields().to_vec();
            in_schema.sort_unstable();
            allowed.sort_unstable();
            assert_eq!(in_schema, allowed, "{}", kind.name());
        }
    }
}
