//! Table-driven tests of the planner and of drift.

use super::*;
use crate::desired::derive;
use crate::desired::testing::{Builder, dg, policy};
use crate::manifest::ImageStreamRef;
use crate::manifest::{Manifests, Order, Policy};
use crate::tag::is_signature_tag;

const A: &str = "quay.io/okd/a";
const B: &str = "quay.io/okd/b";

/// Live tags of one repository: (tag, digest number; 0 = listed, not resolved), and digests
/// checked present without a tag.
type Live = (&'static str, &'static [(&'static str, u8)], &'static [u8]);

fn observed(live: &[Live]) -> ObservedState {
    let mut o = ObservedState::default();
    for (repo, tags, present) in live {
        let r = o.repos.entry(repo.to_string()).or_default();
        for (tag, n) in *tags {
            r.tags.insert(tag.to_string(), (*n != 0).then(|| dg(*n)));
        }
        for n in *present {
            r.manifests.insert(dg(*n), true);
        }
    }
    o
}

/// `dg(n)` as its two-hex-digit number, `-` for none.
fn short(d: &Option<Digest>) -> String {
    d.as_ref()
        .map(|d| d.hex()[..2].to_string())
        .unwrap_or_else(|| "-".to_string())
}

/// One line per action, conflict and refusal, in plan order.
fn lines(p: &Plan) -> Vec<String> {
    let mut out: Vec<String> = p
        .actions
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {}>{} {}>{} copy={} [{}] {}",
                a.action,
                a.target,
                a.tag,
                short(&a.from),
                short(&a.to),
                a.from_version.as_deref().unwrap_or("-"),
                a.to_version.as_deref().unwrap_or("-"),
                a.copy,
                a.channels.join(","),
                a.reason
            )
        })
        .collect();
    out.extend(p.conflicts.iter().map(|c| {
        format!(
            "conflict {} {} {}>{} {}",
            c.target,
            c.tag,
            short(&Some(c.actual.clone())),
            short(&Some(c.desired.clone())),
            c.reason
        )
    }));
    out.extend(p.refusal.iter().map(|r| r.to_string()));
    out
}

/// The main scenario: stream `s` in A with 1.0.0..1.3.0 (digests 1..4); channel `next`
/// lists 1.0.0, 1.1.0, 1.2.0 (floating `next`) and tombstones 0.9.0 (digest 9 in stream);
/// channel `stable` lists 1.0.0 (floating `stable`).
fn scenario() -> Manifests {
    scenario_builder().build()
}

/// The builder of [`scenario`], for variants.
fn scenario_builder() -> Builder {
    Builder::new()
        .stream(
            "s",
            A,
            Order::Semver,
            &[
                ("0.9.0", dg(9)),
                ("1.0.0", dg(1)),
                ("1.1.0", dg(2)),
                ("1.2.0", dg(3)),
                ("1.3.0", dg(4)),
            ],
        )
        .channel(
            "next",
            "s",
            &["next"],
            &["1.0.0", "1.1.0", "1.2.0"],
            &["0.9.0"],
        )
        .channel("stable", "s", &["stable"], &["1.0.0"], &[])
}

struct Case {
    name: &'static str,
    manifests: fn() -> Manifests,
    live: &'static [Live],
    policy: Policy,
    options: PlanOptions,
    want: &'static [&'static str],
    exit: i32,
}

fn opts(prune: bool, allow_deletes: Option<u32>, channel: Option<&str>) -> PlanOptions {
    PlanOptions {
        prune,
        allow_deletes,
        channel: channel.map(str::to_string),
    }
}

#[test]
fn plan_table() {
    let cases = vec![
        Case {
            name: "every action kind (prune off: extras untouched)",
            manifests: scenario,
            // 1.0.0 ok; 1.1.0 missing but content present; 1.2.0 missing; next behind;
            // stable moved to a newer version; 0.9.0 tombstoned; junk unclaimed.
            live: &[(
                A,
                &[
                    ("1.0.0", 1),
                    ("next", 2),
                    ("stable", 4),
                    ("0.9.0", 9),
                    ("junk", 7),
                ],
                &[2],
            )],
            policy: Policy::default(),
            options: opts(false, None, None),
            want: &[
                "tag quay.io/okd/a 1.1.0 ->02 ->1.1.0 copy=false [next] tag missing; content already in target",
                "mirror quay.io/okd/a 1.2.0 ->03 ->1.2.0 copy=true [next] tag missing; content not in target",
                "retag quay.io/okd/a next 02>03 1.1.0>1.2.0 copy=false [next] floating tag next behind: 1.2.0 is newest",
                "rollback quay.io/okd/a stable 04>01 1.3.0>1.0.0 copy=false [stable] floating tag stable ahead: 1.0.0 is newest",
                "delete quay.io/okd/a 0.9.0 09>- 0.9.0>- copy=false [next] tombstoned in next",
            ],
            exit: 2,
        },
        Case {
            name: "in sync",
            manifests: scenario,
            live: &[(
                A,
                &[
                    ("1.0.0", 1),
                    ("1.1.0", 2),
                    ("1.2.0", 3),
                    ("next", 3),
                    ("stable", 1),
                ],
                &[],
            )],
            policy: Policy::default(),
            options: opts(false, None, None),
            want: &[],
            exit: 0,
        },
        Case {
            name: "missing repository: everything mirrored, even shared content",
            manifests: scenario,
            live: &[],
            policy: Policy::default(),
            options: opts(true, None, None),
            want: &[
                "mirror quay.io/okd/a 1.0.0 ->01 ->1.0.0 copy=true [next,stable] tag missing; content not in target",
                "mirror quay.io/okd/a 1.1.0 ->02 ->1.1.0 copy=true [next] tag missing; content not in target",
                "mirror quay.io/okd/a 1.2.0 ->03 ->1.2.0 copy=true [next] tag missing; content not in target",
                "mirror quay.io/okd/a next ->03 ->1.2.0 copy=true [next] tag missing; content not in target",
                "mirror quay.io/okd/a stable ->01 ->1.0.0 copy=true [stable] tag missing; content not in target",
            ],
            exit: 2,
        },
        Case {
            name: "content held by another tag is tagged, not copied",
            manifests: scenario,
            live: &[(
                A,
                &[("1.0.0", 1), ("1.1.0", 2), ("1.2.0", 3), ("next", 3)],
                &[],
            )],
            policy: Policy::default(),
            options: opts(false, None, None),
            want: &[
                "tag quay.io/okd/a stable ->01 ->1.0.0 copy=false [stable] tag missing; content already in target",
            ],
            exit: 2,
        },
        Case {
            name: "retag off a digest git does not know; version tags move too when mutable",
            manifests: scenario,
            live: &[(
                A,
                &[
                    ("1.0.0", 1),
                    ("1.1.0", 3),
                    ("1.2.0", 2),
                    ("next", 0x77),
                    ("stable", 1),
                ],
                &[],
            )],
            policy: Policy::default(),
            options: opts(false, None, None),
            want: &[
                "rollback quay.io/okd/a 1.1.0 03>02 1.2.0>1.1.0 copy=false [next] holds newer 1.2.0; Git pins 1.1.0",
                "retag quay.io/okd/a 1.2.0 02>03 1.1.0>1.2.0 copy=false [next] holds older 1.1.0; Git pins 1.2.0",
                "retag quay.io/okd/a next 77>03 ->1.2.0 copy=false [next] moved off a digest Git does not know",
            ],
            exit: 2,
        },
        Case {
            name: "immutable tag moved: a conflict, never an action; floating tags still move",
            manifests: scenario,
            live: &[(
                A,
                &[
                    ("1.0.0", 2),
                    ("1.1.0", 0x77),
                    ("1.2.0", 3),
                    ("next", 1),
                    ("stable", 1),
                ],
                &[],
            )],
            policy: policy(&[r"^\d+\.\d+\.\d+"], None),
            options: opts(false, None, None),
            want: &[
                "retag quay.io/okd/a next 01>03 1.0.0>1.2.0 copy=false [next] floating tag next behind: 1.2.0 is newest",
                "conflict quay.io/okd/a 1.0.0 02>01 immutable tag holds 1.1.0 instead of 1.0.0; relsync never moves it (policy immutableTags)",
                "conflict quay.io/okd/a 1.1.0 77>02 immutable tag holds a digest Git does not know instead of 1.1.0; relsync never moves it (policy immutableTags)",
            ],
            exit: 1,
        },
        Case {
            name: "tombstoned immutable version tags are still deleted (a delete is not a move)",
            manifests: scenario,
            live: &[(
                A,
                &[
                    ("0.9.0", 9),
                    ("1.0.0", 1),
                    ("1.1.0", 2),
                    ("1.2.0", 3),
                    ("next", 3),
                    ("stable", 1),
                ],
                &[],
            )],
            policy: policy(&[r"^\d+\.\d+\.\d+"], None),
            options: opts(false, None, None),
            want: &["delete quay.io/okd/a 0.9.0 09>- 0.9.0>- copy=false [next] tombstoned in next"],
            exit: 2,
        },
        Case {
            name: "prune on: unclaimed tags deleted, signature tags and non-tag names never extra",
            manifests: scenario,
            live: &[(
                A,
                &[
                    ("1.0.0", 1),
                    ("1.1.0", 2),
                    ("1.2.0", 3),
                    ("next", 3),
                    ("stable", 1),
                    ("junk", 4),
                    ("old", 0x77),
                    // An oci layout's index.json may name images `host/repo:tag`.
                    ("quay.io/foo/bar:1.0", 6),
                    (
                        "sha256-0303030303030303030303030303030303030303030303030303030303030303.sig",
                        5,
                    ),
                    (
                        "sha256-0303030303030303030303030303030303030303030303030303030303030303.att",
                        5,
                    ),
                ],
                &[],
            )],
            policy: Policy::default(),
            options: opts(true, None, None),
            want: &[
                "delete quay.io/okd/a junk 04>- 1.3.0>- copy=false [] not claimed by any channel (prune)",
                "delete quay.io/okd/a old 77>- ->- copy=false [] not claimed by any channel (prune)",
            ],
            exit: 2,
        },
        Case {
            name: "prune off: unclaimed tags are not in the plan",
            manifests: scenario,
            live: &[(
                A,
                &[
                    ("1.0.0", 1),
                    ("1.1.0", 2),
                    ("1.2.0", 3),
                    ("next", 3),
                    ("stable", 1),
                    ("junk", 4),
                ],
                &[],
            )],
            policy: Policy::default(),
            options: opts(false, None, None),
            want: &[],
            exit: 0,
        },
        Case {
            name: "delete cap: over maxDeletesPerSync the plan is refused but still lists its actions",
            manifests: scenario,
            live: &[(
                A,
                &[
                    ("0.9.0", 9),
                    ("1.0.0", 1),
                    ("1.1.0", 2),
                    ("1.2.0", 3),
                    ("next", 3),
                    ("stable", 1),
                    ("junk", 4),
                ],
                &[],
            )],
            policy: policy(&[], Some(1)),
            options: opts(true, None, None),
            want: &[
                "delete quay.io/okd/a 0.9.0 09>- 0.9.0>- copy=false [next] tombstoned in next",
                "delete quay.io/okd/a junk 04>- 1.3.0>- copy=false [] not claimed by any channel (prune)",
                "plan refused: it deletes 2 tags and maxDeletesPerSync allows 1 (run with --allow-deletes 2 to accept)",
            ],
            exit: 1,
        },
        Case {
            name: "delete cap: --allow-deletes accepts more than the policy",
            manifests: scenario,
            live: &[(
                A,
                &[
                    ("0.9.0", 9),
                    ("1.0.0", 1),
                    ("1.1.0", 2),
                    ("1.2.0", 3),
                    ("next", 3),
                    ("stable", 1),
                    ("junk", 4),
                ],
                &[],
            )],
            policy: policy(&[], Some(1)),
            options: opts(true, Some(2), None),
            want: &[
                "delete quay.io/okd/a 0.9.0 09>- 0.9.0>- copy=false [next] tombstoned in next",
                "delete quay.io/okd/a junk 04>- 1.3.0>- copy=false [] not claimed by any channel (prune)",
            ],
            exit: 2,
        },
        Case {
            name: "delete cap: --allow-deletes also lowers the cap (it replaces the policy)",
            manifests: scenario,
            live: &[(
                A,
                &[
                    ("0.9.0", 9),
                    ("1.0.0", 1),
                    ("1.1.0", 2),
                    ("1.2.0", 3),
                    ("next", 3),
                    ("stable", 1),
                ],
                &[],
            )],
            policy: policy(&[], Some(5)),
            options: opts(false, Some(0), None),
            want: &[
                "delete quay.io/okd/a 0.9.0 09>- 0.9.0>- copy=false [next] tombstoned in next",
                "plan refused: it deletes 1 tags and maxDeletesPerSync allows 0 (run with --allow-deletes 1 to accept)",
            ],
            exit: 1,
        },
        Case {
            name: "--channel stable: its tags only (shared 1.0.0 included); cap judged on the whole plan",
            manifests: scenario,
            live: &[(A, &[("0.9.0", 9), ("1.0.0", 0x77), ("junk", 4)], &[])],
            policy: policy(&[], Some(1)),
            options: opts(true, None, Some("stable")),
            want: &[
                "mirror quay.io/okd/a stable ->01 ->1.0.0 copy=true [stable] tag missing; content not in target",
                "retag quay.io/okd/a 1.0.0 77>01 ->1.0.0 copy=false [next,stable] moved off a digest Git does not know",
                "plan refused: it deletes 2 tags and maxDeletesPerSync allows 1 (run with --allow-deletes 2 to accept)",
            ],
            exit: 1,
        },
        Case {
            name: "--channel next: its tombstones are its deletes; unclaimed extras are nobody's",
            manifests: scenario,
            live: &[(
                A,
                &[
                    ("0.9.0", 9),
                    ("1.0.0", 1),
                    ("1.1.0", 2),
                    ("1.2.0", 3),
                    ("next", 3),
                    ("junk", 4),
                ],
                &[],
            )],
            policy: Policy::default(),
            options: opts(true, None, Some("next")),
            want: &["delete quay.io/okd/a 0.9.0 09>- 0.9.0>- copy=false [next] tombstoned in next"],
            exit: 2,
        },
        Case {
            name: "--channel with an unknown name keeps nothing",
            manifests: scenario,
            live: &[],
            policy: Policy::default(),
            options: opts(false, None, Some("nope")),
            want: &[],
            exit: 0,
        },
        Case {
            name: "a tombstoned version still listed by another channel stays",
            manifests: || {
                Builder::new()
                    .stream("s", A, Order::Semver, &[("1.0.0", dg(1)), ("1.1.0", dg(2))])
                    .channel("next", "s", &[], &["1.1.0"], &["1.0.0"])
                    .channel("stable", "s", &[], &["1.0.0"], &[])
                    .build()
            },
            live: &[(A, &[("1.0.0", 1), ("1.1.0", 2)], &[])],
            policy: Policy::default(),
            options: opts(true, None, None),
            want: &[],
            exit: 0,
        },
        Case {
            name: "listed order: retag to a later-listed version, rollback to an earlier one",
            manifests: || {
                Builder::new()
                    .stream(
                        "s",
                        A,
                        Order::Listed,
                        &[
                            ("4.15.0-okd-scos.ec.1", dg(1)),
                            ("4.15.0-okd-scos.0", dg(2)),
                            ("4.15.0-okd-scos.1", dg(3)),
                        ],
                    )
                    .channel(
                        "next",
                        "s",
                        &["next"],
                        &["4.15.0-okd-scos.ec.1", "4.15.0-okd-scos.0"],
                        &[],
                    )
                    .channel("stable", "s", &["stable"], &["4.15.0-okd-scos.ec.1"], &[])
                    .build()
            },
            live: &[(
                A,
                &[
                    ("4.15.0-okd-scos.ec.1", 1),
                    ("4.15.0-okd-scos.0", 2),
                    ("next", 1),
                    ("stable", 3),
                ],
                &[],
            )],
            policy: Policy::default(),
            options: opts(false, None, None),
            want: &[
                "retag quay.io/okd/a next 01>02 4.15.0-okd-scos.ec.1>4.15.0-okd-scos.0 copy=false [next] floating tag next behind: 4.15.0-okd-scos.0 is newest",
                "rollback quay.io/okd/a stable 03>01 4.15.0-okd-scos.1>4.15.0-okd-scos.ec.1 copy=false [stable] floating tag stable ahead: 4.15.0-okd-scos.ec.1 is newest",
            ],
            exit: 2,
        },
        Case {
            name: "semver order: the same versions compare the other way",
            manifests: || {
                Builder::new()
                    .stream(
                        "s",
                        A,
                        Order::Semver,
                        &[
                            ("4.15.0-okd-scos.ec.1", dg(1)),
                            ("4.15.0-okd-scos.0", dg(2)),
                        ],
                    )
                    .channel("next", "s", &["next"], &["4.15.0-okd-scos.0"], &[])
                    .build()
            },
            live: &[(A, &[("4.15.0-okd-scos.0", 2), ("next", 1)], &[])],
            policy: Policy::default(),
            options: opts(false, None, None),
            want: &[
                "rollback quay.io/okd/a next 01>02 4.15.0-okd-scos.ec.1>4.15.0-okd-scos.0 copy=false [next] floating tag next ahead: 4.15.0-okd-scos.0 is newest",
            ],
            exit: 2,
        },
        Case {
            name: "equal precedence (build metadata) is a retag; + is written _",
            manifests: || {
                Builder::new()
                    .stream(
                        "s",
                        A,
                        Order::Semver,
                        &[("4.2.14", dg(1)), ("4.2.14+amd64", dg(2))],
                    )
                    .channel("c", "s", &["latest"], &["4.2.14+amd64"], &[])
                    .build()
            },
            live: &[(A, &[("latest", 1)], &[])],
            policy: Policy::default(),
            options: opts(false, None, None),
            want: &[
                "mirror quay.io/okd/a 4.2.14_amd64 ->02 ->4.2.14+amd64 copy=true [c] tag missing; content not in target",
                "retag quay.io/okd/a latest 01>02 4.2.14>4.2.14+amd64 copy=false [c] holds 4.2.14; Git pins 4.2.14+amd64",
            ],
            exit: 2,
        },
        Case {
            name: "shared target: two streams, one tag set; other stream's digest is a retag",
            manifests: || {
                Builder::new()
                    .stream("x", A, Order::Semver, &[("1.0.0", dg(1))])
                    .stream("y", A, Order::Semver, &[("2.0.0", dg(2)), ("3.0.0", dg(3))])
                    .pin("y", "3.0.0", &["latest"])
                    .channel("cx", "x", &[], &["1.0.0"], &[])
                    .channel("cy", "y", &[], &["2.0.0", "3.0.0"], &[])
                    .build()
            },
            live: &[(
                A,
                &[
                    ("1.0.0", 1),
                    ("2.0.0", 2),
                    ("3.0.0", 3),
                    ("latest", 1),
                    ("junk", 2),
                ],
                &[],
            )],
            policy: Policy::default(),
            options: opts(true, None, None),
            want: &[
                "retag quay.io/okd/a latest 01>03 1.0.0>3.0.0 copy=false [cy] holds 1.0.0 of stream x; Git pins 3.0.0",
                "delete quay.io/okd/a junk 02>- 2.0.0>- copy=false [] not claimed by any channel (prune)",
            ],
            exit: 2,
        },
        Case {
            name: "sort: by target, then mirror/tag, retag/rollback, delete, then tag",
            manifests: || {
                Builder::new()
                    .stream("b", B, Order::Semver, &[("1.0.0", dg(1)), ("2.0.0", dg(2))])
                    .stream("a", A, Order::Semver, &[("1.0.0", dg(1)), ("2.0.0", dg(2))])
                    .channel("cb", "b", &["z", "a"], &["1.0.0", "2.0.0"], &[])
                    .channel("ca", "a", &["y"], &["1.0.0"], &[])
                    .build()
            },
            live: &[
                (B, &[("a", 1), ("z", 1), ("0", 1), ("zz", 2)], &[]),
                (A, &[("1.0.0", 1), ("x", 1), ("y", 2)], &[]),
            ],
            policy: Policy::default(),
            options: opts(true, None, None),
            want: &[
                "rollback quay.io/okd/a y 02>01 2.0.0>1.0.0 copy=false [ca] floating tag y ahead: 1.0.0 is newest",
                "delete quay.io/okd/a x 01>- 1.0.0>- copy=false [] not claimed by any channel (prune)",
                "tag quay.io/okd/b 1.0.0 ->01 ->1.0.0 copy=false [cb] tag missing; content already in target",
                "tag quay.io/okd/b 2.0.0 ->02 ->2.0.0 copy=false [cb] tag missing; content already in target",
                "retag quay.io/okd/b a 01>02 1.0.0>2.0.0 copy=false [cb] floating tag a behind: 2.0.0 is newest",
                "retag quay.io/okd/b z 01>02 1.0.0>2.0.0 copy=false [cb] floating tag z behind: 2.0.0 is newest",
                "delete quay.io/okd/b 0 01>- 1.0.0>- copy=false [] not claimed by any channel (prune)",
                "delete quay.io/okd/b zz 02>- 2.0.0>- copy=false [] not claimed by any channel (prune)",
            ],
            exit: 2,
        },
    ];
    let mut failures = Vec::new();
    for case in cases {
        let desired = derive(&(case.manifests)()).expect("scenario derives");
        let p = plan(
            "rev",
            &desired,
            &observed(case.live),
            &case.policy,
            &case.options,
        );
        let got = lines(&p);
        if got != case.want || p.exit_code() != case.exit {
            failures.push(format!(
                "case `{}`:\n  want (exit {}):\n    {}\n  got (exit {}):\n    {}",
                case.name,
                case.exit,
                case.want.join("\n    "),
                p.exit_code(),
                got.join("\n    ")
            ));
        }
        // Mirrors name their source; nothing else does.
        for a in &p.actions {
            assert_eq!(
                a.source.is_some(),
                a.action == ActionKind::Mirror,
                "{}",
                case.name
            );
            assert_eq!(a.copy, a.action == ActionKind::Mirror, "{}", case.name);
        }
        assert!(p.actions.iter().all(|a| !is_signature_tag(&a.tag)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mirror_source_is_the_stream_source() {
    let desired = derive(&scenario()).unwrap();
    let p = plan(
        "rev",
        &desired,
        &ObservedState::default(),
        &Policy::default(),
        &PlanOptions::default(),
    );
    assert!(
        p.actions
            .iter()
            .all(|a| a.source.as_deref() == Some("src.example/s"))
    );
    assert_eq!(p.revision, "rev");
}

#[test]
fn plan_is_deterministic_and_idempotent_after_applying() {
    let desired = derive(&scenario()).unwrap();
    let live = observed(&[(A, &[("0.9.0", 9), ("1.0.0", 4), ("junk", 4)], &[])]);
    let options = opts(true, None, None);
    let p = plan("rev", &desired, &live, &Policy::default(), &options);
    assert_eq!(
        p,
        plan("rev", &desired, &live, &Policy::default(), &options)
    );
    // Apply the plan to the observed state by hand: the next plan is empty.
    let mut after = live.clone();
    let repo = after.repos.get_mut(A).unwrap();
    for a in &p.actions {
        match &a.to {
            Some(d) => repo.tags.insert(a.tag.clone(), Some(d.clone())),
            None => repo.tags.remove(&a.tag),
        };
    }
    let again = plan("rev", &desired, &after, &Policy::default(), &options);
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    assert_eq!(again.exit_code(), 0);
    assert!(drift("rev", &desired, &after, &options).in_sync());
}

/// One line per drift item: `state target tag desired>actual counts`.
fn drift_lines(d: &Drift) -> Vec<String> {
    d.items
        .iter()
        .map(|i| {
            format!(
                "{:?} {} {} {}>{}{}",
                i.state,
                i.target,
                i.tag,
                short(&i.desired),
                short(&i.actual),
                if i.counts { " counts" } else { "" }
            )
        })
        .collect()
}

#[test]
fn drift_table() {
    let live: &[Live] = &[(
        A,
        &[
            ("0.9.0", 9),
            ("1.0.0", 1),
            ("1.1.0", 3),
            ("next", 3),
            ("junk", 4),
            (
                "sha256-0101010101010101010101010101010101010101010101010101010101010101.sig",
                5,
            ),
        ],
        &[],
    )];
    let cases: Vec<(&str, PlanOptions, Vec<&str>, bool)> = vec![
        (
            "prune off: extras reported, not counted",
            opts(false, None, None),
            vec![
                "Extra quay.io/okd/a 0.9.0 ->09 counts",
                "Ok quay.io/okd/a 1.0.0 01>01",
                "Moved quay.io/okd/a 1.1.0 02>03 counts",
                "Missing quay.io/okd/a 1.2.0 03>- counts",
                "Extra quay.io/okd/a junk ->04",
                "Ok quay.io/okd/a next 03>03",
                "Missing quay.io/okd/a stable 01>- counts",
            ],
            false,
        ),
        (
            "prune on: extras count",
            opts(true, None, None),
            vec![
                "Extra quay.io/okd/a 0.9.0 ->09 counts",
                "Ok quay.io/okd/a 1.0.0 01>01",
                "Moved quay.io/okd/a 1.1.0 02>03 counts",
                "Missing quay.io/okd/a 1.2.0 03>- counts",
                "Extra quay.io/okd/a junk ->04 counts",
                "Ok quay.io/okd/a next 03>03",
                "Missing quay.io/okd/a stable 01>- counts",
            ],
            false,
        ),
        (
            "--channel stable: its tags only, no unclaimed extras",
            opts(true, None, Some("stable")),
            vec![
                "Ok quay.io/okd/a 1.0.0 01>01",
                "Missing quay.io/okd/a stable 01>- counts",
            ],
            false,
        ),
    ];
    for (name, options, want, in_sync) in cases {
        let desired = derive(&scenario()).unwrap();
        let d = drift("rev", &desired, &observed(live), &options);
        assert_eq!(drift_lines(&d), want, "{name}");
        assert_eq!(d.in_sync(), in_sync, "{name}");
    }
}

#[test]
fn drift_in_sync_with_uncounted_extras_only() {
    let desired = derive(&scenario()).unwrap();
    let live = observed(&[(
        A,
        &[
            ("1.0.0", 1),
            ("1.1.0", 2),
            ("1.2.0", 3),
            ("next", 3),
            ("stable", 1),
            ("junk", 4),
        ],
        &[],
    )]);
    let d = drift("rev", &desired, &live, &opts(false, None, None));
    assert!(d.in_sync());
    assert_eq!(d.items.len(), 6);
    assert!(!drift("rev", &desired, &live, &opts(true, None, None)).in_sync());
    // Narrowed to a channel, the unclaimed extra is left out entirely.
    let n = drift("rev", &desired, &live, &opts(true, None, Some("next")));
    assert!(n.in_sync());
    assert!(n.items.iter().all(|i| i.tag != "junk"));
}

// ---------------------------------------------------------------------------------------
// ImageStreams.

/// `origin/<name>`.
fn isr(name: &str) -> ImageStreamRef {
    ImageStreamRef {
        namespace: "origin".to_string(),
        name: name.to_string(),
    }
}

/// `A@dg(n)`.
fn pull(n: u8) -> String {
    format!("{A}@{}", dg(n))
}

/// The main scenario, both channels publishing into `origin/release`.
fn is_scenario() -> Manifests {
    scenario_builder()
        .image_stream("next", "origin", "release")
        .image_stream("stable", "origin", "release")
        .build()
}

/// The main scenario, `next` into `origin/next`, `stable` into `origin/stable`.
fn is_split() -> Manifests {
    scenario_builder()
        .image_stream("next", "origin", "next")
        .image_stream("stable", "origin", "stable")
        .build()
}

/// Repository A exactly as the main scenario wants it.
fn repo_in_sync() -> ObservedState {
    observed(&[(
        A,
        &[
            ("1.0.0", 1),
            ("1.1.0", 2),
            ("1.2.0", 3),
            ("next", 3),
            ("stable", 1),
        ],
        &[],
    )])
}

/// A spec tag (generation 1), and a status caught up with it (its digest, if any).
fn spec_tag(is: &mut ObservedImageStream, tag: &str, from: &str, managed: bool) {
    is.spec_tags.insert(
        tag.to_string(),
        ObservedSpecTag {
            from: from.to_string(),
            generation: Some(1),
            managed_by_relsync: managed,
        },
    );
    is.status_tags.insert(
        tag.to_string(),
        ObservedStatusTag {
            image: pull_spec_digest(from),
            generation: Some(1),
            import_failure: None,
        },
    );
}

/// The ImageStream `origin/release` as the main scenario wants it, plus a foreign tag.
fn release_in_sync() -> ObservedImageStream {
    let mut is = ObservedImageStream {
        resource_version: Some("7".to_string()),
        ..Default::default()
    };
    for (tag, n) in [
        ("1.0.0", 1),
        ("1.1.0", 2),
        ("1.2.0", 3),
        ("next", 3),
        ("stable", 1),
    ] {
        spec_tag(&mut is, tag, &pull(n), true);
    }
    spec_tag(&mut is, "theirs", "example.com/other@sha256:abc", false);
    is
}

fn with_streams(
    mut o: ObservedState,
    streams: Vec<(ImageStreamRef, ObservedImageStream)>,
) -> ObservedState {
    o.image_streams = Some(streams.into_iter().collect());
    o
}

struct IsCase {
    name: &'static str,
    manifests: fn() -> Manifests,
    observed: fn() -> ObservedState,
    policy: Policy,
    options: PlanOptions,
    want: &'static [&'static str],
    exit: i32,
}

#[test]
fn imagestream_plan_table() {
    let cases = vec![
        IsCase {
            name: "cluster not observed: no ImageStream action at all",
            manifests: is_scenario,
            observed: repo_in_sync,
            policy: Policy::default(),
            options: opts(true, None, None),
            want: &[],
            exit: 0,
        },
        IsCase {
            name: "in sync; foreign tag untouched even with prune",
            manifests: is_scenario,
            observed: || with_streams(repo_in_sync(), vec![(isr("release"), release_in_sync())]),
            policy: Policy::default(),
            options: opts(true, None, None),
            want: &[],
            exit: 0,
        },
        IsCase {
            name: "ImageStream absent: every tag added",
            manifests: is_scenario,
            observed: || with_streams(repo_in_sync(), vec![]),
            policy: Policy::default(),
            options: opts(false, None, None),
            want: &[
                "tag imagestream:origin/release 1.0.0 ->01 ->1.0.0 copy=false [next,stable] ImageStream absent: created with this tag",
                "tag imagestream:origin/release 1.1.0 ->02 ->1.1.0 copy=false [next] ImageStream absent: created with this tag",
                "tag imagestream:origin/release 1.2.0 ->03 ->1.2.0 copy=false [next] ImageStream absent: created with this tag",
                "tag imagestream:origin/release next ->03 ->1.2.0 copy=false [next] ImageStream absent: created with this tag",
                "tag imagestream:origin/release stable ->01 ->1.0.0 copy=false [stable] ImageStream absent: created with this tag",
            ],
            exit: 2,
        },
        IsCase {
            name: "every kind; repository actions first; immutable policy is for registries only",
            manifests: is_scenario,
            observed: || {
                let mut repo = repo_in_sync();
                repo.repos.get_mut(A).unwrap().tags.remove("stable");
                let mut is = release_in_sync();
                is.spec_tags.remove("1.1.0");
                spec_tag(&mut is, "1.2.0", &pull(2), true);
                spec_tag(&mut is, "next", &pull(4), true);
                spec_tag(&mut is, "stable", &format!("{A}:latest"), true);
                spec_tag(&mut is, "1.0.0", &format!("src.example/s@{}", dg(1)), true);
                spec_tag(&mut is, "old", &pull(9), true);
                spec_tag(&mut is, "gone", &pull(0x77), true);
                with_streams(repo, vec![(isr("release"), is)])
            },
            policy: policy(&[r"^\d+\.\d+\.\d+$"], None),
            options: opts(false, None, None),
            want: &[
                "tag quay.io/okd/a stable ->01 ->1.0.0 copy=false [stable] tag missing; content already in target",
                "tag imagestream:origin/release 1.1.0 ->02 ->1.1.0 copy=false [next] tag missing in ImageStream",
                "retag imagestream:origin/release 1.0.0 01>01 1.0.0>1.0.0 copy=false [next,stable] spec points to src.example/s@sha256:0101010101010101010101010101010101010101010101010101010101010101 instead of quay.io/okd/a@sha256:0101010101010101010101010101010101010101010101010101010101010101",
                "retag imagestream:origin/release 1.2.0 02>03 1.1.0>1.2.0 copy=false [next] holds older 1.1.0; Git pins 1.2.0",
                "rollback imagestream:origin/release next 04>03 1.3.0>1.2.0 copy=false [next] floating tag next ahead: 1.2.0 is newest",
                "retag imagestream:origin/release stable ->01 ->1.0.0 copy=false [stable] spec points to quay.io/okd/a:latest, not a digest",
                "delete imagestream:origin/release gone 77>- ->- copy=false [] relsync's tag, no longer claimed by any channel (dropped when the ImageStream is applied)",
                "delete imagestream:origin/release old 09>- 0.9.0>- copy=false [] relsync's tag, no longer claimed by any channel (dropped when the ImageStream is applied)",
            ],
            exit: 2,
        },
        IsCase {
            name: "a digest Git does not know is a retag",
            manifests: is_scenario,
            observed: || {
                let mut is = release_in_sync();
                spec_tag(&mut is, "stable", &pull(0x77), true);
                with_streams(repo_in_sync(), vec![(isr("release"), is)])
            },
            policy: Policy::default(),
            options: opts(false, None, None),
            want: &[
                "retag imagestream:origin/release stable 77>01 ->1.0.0 copy=false [stable] moved off a digest Git does not know",
            ],
            exit: 2,
        },
        IsCase {
            name: "ImageStream deletes count against the delete cap",
            manifests: is_scenario,
            observed: || {
                let mut is = release_in_sync();
                spec_tag(&mut is, "old", &pull(9), true);
                with_streams(repo_in_sync(), vec![(isr("release"), is)])
            },
            policy: policy(&[], Some(0)),
            options: opts(false, None, None),
            want: &[
                "delete imagestream:origin/release old 09>- 0.9.0>- copy=false [] relsync's tag, no longer claimed by any channel (dropped when the ImageStream is applied)",
                "plan refused: it deletes 1 tags and maxDeletesPerSync allows 0 (run with --allow-deletes 1 to accept)",
            ],
            exit: 1,
        },
        IsCase {
            name: "an ImageStream Git no longer names: relsync's tags deleted, foreign ones kept",
            manifests: scenario,
            observed: || with_streams(repo_in_sync(), vec![(isr("release"), release_in_sync())]),
            policy: Policy::default(),
            options: opts(false, None, None),
            want: &[
                "delete imagestream:origin/release 1.0.0 01>- 1.0.0>- copy=false [] relsync's tag, no longer claimed by any channel (dropped when the ImageStream is applied)",
                "delete imagestream:origin/release 1.1.0 02>- 1.1.0>- copy=false [] relsync's tag, no longer claimed by any channel (dropped when the ImageStream is applied)",
                "delete imagestream:origin/release 1.2.0 03>- 1.2.0>- copy=false [] relsync's tag, no longer claimed by any channel (dropped when the ImageStream is applied)",
                "delete imagestream:origin/release next 03>- 1.2.0>- copy=false [] relsync's tag, no longer claimed by any channel (dropped when the ImageStream is applied)",
                "delete imagestream:origin/release stable 01>- 1.0.0>- copy=false [] relsync's tag, no longer claimed by any channel (dropped when the ImageStream is applied)",
            ],
            exit: 2,
        },
        IsCase {
            name: "--channel stable: its ImageStream's tags and relsync's leftovers there only",
            manifests: is_split,
            observed: || {
                let mut next = ObservedImageStream::default();
                spec_tag(&mut next, "old", &pull(9), true);
                let mut stable = ObservedImageStream::default();
                spec_tag(&mut stable, "old", &pull(9), true);
                spec_tag(&mut stable, "theirs", &pull(9), false);
                with_streams(
                    repo_in_sync(),
                    vec![(isr("next"), next), (isr("stable"), stable)],
                )
            },
            policy: Policy::default(),
            options: opts(false, None, Some("stable")),
            want: &[
                "tag imagestream:origin/stable 1.0.0 ->01 ->1.0.0 copy=false [stable] tag missing in ImageStream",
                "tag imagestream:origin/stable stable ->01 ->1.0.0 copy=false [stable] tag missing in ImageStream",
                "delete imagestream:origin/stable old 09>- 0.9.0>- copy=false [] relsync's tag, no longer claimed by any channel (dropped when the ImageStream is applied)",
            ],
            exit: 2,
        },
    ];
    let mut failures = Vec::new();
    for case in cases {
        let desired = derive(&(case.manifests)()).expect("scenario derives");
        let p = plan(
            "rev",
            &desired,
            &(case.observed)(),
            &case.policy,
            &case.options,
        );
        let got = lines(&p);
        if got != case.want || p.exit_code() != case.exit {
            failures.push(format!(
                "case `{}`:\n  want (exit {}):\n    {}\n  got (exit {}):\n    {}",
                case.name,
                case.exit,
                case.want.join("\n    "),
                p.exit_code(),
                got.join("\n    ")
            ));
        }
        for a in &p.actions {
            if matches!(a.target, Target::ImageStream(_)) {
                assert!(!a.copy && a.source.is_none(), "{}", case.name);
            }
        }
        assert!(p.conflicts.is_empty(), "{}", case.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn imagestream_plan_is_idempotent_after_applying() {
    let desired = derive(&is_scenario()).unwrap();
    let mut is = release_in_sync();
    spec_tag(&mut is, "next", &pull(4), true);
    spec_tag(&mut is, "old", &pull(9), true);
    is.spec_tags.remove("1.1.0");
    let live = with_streams(repo_in_sync(), vec![(isr("release"), is)]);
    let p = plan(
        "rev",
        &desired,
        &live,
        &Policy::default(),
        &opts(false, None, None),
    );
    assert_eq!(p.actions.len(), 3);
    // Apply: the whole desired tag set, relsync's other tags dropped, foreign ones kept.
    let mut after = live.clone();
    let streams = after.image_streams.as_mut().unwrap();
    let is = streams.get_mut(&isr("release")).unwrap();
    for a in &p.actions {
        match a.to {
            Some(_) => {
                let from = &desired.image_streams[&isr("release")][&a.tag].from;
                spec_tag(is, &a.tag, from, true);
            }
            None => {
                is.spec_tags.remove(&a.tag);
                is.status_tags.remove(&a.tag);
            }
        }
    }
    let again = plan(
        "rev",
        &desired,
        &after,
        &Policy::default(),
        &opts(true, None, None),
    );
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    let d = drift("rev", &desired, &after, &opts(true, None, None));
    assert!(d.in_sync(), "{:?}", d.items);
    assert!(d.items.iter().all(|i| i.tag != "theirs"));
}

/// `drift_lines` plus each item's message.
fn drift_lines_with_messages(d: &Drift) -> Vec<String> {
    drift_lines(d)
        .into_iter()
        .zip(&d.items)
        .map(|(l, i)| match &i.message {
            Some(m) => format!("{l} ({m})"),
            None => l,
        })
        .collect()
}

#[test]
fn imagestream_drift_table() {
    let live = || {
        let mut is = release_in_sync();
        // 1.0.0 ok; 1.1.0 spec missing; 1.2.0 spec elsewhere.
        is.spec_tags.remove("1.1.0");
        is.status_tags.remove("1.1.0");
        spec_tag(&mut is, "1.2.0", &pull(2), true);
        // next: spec right (generation 2), import of generation 1 holds the old image.
        is.spec_tags.get_mut("next").unwrap().generation = Some(2);
        is.status_tags.get_mut("next").unwrap().image = Some(dg(2));
        // stable: import caught up but holds another image.
        is.status_tags.get_mut("stable").unwrap().image = Some(dg(4));
        // relsync's leftover, and a foreign tag (never reported).
        spec_tag(&mut is, "old", &pull(9), true);
        is
    };
    let failed = || {
        let mut is = release_in_sync();
        // 1.0.0: the current generation's import failed.
        is.status_tags.get_mut("1.0.0").unwrap().import_failure = Some(ImportFailure {
            message: "manifest unknown".to_string(),
            generation: Some(1),
        });
        // 1.1.0: a failure of an older generation; the new one is pending.
        is.spec_tags.get_mut("1.1.0").unwrap().generation = Some(3);
        is.status_tags.get_mut("1.1.0").unwrap().import_failure = Some(ImportFailure {
            message: "old failure".to_string(),
            generation: Some(2),
        });
        // 1.2.0: no status at all yet.
        is.status_tags.remove("1.2.0");
        is
    };
    let cases: Vec<(&str, ObservedState, PlanOptions, Vec<&str>, bool)> = vec![
        (
            "cluster not observed: repository items only",
            repo_in_sync(),
            opts(false, None, None),
            vec![
                "Ok quay.io/okd/a 1.0.0 01>01",
                "Ok quay.io/okd/a 1.1.0 02>02",
                "Ok quay.io/okd/a 1.2.0 03>03",
                "Ok quay.io/okd/a next 03>03",
                "Ok quay.io/okd/a stable 01>01",
            ],
            true,
        ),
        (
            "missing, moved by spec and by import, importing, extra; ImageStream rows last",
            with_streams(repo_in_sync(), vec![(isr("release"), live())]),
            opts(false, None, None),
            vec![
                "Ok quay.io/okd/a 1.0.0 01>01",
                "Ok quay.io/okd/a 1.1.0 02>02",
                "Ok quay.io/okd/a 1.2.0 03>03",
                "Ok quay.io/okd/a next 03>03",
                "Ok quay.io/okd/a stable 01>01",
                "Ok imagestream:origin/release 1.0.0 01>01",
                "Missing imagestream:origin/release 1.1.0 02>- counts",
                "Moved imagestream:origin/release 1.2.0 03>02 counts (spec points to quay.io/okd/a@sha256:0202020202020202020202020202020202020202020202020202020202020202)",
                "Importing imagestream:origin/release next 03>02 (import of generation 2 not done yet)",
                "Extra imagestream:origin/release old ->09 counts (relsync's tag, no longer claimed by any channel)",
                "Moved imagestream:origin/release stable 01>04 counts (imported image differs from the spec)",
            ],
            false,
        ),
        (
            "import failures by generation; no status is importing",
            with_streams(repo_in_sync(), vec![(isr("release"), failed())]),
            opts(false, None, None),
            vec![
                "Ok quay.io/okd/a 1.0.0 01>01",
                "Ok quay.io/okd/a 1.1.0 02>02",
                "Ok quay.io/okd/a 1.2.0 03>03",
                "Ok quay.io/okd/a next 03>03",
                "Ok quay.io/okd/a stable 01>01",
                "ImportFailed imagestream:origin/release 1.0.0 01>01 counts (manifest unknown)",
                "Importing imagestream:origin/release 1.1.0 02>02 (import of generation 3 not done yet)",
                "Importing imagestream:origin/release 1.2.0 03>03 (import of generation 1 not done yet)",
                "Ok imagestream:origin/release next 03>03",
                "Ok imagestream:origin/release stable 01>01",
            ],
            false,
        ),
        (
            "ImageStream absent: every tag missing",
            with_streams(repo_in_sync(), vec![]),
            opts(false, None, Some("stable")),
            vec![
                "Ok quay.io/okd/a 1.0.0 01>01",
                "Ok quay.io/okd/a stable 01>01",
                "Missing imagestream:origin/release 1.0.0 01>- counts (ImageStream absent)",
                "Missing imagestream:origin/release 1.1.0 02>- counts (ImageStream absent)",
                "Missing imagestream:origin/release 1.2.0 03>- counts (ImageStream absent)",
                "Missing imagestream:origin/release next 03>- counts (ImageStream absent)",
                "Missing imagestream:origin/release stable 01>- counts (ImageStream absent)",
            ],
            false,
        ),
    ];
    for (name, observed, options, want, in_sync) in cases {
        let desired = derive(&is_scenario()).unwrap();
        let d = drift("rev", &desired, &observed, &options);
        assert_eq!(drift_lines_with_messages(&d), want, "{name}");
        assert_eq!(d.in_sync(), in_sync, "{name}");
    }
}

#[test]
fn imagestream_drift_importing_only_is_in_sync_and_channel_narrows() {
    let mut is = release_in_sync();
    is.spec_tags.get_mut("next").unwrap().generation = Some(2);
    let live = with_streams(repo_in_sync(), vec![(isr("release"), is)]);
    let desired = derive(&is_scenario()).unwrap();
    let d = drift("rev", &desired, &live, &opts(true, None, None));
    assert!(d.in_sync());
    assert_eq!(
        d.items
            .iter()
            .filter(|i| i.state == DriftState::Importing)
            .count(),
        1
    );

    // Split ImageStreams: --channel next reports origin/next (and relsync's leftover there),
    // never origin/stable.
    let desired = derive(&is_split()).unwrap();
    let mut next = ObservedImageStream::default();
    spec_tag(&mut next, "old", &pull(9), true);
    let live = with_streams(repo_in_sync(), vec![(isr("next"), next)]);
    let d = drift("rev", &desired, &live, &opts(false, None, Some("next")));
    let is_rows: Vec<String> = drift_lines(&d)
        .into_iter()
        .filter(|l| l.contains("imagestream:"))
        .collect();
    assert_eq!(
        is_rows,
        [
            "Missing imagestream:origin/next 1.0.0 01>- counts",
            "Missing imagestream:origin/next 1.1.0 02>- counts",
            "Missing imagestream:origin/next 1.2.0 03>- counts",
            "Missing imagestream:origin/next next 03>- counts",
            "Extra imagestream:origin/next old ->09 counts",
        ]
    );
}

#[test]
fn pull_spec_digests() {
    assert_eq!(pull_spec_digest(&pull(1)), Some(dg(1)));
    assert_eq!(pull_spec_digest("quay.io/okd/a:latest"), None);
    assert_eq!(pull_spec_digest("quay.io/okd/a@sha256:short"), None);
    assert_eq!(
        pull_spec_digest(&format!("localhost:5000/a@{}", dg(2))),
        Some(dg(2))
    );
}

#[test]
fn a_drift_state_s_word_is_its_json_spelling() {
    for state in [
        DriftState::Missing,
        DriftState::Moved,
        DriftState::Extra,
        DriftState::Ok,
        DriftState::Importing,
        DriftState::ImportFailed,
    ] {
        assert_eq!(serde_json::to_value(state).unwrap(), state.word());
    }
}
