//! How `desired::load` + `desired::derive` scale with the size of a channel: a stream of
//! `2n` releases and two channels each listing `n` versions and tombstoning `n` (the shape
//! that was O(n²) before the fix recorded in RELIABILITY.md). Prints the time per size and
//! the ratio of each size to the previous; exits 1 when doubling `n` costs 3x or more
//! (linear is 2x, quadratic 4x).
//!
//! `cargo bench --bench manifest_scaling`

#[path = "../tests/large_channels.rs"]
mod large_channels;

use std::time::{Duration, Instant};

use relsync::desired;

fn time(n: usize) -> Duration {
    let files = large_channels::large_channels(n);
    (0..5)
        .map(|_| {
            let started = Instant::now();
            let m = desired::load(&files, "policies").expect("valid");
            let d = desired::derive(&m).expect("derives");
            assert_eq!(d.repos["q.example/a"].absent.len(), n);
            started.elapsed()
        })
        .min()
        .expect("five runs")
}

fn main() {
    println!(
        "| n (versions = tombstones per channel) | file size of one channel | load + derive (min of 5) | vs n/2 |"
    );
    println!("|---|---|---|---|");
    let mut previous: Option<Duration> = None;
    let mut worst: f64 = 0.0;
    for n in [2_500, 5_000, 10_000, 20_000, 40_000] {
        let size = large_channels::large_channels(n)[1].contents.len();
        let t = time(n);
        let ratio = previous.map(|p| t.as_secs_f64() / p.as_secs_f64());
        if let Some(r) = ratio {
            worst = worst.max(r);
        }
        println!(
            "| {n} | {:.1} MiB | {:.1} ms | {} |",
            size as f64 / 1048576.0,
            t.as_secs_f64() * 1e3,
            ratio.map_or("-".to_string(), |r| format!("{r:.2}x"))
        );
        previous = Some(t);
    }
    println!("\nworst doubling ratio: {worst:.2}x (linear 2x, quadratic 4x)");
    if worst >= 3.0 {
        eprintln!("not linear: doubling the channel cost {worst:.2}x");
        std::process::exit(1);
    }
}
