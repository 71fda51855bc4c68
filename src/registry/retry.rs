//! Retrying registry requests: which failures are worth another try (connection errors,
//! timeouts, 408, 429, 5xx), exponential backoff with full jitter, and `Retry-After`.
//!
//! A request whose body is a stream (a blob upload) cannot be replayed; it is sent once,
//! and [`RegistryError::is_retryable`] tells the caller whether to redo the whole copy.

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::RegistryError;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (1: no retry).
    pub tries: u32,
    /// The backoff ceiling of the first retry; it doubles with each further one.
    pub base: Duration,
    /// The backoff ceiling never exceeds this.
    pub cap: Duration,
    /// A `Retry-After` longer than this is shortened to it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 5 tries; backoff ceilings 200 ms, 400 ms, 800 ms, 1.6 s (capped at 10 s);
    /// `Retry-After` honoured up to 60 s.
    fn default() -> Self {
        RetryPolicy {
            tries: 5,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the wait after failed try number `attempt` (1-based):
    /// `min(cap, base * 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The wait after failed try number `attempt`: the server's `Retry-After` (capped at
    /// `max_retry_after`) when it sent one, else a uniformly random duration up to
    /// [`RetryPolicy::ceiling`] ("full jitter").
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(d) => d.min(self.max_retry_after),
            None => {
                let ceiling = self.ceiling(attempt).as_millis() as u64;
                Duration::from_millis(fastrand::u64(0..=ceiling))
            }
        }
    }
}

/// What one try came to.
pub(crate) enum Outcome<T> {
    /// Final: success, or a failure not worth retrying.
    Done(T),
    /// A failure worth retrying; `value` is returned if no try is left.
    Retry {
        /// The failure, returned as is when no try is left.
        value: T,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
}

/// Runs `op` (given the 1-based try number) until it is done or `policy.tries` tries have
/// been made, sleeping (`tokio::time::sleep`) between tries. Returns the last value and the
/// number of tries made.
pub(crate) async fn retry<T, F, Fut>(policy: &RetryPolicy, mut op: F) -> (T, u32)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Outcome<T>>,
{
    let tries = policy.tries.max(1);
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Outcome::Done(v) => return (v, attempt),
            Outcome::Retry { value, retry_after } => {
                if attempt >= tries {
                    return (value, attempt);
                }
                let wait = policy.delay(attempt, retry_after);
                tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, "retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// Redoes a whole operation (a blob transfer, a streamed upload around it) until it
/// succeeds, fails with an error that is not retryable ([`RegistryError::is_retryable`]),
/// or has been tried `policy.tries` times, waiting as [`retry`] does; returns the last
/// error with the number of tries made.
pub(crate) async fn redo<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut op: F,
) -> Result<T, (RegistryError, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let (result, tries) = retry(policy, |_| {
        let fut = op();
        async move {
            match fut.await {
                Err(e) if e.is_retryable() => {
                    tracing::debug!(what, error = %e, "failed; worth another try");
                    Outcome::Retry {
                        value: Err(e),
                        retry_after: None,
                    }
                }
                done => Outcome::Done(done),
            }
        }
    })
    .await;
    result.map_err(|e| (e, tries))
}

/// Whether an HTTP status is worth another try: 408, 429 and 5xx except 501 and 505
/// (which say the server will never do it).
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || ((500..600).contains(&status) && !matches!(status, 501 | 505))
}

/// Whether a transport failure is worth another try: anything but a request relsync could
/// not build, a redirect loop, or an answer it could not decode.
///
/// reqwest files a body that breaks off (a connection cut mid-answer, a read timeout
/// between chunks) under "decode" too. relsync has reqwest decode nothing itself (no
/// content encodings, no `Response::json`), so a decode error is a real decoding failure
/// only when a JSON error caused it; otherwise it is a broken transfer, worth another try.
///
/// A TLS handshake that fails for good is not worth another try either: a certificate
/// that does not verify, or a host answering in plain HTTP (OpenSSL's "wrong version
/// number"); those are recognised by OpenSSL's messages in the chain of causes.
pub(crate) fn retryable_transport(e: &reqwest::Error) -> bool {
    if e.is_builder() || e.is_redirect() || tls_refused(e) {
        return false;
    }
    !(e.is_decode() && caused_by_json(e))
}

/// Whether a TLS handshake failed for a reason another try cannot change: rustls refused
/// it (an untrusted or invalid certificate, a host answering in plain HTTP, no common
/// protocol). I/O failures during a handshake are not rustls errors and stay retryable.
fn tls_refused(e: &reqwest::Error) -> bool {
    tls_error(e).is_some()
}

/// The rustls error in `e`'s chain of causes, if a TLS handshake failed. rustls' errors
/// reach reqwest wrapped in `io::Error`s (two, nested), whose `source()` skips the wrapped
/// error, so the chain goes into each `io::Error` it meets.
pub(crate) fn tls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        cause = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}

/// Whether a JSON error is in `e`'s chain of causes.
fn caused_by_json(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<serde_json::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Reads `Retry-After`: delay-seconds or an HTTP date (IMF-fixdate, `Sun, 06 Nov 1994
/// 08:49:37 GMT`, or the obsolete forms RFC 9110 still has recipients accept; parsed by
/// `httpdate`), relative to `now`. A date in the past is zero; anything else unreadable is
/// `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

impl RegistryError {
    /// Whether the operation that failed with this error may succeed if redone: a
    /// connection error, a timeout, a dropped transfer, an answer too slow (a missed
    /// deadline or minimum rate), a 408, 429 or 5xx answer, or a
    /// bearer token revoked during an upload (a new one is fetched). Digest mismatches,
    /// refusals, other authentication failures and local file errors are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Transport { source, .. } => retryable_transport(source),
            RegistryError::Status { status, .. } => retryable_status(*status),
            RegistryError::TokenRevoked { .. } | RegistryError::TooSlow { .. } => true,
            RegistryError::GaveUp(_) => false,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::UNIX_EPOCH;

    #[test]
    fn backoff_ceilings_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        let ms = |a| p.ceiling(a).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4)], [200, 400, 800, 1600]);
        assert_eq!(ms(7), 10_000);
        assert_eq!(ms(100), 10_000);
        for attempt in 1..8 {
            for _ in 0..200 {
                assert!(p.delay(attempt, None) <= p.ceiling(attempt));
            }
        }
        // Full jitter: the waits are spread, not fixed.
        let waits: std::collections::HashSet<_> = (0..50).map(|_| p.delay(3, None)).collect();
        assert!(waits.len() > 10, "{waits:?}");
        // Retry-After wins, capped.
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn classifies_statuses() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 201, 400, 401, 403, 404, 405, 409, 501, 505] {
            assert!(!retryable_status(s), "{s}");
        }
        let e = |status| RegistryError::Status {
            context: "c".into(),
            status,
            code: None,
            message: None,
        };
        assert!(e(503).is_retryable());
        assert!(!e(404).is_retryable());
        assert!(
            !RegistryError::DigestMismatch {
                context: "c".into(),
                expected: "a".into(),
                actual: "b".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn parses_retry_after() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past"
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", UNIX_EPOCH),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Tue, 29 Feb 2028 12:00:00 GMT", UNIX_EPOCH),
            Some(Duration::from_secs(1_835_438_400))
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_done_sleeping_between_tries() {
        let p = RetryPolicy::default();
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let (v, tries) = retry(&p, |attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt < 3 {
                    Outcome::Retry {
                        value: attempt,
                        retry_after: Some(Duration::from_secs(2)),
                    }
                } else {
                    Outcome::Done(attempt)
                }
            }
        })
        .await;
        assert_eq!((v, tries), (3, 3));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(4),
            "two Retry-After waits"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_last_try_with_jittered_waits() {
        let p = RetryPolicy::default();
        let start = tokio::time::Instant::now();
        let (v, tries) = retry(&p, |attempt| async move {
            Outcome::Retry {
                value: attempt,
                retry_after: None,
            }
        })
        .await;
        assert_eq!((v, tries), (5, 5), "the last failure is returned");
        let max: Duration = (1..5).map(|a| p.ceiling(a)).sum();
        assert!(start.elapsed() <= max, "{:?}", start.elapsed());

        let one = RetryPolicy { tries: 1, ..p };
        let (v, tries) = retry(&one, |attempt| async move {
            Outcome::Retry {
                value: attempt,
                retry_after: Some(Duration::from_secs(9)),
            }
        })
        .await;
        assert_eq!((v, tries), (1, 1));
    }
}
