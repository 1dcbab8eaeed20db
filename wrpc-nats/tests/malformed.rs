//! Malformed input never panics: requests without reply subject, garbage
//! params, huge LEB128 lengths, wrong variant indexes, bogus headers,
//! truncated standard params, and garbage sent to a caller's inbox.

// Test bodies run through `common::run` (large stacks), so they are not
// `#[test]` functions themselves and clippy's in-test allowances miss them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{api, serve_echo, trellis};
use futures::StreamExt as _;
use trellis_tests::NatsServer;
use trellis_wrpc::{WrpcError, find_wrpc_error, headers};

fn subject(func: &str) -> String {
    format!(
        "{}.wrpc.0.0.1.trellis-test:interop/api@0.1.0.{func}",
        common::LATTICE_PREFIX
    )
}

async fn raw_request(
    nats: &async_nats::Client,
    func: &str,
    hdrs: &[(&str, &str)],
    payload: &'static [u8],
) -> async_nats::Message {
    let mut map = async_nats::HeaderMap::new();
    for (k, v) in hdrs {
        map.insert(*k, *v);
    }
    tokio::time::timeout(
        Duration::from_secs(3),
        nats.request_with_headers(subject(func), map, Bytes::from_static(payload)),
    )
    .await
    .expect("no answer within 3 s")
    .unwrap()
}

fn error_kind(message: &async_nats::Message) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::ERROR))
        .map(|v| v.as_str().to_string())
}

#[test]
fn bad_requests_get_error_replies_or_are_dropped() {
    common::run(bad_requests_body());
}

async fn bad_requests_body() {
    let nats = NatsServer::start().await.unwrap();
    let server = trellis(&nats).await;
    let _serving = serve_echo(&server.server(common::LATTICE_PREFIX, None)).await;
    let raw = nats.connect().await.unwrap();
    let compact = [(headers::FRAMING, "1")];

    // Garbage, a huge LEB128 length, a wrong variant index, invalid UTF-8.
    for (func, payload) in [
        ("echo-u32", &b"\xff\xff\xff\xff\xff\xff"[..]),
        ("echo-bytes", &b"\xff\xff\xff\xff\x0f"[..]),
        ("echo-shape", &b"\x09"[..]),
        ("echo-string", &b"\x02\xff\xfe"[..]),
        ("echo-point", &b""[..]),
    ] {
        let reply = raw_request(&raw, func, &compact, payload).await;
        assert!(error_kind(&reply).is_some(), "{func}: {reply:?}");
    }

    // Bogus and expired deadlines are refused without running the handler.
    let reply = raw_request(&raw, "echo-u32", &[(headers::TIMEOUT_MS, "soon")], b"\x01").await;
    assert_eq!(error_kind(&reply).as_deref(), Some("internal"));
    let reply = raw_request(&raw, "echo-u32", &[(headers::TIMEOUT_MS, "0")], b"\x01").await;
    assert_eq!(error_kind(&reply).as_deref(), Some("deadline"));

    // No reply subject: dropped and counted.
    raw.publish(subject("echo-u32"), Bytes::from_static(b"\x01"))
        .await
        .unwrap();
    raw.flush().await.unwrap();
    common::eventually_zero(|| usize::from(server.stats().dropped_requests == 0)).await;

    // Truncated standard params (the caller never sends the rest): the
    // server's reader hits the call's deadline, the handler fails, the call
    // leaves the table.
    let mut map = async_nats::HeaderMap::new();
    map.insert(headers::TIMEOUT_MS, "300");
    let inbox = raw.new_inbox();
    let mut replies = raw.subscribe(format!("{inbox}.>")).await.unwrap();
    let mut handshake = raw.subscribe(inbox.clone()).await.unwrap();
    raw.publish_with_reply_and_headers(
        subject("echo-string"),
        inbox.clone(),
        map,
        Bytes::from_static(b"\x10abc"),
    )
    .await
    .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(2), handshake.next())
        .await
        .unwrap()
        .unwrap();
    assert!(first.reply.is_some(), "expected a standard handshake");
    let end = tokio::time::timeout(Duration::from_secs(2), replies.next())
        .await
        .unwrap()
        .unwrap();
    assert!(end.payload.is_empty());
    assert!(error_kind(&end).is_some(), "{end:?}");
    common::eventually_zero(|| server.open_calls()).await;

    // The server still serves well-formed calls.
    let client = trellis(&nats).await.client().target(common::LATTICE_PREFIX);
    assert_eq!(api::echo_u32(&client, None, 5).await.unwrap(), 5);
}

#[test]
fn garbage_answers_fail_the_call_not_the_transport() {
    common::run(garbage_answers_body());
}

async fn garbage_answers_body() {
    let nats = NatsServer::start().await.unwrap();
    let responder = nats.connect().await.unwrap();
    let mut requests = responder.subscribe(subject("echo-u32")).await.unwrap();
    trellis_tests::nats::synced(&responder).await.unwrap();
    let transport = trellis(&nats).await;
    let client = transport.client().target(common::LATTICE_PREFIX);

    // A responder that sends junk to the caller's subjects, then a plain
    // answer with neither reply subject nor framing header.
    let task = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let reply = request.reply.unwrap();
            for suffix in [".results.99999999999999999999999", ".bogus", ".results.x"] {
                responder
                    .publish(format!("{reply}{suffix}"), Bytes::from_static(b"junk"))
                    .await
                    .unwrap();
            }
            let inbox_root = reply.rsplit_once('.').unwrap().0.to_string();
            responder
                .publish(format!("{inbox_root}.zzzz"), Bytes::from_static(b"junk"))
                .await
                .unwrap();
            responder
                .publish(reply, Bytes::from_static(b"\x05"))
                .await
                .unwrap();
        }
    });
    let error = api::echo_u32(&client, None, 5).await.unwrap_err();
    assert!(
        matches!(
            error.chain().find_map(find_wrpc_error),
            Some(WrpcError::Protocol(_))
        ),
        "{error:#}"
    );
    let stats = transport.stats();
    assert!(stats.protocol_errors >= 3, "{stats:?}");
    assert!(stats.late_messages >= 1, "{stats:?}");
    assert_eq!(transport.open_calls(), 0);
    task.abort();
}
