//! What `serve` knows and shows: per channel a sync state with the last revision, error,
//! time and drift (`GET /api/v1/status`, DESIGN.md "serve's status API"), plus what the
//! status page shows beside it (recent history, holds, leadership).

use serde::Serialize;

use crate::plan::DriftItem;
use crate::store::{HistoryEntry, Hold};

/// A channel's sync state, Argo CD style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum ChannelState {
    /// Live matches Git for every tag the channel claims.
    Synced,
    /// Some tag the channel claims differs from Git.
    OutOfSync,
    /// The last sync of the channel failed (an action failed, a conflict, a refusal).
    Degraded,
    /// Not observed yet, or the last observation failed.
    #[default]
    Unknown,
}

impl ChannelState {
    /// `Synced`, `OutOfSync`, `Degraded` or `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelState::Synced => "Synced",
            ChannelState::OutOfSync => "OutOfSync",
            ChannelState::Degraded => "Degraded",
            ChannelState::Unknown => "Unknown",
        }
    }
}

/// One channel in the status.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    /// The channel's name.
    pub name: String,
    /// Its sync state.
    pub state: ChannelState,
    /// The revision its live state was last synced to (or observed against).
    pub revision: Option<String>,
    /// When it was last synced (RFC 3339), if ever by this process.
    pub last_sync: Option<String>,
    /// The last error about it (a failed action, a conflict, an observation failure).
    pub last_error: Option<String>,
    /// Its drift items, `ok` rows included (DESIGN.md's drift item shape).
    pub drift: Vec<DriftItem>,
    /// For a channel of a payload stream: whether each release it publishes has its whole
    /// payload in place, in the channel's order (absent for other channels).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub payloads: Vec<PayloadStatus>,
    /// With signatures required: each release the channel publishes, whether the target
    /// holds a signature for it and whether relsync verified it (absent from the JSON when
    /// signatures are not required).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<ReleaseSignature>,
}

/// Whether one published release's payload is complete in its `payload.target`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PayloadStatus {
    /// The release's version.
    pub version: String,
    /// True when every component tag of the release holds its component (its list known).
    pub complete: bool,
    /// How many components it has; `None` until its component list has been read.
    pub components: Option<usize>,
    /// How many of its component tags are missing or moved.
    pub missing: usize,
}

/// A published release's signature, as `serve` last saw it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSignature {
    /// The version.
    pub version: String,
    /// Its digest.
    pub digest: crate::digest::Digest,
    /// Whether the target lists a signature for the digest (`sha256-<hex>.sig` or the
    /// `sha256-<hex>` referrers index).
    pub signed: bool,
    /// `true`: a sync of this process verified its signature with a trusted key; `false`: a
    /// sync refused it (the reason is the channel's `lastError`); `null`: not judged yet.
    pub verified: Option<bool>,
}

/// The whole status.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Status {
    /// The revision of the last reconcile (`None` before the first).
    pub revision: Option<String>,
    /// Every channel, by name.
    pub channels: Vec<ChannelStatus>,
    /// Recent sync history, newest first (the page shows it; not in the JSON).
    #[serde(skip)]
    pub history: Vec<HistoryEntry>,
    /// Rollback holds in force (the page shows them; not in the JSON).
    #[serde(skip)]
    pub holds: Vec<Hold>,
    /// Whether this replica leads (writes).
    #[serde(skip)]
    pub leader: bool,
    /// When the last reconcile ended (RFC 3339).
    #[serde(skip)]
    pub last_reconcile: Option<String>,
    /// The last reconcile's error, if it failed as a whole.
    #[serde(skip)]
    pub last_error: Option<String>,
}
