//! `wasi:http` through provider *processes* instead of the host's built-ins:
//! the `http-server-provider` (on another host than the component) calls the
//! component's `wrpc:http/incoming-handler@0.1.0.handle`; a component's
//! `wasi:http/outgoing-handler` linked to the `http-client-provider` is
//! carried as `wrpc:http/outgoing-handler@0.1.0.handle`. Routing by address,
//! path and host header; a large body streamed both ways. Real nats-server,
//! real hosts, real components.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers: a failed unwrap is the test failing; serde_json::Value indexing yields Null, never panics"
)]

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use common::{
    TestLattice, WAIT, expose_http, http_get, image, put_link, scale, start_provider,
    start_provider_with_config,
};
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use trellis_interfaces::link::{DeleteInterfaceLinkDefinitionRequest, Link};

fn provider_ref(name: &str, env_var: &str) -> String {
    let path = trellis_tests::host::workspace_binary(name, env_var, name).unwrap();
    format!("file://{}", path.display())
}

fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

async fn put_config(l: &TestLattice, name: &str, values: &[(&str, &str)]) {
    let values: HashMap<String, String> = values
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let resp = l.ctl.put_config(name, &values).await.unwrap();
    assert!(resp.success, "config put rejected: {}", resp.message);
}

/// Link from the http-server provider `server` to `component` (link name:
/// the component id, so one server can link several components).
fn serve_link(server: &str, component: &str, source_config: &str) -> Link {
    Link {
        source_id: server.into(),
        target: component.into(),
        name: component.into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        interfaces: vec!["incoming-handler".into()],
        source_config: vec![source_config.into()],
        target_config: vec![],
    }
}

/// Sends `req` on a new HTTP/1.1 connection; returns status and body.
async fn send<B>(port: u16, req: hyper::Request<B>) -> (u16, Bytes)
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

/// One HTTP/1.1 request; returns status and body.
async fn request(port: u16, method: &str, path: &str, host: &str, body: Bytes) -> (u16, Bytes) {
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .body(Full::new(body))
        .unwrap();
    send(port, req).await
}

/// Polls `GET path` (with `host` as Host header) until it answers `want`.
async fn until(port: u16, path: &str, host: &str, want: u16) -> String {
    until_says(port, path, host, want, "").await
}

/// As [`until`], until the body also contains `text` (a state reached
/// through others that answer the same status with another body).
async fn until_says(port: u16, path: &str, host: &str, want: u16, text: &str) -> String {
    let host = host.to_string();
    trellis_tests::eventually(WAIT, || {
        let host = host.clone();
        async move {
            let connect = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
            anyhow::ensure!(connect.is_ok(), "nothing listens on {port} yet");
            drop(connect);
            let (status, body) = request(port, "GET", path, &host, Bytes::new()).await;
            let body = String::from_utf8_lossy(&body).into_owned();
            anyhow::ensure!(
                status == want && body.contains(text),
                "GET {path} returned {status}: {body}"
            );
            Ok(body)
        }
    })
    .await
    .unwrap()
}

async fn get(port: u16, path: &str) -> String {
    let (status, body) = http_get(port, path).await.unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// `builtin://keyvalue-memory` as `kv` on `host`, linked from `counter`.
async fn counter_on_memory_kv(l: &mut TestLattice, host: &str) {
    start_provider(l, host, "kv", "builtin://keyvalue-memory")
        .await
        .unwrap();
    put_link(
        l,
        Link {
            source_id: "counter".into(),
            target: "kv".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["store".into(), "atomics".into(), "batch".into()],
            ..Default::default()
        },
    )
    .await;
}

/// kv-counter on host A (built-in keyvalue), the http-server provider process
/// on host B: every request crosses the lattice as wrpc:http.
#[tokio::test(flavor = "multi_thread")]
async fn kv_counter_through_the_http_server_provider_on_another_host() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    scale(&mut l, a.id(), &image("kv-counter"), "counter", 8)
        .await
        .unwrap();
    counter_on_memory_kv(&mut l, a.id()).await;
    let server = provider_ref("http-server-provider", "HTTP_SERVER_PROVIDER_BIN");
    start_provider(&mut l, b.id(), "httpserver", &server)
        .await
        .unwrap();
    let port = free_port();
    put_config(
        &l,
        "counter-http",
        &[("address", &format!("127.0.0.1:{port}"))],
    )
    .await;
    put_link(&l, serve_link("httpserver", "counter", "counter-http")).await;

    let host = format!("127.0.0.1:{port}");
    assert_eq!(until(port, "/a", &host, 200).await, "a: 1");
    assert_eq!(get(port, "/a").await, "a: 2");
    // A GET's request is complete (no body, no trailers): it reaches the
    // component's host whole (`trellis-framing: 2`, the body and trailers
    // inline) and the response comes back in one message — 2 messages, no
    // handshake, no nested params.
    // (A `>` observer under load has missed a message of a call that
    // succeeded: up to three GETs, until one shows its request.)
    let mut observed = false;
    for i in 0..3 {
        let seen = observe_wrpc_http(&l, get(port, &format!("/b{i}"))).await;
        assert_eq!(seen.result, format!("b{i}: 1"));
        assert!(
            !seen.subjects.iter().any(|s| s.contains(".params")),
            "{:#?}",
            seen.subjects
        );
        let [request] = seen.requests.as_slice() else {
            continue;
        };
        let framing = request
            .headers
            .as_ref()
            .and_then(|h| h.get("trellis-framing"))
            .map(|v| v.as_str().to_string());
        assert_eq!(framing.as_deref(), Some("2"), "{request:?}");
        assert_eq!(seen.answers, 1, "{:#?}", seen.subjects);
        observed = true;
        break;
    }
    assert!(observed, "no GET's wrpc:http request was observed");
    let calls = (0..40).map(|_| http_get(port, "/c"));
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().0, 200);
    }
    assert_eq!(get(port, "/c").await, "c: 41");
    // No built-in HTTP server runs anywhere: every request crossed the
    // lattice from the provider on host B to the component on host A.

    // The component stops: the provider answers 503 and says why.
    let resp = l
        .ctl
        .scale_component(&trellis_interfaces::ctl::ScaleComponentCommand {
            component_ref: image("kv-counter"),
            component_id: "counter".into(),
            max_instances: 0,
            host_id: a.id().into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
    // While host A drains the component, its own answers ("… no longer
    // runs on this host", "… is stopping") can come first; then nothing
    // serves it, and the provider says so.
    until_says(
        port,
        "/a",
        &host,
        503,
        "component `counter` could not be reached: nothing serves",
    )
    .await;

    // The link goes: the listener closes.
    let resp = l
        .ctl
        .delete_link(&DeleteInterfaceLinkDefinitionRequest {
            source_id: "httpserver".into(),
            name: "counter".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
    trellis_tests::eventually(WAIT, || async move {
        anyhow::ensure!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err(),
            "still listening"
        );
        Ok(())
    })
    .await
    .unwrap();
}

/// The wrpc:http messages of one exchange, seen by a `>` subscriber.
struct Observed<T> {
    result: T,
    /// Requests on `…incoming-handler@0.1.0.handle`.
    requests: Vec<async_nats::Message>,
    /// Messages to the requests' reply subjects (and below).
    answers: usize,
    subjects: Vec<String>,
}

async fn observe_wrpc_http<T>(l: &TestLattice, exchange: impl Future<Output = T>) -> Observed<T> {
    let observer = l.nats.connect().await.unwrap();
    let mut all = observer.subscribe(">").await.unwrap();
    trellis_tests::nats::synced(&observer).await.unwrap();
    let result = exchange.await;
    let mut seen = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(300), all.next()).await
    {
        if !trellis_tests::nats::is_sync_probe(&message) {
            seen.push(message);
        }
    }
    let requests: Vec<_> = seen
        .iter()
        .filter(|m| {
            m.subject
                .ends_with("wrpc:http/incoming-handler@0.1.0.handle")
        })
        .cloned()
        .collect();
    let replies: Vec<String> = requests
        .iter()
        .filter_map(|m| m.reply.as_ref().map(ToString::to_string))
        .collect();
    let answers = seen
        .iter()
        .filter(|m| replies.iter().any(|r| m.subject.starts_with(r.as_str())))
        .count();
    Observed {
        result,
        requests,
        answers,
        subjects: seen.iter().map(|m| m.subject.to_string()).collect(),
    }
}

/// Starts provider `id` with the named config `id` on `host` and waits for
/// `provider_started` (links put before the process listens for them could
/// be missed).
async fn start_configured(l: &mut TestLattice, host: &str, id: &str, image_ref: &str) {
    start_provider_with_config(l, host, id, image_ref, &[id])
        .await
        .unwrap();
}

/// One provider in path mode and one in host mode, routing to two
/// components on another host.
#[tokio::test(flavor = "multi_thread")]
async fn the_http_server_provider_routes_by_path_and_by_host() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    scale(&mut l, a.id(), &image("http-hello"), "hello", 2)
        .await
        .unwrap();
    scale(&mut l, a.id(), &image("kv-counter"), "counter", 2)
        .await
        .unwrap();
    counter_on_memory_kv(&mut l, a.id()).await;
    let server = provider_ref("http-server-provider", "HTTP_SERVER_PROVIDER_BIN");

    // Path mode: `/` to the counter, `/hello` (and below) to http-hello.
    let path_port = free_port();
    let path_address = format!("127.0.0.1:{path_port}");
    put_config(
        &l,
        "by-path",
        &[("routing_mode", "path"), ("default_address", &path_address)],
    )
    .await;
    start_configured(&mut l, b.id(), "by-path", &server).await;
    put_config(&l, "path-hello", &[("path", "/hello")]).await;
    put_config(&l, "path-root", &[("path", "/")]).await;
    put_link(&l, serve_link("by-path", "hello", "path-hello")).await;
    put_link(&l, serve_link("by-path", "counter", "path-root")).await;
    assert_eq!(until(path_port, "/x", &path_address, 200).await, "x: 1");
    // http-hello sees the whole path: `/hello` is not one of its routes.
    let body = until(path_port, "/hello", &path_address, 404).await;
    assert!(body.contains("not found: /hello"), "{body}");
    assert_eq!(get(path_port, "/x").await, "x: 2");

    // Host mode: the Host header picks the component (its port ignored).
    let host_port = free_port();
    put_config(
        &l,
        "by-host",
        &[
            ("routing_mode", "host"),
            ("default_address", &format!("127.0.0.1:{host_port}")),
        ],
    )
    .await;
    start_configured(&mut l, b.id(), "by-host", &server).await;
    put_config(&l, "host-hello", &[("host", "hello.test")]).await;
    put_config(&l, "host-counter", &[("host", "count.test")]).await;
    put_link(&l, serve_link("by-host", "hello", "host-hello")).await;
    put_link(&l, serve_link("by-host", "counter", "host-counter")).await;
    assert_eq!(
        until(host_port, "/", "hello.test:8080", 200).await,
        "Hello from Trellis!\n"
    );
    assert_eq!(until(host_port, "/y", "count.test", 200).await, "y: 1");
    let body = until(host_port, "/", "other.test", 404).await;
    assert!(
        body.contains("no component is linked to this route"),
        "{body}"
    );
}

/// `blobby` (2 instances) on `host`, linked to `builtin://blobstore-fs`
/// (`blobstore`) storing under `root`.
async fn blobby_on_fs(l: &mut TestLattice, host: &str, root: &std::path::Path) {
    scale(l, host, &image("blobby"), "blobby", 2).await.unwrap();
    start_provider(l, host, "blobstore", "builtin://blobstore-fs")
        .await
        .unwrap();
    put_config(l, "blobby-root", &[("ROOT", &root.display().to_string())]).await;
    put_link(
        l,
        Link {
            source_id: "blobby".into(),
            target: "blobstore".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "blobstore".into(),
            interfaces: vec!["blobstore".into()],
            target_config: vec!["blobby-root".into()],
            ..Default::default()
        },
    )
    .await;
}

/// An 8 MiB body up through the provider to blobby (built-in blobstore),
/// and back down: both directions stream over wrpc:http.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_body_streams_through_the_http_server_provider() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    blobby_on_fs(&mut l, a.id(), root.path()).await;
    let server = provider_ref("http-server-provider", "HTTP_SERVER_PROVIDER_BIN");
    start_provider(&mut l, b.id(), "httpserver", &server)
        .await
        .unwrap();
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    put_config(&l, "blobby-http", &[("address", &host)]).await;
    put_link(&l, serve_link("httpserver", "blobby", "blobby-http")).await;
    until(port, "/", &host, 200).await;

    let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let big = Bytes::from(big);
    let (status, body) = request(port, "PUT", "/big", &host, big.clone()).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let (status, body) = request(port, "GET", "/big", &host, Bytes::new()).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), big.len());
    assert!(body == big, "the body came back changed");
}

/// A loopback HTTP/1.1 server answering `203` with `upstream saw {path}`.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| {
                    let body = format!(
                        "upstream saw {}",
                        req.uri().path_and_query().map_or("/", |p| p.as_str())
                    );
                    async move {
                        hyper::Response::builder()
                            .status(203)
                            .body(Full::new(Bytes::from(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

/// http-fetch on host A, the http-client provider process on host B: the
/// component's outgoing request crosses the lattice as wrpc:http.
#[tokio::test(flavor = "multi_thread")]
async fn fetch_through_the_http_client_provider_on_another_host() {
    let upstream_port = upstream().await;
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    scale(&mut l, a.id(), &image("http-fetch"), "fetcher", 2)
        .await
        .unwrap();
    let port = expose_http(&mut l, a.id(), "fetcher").await.unwrap();
    let client = provider_ref("http-client-provider", "HTTP_CLIENT_PROVIDER_BIN");
    start_provider(&mut l, b.id(), "httpclient", &client)
        .await
        .unwrap();
    put_link(
        &l,
        Link {
            source_id: "fetcher".into(),
            target: "httpclient".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            interfaces: vec!["outgoing-handler".into()],
            ..Default::default()
        },
    )
    .await;
    let fetch = format!("/fetch?url=http%3A%2F%2F127.0.0.1%3A{upstream_port}%2Fhello%3Fx%3D1");
    let host = format!("127.0.0.1:{port}");
    assert_eq!(
        until(port, &fetch, &host, 200).await,
        "203\nupstream saw /hello?x=1"
    );

    // A refused connection comes back as the wasi:http error code.
    let closed_port = free_port();
    let body = until(
        port,
        &format!("/fetch?url=http%3A%2F%2F127.0.0.1%3A{closed_port}%2F"),
        &host,
        502,
    )
    .await;
    assert!(body.contains("ConnectionRefused"), "{body}");

    // The provider stops: the component gets an error naming it.
    let resp = l
        .ctl
        .stop_provider(&trellis_interfaces::ctl::StopProviderCommand {
            provider_id: "httpclient".into(),
            host_id: b.id().into(),
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
    let body = until(port, &fetch, &host, 502).await;
    assert!(
        body.contains("http-client provider `httpclient`") && body.contains("fetcher"),
        "{body}"
    );
}

/// A request body over `max_request_body_bytes` is refused with 413 by the
/// built-in server and by the provider process alike, whether its length
/// is declared or it arrives chunked, and nothing of it is stored.
#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_get_413_and_nothing_is_stored() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    blobby_on_fs(&mut l, a.id(), root.path()).await;
    put_config(&l, "limited", &[("max_request_body_bytes", "1024")]).await;
    let builtin_port = free_port();
    let provider_port = free_port();
    start_provider_with_config(
        &mut l,
        a.id(),
        "builtin-http",
        "builtin://http-server",
        &["limited"],
    )
    .await
    .unwrap();
    let server = provider_ref("http-server-provider", "HTTP_SERVER_PROVIDER_BIN");
    start_provider_with_config(&mut l, b.id(), "provider-http", &server, &["limited"])
        .await
        .unwrap();
    for (server, port) in [
        ("builtin-http", builtin_port),
        ("provider-http", provider_port),
    ] {
        let config = format!("{server}-address");
        put_config(&l, &config, &[("address", &format!("127.0.0.1:{port}"))]).await;
        put_link(&l, serve_link(server, "blobby", &config)).await;
    }
    for (server, port) in [
        ("builtin-http", builtin_port),
        ("provider-http", provider_port),
    ] {
        let host = format!("127.0.0.1:{port}");
        until(port, "/", &host, 200).await;
        let at_limit = Bytes::from(vec![b'a'; 1024]);
        let (status, body) = request(port, "PUT", "/fits", &host, at_limit).await;
        assert_eq!(status, 201, "{server}: {}", String::from_utf8_lossy(&body));

        let over = Bytes::from(vec![b'b'; 2048]);
        let (status, body) = request(port, "PUT", "/declared", &host, over.clone()).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 413, "{server}: {text}");
        assert!(
            text.contains("limit of 1024 bytes") && text.contains("max_request_body_bytes"),
            "{server}: {text}"
        );

        let (status, body) = chunked_put(port, "/chunked", &host, over).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 413, "{server}: {text}");
        assert!(text.contains("max_request_body_bytes"), "{server}: {text}");

        for name in ["declared", "chunked"] {
            let (status, _) = request(port, "GET", &format!("/{name}"), &host, Bytes::new()).await;
            assert_eq!(status, 404, "{server}: `{name}` must not have been stored");
        }
        let (status, body) = request(port, "GET", "/fits", &host, Bytes::new()).await;
        assert_eq!((status, body.len()), (200, 1024), "{server}");
    }
    // The provider path's stalled upload ends at the call's deadline (the
    // wire has no cancel), and its temporary file goes with it.
    let root = root.path().to_path_buf();
    trellis_tests::eventually(WAIT, || {
        let stored = walk(&root);
        async move {
            anyhow::ensure!(stored.len() == 1, "only `fits` may be on disk: {stored:?}");
            Ok(())
        }
    })
    .await
    .unwrap();
}

/// `PUT` with a chunked body (no `content-length`), in 256-byte chunks.
async fn chunked_put(port: u16, path: &str, host: &str, body: Bytes) -> (u16, Bytes) {
    let chunks: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> = body
        .chunks(256)
        .map(|c| Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let req = hyper::Request::builder()
        .method("PUT")
        .uri(path)
        .header("host", host)
        .body(http_body_util::StreamBody::new(futures::stream::iter(
            chunks,
        )))
        .unwrap();
    send(port, req).await
}

/// Every regular file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}
