//! Test helpers, one concept per module: real docker-registry processes (`registry`), images
//! made in memory (`content`), pushing them over HTTP (`push`), OCI image layouts (`layout`),
//! a paging (and token-issuing) proxy in front of a registry (`proxy`), an axum app on its own
//! thread (`server`), Git repositories (`git`) and the relsync binary (`run`). Every helper
//! is re-exported here, so callers name it `util::foo`.
//!
//! Everything here is `pub` so that every test module (and the benchmark, which includes
//! this file with `#[path]`) can use it.
#![allow(dead_code)]

mod content;
mod git;
mod kube;
mod layout;
mod payload;
mod proxy;
mod push;
mod registry;
mod releases;
mod run;
mod server;

// The benchmarks include this module with `#[path]` and use only part of it.
#[allow(unused_imports)]
pub use {
    content::*, git::*, kube::*, layout::*, payload::*, proxy::*, push::*, registry::*,
    releases::*, run::*, server::*,
};

use std::net::TcpListener;

/// The Debian binary of CNCF distribution 2.8.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// OCI media types used by the pushed images.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer media type.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Runs `fut` to completion on a fresh current-thread runtime (for synchronous tests).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(fut)
}

/// A free loopback port (bound, read, released; the caller retries on the rare clash).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}
