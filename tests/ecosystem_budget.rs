//! The request budget per registry host (`rateLimit`), seen by a proxy in front of a real
//! registry that notes when each request arrives; and Docker Hub's `ratelimit-remaining`
//! headers, added by the proxy, slowing a run down before any 429.

use std::time::{Duration, Instant};

use crate::util::{PagingProxy, ProxyOptions, TestRegistry, three_releases};

/// The most requests that arrived within any window of `window`.
fn busiest(times: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[test]
fn a_sync_stays_within_the_host_s_budget_and_still_finishes() {
    const RPS: f64 = 20.0;
    const BURST: usize = 5;
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let proxy = PagingProxy::start(&dst.base_url(), ProxyOptions::default());
    let (repo, _) = three_releases(
        &src,
        &proxy.host(),
        &format!(", rateLimit: {{requestsPerSecond: {RPS}, burst: {BURST}}}"),
    );
    let start = Instant::now();
    repo.relsync(&["sync"]).expect_code(0);
    let took = start.elapsed();
    let times = proxy.request_times();
    let n = times.len();
    assert!(n > 3 * BURST, "only {n} requests to the target");
    // GCRA: at most BURST at once, then one every 1/RPS s: within any second, at most
    // RPS + BURST (one more for the clock's edges).
    let peak = busiest(&times, Duration::from_secs(1));
    assert!(
        peak <= RPS as usize + BURST + 1,
        "{peak} requests within one second (budget {RPS}/s, burst {BURST})"
    );
    let least = Duration::from_secs_f64((n - BURST) as f64 / RPS * 0.9);
    assert!(
        took >= least,
        "{n} requests in {took:?}: faster than the budget allows ({least:?})"
    );
    assert!(
        dst.tag_digest("okd/release", "next").is_some(),
        "the sync finished"
    );

    // The same run without a budget goes faster than the budget would let it: the budget,
    // not the machine, set the pace above.
    let dst2 = TestRegistry::start();
    let proxy2 = PagingProxy::start(&dst2.base_url(), ProxyOptions::default());
    let (repo2, _) = three_releases(&src, &proxy2.host(), "");
    repo2.relsync(&["sync"]).expect_code(0);
    let free = busiest(&proxy2.request_times(), Duration::from_secs(1));
    assert!(
        free > RPS as usize + BURST + 1,
        "unbudgeted, the run made only {free} requests in its busiest second"
    );
}

#[test]
fn docker_hub_s_ratelimit_remaining_spreads_the_last_requests_over_the_window() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    // 10 of 1000 left in a 1 s window: one request every 0.1 s.
    let proxy = PagingProxy::start(
        &dst.base_url(),
        ProxyOptions {
            answer_headers: vec![
                ("ratelimit-limit".into(), "1000;w=1".into()),
                ("ratelimit-remaining".into(), "10;w=1".into()),
            ],
            ..Default::default()
        },
    );
    let (repo, _) = three_releases(&src, &proxy.host(), "");
    repo.relsync(&["sync"]).expect_code(0);
    let times = proxy.request_times();
    assert!(times.len() > 5, "{} requests", times.len());
    // The first answers set the pace; from the third request on, they are sent 0.1 s
    // apart. The proxy sees them arrive with the machine's jitter (one sent late arrives
    // close to the next), so judge the rate: the mean gap, and at most 10 (plus the
    // jitter's one or two) within any second.
    let paced = &times[2..];
    let gaps: Vec<Duration> = paced.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<Duration>() / u32::try_from(gaps.len()).unwrap();
    let peak = busiest(paced, Duration::from_secs(1));
    assert!(
        mean >= Duration::from_millis(95) && peak <= 12,
        "requests {mean:?} apart on average, {peak} within one second, although the registry said 10 of 1000 are left: {gaps:?}"
    );
    assert!(dst.tag_digest("okd/release", "next").is_some());
}
