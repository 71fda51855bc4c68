//! relsync keeps container registries and OpenShift ImageStreams in line with release
//! channels declared in Git.
//!
//! # Layout
//!
//! The crate is split into a pure core and adapters, as `docs/reference.md` and the architecture notes below lay out:
//!
//! - [`tag`] (pure leaf): the registry tag grammar and the version → tag rule.
//! - [`manifest`] (pure): parses and validates the YAML kinds (`ReleaseStream`,
//!   `ReleaseChannel`, `Policy`) with `file:line:col` spans; `manifest::edit`
//!   makes the byte-preserving text edits of `add` and `promote`.
//! - [`config`]: `relsync.yaml` (`kind: Config`), the connection settings, read with the
//!   manifests' document reader.
//! - [`desired`] (pure): turns validated manifests into the [`desired::DesiredState`]:
//!   for each target repository, tag → digest; [`desired::load`] validates and derives.
//! - [`plan`] (pure): compares desired with [`plan::ObservedState`] and produces a
//!   [`plan::Plan`] (ordered actions) and a [`plan::Drift`] (the difference itself).
//! - [`report`] (pure): renders plans, drift and `check` verdicts as text, JSON and
//!   Markdown.
//! - [`git`] (adapter, git2): reads the manifests from a revision's tree or the working
//!   tree, fetches remotes into a cache (`git::remote`), answers history queries (the
//!   feeder delay, `git::history`) and commits promotions.
//! - [`registry`] (adapter): the OCI distribution client and the `oci:` layout store,
//!   behind the [`registry::TargetReader`] trait.
//! - [`payload`] (pure, but for `payload::read`): OpenShift/OKD release payloads: the
//!   `release-manifests/image-references` of a release image read as a stream (gzip, tar,
//!   a size budget), the component list and the component tag rule; `payload::read` reads a
//!   release's list from its repository.
//! - [`cluster`] (adapter, kube): reads ImageStreams and writes them with server-side
//!   apply under the field manager `relsync`.
//! - [`observe`] (adapter-facing): asks the adapters for exactly the live state a plan or
//!   drift needs, concurrently; [`ops::observe`] decides what to observe.
//! - [`apply`]: executes a plan through the adapters in the safe order (content, then tags,
//!   then deletes), with the [`registry::mirror`] engine copying content; [`progress`] is
//!   its terminal display.
//! - [`store`]: sync history and rollback holds, in `.relsync/state.json` or, with the
//!   cluster on, the ConfigMap `relsync-state`.
//! - [`ops`]: the use cases, front-end neutral: load, observe, sync (apply, outcome,
//!   history, holds), gate (every `check` rule, the feeder rule once), edit (`add`,
//!   `promote`), rollback. They return warnings and typed errors and print nothing.
//! - [`controller`] (front end): `serve`, the Argo CD-style loop with its HTTP surface;
//!   [`controller::run`] runs it on a bound listener until a shutdown future completes.
//!   It calls [`ops`], never [`cli`].
//! - [`cli`] (front end): one module per command: flags → [`ops`] → printed output;
//!   `main.rs` only parses flags and wires.
//! - [`revision`] (pure): how a commit id is shown (`short_revision`).
//! - [`signature`] (pure): cosign signature verification, key-based and offline (simple
//!   signing in `.sig` layers, sigstore bundles with DSSE); [`registry::referrers`] finds
//!   and copies what is attached to a digest (tag-scheme artifacts, OCI 1.1 referrers).
//! - [`schema`] (pure): `relsync schema`, the JSON Schema generated from the parser's own
//!   document types (schemars).
//! - `fs_durable`: the one durable-write helper (temporary file, fsync, rename, fsync of
//!   the directory) and the one file lock, for the `oci:` layouts, the state file and the
//!   Git cache, and running that file work off the async threads.
//!
//! Data flows one way: front end → ops → adapters observe → the pure core plans → apply →
//! adapters write. The pure core never imports tokio, git2, kube or the registry client, so it is tested with
//! plain `#[test]`s, and the adapters are tested against real servers.
#![warn(missing_docs)]

pub mod apply;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod desired;
pub mod digest;
mod fs_durable;
pub mod git;
pub mod manifest;
pub mod observe;
pub mod ops;
pub mod payload;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod report;
pub mod revision;
pub mod schema;
pub mod signature;
pub mod store;
pub mod tag;
