/// The manifest layer's own judgement (no derived-state checks), for these tests.
fn load(files: &[SourceFile], policies_dir: &str) -> Result<Manifests, Diagnostics> {
    super::super::validate(files, policies_dir).into_result()
}

use super::*;

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.to_string(),
        contents: text.as_bytes().to_vec(),
    }
}

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

fn stream(order: &str, releases: &str) -> String {
    format!(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: app\nspec:\n  source: r.example/src\n  target: r.example/dst\n  order: {order}\n  releases:{releases}"
    )
}

fn channel(versions: &str) -> String {
    format!(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: next\nspec:\n  stream: app\n  versions:{versions}"
    )
}

fn releases3() -> String {
    format!(
        "\n    - version: 1.0.0\n      digest: {D1}\n    # the middle one\n    - version: 1.1.0\n      digest: {D2}\n      tags: [one-one]\n    - version: 1.2.0\n      digest: {D3}\n"
    )
}

fn promote(files: &[SourceFile], version: &str) -> Result<Edited, EditError> {
    let before = load(files, "policies").expect("valid before");
    edit(
        files,
        "policies",
        &before,
        Change::Promote {
            channel: "next",
            version,
        },
        load,
    )
}

#[test]
fn block_list_insert_keeps_every_other_byte() {
    let ch = channel("\n    - 1.0.0   # first\n\n    # later ones\n    - 1.2.0\n# end\n");
    let files = [
        file("s.yaml", &stream("semver", &releases3())),
        file("c.yaml", &ch),
    ];
    let e = promote(&files, "1.1.0").unwrap();
    assert_eq!(
        e.contents,
        ch.replace("    # later ones\n", "    # later ones\n    - 1.1.0\n")
    );
    assert_eq!((e.index, e.line), (1, 11));
}

#[test]
fn append_after_last_and_quotes_and_crlf() {
    let ch = channel("\n    - \"1.0.0\"\n    - \"1.1.0\"  # x\n  # trailing comment\n")
        .replace('\n', "\r\n");
    let files = [
        file("s.yaml", &stream("semver", &releases3())),
        file("c.yaml", &ch),
    ];
    let e = promote(&files, "1.2.0").unwrap();
    assert_eq!(
        e.contents,
        ch.replace("# x\r\n", "# x\r\n    - \"1.2.0\"\r\n")
    );
    assert_eq!(e.line, 10);
}

#[test]
fn flow_and_empty_lists() {
    let s = stream("semver", &releases3());
    let ch = channel(" [1.0.0, 1.2.0]  # flow\n");
    let e = promote(&[file("s.yaml", &s), file("c.yaml", &ch)], "1.1.0").unwrap();
    assert_eq!(
        e.contents,
        ch.replace("[1.0.0, 1.2.0]", "[1.0.0, 1.1.0, 1.2.0]")
    );
    let e = promote(&[file("s.yaml", &s), file("c.yaml", &ch)], "1.2.0");
    // Already listed twice would be invalid: the caller refuses before; here the
    // re-parse reports the duplicate.
    assert!(matches!(e, Err(EditError::Invalid(_))), "{e:?}");
    let ch = channel(" []  # none yet\n");
    let e = promote(&[file("s.yaml", &s), file("c.yaml", &ch)], "1.1.0").unwrap();
    assert_eq!(
        e.contents,
        ch.replace(
            "versions: []  # none yet\n",
            "versions:  # none yet\n    - 1.1.0\n"
        )
    );
}

#[test]
fn descending_and_unsorted_lists() {
    let s = stream("semver", &releases3());
    let ch = channel("\n    - 1.2.0\n    - 1.0.0\n");
    let e = promote(&[file("s.yaml", &s), file("c.yaml", &ch)], "1.1.0").unwrap();
    assert_eq!(e.contents, ch.replace("- 1.0.0", "- 1.1.0\n    - 1.0.0"));
    let ch = channel("\n    - 1.2.0\n    - 1.0.0\n    - 1.1.0\n");
    let s2 = stream(
        "semver",
        &format!(
            "{}    - version: 0.9.0\n      digest: sha256:{}\n",
            releases3(),
            "4".repeat(64)
        ),
    );
    let e = promote(&[file("s.yaml", &s2), file("c.yaml", &ch)], "0.9.0").unwrap();
    assert_eq!(e.index, 3, "unsorted: appended");
}

#[test]
fn listed_order_uses_the_stream_position() {
    let s = stream("listed", &releases3());
    let ch = channel("\n    - 1.0.0\n    - 1.2.0\n");
    let e = promote(&[file("s.yaml", &s), file("c.yaml", &ch)], "1.1.0").unwrap();
    assert_eq!(e.index, 1);
}

#[test]
fn add_release_in_order_or_last() {
    let s = stream("semver", &releases3());
    let files = [file("s.yaml", &s)];
    let before = load(&files, "policies").unwrap();
    let d = Digest::parse(&format!("sha256:{}", "5".repeat(64))).unwrap();
    let e = edit(
        &files,
        "policies",
        &before,
        Change::AddRelease {
            stream: "app",
            version: "1.1.5",
            digest: &d,
        },
        load,
    )
    .unwrap();
    assert_eq!(
        e.contents,
        s.replace(
            "    - version: 1.2.0\n",
            &format!("    - version: 1.1.5\n      digest: {d}\n    - version: 1.2.0\n")
        )
    );
    assert_eq!(e.line, 16);
    let e = edit(
        &files,
        "policies",
        &before,
        Change::AddRelease {
            stream: "app",
            version: "2.0.0",
            digest: &d,
        },
        load,
    )
    .unwrap();
    assert_eq!(
        e.contents,
        format!("{s}    - version: 2.0.0\n      digest: {d}\n")
    );
    assert_eq!(e.line, 18);
    // A stream with no releases yet.
    let s = stream("listed", " []\n");
    let files = [file("s.yaml", &s)];
    let before = load(&files, "policies").unwrap();
    let e = edit(
        &files,
        "policies",
        &before,
        Change::AddRelease {
            stream: "app",
            version: "x-1",
            digest: &d,
        },
        load,
    )
    .unwrap();
    assert_eq!(
        e.contents,
        s.replace(
            "releases: []\n",
            &format!("releases:\n    - version: x-1\n      digest: {d}\n")
        )
    );
}

#[test]
fn second_document_of_a_file_with_a_byte_order_mark() {
    let s = stream("semver", &releases3());
    let two = format!(
        "\u{feff}{}\n---\n{}",
        channel("\n    - 1.0.0\n"),
        channel(" []\n").replace("name: next", "name: other")
    );
    let files = [file("s.yaml", &s), file("c.yaml", &two)];
    let before = load(&files, "policies").unwrap();
    let e = edit(
        &files,
        "policies",
        &before,
        Change::Promote {
            channel: "other",
            version: "1.2.0",
        },
        load,
    )
    .unwrap();
    let (head, tail) = two.split_at(two.find("---").unwrap());
    assert_eq!(
        e.contents,
        format!(
            "{head}{}",
            tail.replace("versions: []\n", "versions:\n    - 1.2.0\n")
        )
    );
    assert_eq!(e.line, 18);
    let e = promote(&files, "1.2.0").unwrap();
    assert_eq!(
        e.contents,
        two.replacen("    - 1.0.0\n", "    - 1.0.0\n    - 1.2.0\n", 1)
    );
    assert_eq!(e.line, 9);
}

#[test]
fn flow_mapping_releases_are_refused() {
    let s = stream(
        "semver",
        &format!("\n    - {{version: 1.0.0, digest: {D1}}}\n"),
    );
    let files = [file("s.yaml", &s)];
    let before = load(&files, "policies").unwrap();
    let err = edit(
        &files,
        "policies",
        &before,
        Change::AddRelease {
            stream: "app",
            version: "1.1.0",
            digest: &Digest::parse(D2).unwrap(),
        },
        load,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "s.yaml:10:17: releases written as flow mappings (`{version: …, digest: …}`) are not edited; add the release by hand"
    );
}
