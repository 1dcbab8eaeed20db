//! Outgoing `wasi:http` through `builtin://http-client`: `http-fetch` fetches
//! from a loopback HTTP server started by the test. Refused (with a message
//! naming what to link, and nothing reaching the server) without a link, or
//! with a link to something that is not a built-in http-client on the host;
//! served once the component's `wasi:http/outgoing-handler` link targets a
//! running `builtin://http-client`.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers: a failed unwrap is the test failing; serde_json::Value indexing yields Null, never panics"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{TestLattice, WAIT, expose_http, http_get, http_until, scale, start_provider};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use trellis_interfaces::link::{DeleteInterfaceLinkDefinitionRequest, Link};
use trellis_tests::component_path;

/// A loopback HTTP/1.1 server answering `203` with `upstream saw {path}`.
/// Returns its port and how many requests it has served.
async fn upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
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
    (port, served)
}

/// Polls `GET path` until it is refused (`502`) with a body containing `needle`.
async fn refused_until(port: u16, path: &str, needle: &str) -> String {
    trellis_tests::eventually(WAIT, || async move {
        let (status, body) = http_get(port, path).await?;
        anyhow::ensure!(
            status == 502 && body.contains(needle),
            "GET {path} returned {status}: {body}"
        );
        Ok(body)
    })
    .await
    .unwrap()
}

fn client_link(target: &str) -> Link {
    Link {
        source_id: "fetcher".into(),
        target: target.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        interfaces: vec!["outgoing-handler".into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_through_builtin_http_client() {
    let (upstream_port, served) = upstream().await;
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let image = format!("file://{}", component_path("http-fetch").unwrap().display());
    scale(&mut l, host.id(), &image, "fetcher", 2)
        .await
        .unwrap();
    let port = expose_http(&mut l, host.id(), "fetcher").await.unwrap();
    let fetch = format!("/fetch?url=http%3A%2F%2F127.0.0.1%3A{upstream_port}%2Fhello%3Fx%3D1");

    // No link: refused before anything reaches the network, saying what to link.
    let body = http_until(port, &fetch, 502).await.unwrap();
    assert!(
        body.contains("HTTP request denied")
            && body.contains("component `fetcher`")
            && body.contains("wasi:http/outgoing-handler")
            && body.contains("builtin://http-client"),
        "{body}"
    );
    assert_eq!(served.load(Ordering::SeqCst), 0);

    // The built-in starts like the others: provider_started, inventory.
    let event = start_provider(&mut l, host.id(), "http-client", "builtin://http-client")
        .await
        .unwrap();
    assert_eq!(event["data"]["image_ref"], "builtin://http-client");
    let inventory = l.ctl.get_host_inventory(host.id()).await.unwrap();
    assert!(
        inventory
            .providers
            .iter()
            .any(|p| p.id == "http-client"
                && p.image_ref.as_deref() == Some("builtin://http-client")),
        "{:?}",
        inventory.providers
    );

    // Linked: the upstream's status and body come back.
    let resp = l.ctl.put_link(&client_link("http-client")).await.unwrap();
    assert!(resp.success, "link put rejected: {}", resp.message);
    let body = http_until(port, &fetch, 200).await.unwrap();
    assert_eq!(body, "203\nupstream saw /hello?x=1");
    assert!(served.load(Ordering::SeqCst) >= 1);

    // A refused connection is an error the component sees, not a trap.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let body = http_until(
        port,
        &format!("/fetch?url=http%3A%2F%2F127.0.0.1%3A{closed_port}%2F"),
        502,
    )
    .await
    .unwrap();
    assert!(body.contains("ConnectionRefused"), "{body}");

    // Unlinked: refused again, and nothing more reaches the server.
    let resp = l
        .ctl
        .delete_link(&DeleteInterfaceLinkDefinitionRequest {
            source_id: "fetcher".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
        })
        .await
        .unwrap();
    assert!(resp.success, "link del rejected: {}", resp.message);
    let body = http_until(port, &fetch, 502).await.unwrap();
    assert!(
        body.contains("HTTP request denied")
            && body.contains("has no `wasi:http/outgoing-handler` link named `default`"),
        "{body}"
    );
    let after = served.load(Ordering::SeqCst);
    let body = http_until(port, &fetch, 502).await.unwrap();
    assert!(body.contains("HTTP request denied"), "{body}");
    assert_eq!(served.load(Ordering::SeqCst), after);

    // Linked to something that is not a built-in: the request goes to it over
    // the lattice (wrpc:http, as to an http-client provider process); nothing
    // runs under that id, so it fails at once, naming the target.
    let resp = l.ctl.put_link(&client_link("nowhere")).await.unwrap();
    assert!(resp.success, "link put rejected: {}", resp.message);
    let body = refused_until(port, &fetch, "`nowhere`").await;
    assert!(body.contains("http-client provider `nowhere`"), "{body}");
    assert_eq!(served.load(Ordering::SeqCst), after);
}
