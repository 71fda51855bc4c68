//! Docker credential helpers: `docker-credential-<name> get`, the registry host on stdin,
//! `{"ServerURL", "Username", "Secret"}` on stdout, as Docker, Podman and crane run them
//! for the `credHelpers` and `credsStore` of an auth file.
//!
//! What a helper prints is a secret: it is never logged and never quoted in an error (a
//! helper that prints something else is reported by name, not by its output). A helper
//! that does not answer within the timeout is killed.

use std::io::{Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::auth::Credentials;

/// How long a helper may take when `RELSYNC_CREDENTIAL_HELPER_TIMEOUT` (seconds) is unset.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes read from a helper's stdout; a credential is far smaller.
const MAX_OUTPUT: u64 = 64 * 1024;

/// The user name with which a helper says its secret is an identity (refresh) token.
pub(crate) const IDENTITY_TOKEN_USER: &str = "<token>";

/// What a helper answers.
#[derive(serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: Option<String>,
}

/// Why a helper gave no credentials. Messages name the helper and never its output.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum HelperError {
    /// The helper's name cannot be a program name.
    #[error("credential helper name `{0}` is not a program name")]
    BadName(String),
    /// No such program on `PATH`.
    #[error("credential helper `{program}` is not on PATH")]
    Missing {
        /// `docker-credential-<name>`.
        program: String,
    },
    /// The program could not be started or talked to.
    #[error("credential helper `{program}` could not be run ({reason})")]
    Spawn {
        /// `docker-credential-<name>`.
        program: String,
        /// The OS error.
        reason: String,
    },
    /// It did not answer in time (it was killed).
    #[error("credential helper `{program}` did not answer within {seconds} s (killed)")]
    Timeout {
        /// `docker-credential-<name>`.
        program: String,
        /// The timeout.
        seconds: u64,
    },
    /// It exited with a failure status.
    #[error("credential helper `{program}` failed ({status})")]
    Failed {
        /// `docker-credential-<name>`.
        program: String,
        /// Its exit status.
        status: String,
    },
    /// It printed something that is not a credential.
    #[error(
        "credential helper `{program}` answered something that is not a credential (expected JSON with `Username` and `Secret`)"
    )]
    Garbage {
        /// `docker-credential-<name>`.
        program: String,
    },
}

/// Asks helper `name` for the credentials of `server` (a host, or Docker Hub's
/// `https://index.docker.io/v1/`). `Ok(None)`: the helper has none for it ("credentials not
/// found", as the protocol says it).
pub(crate) fn get(
    name: &str,
    server: &str,
    timeout: Duration,
) -> Result<Option<Credentials>, HelperError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(HelperError::BadName(name.to_string()));
    }
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Its diagnostics may quote secrets: not inherited, not kept.
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => HelperError::Missing {
                program: program.clone(),
            },
            _ => HelperError::Spawn {
                program: program.clone(),
                reason: e.to_string(),
            },
        })?;
    let spawn_error = |e: std::io::Error| HelperError::Spawn {
        program: program.clone(),
        reason: e.to_string(),
    };
    // The protocol: the server URL on stdin, then end of input. A helper that exits without
    // reading it gives a broken pipe, which is not an error of ours.
    if let Some(mut stdin) = child.stdin.take()
        && let Err(e) = stdin.write_all(server.as_bytes())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        kill(&mut child);
        return Err(spawn_error(e));
    }
    let Some(stdout) = child.stdout.take() else {
        kill(&mut child);
        return Err(spawn_error(std::io::Error::other("no stdout")));
    };
    // Read on a thread, so a helper that hangs with its pipe open cannot hold us.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.take(MAX_OUTPUT).read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill(&mut child);
                return Err(HelperError::Timeout {
                    program,
                    seconds: timeout.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                kill(&mut child);
                return Err(spawn_error(e));
            }
        }
    };
    // The helper has exited; a grandchild holding the pipe open is given the rest of the
    // timeout at most (the reader thread is then left to finish on its own).
    let out = loop {
        if reader.is_finished() {
            break reader.join().unwrap_or_default();
        }
        if Instant::now() >= deadline {
            return Err(HelperError::Timeout {
                program,
                seconds: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if !status.success() {
        // "credentials not found in native keychain": the protocol's way to say none.
        if String::from_utf8_lossy(&out)
            .to_ascii_lowercase()
            .contains("credentials not found")
        {
            return Ok(None);
        }
        return Err(HelperError::Failed {
            program,
            status: status.to_string(),
        });
    }
    let answer: HelperAnswer = serde_json::from_slice(&out).map_err(|_| HelperError::Garbage {
        program: program.clone(),
    })?;
    match answer.secret {
        Some(secret) if !secret.is_empty() => Ok(Some(Credentials::new(answer.username, secret))),
        _ => Err(HelperError::Garbage { program }),
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
