//! [`RegistryError`]: why talking to a registry or a layout failed, with messages that name
//! the repository and the cause and never a credential.

use std::path::PathBuf;

use crate::digest::DigestError;

/// Why talking to a registry or a layout failed. Messages name the repository (and tag or
/// digest) and the cause; they never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A repository string that is neither `host/path` nor `oci:PATH`, or a bad path.
    #[error("invalid repository `{repo}`: {reason}")]
    InvalidRepository {
        /// The repository string as written (a stream's target, or a `mapTo` result).
        repo: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tag that the distribution grammar does not allow (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
    #[error("{repo}: invalid tag `{tag}`")]
    InvalidTag {
        /// The repository the tag was meant for.
        repo: String,
        /// The tag as given, which the grammar refuses.
        tag: String,
    },
    /// A setting of `relsync.yaml` that cannot be used (a `mapTo` that is not `oci:`...).
    #[error("registry {host}: {message}")]
    Settings {
        /// The host whose entry in relsync.yaml holds the setting.
        host: String,
        /// What is wrong.
        message: String,
    },
    /// The CA file named by `caFile` cannot be read.
    #[error("registry {host}: cannot read caFile {path}")]
    CaFile {
        /// The host whose entry names the CA file.
        host: String,
        /// The CA file, resolved against relsync.yaml's directory.
        path: PathBuf,
        /// The read error (missing file, no permission).
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client cannot be built (a CA file with no usable certificate, TLS setup).
    #[error("registry {host}: cannot set up the HTTP client")]
    Client {
        /// The host the client was for.
        host: String,
        /// reqwest's refusal (an unusable certificate, a TLS backend that failed to start).
        #[source]
        source: reqwest::Error,
    },
    /// Credentials cannot be read (an unreadable or malformed auth file).
    #[error("credentials for {host}: {message}")]
    Credentials {
        /// The host the credentials were looked up for.
        host: String,
        /// What is wrong (never the secret itself).
        message: String,
    },
    /// The request could not be sent or its answer not read (connection refused, TLS...).
    #[error("{context}: cannot reach the registry{}", plain_http_hint(source))]
    Transport {
        /// What was being done, naming the repository.
        context: String,
        /// The transport failure: refused connection, timeout, TLS handshake, cut answer.
        #[source]
        source: reqwest::Error,
    },
    /// A 404 no registry sends: without the `Docker-Distribution-API-Version` header and
    /// without an OCI error body, it came from a web server that is not a registry (read
    /// as "nothing here", it would plan a full mirror).
    #[error(
        "{context}: {host} is not an OCI registry (it answered 404 with neither a Docker-Distribution-API-Version header nor an OCI error body)"
    )]
    NotARegistry {
        /// What was being done, naming the repository.
        context: String,
        /// The host that answered.
        host: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{context}: registry answered {}{}", status_text(*status), error_detail(code.as_deref(), message.as_deref()))]
    Status {
        /// What was being done, naming the repository (and tag or digest).
        context: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error code (`NAME_UNKNOWN`, `DENIED`...), when it sent one.
        code: Option<String>,
        /// The registry's error message, when it sent one.
        message: Option<String>,
    },
    /// Authentication failed (no credentials for a registry that wants them, a token
    /// endpoint that refused, an unusable challenge).
    #[error("{context}: authentication failed: {reason}")]
    Auth {
        /// What was being done.
        context: String,
        /// Why (never the credentials).
        reason: String,
    },
    /// A tag list whose pagination cannot be followed (foreign `Link`, loop, too long).
    #[error("{context}: {reason}")]
    Pagination {
        /// What was being done.
        context: String,
        /// Why it was refused.
        reason: String,
    },
    /// A digest sent by the registry or written in a layout is not a valid digest.
    #[error("{context}: invalid digest")]
    BadDigest {
        /// Where it came from.
        context: String,
        /// Why it is invalid.
        #[source]
        source: DigestError,
    },
    /// An answer larger than relsync accepts.
    #[error("{context}: answer larger than {limit} bytes")]
    TooLarge {
        /// What was being read.
        context: String,
        /// The limit in bytes that the answer exceeded.
        limit: u64,
    },
    /// An answer or file that is not the JSON expected.
    #[error("{context}: malformed JSON")]
    Json {
        /// What was being read.
        context: String,
        /// Where and how the JSON is malformed.
        #[source]
        source: serde_json::Error,
    },
    /// A streamed upload was refused (401) with a bearer token the registry had issued and
    /// announced as still valid: it was revoked early. The token is forgotten, so redoing
    /// the upload (the error is retryable) fetches a new one.
    #[error("{context}: the registry refused its bearer token before the token's expiry")]
    TokenRevoked {
        /// What was being done, naming the repository.
        context: String,
    },
    /// An answer too slow to wait for: not answered within the total request deadline
    /// (`RELSYNC_REQUEST_TIMEOUT`), or a blob body below the minimum rate
    /// (`RELSYNC_MIN_BLOB_RATE`). A failed try, worth another.
    #[error("{context}: {reason}")]
    TooSlow {
        /// What was being read, naming the repository.
        context: String,
        /// What was too slow, with the limit.
        reason: String,
    },
    /// A retryable failure (connection error, 408, 429, 5xx) of a request the client
    /// already tried again until its tries ran out: not worth redoing the whole operation
    /// around it (that would multiply the tries). The message is the last failure's.
    #[error(transparent)]
    GaveUp(Box<RegistryError>),
    /// Content whose digest (or size) is not the one asked for: refused, nothing written.
    #[error("{context}: content does not match its digest (expected {expected}, got {actual})")]
    DigestMismatch {
        /// What was being copied or read (repository and digest).
        context: String,
        /// The digest asked for.
        expected: String,
        /// What the bytes hash to (or the size seen, for a size mismatch).
        actual: String,
    },
    /// An OCI image layout that cannot be used.
    #[error("oci layout {}: {reason}", path.display())]
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// What makes it unusable (no `oci-layout`, a malformed `index.json`...).
        reason: String,
    },
    /// A file of an OCI image layout cannot be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file or directory of the layout (or of the state it keeps).
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// The failure itself: the last try's error for one the client gave up on
    /// ([`RegistryError::GaveUp`]), else this one.
    pub fn cause(&self) -> &RegistryError {
        match self {
            RegistryError::GaveUp(e) => e.cause(),
            e => e,
        }
    }
}

/// A hint for the one TLS failure with an obvious cause: the host answered an HTTPS
/// handshake in plain HTTP (rustls reads the HTTP bytes as a record of an invalid content
/// type).
fn plain_http_hint(error: &reqwest::Error) -> &'static str {
    match crate::registry::retry::tls_error(error) {
        Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
            " over HTTPS (it seems to speak plain HTTP, which relsync only uses for hosts marked `insecure: true` in relsync.yaml)"
        }
        _ => "",
    }
}

fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

pub(crate) fn error_detail(code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" ({c}: {m})"),
        (Some(c), None) => format!(" ({c})"),
        (None, Some(m)) => format!(" ({m})"),
        (None, None) => String::new(),
    }
}
