//! Scale of the pure core (issue 18, item 5): `validate` (parse and check every manifest) +
//! `derive` + `plan` on a generated catalogue of 10,000 channels, 1,000 streams and
//! 1,000,000 desired version tags, and on a tenth and a hundredth of it, against an
//! observed state that matches (the no-op) and against one where 1% of the tags are off.
//! Prints, per size, the wall time of each phase (one core: the core is single-threaded),
//! the peak RSS of the process (`getrusage`), and the ratio to the size below; the goal is
//! < 2 s and < 1 GiB for the 1,000,000-tag no-op and a cost linear in the tags.
//!
//! Run: `cargo bench --bench core_scale` (knob: `CORE_SCALE_SIZES=10000,100000` to run only
//! some sizes). Each size runs in a child process of its own, so that its peak RSS is its
//! own. Not a test: nothing here is in `.ci/run`. Results go to BENCHMARKS.md.
//!
//! Generated deterministically (the same catalogue every run), for `T` tags:
//! - `T / 1,000` streams `s0000…`, each with 1,000 releases `1.<r>.0` (r = 0..1000) pinned
//!   to digest `sha256:<s * 1000 + r as 64 hex digits>`, source `src.example/s<s>`, target
//!   `dst.example/s<s>` (one target per stream);
//! - 10 channels per stream (so 10,000 channels for 1,000,000 tags), channel c listing the
//!   releases 100c..100c+100 and carrying one floating tag `c<c>-s<s>`: every release is
//!   published once, so the desired state has `T` version tags plus `T / 100` floating tags;
//! - one policy: `immutableTags: '^\d+\.\d+\.\d+$'` (checked for every tag),
//!   `maxDeletesPerSync: 5`;
//! - the observed state holds every desired tag with its digest (no-op: 0 actions), or, for
//!   "1% off", every 100th version tag of each repository is missing (half of them:
//!   `mirror` actions) or moved to another digest (the other half: conflicts, the tags are
//!   immutable), and every 100th floating tag is moved (a `retag`).

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use relsync::desired;
use relsync::digest::Digest;
use relsync::manifest::SourceFile;
use relsync::plan::{self, ObservedRepo, ObservedState, PlanOptions};

const RELEASES_PER_STREAM: usize = 1_000;
const CHANNELS_PER_STREAM: usize = 10;
const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

fn digest(n: usize) -> String {
    format!("sha256:{n:064x}")
}

/// The manifests of a catalogue of `tags` version tags (see the header).
fn catalogue(tags: usize) -> Vec<SourceFile> {
    let streams = tags / RELEASES_PER_STREAM;
    let head = "apiVersion: relsync.dev/v1alpha1\n";
    let mut files = Vec::new();
    for s in 0..streams {
        let mut stream = String::with_capacity(RELEASES_PER_STREAM * 100);
        write!(
            stream,
            "{head}kind: ReleaseStream\nmetadata: {{name: s{s:04}}}\nspec:\n  source: src.example/s{s:04}\n  target: dst.example/s{s:04}\n  releases:\n"
        )
        .unwrap();
        for r in 0..RELEASES_PER_STREAM {
            writeln!(
                stream,
                "    - {{version: 1.{r}.0, digest: '{}'}}",
                digest(s * RELEASES_PER_STREAM + r)
            )
            .unwrap();
        }
        files.push(SourceFile {
            path: format!("manifests/s{s:04}/stream.yaml"),
            contents: stream.into_bytes(),
        });
        let per_channel = RELEASES_PER_STREAM / CHANNELS_PER_STREAM;
        for c in 0..CHANNELS_PER_STREAM {
            let mut channel = String::with_capacity(per_channel * 16);
            write!(
                channel,
                "{head}kind: ReleaseChannel\nmetadata: {{name: c{c}-s{s:04}}}\nspec:\n  stream: s{s:04}\n  tags: [c{c}-s{s:04}]\n  versions:\n"
            )
            .unwrap();
            for r in c * per_channel..(c + 1) * per_channel {
                writeln!(channel, "    - 1.{r}.0").unwrap();
            }
            files.push(SourceFile {
                path: format!("manifests/s{s:04}/c{c}.yaml"),
                contents: channel.into_bytes(),
            });
        }
    }
    files.push(SourceFile {
        path: "policies/default.yaml".to_string(),
        contents: format!(
            "{head}kind: Policy\nmetadata: {{name: default}}\nspec:\n  immutableTags: '^\\d+\\.\\d+\\.\\d+$'\n  maxDeletesPerSync: 5\n"
        )
        .into_bytes(),
    });
    files
}

/// What the registries hold: every desired tag with its digest, or (`off`) with every
/// 100th version tag of a repository missing or moved and every 100th floating tag moved.
/// The number of tags that are off.
fn observed(desired: &desired::DesiredState, off: bool) -> (ObservedState, usize) {
    let mut state = ObservedState::default();
    let mut wrong = 0;
    let mut floating: usize = 0;
    for (repo, want) in &desired.repos {
        let mut live = ObservedRepo::default();
        for (i, (tag, d)) in want.tags.iter().enumerate() {
            let is_floating = d.kind == desired::TagKind::Floating;
            let digest = if is_floating {
                floating += 1;
                if off && floating.is_multiple_of(100) {
                    wrong += 1;
                    Some(Digest::parse(&digest(usize::MAX - floating)).unwrap())
                } else {
                    Some(d.digest.clone())
                }
            } else if off && i.is_multiple_of(100) {
                wrong += 1;
                if (i / 100).is_multiple_of(2) {
                    continue; // missing
                }
                Some(Digest::parse(&digest(usize::MAX / 2 - i)).unwrap())
            } else {
                Some(d.digest.clone())
            };
            live.tags.insert(tag.clone(), digest);
        }
        state.repos.insert(repo.clone(), live);
    }
    (state, wrong)
}

/// The peak resident set of this process so far, in bytes.
fn peak_rss() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    usage.ru_maxrss as u64 * 1024
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One size, in this process: prints one line `tags streams channels desired validate derive
/// noop off actions conflicts rss_before rss`, times in ms, sizes in bytes.
fn child(tags: usize) {
    let files = catalogue(tags);
    let rss_input = peak_rss();

    let started = Instant::now();
    let manifests = desired::load(&files, "policies").expect("the catalogue is valid");
    let validate = started.elapsed();
    let started = Instant::now();
    let desired = desired::derive(&manifests).expect("the catalogue derives");
    let derive = started.elapsed();
    let wanted: usize = desired.repos.values().map(|r| r.tags.len()).sum();

    let options = PlanOptions::default();
    let (matching, _) = observed(&desired, false);
    let started = Instant::now();
    let noop = plan::plan("HEAD", &desired, &matching, &manifests.policy, &options);
    let noop_time = started.elapsed();
    assert!(
        noop.actions.is_empty() && noop.conflicts.is_empty(),
        "a matching state plans nothing"
    );
    drop(noop);
    drop(matching);

    let (off_state, wrong) = observed(&desired, true);
    let started = Instant::now();
    let off = plan::plan("HEAD", &desired, &off_state, &manifests.policy, &options);
    let off_time = started.elapsed();
    assert_eq!(
        off.actions.len() + off.conflicts.len(),
        wrong,
        "every tag that is off is an action or a conflict"
    );
    println!(
        "{tags} {} {} {wanted} {:.1} {:.1} {:.1} {:.1} {} {} {rss_input} {}",
        manifests.streams.len(),
        manifests.channels.len(),
        ms(validate),
        ms(derive),
        ms(noop_time),
        ms(off_time),
        off.actions.len(),
        off.conflicts.len(),
        peak_rss(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(args[i + 1].parse().expect("a size"));
        return;
    }
    let sizes: Vec<usize> = match std::env::var("CORE_SCALE_SIZES") {
        Ok(v) => v
            .split(',')
            .map(|s| s.trim().parse().expect("CORE_SCALE_SIZES: numbers"))
            .collect(),
        Err(_) => SIZES.to_vec(),
    };
    let exe = std::env::current_exe().expect("own path");
    println!(
        "| version tags | streams | channels | desired tags | validate | derive | plan, no-op | validate + derive + plan (no-op) | vs size/10 | plan, 1% off (actions + conflicts) | peak RSS (input text alone) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut previous: Option<f64> = None;
    for tags in sizes {
        let out = Command::new(&exe)
            .args(["--child", &tags.to_string()])
            .output()
            .expect("run a size");
        assert!(
            out.status.success(),
            "size {tags} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f[i].parse::<f64>().expect("a figure");
        let total = num(4) + num(5) + num(6);
        let ratio = previous.map_or("-".to_string(), |p| format!("{:.1}x", total / p));
        previous = Some(total);
        let mib = |b: f64| b / 1048576.0;
        println!(
            "| {} | {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | **{:.0} ms** | {ratio} | {:.0} ms ({} + {}) | {:.0} MiB ({:.0} MiB) |",
            group(f[0]),
            group(f[1]),
            group(f[2]),
            group(f[3]),
            num(4),
            num(5),
            num(6),
            total,
            num(7),
            group(f[8]),
            group(f[9]),
            mib(num(11)),
            mib(num(10)),
        );
    }
}

/// `1000000` → `1,000,000`.
fn group(n: &str) -> String {
    let mut out = String::new();
    for (i, c) in n.chars().enumerate() {
        if i > 0 && (n.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
