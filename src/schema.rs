//! `relsync schema`: the JSON Schema (draft 2020-12) of every relsync document and of
//! `relsync.yaml`, generated from the types the parser reads, so an editor with
//! `# yaml-language-server: $schema=…` completes and checks what `relsync validate` accepts.
//! Each kind's `spec` is selected by `kind`; unknown fields fail the schema as they fail
//! validation. What the schema cannot say (digests that resolve, channels that exist,
//! durations, policies) is left to `relsync validate`.

/// The schema as a JSON value.
pub fn schema() -> serde_json::Value {
    crate::manifest::parse::document_schema()
}
