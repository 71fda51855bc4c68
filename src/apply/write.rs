//! Writing one tag: the content first (copied from its source when missing), then a
//! compare-and-swap check of the tag, then the tag, byte-exact.

use super::{ApplyError, Outcome, Run};
use crate::digest::Digest;
use crate::plan::{Action, ActionKind};
use crate::registry::mirror::{MirrorEndpoint, parse_manifest};
use crate::registry::{CasWrite, RawManifest};

impl<E: MirrorEndpoint> Run<'_, E> {
    /// Copies what `digest` names into `target` from `source` (a repository string), and
    /// returns its manifest, which the caller writes under its tag (one request for the
    /// manifest and the tag). Both callers know `target` lacks `digest` (the plan observed
    /// it, or a read just now).
    pub(super) async fn copy(
        &self,
        source: &str,
        target: &E,
        digest: &Digest,
        label: &str,
    ) -> Result<RawManifest, ApplyError> {
        let source = (self.open)(source).map_err(ApplyError::Repository)?;
        let raw = self
            .mirror
            .copy_image_content(&source, target, digest, label, true)
            .await
            .map_err(ApplyError::Copy)?;
        self.progress.image_done(target.name(), digest, label);
        Ok(raw)
    }

    /// Creates or moves one tag: content, CAS check, tag.
    pub(super) async fn write_tag(
        &self,
        name: &str,
        repo: &E,
        a: &Action,
        tag_lock: &tokio::sync::Mutex<()>,
    ) -> Result<Outcome, ApplyError> {
        let Some(to) = &a.to else {
            return Err(ApplyError::Unsupported(format!(
                "{} {name} {}: no digest to write",
                a.action, a.tag
            )));
        };
        let label = match &a.to_version {
            Some(v) if *v != a.tag => format!("{name}:{} ({v})", a.tag),
            _ => format!("{name}:{}", a.tag),
        };
        // The action's own source, else that of a mirror of the same content in this plan
        // (whose copy this one then joins), else what Git says.
        let known_source = || {
            a.source
                .clone()
                .or_else(|| {
                    self.plan_sources
                        .get(&(name.to_string(), to.clone()))
                        .cloned()
                })
                .or_else(|| {
                    self.options
                        .sources
                        .get(name)
                        .and_then(|m| m.get(to))
                        .cloned()
                })
        };

        // A release whose signature does not pass gets no tag, and nothing of it is copied.
        // The requirement is the release's: a payload component's tag (`a.release`) is not
        // judged, only its attached artifacts travel with it (below).
        if a.release.is_none() {
            self.check_signature(name, to, known_source().as_deref())
                .await?;
        }

        // Content first.
        let raw = if a.action == ActionKind::Mirror {
            let Some(source) = known_source() else {
                return Err(ApplyError::NoSource {
                    target: name.to_string(),
                    digest: to.clone(),
                });
            };
            self.copy(&source, repo, to, &label).await?
        } else {
            let present = self
                .request(
                    || format!("reading {name}@{to}"),
                    repo.get_manifest(to.as_str()),
                )
                .await?;
            match present {
                Some(raw) => raw,
                None => {
                    let Some(source) = known_source() else {
                        return Err(ApplyError::NoSource {
                            target: name.to_string(),
                            digest: to.clone(),
                        });
                    };
                    tracing::info!(%source, "content missing in the target; copying it first");
                    self.copy(&source, repo, to, &label).await?
                }
            }
        };
        // The manifest goes out under its own format's media type, bytes untouched.
        let raw = match parse_manifest(&raw.media_type, &raw.bytes) {
            Ok(p) => RawManifest {
                media_type: p.kind.media_type().to_string(),
                ..raw
            },
            Err(_) => raw,
        };

        // What is attached to it (signatures, attestations, SBOMs, referrers) is content too.
        if let Some(source) = known_source() {
            self.copy_attached(name, repo, to, &source, &label).await?;
        }

        // Then the tag, if it still holds what the plan saw (and writes may go on).
        self.may_write()?;
        let _guard = if repo.registry_host().is_none() {
            Some(tag_lock.lock().await)
        } else {
            None
        };
        let live = repo.fresh();
        let expected = match a.action {
            ActionKind::Mirror | ActionKind::Tag => None,
            _ => a.from.clone(),
        };
        let checked = matches!(a.action, ActionKind::Mirror | ActionKind::Tag) || a.from.is_some();
        if checked {
            // Compare-and-swap: atomic in a layout (checked under its lock), resolve then
            // write on a registry.
            let written = self
                .request(
                    || format!("writing {name}:{}", a.tag),
                    live.put_manifest_if(&a.tag, &raw, expected.as_ref()),
                )
                .await?;
            return Ok(match written {
                CasWrite::Written => Outcome::Done,
                CasWrite::Conflict { actual } if actual.as_ref() == Some(to) => Outcome::Unchanged,
                CasWrite::Conflict { actual } => Outcome::Conflict { expected, actual },
            });
        }
        let current = self
            .request(
                || format!("resolving {name}:{}", a.tag),
                live.resolve_tag(&a.tag),
            )
            .await?;
        if current.as_ref() == Some(to) {
            return Ok(Outcome::Unchanged);
        }
        self.request(
            || format!("writing {name}:{}", a.tag),
            live.put_manifest(&a.tag, &raw),
        )
        .await?;
        Ok(Outcome::Done)
    }
}
