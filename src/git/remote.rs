//! Remote desired-state repositories: `git.repo` given as a URL (`https://`, `http://`,
//! `ssh://`, `git://`, `file://`, or scp-like `user@host:path`).
//!
//! relsync keeps one bare mirror per URL in a cache directory (see [`cache_root`]): the
//! directory `<cache>/git/<hash>` is named by the SHA-256 of the URL without credentials.
//! Every command that reads the desired state fetches into it first ([`fetch`]: branches and
//! tags, forced, pruned, full history, never shallow, because the feeder rule reads history)
//! under an exclusive file lock, so two relsync processes can share a cache. The mirror's
//! `HEAD` follows the remote's default branch, so the revision `HEAD` means what it means in
//! a fresh clone. Then the revision is resolved in the mirror ([`Mirror::resolve`]) and the
//! tree is read as for a local repository ([`super::read_revision`]); there is no working
//! tree.
//!
//! A failed fetch is an error, never a silent read of the last fetched state: a reconciler
//! that quietly applied an old revision while Git has moved on would undo what was merged.
//!
//! Credentials: for SSH, the SSH agent (`SSH_AUTH_SOCK`); for HTTP(S), a user name and
//! password embedded in the URL, else `RELSYNC_GIT_USERNAME` / `RELSYNC_GIT_PASSWORD` from
//! the environment (a token goes in the password; the user name then defaults to
//! `x-access-token`). Credentials never reach libgit2's URL, the cache's name, logs or
//! errors: every URL shown is [`RemoteUrl::shown`], without them. libgit2 asks again and
//! again when credentials are refused; relsync answers each kind of credential once and then
//! gives up with an error.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use git2::{
    AutotagOption, Cred, CredentialType, FetchOptions, FetchPrune, ProxyOptions, RemoteCallbacks,
    Repository, RepositoryInitOptions,
};
use percent_encoding::percent_decode_str;
use sha2::{Digest as _, Sha256};

use crate::fs_durable::FileLock;

/// What is fetched into a mirror: every branch and every tag, forced (a remote's
/// force-push or moved tag wins), with pruning of refs the remote no longer has.
pub const REFSPECS: [&str; 2] = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];

/// The user name sent with a password from the environment when none is given.
pub const DEFAULT_TOKEN_USERNAME: &str = "x-access-token";

/// Environment variable: the user name for HTTP(S) remotes.
pub const USERNAME_ENV: &str = "RELSYNC_GIT_USERNAME";
/// Environment variable: the password or token for HTTP(S) remotes.
pub const PASSWORD_ENV: &str = "RELSYNC_GIT_PASSWORD";
/// Environment variable: relsync's cache directory (git mirrors live in its `git/`).
pub const CACHE_DIR_ENV: &str = "RELSYNC_CACHE_DIR";

/// What went wrong with a remote repository. Every URL in these messages is shown without
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// `git.repo` looks like a URL but is not one relsync can fetch.
    #[error("git.repo `{url}`: {reason}")]
    Url {
        /// The URL, credentials removed.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// No cache directory could be chosen.
    #[error("no cache directory for git remotes: set {CACHE_DIR_ENV}, XDG_CACHE_HOME or HOME")]
    NoCacheDir,
    /// The cache directory or its lock could not be used.
    #[error("cannot use the git cache {path}: {source}")]
    Cache {
        /// The directory or lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The mirror in the cache could not be opened or created.
    #[error("cannot open the git cache {path} of {url}: {message}")]
    Mirror {
        /// The mirror directory.
        path: PathBuf,
        /// The remote, credentials removed.
        url: String,
        /// git2's message.
        message: String,
    },
    /// The fetch failed; a copy fetched earlier is not used in its place.
    #[error(
        "cannot fetch {url}: {message}{}",
        if *.had_copy { " (the copy fetched earlier is not used: the desired state must be Git's current one)" } else { "" }
    )]
    Fetch {
        /// The remote, credentials removed.
        url: String,
        /// The cause, credentials removed.
        message: String,
        /// Whether the cache held an earlier fetch of this remote.
        had_copy: bool,
    },
    /// The revision is not a commit of the fetched remote.
    #[error("revision `{revision}` not found in {url}: {message}")]
    Revision {
        /// The revision asked for.
        revision: String,
        /// The remote, credentials removed.
        url: String,
        /// git2's message.
        message: String,
    },
}

/// True when `git.repo` names a remote rather than a local path: it has a scheme
/// (`scheme://`), or it is scp-like (`[user@]host:path`, a colon before any slash), as Git
/// itself decides.
pub fn is_remote(repo: &str) -> bool {
    if repo.contains("://") {
        return true;
    }
    match repo.find(':') {
        Some(i) => i > 0 && !repo[..i].contains('/'),
        None => false,
    }
}

/// A remote repository's URL, split into what libgit2 is given (no secrets), what is shown
/// and hashed (no credentials) and the credentials embedded in it.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    fetch: String,
    shown: String,
    username: Option<String>,
    password: Option<String>,
    ssh: bool,
}

impl fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteUrl")
            .field("url", &self.shown)
            .field("username", &self.username.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl RemoteUrl {
    /// Parses a remote `git.repo`: `https://`, `http://`, `ssh://`, `git://` and `file://`
    /// URLs, and scp-like `[user@]host:path` (SSH). User name and password in the URL are
    /// kept aside as credentials.
    pub fn parse(repo: &str) -> Result<RemoteUrl, RemoteError> {
        if !repo.contains("://") {
            return Self::parse_scp(repo);
        }
        let refuse = |reason: String| RemoteError::Url {
            url: strip_userinfo(repo),
            reason,
        };
        let mut url = url::Url::parse(repo).map_err(|e| refuse(format!("not a URL: {e}")))?;
        let scheme = url.scheme().to_string();
        let ssh = match scheme.as_str() {
            "https" | "http" | "git" | "file" => false,
            "ssh" => true,
            other => {
                return Err(refuse(format!(
                    "scheme `{other}` is not supported (https, http, ssh, git, file, or scp-like user@host:path)"
                )));
            }
        };
        if scheme != "file" && url.host_str().is_none_or(str::is_empty) {
            return Err(refuse("the URL names no host".to_string()));
        }
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let username = Some(decode(url.username())).filter(|u| !u.is_empty());
        let password = url.password().map(decode).filter(|p| !p.is_empty());
        // Clearing userinfo cannot fail on a URL with a host; a `file:` URL has none to clear.
        let _ = url.set_password(None);
        let _ = url.set_username("");
        if let (Some(user), true) = (&username, ssh) {
            // An SSH login name is not a secret, names the account, and libgit2 needs it.
            let _ = url.set_username(user);
        }
        let shown = url.to_string();
        let fetch = shown.clone();
        Ok(RemoteUrl {
            fetch,
            shown,
            username,
            password,
            ssh,
        })
    }

    fn parse_scp(repo: &str) -> Result<RemoteUrl, RemoteError> {
        let (userhost, path) = repo.split_once(':').ok_or_else(|| RemoteError::Url {
            url: strip_userinfo(repo),
            reason: "not a URL".to_string(),
        })?;
        let (user, host) = match userhost.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, userhost),
        };
        if host.is_empty() || path.is_empty() {
            return Err(RemoteError::Url {
                url: strip_userinfo(repo),
                reason: "an scp-like remote is user@host:path".to_string(),
            });
        }
        // A password has no place in scp-like syntax; drop one if given.
        let user = user.map(|u| u.split_once(':').map(|(u, _)| u).unwrap_or(u));
        let user = user.filter(|u| !u.is_empty());
        let shown = match user {
            Some(u) => format!("{u}@{host}:{path}"),
            None => format!("{host}:{path}"),
        };
        Ok(RemoteUrl {
            fetch: shown.clone(),
            shown,
            username: user.map(str::to_string),
            password: None,
            ssh: true,
        })
    }

    /// The URL as shown in logs and errors (and hashed for the cache): without a password,
    /// and without a user name except an SSH login name (which is no secret).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The name of this remote's mirror directory in the cache: the hex SHA-256 of
    /// [`RemoteUrl::shown`].
    pub fn cache_key(&self) -> String {
        hex::encode(Sha256::digest(self.shown.as_bytes()))
    }

    /// Replaces every credential that appears in `text` (as given or percent-encoded) with
    /// `***`, for messages that come from libgit2 or a server.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let secrets = [
            self.password.as_deref(),
            self.username.as_deref().filter(|_| !self.ssh),
        ];
        for secret in secrets.into_iter().flatten().filter(|s| s.len() >= 3) {
            out = out.replace(secret, "***");
            let encoded =
                percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            out = out.replace(&encoded, "***");
        }
        strip_userinfo(&out)
    }
}

/// Removes `user:password@` after every `scheme://` in `text`, for URLs that could not be
/// parsed and for messages that might echo one.
fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace() || c == '`' || c == '\'' || c == '"')
            .unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// Credentials for HTTP(S) remotes from the environment (`RELSYNC_GIT_USERNAME`,
/// `RELSYNC_GIT_PASSWORD`); those embedded in the URL take precedence.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// The user name, if set.
    pub username: Option<String>,
    /// The password or token, if set.
    pub password: Option<String>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Auth {
    /// Reads `RELSYNC_GIT_USERNAME` and `RELSYNC_GIT_PASSWORD` (empty counts as unset).
    pub fn from_env() -> Auth {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Auth {
            username: var(USERNAME_ENV),
            password: var(PASSWORD_ENV),
        }
    }
}

/// relsync's cache directory: `$RELSYNC_CACHE_DIR`, else `$XDG_CACHE_HOME/relsync`, else
/// `~/.cache/relsync`. Git mirrors live in its `git/` subdirectory.
pub fn cache_root() -> Result<PathBuf, RemoteError> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var(CACHE_DIR_ENV) {
        return Ok(dir);
    }
    // The XDG spec ignores a relative XDG_CACHE_HOME.
    if let Some(dir) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Ok(dir.join("relsync"));
    }
    var("HOME")
        .map(|home| home.join(".cache").join("relsync"))
        .ok_or(RemoteError::NoCacheDir)
}

/// A remote's bare mirror in the cache, freshly fetched.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// The mirror's directory (a bare repository).
    pub path: PathBuf,
    /// The remote it mirrors.
    pub url: RemoteUrl,
    /// The remote's default branch (`refs/heads/…`), which the mirror's `HEAD` points at;
    /// `None` when the remote did not name one (an empty repository).
    pub default_branch: Option<String>,
    /// Objects received by this fetch (0 when nothing changed).
    pub received_objects: usize,
}

impl Mirror {
    /// Resolves `revision` (a branch, tag, sha or any revision expression; `HEAD` is the
    /// remote's default branch) to a full commit sha in the mirror.
    pub fn resolve(&self, revision: &str) -> Result<String, RemoteError> {
        let err = |message: String| RemoteError::Revision {
            revision: revision.to_string(),
            url: self.url.shown.clone(),
            message,
        };
        let repo = Repository::open_bare(&self.path).map_err(|e| err(e.message().to_string()))?;
        let commit = repo
            .revparse_single(revision)
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| {
                let mut message = e.message().to_string();
                if let Some(branch) = &self.default_branch {
                    message.push_str(&format!(
                        " (fetched its branches and tags; its default branch is {})",
                        branch.trim_start_matches("refs/heads/")
                    ));
                }
                err(message)
            })?;
        Ok(commit.id().to_string())
    }
}

/// The most credential callbacks answered per fetch; libgit2 asks again after each refusal,
/// forever if let.
pub const MAX_CREDENTIAL_CALLBACKS: u32 = 4;

/// Fetches `url` into its mirror below `<cache_root>/git`, creating the mirror on first use,
/// under an exclusive lock (`<hash>.lock` beside it) held for the whole fetch. Afterwards
/// the mirror's `HEAD` points at the remote's default branch.
pub fn fetch(url: &RemoteUrl, cache_root: &Path, auth: &Auth) -> Result<Mirror, RemoteError> {
    let git_dir = cache_root.join("git");
    std::fs::create_dir_all(&git_dir).map_err(|source| RemoteError::Cache {
        path: git_dir.clone(),
        source,
    })?;
    let key = url.cache_key();
    let path = git_dir.join(&key);
    let _lock = lock_cache(&git_dir.join(format!("{key}.lock")), url)?;
    let repo = open_or_init(&path, url)?;
    if url.fetch.starts_with("https://") || url.fetch.starts_with("http://") {
        super::tls::before_http_fetch();
    }
    // Whether an earlier fetch brought anything (a failed first fetch leaves an empty mirror).
    let had_copy = repo
        .references()
        .map(|mut refs| refs.next().is_some())
        .unwrap_or(false);

    let fetch_err = |e: git2::Error, state: &AuthState| RemoteError::Fetch {
        url: url.shown.clone(),
        message: url.redact(&state.explain(e.message())),
        had_copy,
    };
    let state = Rc::new(RefCell::new(AuthState::default()));
    let mut remote = repo
        .remote_anonymous(&url.fetch)
        .map_err(|e| fetch_err(e, &state.borrow()))?;
    let mut options = FetchOptions::new();
    let mut proxy = ProxyOptions::new();
    proxy.auto();
    options
        .remote_callbacks(callbacks(url, auth, state.clone()))
        .proxy_options(proxy)
        .prune(FetchPrune::On)
        .download_tags(AutotagOption::None)
        .update_fetchhead(false);
    tracing::debug!(url = %url, mirror = %path.display(), "fetching");
    remote
        .fetch(&REFSPECS, Some(&mut options), Some("relsync: fetch"))
        .map_err(|e| fetch_err(e, &state.borrow()))?;
    let received_objects = remote.stats().received_objects();
    let default_branch = remote
        .default_branch()
        .ok()
        .and_then(|b| b.as_str().ok().map(str::to_string))
        .filter(|b| b.starts_with("refs/heads/"));
    if let Some(branch) = &default_branch {
        repo.set_head(branch).map_err(|e| RemoteError::Mirror {
            path: path.clone(),
            url: url.shown.clone(),
            message: format!("cannot point HEAD at {branch}: {}", e.message()),
        })?;
    }
    tracing::info!(
        url = %url,
        mirror = %path.display(),
        received_objects,
        default_branch = default_branch.as_deref().unwrap_or("(none)"),
        "fetched"
    );
    Ok(Mirror {
        path,
        url: url.clone(),
        default_branch,
        received_objects,
    })
}

/// Opens the mirror at `path`, or creates it (in a temporary directory renamed into place,
/// so an interrupted creation leaves no half mirror). A mirror that no longer opens is a
/// cache entry gone bad: it is replaced.
fn open_or_init(path: &Path, url: &RemoteUrl) -> Result<Repository, RemoteError> {
    let mirror_err = |message: String| RemoteError::Mirror {
        path: path.to_path_buf(),
        url: url.shown.clone(),
        message,
    };
    let cache_err = |p: &Path, source| RemoteError::Cache {
        path: p.to_path_buf(),
        source,
    };
    if path.exists() {
        match Repository::open_bare(path) {
            Ok(repo) => return Ok(repo),
            Err(e) => {
                tracing::warn!(mirror = %path.display(), url = %url, error = %e.message(), "the cached mirror does not open; fetching afresh");
                std::fs::remove_dir_all(path).map_err(|e| cache_err(path, e))?;
            }
        }
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| cache_err(&tmp, e))?;
    }
    let mut opts = RepositoryInitOptions::new();
    opts.bare(true);
    Repository::init_opts(&tmp, &opts).map_err(|e| mirror_err(e.message().to_string()))?;
    // For whoever looks into the cache: which remote this is (never with credentials).
    let description = tmp.join("description");
    std::fs::write(&description, format!("relsync mirror of {}\n", url.shown))
        .map_err(|e| cache_err(&description, e))?;
    std::fs::rename(&tmp, path).map_err(|e| cache_err(path, e))?;
    Repository::open_bare(path).map_err(|e| mirror_err(e.message().to_string()))
}

/// Takes the exclusive lock on `<hash>.lock` ([`FileLock`]), saying so when another
/// process holds it and waiting for it.
fn lock_cache(path: &Path, url: &RemoteUrl) -> Result<FileLock, RemoteError> {
    FileLock::file(path, || {
        tracing::info!(url = %url, lock = %path.display(), "another relsync is fetching this remote; waiting");
    })
    .map_err(|e| RemoteError::Cache {
        path: e.path,
        source: e.source,
    })
}

/// What the credential callback has answered so far, to give up and to explain why.
#[derive(Debug, Default)]
struct AuthState {
    calls: u32,
    sent_userpass: Option<&'static str>,
    sent_agent: bool,
    gave_up: Option<String>,
}

impl AuthState {
    fn explain(&self, message: &str) -> String {
        match &self.gave_up {
            Some(why) => format!("authentication failed: {why}"),
            None => message.to_string(),
        }
    }
}

fn callbacks<'a>(
    url: &'a RemoteUrl,
    auth: &'a Auth,
    state: Rc<RefCell<AuthState>>,
) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    cb.credentials(move |_url, username_from_url, allowed| {
        let mut st = state.borrow_mut();
        st.calls += 1;
        let give_up = |st: &mut AuthState, why: String| {
            tracing::debug!(url = %url, "{why}");
            st.gave_up = Some(why.clone());
            Err(git2::Error::from_str(&format!(
                "authentication failed: {why}"
            )))
        };
        if st.calls > MAX_CREDENTIAL_CALLBACKS {
            return give_up(
                &mut st,
                format!("no credentials accepted after {MAX_CREDENTIAL_CALLBACKS} attempts"),
            );
        }
        tracing::trace!(url = %url, ?allowed, "credentials requested");
        if allowed.contains(CredentialType::SSH_KEY) {
            if st.sent_agent {
                return give_up(
                    &mut st,
                    "the SSH agent's keys were refused".to_string(),
                );
            }
            let user = username_from_url
                .or(url.username.as_deref())
                .unwrap_or("git");
            if std::env::var_os("SSH_AUTH_SOCK").is_none() {
                return give_up(
                    &mut st,
                    "the remote wants an SSH key and no SSH agent is running (SSH_AUTH_SOCK is unset)".to_string(),
                );
            }
            st.sent_agent = true;
            return Cred::ssh_key_from_agent(user);
        }
        if allowed.contains(CredentialType::USERNAME) {
            let user = url.username.as_deref().unwrap_or("git");
            return Cred::username(user);
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some(from) = st.sent_userpass {
                return give_up(
                    &mut st,
                    format!("the user name and password {from} were refused"),
                );
            }
            let (user, password, from) = if url.username.is_some() || url.password.is_some() {
                (
                    url.username.clone().or_else(|| auth.username.clone()),
                    url.password.clone().or_else(|| auth.password.clone()),
                    "from the URL",
                )
            } else {
                (auth.username.clone(), auth.password.clone(), "from RELSYNC_GIT_USERNAME/RELSYNC_GIT_PASSWORD")
            };
            if user.is_none() && password.is_none() {
                return give_up(
                    &mut st,
                    format!("the remote asks for credentials; set {USERNAME_ENV} and {PASSWORD_ENV} (a token goes in {PASSWORD_ENV})"),
                );
            }
            st.sent_userpass = Some(from);
            let user = user.unwrap_or_else(|| DEFAULT_TOKEN_USERNAME.to_string());
            return Cred::userpass_plaintext(&user, password.as_deref().unwrap_or(""));
        }
        give_up(
            &mut st,
            format!("the remote asks for a kind of credential relsync does not provide ({allowed:?})"),
        )
    });
    cb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_or_local() {
        for remote in [
            "https://example.org/a.git",
            "git://127.0.0.1:9418/r.git",
            "file:///srv/r.git",
            "git@github.com:okd/releases.git",
            "host:path/r.git",
        ] {
            assert!(is_remote(remote), "{remote}");
        }
        for local in [".", "../repo", "/srv/repo", "dir/with:colon", "./a:b"] {
            assert!(!is_remote(local), "{local}");
        }
    }

    #[test]
    fn credentials_leave_the_url_shown_fetched_and_hashed() {
        let u = RemoteUrl::parse("https://bob:s%40cret@example.org:8443/okd/r.git").unwrap();
        assert_eq!(u.shown(), "https://example.org:8443/okd/r.git");
        assert_eq!(u.fetch, "https://example.org:8443/okd/r.git");
        assert_eq!(u.username.as_deref(), Some("bob"));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        let plain = RemoteUrl::parse("https://example.org:8443/okd/r.git").unwrap();
        assert_eq!(u.cache_key(), plain.cache_key());
        assert_eq!(u.cache_key().len(), 64);
        assert!(!format!("{u:?}").contains("cret"), "{u:?}");
        assert!(!format!("{u}").contains("cret"));
        assert_eq!(
            u.redact("denied for https://bob:s%40cret@example.org/ with s@cret"),
            "denied for https://example.org/ with ***"
        );
    }

    #[test]
    fn ssh_keeps_its_login_name_and_drops_a_password() {
        let u = RemoteUrl::parse("ssh://git:pw@example.org/okd/r.git").unwrap();
        assert_eq!(u.shown(), "ssh://git@example.org/okd/r.git");
        assert_eq!(u.fetch, u.shown());
        assert!(!format!("{u:?}").contains("pw"));
        let scp = RemoteUrl::parse("git@github.com:okd/releases.git").unwrap();
        assert_eq!(scp.shown(), "git@github.com:okd/releases.git");
        assert_eq!(scp.fetch, scp.shown());
        assert_eq!(scp.username.as_deref(), Some("git"));
    }

    #[test]
    fn unsupported_urls_are_refused_without_credentials() {
        let err = RemoteUrl::parse("ftp://u:topsecret@example.org/r.git").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("scheme `ftp`"), "{msg}");
        assert!(!msg.contains("topsecret"), "{msg}");
        let err = RemoteUrl::parse("https://u:topsecret@/r.git").unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    #[test]
    fn strip_userinfo_in_free_text() {
        assert_eq!(
            strip_userinfo("a https://x:y@h/p and git://z@h2:1/q"),
            "a https://h/p and git://h2:1/q"
        );
        assert_eq!(strip_userinfo("no url here"), "no url here");
    }
}
