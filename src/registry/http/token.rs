//! Authentication: the scheme a host asked for (anonymous, Basic, Bearer), the bearer
//! tokens fetched from its realm and cached per scope, and the `Authorization` header.

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use url::Url;

use super::answer::*;
use super::client::*;
use crate::registry::RegistryError;
use crate::registry::auth::{Credentials, Token, TokenAnswer};
use crate::registry::credential_helper::IDENTITY_TOKEN_USER;

/// How a host wants to be authenticated, learnt from its first challenge.
#[derive(Debug, Clone)]
pub(super) enum Scheme {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl HttpRegistry {
    pub(super) fn scheme(&self) -> Scheme {
        self.scheme
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn set_scheme(&self, s: Scheme) {
        *self.scheme.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    pub(super) fn cached_token(&self, scope: &str) -> Option<Token> {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
            .filter(|t| t.is_fresh())
            .cloned()
    }

    /// The `Authorization` header value to send for `scope` given what the host asked for
    /// before (`None`: anonymous).
    pub(super) async fn authorization(
        &self,
        scope: &str,
        context: &str,
        after_challenge: bool,
    ) -> Result<Option<String>, RegistryError> {
        match self.scheme() {
            Scheme::Anonymous => Ok(None),
            Scheme::Basic => Ok(self.credentials.as_ref().map(basic_header)),
            Scheme::Bearer { .. } => {
                if let Some(t) = self.cached_token(scope) {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                if after_challenge {
                    return Ok(None);
                }
                // The host wants tokens: fetch one for this scope before asking.
                let token = self.fetch_token(scope, scope, context).await?;
                Ok(Some(format!("Bearer {}", token.value)))
            }
        }
    }

    /// Fetches a token for `wanted` from the realm the host named, with basic credentials
    /// when there are some (anonymous otherwise), and caches it under `scope`. One fetch at
    /// a time per host, so concurrent requests share a token.
    pub(super) async fn fetch_token(
        &self,
        scope: &str,
        wanted: &str,
        context: &str,
    ) -> Result<Token, RegistryError> {
        let _guard = self.token_fetch.lock().await;
        if let Some(t) = self.cached_token(scope) {
            return Ok(t);
        }
        let Scheme::Bearer { realm, service } = self.scheme() else {
            return Err(RegistryError::Auth {
                context: context.to_string(),
                reason: "no bearer challenge to answer".to_string(),
            });
        };
        let mut url = Url::parse(&realm).map_err(|e| RegistryError::Auth {
            context: context.to_string(),
            reason: format!("the token realm `{realm}` is not a URL ({e})"),
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(RegistryError::Auth {
                context: context.to_string(),
                reason: format!("the token realm `{realm}` is not http(s)"),
            });
        }
        let same_host = url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default();
        if same_host
            && url.scheme() == "http"
            && self.base.scheme() == "https"
            && self.credentials.is_some()
        {
            return Err(RegistryError::Auth {
                context: context.to_string(),
                reason: format!(
                    "refusing to send credentials to the plain-HTTP token realm `{realm}` of an HTTPS registry"
                ),
            });
        }
        // Credentials go to a realm on the registry host itself, or over HTTPS to a host
        // the registry's entry lists in `tokenRealms`; any other realm is asked anonymously.
        let credentials = self
            .credentials
            .as_ref()
            .filter(|_| same_host || (url.scheme() == "https" && self.realm_listed(&url)));
        let withheld = self.credentials.is_some() && credentials.is_none();
        if withheld {
            tracing::warn!(
                host = %self.host,
                realm_host = %origin_of(&url),
                "not sending credentials to a token realm on another host (list it in tokenRealms, over HTTPS, to allow it)"
            );
        }
        // A credential helper's identity token (user `<token>`) is an OAuth2 refresh token:
        // exchanged by POST, as Docker does, instead of sent as a password.
        let identity_token = credentials
            .filter(|c| c.username() == IDENTITY_TOKEN_USER)
            .map(|c| c.password().to_string());
        let mut form = None;
        if let Some(refresh) = &identity_token {
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            f.append_pair("grant_type", "refresh_token");
            f.append_pair("client_id", "relsync");
            if let Some(s) = &service {
                f.append_pair("service", s);
            }
            let scopes: Vec<&str> = wanted.split(' ').filter(|s| !s.is_empty()).collect();
            f.append_pair("scope", &scopes.join(" "));
            f.append_pair("refresh_token", refresh);
            form = Some(f.finish());
        } else {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &service {
                q.append_pair("service", s);
            }
            for s in wanted.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        let method = if form.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let build = || {
            if let Some(body) = &form {
                return Some(
                    self.client
                        .post(url.clone())
                        .header(reqwest::header::USER_AGENT, self.user_agent.clone())
                        .timeout(self.deadline)
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(body.clone()),
                );
            }
            let rb = self
                .client
                .get(url.clone())
                .header(reqwest::header::USER_AGENT, self.user_agent.clone())
                .timeout(self.deadline);
            Some(match credentials {
                Some(c) => with_authorization(rb, &basic_header(c)),
                None => rb,
            })
        };
        let token_context = format!("{context}: token request");
        let resp = self
            .execute(&method, &url, build, self.retry.tries, &token_context)
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let (code, message) = error_of(resp).await;
            return Err(RegistryError::Auth {
                context: context.to_string(),
                reason: format!(
                    "the token endpoint answered {status}{}{}",
                    crate::registry::error_detail(code.as_deref(), message.as_deref()),
                    if withheld {
                        format!(
                            " (asked anonymously: credentials are not sent to the token realm host {}, which is neither the registry host nor an HTTPS host listed in its tokenRealms)",
                            origin_of(&url)
                        )
                    } else {
                        String::new()
                    }
                ),
            });
        }
        let body = read_bounded(resp, MAX_SMALL_BYTES, &token_context).await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|source| RegistryError::Json {
                context: token_context.clone(),
                source,
            })?;
        let token = Token::from_answer(answer).ok_or_else(|| RegistryError::Auth {
            context: context.to_string(),
            reason: "the token endpoint sent no token".to_string(),
        })?;
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope.to_string(), token.clone());
        Ok(token)
    }
}

impl HttpRegistry {
    /// Whether the token realm `url` is on a host listed in `tokenRealms` (by host name, or
    /// by `host:port`).
    fn realm_listed(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let with_port = url.port().map(|p| format!("{host}:{p}"));
        self.token_realms
            .iter()
            .any(|r| *r == host || Some(r) == with_port.as_ref())
    }
}

/// The scopes to ask a token for: those the challenge names plus those the request needs
/// (a push, or a mount's source), each once.
pub(super) fn merge_scopes(challenge: Option<&str>, wanted: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in challenge
        .unwrap_or("")
        .split(' ')
        .chain(wanted.split(' '))
        .filter(|s| !s.is_empty())
    {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(" ")
}

/// Adds `Authorization: value`, marked sensitive so that no `Debug` of the request and no
/// HTTP/2 header table ever shows or indexes it.
pub(super) fn with_authorization(
    rb: reqwest::RequestBuilder,
    value: &str,
) -> reqwest::RequestBuilder {
    match HeaderValue::from_str(value) {
        Ok(mut v) => {
            v.set_sensitive(true);
            rb.header(AUTHORIZATION, v)
        }
        // Not a valid header value (a token with control characters): the builder reports
        // the error when the request is built, without the value.
        Err(_) => rb.header(AUTHORIZATION, value),
    }
}

pub(super) fn basic_header(c: &Credentials) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            c.username(),
            c.password()
        ))
    )
}
