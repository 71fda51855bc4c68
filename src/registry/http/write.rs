//! Writing a repository: blob uploads streamed and verified on the way, cross-repository
//! mounts, manifest PUTs, and tag and manifest DELETEs; with the reads, the
//! [`ContentStore`] of an [`HttpRepository`].

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

use super::answer::*;
use super::read::*;
use crate::digest::Digest;
use crate::registry::content::{BlobStream, CasWrite, ContentStore, RawManifest, TagDeletion};
use crate::registry::retry::{Outcome, retry};
use crate::registry::verify::{check_manifest, digest_like, verifying};
use crate::registry::{RegistryError, check_repository_path, check_tag};

impl HttpRepository {
    /// The scope a mount needs: push here, pull from `from`.
    pub(super) fn mount_scope(&self, from: &str) -> String {
        format!("{} repository:{from}:pull", self.push_scope)
    }

    /// The upload URL of a `Location` answer to `request`.
    pub(super) fn location(
        &self,
        resp: &reqwest::Response,
        request: &Url,
        context: &str,
    ) -> Result<Url, RegistryError> {
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Status {
                context: context.to_string(),
                status: resp.status().as_u16(),
                code: None,
                message: Some("the answer has no Location".to_string()),
            })?;
        let url = request.join(location).map_err(|e| RegistryError::Status {
            context: context.to_string(),
            status: resp.status().as_u16(),
            code: None,
            message: Some(format!("the Location `{location}` is not a URL ({e})")),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RegistryError::Status {
                context: context.to_string(),
                status: resp.status().as_u16(),
                code: None,
                message: Some(format!("the Location `{location}` is not http(s)")),
            });
        }
        Ok(url)
    }

    /// Starts an upload session: POST `blobs/uploads/` (with `query`), for `scope`.
    pub(super) async fn start_upload(
        &self,
        query: Option<&[(&str, &str)]>,
        scope: &str,
        context: &str,
    ) -> Result<(reqwest::Response, Url), RegistryError> {
        let mut url = self.url("blobs/uploads/")?;
        if let Some(q) = query {
            url.query_pairs_mut().extend_pairs(q);
        }
        let resp = self
            .send_bare(Method::POST, url.clone(), scope, context)
            .await?;
        Ok((resp, url))
    }

    /// Cancels an upload session, best effort.
    pub(super) async fn cancel_upload(&self, url: Url, scope: &str, context: &str) {
        let context = format!("{context}: cancelling the upload session");
        match self.send_bare(Method::DELETE, url, scope, &context).await {
            Ok(resp) => {
                tracing::debug!(status = resp.status().as_u16(), "{context}");
            }
            Err(e) => tracing::debug!(error = %e, "{context}"),
        }
    }
}

impl ContentStore for HttpRepository {
    async fn get_manifest(&self, reference: &str) -> Result<Option<RawManifest>, RegistryError> {
        self.read_manifest(reference).await
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool, RegistryError> {
        self.blob_exists(digest).await
    }

    async fn open_blob(&self, digest: &Digest) -> Result<BlobStream, RegistryError> {
        self.read_blob(digest).await
    }

    async fn put_blob(&self, digest: &Digest, blob: BlobStream) -> Result<u64, RegistryError> {
        let context = format!("uploading blob {digest} to {}", self.name);
        // An empty body is never polled, so check an announced empty blob here.
        if blob.size == Some(0) {
            let empty = digest_like(digest, b"");
            if empty != digest.as_str() {
                return Err(RegistryError::DigestMismatch {
                    context,
                    expected: digest.to_string(),
                    actual: empty,
                });
            }
        }
        let (resp, request) = self.start_upload(None, &self.push_scope, &context).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(resp, &context).await);
        }
        let mut url = self.location(&resp, &request, &context)?;
        drop(resp);
        url.query_pairs_mut().append_pair("digest", digest.as_str());

        let (stream, handle) = verifying(blob.chunks, digest, blob.size, &context);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if let Some(size) = blob.size {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
        }
        let sent = self
            .registry
            .send_stream(
                Method::PUT,
                url,
                headers,
                reqwest::Body::wrap_stream(stream),
                &self.push_scope,
                &context,
            )
            .await;
        // A lying or failing source is the cause, whatever the transport made of it.
        if let Some(e) = handle.take_error() {
            return Err(e);
        }
        let resp = sent?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(resp, &context).await);
        }
        if let Some(stored) = content_digest(resp.headers())
            && stored != *digest
        {
            return Err(RegistryError::DigestMismatch {
                context: format!("{context}: the registry stored another digest"),
                expected: digest.to_string(),
                actual: stored.to_string(),
            });
        }
        Ok(handle.verified().unwrap_or(0))
    }

    async fn mount_blob(&self, digest: &Digest, from_path: &str) -> Result<bool, RegistryError> {
        check_repository_path(from_path).map_err(|reason| RegistryError::InvalidRepository {
            repo: from_path.to_string(),
            reason,
        })?;
        if from_path == self.path {
            return self.has_blob(digest).await;
        }
        let context = format!("mounting blob {digest} from {from_path} into {}", self.name);
        let scope = self.mount_scope(from_path);
        let (resp, request) = self
            .start_upload(
                Some(&[("mount", digest.as_str()), ("from", from_path)]),
                &scope,
                &context,
            )
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry opened an upload session instead: close it.
                if let Ok(url) = self.location(&resp, &request, &context) {
                    drop(resp);
                    self.cancel_upload(url, &scope, &context).await;
                }
                Ok(false)
            }
            _ => Err(status_error(resp, &context).await),
        }
    }

    async fn put_manifest(
        &self,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError> {
        self.put_manifest_held(reference, manifest, false).await
    }

    /// Compare-and-swap as close as a registry allows (it has no conditional write): the
    /// push is authenticated first and one request permit is held for the check and the
    /// write, so the tag's HEAD and its PUT go out back to back with no other wait between;
    /// then the tag is read again, and a tag that no longer holds what was written (another
    /// client wrote it meanwhile) is reported as a conflict with what it holds. A write that
    /// reaches the registry after the HEAD and before the PUT is still overwritten unseen.
    async fn put_manifest_if(
        &self,
        tag: &str,
        manifest: &RawManifest,
        expected: Option<&Digest>,
    ) -> Result<CasWrite, RegistryError> {
        check_tag(&self.name, tag)?;
        let context = format!("writing manifest {}:{tag}", self.name);
        check_manifest(&context, manifest)?;
        self.registry
            .authorization(&self.push_scope, &context, false)
            .await?;
        let check = format!("resolving {}:{tag}", self.name);
        let permit = self.registry.permit(&context).await?;
        let actual = self
            .head_manifest_held(tag, &check, &self.push_scope, true)
            .await?;
        if actual.as_ref() != expected {
            return Ok(CasWrite::Conflict { actual });
        }
        self.put_manifest_held(tag, manifest, true).await?;
        drop(permit);
        let after = self.head_manifest(tag, &check).await?;
        if after.as_ref() != Some(&manifest.digest) {
            tracing::warn!(
                repo = %self.name,
                tag,
                "the tag changed right after relsync wrote it: another client wrote it meanwhile"
            );
            return Ok(CasWrite::Conflict { actual: after });
        }
        Ok(CasWrite::Written)
    }

    async fn delete_tag(&self, tag: &str) -> Result<TagDeletion, RegistryError> {
        self.delete_tag_by_name(tag).await
    }

    async fn delete_manifest(&self, digest: &Digest) -> Result<(), RegistryError> {
        self.delete_manifest_by_digest(digest).await
    }
}

impl HttpRepository {
    /// [`ContentStore::put_manifest`]; `held`: the caller holds a request permit.
    async fn put_manifest_held(
        &self,
        reference: &str,
        manifest: &RawManifest,
        held: bool,
    ) -> Result<(), RegistryError> {
        let parsed = Reference::parse(&self.name, reference)?;
        let context = format!("writing manifest {}", parsed.display(&self.name));
        check_manifest(&context, manifest)?;
        if let Reference::Digest(d) = &parsed
            && *d != manifest.digest
        {
            return Err(RegistryError::DigestMismatch {
                context,
                expected: d.to_string(),
                actual: manifest.digest.to_string(),
            });
        }
        let mut headers = HeaderMap::new();
        let ct = HeaderValue::from_str(&manifest.media_type).map_err(|_| {
            RegistryError::InvalidRepository {
                repo: self.name.clone(),
                reason: format!(
                    "the media type `{}` cannot be sent as Content-Type",
                    manifest.media_type
                ),
            }
        })?;
        headers.insert(CONTENT_TYPE, ct);
        let url = self.url(&format!("manifests/{reference}"))?;
        let (result, _) = retry(&self.registry.retry, |attempt| {
            let (url, headers, context) = (url.clone(), headers.clone(), context.as_str());
            async move {
                let sent = self
                    .registry
                    .send_held(
                        held,
                        Method::PUT,
                        url,
                        headers,
                        Some(manifest.bytes.clone()),
                        &self.push_scope,
                        context,
                    )
                    .await;
                let resp = match sent {
                    Ok(resp) if matches!(resp.status(), StatusCode::CREATED | StatusCode::OK) => {
                        return Outcome::Done(Ok(resp));
                    }
                    Ok(resp) => resp,
                    Err(e) => return Outcome::Done(Err(e)),
                };
                let err = status_error(resp, context).await;
                // relsync computed the digest from these very bytes, so DIGEST_INVALID is
                // never about the request: distribution's filesystem storage answers it while
                // another client rewrites a link this manifest's check reads (two syncs
                // pushing the same content). Worth another try, like a 5xx.
                let racing = matches!(&err, RegistryError::Status { status: 400, code: Some(c), .. } if c == "DIGEST_INVALID");
                if racing {
                    tracing::debug!(%context, attempt, "DIGEST_INVALID on a manifest write");
                    Outcome::Retry {
                        value: Err(err),
                        retry_after: None,
                    }
                } else {
                    Outcome::Done(Err(err))
                }
            }
        })
        .await;
        let resp = result?;
        if let Some(stored) = content_digest(resp.headers())
            && stored.algorithm() == manifest.digest.algorithm()
            && stored != manifest.digest
        {
            return Err(RegistryError::DigestMismatch {
                context: format!("{context}: the registry stored another digest"),
                expected: manifest.digest.to_string(),
                actual: stored.to_string(),
            });
        }
        Ok(())
    }

    async fn delete_tag_by_name(&self, tag: &str) -> Result<TagDeletion, RegistryError> {
        check_tag(&self.name, tag)?;
        let context = format!("deleting tag {}:{tag}", self.name);
        let url = self.url(&format!("manifests/{tag}"))?;
        let resp = self
            .send_bare(Method::DELETE, url, &self.push_scope, &context)
            .await?;
        let status = resp.status();
        match status {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => {
                Ok(TagDeletion::Deleted)
            }
            StatusCode::NOT_FOUND => {
                let (code, message) = error_of(resp).await;
                match code.as_deref() {
                    None | Some("MANIFEST_UNKNOWN") | Some("NAME_UNKNOWN") => {
                        Ok(TagDeletion::Deleted)
                    }
                    Some(_) => Err(RegistryError::Status {
                        context,
                        status: status.as_u16(),
                        code,
                        message,
                    }),
                }
            }
            StatusCode::METHOD_NOT_ALLOWED => Ok(TagDeletion::Unsupported),
            StatusCode::BAD_REQUEST => {
                let (code, message) = error_of(resp).await;
                match code.as_deref() {
                    Some("UNSUPPORTED") | Some("DIGEST_INVALID") => Ok(TagDeletion::Unsupported),
                    _ => Err(RegistryError::Status {
                        context,
                        status: status.as_u16(),
                        code,
                        message,
                    }),
                }
            }
            _ => Err(status_error(resp, &context).await),
        }
    }

    async fn delete_manifest_by_digest(&self, digest: &Digest) -> Result<(), RegistryError> {
        let context = format!("deleting manifest {}@{digest}", self.name);
        let url = self.url(&format!("manifests/{digest}"))?;
        let resp = self
            .send_bare(Method::DELETE, url, &self.push_scope, &context)
            .await?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::NOT_FOUND => Ok(()),
            StatusCode::METHOD_NOT_ALLOWED => {
                let (code, _) = error_of(resp).await;
                Err(RegistryError::Status {
                    context,
                    status: 405,
                    code,
                    message: Some("deletes are disabled on this registry".to_string()),
                })
            }
            _ => Err(status_error(resp, &context).await),
        }
    }
}
