//! Reading answers: whole bodies within a size limit, the registry's error codes and
//! messages, `Link` pagination, and the headers that name a manifest's type and digest.

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LINK};
use url::Url;

use super::client::*;
use crate::digest::Digest;
use crate::registry::RegistryError;

/// A whole answer, read by [`HttpRegistry::send_read`].
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Answer {
    /// The error for an answer with an unexpected status.
    pub(super) fn status_error(&self, context: &str) -> RegistryError {
        let (code, message) = error_in(&self.body);
        RegistryError::Status {
            context: context.to_string(),
            status: self.status.as_u16(),
            code,
            message,
        }
    }
}

/// Reads a body of at most `limit` bytes.
pub(super) async fn read_bounded(
    mut resp: reqwest::Response,
    limit: u64,
    context: &str,
) -> Result<Vec<u8>, RegistryError> {
    if resp.content_length().is_some_and(|l| l > limit) {
        return Err(RegistryError::TooLarge {
            context: context.to_string(),
            limit,
        });
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(RegistryError::TooLarge {
                        context: context.to_string(),
                        limit,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(RegistryError::Transport {
                    context: context.to_string(),
                    source: e.without_url(),
                });
            }
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub(super) errors: Vec<ErrorEntry>,
}

#[derive(serde::Deserialize)]
pub(super) struct ErrorEntry {
    #[serde(default)]
    pub(super) code: Option<String>,
    #[serde(default)]
    pub(super) message: Option<String>,
}

/// The registry's first error code and message, when the answer carries them.
pub(super) async fn error_of(resp: reqwest::Response) -> (Option<String>, Option<String>) {
    let Ok(body) = read_bounded(resp, MAX_SMALL_BYTES, "").await else {
        return (None, None);
    };
    error_in(&body)
}

/// The first error code and message of an error answer's body, when it carries them.
pub(super) fn error_in(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => match b.errors.into_iter().next() {
            Some(e) => (e.code, e.message),
            None => (None, None),
        },
        Err(_) => (None, None),
    }
}

pub(super) async fn status_error(resp: reqwest::Response, context: &str) -> RegistryError {
    let status = resp.status().as_u16();
    let (code, message) = error_of(resp).await;
    RegistryError::Status {
        context: context.to_string(),
        status,
        code,
        message,
    }
}

/// The target of the first `rel="next"` link in `Link` headers.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK).iter() {
        let Ok(value) = value.to_str() else { continue };
        let mut rest = value;
        while let Some(start) = rest.find('<') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('>') else { break };
            let target = &after[..end];
            let params_and_more = &after[end + 1..];
            // Parameters run until the next link (`, <`).
            let params_end = params_and_more.find(", <").unwrap_or(params_and_more.len());
            let params = &params_and_more[..params_end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim();
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                })
            });
            if is_next {
                return Some(target.to_string());
            }
            rest = &params_and_more[params_end..];
        }
    }
    None
}

/// The media type of a `Content-Type` value without parameters; `None` when absent or
/// generic (`application/json`, `text/plain`, `application/octet-stream`).
pub(super) fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next().unwrap_or("").trim();
    match media {
        "" | "application/json" | "text/plain" | "application/octet-stream" => None,
        m => Some(m.to_string()),
    }
}

/// The `Docker-Content-Digest` of an answer, when present and valid.
pub(super) fn content_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok())
}

/// `scheme://host:port` of a URL, for messages (never its path or query).
pub(super) fn origin_of(u: &Url) -> String {
    format!(
        "{}://{}{}",
        u.scheme(),
        u.host_str().unwrap_or(""),
        u.port().map(|p| format!(":{p}")).unwrap_or_default()
    )
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    pub(super) fn links(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(LINK, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    pub(super) fn finds_next_links() {
        assert_eq!(
            next_link(&links(&[r#"</v2/a/tags/list?last=x&n=2>; rel="next""#])),
            Some("/v2/a/tags/list?last=x&n=2".to_string())
        );
        assert_eq!(
            next_link(&links(&[
                r#"<https://h/first>; rel="prev", <https://h/v2/a/tags/list?n=1&last=b>; rel=next"#
            ])),
            Some("https://h/v2/a/tags/list?n=1&last=b".to_string())
        );
        assert_eq!(
            next_link(&links(&[r#"</p>; rel="prev""#, r#"</n>; rel="next""#])),
            Some("/n".to_string())
        );
        assert_eq!(next_link(&links(&[r#"</p>; rel="prev""#])), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
