//! Prometheus metrics of `serve` (`/metrics`, text exposition format; every name starts
//! with `relsync_`).

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

/// Every metric `serve` exports.
pub struct Metrics {
    registry: Registry,
    reconcile_duration: Histogram,
    syncs: Family<OutcomeLabel, Counter>,
    drift: Family<ChannelLabel, Gauge>,
    bytes_mirrored: Counter,
    images_mirrored: Counter,
    registry_requests: Family<StatusLabel, Counter>,
    webhooks: Family<ResultLabel, Counter>,
    leader: Gauge,
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
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this replica leads (writes), else 0",
            leader.clone(),
        );
        Metrics {
            registry,
            reconcile_duration,
            syncs,
            drift,
            bytes_mirrored,
            images_mirrored,
            registry_requests,
            webhooks,
            leader,
        }
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
