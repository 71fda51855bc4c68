//! What travels with a release's content: the artifacts attached to its digest (cosign's
//! `.sig`, `.att`, `.sbom` tags and OCI 1.1 referrers, [`crate::registry::referrers`]),
//! copied after the release's content and before its tags; and, when the Policy requires
//! signatures, the verdict on its signature, judged before anything of it is written.
//!
//! Both are done once per run and `(target, digest)`: every tag of one release (version,
//! extra and floating tags) shares them. Each takes any digest, so a payload component gets
//! the same calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::{ApplyError, Run};
use crate::digest::Digest;
use crate::registry::mirror::MirrorEndpoint;
use crate::registry::referrers::{self, Attached, AttachedError, Hints};
use crate::signature::{self, Refusal, TrustedKey};

/// Signatures a release needs before its tags are written (the Policy's `signatures` with
/// `require: true`).
#[derive(Debug, Clone, Default)]
pub struct SignatureRequirement {
    /// The trusted keys.
    pub keys: Vec<TrustedKey>,
}

/// Why the attached-artifact step failed for one digest (shared by its tags).
#[derive(Debug, Clone)]
pub(super) enum StepError {
    /// The signature does not pass.
    Unsigned(Refusal),
    /// A request or a copy failed.
    Failed(Arc<AttachedError>),
    /// Writes were stopped.
    Stopped,
}

fn failed(e: AttachedError) -> StepError {
    StepError::Failed(Arc::new(e))
}

fn opening(repo: &str) -> impl FnOnce(crate::registry::RegistryError) -> StepError + '_ {
    move |source| {
        failed(AttachedError::Registry {
            context: format!("opening {repo}"),
            source,
        })
    }
}

type Cell<V> = Arc<OnceCell<Result<V, StepError>>>;
type Memo<V> = Mutex<HashMap<(String, Digest), Cell<V>>>;

/// Run-wide memo of the attached-artifact work, by (target, digest).
#[derive(Debug, Default)]
pub(super) struct AttachedMemo {
    hints: Mutex<HashMap<String, Cell<Hints>>>,
    found: Memo<Arc<Attached>>,
    verdicts: Memo<()>,
    copies: Memo<()>,
}

fn cell<V>(map: &Memo<V>, key: (String, Digest)) -> Cell<V> {
    map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default()
        .clone()
}

impl<E: MirrorEndpoint> Run<'_, E> {
    /// What is known of the repository `from` for discovering attached artifacts, learnt
    /// once per run: its tag list (one request) and whether it serves the referrers API
    /// (one request, asked about `digest`).
    async fn hints(&self, from: &str, repo: &E, digest: &Digest) -> Result<Hints, StepError> {
        let c = self
            .attached
            .hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(from.to_string())
            .or_default()
            .clone();
        c.get_or_init(|| async {
            let context = || format!("listing tags of {from}");
            let tags = repo.list_tags().await.map_err(|source| {
                failed(AttachedError::Registry {
                    context: context(),
                    source,
                })
            })?;
            let api = repo.referrers_api(digest).await.map_err(|source| {
                failed(AttachedError::Registry {
                    context: format!("listing referrers of {from}@{digest}"),
                    source,
                })
            })?;
            Ok(Hints {
                tags: Some(Arc::new(tags.into_iter().collect())),
                api: Some(api.is_some()),
            })
        })
        .await
        .clone()
    }

    /// What is attached to `digest` in `from` (a repository string), found once per run.
    async fn found(&self, from: &str, digest: &Digest) -> Result<Arc<Attached>, StepError> {
        let c = cell(&self.attached.found, (from.to_string(), digest.clone()));
        c.get_or_init(|| async {
            let repo = (self.open)(from).map_err(opening(from))?;
            let hints = self.hints(from, &repo, digest).await?;
            referrers::discover_with(&repo, digest, &hints)
                .await
                .map(Arc::new)
                .map_err(failed)
        })
        .await
        .clone()
    }

    /// With signatures required, judges the signature of `digest` for the target `name`:
    /// read from `source` (where the release comes from), else from the target itself.
    /// The identities a payload may name are the source and the target.
    pub(super) async fn check_signature(
        &self,
        name: &str,
        digest: &Digest,
        source: Option<&str>,
    ) -> Result<(), ApplyError> {
        let Some(required) = &self.options.signatures else {
            return Ok(());
        };
        let c = cell(&self.attached.verdicts, (name.to_string(), digest.clone()));
        let verdict = c
            .get_or_init(|| async {
                let from = source.unwrap_or(name);
                let attached = self.found(from, digest).await?;
                let repo = (self.open)(from).map_err(opening(from))?;
                let candidates = referrers::signature_candidates(&repo, &attached)
                    .await
                    .map_err(failed)?;
                let identities: Vec<&str> = source.into_iter().chain([name]).collect();
                match signature::judge(digest, &identities, &candidates, &required.keys) {
                    signature::Verdict::Verified { key, place } => {
                        tracing::info!(%digest, key, place, "signature verified");
                        Ok(())
                    }
                    signature::Verdict::Refused(r) => Err(StepError::Unsigned(r)),
                }
            })
            .await
            .clone();
        verdict.map_err(|e| step_error(name, digest, e))
    }

    /// Copies what is attached to `digest` in `source` into `target` (once per run), after
    /// the release's content and before its tags.
    pub(super) async fn copy_attached(
        &self,
        name: &str,
        target: &E,
        digest: &Digest,
        source: &str,
        label: &str,
    ) -> Result<(), ApplyError> {
        let c = cell(&self.attached.copies, (name.to_string(), digest.clone()));
        let done = c
            .get_or_init(|| async {
                let attached = self.found(source, digest).await?;
                if attached.is_empty() {
                    return Ok(());
                }
                if self.may_write().is_err() {
                    return Err(StepError::Stopped);
                }
                let from = (self.open)(source).map_err(opening(source))?;
                let report =
                    referrers::copy_attached(&self.mirror, &from, target, digest, &attached, label)
                        .await
                        .map_err(failed)?;
                if report.wrote() {
                    tracing::info!(
                        %digest,
                        tags = ?report.tags,
                        referrers = report.referrers.len(),
                        index = report.index_written,
                        "attached artifacts copied"
                    );
                }
                Ok(())
            })
            .await
            .clone();
        done.map_err(|e| step_error(name, digest, e))
    }
}

impl<E: MirrorEndpoint> Run<'_, E> {
    /// Copies the attached artifacts of [`super::ApplyOptions::repair_attached`]; one line
    /// per release that failed.
    pub(super) async fn repair_attached(&self) -> Vec<String> {
        let repairs =
            self.options
                .repair_attached
                .iter()
                .map(|(name, digest, source)| async move {
                    let label = format!("{name}@{}", digest.short());
                    let target = (self.open)(name).map_err(|e| format!("error: {label}: {e}"))?;
                    self.copy_attached(name, &target, digest, source, &label)
                        .await
                        .map_err(|e| {
                            let mut msg = format!("error: {e}");
                            let mut cause = std::error::Error::source(&e);
                            while let Some(c) = cause {
                                msg.push_str(": ");
                                msg.push_str(&c.to_string());
                                cause = c.source();
                            }
                            msg
                        })
                });
        futures_util::future::join_all(repairs)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect()
    }
}

fn step_error(name: &str, digest: &Digest, e: StepError) -> ApplyError {
    match e {
        StepError::Unsigned(refusal) => ApplyError::Unsigned {
            image: format!("{name}@{}", digest.short()),
            refusal,
        },
        StepError::Failed(source) => ApplyError::Attached {
            image: format!("{name}@{}", digest.short()),
            source,
        },
        StepError::Stopped => ApplyError::Stopped,
    }
}
