//! Docker credential helpers (`credHelpers`, `credsStore`) end to end: small helper programs
//! the tests write (real executables on PATH, the protocol on stdin and stdout), in front of
//! a real docker-registry with htpasswd auth.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use relsync::digest::Digest;

use crate::util::{Repo, Run, TestRegistry, block_on};

const USER: &str = "relsync";
const PASSWORD: &str = "Helper-Pw-6d1f0b";

/// A source registry with htpasswd auth holding one release, an anonymous target, and a
/// repository mirroring the release from one to the other.
struct Fixture {
    src: TestRegistry,
    dst: TestRegistry,
    repo: Repo,
    /// Holds the helpers (`bin/`), the auth file and an empty HOME.
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(src_extra: &str) -> Fixture {
        let src = TestRegistry::start_with_basic_auth(USER, PASSWORD);
        let dst = TestRegistry::start();
        let index: Digest = block_on(src.pusher().push_index("app/src", "1.0.0", "helper")).index;
        let repo = Repo::new();
        repo.write(
            "relsync.yaml",
            &format!(
                "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {{host: '{}', insecure: true{src_extra}}}\n    - {{host: '{}', insecure: true}}\n",
                src.host(),
                dst.host()
            ),
        );
        repo.write(
            "manifests/app.yaml",
            &format!(
                "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: app}}\nspec:\n  source: {}/app/src\n  target: {}/app/dst\n  releases:\n    - {{version: 1.0.0, digest: '{index}'}}\n---\napiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: stable}}\nspec: {{stream: app, tags: [stable], versions: [1.0.0]}}\n",
                src.host(),
                dst.host()
            ),
        );
        repo.commit("one release");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Fixture {
            src,
            dst,
            repo,
            dir,
        }
    }

    /// Writes `docker-credential-<name>`, a shell script that saves what it read on stdin
    /// (one line per call) to `<name>.calls` and then runs `body`.
    fn helper(&self, name: &str, body: &str) {
        let path = self
            .dir
            .path()
            .join("bin")
            .join(format!("docker-credential-{name}"));
        let calls = self.calls_file(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n[ \"$1\" = get ] || exit 9\nread -r server || true\necho \"$server\" >> '{}'\n{body}\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A helper answering with the registry's real credentials.
    fn good_helper(&self, name: &str) {
        self.helper(
            name,
            &format!(
                "printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\""
            ),
        );
    }

    fn calls_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.calls"))
    }

    /// The servers helper `name` was asked for, one per call.
    fn calls(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.calls_file(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Writes the auth file `$REGISTRY_AUTH_FILE` names.
    fn auth_file(&self, json: &str) {
        std::fs::write(self.dir.path().join("auth.json"), json).unwrap();
    }

    /// The environment relsync runs in: the helpers first on PATH, the auth file and an
    /// empty HOME.
    fn env(&self) -> Vec<(&'static str, String)> {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let auth = self.dir.path().join("auth.json").display().to_string();
        let home = self.dir.path().join("home").display().to_string();
        vec![
            ("PATH", path),
            ("REGISTRY_AUTH_FILE", auth),
            ("HOME", home.clone()),
            ("XDG_RUNTIME_DIR", home),
        ]
    }

    /// `relsync args` with the helpers first on PATH, the auth file, an empty HOME and
    /// `env`.
    fn relsync(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let base = self.env();
        let mut all: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(env);
        self.repo.relsync_env(args, &all)
    }

    fn mirrored(&self) -> Vec<String> {
        block_on(self.dst.pusher().tags("app/dst"))
    }
}

/// Exits 1 within `limit`, naming `helper` and the host; returns stderr.
#[track_caller]
fn refused(f: &Fixture, limit: Duration, env: &[(&str, &str)], helper: &str) -> String {
    let start = Instant::now();
    let run = f.relsync(&["sync"], env);
    let took = start.elapsed();
    run.expect_code(1);
    assert!(took < limit, "took {took:?}");
    let err = run.stderr();
    assert!(
        err.contains(&format!("docker-credential-{helper}")) && err.contains(&f.src.host()),
        "the error names neither the helper nor the host:\n{err}"
    );
    assert!(f.mirrored().is_empty(), "nothing is written");
    err
}

/// What a helper prints for a server it has nothing for (the protocol's words), exit 1.
const NOT_FOUND: &str = "echo 'credentials not found in native keychain'; exit 1";

#[test]
fn a_host_s_credential_helper_is_run_once_per_run_and_its_answer_never_shown() {
    let f = Fixture::new("");
    f.good_helper("good");
    // credsStore covers every host without a helper of its own: here the target, for
    // which it has nothing (anonymous access, as the protocol's "not found" says).
    f.helper("store", NOT_FOUND);
    f.auth_file(&format!(
        r#"{{"credsStore": "store", "credHelpers": {{"{}": "good"}}, "auths": {{}}}}"#,
        f.src.host()
    ));
    let run = f.relsync(&["-vvv", "sync"], &[]);
    run.expect_code(0);
    assert_eq!(f.mirrored(), ["1.0.0", "stable"]);
    assert_eq!(
        f.calls("good"),
        [f.src.host()],
        "asked once in the run, with the host on stdin"
    );
    assert_eq!(
        f.calls("store"),
        [f.dst.host()],
        "the store: only for the target"
    );
    let shown = format!("{}{}", run.stdout(), run.stderr());
    assert!(!shown.contains(PASSWORD), "the secret was logged:\n{shown}");

    // A second run asks again (a helper's tokens expire; nothing is kept between runs).
    f.relsync(&["plan"], &[]).expect_code(0);
    assert_eq!(f.calls("good").len(), 2);
}

#[test]
fn precedence_is_env_then_the_host_s_helper_then_the_store_then_auths() {
    let f = Fixture::new(", usernameEnv: H_USER, passwordEnv: H_PASS");
    use base64::Engine as _;
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:wrong-Pw-1"));
    f.good_helper("store");
    f.helper(
        "failing",
        "echo 'secret-ish output' >&2; echo 'oops-Out-3'; exit 3",
    );
    // The store has the right credentials and auths the wrong ones: the store wins.
    f.auth_file(&format!(
        r#"{{"credsStore": "store", "auths": {{"{}": {{"auth": "{wrong}"}}}}}}"#,
        f.src.host()
    ));
    f.relsync(&["plan"], &[]).expect_code(2);
    assert_eq!(f.calls("store").len(), 2, "asked for both hosts");

    // usernameEnv/passwordEnv, when set, win over every helper (the failing one is not run).
    f.auth_file(&format!(
        r#"{{"credHelpers": {{"{}": "failing"}}}}"#,
        f.src.host()
    ));
    f.relsync(&["plan"], &[("H_USER", USER), ("H_PASS", PASSWORD)])
        .expect_code(2);
    assert!(f.calls("failing").is_empty(), "{:?}", f.calls("failing"));

    // Without them, the host's helper is final: its failure is the run's error, named,
    // without what it printed.
    let err = refused(&f, Duration::from_secs(30), &[], "failing");
    assert!(err.contains("failed"), "{err}");
    assert!(
        !err.contains("oops-Out-3") && !err.contains("secret-ish"),
        "{err}"
    );
}

#[test]
fn a_helper_printing_garbage_a_missing_one_and_a_hanging_one_are_clear_errors() {
    let f = Fixture::new("");
    let host = f.src.host();
    // Garbage on stdout, with a secret-looking word in it that must not be quoted.
    f.helper("garbage", "echo 'Secret=hunter2-Garbage {not json'");
    f.auth_file(&format!(r#"{{"credHelpers": {{"{host}": "garbage"}}}}"#));
    let err = refused(&f, Duration::from_secs(30), &[], "garbage");
    assert!(err.contains("not a credential"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    // Not on PATH.
    f.auth_file(&format!(r#"{{"credHelpers": {{"{host}": "nosuch"}}}}"#));
    let err = refused(&f, Duration::from_secs(30), &[], "nosuch");
    assert!(err.contains("not on PATH"), "{err}");

    // One that never answers: killed after RELSYNC_CREDENTIAL_HELPER_TIMEOUT.
    f.helper("hang", "exec sleep 60");
    f.auth_file(&format!(r#"{{"credHelpers": {{"{host}": "hang"}}}}"#));
    let err = refused(
        &f,
        Duration::from_secs(20),
        &[("RELSYNC_CREDENTIAL_HELPER_TIMEOUT", "1")],
        "hang",
    );
    assert!(err.contains("did not answer within"), "{err}");
    assert_eq!(f.calls("hang"), std::slice::from_ref(&host));

    // A helper with nothing for the host: anonymous, and the registry's 401 says the rest.
    f.helper("empty", NOT_FOUND);
    f.auth_file(&format!(r#"{{"credHelpers": {{"{host}": "empty"}}}}"#));
    let run = f.relsync(&["sync"], &[]);
    run.expect_code(1);
    assert!(run.stderr().contains("401"), "{}", run.stderr());
}

/// The helper's name is a program name, nothing else (`../x` cannot run another program).
#[test]
fn a_helper_name_with_a_path_is_refused() {
    let f = Fixture::new("");
    let host = f.src.host();
    f.auth_file(&format!(
        r#"{{"credHelpers": {{"{host}": "../../bin/sh"}}}}"#
    ));
    let run = f.relsync(&["plan"], &[]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("not a program name"),
        "{}",
        run.stderr()
    );
}

/// `serve` runs for weeks while a helper's tokens expire within hours: its answer is used
/// for `RELSYNC_CREDENTIAL_HELPER_MAX_AGE` (10 minutes by default), then asked again.
#[test]
fn serve_asks_the_helper_again_once_its_answer_is_old() {
    let f = Fixture::new("");
    f.good_helper("good");
    // The target: every pass reads it (the source only when there is something to copy).
    f.auth_file(&format!(
        r#"{{"credHelpers": {{"{}": "good"}}, "auths": {{"{}": {{"username": "{USER}", "password": "{PASSWORD}"}}}}}}"#,
        f.dst.host(),
        f.src.host()
    ));
    let config = f.repo.read("relsync.yaml");
    f.repo.write(
        "relsync.yaml",
        &format!("{config}  sync: {{interval: 1s}}\n"),
    );
    let base = f.env();
    let mut env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("RELSYNC_CREDENTIAL_HELPER_MAX_AGE", "1"));
    let _serve = crate::ecosystem_notify::Serve::start_with(f.repo.path(), &env);
    crate::ecosystem_notify::wait_until("the helper asked three times", || {
        f.calls("good").len() >= 3
    });
    assert!(f.calls("good").iter().all(|h| *h == f.dst.host()));
    assert_eq!(f.mirrored(), ["1.0.0", "stable"]);
}

/// A helper answering the user `<token>` gives an identity token: exchanged at the
/// registry's token realm with an OAuth2 `refresh_token` POST, as Docker does, never sent
/// as a password.
#[test]
fn an_identity_token_from_a_helper_is_exchanged_by_post_at_the_token_realm() {
    let f = Fixture::new("");
    let proxy = crate::util::PagingProxy::start(
        &f.dst.base_url(),
        crate::util::ProxyOptions {
            bearer: Some(crate::util::BearerAuth::default()),
            ..Default::default()
        },
    );
    block_on(f.dst.pusher().push_image("app/dst", Some("other"), "x"));
    let repo = Repo::new();
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n    - {{host: '{}', insecure: true}}\n",
            proxy.host()
        ),
    );
    repo.write(
        "manifests/app.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: app}}\nspec:\n  source: {}/app/src\n  target: {}/app/dst\n  releases:\n    - {{version: 1.0.0, digest: 'sha256:{}'}}\n---\napiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {{name: stable}}\nspec: {{stream: app, tags: [stable], versions: [1.0.0]}}\n",
            f.src.host(),
            proxy.host(),
            "1".repeat(64)
        ),
    );
    repo.commit("a target behind bearer auth");
    f.helper(
        "idtoken",
        r#"printf '{"ServerURL":"%s","Username":"<token>","Secret":"refresh-Tok-4e1"}' "$server""#,
    );
    f.auth_file(&format!(
        r#"{{"credHelpers": {{"{}": "idtoken"}}}}"#,
        proxy.host()
    ));
    let base = f.env();
    let env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = repo.relsync_env(&["-vvv", "plan"], &env);
    run.expect_code(2);
    let tokens: Vec<String> = proxy
        .log()
        .into_iter()
        .filter(|l| l.contains("/token"))
        .collect();
    assert!(!tokens.is_empty(), "{:?}", proxy.log());
    assert!(
        tokens.iter().all(|l| l.starts_with("POST /token")),
        "{tokens:?}"
    );
    assert!(
        !run.stderr().contains("refresh-Tok-4e1"),
        "{}",
        run.stderr()
    );
}
