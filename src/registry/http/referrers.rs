//! The OCI 1.1 referrers API: `GET /v2/<name>/referrers/<digest>`, an image index of the
//! manifests whose `subject` is `digest`, paged with `Link` (followed on the same origin
//! only, with a page budget and loop detection, as tag lists are).

use std::collections::HashSet;

use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use super::answer::*;
use super::client::*;
use super::read::HttpRepository;
use crate::digest::Digest;
use crate::registry::RegistryError;

/// At most this many pages of referrers are followed.
const MAX_REFERRER_PAGES: usize = 100;

impl HttpRepository {
    /// The descriptors (raw JSON objects, as the registry sent them) of every manifest whose
    /// `subject` is `digest`, across every `Link` page; `None` when the registry does not
    /// serve the referrers API (a 404 that is not a registry's answer for a known
    /// repository, 400, 405 or 501: distribution 2.8 answers 404 with no JSON body).
    pub async fn referrers(
        &self,
        digest: &Digest,
    ) -> Result<Option<Vec<serde_json::Value>>, RegistryError> {
        let context = format!("listing referrers of {}@{digest}", self.name);
        let mut url = self.url(&format!("referrers/{digest}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
        );
        let mut seen: HashSet<Url> = HashSet::new();
        let mut out = Vec::new();
        for page in 0.. {
            if page >= MAX_REFERRER_PAGES || !seen.insert(url.clone()) {
                return Err(RegistryError::Pagination {
                    context,
                    reason: format!(
                        "more than {MAX_REFERRER_PAGES} pages of referrers, or a Link loop; giving up"
                    ),
                });
            }
            let answer = self
                .registry
                .send_read(
                    Method::GET,
                    url.clone(),
                    headers.clone(),
                    &self.scope,
                    &context,
                    MAX_MANIFEST,
                )
                .await?;
            match answer.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND
                | StatusCode::BAD_REQUEST
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::NOT_IMPLEMENTED
                    if page == 0 =>
                {
                    // A registry serving the API answers 200 (an empty index) for a digest
                    // it has no referrers of; anything else here means no API.
                    let (code, _) = error_in(&answer.body);
                    if code.as_deref() == Some("NAME_UNKNOWN") {
                        return Ok(Some(Vec::new()));
                    }
                    return Ok(None);
                }
                _ => return Err(answer.status_error(&context)),
            }
            let index: serde_json::Value =
                serde_json::from_slice(&answer.body).map_err(|source| RegistryError::Json {
                    context: context.clone(),
                    source,
                })?;
            if let Some(list) = index.get("manifests").and_then(|m| m.as_array()) {
                out.extend(list.iter().cloned());
            }
            let Some(next) = next_link(&answer.headers) else {
                break;
            };
            url = self.link_target(&next, &context)?;
        }
        Ok(Some(out))
    }
}
