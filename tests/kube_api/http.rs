//! The stand-in's HTTP front: routing Kubernetes API paths to the store, bearer tokens,
//! faults and the request log.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::*;

pub(super) fn respond(code: u16, body: &Value) -> Response {
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = StatusCode::from_u16(code).expect("status code");
    res.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    res
}

pub(super) fn parse_body(bytes: &Bytes) -> Option<Value> {
    let text = std::str::from_utf8(bytes).ok().filter(|t| !t.is_empty())?;
    serde_json::from_str(text)
        .ok()
        .or_else(|| serde_saphyr::from_str::<Value>(text).ok())
}

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_query = uri.query().unwrap_or("");
    let query: Query = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, parsed) = (header("content-type"), parse_body(&body));
    let mut store = shared.store.lock().expect("store lock");
    store.requests.push(LoggedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: raw_query.to_string(),
        content_type: content_type.clone(),
        body: parsed.clone(),
    });
    let fail = |s: Value| respond(s["code"].as_u64().unwrap_or(500) as u16, &s);
    if let Some(code) = store.faults.pop_front() {
        let reason = match code {
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        let mut res = fail(status(code, reason, format!("injected fault {code}"), None));
        res.headers_mut()
            .insert("retry-after", HeaderValue::from_static("0"));
        return res;
    }
    if header("authorization") != Some(format!("Bearer {}", shared.token)) {
        return fail(status(401, "Unauthorized", "Unauthorized", None));
    }
    let Some((r, ns, name)) = route(uri.path()) else {
        return fail(status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        ));
    };
    if query.contains_key("dryRun") {
        return fail(bad_request(
            "dryRun is not supported by the test API server",
        ));
    }
    let user_agent = header("user-agent").unwrap_or_default();
    let default_manager = user_agent
        .split('/')
        .next()
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown");
    let manager = query
        .get("fieldManager")
        .map_or(default_manager, String::as_str)
        .to_string();
    let needs_body = matches!(method, Method::POST | Method::PUT | Method::PATCH);
    if needs_body && !parsed.as_ref().is_some_and(Value::is_object) {
        return fail(bad_request("the request body is not a JSON or YAML object"));
    }
    let body = parsed.unwrap_or(Value::Null);
    let ok = |v: Value| (200, v);
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let result = match (&method, ns.as_deref(), name.as_deref()) {
        (&Method::GET, _, None) if watch => return watch_response(&shared, &store, r, ns, &query),
        (&Method::GET, _, None) => Ok(ok(list(&store, r, ns.as_deref(), &query))),
        (&Method::GET, Some(ns), Some(name)) => store
            .get(r, ns, name)
            .map(ok)
            .ok_or_else(|| not_found(r, name)),
        (&Method::POST, Some(ns), None) => store.create(r, ns, &manager, body).map(|o| (201, o)),
        (&Method::PUT, Some(ns), Some(name)) => {
            let code = if store.get(r, ns, name).is_some() {
                200
            } else {
                201
            };
            store
                .replace(r, ns, name, &manager, body)
                .map(|o| (code, o))
        }
        (&Method::DELETE, Some(ns), Some(name)) => store.delete(r, ns, name).map(ok),
        (&Method::PATCH, Some(ns), Some(name)) => {
            let (force, content_type) = (
                query.get("force").is_some_and(|f| f == "true"),
                content_type.unwrap_or_default(),
            );
            match content_type.split(';').next().unwrap_or_default().trim() {
                "application/apply-patch+yaml"
                    if query.get("fieldManager").is_none_or(String::is_empty) =>
                {
                    Err(status(
                        422,
                        "Invalid",
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                        None,
                    ))
                }
                "application/apply-patch+yaml" => {
                    if let Some(hook) = store.hook.take() {
                        hook(&mut store);
                    }
                    let code = if store.get(r, ns, name).is_some() {
                        200
                    } else {
                        201
                    };
                    store
                        .apply(r, ns, name, &manager, body, force)
                        .map(|o| (code, o))
                }
                _ if force => Err(bad_request(
                    "force: Forbidden: may not be specified for non-apply patch",
                )),
                "application/merge-patch+json" => {
                    store.merge_patch(r, ns, name, &manager, body).map(ok)
                }
                other => Err(status(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "unsupported patch type {other:?}: this test server accepts application/merge-patch+json and application/apply-patch+yaml"
                    ),
                    None,
                )),
            }
        }
        _ => Err(status(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {}", uri.path()),
            None,
        )),
    };
    match result {
        Ok((code, v)) => respond(code, &v),
        Err(s) => fail(s),
    }
}

/// `(resource, namespace, name)` of an API path.
pub(super) fn route(path: &str) -> Option<(Resource, Option<String>, Option<String>)> {
    Resource::ALL.into_iter().find_map(|r| {
        let rest = path.strip_prefix(&r.prefix())?.strip_prefix('/')?;
        let segs: Vec<&str> = rest.split('/').collect();
        let own = |s: &str| Some(s.to_string());
        match segs.as_slice() {
            [p] if *p == r.plural() => Some((r, None, None)),
            ["namespaces", ns, p] if *p == r.plural() => Some((r, own(ns), None)),
            ["namespaces", ns, p, name] if *p == r.plural() => Some((r, own(ns), own(name))),
            _ => None,
        }
    })
}

pub(super) fn selected(query: &Query, obj: &Value) -> bool {
    match query
        .get("fieldSelector")
        .and_then(|s| s.strip_prefix("metadata.name="))
    {
        Some(name) => obj["metadata"]["name"] == name,
        None => true,
    }
}

pub(super) fn list(store: &Store, r: Resource, ns: Option<&str>, query: &Query) -> Value {
    let items: Vec<Value> = store
        .objects
        .iter()
        .filter(|((res, n, _), o)| *res == r && ns.is_none_or(|ns| ns == n) && selected(query, o))
        .map(|(_, o)| o.clone())
        .collect();
    json!({"kind": format!("{}List", r.kind()), "apiVersion": r.api_version(),
           "metadata": {"resourceVersion": store.rv.to_string()}, "items": items})
}

pub(super) fn watch_response(
    shared: &Shared,
    store: &Store,
    r: Resource,
    ns: Option<String>,
    query: &Query,
) -> Response {
    let rx = store.events.subscribe();
    let matches = {
        let (ns, query) = (ns.clone(), query.clone());
        move |e: &Event| {
            e.resource == r
                && ns.as_ref().is_none_or(|n| *n == e.ns)
                && selected(&query, &e.json["object"])
        }
    };
    let since = query
        .get("resourceVersion")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let initial: VecDeque<Value> = if since == 0 {
        let objects = list(store, r, ns.as_deref(), query)["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        objects
            .into_iter()
            .map(|o| json!({"type": "ADDED", "object": o}))
            .collect()
    } else {
        store
            .history
            .iter()
            .filter(|e| e.rv > since && matches(e))
            .map(|e| e.json.clone())
            .collect()
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1800);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let stop = shared.shutdown.clone();
    let live = futures_util::stream::unfold((rx, stop), move |(mut rx, mut stop)| {
        let matches = matches.clone();
        async move {
            loop {
                let event = tokio::select! {
                    ev = rx.recv() => ev,
                    _ = stop.wait_for(|s| *s) => return None,
                    _ = tokio::time::sleep_until(deadline) => return None,
                };
                match event {
                    Ok(e) if matches(&e) => return Some((e.json, (rx, stop))),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    let lines = futures_util::stream::iter(initial)
        .chain(live)
        .map(|ev| Ok::<_, std::convert::Infallible>(Bytes::from(format!("{ev}\n"))));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(lines))
        .expect("watch response")
}
