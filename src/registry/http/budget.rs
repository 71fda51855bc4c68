//! The request budget of one registry host (`rateLimit: {requestsPerSecond, burst}`): every
//! request to the host, whichever repository, task or `serve` pass sends it, waits for the
//! budget first (a GCRA limiter from `governor`, one per host for the whole process).
//!
//! Besides the configured budget, the host's own word is heeded: Docker Hub's
//! `ratelimit-remaining: N;w=SECONDS` (and the IETF draft's `RateLimit-Remaining` with
//! `RateLimit-Reset`) spread the last requests of a window over what is left of it, so a
//! run slows down before the registry answers 429, instead of after.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::config::RateLimit;

/// Below this share of the window's requests left (or, without `ratelimit-limit`, this
/// many), the remaining ones are spread over the window.
const LOW_SHARE: f64 = 0.1;
const LOW_COUNT: u64 = 10;
/// The longest pause between two requests that the registry's headers impose.
const MAX_PACE: Duration = Duration::from_secs(60);

/// The budget of one host: the configured limiter, if any, and the pace the host's
/// rate-limit headers ask for.
#[derive(Debug)]
pub(crate) struct Budget {
    limiter: Option<(RateLimit, DefaultDirectRateLimiter)>,
    pace: Mutex<Pace>,
}

#[derive(Debug, Default)]
struct Pace {
    /// Least time between two requests (zero: no pacing).
    interval: Duration,
    /// When the next request may go.
    next: Option<Instant>,
}

/// The budgets of this process, by host: `serve`'s passes and a run's tasks share them.
static BUDGETS: LazyLock<Mutex<HashMap<String, Arc<Budget>>>> = LazyLock::new(Default::default);

/// The budget of `host` with `limit` (`None`: only the host's headers pace it), shared by
/// the process; a changed `limit` replaces the host's budget.
pub(crate) fn for_host(host: &str, limit: Option<RateLimit>) -> Arc<Budget> {
    let mut budgets = BUDGETS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(b) = budgets.get(host)
        && b.limiter.as_ref().map(|(l, _)| *l) == limit
    {
        return b.clone();
    }
    let b = Arc::new(Budget::new(limit));
    budgets.insert(host.to_string(), b.clone());
    b
}

impl Budget {
    /// A budget of this client alone, paced only by the host's headers (until
    /// [`for_host`] gives it the process's).
    pub(crate) fn unshared() -> Arc<Budget> {
        Arc::new(Budget::new(None))
    }

    fn new(limit: Option<RateLimit>) -> Budget {
        let limiter = limit.and_then(|l| {
            let period = Duration::from_secs_f64(1.0 / l.requests_per_second);
            let quota = Quota::with_period(period)?
                .allow_burst(NonZeroU32::new(l.burst).unwrap_or(NonZeroU32::MIN));
            Some((l, RateLimiter::direct(quota)))
        });
        Budget {
            limiter,
            pace: Mutex::new(Pace::default()),
        }
    }

    /// Waits until one more request fits the budget and the host's pace.
    pub(crate) async fn acquire(&self) {
        if let Some((_, limiter)) = &self.limiter {
            limiter.until_ready().await;
        }
        let slot = {
            let mut pace = self.pace.lock().unwrap_or_else(|p| p.into_inner());
            if pace.interval.is_zero() {
                return;
            }
            let now = Instant::now();
            let slot = pace.next.filter(|n| *n > now).unwrap_or(now);
            pace.next = Some(slot + pace.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Reads the host's rate-limit headers from an answer and sets the pace: the requests
    /// left spread over the window when few are left, no pacing otherwise.
    pub(crate) fn observe(&self, headers: &HeaderMap) {
        let Some((remaining, window)) = remaining(headers) else {
            return;
        };
        let limit = header_number(headers, "ratelimit-limit");
        let low = match limit {
            Some(l) if l > 0 => (remaining as f64) < (l as f64) * LOW_SHARE,
            _ => remaining < LOW_COUNT,
        };
        let interval = if low {
            // None left: wait out the window once; else one request per share of it.
            window
                .checked_div(u32::try_from(remaining.max(1)).unwrap_or(u32::MAX))
                .unwrap_or(window)
                .min(MAX_PACE)
        } else {
            Duration::ZERO
        };
        let mut pace = self.pace.lock().unwrap_or_else(|p| p.into_inner());
        if interval != pace.interval {
            tracing::debug!(
                remaining,
                window_seconds = window.as_secs_f64(),
                pace_seconds = interval.as_secs_f64(),
                "registry rate-limit headers: pacing requests"
            );
        }
        pace.interval = interval;
    }
}

/// `ratelimit-remaining: N;w=SECONDS` (Docker Hub), or `RateLimit-Remaining: N` with
/// `RateLimit-Reset: SECONDS` (the IETF draft): the requests left and the window they are
/// for.
fn remaining(headers: &HeaderMap) -> Option<(u64, Duration)> {
    let value = headers.get("ratelimit-remaining")?.to_str().ok()?;
    let mut parts = value.split(';').map(str::trim);
    let n: u64 = parts.next()?.parse().ok()?;
    let w = parts
        .find_map(|p| p.strip_prefix("w="))
        .and_then(|w| w.trim().parse::<u64>().ok())
        .or_else(|| header_number(headers, "ratelimit-reset"))?;
    Some((n, Duration::from_secs(w)))
}

/// The leading number of a header (`100;w=21600` → 100).
fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    let v = headers.get(name)?.to_str().ok()?;
    v.split(';').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn reads_docker_hub_and_draft_headers() {
        assert_eq!(
            remaining(&headers(&[("ratelimit-remaining", "76;w=21600")])),
            Some((76, Duration::from_secs(21600)))
        );
        assert_eq!(
            remaining(&headers(&[
                ("ratelimit-remaining", "3"),
                ("ratelimit-reset", "30")
            ])),
            Some((3, Duration::from_secs(30)))
        );
        assert_eq!(remaining(&headers(&[("ratelimit-remaining", "x")])), None);
        assert_eq!(remaining(&headers(&[])), None);
    }

    #[test]
    fn paces_only_when_few_requests_are_left() {
        let b = Budget::new(None);
        b.observe(&headers(&[
            ("ratelimit-limit", "100;w=20"),
            ("ratelimit-remaining", "50;w=20"),
        ]));
        assert_eq!(b.pace.lock().unwrap().interval, Duration::ZERO);
        b.observe(&headers(&[
            ("ratelimit-limit", "100;w=20"),
            ("ratelimit-remaining", "5;w=20"),
        ]));
        assert_eq!(b.pace.lock().unwrap().interval, Duration::from_secs(4));
        b.observe(&headers(&[("ratelimit-remaining", "0;w=20")]));
        assert_eq!(b.pace.lock().unwrap().interval, Duration::from_secs(20));
    }

    #[test]
    fn a_host_keeps_one_budget_until_its_settings_change() {
        let l = RateLimit {
            requests_per_second: 5.0,
            burst: 2,
        };
        let a = for_host("budget-test.example", Some(l));
        let b = for_host("budget-test.example", Some(l));
        assert!(Arc::ptr_eq(&a, &b));
        let c = for_host(
            "budget-test.example",
            Some(RateLimit {
                requests_per_second: 1.0,
                ..l
            }),
        );
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
