//! Prometheus metrics of `serve` (`/metrics`, text exposition format; every name starts
//! with `relsync_`).
//!
//! Every metric the README lists has a series from the first scrape, so a dashboard or an
//! alert on `increase(...)` works before the first request or webhook:
//! `relsync_webhooks_total` starts with each `result` it can count, at zero, and
//! `relsync_registry_requests_total`, whose statuses are whatever registries answer, with
//! `status="200"` at zero. `relsync_syncs_total` gets its `outcome` series from the first
//! sync (a standby replica, which never syncs, shows none) and `relsync_drift_items` its
//! `channel` series once the channels are known.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// Label `channel`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

/// Label `status` (an HTTP status code, or `error` for a request that got no answer).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

/// Label `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

/// The `result` label values of `relsync_webhooks_total` (see `controller::webhook`).
const WEBHOOK_RESULTS: [&str; 4] = ["accepted", "ignored", "unauthorized", "rejected"];

/// The `result` label values of `relsync_notifications_total` (see `controller::notify`).
const NOTIFY_RESULTS: [&str; 3] = ["delivered", "failed", "dropped"];

/// `relsync_notifications_total`, shared with the notification tasks.
#[derive(Clone, Default)]
pub struct NotifyCounter(Family<ResultLabel, Counter>);

impl NotifyCounter {
    /// Counts one event by result (`delivered`, `failed`, `dropped`).
    pub fn count(&self, result: &str) {
        self.0
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }
}

impl std::fmt::Debug for NotifyCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifyCounter")
    }
}

/// Every metric `serve` exports.
pub struct Metrics {
    registry: Registry,
    reconcile_duration: Histogram,
    syncs: Family<OutcomeLabel, Counter>,
    drift: Family<ChannelLabel, Gauge>,
    bytes_mirrored: Counter,
    images_mirrored: Counter,
    components_mirrored: Counter,
    registry_requests: Family<StatusLabel, Counter>,
    webhooks: Family<ResultLabel, Counter>,
    leader: Gauge,
    notifications: NotifyCounter,
    signature_failures: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set, registered under the prefix `relsync`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("relsync");
        let reconcile_duration =
            Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]);
        registry.register(
            "reconcile_duration_seconds",
            "How long one reconcile (fetch, observe, plan, apply) took",
            reconcile_duration.clone(),
        );
        let syncs = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "syncs",
            "Syncs applied, by outcome (succeeded, failed, refused)",
            syncs.clone(),
        );
        let drift = Family::<ChannelLabel, Gauge>::default();
        registry.register(
            "drift_items",
            "Drift items that count, per channel, at the last observation",
            drift.clone(),
        );
        let bytes_mirrored = Counter::default();
        registry.register(
            "mirrored_bytes",
            "Bytes of blobs copied into targets",
            bytes_mirrored.clone(),
        );
        let images_mirrored = Counter::default();
        registry.register(
            "mirrored_images",
            "Images (manifests with their content) copied into targets",
            images_mirrored.clone(),
        );
        let components_mirrored = Counter::default();
        registry.register(
            "payload_components_mirrored",
            "Payload components (of releases in payload streams) copied and tagged into payload targets",
            components_mirrored.clone(),
        );
        let registry_requests = Family::<StatusLabel, Counter>::default();
        registry.register(
            "registry_requests",
            "Requests sent to registries, by HTTP status",
            registry_requests.clone(),
        );
        let webhooks = Family::<ResultLabel, Counter>::default();
        registry.register(
            "webhooks",
            "Webhook deliveries, by result (accepted, ignored, unauthorized, rejected)",
            webhooks.clone(),
        );
        let notifications = NotifyCounter::default();
        registry.register(
            "notifications",
            "Outgoing notifications, by result (delivered, failed after every try, dropped on a full queue)",
            notifications.0.clone(),
        );
        for result in NOTIFY_RESULTS {
            notifications
                .0
                .get_or_create(&ResultLabel {
                    result: result.to_string(),
                })
                .inc_by(0);
        }
        let signature_failures = Counter::default();
        registry.register(
            "signature_verification_failures",
            "Releases a sync refused because their signature did not pass the policy",
            signature_failures.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this replica leads (writes), else 0",
            leader.clone(),
        );
        registry_requests
            .get_or_create(&StatusLabel {
                status: "200".to_string(),
            })
            .inc_by(0);
        for result in WEBHOOK_RESULTS {
            webhooks
                .get_or_create(&ResultLabel {
                    result: result.to_string(),
                })
                .inc_by(0);
        }
        Metrics {
            registry,
            reconcile_duration,
            syncs,
            drift,
            bytes_mirrored,
            images_mirrored,
            components_mirrored,
            registry_requests,
            webhooks,
            leader,
            notifications,
            signature_failures,
        }
    }

    /// `relsync_notifications_total`, for the notification tasks to count into.
    pub fn notify_counter(&self) -> NotifyCounter {
        self.notifications.clone()
    }

    /// Counts releases a sync refused because their signature did not pass.
    pub fn signature_failed(&self, releases: u64) {
        self.signature_failures.inc_by(releases);
    }

    /// Records one reconcile's duration.
    pub fn reconciled(&self, seconds: f64) {
        self.reconcile_duration.observe(seconds);
    }

    /// Counts a sync by its outcome (`succeeded`, `failed`, `refused`).
    pub fn synced(&self, outcome: &str) {
        self.syncs
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Sets the drift of a channel.
    pub fn set_drift(&self, channel: &str, items: usize) {
        self.drift
            .get_or_create(&ChannelLabel {
                channel: channel.to_string(),
            })
            .set(items as i64);
    }

    /// Adds what a sync mirrored.
    pub fn mirrored(&self, images: u64, bytes: u64) {
        self.images_mirrored.inc_by(images);
        self.bytes_mirrored.inc_by(bytes);
    }

    /// Adds payload components a sync put in place (copied, or tagged where the content was
    /// there) in payload targets.
    pub fn components_mirrored(&self, n: u64) {
        self.components_mirrored.inc_by(n);
    }

    /// Adds registry requests by status (`200`, `404`, … or `error`).
    pub fn registry_requests(&self, status: &str, n: u64) {
        self.registry_requests
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc_by(n);
    }

    /// Counts a webhook delivery by result.
    pub fn webhook(&self, result: &str) {
        self.webhooks
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The text exposition (`text/plain; version=0.0.4` compatible OpenMetrics text).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample lines (not `#` comments) of a fresh set.
    fn fresh_samples() -> Vec<String> {
        Metrics::new()
            .render()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    /// Issue 16: `relsync_registry_requests_total` and `relsync_webhooks_total` were absent
    /// from `/metrics` until first used.
    #[test]
    fn labelled_counters_are_there_at_zero_before_first_use() {
        let samples = fresh_samples();
        for line in [
            "relsync_registry_requests_total{status=\"200\"} 0",
            "relsync_webhooks_total{result=\"accepted\"} 0",
            "relsync_webhooks_total{result=\"ignored\"} 0",
            "relsync_webhooks_total{result=\"unauthorized\"} 0",
            "relsync_webhooks_total{result=\"rejected\"} 0",
            "relsync_mirrored_images_total 0",
            "relsync_mirrored_bytes_total 0",
            "relsync_payload_components_mirrored_total 0",
            "relsync_leader 0",
            "relsync_reconcile_duration_seconds_count 0",
        ] {
            assert!(samples.iter().any(|s| s == line), "{line} in {samples:#?}");
        }
        // Counting still adds to the series registered at zero.
        let m = Metrics::new();
        m.webhook("accepted");
        m.registry_requests("200", 3);
        let text = m.render();
        assert!(
            text.contains("relsync_webhooks_total{result=\"accepted\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("relsync_registry_requests_total{status=\"200\"} 3\n"),
            "{text}"
        );
    }

    /// Every metric the README lists has a sample in a fresh set, except the two whose
    /// series wait for a label value: the per-channel drift gauge and the sync count
    /// (whose absence on a standby replica says it never synced).
    #[test]
    fn every_metric_the_readme_lists_has_a_sample_from_the_start() {
        let readme = include_str!("../../README.md");
        let names: std::collections::BTreeSet<&str> = readme
            .split('`')
            .filter(|w| {
                w.starts_with("relsync_") && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
            .collect();
        assert!(names.len() >= 8, "the README's metric list: {names:?}");
        let samples = fresh_samples();
        for name in names {
            if name == "relsync_drift_items" || name == "relsync_syncs_total" {
                continue;
            }
            assert!(
                samples.iter().any(|s| {
                    s.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with([' ', '{', '_']))
                }),
                "{name} has no sample in a fresh /metrics: {samples:#?}"
            );
        }
    }
}
