//! Fuzz target `plan`: a small manifest set and an arbitrary live state → plan and drift.
//!
//! The input (decoded with `arbitrary`) picks, from small pools so that names collide
//! often: one or two streams (semver or listed order, sharing a target or not) with up to
//! six releases each (versions, digests from a pool of eight, pinned extra tags); up to three
//! channels (versions, tombstones, floating tags, an ImageStream); a policy (immutable tags,
//! a delete cap); plan options (prune, `--allow-deletes`, `--channel`); and the live state:
//! repositories with tags (resolved to a pool digest, or listed but unresolved), manifests
//! present or absent, and, maybe, ImageStreams with spec tags (digest pull specs, tag-based
//! pull specs, other kinds; relsync's or another manager's) and status tags (imported
//! image, generation, import failure).
//!
//! The manifests are written out as YAML and go through the real `desired::load` and
//! `desired::derive`; inputs they refuse end the run early (that path is
//! `manifest_parse`'s job).
//!
//! Properties checked, as RELIABILITY.md states them:
//! 1. `plan::plan` and `plan::drift` never panic, and `plan` is deterministic.
//! 2. Plan and drift agree: every action has a counted drift item on its (target, tag);
//!    every counted drift item of a repository is an action, a conflict, or an immutable
//!    tag whose live digest was not resolved (left alone, by design); every counted
//!    `missing` or `extra` item of an ImageStream is an action (a `moved` or
//!    `import-failed` one may be the cluster's import lagging or failing, which no action
//!    fixes).
//! 3. Idempotence: a plan refused for the delete cap is re-planned with
//!    `--allow-deletes` equal to its deletes, which must lift the refusal and keep the same
//!    actions. The plan's actions are then applied to the live state by a small simulator
//!    (below), and planning again with the same options gives no action, no refusal, and
//!    exactly the same conflicts (immutable tags Git cannot move stay reported, nothing else).
//! 4. After that apply, without `--channel`, drift counts nothing on a repository except
//!    those conflicts and unresolved immutable tags, and no ImageStream item is `missing`
//!    or `extra`.
//! 5. Every rendering of the first plan and drift (text with and without colour, JSON,
//!    Markdown) works and ends with a newline; the JSON keeps the contract's counts and
//!    `inSync`.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use relsync::desired::{self, DesiredState};
use relsync::digest::Digest;
use relsync::manifest::{ImageStreamRef, Policy, SourceFile};
use relsync::plan::{
    self, ActionKind, DriftState, ImportFailure, ObservedImageStream, ObservedSpecTag,
    ObservedState, ObservedStatusTag, Plan, PlanOptions, Target,
};

// ---------------------------------------------------------------------------------------------
// Pools: small on purpose, so that tags, digests and versions collide.

const REPO_A: &str = "quay.io/fuzz/a";
const REPO_B: &str = "quay.io/fuzz/b";
const REPO_OTHER: &str = "quay.io/fuzz/other";
const REPOS: [&str; 3] = [REPO_A, REPO_B, REPO_OTHER];
/// Versions; `1.0.0+amd64` ties with `1.0.0` under semver and is tagged `1.0.0_amd64`.
const VERSIONS: [&str; 8] = [
    "1.0.0",
    "1.1.0",
    "1.2.0",
    "2.0.0",
    "1.0.0+amd64",
    "1.1.0-rc.1",
    "0.9.0",
    "3.0.0",
];
/// Extra tags pinned to a release.
const PINNED: [&str; 4] = ["pinned", "1.0", "latest", "2.0.0"];
/// Floating tags of a channel (some shared with the pinned pool on purpose).
const FLOATING: [&str; 4] = ["next", "stable", "latest", "1.0"];
/// `immutableTags` regexes.
const IMMUTABLE: [&str; 4] = [r"^\d+\.\d+\.\d+", "^stable$", ".*", r"^1\.0$"];
/// Live tags that no pool above yields.
const JUNK_TAGS: [&str; 4] = [
    "junk",
    "sha256-1111111111111111111111111111111111111111111111111111111111111111.sig",
    "host/repo:x",
    "1.0.0+amd64",
];
const IMAGE_STREAMS: [(&str, &str); 3] = [("ns", "is1"), ("ns", "is2"), ("other", "is3")];
const MAX_RELEASES: usize = 6;
const MAX_CHANNELS: usize = 3;
const MAX_LIVE: usize = 12;

fn digest(n: u8) -> Digest {
    let hex = format!("{:x}", n % 8 + 1).repeat(64);
    Digest::parse(&format!("sha256:{hex}")).expect("pool digest is valid")
}

/// Every tag name the pools can produce, live or desired.
fn tag_pool() -> Vec<String> {
    let mut t: Vec<String> = VERSIONS.iter().map(|v| desired::version_tag(v)).collect();
    t.extend(PINNED.iter().map(|s| s.to_string()));
    t.extend(FLOATING.iter().map(|s| s.to_string()));
    t.extend(JUNK_TAGS.iter().map(|s| s.to_string()));
    t.sort();
    t.dedup();
    t
}

fn pick<T: Copy>(pool: &[T], n: u8) -> T {
    pool[n as usize % pool.len()]
}

// ---------------------------------------------------------------------------------------------
// The fuzzer's input.

#[derive(Arbitrary, Debug)]
struct ReleaseIn {
    version: u8,
    digest: u8,
    pinned: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct StreamIn {
    listed: bool,
    releases: Vec<ReleaseIn>,
}

#[derive(Arbitrary, Debug)]
struct ChannelIn {
    /// Select from the second stream (when there is one).
    second: bool,
    /// Bit i: lists the stream's release i.
    versions: u8,
    /// Bit i: tombstones the stream's release i.
    tombstones: u8,
    floating: Vec<u8>,
    image_stream: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct RepoIn {
    repo: u8,
    /// Tag → digest (`None`: listed, not resolved).
    tags: Vec<(u8, Option<u8>)>,
    /// Manifests checked by digest: present or absent.
    manifests: Vec<(u8, bool)>,
}

#[derive(Arbitrary, Debug)]
enum FromIn {
    /// `repo@digest`.
    Digest(u8, u8),
    /// `repo:tag`.
    TagBased(u8, u8),
    /// Another kind (`ImageStreamTag:…`).
    Other,
}

#[derive(Arbitrary, Debug)]
struct SpecIn {
    tag: u8,
    from: FromIn,
    generation: Option<u8>,
    managed: bool,
}

#[derive(Arbitrary, Debug)]
struct StatusIn {
    tag: u8,
    image: Option<u8>,
    generation: Option<u8>,
    failure: Option<Option<u8>>,
}

#[derive(Arbitrary, Debug)]
struct ImageStreamIn {
    is: u8,
    spec: Vec<SpecIn>,
    status: Vec<StatusIn>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    first: StreamIn,
    second: Option<(bool, StreamIn)>,
    channels: Vec<ChannelIn>,
    immutable: Option<u8>,
    max_deletes: Option<u8>,
    prune: bool,
    allow_deletes: Option<u8>,
    channel: Option<u8>,
    repos: Vec<RepoIn>,
    image_streams: Option<Vec<ImageStreamIn>>,
}

// ---------------------------------------------------------------------------------------------
// Input → manifests (as YAML, through the real loader).

/// The releases a stream keeps: unique versions, at most [`MAX_RELEASES`].
fn releases(s: &StreamIn) -> Vec<(&'static str, Digest, Option<&'static str>)> {
    let mut seen = BTreeSet::new();
    s.releases
        .iter()
        .map(|r| (pick(&VERSIONS, r.version), r))
        .filter(|(v, _)| seen.insert(*v))
        .take(MAX_RELEASES)
        .map(|(v, r)| (v, digest(r.digest), r.pinned.map(|p| pick(&PINNED, p))))
        .collect()
}

fn stream_yaml(name: &str, target: &str, s: &StreamIn) -> String {
    let mut y = format!(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata:\n  name: {name}\nspec:\n  source: registry.example/src/{name}\n  target: {target}\n  order: {}\n  releases:\n",
        if s.listed { "listed" } else { "semver" }
    );
    for (v, d, pinned) in releases(s) {
        y += &format!("    - version: {v}\n      digest: {d}\n");
        if let Some(p) = pinned {
            y += &format!("      tags: [\"{p}\"]\n");
        }
    }
    y
}

fn channel_yaml(i: usize, c: &ChannelIn, input: &Input) -> String {
    let (stream, s) = match &input.second {
        Some((_, s)) if c.second => ("s2", s),
        _ => ("s1", &input.first),
    };
    let rel = releases(s);
    let mut y = format!(
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata:\n  name: c{i}\nspec:\n  stream: {stream}\n"
    );
    let floating: BTreeSet<&str> = c
        .floating
        .iter()
        .take(2)
        .map(|f| pick(&FLOATING, *f))
        .collect();
    if !floating.is_empty() {
        let list: Vec<String> = floating.iter().map(|f| format!("\"{f}\"")).collect();
        y += &format!("  tags: [{}]\n", list.join(", "));
    }
    if let Some(n) = c.image_stream {
        let (ns, name) = pick(&IMAGE_STREAMS[..2], n);
        y += &format!("  imageStream: {{namespace: {ns}, name: {name}}}\n");
    }
    let listed = |mask: u8| -> Vec<String> {
        rel.iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, r)| format!("\"{}\"", r.0))
            .collect()
    };
    y += &format!("  versions: [{}]\n", listed(c.versions).join(", "));
    let tombstones = listed(c.tombstones);
    if !tombstones.is_empty() {
        y += &format!("  tombstones: [{}]\n", tombstones.join(", "));
    }
    y
}

fn policy_yaml(input: &Input) -> Option<String> {
    if input.immutable.is_none() && input.max_deletes.is_none() {
        return None;
    }
    let mut y = "apiVersion: relsync.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: fuzz\nspec:\n"
        .to_string();
    if let Some(n) = input.immutable {
        y += &format!("  immutableTags: '{}'\n", pick(&IMMUTABLE, n));
    }
    if let Some(n) = input.max_deletes {
        y += &format!("  maxDeletesPerSync: {}\n", n % 4);
    }
    Some(y)
}

fn manifests(input: &Input) -> Vec<SourceFile> {
    let file = |path: &str, text: String| SourceFile {
        path: path.to_string(),
        contents: text.into_bytes(),
    };
    let mut files = vec![file(
        "manifests/s1.yaml",
        stream_yaml("s1", REPO_A, &input.first),
    )];
    if let Some((same_target, s)) = &input.second {
        let target = if *same_target { REPO_A } else { REPO_B };
        files.push(file("manifests/s2.yaml", stream_yaml("s2", target, s)));
    }
    for (i, c) in input.channels.iter().take(MAX_CHANNELS).enumerate() {
        files.push(file(
            &format!("manifests/c{i}.yaml"),
            channel_yaml(i, c, input),
        ));
    }
    if let Some(p) = policy_yaml(input) {
        files.push(file("policies/fuzz.yaml", p));
    }
    files
}

// ---------------------------------------------------------------------------------------------
// Input → live state.

fn observed(input: &Input) -> ObservedState {
    let tags = tag_pool();
    let mut o = ObservedState::default();
    for r in input.repos.iter().take(MAX_LIVE) {
        let repo = o.repos.entry(pick(&REPOS, r.repo).to_string()).or_default();
        for (t, d) in r.tags.iter().take(MAX_LIVE) {
            repo.tags
                .insert(tags[*t as usize % tags.len()].clone(), d.map(digest));
        }
        for (d, present) in r.manifests.iter().take(MAX_LIVE) {
            repo.manifests.insert(digest(*d), *present);
        }
    }
    o.image_streams = input.image_streams.as_ref().map(|list| {
        let mut map = BTreeMap::new();
        for i in list.iter().take(MAX_LIVE) {
            let (ns, name) = pick(&IMAGE_STREAMS, i.is);
            let is: &mut ObservedImageStream = map
                .entry(ImageStreamRef {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                })
                .or_default();
            is.resource_version = Some("1".to_string());
            for s in i.spec.iter().take(MAX_LIVE) {
                let from = match s.from {
                    FromIn::Digest(r, d) => format!("{}@{}", pick(&REPOS, r), digest(d)),
                    FromIn::TagBased(r, t) => {
                        format!("{}:{}", pick(&REPOS, r), tags[t as usize % tags.len()])
                    }
                    FromIn::Other => "ImageStreamTag:ns/x:latest".to_string(),
                };
                is.spec_tags.insert(
                    tags[s.tag as usize % tags.len()].clone(),
                    ObservedSpecTag {
                        from,
                        generation: s.generation.map(i64::from),
                        managed_by_relsync: s.managed,
                    },
                );
            }
            for s in i.status.iter().take(MAX_LIVE) {
                is.status_tags.insert(
                    tags[s.tag as usize % tags.len()].clone(),
                    ObservedStatusTag {
                        image: s.image.map(digest),
                        generation: s.generation.map(i64::from),
                        import_failure: s.failure.map(|g| ImportFailure {
                            message: "fuzz: import failed".to_string(),
                            generation: g.map(i64::from),
                        }),
                    },
                );
            }
        }
        map
    });
    o
}

// ---------------------------------------------------------------------------------------------
// The apply simulator.

/// Applies `plan`'s actions to `live` as a successful `sync` would: a registry tag is set
/// to the action's `to` (mirror, tag, retag, rollback) or removed (delete); an ImageStream
/// spec tag is set to Git's pull spec, owned by relsync, with a status that has imported
/// it for the new generation, or removed with its status (delete).
fn apply(plan: &Plan, desired: &DesiredState, live: &mut ObservedState) {
    for a in &plan.actions {
        match &a.target {
            Target::Repo(repo) => {
                let r = live.repos.entry(repo.clone()).or_default();
                match a.action {
                    ActionKind::Delete => {
                        assert!(a.to.is_none(), "a delete with a `to`: {a:?}");
                        r.tags.remove(&a.tag);
                    }
                    _ => {
                        let to = a.to.clone().expect("a non-delete action has a `to`");
                        r.tags.insert(a.tag.clone(), Some(to));
                    }
                }
            }
            Target::ImageStream(is) => {
                let streams = live
                    .image_streams
                    .as_mut()
                    .expect("ImageStream actions only when the cluster was observed");
                let s = streams.entry(is.clone()).or_default();
                match a.action {
                    ActionKind::Delete => {
                        s.spec_tags.remove(&a.tag);
                        s.status_tags.remove(&a.tag);
                    }
                    _ => {
                        let want = desired
                            .image_streams
                            .get(is)
                            .and_then(|tags| tags.get(&a.tag))
                            .expect("an ImageStream action names a desired tag");
                        assert_eq!(
                            a.to.as_ref(),
                            Some(&want.digest),
                            "action `to` is not Git's"
                        );
                        let generation = s
                            .spec_tags
                            .get(&a.tag)
                            .and_then(|t| t.generation)
                            .unwrap_or(0)
                            + 1;
                        s.spec_tags.insert(
                            a.tag.clone(),
                            ObservedSpecTag {
                                from: want.from.clone(),
                                generation: Some(generation),
                                managed_by_relsync: true,
                            },
                        );
                        s.status_tags.insert(
                            a.tag.clone(),
                            ObservedStatusTag {
                                image: Some(want.digest.clone()),
                                generation: Some(generation),
                                import_failure: None,
                            },
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// Immutable registry tags that are listed live but unresolved: plan leaves them alone.
fn unresolved_immutable(
    desired: &DesiredState,
    live: &ObservedState,
    policy: &Policy,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (repo, want) in &desired.repos {
        let Some(r) = live.repos.get(repo) else {
            continue;
        };
        for tag in want.tags.keys() {
            if matches!(r.tags.get(tag), Some(None)) && policy.is_immutable(tag) {
                out.insert((repo.clone(), tag.clone()));
            }
        }
    }
    out
}

/// Property 2: plan and drift agree.
fn check_agreement(
    p: &Plan,
    desired: &DesiredState,
    live: &ObservedState,
    policy: &Policy,
    options: &PlanOptions,
) {
    let d = plan::drift(&p.revision, desired, live, options);
    let counted: BTreeMap<(String, String), DriftState> = d
        .items
        .iter()
        .filter(|i| i.counts)
        .map(|i| ((i.target.to_string(), i.tag.clone()), i.state))
        .collect();
    let acted: BTreeSet<(String, String)> = p
        .actions
        .iter()
        .map(|a| (a.target.to_string(), a.tag.clone()))
        .collect();
    let conflicted: BTreeSet<(String, String)> = p
        .conflicts
        .iter()
        .map(|c| (c.target.to_string(), c.tag.clone()))
        .collect();
    let left_alone = unresolved_immutable(desired, live, policy);
    for a in &p.actions {
        let key = (a.target.to_string(), a.tag.clone());
        assert!(
            counted.contains_key(&key),
            "action without a counted drift item: {a:?}\ndrift: {d:?}"
        );
    }
    for (key, state) in &counted {
        let is_image_stream = key.0.starts_with("imagestream:");
        let explained = acted.contains(key)
            || conflicted.contains(key)
            || left_alone.contains(key)
            || (is_image_stream && !matches!(state, DriftState::Missing | DriftState::Extra));
        assert!(
            explained,
            "counted drift item {key:?} ({state:?}) has no action\nplan: {p:?}\ndrift: {d:?}"
        );
    }
}

/// Property 5: every rendering of the plan and the drift works and ends with a newline,
/// and the JSON ones keep docs/reference.md's contract: one `actions` entry per action, one `items`
/// entry per drift item, `inSync` as `Drift::in_sync`.
fn check_reports(p: &Plan, d: &plan::Drift) {
    use relsync::report::{Format, Style, render_drift, render_plan};
    for format in [Format::Text, Format::Json, Format::Markdown] {
        for color in [false, true] {
            let style = Style { color };
            let out = render_plan(p, format, style);
            assert!(
                out.ends_with('\n'),
                "{format:?} plan does not end with a newline"
            );
            let out = render_drift(d, format, style);
            assert!(
                out.ends_with('\n'),
                "{format:?} drift does not end with a newline"
            );
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&render_plan(p, Format::Json, Style::default()))
            .expect("plan JSON parses");
    assert_eq!(json["revision"], p.revision.as_str());
    assert_eq!(
        json["actions"].as_array().map(Vec::len),
        Some(p.actions.len()),
        "plan JSON"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_drift(d, Format::Json, Style::default()))
            .expect("drift JSON parses");
    assert_eq!(json["inSync"], d.in_sync(), "drift JSON inSync");
    assert_eq!(
        json["items"].as_array().map(Vec::len),
        Some(d.items.len()),
        "drift JSON"
    );
}

/// With `RELSYNC_FUZZ_STATS` set, each input prints how far it got (`stage: load-refused`,
/// `derive-refused`, `planned`), to measure how much of the corpus reaches the planner:
/// `RELSYNC_FUZZ_STATS=1 <binary> -runs=0 fuzz/corpus/plan 2>&1 | grep -c 'stage: planned'`.
fn stage(name: &str) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("RELSYNC_FUZZ_STATS").is_some()) {
        eprintln!("stage: {name}");
    }
}

fuzz_target!(|input: Input| {
    let files = manifests(&input);
    let m = match desired::load(&files, "policies") {
        Ok(m) => m,
        Err(d) => {
            stage(&format!("load-refused: {}", d.0[0].message));
            return;
        }
    };
    let desired = match desired::derive(&m) {
        Ok(d) => d,
        Err(d) => {
            stage(&format!("derive-refused: {}", d.0[0].message));
            return;
        }
    };
    stage("planned");
    let policy = &m.policy;
    let mut live = observed(&input);
    let mut options = PlanOptions {
        prune: input.prune,
        allow_deletes: input.allow_deletes.map(|n| u32::from(n % 4)),
        channel: input.channel.map(|n| format!("c{}", n % 4)),
    };

    // 1. No panic, deterministic.
    let mut first = plan::plan("r1", &desired, &live, policy, &options);
    assert_eq!(
        first,
        plan::plan("r1", &desired, &live, policy, &options),
        "plan is not deterministic"
    );

    // 2. Plan and drift agree.
    check_agreement(&first, &desired, &live, policy, &options);
    check_reports(&first, &plan::drift("r1", &desired, &live, &options));

    // 3. A refused plan writes nothing; accepting its deletes lifts the refusal only.
    if let Some(plan::Refusal::DeleteCap { deletes, max }) = first.refusal.clone() {
        let deletes_now = first
            .actions
            .iter()
            .filter(|a| a.action == ActionKind::Delete)
            .count();
        assert!(deletes > max as usize, "refused under the cap: {first:?}");
        assert!(
            options.channel.is_some() || deletes == deletes_now,
            "refusal counts {deletes} deletes, plan has {deletes_now}"
        );
        options.allow_deletes = Some(u32::try_from(deletes).expect("few deletes"));
        let accepted = plan::plan("r1", &desired, &live, policy, &options);
        assert!(
            accepted.refusal.is_none(),
            "--allow-deletes {deletes} still refused"
        );
        assert_eq!(
            accepted.actions, first.actions,
            "--allow-deletes changed the actions"
        );
        assert_eq!(accepted.conflicts, first.conflicts);
        first = accepted;
    }

    // 3. Idempotence: apply, plan again: nothing left but the same conflicts.
    apply(&first, &desired, &mut live);
    let second = plan::plan("r1", &desired, &live, policy, &options);
    assert!(
        second.actions.is_empty(),
        "second plan has actions: {:?}\nfirst plan: {first:?}",
        second.actions
    );
    assert!(second.refusal.is_none(), "second plan refused: {second:?}");
    assert_eq!(
        second.conflicts, first.conflicts,
        "conflicts changed after the apply"
    );
    check_agreement(&second, &desired, &live, policy, &options);

    // 4. Without --channel, only conflicts and unresolved immutable tags are still drift on
    // repositories, and no ImageStream tag is missing or extra.
    if options.channel.is_none() {
        let d = plan::drift("r1", &desired, &live, &options);
        let left_alone = unresolved_immutable(&desired, &live, policy);
        for i in d.items.iter().filter(|i| i.counts) {
            let key = (i.target.to_string(), i.tag.clone());
            match &i.target {
                Target::Repo(_) => assert!(
                    left_alone.contains(&key)
                        || second
                            .conflicts
                            .iter()
                            .any(|c| c.target == i.target && c.tag == i.tag),
                    "drift after apply: {i:?}"
                ),
                Target::ImageStream(_) => assert!(
                    !matches!(i.state, DriftState::Missing | DriftState::Extra),
                    "ImageStream drift after apply: {i:?}"
                ),
            }
        }
    }
});
