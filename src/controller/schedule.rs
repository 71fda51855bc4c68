//! The loop: when to reconcile, kube-runtime style. A reconcile is a plain async function
//! ([`Reconcile::reconcile`]) and the error policy is explicit ([`error_policy`]):
//!
//! - at start, then every `interval` plus a random jitter of up to `jitter` × interval (so
//!   replicas and fleets do not hit Git and registries in step);
//! - at once when a webhook wakes [`Shared::refresh`]; hooks arriving within
//!   [`Timing::debounce`] of the first are one refresh (one arriving during a reconcile
//!   leaves a permit: one more refresh after it, so no push is missed);
//! - after a failed reconcile, again after [`error_policy`]'s backoff (exponential, capped),
//!   sooner than the interval, until one succeeds;
//! - a shutdown stops taking work: a reconcile under way is let finish within
//!   [`Timing::grace`], else abandoned (dropped between two awaits: content is always
//!   written before names, so an abandoned copy never leaves a tag on incomplete
//!   content), then the loop ends.

use std::future::Future;
use std::time::Duration;

use super::Shared;

/// Why a reconcile runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The first reconcile after start.
    Start,
    /// The interval elapsed.
    Interval,
    /// A webhook asked for a refresh.
    Webhook,
    /// The previous reconcile failed; this is the retry.
    Retry,
}

/// One reconcile.
pub trait Reconcile {
    /// The error of a failed reconcile.
    type Error: std::fmt::Display;
    /// Runs one reconcile.
    fn reconcile(&self, trigger: Trigger) -> impl Future<Output = Result<(), Self::Error>>;
}

/// The loop's timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// `sync.interval`.
    pub interval: Duration,
    /// Up to this share of the interval is added at random to each wait.
    pub jitter: f64,
    /// The first backoff after a failure; doubled per further failure.
    pub backoff_base: Duration,
    /// The longest backoff.
    pub backoff_max: Duration,
    /// After a webhook wakes the loop, how long to wait for the rest of a burst (they all
    /// cause one refresh).
    pub debounce: Duration,
    /// At shutdown, how long a reconcile under way may go on before it is abandoned.
    pub grace: Duration,
}

impl Timing {
    /// The timing for `interval`: 10% jitter, backoff from 5 s up to the interval (at most
    /// 5 minutes).
    pub fn for_interval(interval: Duration) -> Timing {
        Timing {
            interval,
            jitter: 0.1,
            backoff_base: Duration::from_secs(5).min(interval),
            backoff_max: interval.min(Duration::from_secs(300)),
            debounce: Duration::from_secs(1),
            grace: Duration::from_secs(20),
        }
    }
}

/// How long to wait after `failures` consecutive failed reconciles (`failures >= 1`):
/// `backoff_base × 2^(failures-1)`, capped at `backoff_max`.
pub fn error_policy(failures: u32, timing: &Timing) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    timing
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(timing.backoff_max)
}

/// The wait before the next periodic reconcile: the interval plus up to `jitter` of it.
pub fn jittered(timing: &Timing, rng: &mut fastrand::Rng) -> Duration {
    timing
        .interval
        .mul_f64(1.0 + timing.jitter.clamp(0.0, 1.0) * rng.f64())
}

/// Runs the loop until `shutdown` completes; returns how many reconciles ran.
pub async fn run<R: Reconcile>(
    reconciler: &R,
    shared: &Shared,
    timing: Timing,
    mut rng: fastrand::Rng,
    shutdown: impl Future<Output = ()>,
) -> u64 {
    tokio::pin!(shutdown);
    let mut failures = 0u32;
    let mut passes = 0u64;
    let mut trigger = Trigger::Start;
    loop {
        passes += 1;
        let span = tracing::info_span!("reconcile", pass = passes, trigger = ?trigger);
        let pass = tracing::Instrument::instrument(reconciler.reconcile(trigger), span);
        tokio::pin!(pass);
        let result = tokio::select! {
            r = &mut pass => r,
            () = &mut shutdown => {
                tracing::info!(grace = ?timing.grace, "stopping: letting the reconcile under way finish");
                if tokio::time::timeout(timing.grace, &mut pass).await.is_err() {
                    tracing::warn!("stopping: abandoned the reconcile under way after the grace period");
                }
                return passes;
            }
        };
        match result {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(failures, error = %e, "reconcile failed");
            }
        }
        let wait = if failures > 0 {
            error_policy(failures, &timing)
        } else {
            jittered(&timing, &mut rng)
        };
        tracing::debug!(?wait, "next reconcile");
        trigger = tokio::select! {
            biased;
            () = &mut shutdown => return passes,
            () = shared.refresh.notified() => {
                // Let the rest of a burst arrive, then take its permit: one refresh for all.
                tokio::time::sleep(timing.debounce).await;
                let _ = futures_util::FutureExt::now_or_never(shared.refresh.notified());
                Trigger::Webhook
            }
            () = tokio::time::sleep(wait) => {
                if failures > 0 { Trigger::Retry } else { Trigger::Interval }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use tokio::time::Instant;

    use super::*;

    /// Records when and why it ran; fails the passes it is told to.
    struct Recorder {
        start: Instant,
        runs: RefCell<Vec<(Duration, Trigger)>>,
        fail: RefCell<Vec<bool>>,
        work: Duration,
    }

    impl Recorder {
        fn new(fail: Vec<bool>) -> Recorder {
            Recorder {
                start: Instant::now(),
                runs: RefCell::new(Vec::new()),
                fail: RefCell::new(fail),
                work: Duration::ZERO,
            }
        }
    }

    impl Reconcile for Recorder {
        type Error = String;
        async fn reconcile(&self, trigger: Trigger) -> Result<(), String> {
            self.runs.borrow_mut().push((self.start.elapsed(), trigger));
            tokio::time::sleep(self.work).await;
            let fail = {
                let mut f = self.fail.borrow_mut();
                if f.is_empty() { false } else { f.remove(0) }
            };
            if fail { Err("boom".into()) } else { Ok(()) }
        }
    }

    fn timing() -> Timing {
        Timing {
            interval: Duration::from_secs(180),
            jitter: 0.1,
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(60),
            debounce: Duration::from_secs(1),
            grace: Duration::from_secs(20),
        }
    }

    #[test]
    fn error_policy_doubles_and_caps() {
        let t = timing();
        let waits: Vec<u64> = (1..=6).map(|n| error_policy(n, &t).as_secs()).collect();
        assert_eq!(waits, vec![5, 10, 20, 40, 60, 60]);
        assert_eq!(error_policy(u32::MAX, &t), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn reconciles_at_start_then_every_interval_with_bounded_jitter() {
        let r = Recorder::new(vec![]);
        let shared = Shared::default();
        let stop = tokio::time::sleep(Duration::from_secs(1000));
        let passes = run(&r, &shared, timing(), fastrand::Rng::with_seed(7), stop).await;
        let runs = r.runs.borrow();
        assert_eq!(passes as usize, runs.len());
        assert_eq!(runs[0], (Duration::ZERO, Trigger::Start));
        // 1000 s of 180–198 s waits: 5 or 6 passes in all.
        assert!((6..=7).contains(&runs.len()), "{runs:?}");
        let mut gaps = Vec::new();
        for w in runs.windows(2) {
            let gap = w[1].0 - w[0].0;
            assert!(
                gap >= Duration::from_secs(180) && gap <= Duration::from_secs(198),
                "{gap:?}"
            );
            assert_eq!(w[1].1, Trigger::Interval);
            gaps.push(gap);
        }
        gaps.dedup();
        assert!(gaps.len() > 1, "the jitter varies the waits: {gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_then_the_interval_resumes() {
        let r = Recorder::new(vec![true, true, true, false]);
        let shared = Shared::default();
        let stop = tokio::time::sleep(Duration::from_secs(300));
        run(&r, &shared, timing(), fastrand::Rng::with_seed(1), stop).await;
        let runs = r.runs.borrow();
        let at: Vec<u64> = runs.iter().map(|(t, _)| t.as_secs()).collect();
        let why: Vec<Trigger> = runs.iter().map(|(_, w)| *w).collect();
        // Fails at 0, retries after 5, 10, 20 s; the fourth pass succeeds; then the interval.
        assert_eq!(&at[..4], &[0, 5, 15, 35]);
        assert_eq!(
            &why[..4],
            &[
                Trigger::Start,
                Trigger::Retry,
                Trigger::Retry,
                Trigger::Retry
            ]
        );
        assert!(at.len() == 5 && at[4] >= 35 + 180, "{at:?}");
        assert_eq!(why[4], Trigger::Interval);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_webhooks_causes_one_refresh() {
        let r = Recorder::new(vec![]);
        let shared = Rc::new(Shared::default());
        let hooks = {
            let shared = shared.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                for _ in 0..5 {
                    shared.refresh.notify_one();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let stop = tokio::time::sleep(Duration::from_secs(100));
        let (_, passes) = tokio::join!(
            hooks,
            run(&r, &shared, timing(), fastrand::Rng::with_seed(3), stop)
        );
        let runs = r.runs.borrow();
        assert_eq!(passes, 2, "{runs:?}");
        assert_eq!(runs[1], (Duration::from_secs(31), Trigger::Webhook));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_lets_the_running_reconcile_finish_within_the_grace_period() {
        let mut r = Recorder::new(vec![]);
        r.work = Duration::from_secs(15);
        let shared = Shared::default();
        let stop = tokio::time::sleep(Duration::from_secs(10));
        let started = Instant::now();
        let passes = run(&r, &shared, timing(), fastrand::Rng::with_seed(3), stop).await;
        assert_eq!(passes, 1);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(15),
            "the pass under way finished, no new one began"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_abandons_a_reconcile_that_outlasts_the_grace_period() {
        let mut r = Recorder::new(vec![]);
        r.work = Duration::from_secs(100);
        let shared = Shared::default();
        let stop = tokio::time::sleep(Duration::from_secs(10));
        let started = Instant::now();
        let passes = run(&r, &shared, timing(), fastrand::Rng::with_seed(3), stop).await;
        assert_eq!(passes, 1);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(30),
            "10 s + 20 s of grace"
        );
    }
}
