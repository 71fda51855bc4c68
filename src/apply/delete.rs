//! Deleting one tag: compare-and-swap check, tag DELETE where the registry supports it, else
//! (only with `deleteByDigest: true`) the manifest by digest, when a fresh read just before
//! the DELETE finds nothing else holding that digest.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures_util::StreamExt;

use super::{ApplyError, Outcome, Run};
use crate::digest::Digest;
use crate::plan::Action;
use crate::registry::CasDeletion;
use crate::registry::mirror::{MirrorEndpoint, parse_manifest};
use crate::tag::is_signature_tag;

/// What the deletes of one target share: the plan's view and what was learnt so far.
pub(super) struct DeleteState {
    /// Tags the plan deletes in this target.
    pub(super) deleted_by_plan: BTreeSet<String>,
    /// Digests the plan writes under some tag of this target → one such tag.
    pub(super) written: BTreeMap<Digest, String>,
    /// Live tag → digest (every tag but signature tags and the plan's deletes), read anew
    /// before each delete by digest.
    pub(super) holders: Option<BTreeMap<String, Digest>>,
    /// Child manifests of every index a live tag holds, read with `holders`: deleting one
    /// by digest would break that index.
    pub(super) children: BTreeSet<Digest>,
    /// Manifests deleted by digest in this run.
    pub(super) deleted_manifests: HashSet<Digest>,
}

impl<E: MirrorEndpoint> Run<'_, E> {
    /// Deletes one tag: CAS check, tag DELETE, else the manifest by digest when safe.
    pub(super) async fn delete_tag(
        &self,
        repo: &E,
        a: &Action,
        state: &mut DeleteState,
    ) -> Result<Outcome, ApplyError> {
        self.may_write()?;
        let name = repo.name().to_string();
        let live = repo.fresh();
        // Gone already: by an earlier delete by digest of this run, or by someone else.
        let gone = |state: &DeleteState| match a
            .from
            .as_ref()
            .filter(|d| state.deleted_manifests.contains(*d))
        {
            Some(_) => Outcome::Done,
            None => Outcome::Unchanged,
        };
        // A plan that saw no digest cannot delete blindly: report what the tag holds.
        let Some(digest) = a.from.clone() else {
            let current = self
                .request(
                    || format!("resolving {name}:{}", a.tag),
                    live.resolve_tag(&a.tag),
                )
                .await?;
            return Ok(match current {
                None => gone(state),
                Some(actual) => Outcome::Conflict {
                    expected: None,
                    actual: Some(actual),
                },
            });
        };
        // Compare-and-swap with the delete itself: atomic in a layout, resolve-then-delete
        // on a registry.
        let deletion = self
            .request(
                || format!("deleting {name}:{}", a.tag),
                live.delete_tag_if(&a.tag, &digest),
            )
            .await?;
        match deletion {
            CasDeletion::Deleted => return Ok(Outcome::Done),
            CasDeletion::Conflict { actual: None } => return Ok(gone(state)),
            CasDeletion::Conflict { actual } => {
                return Ok(Outcome::Conflict {
                    expected: a.from.clone(),
                    actual,
                });
            }
            CasDeletion::Unsupported => {}
        }

        // The registry cannot delete a tag by name. By digest only when the registry's
        // entry opts in: that DELETE removes every tag on the digest, including one another
        // client makes meanwhile.
        if !live.deletes_by_digest() {
            return Ok(Outcome::Left {
                reason: format!(
                    "the registry cannot delete a tag by name, and deleting manifest {} by digest is off for this registry (`deleteByDigest: true` in relsync.yaml turns it on)",
                    digest.short()
                ),
            });
        }
        // By digest, only when that removes no other tag and no tag Git wants on it.
        if let Some(wanted) = state.written.get(&digest) {
            return Ok(Outcome::Left {
                reason: format!(
                    "the registry cannot delete a tag by name, and deleting manifest {} would also remove tag {wanted}, which Git wants on it",
                    digest.short()
                ),
            });
        }
        if self
            .options
            .sources
            .get(&name)
            .is_some_and(|wanted| wanted.contains_key(&digest))
        {
            return Ok(Outcome::Left {
                reason: format!(
                    "the registry cannot delete a tag by name, and Git wants manifest {} in this repository",
                    digest.short()
                ),
            });
        }
        // A fresh read of every tag, just before the DELETE (not one from earlier in the
        // run): a tag made on this digest since then keeps it.
        let holders = self.holders(&live, &state.deleted_by_plan).await?;
        state.children = self.index_children(&live, &holders).await?;
        state.holders = Some(holders);
        if state.children.contains(&digest) {
            return Ok(Outcome::Left {
                reason: format!(
                    "the registry cannot delete a tag by name, and manifest {} is a platform image of an index another tag holds",
                    digest.short()
                ),
            });
        }
        let others: Vec<&str> = state
            .holders
            .iter()
            .flatten()
            .filter(|(t, d)| **d == digest && **t != a.tag)
            .map(|(t, _)| t.as_str())
            .collect();
        if !others.is_empty() {
            return Ok(Outcome::Left {
                reason: format!(
                    "the registry cannot delete a tag by name, and deleting manifest {} would also remove tag{} {}",
                    digest.short(),
                    if others.len() > 1 { "s" } else { "" },
                    others.join(", ")
                ),
            });
        }
        self.request(
            || format!("deleting {name}@{digest}"),
            live.delete_manifest(&digest),
        )
        .await?;
        state.deleted_manifests.insert(digest);
        Ok(Outcome::Done)
    }

    /// The child manifests of every index among `holders`' digests.
    async fn index_children(
        &self,
        repo: &E,
        holders: &BTreeMap<String, Digest>,
    ) -> Result<BTreeSet<Digest>, ApplyError> {
        let name = repo.name().to_string();
        let digests: BTreeSet<&Digest> = holders.values().collect();
        let mut children = BTreeSet::new();
        for d in digests {
            let raw = self
                .request(
                    || format!("reading {name}@{d}"),
                    repo.get_manifest(d.as_str()),
                )
                .await?;
            let Some(raw) = raw else { continue };
            // A manifest relsync cannot parse names no children it could break.
            if let Ok(parsed) = parse_manifest(&raw.media_type, &raw.bytes) {
                children.extend(parsed.children.into_iter().map(|c| c.digest));
            }
        }
        Ok(children)
    }

    /// Every live tag of `repo` → its digest, except signature tags and `except`.
    async fn holders(
        &self,
        repo: &E,
        except: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Digest>, ApplyError> {
        let name = repo.name().to_string();
        let tags = self
            .request(|| format!("listing tags of {name}"), repo.list_tags())
            .await?;
        let resolved: Vec<Result<(String, Option<Digest>), ApplyError>> =
            futures_util::stream::iter(
                tags.into_iter()
                    .filter(|t| !except.contains(t) && !is_signature_tag(t)),
            )
            .map(|tag| {
                let name = &name;
                async move {
                    let d = self
                        .request(|| format!("resolving {name}:{tag}"), repo.resolve_tag(&tag))
                        .await?;
                    Ok((tag, d))
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut holders = BTreeMap::new();
        for r in resolved {
            if let (tag, Some(d)) = r? {
                holders.insert(tag, d);
            }
        }
        Ok(holders)
    }
}
