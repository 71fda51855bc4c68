//! Fuzz target `manifest_parse`: arbitrary bytes as one or several YAML files of a
//! desired-state repository, and as `relsync.yaml`.
//!
//! Input format: the bytes are split at NUL bytes into at most [`MAX_FILES`] files. A file
//! whose bytes start with `#P` is placed under `policies/` (where `Policy` documents must
//! live), every other one under `manifests/`. Every file also goes, on its own, through
//! `config::load`.
//!
//! Properties (any violation aborts the run, which libFuzzer records as a crash):
//! - `desired::load`, `config::load`, and on success `desired::derive`,
//!   `plan::plan` and `plan::drift` (against an empty live state) never panic;
//! - libFuzzer's `-timeout` and `-rss_limit_mb` (set by `scripts/fuzz.sh`) bound time and
//!   memory: the parser's budgets must keep any input within them;
//! - a failed load reports at least one error (never an empty or warning-only failure);
//! - every diagnostic prints as one line (docs/reference.md: "one line per problem");
//! - loading is deterministic: the same files give the same diagnostics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relsync::manifest::{Diagnostics, SourceFile};
use relsync::plan::{self, ObservedState, PlanOptions};

/// Most files one input is split into.
const MAX_FILES: usize = 8;

fn files_of(data: &[u8]) -> Vec<SourceFile> {
    data.split(|&b| b == 0)
        .take(MAX_FILES)
        .enumerate()
        .map(|(i, chunk)| {
            let dir = if chunk.starts_with(b"#P") {
                "policies"
            } else {
                "manifests"
            };
            SourceFile {
                path: format!("{dir}/f{i}.yaml"),
                contents: chunk.to_vec(),
            }
        })
        .collect()
}

/// Every diagnostic prints on one line, and a failure carries an error.
fn check_diagnostics(d: &Diagnostics, failed: bool) {
    if failed {
        assert!(d.has_errors(), "a failed load reported no error: {d:?}");
    }
    for diag in d.iter() {
        let line = diag.to_string();
        assert!(
            !line.contains('\n') && !line.contains('\r'),
            "a diagnostic spans several lines: {line:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let files = files_of(data);

    let first = relsync::desired::load(&files, "policies");
    let again = relsync::desired::load(&files, "policies");
    match (&first, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a.warnings, b.warnings, "load is not deterministic"),
        (Err(a), Err(b)) => assert_eq!(a, b, "load is not deterministic"),
        _ => panic!("load is not deterministic: once Ok, once Err"),
    }
    match first {
        Ok(m) => {
            check_diagnostics(&m.warnings, false);
            let derived = relsync::desired::derive(&m);
            if let Err(d) = &derived {
                check_diagnostics(d, true);
            }
            if let Ok(desired) = derived {
                let observed = ObservedState::default();
                let options = PlanOptions::default();
                let p = plan::plan("fuzz", &desired, &observed, &m.policy, &options);
                // Nothing is live: every action creates a tag, none moves or deletes one.
                for a in &p.actions {
                    assert!(
                        a.to.is_some() && a.from.is_none(),
                        "an action on an empty live state is not a creation: {a:?}"
                    );
                }
                let _ = plan::drift("fuzz", &desired, &observed, &options);
            }
        }
        Err(d) => check_diagnostics(&d, true),
    }

    for f in &files {
        match relsync::config::load(&f.path, &f.contents) {
            Ok(_) => {}
            Err(d) => check_diagnostics(&d, true),
        }
    }
});
