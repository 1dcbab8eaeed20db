//! Trellis ↔ Trellis: async params that are already complete (an empty or
//! small body, a ready trailer) travel inline in the request
//! (`trellis-framing: 2`, `trellis-nested` headers), so the call takes the
//! 2-message compact exchange; bigger or slower ones, and upstream peers,
//! take the standard protocol.

// Test bodies run through `common::run` (large stacks), so they are not
// `#[test]` functions themselves and clippy's in-test allowances miss them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use common::{Counter, api, serve_echo, trellis};
use futures::{Stream, StreamExt as _};
use trellis_tests::NatsServer;
use trellis_wrpc::{TargetClient, Transport, headers};

type Body = Pin<Box<dyn Stream<Item = Bytes> + Send>>;
type Trailer = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

fn upload(chunks: Vec<Bytes>, trailer: Option<&str>, name: &str) -> api::Upload {
    let trailer = trailer.map(str::to_string);
    api::Upload {
        body: Box::pin(futures::stream::iter(chunks)) as Body,
        trailer: Box::pin(async move { trailer }) as Trailer,
        name: name.to_string(),
    }
}

/// Calls `take-upload` and waits for the param transfer too.
async fn take(client: &TargetClient, u: api::Upload) -> (u64, u64, Option<String>, String) {
    let (answer, io) = api::take_upload(client, None, u).await.unwrap();
    if let Some(io) = io {
        io.await.unwrap();
    }
    answer
}

fn expected(chunks: &[Bytes]) -> (u64, u64) {
    let len = chunks.iter().map(|c| c.len() as u64).sum();
    let sum = chunks
        .iter()
        .flat_map(|c| c.iter())
        .map(|b| u64::from(*b))
        .sum();
    (len, sum)
}

const INSTANCE: &str = "trellis-test:interop/api@0.1.0";

/// A Trellis transport whose calls to `take-upload` hold complete async
/// params for sending inline.
async fn declaring(nats: &NatsServer) -> Transport {
    let transport = trellis(nats).await;
    assert!(transport.declare_async_params(
        INSTANCE,
        "take-upload",
        [[Some(0), Some(0)], [Some(0), Some(1)]]
    ));
    transport
}

async fn serving_pair(nats: &NatsServer) -> (Transport, common::Serving, Transport, TargetClient) {
    let server = trellis(nats).await;
    let serving =
        serve_echo(&server.server(common::LATTICE_PREFIX, Some(common::LATTICE_PREFIX.into())))
            .await;
    let transport = declaring(nats).await;
    let client = transport.client().target(common::LATTICE_PREFIX);
    (server, serving, transport, client)
}

/// Runs `call` under a `>` observer: every attempt must show nothing but the
/// request and its one reply (no handshake, no params streams). Under load
/// the observer has missed a message of a call that succeeded (a miscount
/// by the observer, see `interop.rs`), so up to three calls are observed
/// until one shows both; that request is returned.
async fn observe_two_messages<F: Future<Output = ()>>(
    nats: &NatsServer,
    call: impl Fn() -> F,
) -> async_nats::Message {
    let mut counts = Vec::new();
    for _ in 0..3 {
        let mut counter = Counter::start(nats).await;
        call().await;
        let seen = counter.drain(Duration::from_millis(500)).await;
        let subjects: Vec<_> = seen.iter().map(|m| m.subject.to_string()).collect();
        let request = seen.iter().find(|m| m.subject.ends_with(".take-upload"));
        let replies = seen
            .iter()
            .filter(|m| m.subject.starts_with("_INBOX.") && m.subject.split('.').count() == 3)
            .count();
        assert!(seen.len() <= 2 && replies <= 1, "{subjects:#?}");
        assert_eq!(
            seen.len(),
            replies + usize::from(request.is_some()),
            "{subjects:#?}"
        );
        counts.push(seen.len());
        if let (Some(request), 1) = (request, replies) {
            return request.clone();
        }
    }
    panic!("no call showed its request and reply: {counts:?}");
}

#[test]
fn complete_async_params_take_two_messages() {
    common::run(complete_async_params_take_two_messages_body());
}

async fn complete_async_params_take_two_messages_body() {
    let nats = NatsServer::start().await.unwrap();
    let (server, _serving, transport, client) = serving_pair(&nats).await;

    // Empty body, ready trailer: like a GET through the http-server provider.
    let request = observe_two_messages(&nats, || async {
        assert_eq!(
            take(&client, upload(Vec::new(), None, "get")).await,
            (0, 0, None, "get".to_string())
        );
    })
    .await;
    let hdrs = request.headers.as_ref().unwrap();
    assert_eq!(hdrs.get(headers::FRAMING).unwrap().as_str(), "2");
    let nested: Vec<&str> = hdrs.get_all(headers::NESTED).map(|v| v.as_str()).collect();
    // The empty stream is its end byte (`AA==`), the trailer future's value
    // `none` too: both paths of the record are there.
    assert_eq!(nested.len(), 2, "{nested:?}");
    assert!(nested.contains(&"0.0:AA=="), "{nested:?}");
    assert!(nested.contains(&"0.1:AA=="), "{nested:?}");

    // A small body and a trailer, inline too.
    let chunks: Vec<Bytes> = (1..=5u8).map(|i| Bytes::from(vec![i; 300])).collect();
    let (len, sum) = expected(&chunks);
    observe_two_messages(&nats, || async {
        assert_eq!(
            take(&client, upload(chunks.clone(), Some("x-sum"), "post")).await,
            (len, sum, Some("x-sum".to_string()), "post".to_string())
        );
    })
    .await;

    // Every call was inline and compact, on both sides.
    let stats = transport.stats();
    let calls = stats.inline_nested_calls;
    assert!(calls >= 2, "{stats:?}");
    assert_eq!(stats.inline_nested_calls, calls, "{stats:?}");
    assert_eq!(stats.compact_calls, calls, "{stats:?}");
    assert_eq!(stats.standard_calls, 0, "{stats:?}");
    assert_eq!(stats.held_fallbacks, 0, "{stats:?}");
    let served = server.stats();
    assert_eq!(served.served_inline_nested, calls, "{served:?}");
    assert_eq!(served.served_standard, 0, "{served:?}");
    assert_eq!(transport.open_calls(), 0);
}

#[test]
fn big_or_slow_async_params_take_the_standard_protocol() {
    common::run(big_or_slow_async_params_take_the_standard_protocol_body());
}

async fn big_or_slow_async_params_take_the_standard_protocol_body() {
    let nats = NatsServer::start().await.unwrap();
    let (server, _serving, transport, client) = serving_pair(&nats).await;

    // Beyond the inline limit (32 KiB): the request goes out when the limit
    // is crossed, what was buffered is replayed after the handshake.
    let chunks: Vec<Bytes> = (0..40u32)
        .map(|i| Bytes::from(vec![(i % 251) as u8; 4096]))
        .collect();
    let (len, sum) = expected(&chunks);
    assert_eq!(
        take(&client, upload(chunks, Some("big"), "put")).await,
        (len, sum, Some("big".to_string()), "put".to_string())
    );
    let stats = transport.stats();
    assert_eq!(stats.held_fallbacks, 1, "{stats:?}");
    assert_eq!(stats.standard_calls, 1, "{stats:?}");
    assert_eq!(stats.inline_nested_calls, 0, "{stats:?}");

    // A trickling upload: the first chunk, then nothing for 400 ms. The
    // window (5 ms) sends the request and the first chunk long before the
    // stream goes on — a peer waiting for that chunk is not stuck.
    let mut counter = Counter::start(&nats).await;
    let started = std::time::Instant::now();
    let body =
        futures::stream::iter([Bytes::from_static(b"first")]).chain(futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Bytes::from_static(b"second")
        }));
    let u = api::Upload {
        body: Box::pin(body) as Body,
        trailer: Box::pin(async { Some("late".to_string()) }) as Trailer,
        name: "slow".to_string(),
    };
    let call = tokio::spawn({
        let client = client.clone();
        async move { take(&client, u).await }
    });
    let first_chunk = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let seen = counter.drain(Duration::from_millis(20)).await;
            if seen
                .iter()
                .any(|m| m.subject.ends_with(".params.0.0") && !m.payload.is_empty())
            {
                return started.elapsed();
            }
        }
    })
    .await
    .expect("the first chunk never went out");
    assert!(first_chunk < Duration::from_millis(300), "{first_chunk:?}");
    let sum = b"firstsecond".iter().map(|b| u64::from(*b)).sum::<u64>();
    assert_eq!(
        call.await.unwrap(),
        (11, sum, Some("late".to_string()), "slow".to_string())
    );
    let stats = transport.stats();
    assert_eq!(stats.held_fallbacks, 2, "{stats:?}");
    assert_eq!(server.stats().served_standard, 2);
    assert_eq!(transport.open_calls(), 0);
    common::eventually_zero(|| server.open_calls()).await;

    // Holding disabled: the standard protocol at once.
    let plain = common::trellis_with(
        &nats,
        trellis_wrpc::TransportOptions {
            nested_inline_wait: Duration::ZERO,
            ..Default::default()
        },
    )
    .await;
    plain.declare_async_params(INSTANCE, "take-upload", [[Some(0), Some(0)]]);
    let plain_client = plain.client().target(common::LATTICE_PREFIX);
    assert_eq!(
        take(&plain_client, upload(Vec::new(), None, "off")).await,
        (0, 0, None, "off".to_string())
    );
    let stats = plain.stats();
    assert_eq!(
        (stats.standard_calls, stats.held_fallbacks),
        (1, 0),
        "{stats:?}"
    );
}

#[test]
fn inline_async_params_interoperate_with_upstream() {
    common::run(inline_async_params_interoperate_with_upstream_body());
}

async fn inline_async_params_interoperate_with_upstream_body() {
    let nats = NatsServer::start().await.unwrap();

    // Trellis client → upstream server: the headers are ignored, the
    // handshake comes back, the inline bytes follow on the standard subjects.
    let upstream_server = common::upstream(&nats, "default.up", Some("default.up")).await;
    let _serving = serve_echo(&upstream_server).await;
    let transport = declaring(&nats).await;
    let client = transport.client().target("default.up");
    assert_eq!(
        take(&client, upload(Vec::new(), None, "get")).await,
        (0, 0, None, "get".to_string())
    );
    let chunks: Vec<Bytes> = (1..=3u8).map(|i| Bytes::from(vec![i; 500])).collect();
    let (len, sum) = expected(&chunks);
    assert_eq!(
        take(&client, upload(chunks.clone(), Some("t"), "post")).await,
        (len, sum, Some("t".to_string()), "post".to_string())
    );
    let stats = transport.stats();
    assert_eq!(stats.inline_nested_calls, 2, "{stats:?}");
    assert_eq!(stats.standard_calls, 2, "{stats:?}");
    assert_eq!(stats.compact_calls, 0, "{stats:?}");
    assert_eq!(transport.open_calls(), 0);

    // Upstream client → Trellis server: the standard protocol, as before.
    let server = trellis(&nats).await;
    let _trellis_serving =
        serve_echo(&server.server("default.tr", Some("default.tr".into()))).await;
    let upstream_client = common::upstream(&nats, "default.tr", None).await;
    let (answer, io) = api::take_upload(&upstream_client, None, upload(chunks, None, "up"))
        .await
        .unwrap();
    if let Some(io) = io {
        io.await.unwrap();
    }
    assert_eq!(answer, (len, sum, None, "up".to_string()));
    let served = server.stats();
    assert_eq!(
        (served.served_standard, served.served_inline_nested),
        (1, 0),
        "{served:?}"
    );
}

/// A raw `take-upload` request with `hdrs`; the first answer.
async fn raw_upload(
    nats: &async_nats::Client,
    hdrs: &[(&str, &str)],
    payload: &'static [u8],
) -> async_nats::Message {
    let mut map = async_nats::HeaderMap::new();
    for (k, v) in hdrs {
        map.append(*k, *v);
    }
    let subject = format!(
        "{}.wrpc.0.0.1.{INSTANCE}.take-upload",
        common::LATTICE_PREFIX
    );
    tokio::time::timeout(
        Duration::from_secs(3),
        nats.request_with_headers(subject, map, Bytes::from_static(payload)),
    )
    .await
    .expect("no answer within 3 s")
    .unwrap()
}

fn header<'a>(message: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
}

#[test]
fn malformed_inline_async_params_get_error_replies() {
    common::run(malformed_inline_async_params_get_error_replies_body());
}

async fn malformed_inline_async_params_get_error_replies_body() {
    let nats = NatsServer::start().await.unwrap();
    let server = trellis(&nats).await;
    let _serving = serve_echo(&server.server(common::LATTICE_PREFIX, None)).await;
    let raw = nats.connect().await.unwrap();
    // Sync params of `take-upload`: pending body, pending trailer, "n".
    let payload: &'static [u8] = b"\x00\x00\x01n";
    let framing = (headers::FRAMING, "2");

    for bad in [
        vec![(headers::NESTED, "0.0:!!!"), (headers::NESTED, "0.1:AA==")],
        vec![(headers::NESTED, "0.0"), (headers::NESTED, "0.1:AA==")],
        vec![(headers::NESTED, "0.x:AA=="), (headers::NESTED, "0.1:AA==")],
        vec![(headers::NESTED, "0.0:AA=="), (headers::NESTED, "0.0:AA==")],
        // A declared path missing.
        vec![(headers::NESTED, "0.0:AA==")],
        vec![],
    ] {
        let mut hdrs = vec![framing];
        hdrs.extend(bad.iter().copied());
        let reply = raw_upload(&raw, &hdrs, payload).await;
        assert_eq!(
            header(&reply, headers::ERROR),
            Some("decode"),
            "{bad:?}: {reply:?}"
        );
        assert_eq!(header(&reply, headers::FRAMING), Some("1"), "{bad:?}");
    }

    // A well-formed inline request is served compactly: an empty body
    // (its end byte) and the trailer future's value, `none`.
    let reply = raw_upload(
        &raw,
        &[
            framing,
            (headers::NESTED, "0.0:AA=="),
            (headers::NESTED, "0.1:AA=="),
        ],
        payload,
    )
    .await;
    assert_eq!(header(&reply, headers::ERROR), None, "{reply:?}");
    assert_eq!(header(&reply, headers::FRAMING), Some("1"));
    // (0, 0, none, "n")
    assert_eq!(&reply.payload[..], b"\x00\x00\x00\x01n");
    let stats = server.stats();
    assert_eq!(stats.served_inline_nested, 1, "{stats:?}");
    common::eventually_zero(|| server.open_calls()).await;
}

#[test]
fn inline_params_that_would_not_fit_max_payload_go_standard() {
    common::run(inline_params_that_would_not_fit_max_payload_go_standard_body());
}

async fn inline_params_that_would_not_fit_max_payload_go_standard_body() {
    // 16 KiB messages: a 15 KiB body is under the inline limit (32 KiB) but
    // its base64 (20 KiB) does not fit the request.
    let nats = NatsServer::start_with(trellis_tests::NatsOptions {
        max_payload: Some(16 * 1024),
        ..trellis_tests::NatsOptions::default()
    })
    .await
    .unwrap();
    let (server, _serving, transport, client) = serving_pair(&nats).await;
    let chunks = vec![Bytes::from(vec![3u8; 15 * 1024])];
    let (len, sum) = expected(&chunks);
    assert_eq!(
        take(&client, upload(chunks, None, "fits-not")).await,
        (len, sum, None, "fits-not".to_string())
    );
    // A small one on the same transport still goes inline.
    assert_eq!(
        take(
            &client,
            upload(vec![Bytes::from_static(b"ok")], None, "fits")
        )
        .await,
        (
            2,
            u64::from(b'o') + u64::from(b'k'),
            None,
            "fits".to_string()
        )
    );
    let stats = transport.stats();
    assert_eq!(
        (stats.held_fallbacks, stats.inline_nested_calls),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(
        (stats.standard_calls, stats.compact_calls),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(transport.open_calls(), 0);
    common::eventually_zero(|| server.open_calls()).await;
}
