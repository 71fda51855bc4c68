//! The one integration-test binary (ripgrep style): each module covers one area, helpers
//! live in `util`, the fault-injection proxy in `fault_proxy`, the real kube-apiserver (and
//! its front) in `apiserver`, the Go-built peers of `scripts/test-deps.sh` in `test_deps`,
//! and the in-process Kubernetes stand-in in `kube_api`.

mod apiserver;
mod apiserver_tests;
mod fault_proxy;
mod kube_api;
mod large_channels;
mod test_deps;
mod util;

mod chart;
mod check;
mod cli;
mod cluster;
mod cluster_rbac;
mod controller;
mod ecosystem_budget;
mod ecosystem_cli;
mod ecosystem_creds;
mod ecosystem_notify;
mod ecosystem_schema;
mod faults;
mod git_https;
mod git_remote;
mod git_ssh;
mod hardening_registry;
mod hardening_serve;
mod history;
mod hostile;
mod interop;
mod kube_api_tests;
mod manifest_reading;
mod manifests;
mod mirror;
mod mirror_config;
mod newcomer;
mod newcomer2;
mod payload;
mod payload_check;
mod payload_crash;
mod payload_manifest;
mod payload_read;
mod payload_serve;
mod payload_signatures;
mod promote;
mod registry;
mod serve;
mod serve_http;
mod signatures;
mod signatures_peers;
mod signatures_referrers_api;
mod sync;
mod user_agent;
