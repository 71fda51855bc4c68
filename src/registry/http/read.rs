//! Reading a repository: [`HttpRepository`], its tag list (following `Link` within page and
//! tag limits), manifest HEADs and GETs checked against their digests, and blob streams.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use futures_util::TryStreamExt as _;
use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{Method, StatusCode};
use url::Url;

use super::answer::*;
use super::client::*;
use crate::digest::Digest;
use crate::registry::content::{BlobStream, RawManifest};
use crate::registry::verify::{digest_like, sniff_media_type};
use crate::registry::{MANIFEST_MEDIA_TYPES, RegistryError, TargetReader, check_tag};

#[derive(serde::Deserialize)]
pub(super) struct TagList {
    #[serde(default)]
    pub(super) tags: Option<Vec<String>>,
}

/// One repository on a registry host.
#[derive(Debug, Clone)]
pub struct HttpRepository {
    pub(super) registry: Arc<HttpRegistry>,
    pub(super) name: String,
    pub(super) path: String,
    pub(super) scope: String,
    pub(super) push_scope: String,
}

impl HttpRepository {
    /// Repository `path` on `registry`; `name` is the repository string as written in the
    /// stream's target (for messages). `path` must be a valid repository path.
    pub fn new(registry: Arc<HttpRegistry>, name: &str, path: String) -> Self {
        HttpRepository {
            registry,
            name: name.to_string(),
            scope: format!("repository:{path}:pull"),
            push_scope: format!("repository:{path}:pull,push"),
            path,
        }
    }

    /// The normalized host.
    pub fn host(&self) -> &str {
        self.registry.host()
    }

    /// The repository path on the host (`library/nginx` for `docker.io/nginx`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `http://host` or `https://host`.
    pub fn base_url(&self) -> &str {
        self.registry.base_url()
    }

    /// Whether manifests may be deleted by digest here (`deleteByDigest: true`).
    pub fn deletes_by_digest(&self) -> bool {
        self.registry.deletes_by_digest()
    }

    pub(super) fn url(&self, rest: &str) -> Result<Url, RegistryError> {
        self.registry
            .base
            .join(&format!("/v2/{}/{rest}", self.path))
            .map_err(|e| RegistryError::InvalidRepository {
                repo: self.name.clone(),
                reason: format!("cannot make a URL ({e})"),
            })
    }

    pub(super) fn accept_manifests() -> HeaderMap {
        static ACCEPT_ALL: std::sync::LazyLock<reqwest::header::HeaderValue> =
            std::sync::LazyLock::new(|| {
                reqwest::header::HeaderValue::from_str(&MANIFEST_MEDIA_TYPES.join(", "))
                    .expect("media types are valid header text")
            });
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, ACCEPT_ALL.clone());
        h
    }

    /// Whether `next` may be followed from this registry: same scheme, host and port.
    pub(super) fn same_origin(&self, next: &Url) -> bool {
        self.registry.same_origin(next)
    }

    /// The URL a `Link` header's `next` names, resolved against this registry; refused
    /// (as a pagination error of `context`) when it is not a URL or leaves the registry's
    /// origin.
    pub(super) fn link_target(&self, next: &str, context: &str) -> Result<Url, RegistryError> {
        let url = self
            .registry
            .base
            .join(next)
            .map_err(|e| RegistryError::Pagination {
                context: context.to_string(),
                reason: format!("the Link header `{next}` is not a URL ({e})"),
            })?;
        if !self.same_origin(&url) {
            return Err(RegistryError::Pagination {
                context: context.to_string(),
                reason: format!(
                    "refusing to follow a Link to {url}: not {}",
                    self.registry.base_url()
                ),
            });
        }
        Ok(url)
    }

    /// Sends a request with no extra headers and no body.
    pub(super) async fn send_bare(
        &self,
        method: Method,
        url: Url,
        scope: &str,
        context: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        self.registry
            .send(method, url, HeaderMap::new(), None, scope, context)
            .await
    }

    /// HEADs (or GETs) `manifests/<reference>`: `Some(digest)` when present, `None` on 404.
    pub(super) async fn head_manifest(
        &self,
        reference: &str,
        context: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        self.head_manifest_held(reference, context, &self.scope, false)
            .await
    }

    /// [`HttpRepository::head_manifest`] for `scope`; `held`: the caller holds a request
    /// permit (see [`HttpRegistry::send_held`]).
    pub(super) async fn head_manifest_held(
        &self,
        reference: &str,
        context: &str,
        scope: &str,
        held: bool,
    ) -> Result<Option<Digest>, RegistryError> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let resp = self
            .registry
            .send_held(
                held,
                Method::HEAD,
                url.clone(),
                Self::accept_manifests(),
                None,
                scope,
                context,
            )
            .await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND if from_registry(resp.headers(), b"") => return Ok(None),
            // A HEAD has no body to tell a registry's 404 by: the GET below has.
            StatusCode::NOT_FOUND => {}
            _ => return Err(status_error(resp, context).await),
        }
        if let Some(value) = resp.headers().get("docker-content-digest") {
            let value = value.to_str().unwrap_or("");
            return Digest::parse(value.trim()).map(Some).map_err(|source| {
                RegistryError::BadDigest {
                    context: format!("{context}: Docker-Content-Digest"),
                    source,
                }
            });
        }
        // No digest header: read the manifest and hash it.
        let answer = self
            .registry
            .send_read_held(
                held,
                Method::GET,
                url,
                Self::accept_manifests(),
                scope,
                context,
                MAX_MANIFEST,
            )
            .await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND if from_registry(&answer.headers, &answer.body) => {
                return Ok(None);
            }
            StatusCode::NOT_FOUND => return Err(self.not_a_registry(context)),
            _ => return Err(answer.status_error(context)),
        }
        Ok(Some(Digest::sha256_of(&answer.body)))
    }

    fn not_a_registry(&self, context: &str) -> RegistryError {
        RegistryError::NotARegistry {
            context: context.to_string(),
            host: self.host().to_string(),
        }
    }

    /// Every tag of the repository, sorted and without duplicates, or `None` when the
    /// registry says it does not exist (404, `NAME_UNKNOWN` or no code).
    pub async fn list_tags_if_exists(&self) -> Result<Option<Vec<String>>, RegistryError> {
        let context = format!("listing tags of {}", self.name);
        let mut url = self.url(&format!("tags/list?n={PAGE_SIZE}"))?;
        let mut seen: HashSet<Url> = HashSet::new();
        let mut tags: BTreeSet<String> = BTreeSet::new();
        let mut received = 0usize;
        for page in 0.. {
            if page >= MAX_TAG_PAGES {
                return Err(RegistryError::Pagination {
                    context,
                    reason: format!("more than {MAX_TAG_PAGES} pages of tags; giving up"),
                });
            }
            if !seen.insert(url.clone()) {
                return Err(RegistryError::Pagination {
                    context,
                    reason: format!("the Link header leads back to {url} (a loop)"),
                });
            }
            let answer = self
                .registry
                .send_read(
                    Method::GET,
                    url.clone(),
                    HeaderMap::new(),
                    &self.scope,
                    &context,
                    MAX_TAG_PAGE_BYTES,
                )
                .await?;
            let status = answer.status;
            if status == StatusCode::NOT_FOUND && page == 0 {
                if !from_registry(&answer.headers, &answer.body) {
                    return Err(self.not_a_registry(&context));
                }
                let (code, message) = error_in(&answer.body);
                return match code.as_deref() {
                    None | Some("NAME_UNKNOWN") => Ok(None),
                    Some(_) => Err(RegistryError::Status {
                        context,
                        status: status.as_u16(),
                        code,
                        message,
                    }),
                };
            }
            if status != StatusCode::OK {
                return Err(answer.status_error(&context));
            }
            let next = next_link(&answer.headers);
            let list: TagList =
                serde_json::from_slice(&answer.body).map_err(|source| RegistryError::Json {
                    context: context.clone(),
                    source,
                })?;
            let page_tags = list.tags.unwrap_or_default();
            received += page_tags.len();
            if received > MAX_TAGS {
                return Err(RegistryError::Pagination {
                    context,
                    reason: format!("more than {MAX_TAGS} tags; giving up"),
                });
            }
            tags.extend(page_tags);
            let Some(next) = next else { break };
            url = self.link_target(&next, &context)?;
        }
        Ok(Some(tags.into_iter().collect()))
    }
}

impl TargetReader for HttpRepository {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_tags(&self) -> Result<Vec<String>, RegistryError> {
        Ok(self.list_tags_if_exists().await?.unwrap_or_default())
    }

    async fn list_tags_if_exists(&self) -> Result<Option<Vec<String>>, RegistryError> {
        HttpRepository::list_tags_if_exists(self).await
    }

    async fn resolve_tag(&self, tag: &str) -> Result<Option<Digest>, RegistryError> {
        check_tag(&self.name, tag)?;
        let context = format!("resolving {}:{tag}", self.name);
        self.head_manifest(tag, &context).await
    }

    async fn has_manifest(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let context = format!("checking {}@{digest}", self.name);
        match self.head_manifest(digest.as_str(), &context).await? {
            None => Ok(false),
            Some(d) if d == *digest => Ok(true),
            Some(other) => Err(RegistryError::Status {
                context,
                status: 200,
                code: None,
                message: Some(format!(
                    "the registry answered with the digest {other} for this digest"
                )),
            }),
        }
    }
}

/// A manifest reference: a tag or a digest.
pub(super) enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    /// Parses `reference` (a digest when it holds `:`, else a tag), for repository `repo`.
    pub(super) fn parse(repo: &str, reference: &str) -> Result<Reference, RegistryError> {
        if reference.contains(':') {
            Digest::parse(reference)
                .map(Reference::Digest)
                .map_err(|source| RegistryError::BadDigest {
                    context: format!("{repo}@{reference}"),
                    source,
                })
        } else {
            check_tag(repo, reference)?;
            Ok(Reference::Tag(reference.to_string()))
        }
    }

    /// `repo:tag` or `repo@digest`.
    pub(super) fn display(&self, repo: &str) -> String {
        match self {
            Reference::Tag(t) => format!("{repo}:{t}"),
            Reference::Digest(d) => format!("{repo}@{d}"),
        }
    }
}

impl HttpRepository {
    pub(super) async fn read_manifest(
        &self,
        reference: &str,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let parsed = Reference::parse(&self.name, reference)?;
        let context = format!("reading manifest {}", parsed.display(&self.name));
        let url = self.url(&format!("manifests/{reference}"))?;
        let answer = self
            .registry
            .send_read(
                Method::GET,
                url,
                Self::accept_manifests(),
                &self.scope,
                &context,
                MAX_MANIFEST,
            )
            .await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(answer.status_error(&context)),
        }
        let declared_type = content_type(&answer.headers);
        let header_digest = content_digest(&answer.headers);
        let bytes = answer.body;
        let digest = match &parsed {
            Reference::Digest(d) => {
                let actual = digest_like(d, &bytes);
                if actual != d.as_str() {
                    return Err(RegistryError::DigestMismatch {
                        context,
                        expected: d.to_string(),
                        actual,
                    });
                }
                d.clone()
            }
            Reference::Tag(_) => {
                let computed = Digest::sha256_of(&bytes);
                if let Some(h) = header_digest.filter(|h| h.algorithm() == "sha256")
                    && h != computed
                {
                    return Err(RegistryError::DigestMismatch {
                        context: format!("{context} (Docker-Content-Digest)"),
                        expected: h.to_string(),
                        actual: computed.to_string(),
                    });
                }
                computed
            }
        };
        let media_type = declared_type
            .or_else(|| sniff_media_type(&bytes))
            .ok_or_else(|| RegistryError::Status {
                context: context.clone(),
                status: 200,
                code: None,
                message: Some(
                    "the manifest has no media type (no Content-Type, no mediaType)".to_string(),
                ),
            })?;
        Ok(Some(RawManifest {
            media_type,
            bytes,
            digest,
        }))
    }

    pub(super) async fn blob_exists(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let context = format!("checking blob {digest} in {}", self.name);
        let url = self.url(&format!("blobs/{digest}"))?;
        let resp = self
            .send_bare(Method::HEAD, url, &self.scope, &context)
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(resp, &context).await),
        }
    }

    pub(super) async fn read_blob(&self, digest: &Digest) -> Result<BlobStream, RegistryError> {
        let context = format!("reading blob {digest} from {}", self.name);
        let url = self.url(&format!("blobs/{digest}"))?;
        // Redirects to storage are followed by the client, which drops `Authorization`
        // when the redirect leaves this host. The head must come within the deadline;
        // the body is held to the minimum rate.
        let deadline = self.registry.deadline;
        let resp = tokio::time::timeout(
            deadline,
            self.send_bare(Method::GET, url, &self.scope, &context),
        )
        .await
        .map_err(|_| RegistryError::TooSlow {
            context: context.clone(),
            reason: format!(
                "no answer within {:.1} s (RELSYNC_REQUEST_TIMEOUT)",
                deadline.as_secs_f64()
            ),
        })??;
        if resp.status() != StatusCode::OK {
            return Err(status_error(resp, &context).await);
        }
        let size = resp.content_length();
        let min_rate = self.registry.min_blob_rate;
        let rate_context = context.clone();
        let chunks = resp
            .bytes_stream()
            .map_err(move |e| RegistryError::Transport {
                context: context.clone(),
                source: e.without_url(),
            });
        let chunks = super::rate::at_least(chunks, min_rate, rate_context);
        Ok(BlobStream {
            size,
            chunks: Box::pin(chunks),
        })
    }
}

/// Whether a 404 came from a registry: distribution's `Docker-Distribution-API-Version`
/// header, or an OCI error body (`{"errors": [...]}`), which a plain web server sends
/// neither of.
fn from_registry(headers: &HeaderMap, body: &[u8]) -> bool {
    headers.contains_key("docker-distribution-api-version")
        || serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v.get("errors").is_some_and(serde_json::Value::is_array))
}
