use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::plan::Refusal;
use crate::registry::memory::{Mem, State, seed_index};

const SRC: &str = "src/rel";
const DST: &str = "dst/rel";

fn opener(reg: &Arc<Mutex<State>>) -> impl Fn(&str) -> Result<Mem, RegistryError> + Sync {
    let reg = reg.clone();
    move |name: &str| Ok(Mem::new(&reg, Some(name.split('/').next().unwrap()), name))
}

fn options() -> ApplyOptions {
    ApplyOptions {
        retry: RetryPolicy {
            tries: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            max_retry_after: Duration::from_millis(2),
        },
        ..ApplyOptions::default()
    }
}

fn action(kind: ActionKind, tag: &str, from: Option<&Digest>, to: Option<&Digest>) -> Action {
    Action {
        action: kind,
        target: Target::Repo(DST.to_string()),
        tag: tag.to_string(),
        from: from.cloned(),
        to: to.cloned(),
        from_version: None,
        to_version: None,
        copy: kind == ActionKind::Mirror,
        channels: vec!["c".to_string()],
        reason: String::new(),
        source: (kind == ActionKind::Mirror).then(|| SRC.to_string()),
        components: None,
        release: None,
    }
}

fn plan(actions: Vec<Action>) -> Plan {
    Plan {
        revision: "abc".to_string(),
        actions,
        conflicts: Vec::new(),
        refusal: None,
        signatures: Vec::new(),
    }
}

fn writes(reg: &Arc<Mutex<State>>) -> Vec<String> {
    reg.lock().unwrap().writes.clone()
}

/// A source with releases r1..rN (sharing one layer), a target holding r1 under `1.0`,
/// `stable` and `old`.
fn setup(n: usize) -> (Arc<Mutex<State>>, Mem, Mem, Vec<Digest>) {
    let reg = Mem::registry();
    let src = Mem::new(&reg, Some("src"), SRC);
    let dst = Mem::new(&reg, Some("dst"), DST);
    let releases: Vec<Digest> = (1..=n)
        .map(|i| seed_index(&src, &format!("r{i}"), b"shared", None).0)
        .collect();
    let seeding = Arc::new(Mirror::new(2, options().retry));
    crate::registry::memory::block(async {
        seeding
            .copy_image(&src, &dst, &releases[0], "seed")
            .await
            .unwrap();
    });
    let raw = dst.manifest_bytes(&releases[0]).unwrap();
    for t in ["1.0", "stable", "old"] {
        dst.seed_manifest(crate::registry::memory::OCI_INDEX, &raw, Some(t));
    }
    reg.lock().unwrap().writes.clear();
    (reg, src, dst, releases)
}

#[test]
fn mirrors_then_tags_moves_and_deletes() {
    let (reg, _src, dst, r) = setup(2);
    let p = plan(vec![
        action(ActionKind::Mirror, "2.0", None, Some(&r[1])),
        action(ActionKind::Tag, "1.0-alias", None, Some(&r[0])),
        action(ActionKind::Retag, "stable", Some(&r[0]), Some(&r[1])),
        action(ActionKind::Delete, "old", Some(&r[0]), None),
    ]);
    let open = opener(&reg);
    let report = crate::registry::memory::block(apply_with(&p, &open, 4, &options()));
    assert!(report.succeeded(), "{:?}", report.problems());
    assert_eq!(dst.tag("2.0"), Some(r[1].clone()));
    assert_eq!(dst.tag("1.0-alias"), Some(r[0].clone()));
    assert_eq!(dst.tag("stable"), Some(r[1].clone()));
    assert_eq!(dst.tag("old"), None);
    assert_eq!(dst.tag("1.0"), Some(r[0].clone()));
    let w = writes(&reg);
    let pos = |s: &str| {
        w.iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("{s} in {w:?}"))
    };
    // The index is written once, under its tag (no PUT by digest first), after every
    // blob and child manifest.
    let last_content = w
        .iter()
        .rposition(|x| x.starts_with("blob ") || x.starts_with(&format!("manifest {DST} sha256:")))
        .unwrap();
    assert!(!w.contains(&format!("manifest {DST} {}", r[1])), "{w:?}");
    assert!(pos(&format!("manifest {DST} 2.0")) > last_content, "{w:?}");
    assert!(
        pos(&format!("manifest {DST} stable")) > last_content,
        "{w:?}"
    );
    assert!(pos(&format!("delete-tag {DST} old")) > pos(&format!("manifest {DST} stable")));
    assert_eq!(
        (
            report.tags_created(),
            report.tags_moved(),
            report.tags_deleted()
        ),
        (2, 1, 1)
    );
    // Only r2's own blobs travel: its shared layer is in the target already.
    assert_eq!(report.stats.images, 1);
    assert_eq!(report.stats.blobs_copied, 4);
    assert_eq!(report.stats.blobs_skipped, 1);
    let summary = report.summary();
    assert!(
        summary.contains("1 image mirrored (4 blobs")
            && summary.contains("tags: 2 created, 1 moved, 1 deleted; 0 failed, 0 conflicts"),
        "{summary}"
    );
}

#[test]
fn a_write_guard_saying_no_stops_every_name_write_but_content_may_land() {
    let (reg, _src, dst, r) = setup(2);
    let p = plan(vec![
        action(ActionKind::Mirror, "2.0", None, Some(&r[1])),
        action(ActionKind::Retag, "stable", Some(&r[0]), Some(&r[1])),
        action(ActionKind::Delete, "old", Some(&r[0]), None),
    ]);
    let open = opener(&reg);
    let options = ApplyOptions {
        may_write: Some(WriteGuard::new(|| false)),
        ..options()
    };
    let report = crate::registry::memory::block(apply_with(&p, &open, 4, &options));
    assert_eq!(report.failed(), 3, "{:?}", report.problems());
    assert!(
        report
            .results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Failed(ApplyError::Stopped)))
    );
    assert_eq!(dst.tag("2.0"), None);
    assert_eq!(dst.tag("stable"), Some(r[0].clone()));
    assert_eq!(dst.tag("old"), Some(r[0].clone()));
    assert!(
        !writes(&reg)
            .iter()
            .any(|w| w.starts_with("delete") || w.ends_with(" 2.0") || w.ends_with(" stable")),
        "{:?}",
        writes(&reg)
    );
}

#[test]
fn a_tag_changed_since_the_plan_is_a_conflict_and_the_rest_proceeds() {
    let (reg, src, dst, r) = setup(3);
    let _ = src;
    // Someone moved `stable` to r3 after the plan saw r1.
    let raw = {
        let m = Arc::new(Mirror::new(2, options().retry));
        crate::registry::memory::block(m.copy_image(&src, &dst, &r[2], "x")).unwrap()
    };
    dst.seed_manifest(&raw.media_type, &raw.bytes, Some("stable"));
    // ... and created `new` before relsync could.
    dst.seed_manifest(&raw.media_type, &raw.bytes, Some("new"));
    reg.lock().unwrap().writes.clear();
    let p = plan(vec![
        action(ActionKind::Mirror, "2.0", None, Some(&r[1])),
        action(ActionKind::Mirror, "new", None, Some(&r[1])),
        action(ActionKind::Retag, "stable", Some(&r[0]), Some(&r[1])),
        action(ActionKind::Delete, "1.0", Some(&r[1]), None),
    ]);
    let open = opener(&reg);
    let report = crate::registry::memory::block(apply_with(&p, &open, 4, &options()));
    assert!(!report.succeeded());
    assert_eq!(report.conflicts(), 3, "{:?}", report.problems());
    assert_eq!(dst.tag("stable"), Some(r[2].clone()), "left alone");
    assert_eq!(dst.tag("new"), Some(r[2].clone()), "left alone");
    assert_eq!(
        dst.tag("1.0"),
        Some(r[0].clone()),
        "not deleted: it holds r1, not r2"
    );
    assert_eq!(dst.tag("2.0"), Some(r[1].clone()), "the rest proceeds");
    let problems = report.problems();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("conflict: dst/rel tag stable: changed since the plan")),
        "{problems:?}"
    );
    assert!(
        !writes(&reg)
            .iter()
            .any(|w| w.ends_with(" stable") || w.ends_with(" new"))
    );
}

#[test]
fn a_failing_release_does_not_stop_the_others() {
    let (reg, src, dst, r) = setup(3);
    // r2's own amd64 layer never comes.
    let blobs_r2 = {
        let st = reg.lock().unwrap();
        let r1_blobs: Vec<Digest> = st.repos[DST].blobs.keys().cloned().collect();
        st.repos[SRC]
            .blobs
            .keys()
            .filter(|b| !r1_blobs.contains(b))
            .cloned()
            .collect::<Vec<_>>()
    };
    let _ = &src;
    let bad = blobs_r2
        .iter()
        .find(|b| {
            let st = reg.lock().unwrap();
            let bytes = &st.repos[SRC].blobs[*b];
            bytes.as_ref() == b"r2 amd64 layer"
        })
        .unwrap()
        .clone();
    reg.lock().unwrap().failing_opens.insert(bad.clone(), 1000);
    let p = plan(vec![
        action(ActionKind::Mirror, "2.0", None, Some(&r[1])),
        action(ActionKind::Mirror, "3.0", None, Some(&r[2])),
        action(ActionKind::Retag, "stable", Some(&r[0]), Some(&r[1])),
    ]);
    let open = opener(&reg);
    let report = crate::registry::memory::block(apply_with(&p, &open, 4, &options()));
    assert_eq!(report.failed(), 2);
    assert_eq!(dst.tag("3.0"), Some(r[2].clone()));
    assert_eq!(dst.tag("2.0"), None, "no tag on incomplete content");
    assert!(!dst.has(&r[1]));
    assert_eq!(dst.tag("stable"), Some(r[0].clone()));
    let problems = report.problems();
    let p2 = problems.iter().find(|p| p.contains(" 2.0")).unwrap();
    assert!(
        p2.contains("dst/rel:2.0")
            && p2.contains(bad.as_str())
            && p2.contains("after 3 tries")
            && p2.contains("503"),
        "{p2}"
    );
    assert_eq!(
        reg.lock().unwrap().opens[&bad],
        3,
        "one transfer for both actions"
    );
    assert!(
        report.summary().contains("2 failed"),
        "{}",
        report.summary()
    );
}

#[test]
fn deletes_by_digest_only_when_nothing_else_holds_it() {
    let (reg, src, dst, r) = setup(4);
    reg.lock().unwrap().no_tag_delete = true;
    reg.lock().unwrap().delete_by_digest = true;
    let m = Arc::new(Mirror::new(2, options().retry));
    let mut raws = Vec::new();
    for d in &r[1..] {
        raws.push(crate::registry::memory::block(m.copy_image(&src, &dst, d, "x")).unwrap());
    }
    // r2: `b` and `c`, both deleted by the plan. r3: `d` (deleted) and `keep`. r4: `e`
    // (deleted) while the plan writes `f` on r4.
    for (raw, tag) in [(0, "b"), (0, "c"), (1, "d"), (1, "keep"), (2, "e")] {
        dst.seed_manifest(&raws[raw].media_type, &raws[raw].bytes, Some(tag));
    }
    reg.lock().unwrap().writes.clear();
    let p = plan(vec![
        action(ActionKind::Tag, "f", None, Some(&r[3])),
        action(ActionKind::Delete, "b", Some(&r[1]), None),
        action(ActionKind::Delete, "c", Some(&r[1]), None),
        action(ActionKind::Delete, "d", Some(&r[2]), None),
        action(ActionKind::Delete, "e", Some(&r[3]), None),
        action(ActionKind::Delete, "old", Some(&r[0]), None),
    ]);
    let open = opener(&reg);
    let report = crate::registry::memory::block(apply_with(&p, &open, 4, &options()));
    let outcome = |tag: &str| {
        &report
            .results
            .iter()
            .find(|x| x.action.tag == tag)
            .unwrap()
            .outcome
    };
    assert!(matches!(outcome("b"), Outcome::Done));
    assert!(matches!(outcome("c"), Outcome::Done));
    assert!(matches!(outcome("f"), Outcome::Done));
    assert!(
        matches!(outcome("d"), Outcome::Left { reason } if reason.contains("also remove tag keep")),
        "{:?}",
        outcome("d")
    );
    assert!(
        matches!(outcome("e"), Outcome::Left { reason } if reason.contains("tag f, which Git wants")),
        "{:?}",
        outcome("e")
    );
    // `old` shares r1 with `1.0` and `stable`, which the plan keeps.
    assert!(
        matches!(outcome("old"), Outcome::Left { reason } if reason.contains("1.0, stable")),
        "{:?}",
        outcome("old")
    );
    assert_eq!(dst.tag("d"), Some(r[2].clone()));
    assert_eq!(dst.tag("keep"), Some(r[2].clone()));
    assert_eq!(dst.tag("e"), Some(r[3].clone()));
    assert_eq!(dst.tag("b"), None);
    let w = writes(&reg);
    assert_eq!(
        w.iter()
            .filter(|x| x.starts_with("delete-manifest"))
            .count(),
        1,
        "{w:?}"
    );
    assert_eq!(report.left(), 3);
    assert!(!report.succeeded());
    assert!(
        report.summary().ends_with(", 3 not deleted"),
        "{}",
        report.summary()
    );
}

#[test]
fn human_bytes_in_binary_units() {
    assert_eq!(human_bytes(0), "0 B");
    assert_eq!(human_bytes(1023), "1023 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(38 * 1024 * 1024 + 100 * 1024), "38.1 MiB");
    assert_eq!(human_bytes(3 << 30), "3.0 GiB");
}

#[test]
fn a_refused_plan_writes_nothing() {
    let (reg, _src, _dst, r) = setup(2);
    let mut p = plan(vec![
        action(ActionKind::Mirror, "2.0", None, Some(&r[1])),
        action(ActionKind::Delete, "old", Some(&r[0]), None),
    ]);
    p.refusal = Some(Refusal::DeleteCap { deletes: 1, max: 0 });
    let open = opener(&reg);
    let report = crate::registry::memory::block(apply_with(&p, &open, 4, &options()));
    assert!(!report.succeeded());
    assert!(report.results.is_empty());
    assert!(writes(&reg).is_empty());
    assert!(report.summary().starts_with("nothing synced: plan refused"));
}

#[test]
fn a_move_onto_missing_content_copies_it_first_and_a_done_tag_is_not_rewritten() {
    let (reg, src, dst, r) = setup(3);
    let mut options = options();
    options.sources.insert(
        DST.to_string(),
        [(r[1].clone(), SRC.to_string())].into_iter().collect(),
    );
    // `1.0` already holds r1: a mirror of it is a no-op (someone did it).
    let p = plan(vec![
        action(ActionKind::Mirror, "1.0", None, Some(&r[0])),
        action(ActionKind::Rollback, "stable", Some(&r[0]), Some(&r[1])),
        action(ActionKind::Retag, "old", Some(&r[0]), Some(&r[2])),
    ]);
    let open = opener(&reg);
    let report = crate::registry::memory::block(apply_with(&p, &open, 4, &options));
    let _ = &src;
    assert!(matches!(report.results[0].outcome, Outcome::Unchanged));
    assert!(matches!(report.results[1].outcome, Outcome::Done));
    assert!(
        matches!(
            &report.results[2].outcome,
            Outcome::Failed(ApplyError::NoSource { .. })
        ),
        "{:?}",
        report.results[2].outcome
    );
    assert_eq!(dst.tag("stable"), Some(r[1].clone()));
    assert_eq!(dst.tag("old"), Some(r[0].clone()));
    assert!(!writes(&reg).iter().any(|w| w.ends_with(" 1.0")));
    assert_eq!(dst.manifest_bytes(&r[1]), src.manifest_bytes(&r[1]));
}

/// Two apply runs (separate threads and runtimes, as two relsync processes) with
/// different plans race on one `oci:` layout tag: the compare-and-swap is made under
/// the layout's lock, so exactly one wins and the other reports a conflict naming the
/// winner's digest; no write is lost or made blind.
#[test]
fn two_runs_racing_on_one_layout_tag_never_overwrite_each_other() {
    use crate::registry::{ContentStore, LayoutRepository, Repository, TargetReader};
    for round in 0..6 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("layout");
        let reg = Mem::registry();
        let src = Mem::new(&reg, Some("src"), SRC);
        let r: Vec<Digest> = (1..=3)
            .map(|i| seed_index(&src, &format!("r{i}"), b"shared", None).0)
            .collect();
        let layout = Repository::Layout(LayoutRepository::new("oci:layout", dir.clone()));
        crate::registry::memory::block(async {
            let m = Arc::new(Mirror::new(2, options().retry));
            for d in &r {
                let raw = m.copy_image(&src, &layout, d, "seed").await.unwrap();
                if *d == r[0] {
                    for t in ["stable", "old"] {
                        layout.put_manifest(t, &raw).await.unwrap();
                    }
                }
            }
        });
        let on_layout = |mut a: Action| {
            a.target = Target::Repo("oci:layout".to_string());
            a
        };
        // Run A moves `stable` to r2 and deletes `old`; run B moves both to r3.
        let plans = [
            plan(vec![
                on_layout(action(
                    ActionKind::Retag,
                    "stable",
                    Some(&r[0]),
                    Some(&r[1]),
                )),
                on_layout(action(ActionKind::Delete, "old", Some(&r[0]), None)),
            ]),
            plan(vec![
                on_layout(action(
                    ActionKind::Retag,
                    "stable",
                    Some(&r[0]),
                    Some(&r[2]),
                )),
                on_layout(action(ActionKind::Retag, "old", Some(&r[0]), Some(&r[2]))),
            ]),
        ];
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let runs: Vec<_> = plans
            .into_iter()
            .map(|p| {
                let (dir, barrier) = (dir.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let open = move |name: &str| {
                        Ok(Repository::Layout(LayoutRepository::new(name, dir.clone())))
                    };
                    barrier.wait();
                    let report =
                        crate::registry::memory::block(apply_with(&p, &open, 2, &options()));
                    report
                        .results
                        .into_iter()
                        .map(|x| (x.action.tag, x.outcome))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let outcomes: Vec<Vec<(String, Outcome)>> =
            runs.into_iter().map(|t| t.join().unwrap()).collect();
        let reader = LayoutRepository::new("oci:layout", dir.clone());
        let live = |tag: &str| crate::registry::memory::block(reader.resolve_tag(tag)).unwrap();
        for (tag, wants) in [
            ("stable", [Some(r[1].clone()), Some(r[2].clone())]),
            ("old", [None, Some(r[2].clone())]),
        ] {
            let of = |run: usize| {
                &outcomes[run]
                    .iter()
                    .find(|(t, _)| t == tag)
                    .unwrap_or_else(|| panic!("{tag} in {outcomes:?}"))
                    .1
            };
            let now = live(tag);
            let winner = match (of(0), of(1)) {
                (Outcome::Done, Outcome::Conflict { expected, actual }) => {
                    assert_eq!(expected.as_ref(), Some(&r[0]));
                    assert_eq!(*actual, wants[0], "round {round}: {tag}");
                    0
                }
                (Outcome::Conflict { expected, actual }, Outcome::Done) => {
                    assert_eq!(expected.as_ref(), Some(&r[0]));
                    assert_eq!(*actual, wants[1], "round {round}: {tag}");
                    1
                }
                other => panic!("round {round}: {tag}: one run must win: {other:?}"),
            };
            assert_eq!(
                now, wants[winner],
                "round {round}: {tag}: the winner's write stands"
            );
        }
    }
}
