//! Issue 19, registry defects, each with a regression test named after it, against real
//! `docker-registry` processes with a proxy in front that rewrites answers: credentials
//! sent to a foreign token realm (defect 6), a registry trickling a byte every 2 s
//! (defect 3), a tag overwritten inside the compare-and-swap window (defect 7), and a
//! delete by digest racing a concurrent tagger (defect 4).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use relsync::config::{Config, RegistrySettings};
use relsync::manifest::{Located, Span};
use relsync::registry::{CredentialLookup, EnvLookup, Registries, TargetReader};

use crate::util::{Repo, TestRegistry, block_on};

fn settings(host: &str) -> RegistrySettings {
    RegistrySettings {
        host: Located::new(host.to_string(), Span::file("relsync.yaml")),
        insecure: true,
        ca_file: None,
        username_env: None,
        password_env: None,
        map_to: None,
        token_realms: Vec::new(),
        delete_by_digest: false,
        rate_limit: None,
    }
}

/// Serves `app` on a fresh loopback port from the test's runtime; returns `127.0.0.1:PORT`.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

/// Forwards `req` to `upstream` (`http://host:port`) and returns the answer as is.
async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    req: axum::extract::Request,
) -> axum::response::Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut rb = client.request(method, format!("{upstream}{path}"));
    for (k, v) in headers.iter() {
        if !matches!(
            k.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding" | "authorization"
        ) {
            rb = rb.header(k.clone(), v.clone());
        }
    }
    let resp = rb.body(body).send().await.expect("upstream");
    let mut out = axum::response::Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if !matches!(k.as_str(), "connection" | "transfer-encoding") {
            out = out.header(k.clone(), v.clone());
        }
    }
    out.body(axum::body::Body::from(
        resp.bytes().await.unwrap_or_default(),
    ))
    .unwrap()
}

/// Defect 6: a registry answering `WWW-Authenticate: Bearer realm="http://<another
/// loopback port>/token"` got the Basic credentials of its host sent to that realm, over
/// plain HTTP. Now the realm is asked anonymously, even when `tokenRealms` lists it (a
/// listed realm gets credentials over HTTPS only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_token_realm_receives_no_credentials() {
    let upstream = TestRegistry::start();
    let pushed = upstream
        .pusher()
        .push_image("app", Some("v1"), "realm")
        .await;

    // The other listener: records the Authorization of every token request.
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let record = seen.clone();
    let realm = serve(axum::Router::new().route(
        "/token",
        axum::routing::get(move |h: HeaderMap| {
            let record = record.clone();
            async move {
                let auth = h
                    .get(header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap().to_string());
                record.lock().unwrap().push(auth);
                r#"{"token":"anonymous-token"}"#
            }
        }),
    ))
    .await;
    // The registry's front: demands a token from the realm on the other port.
    let challenge = format!(
        "Bearer realm=\"http://{realm}/token\",service=\"front\",scope=\"repository:app:pull\""
    );
    let base = upstream.base_url();
    let client = reqwest::Client::new();
    let front = serve(
        axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (challenge, base, client) = (challenge.clone(), base.clone(), client.clone());
            async move {
                let authorized = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .is_some_and(|v| v == "Bearer anonymous-token");
                if !authorized {
                    return axum::response::Response::builder()
                        .status(StatusCode::UNAUTHORIZED)
                        .header(header::WWW_AUTHENTICATE, challenge)
                        .body(axum::body::Body::empty())
                        .unwrap();
                }
                forward(&client, &base, req).await
            }
        }),
    )
    .await;

    let env: EnvLookup = Arc::new(|k: &str| match k {
        "T_USER" => Some("alice".to_string()),
        "T_PASS" => Some("s3cret-password".to_string()),
        _ => None,
    });
    let realm_host = realm.clone();
    for listed in [Vec::new(), vec![realm_host]] {
        let mut entry = settings(&front);
        entry.username_env = Some("T_USER".into());
        entry.password_env = Some("T_PASS".into());
        entry.token_realms = listed.clone();
        let config = Config {
            registries: vec![entry],
            ..Default::default()
        };
        let r = Registries::from_config_with(
            &config,
            Path::new("/nonexistent"),
            CredentialLookup::from_env_fn(env.clone()),
        )
        .unwrap();
        let repo = r.repository(&format!("{front}/app")).unwrap();
        assert_eq!(repo.list_tags().await.unwrap(), vec!["v1".to_string()]);
        assert_eq!(
            repo.resolve_tag("v1").await.unwrap(),
            Some(pushed.manifest.clone())
        );
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        assert!(
            !seen.is_empty(),
            "the realm was never asked (listed: {listed:?})"
        );
        assert!(
            seen.iter().all(Option::is_none),
            "the foreign realm received credentials (listed: {listed:?}): {seen:?}"
        );
    }
}

/// A raw TCP proxy in front of `upstream` (`127.0.0.1:PORT`): forwards each request (one
/// per connection) and sends the answer back one byte every `every`. Returns its address
/// and the count of requests it took.
fn trickling_proxy(upstream: String, every: Duration) -> (String, Arc<Mutex<u64>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count: Arc<Mutex<u64>> = Arc::default();
    let counter = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let upstream = upstream.clone();
            *counter.lock().unwrap() += 1;
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let length = text
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                if conn.read_exact(&mut body).is_err() {
                    return;
                }
                // One request per connection, both ways.
                let mut request: String = text
                    .lines()
                    .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
                    .map(|l| format!("{l}\r\n"))
                    .collect();
                request.push_str("Connection: close\r\n\r\n");
                let Ok(mut up) = std::net::TcpStream::connect(&upstream) else {
                    return;
                };
                if up.write_all(request.as_bytes()).is_err() || up.write_all(&body).is_err() {
                    return;
                }
                let mut answer = Vec::new();
                let _ = up.read_to_end(&mut answer);
                for b in answer {
                    std::thread::sleep(every);
                    if conn.write_all(&[b]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, count)
}

/// Writes relsync.yaml (`hosts`, plain HTTP) and a stream from `source` to `target` with
/// one release and a channel tagging it `stable`, and commits.
fn write_repo(repo: &Repo, hosts: &[&str], extra: &str, source: &str, target: &str, digest: &str) {
    let registries: String = hosts
        .iter()
        .map(|h| format!("    - {{host: '{h}', insecure: true{extra}}}\n"))
        .collect();
    repo.write(
        "relsync.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: Config\nspec:\n  registries:\n{registries}"
        ),
    );
    repo.write(
        "manifests/stream.yaml",
        &format!(
            "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseStream\nmetadata: {{name: okd}}\nspec:\n  source: {source}\n  target: {target}\n  releases:\n    - {{version: 4.16.0, digest: '{digest}'}}\n"
        ),
    );
    repo.write(
        "manifests/stable.yaml",
        "apiVersion: relsync.dev/v1alpha1\nkind: ReleaseChannel\nmetadata: {name: okd-stable}\nspec:\n  stream: okd\n  tags: [stable]\n  versions: [4.16.0]\n",
    );
    repo.commit("stream");
}

/// Defect 3: a registry that trickles a byte every 2 s held any command forever
/// (`RELSYNC_READ_TIMEOUT` is an idle timeout, which a trickle never trips). Now every
/// request has a total deadline (`RELSYNC_REQUEST_TIMEOUT`, here 1 s): each try fails, the
/// retry policy gives up, and the command ends in bounded time, naming the timeout.
#[test]
fn a_registry_trickling_a_byte_every_two_seconds_fails_in_bounded_time() {
    let reg = TestRegistry::start();
    let pushed = block_on(reg.pusher().push_index("okd/ci", "4.16.0", "trickle"));
    let (proxy, requests) = trickling_proxy(reg.host(), Duration::from_secs(2));
    let repo = Repo::new();
    write_repo(
        &repo,
        &[&proxy, &reg.host()],
        "",
        &format!("{}/okd/ci", reg.host()),
        &format!("{proxy}/okd/release"),
        pushed.index.as_str(),
    );
    let started = Instant::now();
    let run = repo.relsync_env(&["plan"], &[("RELSYNC_REQUEST_TIMEOUT", "1")]);
    let took = started.elapsed();
    assert_ne!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    assert!(
        took < Duration::from_secs(60),
        "the trickle was waited out: {took:?}"
    );
    assert!(
        *requests.lock().unwrap() >= 2,
        "retried as a failed try: {}\n{}",
        run.stdout(),
        run.stderr()
    );
    assert!(
        run.stderr().contains("cannot reach") || run.stderr().contains("RELSYNC_REQUEST_TIMEOUT"),
        "{}",
        run.stderr()
    );

    // A bad value is refused up front, naming the variable.
    let bad = repo.relsync_env(&["plan"], &[("RELSYNC_REQUEST_TIMEOUT", "never")]);
    assert_ne!(bad.code(), 0);
    assert!(
        bad.stderr().contains("RELSYNC_REQUEST_TIMEOUT"),
        "{}",
        bad.stderr()
    );
}

/// What a tag of `repo` holds, read straight from the registry at `host`.
fn tag_digest(host: &str, repo: &str, tag: &str) -> Option<relsync::digest::Digest> {
    let config = Config {
        registries: vec![settings(host)],
        ..Default::default()
    };
    let r = Registries::from_config_with(
        &config,
        Path::new("/nonexistent"),
        CredentialLookup::new(Arc::new(|_: &str| None), Vec::new()),
    )
    .unwrap();
    let repo = r.repository(&format!("{host}/{repo}")).unwrap();
    block_on(repo.resolve_tag(tag)).unwrap()
}

/// A front for the registry at `upstream` (`http://host:port`) that forwards every request,
/// and runs `meanwhile(client, upstream, path)` right after forwarding a request for which
/// `hit(method, path)` holds, before answering it. Returns the front (stopped on drop), its
/// `127.0.0.1:PORT`, and the `METHOD path` of every request it forwarded.
#[allow(clippy::type_complexity)]
fn interfering_front<H, F, Fut>(
    upstream: String,
    hit: H,
    meanwhile: F,
) -> (crate::util::ServerThread, String, Arc<Mutex<Vec<String>>>)
where
    H: Fn(&axum::http::Method, &str) -> bool + Clone + Send + Sync + 'static,
    F: Fn(reqwest::Client, String, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let client = reqwest::Client::new();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let log_in = log.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (client, upstream, hit, meanwhile, log) = (
            client.clone(),
            upstream.clone(),
            hit.clone(),
            meanwhile.clone(),
            log_in.clone(),
        );
        async move {
            let path = req.uri().path().to_string();
            log.lock().unwrap().push(format!("{} {path}", req.method()));
            let hit = hit(req.method(), &path);
            let resp = forward(&client, &upstream, req).await;
            if hit {
                meanwhile(client, upstream, path).await;
            }
            resp
        }
    });
    (crate::util::ServerThread::serve(listener, app), addr, log)
}

/// Defect 7: a concurrent raw PUT of a floating tag inside relsync's check-to-write window
/// was overwritten or went unseen, exit 0, no conflict. Now the tag is read again after the
/// write: here the proxy lands another client's PUT of `stable` right after relsync's PUT
/// reached the registry and before relsync got the answer, and the sync reports that tag
/// as a conflict (exit 1), leaving the other client's write in place.
#[test]
fn a_tag_written_by_another_client_inside_the_cas_window_is_a_conflict() {
    let reg = TestRegistry::start();
    let pushed = block_on(reg.pusher().push_index("okd/ci", "4.16.0", "cas"));
    let other = block_on(reg.pusher().push_image("okd/release", None, "other-client"));
    let landed: Arc<Mutex<u32>> = Arc::default();
    let (landed_in, bytes) = (landed.clone(), other.manifest_bytes.clone());
    let (_front, front, _log) = interfering_front(
        reg.base_url(),
        |m, p| *m == axum::http::Method::PUT && p == "/v2/okd/release/manifests/stable",
        move |client, upstream, _path| {
            let (landed, bytes) = (landed_in.clone(), bytes.clone());
            async move {
                let resp = client
                    .put(format!("{upstream}/v2/okd/release/manifests/stable"))
                    .header("content-type", crate::util::OCI_MANIFEST)
                    .body(bytes)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
                *landed.lock().unwrap() += 1;
            }
        },
    );
    let repo = Repo::new();
    write_repo(
        &repo,
        &[&front, &reg.host()],
        "",
        &format!("{}/okd/ci", reg.host()),
        &format!("{front}/okd/release"),
        pushed.index.as_str(),
    );
    let run = repo.relsync(&["sync"]);
    assert_eq!(*landed.lock().unwrap(), 1, "{}", run.stderr());
    assert_eq!(run.code(), 1, "{}\n{}", run.stdout(), run.stderr());
    assert!(run.stderr().contains("1 conflict"), "{}", run.stderr());
    // The other client's write stands; relsync's own tag was written.
    assert_eq!(
        tag_digest(&reg.host(), "okd/release", "stable"),
        Some(other.manifest.clone())
    );
    assert_eq!(
        tag_digest(&reg.host(), "okd/release", "4.16.0"),
        Some(pushed.index.clone())
    );
}

/// Defect 4: deleting by digest destroyed a tag made meanwhile (distribution 2.8 cannot
/// delete a tag by name): with someone tagging the digest during a sync, the tag was lost
/// and the sync said `1 deleted; 0 conflicts`, exit 0. Now a delete by digest happens only
/// with `deleteByDigest: true`, and then only when a fresh read just before the DELETE
/// finds no other tag on the digest. Here the target holds two unclaimed tags `x1` and
/// `x2` on two images, and a concurrent tagger tags the image of whichever tag relsync
/// tries to delete second as `theirs`, while relsync's tag DELETE is answered.
#[test]
fn a_delete_by_digest_never_removes_a_tag_made_meanwhile() {
    for opt_in in [false, true] {
        let reg = TestRegistry::start();
        let pusher = reg.pusher();
        let pushed = block_on(pusher.push_index("okd/ci", "4.16.0", "prune"));
        let x1 = block_on(pusher.push_image("okd/release", Some("x1"), "x1"));
        let x2 = block_on(pusher.push_image("okd/release", Some("x2"), "x2"));
        let images = [("x1", x1.clone()), ("x2", x2.clone())];
        let tag_deletes: Arc<Mutex<u32>> = Arc::default();
        let tagged: Arc<Mutex<Option<String>>> = Arc::default();
        let (count, tagged_in) = (tag_deletes.clone(), tagged.clone());
        let (_front, front, log) = interfering_front(
            reg.base_url(),
            |m, p| {
                *m == axum::http::Method::DELETE
                    && p.starts_with("/v2/okd/release/manifests/")
                    && !p.contains("sha256:")
            },
            move |client, upstream, path| {
                let (count, tagged, images) = (count.clone(), tagged_in.clone(), images.clone());
                async move {
                    let n = {
                        let mut c = count.lock().unwrap();
                        *c += 1;
                        *c
                    };
                    if n != 2 {
                        return;
                    }
                    let tag = path.rsplit('/').next().unwrap().to_string();
                    let (_, image) = images.iter().find(|(t, _)| *t == tag).unwrap();
                    let resp = client
                        .put(format!("{upstream}/v2/okd/release/manifests/theirs"))
                        .header("content-type", crate::util::OCI_MANIFEST)
                        .body(image.manifest_bytes.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 201);
                    *tagged.lock().unwrap() = Some(tag);
                }
            },
        );
        let repo = Repo::new();
        write_repo(
            &repo,
            &[&front, &reg.host()],
            if opt_in { ", deleteByDigest: true" } else { "" },
            &format!("{}/okd/ci", reg.host()),
            &format!("{front}/okd/release"),
            pushed.index.as_str(),
        );
        let run = repo.relsync(&["sync", "--prune"]);
        let stderr = run.stderr();
        let second = tagged.lock().unwrap().clone().expect("the tagger ran");
        let digest_of = |t: &str| {
            if t == "x1" {
                x1.manifest.clone()
            } else {
                x2.manifest.clone()
            }
        };
        let first = if second == "x1" { "x2" } else { "x1" };
        // The tag made meanwhile is never lost, and the sync does not claim success.
        assert_eq!(
            tag_digest(&reg.host(), "okd/release", "theirs"),
            Some(digest_of(&second)),
            "opt-in {opt_in}: {stderr}"
        );
        assert_eq!(run.code(), 1, "opt-in {opt_in}: {}\n{stderr}", run.stdout());
        let by_digest: Vec<String> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("DELETE ") && l.contains("sha256:"))
            .cloned()
            .collect();
        if opt_in {
            // The first went by digest; the second was re-read and left, naming `theirs`.
            assert!(stderr.contains("would also remove tag theirs"), "{stderr}");
            assert_eq!(
                by_digest,
                vec![format!(
                    "DELETE /v2/okd/release/manifests/{}",
                    digest_of(first)
                )]
            );
            assert_eq!(tag_digest(&reg.host(), "okd/release", first), None);
            assert_eq!(
                tag_digest(&reg.host(), "okd/release", &second),
                Some(digest_of(&second))
            );
        } else {
            // Off: nothing deleted by digest, both tags left and the reason reported.
            assert!(by_digest.is_empty(), "{by_digest:?}");
            assert!(stderr.contains("deleteByDigest: true"), "{stderr}");
            assert!(stderr.contains("2 not deleted"), "{stderr}");
            assert_eq!(
                tag_digest(&reg.host(), "okd/release", "x1"),
                Some(x1.manifest.clone())
            );
            assert_eq!(
                tag_digest(&reg.host(), "okd/release", "x2"),
                Some(x2.manifest.clone())
            );
        }
    }
}
