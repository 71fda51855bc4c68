//! The Go-built peers of `scripts/test-deps.sh`, for the test modules: the lookup itself is
//! `util::deps` (the registry helper and the benchmarks use it too).
#![allow(unused_imports)]

pub use crate::util::deps::{bin_dir, binary};
