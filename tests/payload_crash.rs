//! A payload sync into `oci:` targets killed with SIGKILL at 22 moments never leaves a
//! release tag whose payload is incomplete, and a rerun converges.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relsync::digest::Digest;

use crate::fault_proxy::{FaultOptions, FaultProxy};
use crate::faults::{check_layout, progress};
use crate::util::{BuiltRelease, Repo, TestRegistry, block_on, payload_releases, push_release};

const VERSIONS: [&str; 2] = ["4.16.0", "4.16.1"];

fn write_repo(
    repo: &Repo,
    hosts: &[String],
    source: &str,
    releases: &[BuiltRelease],
    concurrency: usize,
) -> String {
    let entries: String = hosts
        .iter()
        .map(|h| format!("    - {{host: '{h}', insecure: true}}\n"))
        .collect();
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n{entries}  sync: {{concurrency: {concurrency}}}\n"
        ),
    );
    let list: String = releases.iter().map(|r| r.entry()).collect();
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {source}/okd/release\n  target: oci:live/release\n  payload: {{target: 'oci:live/content'}}\n  releases:\n{list}"
        ),
    );
    repo.write(
        "manifests/next.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: next}}\nspec:\n  stream: okd\n  tags: [next]\n  versions: [{}]\n",
            VERSIONS.join(", ")
        ),
    );
    repo.commit("payload stream")
}

fn spawn_sync(repo: &Repo, revision: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_relsync"))
        .args(["--revision", revision, "sync"])
        .current_dir(repo.path())
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every release tag of the release layout has its whole payload in the content layout:
/// each component tag there, holding the component's digest (and `check_layout` has
/// checked that every tag names complete content).
fn check_payloads(
    release_tags: &BTreeMap<String, Digest>,
    content_tags: &BTreeMap<String, Digest>,
    releases: &[BuiltRelease],
    moment: usize,
) {
    for (tag, digest) in release_tags {
        let r = releases
            .iter()
            .find(|r| r.digest() == *digest)
            .unwrap_or_else(|| panic!("moment {moment}: {tag} holds no release"));
        for (ctag, cdigest) in r.component_tags() {
            assert_eq!(
                content_tags.get(&ctag),
                Some(&cdigest),
                "moment {moment}: release tag {tag} is written but component tag {ctag} is not in place"
            );
        }
    }
}

#[test]
fn a_payload_sync_killed_at_22_moments_never_tags_a_release_with_an_incomplete_payload() {
    let src = TestRegistry::start();
    // Every read goes through a proxy that paces every body (the release images and the
    // components the releases name), so each file spends a while half written.
    let slow = FaultProxy::start(
        &src.host(),
        FaultOptions {
            latency: Some(Duration::from_millis(1)),
            body_pause: Some(Duration::from_millis(6)),
            ..Default::default()
        },
    );
    let releases = payload_releases(&VERSIONS, 6, 2, &format!("{}/okd/content", slow.host()));
    block_on(async {
        let pusher = src.pusher();
        for r in &releases {
            push_release(&pusher, "okd/release", "okd/content", r).await;
        }
    });
    let repo = Repo::new();
    let rev = write_repo(&repo, &[slow.host()], &slow.host(), &releases, 1);
    let (killed_rev, rerun_rev) = (rev.clone(), rev);
    let release_dir = repo.path().join("live/release");
    let content_dir = repo.path().join("live/content");
    let both = || progress(&release_dir) + progress(&content_dir);

    // One full run to learn where the end is, and what Git wants.
    let run = repo.relsync(&["--revision", &rerun_rev, "sync"]);
    run.expect_code(0);
    let end = both();
    let want_release = check_layout(&release_dir);
    let want_content = check_layout(&content_dir);
    assert_eq!(want_release.len(), 3, "{want_release:?}");
    assert_eq!(want_content.len(), 12, "{want_content:?}");

    // 20 moments spread over the run, and two more among the release's own writes at the
    // end (its image copied, then its tags), where a kill finds some release tags written.
    let mut moments: Vec<usize> = (0..20).map(|i| 1 + i * (end - 8) / 19).collect();
    moments.extend([end - 4, end - 2]);
    let started = Instant::now();
    let mut distinct = std::collections::BTreeSet::new();
    let mut release_tagged = 0;
    let mut payload_partial = 0;
    for &moment in &moments {
        let _ = std::fs::remove_dir_all(repo.path().join("live"));
        let mut child = spawn_sync(&repo, &killed_rev);
        let deadline = Instant::now() + Duration::from_secs(30);
        let seen = loop {
            let p = both();
            if p >= moment {
                break p;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("moment {moment}: the run ended ({status}) before it came, at {p} of {end}");
            }
            assert!(Instant::now() < deadline, "moment {moment} never came");
            std::thread::sleep(Duration::from_micros(200));
        };
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "moment {moment}: finished before the kill"
        );
        distinct.insert(seen);
        let release_tags = check_layout(&release_dir);
        let content_tags = check_layout(&content_dir);
        check_payloads(&release_tags, &content_tags, &releases, moment);
        release_tagged += usize::from(!release_tags.is_empty());
        payload_partial +=
            usize::from(!content_tags.is_empty() && content_tags.len() < want_content.len());

        let rerun = repo.relsync(&["--revision", &rerun_rev, "sync"]);
        rerun.expect_code(0);
        assert_eq!(
            check_layout(&release_dir),
            want_release,
            "moment {moment}: rerun"
        );
        assert_eq!(
            check_layout(&content_dir),
            want_content,
            "moment {moment}: rerun"
        );
    }
    eprintln!(
        "{} kills in {:?}: {} distinct moments, {release_tagged} with some release tag, {payload_partial} with a partial payload",
        moments.len(),
        started.elapsed(),
        distinct.len()
    );
    assert!(
        distinct.len() >= 20,
        "only {} distinct moments: {distinct:?}",
        distinct.len()
    );
    assert!(
        payload_partial >= 5,
        "only {payload_partial} kills landed mid-payload"
    );
    assert!(
        release_tagged >= 3,
        "only {release_tagged} kills landed after a release tag"
    );
}
