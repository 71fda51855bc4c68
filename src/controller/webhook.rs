//! Push webhooks (`POST /api/v1/webhook`): GitHub (`X-Hub-Signature-256`, an HMAC-SHA256
//! of the body keyed with the secret) and GitLab (`X-Gitlab-Token`, the secret itself).
//! A delivery that proves it knows the secret wakes the loop for a refresh now
//! ([`Shared::refresh`], whose one stored permit makes a burst of hooks one refresh).
//!
//! Every comparison with the secret takes the same time whatever the guess. Without a
//! secret (`webhook.secretEnv` unset or empty) every hook is refused: an unsigned hook is
//! never accepted. Neither the secret nor a received signature or token is ever logged.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::Shared;

/// The largest webhook body accepted (1 MiB); a larger one gets 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// GitHub's signature header: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
/// GitHub's event header (`push`, `ping`, …).
pub const GITHUB_EVENT: &str = "x-github-event";
/// GitLab's token header: the secret itself.
pub const GITLAB_TOKEN: &str = "x-gitlab-token";
/// GitLab's event header (`Push Hook`, …).
pub const GITLAB_EVENT: &str = "x-gitlab-event";

/// Whether `header` (GitHub's `X-Hub-Signature-256`, `sha256=<hex>`) is the HMAC-SHA256 of
/// `body` keyed with `secret`. Compared in constant time; false for a missing or malformed
/// header and for an empty secret.
pub fn verify_github(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(signature) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(signature) = hex::decode(signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&signature).is_ok()
}

/// Whether `header` (GitLab's `X-Gitlab-Token`) is `secret`. Compared in constant time, on
/// SHA-256 hashes so that not even the secret's length shows; false for a missing header
/// and for an empty secret.
pub fn verify_gitlab(secret: &[u8], header: Option<&str>) -> bool {
    let Some(token) = header else {
        return false;
    };
    if secret.is_empty() {
        return false;
    }
    let expected = Sha256::digest(secret);
    let given = Sha256::digest(token.as_bytes());
    bool::from(expected.as_slice().ct_eq(given.as_slice()))
}

/// The handler of `POST /api/v1/webhook` (mounted with a [`MAX_BODY_BYTES`] body limit).
///
/// - body over the limit: 413;
/// - no secret configured, no GitHub or GitLab authentication header, or a bad one: 401;
/// - GitHub `ping`: 200, no refresh; GitHub `push`, GitLab `Push Hook`: 202 and a refresh;
/// - another event, properly signed: 200, no refresh;
/// - a GitHub delivery without `X-GitHub-Event`: 400.
///
/// Each delivery is counted in `relsync_webhooks_total` by result (`accepted`,
/// `unauthorized`, `rejected`, `ignored`).
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> (StatusCode, &'static str) {
    let (status, result, text) = judge(&shared, &headers, body);
    shared.metrics.webhook(result);
    if status == StatusCode::ACCEPTED {
        shared.refresh.notify_one();
    }
    (status, text)
}

/// What to answer: the status, the metric's result label and the body.
fn judge(
    shared: &Shared,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> (StatusCode, &'static str, &'static str) {
    let unauthorized = (
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "unauthorized: missing or bad signature\n",
    );
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            tracing::warn!(status = status.as_u16(), "webhook: body refused");
            return if status == StatusCode::PAYLOAD_TOO_LARGE {
                (status, "rejected", "payload too large (limit 1 MiB)\n")
            } else {
                (status, "rejected", "unreadable body\n")
            };
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(secret) = shared
        .webhook_secret
        .as_ref()
        .map(|s| s.expose().as_bytes())
        .filter(|s| !s.is_empty())
    else {
        tracing::warn!("webhook refused: no webhook secret is configured (webhook.secretEnv)");
        return (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unauthorized: no webhook secret is configured\n",
        );
    };
    if headers.contains_key(GITHUB_SIGNATURE) || headers.contains_key(GITHUB_EVENT) {
        if !verify_github(secret, &body, header(GITHUB_SIGNATURE)) {
            tracing::warn!("webhook refused: GitHub signature missing or wrong");
            return unauthorized;
        }
        match header(GITHUB_EVENT) {
            Some("push") => {
                tracing::info!("webhook: GitHub push, refreshing");
                (StatusCode::ACCEPTED, "accepted", "accepted: refreshing\n")
            }
            Some("ping") => {
                tracing::info!("webhook: GitHub ping");
                (StatusCode::OK, "accepted", "pong\n")
            }
            Some(event) => {
                tracing::info!(event, "webhook: GitHub event ignored (only push refreshes)");
                (
                    StatusCode::OK,
                    "ignored",
                    "ignored: only push events refresh\n",
                )
            }
            None => (
                StatusCode::BAD_REQUEST,
                "rejected",
                "bad request: no X-GitHub-Event header\n",
            ),
        }
    } else if headers.contains_key(GITLAB_TOKEN) {
        if !verify_gitlab(secret, header(GITLAB_TOKEN)) {
            tracing::warn!("webhook refused: GitLab token wrong");
            return unauthorized;
        }
        match header(GITLAB_EVENT) {
            Some("Push Hook") => {
                tracing::info!("webhook: GitLab push, refreshing");
                (StatusCode::ACCEPTED, "accepted", "accepted: refreshing\n")
            }
            event => {
                tracing::info!(
                    event = event.unwrap_or(""),
                    "webhook: GitLab event ignored (only Push Hook refreshes)"
                );
                (
                    StatusCode::OK,
                    "ignored",
                    "ignored: only push events refresh\n",
                )
            }
        }
    } else {
        tracing::warn!("webhook refused: neither X-Hub-Signature-256 nor X-Gitlab-Token");
        unauthorized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn github_signature_cases() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = sign(b"s3cret", body);
        assert!(verify_github(b"s3cret", body, Some(&good)));
        assert!(!verify_github(b"other", body, Some(&good)));
        assert!(!verify_github(b"s3cret", b"{}", Some(&good)));
        assert!(!verify_github(b"s3cret", body, None));
        assert!(!verify_github(
            b"s3cret",
            body,
            Some(good.trim_start_matches("sha256="))
        ));
        assert!(!verify_github(b"s3cret", body, Some("sha256=zz")));
        assert!(!verify_github(
            b"s3cret",
            body,
            Some(&good[..good.len() - 2])
        ));
        assert!(!verify_github(b"", body, Some(&sign(b"", body))));
    }

    #[test]
    fn gitlab_token_cases() {
        assert!(verify_gitlab(b"s3cret", Some("s3cret")));
        assert!(!verify_gitlab(b"s3cret", Some("s3cre")));
        assert!(!verify_gitlab(b"s3cret", Some("s3cret ")));
        assert!(!verify_gitlab(b"s3cret", None));
        assert!(!verify_gitlab(b"", Some("")));
    }
}
