//! The pure payload core: image-references, the layer reader, platforms and tags.

use std::io::Write;

use super::*;

fn dg(n: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}

fn refs_json(entries: &[(&str, &str, &Digest)]) -> Vec<u8> {
    let tags: Vec<serde_json::Value> = entries
        .iter()
        .map(|(name, repo, d)| {
            serde_json::json!({
                "name": name,
                "annotations": {"io.openshift.build.commit.id": "abc"},
                "from": {"kind": "DockerImage", "name": format!("{repo}@{d}")},
                "generation": null,
                "importPolicy": {},
                "referencePolicy": {"type": "Source"}
            })
        })
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({
        "kind": "ImageStream",
        "apiVersion": "image.openshift.io/v1",
        "metadata": {"name": "4.14.0", "creationTimestamp": null},
        "spec": {"lookupPolicy": {"local": false}, "tags": tags},
        "status": {"dockerImageRepository": ""}
    }))
    .unwrap()
}

/// A tar (optionally gzip) archive of `(path, bytes)` files, written with the tar crate.
fn layer(files: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, *bytes).unwrap();
    }
    let tar = b.into_inner().unwrap();
    if !gzip {
        return tar;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn release_layer(refs: &[u8], gzip: bool) -> Vec<u8> {
    layer(
        &[
            ("release-manifests/0000_00_cvo.yaml", b"kind: Namespace\n"),
            (
                "release-manifests/release-metadata",
                br#"{"kind":"cincinnati-metadata-v0","version":"4.14.0"}"#,
            ),
            (IMAGE_REFERENCES_PATH, refs),
        ],
        gzip,
    )
}

#[test]
fn reads_gzip_and_plain_layers() {
    let d1 = dg(1);
    let d2 = dg(2);
    let refs = refs_json(&[
        ("cli", "quay.io/okd/scos-content", &d1),
        ("installer", "127.0.0.1:5000/okd/content", &d2),
    ]);
    for gzip in [true, false] {
        let got =
            read_image_references(&release_layer(&refs, gzip)[..], &Budget::default()).unwrap();
        assert_eq!(
            got,
            vec![
                ImageReference {
                    name: "cli".into(),
                    source: "quay.io/okd/scos-content".into(),
                    digest: d1.clone()
                },
                ImageReference {
                    name: "installer".into(),
                    source: "127.0.0.1:5000/okd/content".into(),
                    digest: d2.clone()
                },
            ]
        );
    }
    // `./` before the path, as some tar writers put it.
    let l = layer(&[("./release-manifests/image-references", &refs)], true);
    assert_eq!(
        read_image_references(&l[..], &Budget::default())
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn refuses_what_is_not_a_release_layer() {
    let b = Budget::default();
    let refs = refs_json(&[("cli", "quay.io/okd/c", &dg(1))]);
    // Random bytes: not a tar.
    let e = read_image_references(&[7u8; 2000][..], &b).unwrap_err();
    assert!(matches!(e, PayloadError::NotTar(_)), "{e}");
    // Gzip of something that is not a tar.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&[b'x'; 3000]).unwrap();
    let e = read_image_references(&gz.finish().unwrap()[..], &b).unwrap_err();
    assert!(matches!(e, PayloadError::NotTar(_)), "{e}");
    assert!(e.to_string().contains("not a tar archive"), "{e}");
    // A gzip header, then garbage.
    let mut broken = release_layer(&refs, true);
    broken.truncate(30);
    let e = read_image_references(&broken[..], &b).unwrap_err();
    assert!(matches!(e, PayloadError::NotGzip(_)), "{e}");
    // zstd.
    let e = read_image_references(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0][..], &b).unwrap_err();
    assert!(matches!(e, PayloadError::Compression("zstd")), "{e}");
    // A tar without image-references.
    let l = layer(&[("release-manifests/release-metadata", b"{}")], true);
    let e = read_image_references(&l[..], &b).unwrap_err();
    assert!(matches!(e, PayloadError::Missing), "{e}");
    assert!(
        e.to_string()
            .contains("no release-manifests/image-references")
    );
    // Empty input.
    let e = read_image_references(&[][..], &b).unwrap_err();
    assert!(matches!(e, PayloadError::Missing), "{e}");
}

#[test]
fn budgets_stop_reading() {
    let refs = refs_json(&[("cli", "quay.io/okd/c", &dg(1))]);
    let small = Budget {
        image_references_bytes: 64,
        layer_bytes: 1 << 20,
    };
    let e = read_image_references(&release_layer(&refs, true)[..], &small).unwrap_err();
    assert!(
        matches!(e, PayloadError::OverBudget { limit: 64, .. }),
        "{e}"
    );
    // A large first entry (a gzip bomb, say) passes the layer budget before the file.
    let big = vec![0u8; 4 << 20];
    let l = layer(&[("filler", &big), (IMAGE_REFERENCES_PATH, &refs)], true);
    assert!(l.len() < 64 << 10, "compresses well: {}", l.len());
    let tight = Budget {
        image_references_bytes: 1 << 20,
        layer_bytes: 1 << 20,
    };
    let e = read_image_references(&l[..], &tight).unwrap_err();
    assert!(matches!(e, PayloadError::LayerOverBudget { .. }), "{e}");
    // The same layer within the default budget is read.
    assert_eq!(
        read_image_references(&l[..], &Budget::default())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn image_references_must_be_an_image_stream_of_pinned_images() {
    let d = dg(1);
    let ok = |v: serde_json::Value| parse_image_references(&serde_json::to_vec(&v).unwrap());
    let stream = |tags: serde_json::Value| serde_json::json!({"kind": "ImageStream", "apiVersion": "image.openshift.io/v1", "spec": {"tags": tags}});
    for (doc, why) in [
        (serde_json::json!([1]), "not the JSON of an ImageStream"),
        (
            serde_json::json!({"kind": "Pod", "apiVersion": "v1"}),
            "`kind` is `Pod`",
        ),
        (
            serde_json::json!({"kind": "ImageStream", "apiVersion": "v1"}),
            "`apiVersion` is `v1`",
        ),
        (
            serde_json::json!({"kind": "ImageStream", "apiVersion": "image.openshift.io/v1"}),
            "no `spec.tags`",
        ),
        (stream(serde_json::json!([])), "names no component"),
        (
            stream(serde_json::json!([{"from": {"name": format!("q.io/a@{d}")}}])),
            "`spec.tags[0].name` is missing",
        ),
        (
            stream(serde_json::json!([{"name": "a"}])),
            "`from` is missing",
        ),
        (
            stream(
                serde_json::json!([{"name": "a", "from": {"kind": "ImageStreamTag", "name": "x:y"}}]),
            ),
            "expected `DockerImage`",
        ),
        (
            stream(serde_json::json!([{"name": "a", "from": {"name": "quay.io/okd/c:latest"}}])),
            "not pinned by digest",
        ),
        (
            stream(serde_json::json!([
                {"name": "a", "from": {"name": format!("q.io/a@{d}")}},
                {"name": "a", "from": {"name": format!("q.io/b@{d}")}}
            ])),
            "listed twice",
        ),
        (
            stream(serde_json::json!([{"name": "a/b", "from": {"name": format!("q.io/a@{d}")}}])),
            "component name",
        ),
    ] {
        let e = ok(doc).unwrap_err();
        assert!(matches!(e, PayloadError::Malformed(_)), "{e}");
        assert!(e.to_string().contains(why), "{why}: {e}");
    }
    // Not JSON at all: serde_json's line and column are in the message.
    let e = parse_image_references(b"{\n  \"kind\": ImageStream").unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn platforms_that_disagree_get_arch_tags() {
    let r = |name: &str, n: u8| ImageReference {
        name: name.into(),
        source: "quay.io/okd/c".into(),
        digest: dg(n),
    };
    let list = ComponentList::from_platforms(&[
        PlatformReferences {
            arch: Some("amd64".into()),
            references: vec![r("cli", 1), r("installer", 2), r("only-amd", 5)],
        },
        PlatformReferences {
            arch: Some("arm64".into()),
            references: vec![r("cli", 1), r("installer", 3)],
        },
    ])
    .unwrap();
    let tags: Vec<(String, Digest)> = list
        .tags("4.14.0")
        .unwrap()
        .into_iter()
        .map(|(t, c)| (t, c.digest.clone()))
        .collect();
    assert_eq!(
        tags,
        vec![
            ("4.14.0-amd64-installer".to_string(), dg(2)),
            ("4.14.0-arm64-installer".to_string(), dg(3)),
            ("4.14.0-cli".to_string(), dg(1)),
            ("4.14.0-only-amd".to_string(), dg(5)),
        ]
    );
    assert_eq!(list.len(), 4);
    // A single image: no arch anywhere.
    let single = ComponentList::from_platforms(&[PlatformReferences {
        arch: None,
        references: vec![r("cli", 1)],
    }])
    .unwrap();
    assert_eq!(single.components[0].tag("4.2.14_amd64"), "4.2.14_amd64-cli");
    assert_eq!(
        single.components[0].source_reference(),
        format!("quay.io/okd/c@{}", dg(1))
    );
}

#[test]
fn tags_too_long_or_shared_are_refused() {
    let list = ComponentList {
        components: vec![Component {
            name: "x".repeat(120),
            arch: None,
            source: "q.io/c".into(),
            digest: dg(1),
        }],
    };
    let e = list
        .tags("4.14.0-0.okd-scos-2023-10-11-084613")
        .unwrap_err();
    assert!(matches!(e, PayloadError::InvalidTag { .. }), "{e}");
    let shared = ComponentList {
        components: vec![
            Component {
                name: "amd64-cli".into(),
                arch: None,
                source: "q.io/c".into(),
                digest: dg(1),
            },
            Component {
                name: "cli".into(),
                arch: Some("amd64".into()),
                source: "q.io/c".into(),
                digest: dg(2),
            },
        ],
    };
    assert!(
        shared
            .tags("1.0.0")
            .unwrap_err()
            .to_string()
            .contains("both be tagged")
    );
}

#[test]
fn component_list_round_trips_as_json() {
    let list = ComponentList {
        components: vec![
            Component {
                name: "cli".into(),
                arch: None,
                source: "q.io/c".into(),
                digest: dg(1),
            },
            Component {
                name: "installer".into(),
                arch: Some("arm64".into()),
                source: "q.io/c".into(),
                digest: dg(2),
            },
        ],
    };
    let text = serde_json::to_string(&list).unwrap();
    assert!(!text.contains("\"arch\":null"), "{text}");
    assert_eq!(serde_json::from_str::<ComponentList>(&text).unwrap(), list);
    assert!(
        serde_json::from_str::<ComponentList>(
            r#"{"components":[{"name":"a","source":"q.io/c","digest":"sha256:zz"}]}"#
        )
        .is_err()
    );
}
