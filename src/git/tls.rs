//! libgit2's TLS set-up without loading the certificate store at start.
//!
//! libgit2, built with OpenSSL, calls `SSL_CTX_set_default_verify_paths` when it
//! initialises, at the first git2 call of the process, which parses the whole certificate
//! bundle that `SSL_CERT_FILE` (or OpenSSL's default path) names: tens of milliseconds of
//! CPU in every run, although most repositories are local paths, `file://`, `git://` or SSH.
//! [`init`] initialises libgit2 with `SSL_CERT_FILE` pointing at an empty file, so nothing is
//! parsed, and then sets the variable as git2 itself would have left it (the user's value,
//! else the bundle `openssl-probe` finds); [`before_http_fetch`] loads that bundle into
//! libgit2 once, before the first fetch over HTTP or HTTPS. A process that never calls
//! [`init`] (a library user, a test) initialises libgit2 the usual way.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Once, OnceLock};

/// The variable OpenSSL reads the certificate bundle's path from.
const CERT_FILE_ENV: &str = "SSL_CERT_FILE";

/// The bundle to load before the first HTTP(S) fetch, when [`init`] deferred it (`None`:
/// it did not run, libgit2 loaded the store itself).
static DEFERRED: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Loads the deferred bundle once.
static LOADED: Once = Once::new();

/// Initialises libgit2 without parsing the certificate store; [`before_http_fetch`] parses
/// it when a fetch over HTTP(S) is about to start.
///
/// # Safety
///
/// Sets and restores the process environment (`SSL_CERT_FILE`): call it before any other
/// thread has started (first thing in `main`), and before any other git2 call.
pub unsafe fn init() {
    let user: Option<OsString> = std::env::var_os(CERT_FILE_ENV);
    let bundle: Option<PathBuf> = match &user {
        Some(v) => Some(PathBuf::from(v)),
        None => openssl_probe::probe().cert_file,
    };
    // SAFETY: the caller guarantees no other thread runs yet.
    unsafe { std::env::set_var(CERT_FILE_ENV, "/dev/null") };
    // Any git2 call initialises libgit2 (and git2 sets OpenSSL's variables it finds unset).
    git2::opts::enable_caching(true);
    match &bundle {
        // SAFETY: as above.
        Some(b) => unsafe { std::env::set_var(CERT_FILE_ENV, b) },
        // SAFETY: as above.
        None => unsafe { std::env::remove_var(CERT_FILE_ENV) },
    }
    let _ = DEFERRED.set(bundle);
}

/// Loads the certificate bundle [`init`] deferred into libgit2, once per process, before a
/// fetch over HTTP (which may be redirected to HTTPS) or HTTPS. Does nothing when [`init`]
/// did not run. A bundle that cannot be loaded is left out, as libgit2 would have left it
/// at start: the fetch then fails its certificate check, naming the host.
pub fn before_http_fetch() {
    let Some(Some(bundle)) = DEFERRED.get() else {
        return;
    };
    LOADED.call_once(|| {
        // SAFETY: git2's option setters are process-wide; this one only adds certificates
        // to libgit2's TLS context, under `Once`.
        if let Err(e) = unsafe { git2::opts::set_ssl_cert_file(bundle) } {
            tracing::debug!(bundle = %bundle.display(), error = %e, "libgit2 did not load the certificate bundle");
        }
    });
}
