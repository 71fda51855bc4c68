//! `relsync.yaml`, the connection settings: where Git is, how to reach registries and the
//! cluster, how to sync. Not a manifest: it is read from beside the repository, not from a
//! revision, but with the same strict document reader as the manifests ([`load`]).

use serde_saphyr::Spanned;

use crate::manifest::parse::{
    DocCtx, DocDe, Kind, NotificationDe, RateLimitDe, RegistryDe, check_spec_fields, did_you_mean,
    for_each_document, header, hinted, non_empty, parse_duration, required, shown,
};
use crate::manifest::{Diagnostic, Diagnostics, Located, Span};

/// The whole `relsync.yaml` (`kind: Config`).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where the desired state lives.
    pub git: GitSettings,
    /// Per-host connection settings.
    pub registries: Vec<RegistrySettings>,
    /// Cluster access.
    pub cluster: ClusterSettings,
    /// Sync behaviour.
    pub sync: SyncSettings,
    /// Webhook settings for `serve`.
    pub webhook: WebhookSettings,
    /// `serve`: where events are posted (`notifications`).
    pub notifications: Vec<NotificationSettings>,
}

impl Config {
    /// The settings for `host`, if the config names it.
    pub fn registry(&self, host: &str) -> Option<&RegistrySettings> {
        self.registries.iter().find(|r| r.host.value == host)
    }
}

/// `spec.git`.
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// A local path (relative to relsync.yaml's directory) or a URL.
    pub repo: Located<String>,
    /// The revision read by every command but `validate` on a working tree.
    pub revision: String,
    /// Directory of manifests inside the repository.
    pub path: String,
    /// Directory of policies inside the repository.
    pub policies: String,
}

impl Default for GitSettings {
    fn default() -> Self {
        GitSettings {
            repo: Located::new(".".to_string(), Span::file("relsync.yaml")),
            revision: "HEAD".to_string(),
            path: "manifests".to_string(),
            policies: "policies".to_string(),
        }
    }
}

/// One entry of `spec.registries`.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Host (and port) this entry is for, e.g. `quay.io` or `127.0.0.1:5000`.
    pub host: Located<String>,
    /// Plain HTTP.
    pub insecure: bool,
    /// Extra CA bundle (PEM), resolved relative to relsync.yaml's directory by the caller.
    pub ca_file: Option<String>,
    /// Environment variable holding the user name.
    pub username_env: Option<String>,
    /// Environment variable holding the password or token.
    pub password_env: Option<String>,
    /// `oci:DIR`: read and write this host's repositories under DIR instead.
    pub map_to: Option<Located<String>>,
    /// `tokenRealms`: other hosts (`host` or `host:port`) whose HTTPS token realm may
    /// receive this registry's credentials. Without an entry, credentials go only to a
    /// realm on the registry host itself (and, for `docker.io`, to `auth.docker.io`).
    pub token_realms: Vec<String>,
    /// `deleteByDigest`: where the registry cannot delete a tag by name, delete the
    /// manifest by digest (after a fresh read finds no other tag on it). Off by default:
    /// that DELETE races with anyone tagging the digest meanwhile.
    pub delete_by_digest: bool,
    /// `rateLimit`: the request budget of this host (`None`: no budget).
    pub rate_limit: Option<RateLimit>,
}

/// `rateLimit: {requestsPerSecond, burst}` of a registry entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second (may be below 1).
    pub requests_per_second: f64,
    /// Requests that may go at once after a quiet spell (default: the rate, at least 1).
    pub burst: u32,
}

/// One entry of `spec.notifications`.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationSettings {
    /// Where events are POSTed (`http` or `https`).
    pub url: String,
    /// Environment variable holding the HMAC secret the body is signed with.
    pub secret_env: Option<String>,
    /// The events sent (all when the entry names none).
    pub events: Vec<NotifyEvent>,
}

/// The events `serve` can post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyEvent {
    /// A sync failed (an action failed, a plan was refused, the desired state is invalid).
    SyncFailed,
    /// A channel went OutOfSync or Degraded.
    OutOfSync,
    /// A channel is back in sync.
    InSync,
    /// A floating tag moved to another release.
    Promoted,
}

impl NotifyEvent {
    /// Every event, in the order the docs list them.
    pub const ALL: [NotifyEvent; 4] = [
        NotifyEvent::SyncFailed,
        NotifyEvent::OutOfSync,
        NotifyEvent::InSync,
        NotifyEvent::Promoted,
    ];

    /// The event's name in the config and in the posted JSON's `kind`.
    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::SyncFailed => "sync-failed",
            NotifyEvent::OutOfSync => "out-of-sync",
            NotifyEvent::InSync => "in-sync",
            NotifyEvent::Promoted => "promoted",
        }
    }
}

/// `spec.cluster`.
#[derive(Debug, Clone, Default)]
pub struct ClusterSettings {
    /// Whether ImageStreams are read and written.
    pub enabled: bool,
}

/// `spec.sync`.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Parallel copies per registry.
    pub concurrency: usize,
    /// Delete tags nobody claims.
    pub prune: bool,
    /// `serve`: apply plans by itself.
    pub auto: bool,
    /// `serve`: re-sync drift even when Git did not change.
    pub self_heal: bool,
    /// `serve`: how often Git and the live state are compared, in seconds.
    pub interval_seconds: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            concurrency: 8,
            prune: false,
            auto: true,
            self_heal: true,
            interval_seconds: 180,
        }
    }
}

/// `spec.webhook`.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    /// Environment variable holding the HMAC secret.
    pub secret_env: Option<String>,
}

/// Parses `relsync.yaml` (kind `Config`), every problem at once. `path` is used in messages
/// only.
pub fn load(path: &str, contents: &[u8]) -> Result<Config, Diagnostics> {
    let mut problems = Diagnostics::default();
    let mut config = None;
    let mut count = 0;
    for_each_document(path, contents, &mut problems, |ctx, doc| {
        count += 1;
        if count > 1 {
            ctx.error(
                ctx.span(doc.referenced),
                "a config file holds one document (found a second one)",
            );
            return;
        }
        config = from_document(ctx, doc);
    });
    if count == 0 && !problems.has_errors() {
        problems.push(Diagnostic::error(
            Span::file(path),
            "no Config document found (expected `kind: Config`)",
        ));
    }
    for d in problems.0.iter_mut() {
        d.message = shown(&d.message);
    }
    problems.sort();
    match config {
        Some(c) if !problems.has_errors() => Ok(c),
        _ => Err(problems),
    }
}

/// Builds the config from its one document; problems go to `ctx`. Returns `None` when the
/// document is not a usable Config (the problems say why).
fn from_document(ctx: &DocCtx<'_>, doc: Spanned<DocDe>) -> Option<Config> {
    let root = doc.referenced;
    let DocDe {
        api_version,
        kind,
        metadata,
        spec,
    } = doc.value;
    let (kind, kind_span) = header(ctx, root, api_version, kind, "Config")?;
    if kind != Kind::Config {
        ctx.error(
            kind_span,
            format!(
                "expected `kind: Config` in {}, found a manifest kind",
                ctx.file()
            ),
        );
        return None;
    }
    if let Some(m) = metadata
        && let Some(name) = m.value.name
    {
        non_empty(ctx, ctx.located(name), "metadata.name");
    }
    let mut config = Config::default();
    config.git.repo = Located::new(".".to_string(), Span::file(ctx.file().clone()));
    let Some(spec) = spec else {
        return Some(config);
    };
    check_spec_fields(ctx, Kind::Config, &spec.value);
    let spec = spec.value;
    if let Some(git) = spec.git {
        let g = git.value;
        if let Some(repo) = g.repo.map(|v| ctx.located(v))
            && let Some(repo) = non_empty(ctx, repo, "spec.git.repo")
        {
            config.git.repo = repo;
        }
        if let Some(v) = g.revision.map(|v| ctx.located(v))
            && let Some(v) = non_empty(ctx, v, "spec.git.revision")
        {
            config.git.revision = v.value;
        }
        for (field, path, slot) in [
            (g.path, "spec.git.path", &mut config.git.path),
            (g.policies, "spec.git.policies", &mut config.git.policies),
        ] {
            if let Some(v) = field.map(|v| ctx.located(v))
                && let Some(v) = non_empty(ctx, v, path)
            {
                let dir = v.value.trim_end_matches('/');
                let dir = dir.strip_prefix("./").unwrap_or(dir);
                if dir.starts_with('/') || dir.split('/').any(|c| c == "..") {
                    ctx.error(
                        v.span.clone(),
                        format!(
                            "`{path}` must be a directory inside the repository, found `{}`",
                            v.value
                        ),
                    );
                } else {
                    *slot = dir.to_string();
                }
            }
        }
    }
    if let Some(list) = spec.registries {
        let mut seen: Vec<Located<String>> = Vec::new();
        for (i, r) in list.value.into_iter().enumerate() {
            if let Some(reg) = registry(ctx, i, r) {
                if let Some(first) = seen.iter().find(|h| h.value == reg.host.value) {
                    ctx.error(
                        reg.host.span.clone(),
                        format!(
                            "registry `{}` is configured twice (first at {})",
                            reg.host.value, first.span
                        ),
                    );
                    continue;
                }
                seen.push(reg.host.clone());
                config.registries.push(reg);
            }
        }
    }
    if let Some(cluster) = spec.cluster
        && let Some(enabled) = cluster.value.enabled
    {
        config.cluster.enabled = enabled.value;
    }
    if let Some(sync) = spec.sync {
        let s = sync.value;
        if let Some(c) = s.concurrency {
            if c.value == 0 {
                ctx.error(
                    ctx.span(c.referenced),
                    "`spec.sync.concurrency` must be at least 1",
                );
            } else {
                config.sync.concurrency = usize::try_from(c.value).unwrap_or(usize::MAX);
            }
        }
        if let Some(v) = s.prune {
            config.sync.prune = v.value;
        }
        if let Some(v) = s.auto {
            config.sync.auto = v.value;
        }
        if let Some(v) = s.self_heal {
            config.sync.self_heal = v.value;
        }
        if let Some(v) = s.interval {
            match parse_duration(&v.value) {
                Ok(0) => ctx.error(
                    ctx.span(v.referenced),
                    "`spec.sync.interval` must be at least one second",
                ),
                Ok(secs) => config.sync.interval_seconds = secs,
                Err(e) => ctx.error(
                    ctx.span(v.referenced),
                    format!(
                        "invalid `spec.sync.interval` `{}`: {e}; write e.g. `3m`, `1h30m` or `PT3M`",
                        v.value
                    ),
                ),
            }
        }
    }
    if let Some(webhook) = spec.webhook
        && let Some(v) = webhook.value.secret_env
    {
        config.webhook.secret_env = env_name(ctx, ctx.located(v), "spec.webhook.secretEnv");
    }
    if let Some(list) = spec.notifications {
        for (i, n) in list.value.into_iter().enumerate() {
            if let Some(n) = notification(ctx, i, n) {
                config.notifications.push(n);
            }
        }
    }
    Some(config)
}

fn notification(
    ctx: &DocCtx<'_>,
    i: usize,
    n: Spanned<NotificationDe>,
) -> Option<NotificationSettings> {
    let at = n.referenced;
    let n = n.value;
    let path = format!("spec.notifications[{i}]");
    let url = required(ctx, n.url, &format!("{path}.url"), at)
        .and_then(|u| non_empty(ctx, u, &format!("{path}.url")))?;
    match url::Url::parse(&url.value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => {
            // The URL may carry a token (Slack's do): not quoted.
            ctx.error(
                url.span.clone(),
                format!("`{path}.url` must be an http(s) URL"),
            );
            return None;
        }
    }
    let secret_env = n
        .secret_env
        .and_then(|v| env_name(ctx, ctx.located(v), &format!("{path}.secretEnv")));
    let mut events = Vec::new();
    for (j, e) in n.events.map(|e| e.value).into_iter().flatten().enumerate() {
        let e = ctx.located(e);
        match NotifyEvent::ALL.iter().find(|k| k.name() == e.value) {
            Some(k) if !events.contains(k) => events.push(*k),
            Some(_) => {}
            None => ctx.push(hinted(
                Diagnostic::error(
                    e.span.clone(),
                    format!(
                        "unknown event `{}` in `{path}.events[{j}]` (expected {})",
                        shown(&e.value),
                        NotifyEvent::ALL
                            .map(|k| format!("`{}`", k.name()))
                            .join(", ")
                    ),
                ),
                did_you_mean(&e.value, NotifyEvent::ALL.iter().map(|k| k.name())),
            )),
        }
    }
    if events.is_empty() {
        events = NotifyEvent::ALL.to_vec();
    }
    Some(NotificationSettings {
        url: url.value,
        secret_env,
        events,
    })
}

fn rate_limit(ctx: &DocCtx<'_>, i: usize, r: Spanned<RateLimitDe>) -> Option<RateLimit> {
    let at = r.referenced;
    let r = r.value;
    let path = format!("spec.registries[{i}].rateLimit");
    let rps = required(
        ctx,
        r.requests_per_second,
        &format!("{path}.requestsPerSecond"),
        at,
    )?;
    if !(rps.value.is_finite() && rps.value > 0.0) {
        ctx.error(
            rps.span.clone(),
            format!("`{path}.requestsPerSecond` must be a number above 0"),
        );
        return None;
    }
    let burst = match r.burst {
        Some(b) if b.value == 0 => {
            ctx.error(
                ctx.span(b.referenced),
                format!("`{path}.burst` must be at least 1"),
            );
            return None;
        }
        Some(b) => b.value,
        // As a bucket of one second's requests.
        None => (rps.value.ceil() as u32).max(1),
    };
    Some(RateLimit {
        requests_per_second: rps.value,
        burst,
    })
}

fn registry(ctx: &DocCtx<'_>, i: usize, r: Spanned<RegistryDe>) -> Option<RegistrySettings> {
    let at = r.referenced;
    let r = r.value;
    let host = required(ctx, r.host, &format!("spec.registries[{i}].host"), at)
        .and_then(|h| non_empty(ctx, h, &format!("spec.registries[{i}].host")))?;
    if host.value.contains('/')
        || host.value.contains("://")
        || host.value.contains(char::is_whitespace)
    {
        ctx.error(
            host.span.clone(),
            format!(
                "`spec.registries[{i}].host` must be a host name with an optional port (e.g. `quay.io` or `127.0.0.1:5000`), found `{}`",
                host.value
            ),
        );
        return None;
    }
    let map_to =
        r.map_to
            .map(|m| ctx.located(m))
            .and_then(|m| match m.value.strip_prefix("oci:") {
                Some(dir) if !dir.is_empty() => Some(m),
                _ => {
                    ctx.error(
                        m.span.clone(),
                        format!(
                            "`spec.registries[{i}].mapTo` must be `oci:DIR`, found `{}`",
                            m.value
                        ),
                    );
                    None
                }
            });
    let ca_file = r
        .ca_file
        .map(|c| ctx.located(c))
        .and_then(|c| non_empty(ctx, c, &format!("spec.registries[{i}].caFile")))
        .map(|c| c.value);
    let username_env = r.username_env.map(|v| ctx.located(v));
    let password_env = r.password_env.map(|v| ctx.located(v));
    match (&username_env, &password_env) {
        (Some(u), None) => ctx.error(
            u.span.clone(),
            format!("`spec.registries[{i}].usernameEnv` needs `passwordEnv` too"),
        ),
        (None, Some(p)) => ctx.error(
            p.span.clone(),
            format!("`spec.registries[{i}].passwordEnv` needs `usernameEnv` too"),
        ),
        _ => {}
    }
    let username_env =
        username_env.and_then(|v| env_name(ctx, v, &format!("spec.registries[{i}].usernameEnv")));
    let password_env =
        password_env.and_then(|v| env_name(ctx, v, &format!("spec.registries[{i}].passwordEnv")));
    let mut token_realms = Vec::new();
    for (j, realm) in r.token_realms.into_iter().flatten().enumerate() {
        let path = format!("spec.registries[{i}].tokenRealms[{j}]");
        let Some(realm) = non_empty(ctx, ctx.located(realm), &path) else {
            continue;
        };
        if realm.value.contains('/')
            || realm.value.contains(char::is_whitespace)
            || realm.value.contains('@')
        {
            ctx.error(
                realm.span.clone(),
                format!(
                    "`{path}` must be a host name with an optional port (e.g. `auth.example.com`), found `{}`",
                    realm.value
                ),
            );
            continue;
        }
        token_realms.push(realm.value.to_ascii_lowercase());
    }
    Some(RegistrySettings {
        host,
        insecure: r.insecure.map(|v| v.value).unwrap_or(false),
        ca_file,
        username_env,
        password_env,
        map_to,
        token_realms,
        delete_by_digest: r.delete_by_digest.map(|v| v.value).unwrap_or(false),
        rate_limit: r.rate_limit.and_then(|l| rate_limit(ctx, i, l)),
    })
}

/// The name of an environment variable (`[A-Za-z_][A-Za-z0-9_]*`).
fn env_name(ctx: &DocCtx<'_>, v: Located<String>, path: &str) -> Option<String> {
    let ok = v
        .value
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && v.value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Some(v.value)
    } else {
        ctx.error(
            v.span.clone(),
            format!(
                "`{path}` must name an environment variable (letters, digits and `_`), found `{}`",
                v.value
            ),
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n";

    #[test]
    fn token_realms_and_delete_by_digest_are_read_per_registry() {
        let c = load(
            "relsync.yaml",
            format!("{HEAD}    - {{host: quay.io, tokenRealms: [Auth.Quay.io, 'auth2.example:8443'], deleteByDigest: true}}\n    - {{host: ghcr.io}}\n").as_bytes(),
        )
        .unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(
            c.registries[0].token_realms,
            vec!["auth.quay.io".to_string(), "auth2.example:8443".to_string()]
        );
        assert!(c.registries[0].delete_by_digest);
        assert!(c.registries[1].token_realms.is_empty());
        assert!(!c.registries[1].delete_by_digest);
    }

    #[test]
    fn a_token_realm_with_a_scheme_or_path_is_refused() {
        let e = load(
            "relsync.yaml",
            format!("{HEAD}    - {{host: quay.io, tokenRealms: ['https://auth.quay.io/token']}}\n")
                .as_bytes(),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("spec.registries[0].tokenRealms[0]") && text.contains("host name"),
            "{text}"
        );
    }
}
