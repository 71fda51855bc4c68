//! How long a registry may take: the idle read timeout, the total deadline of a request,
//! and the minimum rate of a blob body, with their environment overrides. A request that
//! misses one is a failed try for the one retry policy.

use std::time::Duration;

use reqwest::Method;
use url::Url;

use crate::registry::RegistryError;

/// A request whose answer stays silent this long (between chunks too) is abandoned.
pub(super) const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Overrides [`READ_IDLE_TIMEOUT`]: seconds, fractions allowed (for slow links, and for
/// tests that stall answers without waiting a minute).
pub(super) const READ_TIMEOUT_ENV: &str = "RELSYNC_READ_TIMEOUT";
/// A request (anything but a blob body) that has not been answered whole this long after
/// it started is abandoned: a failed try, retried like any other.
pub(super) const REQUEST_DEADLINE: Duration = Duration::from_secs(120);
/// Overrides [`REQUEST_DEADLINE`]: seconds, fractions allowed.
pub(super) const REQUEST_TIMEOUT_ENV: &str = "RELSYNC_REQUEST_TIMEOUT";
/// The slowest blob body accepted, in bytes per second averaged over
/// [`BLOB_RATE_WINDOW`]: 1 KiB/s.
pub(super) const MIN_BLOB_RATE: u64 = 1024;
/// Overrides [`MIN_BLOB_RATE`] (bytes per second; `0` turns the check off).
pub(super) const MIN_BLOB_RATE_ENV: &str = "RELSYNC_MIN_BLOB_RATE";
/// The window over which a blob body's rate is averaged.
pub(super) const BLOB_RATE_WINDOW: Duration = Duration::from_secs(30);
/// Overrides [`BLOB_RATE_WINDOW`]: seconds, fractions allowed.
pub(super) const BLOB_RATE_WINDOW_ENV: &str = "RELSYNC_BLOB_RATE_WINDOW";
/// The read timeout: [`READ_TIMEOUT_ENV`] when set, else [`READ_IDLE_TIMEOUT`].
pub(super) fn read_idle_timeout(host: &str) -> Result<Duration, RegistryError> {
    seconds_from_env(host, READ_TIMEOUT_ENV, READ_IDLE_TIMEOUT)
}

/// The total deadline of a request: [`REQUEST_TIMEOUT_ENV`] when set, else
/// [`REQUEST_DEADLINE`].
pub(super) fn request_deadline(host: &str) -> Result<Duration, RegistryError> {
    seconds_from_env(host, REQUEST_TIMEOUT_ENV, REQUEST_DEADLINE)
}

/// The minimum rate of a blob body ([`MIN_BLOB_RATE_ENV`], [`BLOB_RATE_WINDOW_ENV`]);
/// `None` when turned off.
pub(super) fn min_blob_rate(host: &str) -> Result<Option<MinRate>, RegistryError> {
    let window = seconds_from_env(host, BLOB_RATE_WINDOW_ENV, BLOB_RATE_WINDOW)?;
    let bytes_per_second = match std::env::var(MIN_BLOB_RATE_ENV) {
        Err(_) => MIN_BLOB_RATE,
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .map_err(|_| RegistryError::Settings {
                host: host.to_string(),
                message: format!(
                    "{MIN_BLOB_RATE_ENV}={value:?} is not a whole number of bytes per second"
                ),
            })?,
    };
    Ok((bytes_per_second > 0).then_some(MinRate {
        bytes_per_second,
        window,
    }))
}

/// A positive number of seconds (fractions allowed) from `var`, else `default`.
fn seconds_from_env(host: &str, var: &str, default: Duration) -> Result<Duration, RegistryError> {
    let Ok(value) = std::env::var(var) else {
        return Ok(default);
    };
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| RegistryError::Settings {
            host: host.to_string(),
            message: format!("{var}={value:?} is not a positive number of seconds"),
        })
}

/// Whether `method url` reads a blob (`GET .../blobs/<digest>`), whose body may be long.
pub(super) fn is_blob_read(method: &Method, url: &Url) -> bool {
    *method == Method::GET
        && url.path().contains("/blobs/")
        && !url.path().contains("/blobs/uploads")
}

/// The slowest a blob body may arrive: `bytes_per_second` on average over each `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MinRate {
    /// Bytes per second, at least.
    pub(super) bytes_per_second: u64,
    /// The span over which the rate is averaged.
    pub(super) window: Duration,
}
