//! Golden tests of every format (regenerate with `UPDATE_GOLDEN=1 cargo test --lib report`)
//! and checks of the JSON contract.

use std::path::PathBuf;

use super::*;
use crate::desired::derive;
use crate::desired::testing::{Builder, dg, policy};
use crate::manifest::{Manifests, Order};
use crate::plan::{ObservedState, PlanOptions, drift, plan};

const REV: &str = "0123456789abcdef0123456789abcdef01234567";
const SCOS: &str = "quay.io/okd/scos-release";
const FCOS: &str = "quay.io/openshift/okd";
const OLD: &str = "4.14.0-0.okd-scos-2023-09-29-000000";
const OCT: &str = "4.14.0-0.okd-scos-2023-10-11-084613";
const JAN: &str = "4.15.0-0.okd-scos-2024-01-18-223523";
const FEB: &str = "4.15.0-0.okd-scos-2024-02-02-125103";

fn manifests() -> Manifests {
    Builder::new()
        .stream(
            "4-scos",
            SCOS,
            Order::Semver,
            &[
                (OLD, dg(0x10)),
                (OCT, dg(0x11)),
                (JAN, dg(0x12)),
                (FEB, dg(0x13)),
            ],
        )
        .pin("4-scos", OCT, &["4.14.0-okd-scos.0"])
        .stream(
            "4",
            FCOS,
            Order::Semver,
            &[("4.13.0-0.okd-2023-06-04-080300", dg(0x20))],
        )
        .channel(
            "4-scos-next",
            "4-scos",
            &["4-scos-next"],
            &[OCT, JAN, FEB],
            &[OLD],
        )
        .channel("4-scos-stable", "4-scos", &["4-scos-stable"], &[OCT], &[])
        .channel(
            "4-stable",
            "4",
            &["4-stable"],
            &["4.13.0-0.okd-2023-06-04-080300"],
            &[],
        )
        .build()
}

/// Every kind of action, a conflict, an unclaimed tag, a signature tag, a tombstone.
fn live() -> ObservedState {
    let mut o = ObservedState::default();
    let r = o.repos.entry(SCOS.to_string()).or_default();
    for (tag, d) in [
        (OLD, dg(0x10)),
        (OCT, dg(0x11)),
        ("4.14.0-okd-scos.0", dg(0x99)),
        ("4-scos-next", dg(0x12)),
        ("4-scos-stable", dg(0x12)),
        ("latest", dg(0x11)),
        (&format!("sha256-{}.sig", dg(0x11).hex()), dg(0x55)),
    ] {
        r.tags.insert(tag.to_string(), Some(d));
    }
    o.repos.entry(FCOS.to_string()).or_default();
    o
}

/// The live state once the plan above is applied, conflict aside.
fn live_in_sync() -> ObservedState {
    let desired = derive(&manifests()).unwrap();
    let mut o = ObservedState::default();
    for (repo, want) in &desired.repos {
        let r = o.repos.entry(repo.clone()).or_default();
        for (tag, t) in &want.tags {
            r.tags.insert(tag.clone(), Some(t.digest.clone()));
        }
        r.tags.insert("extra".to_string(), Some(dg(0x77)));
    }
    o
}

fn scenario_plan(live: &ObservedState) -> Plan {
    plan_with(live, true)
}

fn plan_with(live: &ObservedState, prune: bool) -> Plan {
    let desired = derive(&manifests()).unwrap();
    let options = PlanOptions {
        prune,
        ..PlanOptions::default()
    };
    plan(
        REV,
        &desired,
        live,
        &policy(&[r"^\d+\.\d+\.\d+"], Some(1)),
        &options,
    )
}

fn scenario_drift(live: &ObservedState) -> Drift {
    drift(
        REV,
        &derive(&manifests()).unwrap(),
        live,
        &PlanOptions::default(),
    )
}

const PLAIN: Style = Style { color: false };
const COLOR: Style = Style { color: true };

#[test]
fn golden_files() {
    let p = scenario_plan(&live());
    let d = scenario_drift(&live());
    // The in-sync live state carries an unclaimed tag; without prune it is no action.
    let synced_plan = plan_with(&live_in_sync(), false);
    let synced_drift = scenario_drift(&live_in_sync());
    assert_eq!(synced_plan.exit_code(), 0);
    assert!(synced_drift.in_sync());
    let files = [
        ("plan.txt", render_plan(&p, Format::Text, PLAIN)),
        ("plan.color.txt", render_plan(&p, Format::Text, COLOR)),
        ("plan.json", render_plan(&p, Format::Json, PLAIN)),
        ("plan.md", render_plan(&p, Format::Markdown, PLAIN)),
        (
            "plan-in-sync.txt",
            render_plan(&synced_plan, Format::Text, PLAIN),
        ),
        (
            "plan-in-sync.json",
            render_plan(&synced_plan, Format::Json, PLAIN),
        ),
        (
            "plan-in-sync.md",
            render_plan(&synced_plan, Format::Markdown, PLAIN),
        ),
        ("drift.txt", render_drift(&d, Format::Text, PLAIN)),
        ("drift.color.txt", render_drift(&d, Format::Text, COLOR)),
        ("drift.json", render_drift(&d, Format::Json, PLAIN)),
        ("drift.md", render_drift(&d, Format::Markdown, PLAIN)),
        (
            "drift-in-sync.txt",
            render_drift(&synced_drift, Format::Text, PLAIN),
        ),
        (
            "drift-in-sync.json",
            render_drift(&synced_drift, Format::Json, PLAIN),
        ),
        (
            "drift-in-sync.md",
            render_drift(&synced_drift, Format::Markdown, PLAIN),
        ),
    ];
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for (name, got) in &files {
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == *got => {}
            Ok(want) => mismatches.push(format!(
                "{name} differs:\n{}",
                similar::TextDiff::from_lines(&want, got)
                    .unified_diff()
                    .header("golden", "rendered")
            )),
            Err(e) => mismatches.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n(run `UPDATE_GOLDEN=1 cargo test --lib report` after checking the change)",
        mismatches.join("\n")
    );
}

#[test]
fn plan_json_is_exactly_the_contract() {
    let p = scenario_plan(&live());
    let v: serde_json::Value = serde_json::from_str(&render_plan(&p, Format::Json, PLAIN)).unwrap();
    let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(top, ["actions", "revision"]);
    assert_eq!(v["revision"], REV);
    let actions = v["actions"].as_array().unwrap();
    assert_eq!(actions.len(), p.actions.len());
    for (a, want) in actions.iter().zip(&p.actions) {
        let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "action",
                "channels",
                "copy",
                "from",
                "fromVersion",
                "reason",
                "tag",
                "target",
                "to",
                "toVersion"
            ]
        );
        assert_eq!(a["action"], want.action.to_string());
        assert_eq!(a["target"], want.target.to_string());
        // Full digests, null when absent.
        match &want.from {
            Some(d) => assert_eq!(a["from"], d.as_str()),
            None => assert!(a["from"].is_null()),
        }
        match &want.to {
            Some(d) => assert_eq!(a["to"], d.as_str()),
            None => assert!(a["to"].is_null()),
        }
        assert_eq!(a["copy"], want.copy);
    }
    let delete = actions.iter().find(|a| a["action"] == "delete").unwrap();
    assert!(delete["to"].is_null() && delete["toVersion"].is_null());
}

#[test]
fn drift_json_is_exactly_the_contract() {
    let d = scenario_drift(&live());
    let v: serde_json::Value =
        serde_json::from_str(&render_drift(&d, Format::Json, PLAIN)).unwrap();
    let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(top, ["inSync", "items", "revision"]);
    assert_eq!(v["inSync"], false);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), d.items.len());
    assert!(items.iter().any(|i| i["state"] == "ok"));
    for i in items {
        let mut keys: Vec<&str> = i.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["actual", "desired", "state", "tag", "target"]);
    }
    let missing = items.iter().find(|i| i["state"] == "missing").unwrap();
    assert!(missing["actual"].is_null());
    assert_eq!(
        missing["desired"].as_str().unwrap().len(),
        "sha256:".len() + 64
    );
    let synced = scenario_drift(&live_in_sync());
    let v: serde_json::Value =
        serde_json::from_str(&render_drift(&synced, Format::Json, PLAIN)).unwrap();
    assert_eq!(v["inSync"], true);
}

#[test]
fn text_is_aligned_and_colour_only_on_request() {
    let p = scenario_plan(&live());
    let text = render_plan(&p, Format::Text, PLAIN);
    assert!(!text.contains('\x1b'));
    assert!(text.ends_with('\n'));
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("ACTION"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(table.len(), 1 + p.actions.len() + p.conflicts.len());
    // Every column starts at the same character position on every row.
    let col = |line: &str, header: &str| {
        let start = table[0].find(header).unwrap();
        let prefix: String = table[0][..start].chars().collect();
        let at = prefix.chars().count();
        line.chars().nth(at - 1) == Some(' ') && line.chars().nth(at) != Some(' ')
    };
    for line in &table {
        for h in ["TARGET", "TAG", "FROM → TO", "REASON"] {
            assert!(col(line, h), "column {h} misaligned in {line:?}");
        }
    }
    let colored = render_plan(&p, Format::Text, COLOR);
    assert!(colored.contains("\x1b[32mmirror\x1b[0m"));
    assert!(colored.contains("\x1b[31mdelete\x1b[0m"));
    // Colour does not change the text once escapes are removed.
    let stripped = regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&colored, "");
    assert_eq!(stripped, text);
}

#[test]
fn summaries() {
    let p = scenario_plan(&live());
    assert_eq!(
        plan_summary(&p),
        "8 actions: 3 mirror, 1 tag, 1 retag, 1 rollback, 2 delete; 1 conflict (never moved); refused: over the delete cap"
    );
    let empty = Plan {
        revision: REV.into(),
        actions: vec![],
        conflicts: vec![],
        refusal: None,
    };
    assert_eq!(plan_summary(&empty), "in sync: nothing to do");
    let d = scenario_drift(&live());
    assert_eq!(
        drift_summary(&d),
        "drift: 4 missing, 3 moved, 1 extra; 1 tag as desired; 1 extra tag not claimed by any channel (not drift while prune is off)"
    );
}

#[test]
fn drift_diff_is_desired_vs_live_per_target() {
    let d = scenario_drift(&live());
    let diffs = target_diffs(&d);
    assert_eq!(diffs.len(), 2);
    let (target, diff) = &diffs[0];
    assert_eq!(target.to_string(), SCOS);
    assert!(diff.starts_with(&format!("--- desired {SCOS}\n+++ live {SCOS}\n")));
    assert!(diff.contains(&format!("-4-scos-stable {}\n", dg(0x11))));
    assert!(diff.contains(&format!("+4-scos-stable {}\n", dg(0x12))));
    assert!(diff.contains(&format!("+latest {}\n", dg(0x11))));
    assert!(diff.contains(&format!("+{OLD} {}\n", dg(0x10))));
    assert!(diff.contains(&format!(" {OCT} {}\n", dg(0x11))));
    assert!(!diff.contains(".sig"), "signature tags are not in the diff");
}

#[test]
fn markdown_escapes_pipes() {
    assert_eq!(markdown_cell("a|b\nc"), "a\\|b c");
}

fn markdown_cell(s: &str) -> String {
    super::markdown::cell_for_tests(s)
}
