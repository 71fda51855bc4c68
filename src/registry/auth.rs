//! Credentials and registry authentication: where user names and passwords come from
//! (environment variables named in `relsync.yaml`, else the Docker/Podman auth file), how a
//! `WWW-Authenticate` challenge is read, and how bearer tokens are cached. An auth file's
//! `credHelpers` and `credsStore` are run through [`super::credential_helper`].
//!
//! Secrets never reach logs, errors or `Debug` output: [`Credentials`] redacts itself.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::RegistryError;
use super::credential_helper;

/// A user name and password (or token) for one registry host. `Debug` never shows either.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// Pairs a user name with a password or token.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password or token. Handle with care: never log it.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials { username: <redacted>, password: <redacted> }")
    }
}

/// Reads an environment variable; injectable so that tests need not touch the process
/// environment (which threads share).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What each credential helper answered, and when, by (helper, host).
type HelperAnswers = HashMap<(String, String), (Option<Credentials>, Instant)>;

/// How long a credential helper's answer is used before the helper is asked again: its
/// tokens expire (ECR's after 12 hours, GCR's after one), and `serve` runs for weeks.
pub(crate) const HELPER_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// Where credentials are looked up: environment variables (through an injectable lookup)
/// and the auth files tried in order.
#[derive(Clone)]
pub struct CredentialLookup {
    env: EnvLookup,
    auth_files: Vec<PathBuf>,
    /// What each credential helper answered, by (helper, host).
    helper_cache: Arc<Mutex<HelperAnswers>>,
}

impl fmt::Debug for CredentialLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialLookup")
            .field("auth_files", &self.auth_files)
            .finish_non_exhaustive()
    }
}

impl CredentialLookup {
    /// The process environment and the usual auth files: `$REGISTRY_AUTH_FILE`, then
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, then `~/.docker/config.json`.
    pub fn from_process_env() -> Self {
        Self::from_env_fn(Arc::new(|name: &str| std::env::var(name).ok()))
    }

    /// Like [`CredentialLookup::from_process_env`], with `env` standing in for the process
    /// environment (both for the variables `relsync.yaml` names and for the auth file
    /// locations).
    pub fn from_env_fn(env: EnvLookup) -> Self {
        let mut auth_files = Vec::new();
        if let Some(p) = env("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
            auth_files.push(PathBuf::from(p));
        }
        if let Some(dir) = env("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
            auth_files.push(Path::new(&dir).join("containers").join("auth.json"));
        }
        if let Some(home) = env("HOME").filter(|p| !p.is_empty()) {
            auth_files.push(Path::new(&home).join(".docker").join("config.json"));
        }
        CredentialLookup {
            env,
            auth_files,
            helper_cache: Arc::default(),
        }
    }

    /// An explicit environment lookup and an explicit list of auth files.
    pub fn new(env: EnvLookup, auth_files: Vec<PathBuf>) -> Self {
        CredentialLookup {
            env,
            auth_files,
            helper_cache: Arc::default(),
        }
    }

    /// The auth files tried, in order.
    pub fn auth_files(&self) -> &[PathBuf] {
        &self.auth_files
    }

    /// The credentials for `host`: from the environment variables `username_env` and
    /// `password_env` when both are named and set, else from the first auth file that has an
    /// entry for the host, else none (anonymous).
    pub(crate) fn credentials_for(
        &self,
        host: &str,
        username_env: Option<&str>,
        password_env: Option<&str>,
    ) -> Result<Option<Credentials>, RegistryError> {
        match (username_env, password_env) {
            (Some(u), Some(p)) => match ((self.env)(u), (self.env)(p)) {
                (Some(user), Some(pass)) => return Ok(Some(Credentials::new(user, pass))),
                _ => tracing::warn!(
                    host,
                    "environment variable {u} or {p} is not set; trying the auth file"
                ),
            },
            (None, None) => {}
            _ => tracing::warn!(
                host,
                "only one of usernameEnv and passwordEnv is set; trying the auth file"
            ),
        }
        for file in &self.auth_files {
            let contents = match std::fs::read(file) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(RegistryError::Credentials {
                        host: host.to_string(),
                        message: format!("cannot read auth file {}: {e}", file.display()),
                    });
                }
            };
            let in_file = |message: String| RegistryError::Credentials {
                host: host.to_string(),
                message: format!("auth file {}: {message}", file.display()),
            };
            let parsed = parse_auth_file(&contents).map_err(in_file)?;
            // As Docker: credHelpers[host], then credsStore, then auths. A store without
            // credentials for the host falls through to auths; a host's own helper is final.
            let helper = match parsed.helper_for(host) {
                Some(own) => Some((own, true)),
                None => parsed
                    .creds_store
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .map(|store| (store, false)),
            };
            if let Some((helper, final_answer)) = helper {
                match self.helper_credentials(helper, host)? {
                    Some(c) => {
                        tracing::debug!(host, helper, "credentials from a credential helper");
                        return Ok(Some(c));
                    }
                    None if final_answer => return Ok(None),
                    None => {}
                }
            }
            if let Some(c) = credentials_from_auths(host, &parsed).map_err(in_file)? {
                tracing::debug!(host, file = %file.display(), "credentials from auth file");
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

impl CredentialLookup {
    /// Runs helper `name` for `host`, once per host and helper for [`HELPER_MAX_AGE`].
    fn helper_credentials(
        &self,
        name: &str,
        host: &str,
    ) -> Result<Option<Credentials>, RegistryError> {
        let key = (name.to_string(), host.to_string());
        let mut cache = self.helper_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((c, at)) = cache.get(&key)
            && at.elapsed() < self.helper_max_age()
        {
            return Ok(c.clone());
        }
        let timeout = self
            .seconds("RELSYNC_CREDENTIAL_HELPER_TIMEOUT")
            .unwrap_or(credential_helper::DEFAULT_TIMEOUT);
        let answer = credential_helper::get(name, helper_server(host), timeout).map_err(|e| {
            RegistryError::Credentials {
                host: host.to_string(),
                message: e.to_string(),
            }
        })?;
        cache.insert(key, (answer.clone(), Instant::now()));
        Ok(answer)
    }

    /// Whether credentials for `host` came from a helper longer than [`HELPER_MAX_AGE`]
    /// ago: a client holding them should be made again (which asks the helper again).
    pub(crate) fn helper_answer_stale(&self, host: &str) -> bool {
        let max = self.helper_max_age();
        self.helper_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|((_, h), (_, at))| h == host && at.elapsed() >= max)
    }

    /// [`HELPER_MAX_AGE`], or `RELSYNC_CREDENTIAL_HELPER_MAX_AGE` seconds.
    fn helper_max_age(&self) -> Duration {
        self.seconds("RELSYNC_CREDENTIAL_HELPER_MAX_AGE")
            .unwrap_or(HELPER_MAX_AGE)
    }

    /// A positive number of seconds (fractions allowed) from the environment variable
    /// `name`; `None` when unset or not such a number.
    fn seconds(&self, name: &str) -> Option<Duration> {
        (self.env)(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
            .map(Duration::from_secs_f64)
    }
}

#[derive(serde::Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    /// Per-host credential helpers (`docker-credential-<name>`).
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    /// The helper for every host without one of its own.
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

impl AuthFile {
    /// The helper `credHelpers` names for `host` (by one of its auth keys, or a key with a
    /// scheme or path on such a host).
    fn helper_for(&self, host: &str) -> Option<&str> {
        let keys = auth_keys(host);
        keys.iter()
            .find_map(|k| self.cred_helpers.get(*k))
            .or_else(|| {
                let mut matching: Vec<(&String, &String)> = self
                    .cred_helpers
                    .iter()
                    .filter(|(k, _)| keys.contains(&key_host(k)))
                    .collect();
                matching.sort();
                matching.into_iter().next().map(|(_, v)| v)
            })
            .map(String::as_str)
            .filter(|h| !h.is_empty())
    }
}

#[derive(serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The names an auth file may use for `host`.
fn auth_keys(host: &str) -> Vec<&str> {
    if host == "registry-1.docker.io" || host == "docker.io" || host == "index.docker.io" {
        vec![
            "docker.io",
            "registry-1.docker.io",
            "index.docker.io",
            "https://index.docker.io/v1/",
        ]
    } else {
        vec![host]
    }
}

/// The host part of an auth file key (`quay.io`, `https://quay.io/v1/`, `quay.io/okd`).
fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// Reads `auths.<host>` from a Docker `config.json` or a containers `auth.json`. Errors are
/// messages that never contain the file's secrets.
#[cfg(test)]
fn credentials_from_auth_file(host: &str, contents: &[u8]) -> Result<Option<Credentials>, String> {
    credentials_from_auths(host, &parse_auth_file(contents)?)
}

fn parse_auth_file(contents: &[u8]) -> Result<AuthFile, String> {
    serde_json::from_slice(contents).map_err(|e| {
        // serde_json's messages name a position, never the input itself.
        format!("not valid JSON ({e})")
    })
}

/// The server name a helper is asked for: the host, or Docker Hub's historical URL.
fn helper_server(host: &str) -> &str {
    if auth_keys(host).len() > 1 {
        "https://index.docker.io/v1/"
    } else {
        host
    }
}

/// Reads `auths.<host>` of a parsed auth file.
fn credentials_from_auths(host: &str, file: &AuthFile) -> Result<Option<Credentials>, String> {
    let keys = auth_keys(host);
    // Exact keys first, then keys written as URLs or with a repository path.
    let entry = keys.iter().find_map(|k| file.auths.get(*k)).or_else(|| {
        let mut matching: Vec<(&String, &AuthEntry)> = file
            .auths
            .iter()
            .filter(|(k, _)| keys.contains(&key_host(k)))
            .collect();
        matching.sort_by(|a, b| a.0.cmp(b.0));
        matching.into_iter().next().map(|(_, e)| e)
    });
    let Some(entry) = entry else {
        return Ok(None);
    };
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| format!("the `auth` of {host} is not base64"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| format!("the `auth` of {host} is not UTF-8"))?;
        let Some((user, pass)) = decoded.split_once(':') else {
            return Err(format!("the `auth` of {host} is not `user:password`"));
        };
        return Ok(Some(Credentials::new(user, pass)));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Some(Credentials::new(u.clone(), p.clone()))),
        _ => Ok(None),
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=...`.
    Basic,
    /// `Bearer realm=...,service=...,scope=...`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the challenges of `WWW-Authenticate` header values; prefers Bearer over Basic.
pub(crate) fn parse_challenges<'a>(values: impl Iterator<Item = &'a str>) -> Option<Challenge> {
    let mut basic = false;
    for value in values {
        for (scheme, params) in split_challenges(value) {
            if scheme.eq_ignore_ascii_case("bearer") {
                let get = |k: &str| {
                    params
                        .iter()
                        .find(|(pk, _)| pk.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.clone())
                };
                if let Some(realm) = get("realm") {
                    return Some(Challenge::Bearer {
                        realm,
                        service: get("service"),
                        scope: get("scope"),
                    });
                }
            } else if scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            }
        }
    }
    basic.then_some(Challenge::Basic)
}

/// Splits one header value into challenges: `(scheme, [(key, value)])`.
fn split_challenges(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // Skip separators.
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        // A token: either a scheme or a parameter name.
        let start = i;
        while i < b.len() && !(b[i] == b'=' || b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if start == i {
            i += 1;
            continue;
        }
        let token = value[start..i].to_string();
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' && !out.is_empty() {
            // A parameter of the current challenge.
            j += 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let mut v = String::new();
            if j < b.len() && b[j] == b'"' {
                j += 1;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' && j + 1 < b.len() {
                        j += 1;
                    }
                    // Push whole UTF-8 characters.
                    let ch_len = utf8_len(b[j]);
                    v.push_str(&value[j..(j + ch_len).min(b.len())]);
                    j += ch_len;
                }
                j += 1;
            } else {
                let vs = j;
                while j < b.len() && b[j] != b',' && !b[j].is_ascii_whitespace() {
                    j += 1;
                }
                v.push_str(&value[vs..j]);
            }
            if let Some(last) = out.last_mut() {
                last.1.push((token, v));
            }
            i = j;
        } else {
            out.push((token, Vec::new()));
        }
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// The answer of a token endpoint.
#[derive(serde::Deserialize)]
pub(crate) struct TokenAnswer {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// A bearer token and when it stops being used.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from an answer: `token` or `access_token`; lifetime `expires_in` (default 60
    /// s, as the distribution token spec says), used until 10 s before it ends.
    pub fn from_answer(answer: TokenAnswer) -> Option<Token> {
        let value = answer
            .token
            .filter(|t| !t.is_empty())
            .or(answer.access_token.filter(|t| !t.is_empty()))?;
        let lifetime = answer.expires_in.unwrap_or(60).clamp(10, 24 * 3600);
        Some(Token {
            value,
            expires: Instant::now() + Duration::from_secs(lifetime - 5),
        })
    }

    /// Whether the token can still be sent.
    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_credentials() {
        let c = Credentials::new("alice", "s3cret-password");
        let s = format!("{c:?}");
        assert!(!s.contains("alice") && !s.contains("s3cret"), "{s}");
    }

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = parse_challenges(
            [r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull,push""#]
                .into_iter(),
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/ubuntu:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenges([r#"Basic realm="basic-realm""#].into_iter()),
            Some(Challenge::Basic)
        );
        // Bearer wins over Basic, in one header or several.
        assert!(matches!(
            parse_challenges([r#"Basic realm="x", Bearer realm="https://t/x""#].into_iter()),
            Some(Challenge::Bearer { .. })
        ));
        assert_eq!(parse_challenges(["Negotiate"].into_iter()), None);
        assert_eq!(
            parse_challenges([r#"Bearer realm="a\"b""#].into_iter()),
            Some(Challenge::Bearer {
                realm: "a\"b".into(),
                service: None,
                scope: None
            })
        );
    }

    #[test]
    fn reads_auth_files() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:pa:ss");
        let file = format!(
            r#"{{"auths": {{"quay.io": {{"auth": "{auth}"}}, "https://index.docker.io/v1/": {{"auth": "{auth}"}}, "127.0.0.1:5000": {{"username": "u", "password": "p"}}}}}}"#
        );
        let c = credentials_from_auth_file("quay.io", file.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!((c.username(), c.password()), ("bob", "pa:ss"));
        let c = credentials_from_auth_file("registry-1.docker.io", file.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(c.username(), "bob");
        let c = credentials_from_auth_file("127.0.0.1:5000", file.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!((c.username(), c.password()), ("u", "p"));
        assert_eq!(
            credentials_from_auth_file("ghcr.io", file.as_bytes()).unwrap(),
            None
        );
        let bad = r#"{"auths": {"quay.io": {"auth": "bm9jb2xvbg=="}}}"#; // "nocolon"
        let e = credentials_from_auth_file("quay.io", bad.as_bytes()).unwrap_err();
        assert!(!e.contains("nocolon"), "{e}");
    }

    #[test]
    fn lookup_prefers_env_then_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.json");
        let second = dir.path().join("second.json");
        std::fs::write(
            &first,
            r#"{"auths": {"other.io": {"username": "x", "password": "y"}}}"#,
        )
        .unwrap();
        std::fs::write(
            &second,
            r#"{"auths": {"quay.io": {"username": "f", "password": "g"}}}"#,
        )
        .unwrap();
        let env: EnvLookup = Arc::new(|k: &str| match k {
            "U" => Some("envuser".to_string()),
            "P" => Some("envpass".to_string()),
            _ => None,
        });
        let lookup = CredentialLookup::new(env, vec![first, dir.path().join("missing"), second]);
        let c = lookup
            .credentials_for("quay.io", Some("U"), Some("P"))
            .unwrap()
            .unwrap();
        assert_eq!(c.username(), "envuser");
        let c = lookup
            .credentials_for("quay.io", Some("UNSET"), Some("P"))
            .unwrap()
            .unwrap();
        assert_eq!(c.username(), "f");
        assert_eq!(lookup.credentials_for("ghcr.io", None, None).unwrap(), None);
    }

    #[test]
    fn env_fn_builds_auth_file_list() {
        let env: EnvLookup = Arc::new(|k: &str| match k {
            "REGISTRY_AUTH_FILE" => Some("/a/auth.json".to_string()),
            "XDG_RUNTIME_DIR" => Some("/run/user/1".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        });
        let l = CredentialLookup::from_env_fn(env);
        assert_eq!(
            l.auth_files(),
            &[
                PathBuf::from("/a/auth.json"),
                PathBuf::from("/run/user/1/containers/auth.json"),
                PathBuf::from("/home/u/.docker/config.json"),
            ]
        );
    }

    #[test]
    fn token_accepts_token_or_access_token() {
        let t = Token::from_answer(TokenAnswer {
            token: None,
            access_token: Some("abc".into()),
            expires_in: Some(300),
        })
        .unwrap();
        assert_eq!(t.value, "abc");
        assert!(t.is_fresh());
        assert!(
            Token::from_answer(TokenAnswer {
                token: Some(String::new()),
                access_token: None,
                expires_in: None
            })
            .is_none()
        );
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }
}
