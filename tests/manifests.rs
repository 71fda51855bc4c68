//! manifests tests.
