//! Hostile input, end to end through the `relsync` binary: YAML bombs, oversized and
//! non-UTF-8 manifests, symbolic links leading out of the repository, registries that lie
//! (through the rewriting proxy in `util`, in front of a real docker-registry), `oci:`
//! layouts that point outside themselves, secrets at trace level, TLS and plain HTTP, and
//! authentication (htpasswd basic auth, bearer tokens revoked early).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use relsync::config::{Config, RegistrySettings};
use relsync::digest::Digest;
use relsync::manifest::{Located, Span};
use relsync::registry::{CredentialLookup, Registries, TargetReader};

use crate::util::{
    BearerAuth, LinkStyle, PagingProxy, ProxyOptions, Repo, Run, TestRegistry, block_on, free_port,
    http_status, tls_dir,
};

const CONFIG_HEAD: &str = "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n";

/// A repository with `relsync.yaml` (no registries) and `files` in the working tree.
fn repo_with(files: &[(&str, &[u8])]) -> Repo {
    let repo = Repo::new();
    repo.write(
        "relsync.yaml",
        &format!("{CONFIG_HEAD}  sync: {{prune: false}}\n"),
    );
    for (path, bytes) in files {
        let p = repo.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    repo
}

/// Runs `relsync args`, checks it exits 1 within `limit`, and returns its stderr.
#[track_caller]
fn fails_within(repo: &Repo, args: &[&str], limit: Duration) -> String {
    let started = Instant::now();
    let run = repo.relsync(args);
    let took = started.elapsed();
    run.expect_code(1);
    assert!(took < limit, "relsync {args:?} took {took:?}");
    run.stderr()
}

// ---------------------------------------------------------------------------------------------
// YAML bombs, size, encoding.

/// The classic billion laughs: nine levels of nine aliases (387 million strings if expanded).
fn billion_laughs(indent: &str) -> String {
    let mut text = format!("{indent}- &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (prev, next) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        text.push_str(&format!("{indent}- &{next} [{refs}]\n"));
    }
    text
}

const CHANNEL_HEAD: &str = "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {name: c}\nspec:\n  stream: s\n";

#[test]
fn yaml_bombs_are_stopped_with_an_error_naming_the_file_and_exit_1_from_validate_and_plan() {
    let long = "x".repeat(64 * 1024);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            // Top-level keys a..i, as in the textbook example.
            "laughs-top",
            billion_laughs("")
                .lines()
                .map(|l| format!("{}: {}\n", &l[3..4], &l[2..]))
                .collect::<String>(),
            "manifests/bomb.yaml:1:1:",
        ),
        (
            "laughs-in-spec",
            format!(
                "{CHANNEL_HEAD}  versions:\n{}  tombstones: *i\n",
                billion_laughs("    ")
            ),
            "manifests/bomb.yaml:7:10: `spec.versions[0]` must be a string, found a list",
        ),
        (
            // Valid in shape: one 64 KiB version string repeated by 300 aliases (19 MiB).
            "scalar-amplification",
            format!(
                "{CHANNEL_HEAD}  versions:\n    - &v {long}\n{}",
                "    - *v\n".repeat(300)
            ),
            "document expands to more than 16 MiB of text (counting alias expansions): refusing a possible alias bomb",
        ),
        (
            "alias-flood",
            format!(
                "{CHANNEL_HEAD}  versions:\n    - &v 1.0.0\n{}",
                "    - *v\n".repeat(5000)
            ),
            "too many aliases (more than 1000 in one document): refusing a possible alias bomb",
        ),
        (
            "deep-nesting",
            format!(
                "{CHANNEL_HEAD}  versions: {}{}\n",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
            "manifests/bomb.yaml:6:268: nesting deeper than 64 levels",
        ),
    ];
    // The textbook example really is one: its first line is `a: &a [...]`.
    assert!(cases[0].1.starts_with("a: &a [lol"), "{}", cases[0].1);
    assert!(cases[0].1.contains("\ni: &i [*h, *h"), "{}", cases[0].1);
    for (name, text, expected) in &cases {
        let repo = repo_with(&[("manifests/bomb.yaml", text.as_bytes())]);
        let check = |stderr: &str, command: &str| {
            assert!(
                stderr.starts_with("manifests/bomb.yaml:") && stderr.contains(expected),
                "{name}, {command}: expected `{expected}` in:\n{stderr}"
            );
            assert!(
                stderr.contains("nothing was written"),
                "{name}, {command}: {stderr}"
            );
        };
        // The working tree (validate as a pre-commit hook) ...
        let stderr = fails_within(&repo, &["validate"], Duration::from_secs(10));
        check(&stderr, "validate");
        // ... and committed content (plan reads the revision only).
        repo.commit(name);
        let stderr = fails_within(&repo, &["plan"], Duration::from_secs(10));
        check(&stderr, "plan");
    }
}

#[test]
fn a_50_mib_manifest_is_refused_before_parsing_by_validate_and_plan() {
    // Generated here, never committed to relsync's own repository.
    let mut big = b"apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\n".to_vec();
    big.resize(50 * 1024 * 1024, b'#');
    let repo = repo_with(&[("manifests/big.yaml", &big)]);
    let expected =
        "manifests/big.yaml: file is 52428800 bytes, over the 16777216-byte limit for manifests";
    let stderr = fails_within(&repo, &["validate"], Duration::from_secs(10));
    assert!(stderr.contains(expected), "{stderr}");
    repo.commit("big");
    let stderr = fails_within(&repo, &["plan"], Duration::from_secs(10));
    assert!(stderr.contains(expected), "{stderr}");
}

#[test]
fn a_non_utf8_manifest_is_named_with_its_line_by_validate_and_plan() {
    let latin1 =
        b"apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {name: caf\xe9}\n";
    let utf16 = b"\xff\xfea\x00p\x00i\x00V\x00e\x00r\x00s\x00i\x00o\x00n\x00:\x00\n\x00";
    let repo = repo_with(&[
        ("manifests/latin1.yaml", latin1),
        ("manifests/utf16.yaml", utf16),
    ]);
    for command in ["validate", "plan"] {
        if command == "plan" {
            repo.commit("encodings");
        }
        let stderr = fails_within(&repo, &[command], Duration::from_secs(10));
        assert!(
            stderr.contains("manifests/latin1.yaml:3:21: file is not valid UTF-8 text"),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains("manifests/utf16.yaml:1:1: file is not valid UTF-8 text"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn a_symlink_in_the_manifests_directory_pointing_outside_the_repository_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    // Content that would be reported if it were read.
    std::fs::write(
        outside.path().join("evil.yaml"),
        "apiVersion: relsync.dev/v1alpha1\nkind: ReadFromOutside\n",
    )
    .unwrap();
    let target = outside.path().to_path_buf();
    // A linked file, a linked directory inside manifests/, and manifests/ itself a link.
    let cases: [(&str, &str, std::path::PathBuf); 3] = [
        (
            "manifests/evil.yaml",
            "manifests/evil.yaml",
            target.join("evil.yaml"),
        ),
        ("manifests/sub", "manifests/sub", target.clone()),
        ("manifests", "manifests", target.clone()),
    ];
    for (link, named, points_to) in &cases {
        let repo = repo_with(&[]);
        let at = repo.path().join(link);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(points_to, &at).unwrap();
        let expected =
            format!("{named}: symbolic links are not read in the desired-state directories");
        let stderr = fails_within(&repo, &["validate"], Duration::from_secs(10));
        assert!(stderr.contains(&expected), "{link}: validate: {stderr}");
        assert!(!stderr.contains("ReadFromOutside"), "{link}: {stderr}");
        // Committed as a link (git stores the link, mode 120000).
        repo.commit("a link");
        let tree = repo.git(&["ls-tree", "-r", "HEAD"]);
        assert!(tree.contains("120000"), "{tree}");
        let stderr = fails_within(&repo, &["plan"], Duration::from_secs(10));
        assert!(stderr.contains(&expected), "{link}: plan: {stderr}");
        assert!(!stderr.contains("ReadFromOutside"), "{link}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Registries that misbehave: the proxy rewrites a real docker-registry's answers.

/// A Git repository publishing `versions` (with `digests`) from `source` to `target`, both
/// repositories on hosts listed in `registries` (YAML flow mappings, one per host).
fn registry_repo(
    registries: &[String],
    source: &str,
    target: &str,
    versions: &[(&str, &Digest)],
) -> Repo {
    let repo = Repo::new();
    let hosts: String = registries.iter().map(|r| format!("    - {r}\n")).collect();
    repo.write(
        "relsync.yaml",
        &format!("{CONFIG_HEAD}  registries:\n{hosts}  sync: {{interval: 1s}}\n"),
    );
    let releases: String = versions
        .iter()
        .map(|(v, d)| format!("    - version: {v}\n      digest: '{d}'\n"))
        .collect();
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: app}}\nspec:\n  source: {source}\n  target: {target}\n  releases:\n{releases}"
        ),
    );
    let all: Vec<&str> = versions.iter().map(|(v, _)| *v).collect();
    repo.write(
        "manifests/channels.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: next}}\nspec: {{stream: app, tags: [next], versions: [{}]}}\n---\napiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: stable}}\nspec: {{stream: app, tags: [stable], versions: [{}]}}\n",
            all.join(", "),
            all[0]
        ),
    );
    repo.commit("releases");
    repo
}

fn insecure(host: &str) -> String {
    format!("{{host: '{host}', insecure: true}}")
}

/// A source whose manifests come back digest-false (one byte more) or oversized, through
/// the proxy: `sync` refuses it, and the target gets no tag and no manifest.
#[test]
fn sync_refuses_source_manifests_that_are_digest_false_or_over_4_mib_and_tags_nothing() {
    let (src, dst) = (TestRegistry::start(), TestRegistry::start());
    let idx = block_on(src.pusher().push_index("app/src", "1.0.0", "hostile-src"));
    for (padding, expected) in [
        (1usize, "content does not match its digest"),
        (relsync::registry::MAX_MANIFEST_BYTES + 1, "4194304"),
    ] {
        let proxy = PagingProxy::start(
            &src.base_url(),
            ProxyOptions {
                manifest_padding: Some(padding),
                ..Default::default()
            },
        );
        let repo = registry_repo(
            &[insecure(&proxy.host()), insecure(&dst.host())],
            &format!("{}/app/src", proxy.host()),
            &format!("{}/app/dst", dst.host()),
            &[("1.0.0", &idx.index)],
        );
        let run = repo.relsync(&["sync"]);
        run.expect_code(1);
        let stderr = run.stderr();
        assert!(
            stderr.contains(expected) && stderr.contains("app/src"),
            "padding {padding}: {stderr}"
        );
        assert_eq!(block_on(dst.pusher().tags("app/dst")), Vec::<String>::new());
        let writes = dst.served_writes();
        assert!(
            !writes.iter().any(|w| w.contains("/manifests/")),
            "padding {padding}: a manifest was written: {writes:?}"
        );
        // Nothing was tagged, so the plan still has everything to do.
        repo.relsync(&["plan"]).expect_code(2);
    }
}

/// A target whose tag list pages with a `Link` to another host, or never ends: `plan`
/// (which lists the target's tags) stops with a clear error.
#[test]
fn plan_stops_at_a_link_to_another_host_and_at_a_tag_list_that_never_ends() {
    let reg = TestRegistry::start();
    let tags: Vec<String> = (0..3).map(|i| format!("1.0.{i}")).collect();
    let pushed = block_on(reg.pusher().push_many("app/dst", &tags, 3));
    let digest = pushed["1.0.0"].clone();

    let foreign = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            page_size: Some(1),
            link: LinkStyle::ForeignHost,
            ..Default::default()
        },
    );
    let repo = registry_repo(
        &[insecure(&foreign.host()), insecure(&reg.host())],
        &format!("{}/app/src", reg.host()),
        &format!("{}/app/dst", foreign.host()),
        &[("1.0.0", &digest)],
    );
    let run = repo.relsync(&["plan"]);
    run.expect_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!("{}/app/dst", foreign.host()))
            && stderr.contains(&format!(
                "http://localhost:{}",
                foreign.host().split(':').nth(1).unwrap()
            )),
        "{stderr}"
    );
    let followed = foreign
        .log()
        .iter()
        .filter(|l| l.contains("/tags/list"))
        .count();
    assert_eq!(
        followed,
        1,
        "the foreign Link was followed: {:?}",
        foreign.log()
    );

    let endless = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            page_size: Some(5000),
            endless_tags: true,
            ..Default::default()
        },
    );
    let repo = registry_repo(
        &[insecure(&endless.host()), insecure(&reg.host())],
        &format!("{}/app/src", reg.host()),
        &format!("{}/app/dst", endless.host()),
        &[("1.0.0", &digest)],
    );
    let started = Instant::now();
    let run = repo.relsync(&["plan"]);
    run.expect_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!("{}/app/dst", endless.host()))
            && stderr.contains("more than 1000000 tags; giving up"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    let pages = endless
        .log()
        .iter()
        .filter(|l| l.contains("/tags/list"))
        .count();
    assert!(pages <= 201, "{pages} pages");
}

/// A source that redirects blob GETs to another host: the blobs are fetched from there,
/// without the registry's credentials (neither the token nor the basic password).
#[test]
fn sync_follows_blob_redirects_to_another_host_without_forwarding_credentials() {
    let (src, dst) = (TestRegistry::start(), TestRegistry::start());
    let idx = block_on(src.pusher().push_index("app/src", "1.0.0", "redirected"));
    let proxy = PagingProxy::start(
        &src.base_url(),
        ProxyOptions {
            bearer: Some(BearerAuth {
                credentials: Some(("robot".into(), "redirect-Pw-3318".into())),
                access_token_field: false,
            }),
            redirect_blobs: true,
            ..Default::default()
        },
    );
    let repo = registry_repo(
        &[
            format!(
                "{{host: '{}', insecure: true, usernameEnv: SRC_USER, passwordEnv: SRC_PASS}}",
                proxy.host()
            ),
            insecure(&dst.host()),
        ],
        &format!("{}/app/src", proxy.host()),
        &format!("{}/app/dst", dst.host()),
        &[("1.0.0", &idx.index)],
    );
    let env = [("SRC_USER", "robot"), ("SRC_PASS", "redirect-Pw-3318")];
    repo.relsync_env(&["sync"], &env).expect_code(0);
    let seen = proxy.storage_authorizations();
    // Two platform images: two configs and four layers.
    assert_eq!(seen.len(), 6, "{:?}", proxy.log());
    assert!(seen.iter().all(Option::is_none), "{seen:?}");
    assert_eq!(
        block_on(dst.pusher().tags("app/dst")),
        ["1.0.0", "next", "stable"]
    );
    repo.relsync(&["plan"]).expect_code(0);
}

// ---------------------------------------------------------------------------------------------
// `oci:` layouts that name paths outside themselves.

/// Replaces the target layout's index.json with one whose entry for a desired tag has a
/// digest that is a path (`sha256:../../…`): the digest is refused, nothing is read there.
#[test]
fn an_oci_layout_index_naming_a_path_outside_the_layout_is_refused() {
    let repo = Repo::example();
    let layout = repo.path().join("example/quay.io/okd/scos-release");
    let escape = "sha256:../../../../../../../../etc/passwd";
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": escape,
            "size": 1,
            "annotations": {"org.opencontainers.image.ref.name": "4-scos-stable"},
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    for args in [&["plan"][..], &["drift"], &["sync"]] {
        let run = repo.relsync(args);
        run.expect_code(1);
        let stderr = run.stderr();
        assert!(
            stderr.contains("../../etc/passwd") && stderr.contains("digest"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("root:"), "{stderr}");
    }
}

/// Every blob of the source layout replaced by a symbolic link to an identical copy outside
/// it: the content would verify, but the layout must not be read outside its directory.
#[test]
fn an_oci_layout_whose_blobs_are_symlinks_out_of_the_layout_is_refused() {
    let repo = Repo::example();
    let blobs = repo
        .path()
        .join("example/registry.ci.openshift.org/origin/release-scos/blobs/sha256");
    let outside = tempfile::tempdir().unwrap();
    let mut linked = 0;
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let copy = outside.path().join(path.file_name().unwrap());
        std::fs::rename(&path, &copy).unwrap();
        std::os::unix::fs::symlink(&copy, &path).unwrap();
        linked += 1;
    }
    assert!(linked > 0);
    let target_index = repo
        .path()
        .join("example/quay.io/okd/scos-release/index.json");
    let before = std::fs::read(&target_index).ok();
    let run = repo.relsync(&["sync"]);
    run.expect_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains("is a symbolic link; refusing to follow it out of the layout")
            && stderr.contains("blobs/sha256/"),
        "{stderr}"
    );
    // Tags whose content the target already holds may move; every release that needed
    // content from the linked source is still to be mirrored.
    let after = std::fs::read(&target_index).ok();
    assert!(before.is_some() && after.is_some());
    let plan = repo.relsync(&["plan", "-o", "json"]);
    plan.expect_code(2);
    let mirrors = plan.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "mirror")
        .count();
    assert!(mirrors > 0, "{}", plan.stdout());

    // A target layout whose `blobs` directory is a link out: nothing is written through it.
    let repo = Repo::example();
    let target = repo.path().join("example/quay.io/okd/scos-release");
    let elsewhere = tempfile::tempdir().unwrap();
    if target.join("blobs").exists() {
        crate::util::copy_dir(&target.join("blobs"), &elsewhere.path().join("blobs"));
        std::fs::remove_dir_all(target.join("blobs")).unwrap();
    } else {
        std::fs::create_dir_all(elsewhere.path().join("blobs")).unwrap();
        std::fs::create_dir_all(&target).unwrap();
    }
    std::os::unix::fs::symlink(elsewhere.path().join("blobs"), target.join("blobs")).unwrap();
    let files_before = count_files(elsewhere.path());
    let run = repo.relsync(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("blobs is a symbolic link"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        count_files(elsewhere.path()),
        files_before,
        "written through the link"
    );
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| {
                let p = e.unwrap().path();
                if p.is_dir() { count_files(&p) } else { 1 }
            })
            .sum()
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Secrets.

const SRC_USER: &str = "relsync-src";
const SRC_PASSWORD: &str = "Src-Pw-5b0d2c7e-unique";
const DST_USER: &str = "relsync-robot";
const DST_PASSWORD: &str = "Dst-Pw-91aa4f03-unique";
const WRONG_PASSWORD: &str = "Wrong-Pw-77c1e9d2-unique";
const GIT_USER: &str = "alice";
const GIT_PASSWORD: &str = "Git-Pw-3e6b0a51-unique";

/// Runs `relsync -vvv args` with `RUST_LOG=trace` and the registry credentials.
fn traced(repo: &Repo, args: &[&str], dst_password: &str) -> Run {
    let mut all = vec!["-vvv"];
    all.extend_from_slice(args);
    repo.relsync_env(
        &all,
        &[
            ("RUST_LOG", "trace"),
            ("SRC_USER", SRC_USER),
            ("SRC_PASS", SRC_PASSWORD),
            ("DST_USER", DST_USER),
            ("DST_PASS", dst_password),
        ],
    )
}

#[test]
fn no_password_or_token_appears_in_the_output_of_any_command_at_trace_level() {
    // Source: HTTPS (test CA through caFile) with htpasswd basic auth. Target: plain HTTP,
    // bearer tokens from the proxy's token server, which wants basic credentials itself.
    let src = TestRegistry::start_tls_with_basic_auth(SRC_USER, SRC_PASSWORD);
    let dst = TestRegistry::start();
    let proxy = PagingProxy::start(
        &dst.base_url(),
        ProxyOptions {
            bearer: Some(BearerAuth {
                credentials: Some((DST_USER.into(), DST_PASSWORD.into())),
                access_token_field: false,
            }),
            ..Default::default()
        },
    );
    let pusher = src.pusher();
    let (d1, d2, _d3) = block_on(async {
        (
            pusher
                .push_index("app/src", "1.0.0", "secret-1")
                .await
                .index,
            pusher
                .push_index("app/src", "1.1.0", "secret-2")
                .await
                .index,
            pusher
                .push_index("app/src", "1.2.0", "secret-3")
                .await
                .index,
        )
    });
    let repo = registry_repo(
        &[
            format!(
                "{{host: '{}', caFile: '{}', usernameEnv: SRC_USER, passwordEnv: SRC_PASS}}",
                src.host(),
                tls_dir().join("ca.pem").display()
            ),
            format!(
                "{{host: '{}', insecure: true, usernameEnv: DST_USER, passwordEnv: DST_PASS}}",
                proxy.host()
            ),
        ],
        &format!("{}/app/src", src.host()),
        &format!("{}/app/dst", proxy.host()),
        &[("1.0.0", &d1), ("1.1.0", &d2)],
    );
    let first = repo.git(&["rev-parse", "HEAD"]);

    let mut outputs: Vec<(String, Run)> = Vec::new();
    let mut run = |args: &[&str], code: Option<i32>, password: &str| {
        let r = traced(&repo, args, password);
        if let Some(c) = code {
            r.expect_code(c);
        }
        outputs.push((args.join(" "), r));
    };
    run(&["validate"], Some(0), DST_PASSWORD);
    run(&["plan"], Some(2), DST_PASSWORD);
    run(&["plan", "-o", "json"], Some(2), DST_PASSWORD);
    run(&["drift", "-o", "markdown"], Some(2), DST_PASSWORD);
    run(&["sync", "--dry-run"], Some(2), DST_PASSWORD);
    run(&["sync"], Some(0), DST_PASSWORD);
    run(&["history"], Some(0), DST_PASSWORD);
    run(
        &["add", "1.2.0", "--stream", "app", "--from", "1.2.0"],
        Some(0),
        DST_PASSWORD,
    );
    repo.commit("add 1.2.0");
    run(
        &["promote", "1.2.0", "--to", "next", "--commit"],
        Some(0),
        DST_PASSWORD,
    );
    run(&["check", "--base", &first], Some(0), DST_PASSWORD);
    run(&["sync"], Some(0), DST_PASSWORD);
    run(&["drift"], Some(0), DST_PASSWORD);
    run(
        &["rollback", "--to-revision", &first],
        Some(0),
        DST_PASSWORD,
    );
    run(&["history", "-o", "json"], None, DST_PASSWORD);
    // Refused credentials: the error path must not show them either.
    run(&["plan"], Some(1), WRONG_PASSWORD);
    run(&["sync"], Some(1), WRONG_PASSWORD);

    // The same repository as a Git remote over smart HTTP with Basic auth, the password in
    // the URL: every command that reads a revision, from a directory outside the repository.
    let served = tempfile::tempdir().unwrap();
    repo.git(&[
        "clone",
        "-q",
        "--bare",
        ".",
        served.path().join("repo.git").to_str().unwrap(),
    ]);
    let git_http = crate::git_remote::GitHttp::start(served.path(), GIT_USER, GIT_PASSWORD);
    let url = git_http
        .url("repo.git")
        .replace("http://", &format!("http://{GIT_USER}:{GIT_PASSWORD}@"));
    let site = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let config = repo.read("relsync.yaml");
    std::fs::write(
        site.path().join("relsync.yaml"),
        config.replace("spec:\n", &format!("spec:\n  git: {{repo: '{url}'}}\n")),
    )
    .unwrap();
    let mut remote_outputs: Vec<(String, Run)> = Vec::new();
    for args in [
        &["validate"][..],
        &["plan"],
        &["drift", "-o", "json"],
        &["sync", "--dry-run"],
        &["sync"],
        &["check", "--base", &first],
        &["rollback", "--to-revision", &first],
        &["history"],
    ] {
        let mut all = vec!["-vvv"];
        all.extend_from_slice(args);
        let r = Run(Command::new(env!("CARGO_BIN_EXE_relsync"))
            .args(&all)
            .current_dir(site.path())
            .env_remove("KUBECONFIG")
            .env_remove("RELSYNC_GIT_USERNAME")
            .env_remove("RELSYNC_GIT_PASSWORD")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "trace")
            .env("RELSYNC_CACHE_DIR", cache.path())
            .env("SRC_USER", SRC_USER)
            .env("SRC_PASS", SRC_PASSWORD)
            .env("DST_USER", DST_USER)
            .env("DST_PASS", DST_PASSWORD)
            .output()
            .unwrap());
        assert!(
            matches!(r.code(), 0 | 2) && !r.stderr().contains("cannot fetch"),
            "relsync {args:?} on the remote: {}",
            r.stderr()
        );
        remote_outputs.push((format!("{} (remote)", args.join(" ")), r));
    }
    assert!(
        remote_outputs[0]
            .1
            .stderr()
            .contains(&git_http.url("repo.git")),
        "the URL is named, without its password"
    );
    outputs.extend(remote_outputs);

    // serve, for a few seconds (it reconciles every second), then SIGTERM.
    let port = free_port();
    let log = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (log.path().join("out"), log.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_relsync"))
        .args(["-vvv", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(repo.path())
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "trace")
        .env("SRC_USER", SRC_USER)
        .env("SRC_PASS", SRC_PASSWORD)
        .env("DST_USER", DST_USER)
        .env("DST_PASS", DST_PASSWORD)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_status(port, "/readyz") != Some(200) {
        assert!(Instant::now() < deadline, "serve did not get ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let status = block_on(async {
        reqwest::get(format!("http://127.0.0.1:{port}/api/v1/status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    let serve_out = format!(
        "{}{}{status}",
        std::fs::read_to_string(&out_path).unwrap(),
        std::fs::read_to_string(&err_path).unwrap()
    );

    let b64 =
        |u: &str, p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
    let mut secrets = vec![
        SRC_PASSWORD.to_string(),
        DST_PASSWORD.to_string(),
        WRONG_PASSWORD.to_string(),
        b64(SRC_USER, SRC_PASSWORD),
        b64(DST_USER, DST_PASSWORD),
        b64(DST_USER, WRONG_PASSWORD),
        GIT_PASSWORD.to_string(),
        b64(GIT_USER, GIT_PASSWORD),
    ];
    let tokens = proxy.issued_tokens();
    assert!(!tokens.is_empty(), "the target issued no token");
    secrets.extend(tokens);
    let mut everything = serve_out.clone();
    for (args, r) in &outputs {
        for secret in &secrets {
            assert!(
                !r.stdout().contains(secret.as_str()) && !r.stderr().contains(secret.as_str()),
                "`relsync {args}` printed a secret ({secret}):\n--- stdout\n{}\n--- stderr\n{}",
                r.stdout(),
                r.stderr()
            );
        }
        everything.push_str(&r.stdout());
        everything.push_str(&r.stderr());
    }
    for secret in &secrets {
        assert!(
            !serve_out.contains(secret.as_str()),
            "serve printed a secret ({secret})"
        );
    }
    // The logs really were at trace level and talked about the registries.
    assert!(everything.contains("TRACE"), "no trace output at all");
    assert!(serve_out.contains("TRACE"), "serve logged nothing at trace");
    assert!(everything.contains(&proxy.host()) && everything.contains(&src.host()));
    assert!(
        everything.contains("401"),
        "the refused credentials were reported"
    );
}

// ---------------------------------------------------------------------------------------------
// HTTPS and plain HTTP.

#[test]
fn an_https_registry_with_an_untrusted_certificate_is_refused_by_default_and_accepted_with_ca_file()
{
    let reg = TestRegistry::start_tls();
    let idx = block_on(reg.pusher().push_index("app/src", "1.0.0", "tls"));
    let ca = tls_dir().join("ca.pem");
    for (entry, code) in [
        // Listed, not insecure: HTTPS with the system roots.
        (format!("{{host: '{}'}}", reg.host()), 1),
        // Not listed at all: the same.
        (String::new(), 1),
        (
            format!("{{host: '{}', caFile: '{}'}}", reg.host(), ca.display()),
            2,
        ),
    ] {
        let registries: Vec<String> = if entry.is_empty() {
            vec![]
        } else {
            vec![entry.clone()]
        };
        let repo = registry_repo(
            &registries,
            &format!("{}/app/src", reg.host()),
            &format!("{}/app/dst", reg.host()),
            &[("1.0.0", &idx.index)],
        );
        let run = repo.relsync(&["plan"]);
        run.expect_code(code);
        if code == 1 {
            let stderr = run.stderr();
            assert!(
                stderr.contains(&reg.host()) && stderr.to_lowercase().contains("certificate"),
                "{entry}: {stderr}"
            );
        }
    }
}

#[test]
fn plain_http_is_used_only_for_hosts_marked_insecure() {
    let reg = TestRegistry::start();
    let idx = block_on(reg.pusher().push_index("app/src", "1.0.0", "plain"));
    let served = reg.served_requests().len();
    for (entry, code) in [
        (format!("{{host: '{}'}}", reg.host()), 1),
        (format!("{{host: '{}', insecure: false}}", reg.host()), 1),
        (String::new(), 1),
    ] {
        let registries: Vec<String> = if entry.is_empty() {
            vec![]
        } else {
            vec![entry.clone()]
        };
        let repo = registry_repo(
            &registries,
            &format!("{}/app/src", reg.host()),
            &format!("{}/app/dst", reg.host()),
            &[("1.0.0", &idx.index)],
        );
        let run = repo.relsync(&["plan"]);
        run.expect_code(code);
        let stderr = run.stderr();
        assert!(
            stderr.contains(&format!("{}/app/dst", reg.host()))
                && stderr.contains("cannot reach the registry over HTTPS (it seems to speak plain HTTP, which relsync only uses for hosts marked `insecure: true` in relsync.yaml)"),
            "{entry}: {stderr}"
        );
    }
    // No plain-HTTP request reached the registry (TLS handshakes are not HTTP requests).
    assert_eq!(
        reg.served_requests().len(),
        served,
        "{:?}",
        reg.served_requests()
    );
    let repo = registry_repo(
        &[insecure(&reg.host())],
        &format!("{}/app/src", reg.host()),
        &format!("{}/app/dst", reg.host()),
        &[("1.0.0", &idx.index)],
    );
    repo.relsync(&["plan"]).expect_code(2);
    assert!(reg.served_requests().len() > served);
}

// ---------------------------------------------------------------------------------------------
// Authentication against real servers.

#[test]
fn htpasswd_basic_auth_end_to_end_and_a_wrong_password_is_a_clear_401() {
    const USER: &str = "relsync";
    const PASSWORD: &str = "Basic-Pw-0c8e55aa";
    let src = TestRegistry::start_with_basic_auth(USER, PASSWORD);
    let dst = TestRegistry::start_with_basic_auth(USER, PASSWORD);
    let idx = block_on(src.pusher().push_index("app/src", "1.0.0", "basic"));
    let cred = |host: String| {
        format!("{{host: '{host}', insecure: true, usernameEnv: R_USER, passwordEnv: R_PASS}}")
    };
    let repo = registry_repo(
        &[cred(src.host()), cred(dst.host())],
        &format!("{}/app/src", src.host()),
        &format!("{}/app/dst", dst.host()),
        &[("1.0.0", &idx.index)],
    );
    // Without credentials: 401, named.
    let run = repo.relsync(&["plan"]);
    run.expect_code(1);
    assert!(run.stderr().contains("401"), "{}", run.stderr());
    let wrong = repo.relsync_env(&["sync"], &[("R_USER", USER), ("R_PASS", "nope-Pw-1")]);
    wrong.expect_code(1);
    assert!(
        wrong.stderr().contains("401") && !wrong.stderr().contains("nope-Pw-1"),
        "{}",
        wrong.stderr()
    );
    let env = [("R_USER", USER), ("R_PASS", PASSWORD)];
    repo.relsync_env(&["sync"], &env).expect_code(0);
    assert_eq!(
        block_on(dst.pusher().tags("app/dst")),
        ["1.0.0", "next", "stable"]
    );
    repo.relsync_env(&["plan"], &env).expect_code(0);
}

fn settings(host: &str) -> RegistrySettings {
    RegistrySettings {
        host: Located::new(host.to_string(), Span::file("relsync.yaml")),
        insecure: true,
        ca_file: None,
        username_env: None,
        password_env: None,
        map_to: None,
        token_realms: Vec::new(),
        delete_by_digest: false,
        rate_limit: None,
    }
}

/// The token server revokes tokens after a second although it announced five minutes: the
/// client's cached token gets 401, and it must fetch a new one and carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_revoked_before_its_expiry_is_refreshed_on_401() {
    let reg = TestRegistry::start();
    let img = reg.pusher().push_image("tok/app", Some("v1"), "ttl").await;
    let proxy = PagingProxy::start(
        &reg.base_url(),
        ProxyOptions {
            bearer: Some(BearerAuth {
                credentials: None,
                access_token_field: false,
            }),
            token_ttl: Some(Duration::from_secs(1)),
            ..Default::default()
        },
    );
    let config = Config {
        registries: vec![settings(&proxy.host())],
        ..Default::default()
    };
    let r = Registries::from_config_with(
        &config,
        Path::new("/nonexistent"),
        CredentialLookup::new(Arc::new(|_: &str| None), Vec::new()),
    )
    .unwrap();
    let app = r.repository(&format!("{}/tok/app", proxy.host())).unwrap();
    assert_eq!(
        app.resolve_tag("v1").await.unwrap(),
        Some(img.manifest.clone())
    );
    assert_eq!(proxy.token_request_count(), 1);
    assert_eq!(app.list_tags().await.unwrap(), ["v1"]);
    assert_eq!(
        proxy.token_request_count(),
        1,
        "the token is reused while good"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        app.resolve_tag("v1").await.unwrap(),
        Some(img.manifest.clone())
    );
    assert_eq!(
        proxy.token_request_count(),
        2,
        "a new token after the 401: {:?}",
        proxy.log()
    );
    assert_eq!(app.list_tags().await.unwrap(), ["v1"]);
    assert_eq!(proxy.token_request_count(), 2);
}

/// The same end to end: a whole `sync` through a token server whose tokens live 300 ms,
/// with every answer held 100 ms, so tokens die in the middle of the copy (uploads
/// included): the sync succeeds and converges. Regression: a token revoked between an
/// upload's POST and its streamed PUT (which cannot answer a challenge) failed the copy
/// with a 401 that was not retried.
#[test]
fn sync_through_short_lived_bearer_tokens_refreshes_them_and_converges() {
    let (src, dst) = (TestRegistry::start(), TestRegistry::start());
    let pusher = src.pusher();
    let (d1, d2) = block_on(async {
        (
            pusher.push_index("app/src", "1.0.0", "ttl-1").await.index,
            pusher.push_index("app/src", "1.1.0", "ttl-2").await.index,
        )
    });
    let proxy = PagingProxy::start(
        &dst.base_url(),
        ProxyOptions {
            bearer: Some(BearerAuth {
                credentials: Some(("robot".into(), "ttl-Pw-4411".into())),
                access_token_field: true,
            }),
            token_ttl: Some(Duration::from_millis(300)),
            delay: Some(Duration::from_millis(100)),
            ..Default::default()
        },
    );
    let repo = registry_repo(
        &[
            insecure(&src.host()),
            format!(
                "{{host: '{}', insecure: true, usernameEnv: T_USER, passwordEnv: T_PASS}}",
                proxy.host()
            ),
        ],
        &format!("{}/app/src", src.host()),
        &format!("{}/app/dst", proxy.host()),
        &[("1.0.0", &d1), ("1.1.0", &d2)],
    );
    let env = [("T_USER", "robot"), ("T_PASS", "ttl-Pw-4411")];
    repo.relsync_env(&["sync"], &env).expect_code(0);
    assert!(
        proxy.token_request_count() >= 4,
        "tokens fetched: {}",
        proxy.token_request_count()
    );
    assert_eq!(
        block_on(dst.pusher().tags("app/dst")),
        ["1.0.0", "1.1.0", "next", "stable"]
    );
    repo.relsync_env(&["plan"], &env).expect_code(0);
}
