//! Outgoing notifications of `serve` (`notifications:` in relsync.yaml): a sync that
//! failed, a channel gone OutOfSync or Degraded and back in sync, a floating tag moved.
//!
//! Each event is one JSON body, `{"kind", "channel", "revision", "tags": [{"target", "tag",
//! "from", "to"}], "error", "text"}` (`text` is one human line, so a Slack incoming webhook
//! shows it as is), POSTed to every URL whose `events` include it, signed with the URL's
//! secret like GitHub signs its webhooks (`X-Relsync-Signature-256: sha256=<hex HMAC-SHA256
//! of the body>`).
//!
//! Delivery never holds the sync loop: each URL has a bounded queue and a task of its own
//! that sends at most [`RATE_PER_SECOND`] events a second (Slack's limit per webhook),
//! retrying a failed delivery with exponential backoff. An event that finds the queue full
//! is dropped. `relsync_notifications_total{result}` counts what was delivered, what
//! failed after every try and what was dropped.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{Quota, RateLimiter};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::metrics::NotifyCounter;
use super::status::{ChannelState, ChannelStatus};
use crate::config::{NotificationSettings, NotifyEvent};

/// Events waiting per URL at most; more are dropped (and counted).
pub const QUEUE: usize = 256;
/// Events sent per second to one URL, sustained (with a burst of [`BURST`]).
pub const RATE_PER_SECOND: u32 = 1;
/// Events sent at once to one URL after a quiet spell.
pub const BURST: u32 = 10;
/// Tries per delivery.
pub const TRIES: u32 = 4;
/// The first wait between tries; it doubles each time.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// One delivery's deadline.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One tag an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagMove {
    /// `host/repo`, or `imagestream:ns/name`.
    pub target: String,
    /// The tag.
    pub tag: String,
    /// The digest it held (`None`: it did not exist).
    pub from: Option<String>,
    /// The digest it holds now.
    pub to: Option<String>,
}

/// One event, as posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// `sync-failed`, `out-of-sync`, `in-sync` or `promoted`.
    pub kind: &'static str,
    /// The channel (`None`: the whole pass, as for a desired state that cannot be read).
    pub channel: Option<String>,
    /// The Git revision.
    pub revision: Option<String>,
    /// The tags moved (`promoted`) or out of line (`out-of-sync`).
    pub tags: Vec<TagMove>,
    /// What went wrong (`sync-failed`, and `out-of-sync` of a Degraded channel).
    pub error: Option<String>,
    /// One line for people (and Slack).
    pub text: String,
}

struct Sink {
    events: Vec<NotifyEvent>,
    queue: tokio::sync::mpsc::Sender<(NotifyEvent, Arc<Vec<u8>>)>,
}

/// Sends events to the configured URLs; cheap to call from the loop.
pub struct Notifier {
    sinks: Vec<Sink>,
    counter: NotifyCounter,
    /// The last failure sent per channel (`""`: the whole pass), so that a failure
    /// repeated pass after pass is sent once, until the channel recovers.
    failures: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Starts one delivery task per URL (on the current tokio runtime); `env` gives the
    /// secrets named by `secretEnv` (an unset one: a warning, and that URL's events go
    /// unsigned). Counts deliveries into `counter`.
    pub fn start(
        settings: &[NotificationSettings],
        env: impl Fn(&str) -> Option<String>,
        counter: NotifyCounter,
    ) -> Notifier {
        let client = reqwest::Client::builder()
            .user_agent(concat!("relsync/", env!("CARGO_PKG_VERSION")))
            .timeout(TIMEOUT)
            .build()
            .ok();
        let mut sinks = Vec::new();
        for (i, s) in settings.iter().enumerate() {
            let Some(client) = client.clone() else {
                tracing::warn!("notifications are off: no HTTP client could be built");
                break;
            };
            let secret = match &s.secret_env {
                Some(name) => match env(name).filter(|v| !v.is_empty()) {
                    Some(v) => Some(v),
                    None => {
                        tracing::warn!(
                            notification = i,
                            "environment variable {name} (secretEnv) is not set: events to this URL are not signed"
                        );
                        None
                    }
                },
                None => None,
            };
            let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
            tokio::spawn(deliver(
                client,
                s.url.clone(),
                secret,
                rx,
                counter.clone(),
                i,
            ));
            sinks.push(Sink {
                events: s.events.clone(),
                queue: tx,
            });
        }
        Notifier {
            sinks,
            counter,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Queues `event` for every URL that wants its kind; never waits.
    pub fn send(&self, kind: NotifyEvent, event: &Event) {
        let wanted: Vec<&Sink> = self
            .sinks
            .iter()
            .filter(|s| s.events.contains(&kind))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let body = match serde_json::to_vec(event) {
            Ok(b) => Arc::new(b),
            Err(_) => return,
        };
        for sink in wanted {
            if sink.queue.try_send((kind, body.clone())).is_err() {
                self.counter.count("dropped");
                tracing::warn!(kind = kind.name(), "notification queue full: event dropped");
            }
        }
    }

    /// A sync failed for `channel` (`None`: the pass as a whole) with `error`: sent unless
    /// the same failure was the last one sent for it.
    pub fn sync_failed(&self, channel: Option<&str>, revision: Option<&str>, error: &str) {
        {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let key = channel.unwrap_or_default().to_string();
            if failures.get(&key).map(String::as_str) == Some(error) {
                return;
            }
            failures.insert(key, error.to_string());
        }
        let text = match channel {
            Some(c) => format!(
                "relsync: sync of channel {c} failed{}: {error}",
                at(revision)
            ),
            None => format!("relsync: sync failed{}: {error}", at(revision)),
        };
        self.send(
            NotifyEvent::SyncFailed,
            &Event {
                kind: NotifyEvent::SyncFailed.name(),
                channel: channel.map(str::to_string),
                revision: revision.map(str::to_string),
                tags: Vec::new(),
                error: Some(error.to_string()),
                text,
            },
        );
    }

    /// Floating tags of `channel` moved (or were created) by a sync.
    pub fn promoted(&self, channel: &str, revision: &str, tags: Vec<TagMove>, versions: &str) {
        if tags.is_empty() {
            return;
        }
        let names: Vec<String> = tags
            .iter()
            .map(|t| format!("{}:{}", t.target, t.tag))
            .collect();
        let text = format!(
            "relsync: channel {channel} promoted {versions} ({}){}",
            names.join(", "),
            at(Some(revision))
        );
        self.send(
            NotifyEvent::Promoted,
            &Event {
                kind: NotifyEvent::Promoted.name(),
                channel: Some(channel.to_string()),
                revision: Some(revision.to_string()),
                tags,
                error: None,
                text,
            },
        );
    }

    /// The channels' states after a pass, against those before it: a channel that went
    /// OutOfSync or Degraded (from Synced, or at its first observation) gets `out-of-sync`;
    /// one back to Synced from either gets `in-sync`.
    pub fn states(&self, before: &[ChannelStatus], after: &[ChannelStatus]) {
        for c in after {
            let prev = before.iter().find(|b| b.name == c.name).map(|b| b.state);
            let bad =
                |s: ChannelState| matches!(s, ChannelState::OutOfSync | ChannelState::Degraded);
            let revision = c.revision.clone();
            let drifted = || -> Vec<TagMove> {
                c.drift
                    .iter()
                    .filter(|d| d.counts)
                    .map(|d| TagMove {
                        target: d.target.to_string(),
                        tag: d.tag.clone(),
                        from: d.actual.as_ref().map(ToString::to_string),
                        to: d.desired.as_ref().map(ToString::to_string),
                    })
                    .collect()
            };
            if bad(c.state) && !prev.is_some_and(bad) {
                let tags = drifted();
                let text = format!(
                    "relsync: channel {} is {} ({} tag{} out of line){}{}",
                    c.name,
                    c.state.as_str(),
                    tags.len(),
                    if tags.len() == 1 { "" } else { "s" },
                    at(revision.as_deref()),
                    c.last_error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
                self.send(
                    NotifyEvent::OutOfSync,
                    &Event {
                        kind: NotifyEvent::OutOfSync.name(),
                        channel: Some(c.name.clone()),
                        revision,
                        tags,
                        error: c.last_error.clone(),
                        text,
                    },
                );
            } else if c.state == ChannelState::Synced && prev.is_some_and(bad) {
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&c.name);
                self.send(
                    NotifyEvent::InSync,
                    &Event {
                        kind: NotifyEvent::InSync.name(),
                        channel: Some(c.name.clone()),
                        revision: revision.clone(),
                        tags: Vec::new(),
                        error: None,
                        text: format!(
                            "relsync: channel {} is in sync again{}",
                            c.name,
                            at(revision.as_deref())
                        ),
                    },
                );
            }
            if c.state == ChannelState::Synced {
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&c.name);
            }
        }
        if !after.is_empty() {
            // The pass as a whole went through.
            self.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove("");
        }
    }
}

/// ` at abc1234`, the short revision, or nothing.
fn at(revision: Option<&str>) -> String {
    revision
        .map(|r| format!(" at {}", crate::revision::short_revision(r)))
        .unwrap_or_default()
}

/// `sha256=<hex>` of `body` under `secret`, as in `X-Relsync-Signature-256`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delivery task of one URL: one event at a time, within the rate, each retried.
async fn deliver(
    client: reqwest::Client,
    url: String,
    secret: Option<String>,
    mut rx: tokio::sync::mpsc::Receiver<(NotifyEvent, Arc<Vec<u8>>)>,
    counter: NotifyCounter,
    index: usize,
) {
    let quota = Quota::per_second(NonZeroU32::new(RATE_PER_SECOND).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN));
    let limiter = RateLimiter::direct(quota);
    while let Some((kind, body)) = rx.recv().await {
        limiter.until_ready().await;
        let signature = secret.as_deref().map(|s| signature(s, &body));
        let mut wait = FIRST_BACKOFF;
        let mut delivered = false;
        let mut last = String::new();
        for attempt in 1..=TRIES {
            let mut rb = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("X-Relsync-Event", kind.name())
                .body(body.as_ref().clone());
            if let Some(s) = &signature {
                rb = rb.header("X-Relsync-Signature-256", s);
            }
            let retry = match rb.send().await {
                Ok(resp) if resp.status().is_success() => {
                    delivered = true;
                    break;
                }
                Ok(resp) => {
                    let status = resp.status();
                    last = format!("answered {status}");
                    status.is_server_error()
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT
                }
                // Without the URL: it may carry a token (Slack's do).
                Err(e) => {
                    last = if e.is_timeout() {
                        "timed out".to_string()
                    } else if e.is_connect() {
                        "cannot connect".to_string()
                    } else {
                        "request failed".to_string()
                    };
                    true
                }
            };
            if !retry || attempt == TRIES {
                break;
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        if delivered {
            counter.count("delivered");
        } else {
            counter.count("failed");
            tracing::warn!(
                notification = index,
                kind = kind.name(),
                "notification not delivered: {last}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_github() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
