use std::collections::BTreeSet;

use super::testing::{Builder, dg};
use super::*;
use crate::digest::Digest;
use crate::manifest::{ImageStreamRef, Manifests, Order};
use crate::tag::version_tag;

const T: &str = "quay.io/okd/scos-release";

fn errors(m: &Manifests) -> Vec<String> {
    derive(m)
        .expect_err("derive must fail")
        .iter()
        .map(|d| d.to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn version_floating_and_pinned_tags() {
    let m = Builder::new()
        .stream(
            "4-scos",
            T,
            Order::Semver,
            &[
                ("4.14.0-0.a", dg(1)),
                ("4.14.0-0.b", dg(2)),
                ("4.15.0-0.c", dg(3)),
            ],
        )
        .pin("4-scos", "4.14.0-0.b", &["4.14.0-okd-scos.0"])
        .channel(
            "next",
            "4-scos",
            &["4-scos-next"],
            &["4.14.0-0.a", "4.15.0-0.c", "4.14.0-0.b"],
            &[],
        )
        .channel(
            "stable",
            "4-scos",
            &["4-scos-stable", "stable"],
            &["4.14.0-0.a", "4.14.0-0.b"],
            &[],
        )
        .build();
    let d = derive(&m).unwrap();
    let repo = &d.repos[T];
    let want: Vec<(&str, Digest, TagKind, BTreeSet<String>)> = vec![
        ("4-scos-next", dg(3), TagKind::Floating, set(&["next"])),
        ("4-scos-stable", dg(2), TagKind::Floating, set(&["stable"])),
        (
            "4.14.0-0.a",
            dg(1),
            TagKind::Version,
            set(&["next", "stable"]),
        ),
        (
            "4.14.0-0.b",
            dg(2),
            TagKind::Version,
            set(&["next", "stable"]),
        ),
        (
            "4.14.0-okd-scos.0",
            dg(2),
            TagKind::Pinned,
            set(&["next", "stable"]),
        ),
        ("4.15.0-0.c", dg(3), TagKind::Version, set(&["next"])),
        ("stable", dg(2), TagKind::Floating, set(&["stable"])),
    ];
    let got: Vec<_> = repo
        .tags
        .iter()
        .map(|(t, d)| (t.as_str(), d.digest.clone(), d.kind, d.channels.clone()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(repo.tags["4-scos-stable"].version, "4.14.0-0.b");
    assert_eq!(repo.tags["4-scos-stable"].source, "src.example/4-scos");
    assert!(repo.absent.is_empty());
    assert_eq!(repo.known.len(), 3);
    assert_eq!(repo.known[&dg(3)].version, "4.15.0-0.c");
    let stable: Vec<_> = d.channel_claims["stable"]
        .iter()
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(
        stable,
        [
            "4-scos-stable",
            "4.14.0-0.a",
            "4.14.0-0.b",
            "4.14.0-okd-scos.0",
            "stable"
        ]
    );
}

#[test]
fn plus_is_written_underscore_and_build_metadata_is_ignored_for_newest() {
    let m = Builder::new()
        .stream(
            "s",
            T,
            Order::Semver,
            &[("4.2.14+amd64", dg(1)), ("4.2.13", dg(2))],
        )
        .channel(
            "c",
            "s",
            &["latest"],
            &["4.2.13", "4.2.14+amd64"],
            &["4.2.9+amd64"],
        )
        .build();
    let d = derive(&m).unwrap();
    let repo = &d.repos[T];
    assert_eq!(repo.tags["4.2.14_amd64"].version, "4.2.14+amd64");
    assert!(!repo.tags.contains_key("4.2.14+amd64"));
    assert_eq!(repo.tags["latest"].digest, dg(1));
    assert!(repo.absent.contains_key("4.2.9_amd64"));
    assert_eq!(version_tag("4.2.14+amd64.1"), "4.2.14_amd64.1");
}

#[test]
fn listed_order_uses_stream_position_not_semver() {
    // Listed: the stream's last release is newest. Semver: the alphanumeric prerelease
    // `ec.1` outranks the numeric `0`.
    for (order, newest) in [(Order::Listed, dg(2)), (Order::Semver, dg(1))] {
        let m = Builder::new()
            .stream(
                "s",
                T,
                order,
                &[
                    ("4.15.0-okd-scos.ec.1", dg(1)),
                    ("4.15.0-okd-scos.0", dg(2)),
                ],
            )
            .channel(
                "c",
                "s",
                &["f"],
                &["4.15.0-okd-scos.0", "4.15.0-okd-scos.ec.1"],
                &[],
            )
            .build();
        assert_eq!(
            derive(&m).unwrap().repos[T].tags["f"].digest,
            newest,
            "{order:?}"
        );
    }
}

#[test]
fn tie_for_newest_is_an_error_at_each_entry() {
    let m = Builder::new()
        .stream(
            "s",
            T,
            Order::Semver,
            &[("4.2.14", dg(1)), ("4.2.14+amd64", dg(2)), ("4.2.1", dg(3))],
        )
        .channel("c", "s", &["f"], &["4.2.1", "4.2.14", "4.2.14+amd64"], &[])
        .build();
    assert_eq!(
        errors(&m),
        [
            "channels/c.yaml:11:7: version 4.2.14 of channel c ties with 4.2.14+amd64 for the channel's newest version: equal semver precedence (build metadata is ignored) (hint: list only one of them, or set `order: listed` on stream s)",
            "channels/c.yaml:12:7: version 4.2.14+amd64 of channel c ties with 4.2.14 for the channel's newest version: equal semver precedence (build metadata is ignored) (hint: list only one of them, or set `order: listed` on stream s)",
        ]
    );
    // Equal precedence below the newest is fine.
    let m = Builder::new()
        .stream(
            "s",
            T,
            Order::Semver,
            &[("4.2.14", dg(1)), ("4.2.14+amd64", dg(2)), ("4.3.1", dg(3))],
        )
        .channel("c", "s", &["f"], &["4.2.14", "4.2.14+amd64", "4.3.1"], &[])
        .build();
    assert_eq!(derive(&m).unwrap().repos[T].tags["f"].digest, dg(3));
    assert_eq!(
        newest_version(&m.streams["s"], &m.channels["c"])
            .unwrap()
            .map(|r| r.version.value.as_str()),
        Some("4.3.1")
    );
}

#[test]
fn floating_tags_without_versions_are_errors_at_each_tag() {
    let m = Builder::new()
        .stream("s", T, Order::Semver, &[("1.0.0", dg(1))])
        .channel("c", "s", &["a", "b"], &["1.0.0"], &["1.0.0"])
        .build();
    assert_eq!(
        errors(&m),
        [
            "channels/c.yaml:7:10: floating tag a of channel c has nothing to point at: the channel publishes no version (hint: list a version under `versions`, or remove the floating tag)",
            "channels/c.yaml:7:30: floating tag b of channel c has nothing to point at: the channel publishes no version (hint: list a version under `versions`, or remove the floating tag)",
        ]
    );
}

#[test]
fn a_tag_claimed_with_two_digests_names_both_places() {
    // Two streams share a target and both publish 1.0.0 with different digests; and a
    // pinned tag collides with a floating tag.
    let m = Builder::new()
        .stream("a", T, Order::Semver, &[("1.0.0", dg(1)), ("1.1.0", dg(3))])
        .stream("b", T, Order::Semver, &[("1.0.0", dg(2))])
        .pin("a", "1.0.0", &["latest"])
        .channel("ca", "a", &[], &["1.0.0"], &[])
        .channel("cb", "b", &["latest"], &["1.0.0"], &[])
        .build();
    assert_eq!(
        errors(&m),
        [
            format!(
                "streams/a.yaml:12:14: tag latest of target {T} is claimed with digest {} here and with digest {} at channels/cb.yaml:7:10",
                dg(1),
                dg(2)
            ),
            format!(
                "streams/b.yaml:10:16: tag 1.0.0 of target {T} is claimed with digest {} here and with digest {} at streams/a.yaml:10:16",
                dg(2),
                dg(1)
            ),
        ]
    );
}

#[test]
fn the_same_digest_from_two_places_merges_channels() {
    let m = Builder::new()
        .stream("a", T, Order::Semver, &[("1.0.0", dg(1))])
        .stream("b", T, Order::Semver, &[("1.0.0", dg(1)), ("2.0.0", dg(2))])
        .channel("ca", "a", &["latest"], &["1.0.0"], &[])
        .channel("cb", "b", &["latest"], &["1.0.0"], &["2.0.0"])
        .build();
    let d = derive(&m).unwrap();
    let repo = &d.repos[T];
    assert_eq!(repo.tags["1.0.0"].channels, set(&["ca", "cb"]));
    assert_eq!(repo.tags["latest"].channels, set(&["ca", "cb"]));
    // Both streams' releases are known in the shared target; one tag set.
    assert_eq!(repo.known.len(), 2);
    assert_eq!(repo.known[&dg(2)].stream, "b");
    assert_eq!(d.repos.len(), 1);
    assert!(repo.absent.contains_key("2.0.0"));
}

#[test]
fn tombstones() {
    let m = Builder::new()
        .stream(
            "s",
            T,
            Order::Semver,
            &[
                ("1.0.0", dg(1)),
                ("1.1.0", dg(2)),
                ("1.2.0", dg(3)),
                ("1.3.0", dg(4)),
            ],
        )
        .pin("s", "1.3.0", &["1.0.0-hotfix"])
        // 1.0.0: tombstoned in next, still in stable → desired.
        // 1.1.0: tombstoned in next and stable (listed in stable too: tombstone wins) → absent.
        // 1.0.0-hotfix: tombstoned but claimed as a pinned tag of 1.3.0 → desired.
        .channel(
            "next",
            "s",
            &[],
            &["1.2.0", "1.3.0"],
            &["1.0.0", "1.1.0", "1.0.0-hotfix"],
        )
        .channel("stable", "s", &[], &["1.0.0", "1.1.0"], &["1.1.0"])
        .build();
    let d = derive(&m).unwrap();
    let repo = &d.repos[T];
    assert_eq!(repo.tags["1.0.0"].channels, set(&["stable"]));
    assert_eq!(repo.tags["1.0.0-hotfix"].digest, dg(4));
    assert_eq!(repo.absent.keys().collect::<Vec<_>>(), ["1.1.0"]);
    let a = &repo.absent["1.1.0"];
    assert_eq!(a.channels, set(&["next", "stable"]));
    assert_eq!(a.span.to_string(), "channels/next.yaml:41:7");
    assert!(d.channel_claims["stable"].contains(&(T.to_string(), "1.1.0".to_string())));
    assert!(d.channel_claims["next"].contains(&(T.to_string(), "1.0.0".to_string())));
}

#[test]
fn every_stream_target_is_a_repo_even_unpublished() {
    let m = Builder::new()
        .stream("s", T, Order::Semver, &[("1.0.0", dg(1))])
        .stream("o", "oci:/srv/other", Order::Semver, &[("2.0.0", dg(2))])
        .channel("c", "s", &[], &["1.0.0"], &[])
        .build();
    let d = derive(&m).unwrap();
    assert_eq!(d.repos.keys().collect::<Vec<_>>(), ["oci:/srv/other", T]);
    assert!(d.repos["oci:/srv/other"].tags.is_empty());
    assert_eq!(d.repos["oci:/srv/other"].known[&dg(2)].version, "2.0.0");
}

#[test]
fn image_streams_gather_every_channel_and_report_conflicts() {
    let m = Builder::new()
        .stream("s", T, Order::Semver, &[("1.0.0", dg(1)), ("1.1.0", dg(2))])
        .channel("next", "s", &["next"], &["1.0.0", "1.1.0"], &[])
        .channel("stable", "s", &["stable"], &["1.0.0"], &[])
        .image_stream("next", "origin", "release")
        .image_stream("stable", "origin", "release")
        .build();
    let d = derive(&m).unwrap();
    let is = ImageStreamRef {
        namespace: "origin".into(),
        name: "release".into(),
    };
    let tags = &d.image_streams[&is];
    assert_eq!(
        tags.keys().collect::<Vec<_>>(),
        ["1.0.0", "1.1.0", "next", "stable"]
    );
    assert_eq!(tags["stable"].from, format!("{T}@{}", dg(1)));
    assert_eq!(tags["1.0.0"].channels, set(&["next", "stable"]));
    assert!(d.channel_claims["stable"].contains(&(
        "imagestream:origin/release".to_string(),
        "1.1.0".to_string()
    )));

    // Two streams in different targets publish 1.0.0 into one ImageStream.
    let m = Builder::new()
        .stream("a", "r.example/a", Order::Semver, &[("1.0.0", dg(1))])
        .stream("b", "r.example/b", Order::Semver, &[("1.0.0", dg(2))])
        .channel("ca", "a", &[], &["1.0.0"], &[])
        .channel("cb", "b", &[], &["1.0.0"], &[])
        .image_stream("ca", "ns", "is")
        .image_stream("cb", "ns", "is")
        .build();
    assert_eq!(
        errors(&m),
        [format!(
            "streams/b.yaml:10:16: tag 1.0.0 of imagestream ns/is is claimed with digest {} here and with digest {} at streams/a.yaml:10:16",
            dg(2),
            dg(1)
        )]
    );
}

#[test]
fn all_problems_in_one_run_sorted() {
    let m = Builder::new()
        .stream(
            "s",
            T,
            Order::Semver,
            &[("1.0.0", dg(1)), ("1.0.0+x", dg(2))],
        )
        .channel("z", "s", &["f"], &[], &[])
        .channel("a", "s", &["g"], &["1.0.0", "1.0.0+x"], &[])
        .build();
    let e = errors(&m);
    assert_eq!(e.len(), 3);
    assert!(e[0].starts_with("channels/a.yaml:10:7: version 1.0.0 of channel a ties"));
    assert!(e[1].starts_with("channels/a.yaml:11:7: version 1.0.0+x of channel a ties"));
    assert!(e[2].starts_with("channels/z.yaml:7:10: floating tag f of channel z"));
}
