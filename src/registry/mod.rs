//! Adapter: reading (and later writing) OCI registries and `oci:` image layouts.
//!
//! Everything that talks to a registry lives here: the distribution HTTP client on reqwest
//! (tag lists following `Link`, HEAD with all four manifest media types, auth), and the
//! `oci:` layout store. [`Registries`] routes each target repository to its backend
//! according to `relsync.yaml` (`insecure`, `caFile`, credentials, `mapTo`).
