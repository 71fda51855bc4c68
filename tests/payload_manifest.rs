//! `payload.target` on a ReleaseStream: parsed, validated, errors at file:line:col.

use relsync::manifest::{SourceFile, validate};

fn stream(payload: &str) -> Vec<SourceFile> {
    let text = format!(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: okd\nspec:\n  source: quay.io/okd/ci\n  target: quay.io/okd/release\n{payload}  releases:\n    - version: 4.14.0\n      digest: sha256:{}\n",
        "a".repeat(64)
    );
    vec![SourceFile {
        path: "manifests/stream.yaml".to_string(),
        contents: text.into_bytes(),
    }]
}

#[test]
fn payload_target_is_read() {
    for target in ["quay.io/okd/scos-content", "oci:mirror/content"] {
        let v = validate(
            &stream(&format!("  payload:\n    target: {target}\n")),
            "policies",
        );
        assert!(!v.problems.has_errors(), "{}", v.problems);
        let s = &v.manifests.streams["okd"];
        assert_eq!(s.payload.as_ref().unwrap().target.value, target);
    }
    let v = validate(&stream(""), "policies");
    assert!(v.manifests.streams["okd"].payload.is_none());
}

#[test]
fn bad_payload_targets_are_errors_at_their_place() {
    for (payload, at, why) in [
        (
            "  payload:\n    target: Quay.io/okd/Content\n",
            "manifests/stream.yaml:9:13",
            "invalid `spec.payload.target` `Quay.io/okd/Content`",
        ),
        (
            "  payload:\n    target: scos-content\n",
            "manifests/stream.yaml:9:13",
            "the registry host is missing",
        ),
        (
            "  payload:\n    target: 'oci:'\n",
            "manifests/stream.yaml:9:13",
            "`oci:` needs a directory",
        ),
        (
            "  payload:\n    target: quay.io/okd/c:latest\n",
            "manifests/stream.yaml:9:13",
            "a repository, not a tag",
        ),
        (
            "  payload:\n    targte: quay.io/okd/c\n",
            "manifests/stream.yaml:9:5",
            "unknown field `targte`",
        ),
        (
            "  payload: {}\n",
            "manifests/stream.yaml:8:12",
            "missing field `spec.payload.target`",
        ),
    ] {
        let v = validate(&stream(payload), "policies");
        let text = v.problems.to_string();
        assert!(v.problems.has_errors(), "{payload}");
        assert!(text.contains(at), "{at}: {text}");
        assert!(text.contains(why), "{why}: {text}");
        if payload.contains("target:") {
            assert!(!v.manifests.streams.contains_key("okd"), "{payload}");
        }
    }
    // `payload` belongs to streams only.
    let channel = SourceFile {
        path: "manifests/c.yaml".to_string(),
        contents: b"apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {name: c}\nspec:\n  stream: okd\n  payload: {target: quay.io/x/y}\n  versions: [4.14.0]\n".to_vec(),
    };
    let mut files = stream("");
    files.push(channel);
    let text = validate(&files, "policies").problems.to_string();
    assert!(
        text.contains("manifests/c.yaml:6:")
            && text.contains("unknown field `payload` in ReleaseChannel spec"),
        "{text}"
    );
}
