//! The three-release fixture of the mirror and interop tests: a source registry holding
//! three multi-arch releases and a Git repository whose stream publishes them to a target,
//! with channels `okd-next` (floating tag `next`) and `okd-stable` (`stable`).

use relsync::digest::Digest;

use super::{Repo, TestRegistry, block_on};

/// The fixture's versions, oldest first.
pub const VERSIONS: [&str; 3] = ["4.14.0", "4.15.0", "4.16.0"];
/// The source repository the releases are pushed to.
pub const SOURCE: &str = "okd/ci";
/// The target repository the stream publishes to.
pub const TARGET: &str = "okd/release";

/// Pushes the three releases to `src` and writes and commits a repository that mirrors them
/// to `dst_host` (`dst_extra`: more settings of the target's registry entry, such as
/// `, deleteByDigest: true`), `next` listing all three and `stable` the first two. Returns
/// the repository and the releases' index digests, in `VERSIONS` order.
pub fn three_releases(src: &TestRegistry, dst_host: &str, dst_extra: &str) -> (Repo, Vec<Digest>) {
    let pusher = src.pusher();
    let digests = block_on(async {
        let mut out = Vec::new();
        for v in VERSIONS {
            out.push(
                pusher
                    .push_index(SOURCE, v, &format!("release-{v}"))
                    .await
                    .index,
            );
        }
        out
    });
    let repo = Repo::new();
    write_registries(&repo, &src.host(), dst_host, dst_extra);
    let releases: String = VERSIONS
        .iter()
        .zip(&digests)
        .map(|(v, d)| format!("    - {{version: {v}, digest: '{d}'}}\n"))
        .collect();
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {}/{SOURCE}\n  target: {dst_host}/{TARGET}\n  releases:\n{releases}",
            src.host(),
        ),
    );
    write_channels(&repo, &VERSIONS, &VERSIONS[..2]);
    repo.commit("three releases");
    (repo, digests)
}

/// Writes `relsync.yaml`: the source registry `src_host` and the target `dst_host`
/// (`dst_extra`: more settings of its entry, such as `, deleteByDigest: true`), both plain
/// HTTP.
pub fn write_registries(repo: &Repo, src_host: &str, dst_host: &str, dst_extra: &str) {
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {{host: '{src_host}', insecure: true}}\n    - {{host: '{dst_host}', insecure: true{dst_extra}}}\n",
        ),
    );
}

/// (Re)writes the two channel files: `okd-next` lists `next`, `okd-stable` lists `stable`.
pub fn write_channels(repo: &Repo, next: &[&str], stable: &[&str]) {
    let channel = |name: &str, tag: &str, versions: &[&str]| {
        format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: {name}}}\nspec:\n  stream: okd\n  tags: [{tag}]\n  versions: [{}]\n",
            versions.join(", ")
        )
    };
    repo.write("manifests/next.yaml", &channel("okd-next", "next", next));
    repo.write(
        "manifests/stable.yaml",
        &channel("okd-stable", "stable", stable),
    );
}
