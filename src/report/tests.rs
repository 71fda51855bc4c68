//! Golden tests of every format (regenerate with `UPDATE_GOLDEN=1 cargo test --lib report`)
//! and checks of the JSON contract.

use std::path::PathBuf;

use super::*;
use crate::desired::derive;
use crate::desired::testing::{Builder, dg, policy};
use crate::manifest::ImageStreamRef;
use crate::manifest::{Manifests, Order};
use crate::plan::{
    ImportFailure, ObservedImageStream, ObservedSpecTag, ObservedState, ObservedStatusTag,
    PlanOptions, drift, plan,
};

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
    check_goldens(&files);
}

/// Compares rendered output with the files under tests/golden (or rewrites them with
/// `UPDATE_GOLDEN=1`).
fn check_goldens(files: &[(&str, String)]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for (name, got) in files {
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
        signatures: vec![],
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

/// Issue 16: `drift` said `in sync` and still printed a unified diff whose only line was an
/// unclaimed tag. A tag nobody claims, kept because prune is off, is not drift: no table
/// row, no diff; it is listed apart as "not pruned".
#[test]
fn in_sync_drift_shows_unclaimed_tags_apart_as_not_pruned_without_a_diff() {
    let d = scenario_drift(&live_in_sync());
    assert!(d.in_sync());
    assert!(target_diffs(&d).is_empty(), "{:?}", target_diffs(&d));
    let text = render_drift(&d, Format::Text, PLAIN);
    assert!(text.starts_with("in sync: 8 tags as desired"), "{text}");
    assert!(
        !text.contains("--- desired") && !text.contains("+++ live"),
        "{text}"
    );
    assert!(
        !text.contains("STATE"),
        "no drift table when nothing drifts: {text}"
    );
    let (_, kept) = text
        .split_once("\nnot pruned (no channel claims these tags; deleted only with --prune or sync.prune):\n")
        .unwrap_or_else(|| panic!("a not-pruned section: {text}"));
    let rows: Vec<Vec<&str>> = kept
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["TARGET", "TAG", "ACTUAL"],
            vec![SCOS, "extra", "sha256:777777777777"],
            vec![FCOS, "extra", "sha256:777777777777"],
        ]
    );

    let md = render_drift(&d, Format::Markdown, PLAIN);
    assert!(!md.contains("```diff"), "{md}");
    assert!(!md.contains("| state |"), "{md}");
    assert!(
        md.contains(&format!("**Not pruned** (no channel claims these tags; deleted only with `--prune` or `sync.prune`):\n\n| target | tag | actual |\n|---|---|---|\n| `{SCOS}` | `extra` | `sha256:777777777777` |\n")),
        "{md}"
    );
}

/// With drift elsewhere, an unclaimed tag kept while prune is off leaves the table (it is
/// not drift) for the "not pruned" list; with prune on it is drift, in the table.
#[test]
fn unclaimed_tags_leave_the_drift_table_unless_prune_is_on() {
    let d = scenario_drift(&live());
    let text = render_drift(&d, Format::Text, PLAIN);
    let (table, kept) = text
        .split_once("\nnot pruned (")
        .expect("not pruned section");
    assert!(
        !table
            .lines()
            .any(|l| l.starts_with("extra") && l.contains(" latest ")),
        "{table}"
    );
    assert!(
        kept.lines()
            .any(|l| l.starts_with(SCOS) && l.contains(" latest ")),
        "{kept}"
    );

    let pruned = drift(
        REV,
        &derive(&manifests()).unwrap(),
        &live(),
        &PlanOptions {
            prune: true,
            ..PlanOptions::default()
        },
    );
    let text = render_drift(&pruned, Format::Text, PLAIN);
    assert!(!text.contains("not pruned"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("extra") && l.contains(" latest ")),
        "{text}"
    );
}

/// Issue 16: `check` printed `live drift: drift: 3 missing` (the word twice).
#[test]
fn check_text_names_live_drift_once() {
    use super::check::{CheckReport, LiveDrift};
    let report = CheckReport {
        base: REV.into(),
        head: REV.into(),
        invalid: vec![],
        change: None,
        verdicts: vec![],
        review: vec![],
        live: LiveDrift::Checked(scenario_drift(&live())),
        payloads: vec![],
    };
    let text = check::text(&report);
    assert!(
        text.contains("\nlive drift: 4 missing, 3 moved, 1 extra; 1 tag as desired;"),
        "{text}"
    );
    assert!(!text.contains("drift: drift"), "{text}");
    let md = check::markdown(&report);
    assert!(md.contains("##### Live drift\n\ndrift: 4 missing"), "{md}");
    let in_sync = CheckReport {
        live: LiveDrift::Checked(scenario_drift(&live_in_sync())),
        ..report
    };
    assert!(
        check::text(&in_sync).contains("\nlive drift: in sync: 8 tags as desired"),
        "{}",
        check::text(&in_sync)
    );
}

#[test]
fn markdown_escapes_pipes() {
    assert_eq!(markdown_cell("a|b\nc"), "a\\|b c");
}

fn markdown_cell(s: &str) -> String {
    super::markdown::cell_for_tests(s)
}

/// The scenario with both 4-scos channels publishing into `origin/release-scos`, the
/// registry in sync, and that ImageStream in every state: ok, missing, moved by its spec,
/// moved by its import, importing, import-failed, relsync's leftover, and a foreign tag.
fn imagestream_scenario() -> (crate::desired::DesiredState, ObservedState) {
    let m = {
        let mut m = manifests();
        let is = ImageStreamRef {
            namespace: "origin".to_string(),
            name: "release-scos".to_string(),
        };
        for c in ["4-scos-next", "4-scos-stable"] {
            m.channels.get_mut(c).unwrap().image_stream = Some(is.clone());
        }
        m.channels.get_mut("4-stable").unwrap().image_stream = Some(ImageStreamRef {
            namespace: "origin".to_string(),
            name: "okd".to_string(),
        });
        m
    };
    let desired = derive(&m).unwrap();
    let mut live = live_in_sync();
    for r in live.repos.values_mut() {
        r.tags.remove("extra");
    }
    let spec = |from: String, generation: i64, managed: bool| ObservedSpecTag {
        from,
        generation: Some(generation),
        managed_by_relsync: managed,
    };
    let status = |image: u8, generation: i64, failure: Option<&str>| ObservedStatusTag {
        image: Some(dg(image)),
        generation: Some(generation),
        import_failure: failure.map(|m| ImportFailure {
            message: m.to_string(),
            generation: Some(generation),
        }),
    };
    let pull = |n: u8| format!("{SCOS}@{}", dg(n));
    let mut is = ObservedImageStream {
        resource_version: Some("4711".to_string()),
        ..Default::default()
    };
    // OCT ok; JAN's import failed; FEB's spec points to JAN; 4-scos-next imported JAN at
    // the current generation; 4-scos-stable importing; OLD relsync's leftover; a foreign tag.
    // origin/okd (channel 4-stable) does not exist: every tag missing.
    for (tag, from, generation, managed) in [
        (OCT, pull(0x11), 1, true),
        (JAN, pull(0x12), 1, true),
        (FEB, pull(0x12), 1, true),
        ("4-scos-next", pull(0x13), 2, true),
        ("4-scos-stable", pull(0x11), 3, true),
        (OLD, pull(0x10), 1, true),
        (
            "mine-not",
            format!("quay.io/other/x@{}", dg(0x66)),
            1,
            false,
        ),
    ] {
        is.spec_tags
            .insert(tag.to_string(), spec(from, generation, managed));
    }
    for (tag, image, generation, failure) in [
        (OCT, 0x11, 1, None),
        (
            JAN,
            0x11,
            1,
            Some(
                "Internal error occurred: quay.io/okd/scos-release@sha256:1212…: manifest unknown",
            ),
        ),
        (FEB, 0x12, 1, None),
        ("4-scos-next", 0x12, 2, None),
        ("4-scos-stable", 0x12, 2, None),
        (OLD, 0x10, 1, None),
    ] {
        is.status_tags
            .insert(tag.to_string(), status(image, generation, failure));
    }
    live.image_streams = Some(
        [(
            ImageStreamRef {
                namespace: "origin".to_string(),
                name: "release-scos".to_string(),
            },
            is,
        )]
        .into_iter()
        .collect(),
    );
    (desired, live)
}

#[test]
fn imagestream_golden_files() {
    let (desired, live) = imagestream_scenario();
    let p = plan(
        REV,
        &desired,
        &live,
        &policy(&[r"^\d+\.\d+\.\d+"], None),
        &PlanOptions::default(),
    );
    let d = drift(REV, &desired, &live, &PlanOptions::default());
    assert!(!d.in_sync());
    // The registry is in sync: only ImageStream actions, each target's in order.
    assert!(
        p.actions
            .iter()
            .all(|a| a.target.to_string().starts_with("imagestream:origin/"))
    );
    let text = render_drift(&d, Format::Text, PLAIN);
    assert!(text.contains("manifest unknown"), "{text}");
    assert!(text.contains("--- desired imagestream:origin/release-scos\n"));
    check_goldens(&[
        ("plan-imagestream.txt", render_plan(&p, Format::Text, PLAIN)),
        (
            "plan-imagestream.json",
            render_plan(&p, Format::Json, PLAIN),
        ),
        (
            "plan-imagestream.md",
            render_plan(&p, Format::Markdown, PLAIN),
        ),
        ("drift-imagestream.txt", text),
        (
            "drift-imagestream.json",
            render_drift(&d, Format::Json, PLAIN),
        ),
        (
            "drift-imagestream.md",
            render_drift(&d, Format::Markdown, PLAIN),
        ),
    ]);
}
