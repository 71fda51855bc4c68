//! Generated large manifests, shared by tests/manifests.rs and
//! `benches/manifest_scaling.rs`.

use relsync::manifest::SourceFile;

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.to_string(),
        contents: text.as_bytes().to_vec(),
    }
}

/// A stream of `2n` releases, channels `a` and `b` each listing the first `n` and
/// tombstoning the other `n`, and a policy `channelSubsets: [[a, b]]`.
pub fn large_channels(n: usize) -> Vec<SourceFile> {
    let head = "apiVersion: relsync.dev/v1alpha1\n";
    let mut stream = format!(
        "{head}kind: ReleaseStream\nmetadata: {{name: s}}\nspec:\n  source: r.example/a\n  target: q.example/a\n  releases:\n"
    );
    for i in 0..2 * n {
        stream += &format!("    - {{version: 1.{i}.0, digest: 'sha256:{i:064x}'}}\n");
    }
    let channel = |name: &str| {
        let mut c = format!(
            "{head}kind: ReleaseChannel\nmetadata: {{name: {name}}}\nspec:\n  stream: s\n  tags: [{name}]\n  versions:\n"
        );
        for i in 0..n {
            c += &format!("    - 1.{i}.0\n");
        }
        c += "  tombstones:\n";
        for i in n..2 * n {
            c += &format!("    - 1.{i}.0\n");
        }
        c
    };
    let policy =
        format!("{head}kind: Policy\nmetadata: {{name: p}}\nspec:\n  channelSubsets: [[a, b]]\n");
    vec![
        file("manifests/s.yaml", &stream),
        file("manifests/a.yaml", &channel("a")),
        file("manifests/b.yaml", &channel("b")),
        file("policies/p.yaml", &policy),
    ]
}
