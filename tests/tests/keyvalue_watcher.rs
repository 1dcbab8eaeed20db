//! `wasi:keyvalue/watcher@0.2.0-draft` exported by a component (`kv-watcher`)
//! and called as a keyvalue provider calls it, over the lattice on its wire
//! form `wrpc:keyvalue/watcher@0.2.0-draft` (`on-set`, `on-delete`). The test
//! plays the provider with raw NATS requests (component-model value encoding,
//! the compact framing a Trellis host answers with); the component records
//! each event through the `bucket` it is handed, which the host opened on the
//! component's own keyvalue link, so `kv-counter`, linked to the same
//! built-in store, reads the records back over HTTP. Real nats-server, real
//! host process, real components.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers: a failed unwrap is the test failing; serde_json::Value indexing yields Null, never panics"
)]

mod common;

use std::time::Duration;

use common::{TestLattice, WAIT, expose_http, http_get, http_until, image, scale, start_provider};
use trellis_interfaces::link::Link;

fn store_link(source: &str, interfaces: &[&str]) -> Link {
    Link {
        source_id: source.into(),
        target: "kv".into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: interfaces.iter().map(|i| (*i).to_string()).collect(),
        ..Default::default()
    }
}

/// A string or `list<u8>` in the component-model value encoding: LEB128
/// length, then the bytes.
fn encode(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut len = bytes.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(bytes);
}

/// Calls `func` of `wrpc:keyvalue/watcher@0.2.0-draft` on `kv-watcher` as a
/// provider (`source-id: kv`) would; `Ok` once the component has run it.
async fn call_watcher(l: &TestLattice, func: &str, params: &[&[u8]]) -> Result<(), String> {
    let subject = format!(
        "{}.kv-watcher.wrpc.0.0.1.wrpc:keyvalue/watcher@0.2.0-draft.{func}",
        l.lattice
    );
    let mut payload = Vec::new();
    for p in params {
        encode(&mut payload, p);
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("source-id", "kv");
    headers.insert("trellis-framing", "1");
    headers.insert("trellis-timeout-ms", "5000");
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        l.client
            .request_with_headers(subject, headers, payload.into()),
    )
    .await
    .map_err(|_| "no reply within 10 s".to_string())?
    .map_err(|e| e.to_string())?;
    if let Some(kind) = reply.headers.as_ref().and_then(|h| h.get("trellis-error")) {
        return Err(format!(
            "{kind}: {}",
            String::from_utf8_lossy(&reply.payload)
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_reports_changes_to_a_watcher_component() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    start_provider(&mut l, host.id(), "kv", "builtin://keyvalue-memory")
        .await
        .unwrap();
    scale(&mut l, host.id(), &image("kv-watcher"), "kv-watcher", 2)
        .await
        .unwrap();
    scale(&mut l, host.id(), &image("kv-counter"), "counter", 2)
        .await
        .unwrap();
    let port = expose_http(&mut l, host.id(), "counter").await.unwrap();
    for link in [
        store_link("kv-watcher", &["store"]),
        store_link("counter", &["store", "atomics", "batch"]),
    ] {
        let resp = l.ctl.put_link(&link).await.unwrap();
        assert!(resp.success, "{}", resp.message);
    }
    http_until(port, "/_batch/get?keys=x", 200).await.unwrap();

    // The export is offered on the lattice once the component runs.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match call_watcher(&l, "on-set", &[b"default", b"greeting", b"hello"]).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("on-set not served yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("on-set failed: {e}"),
        }
    }
    call_watcher(&l, "on-delete", &[b"default", b"gone"])
        .await
        .unwrap();
    // Its own records are not reported back as changes.
    call_watcher(&l, "on-set", &[b"default", b"seen-set-x", b"loop"])
        .await
        .unwrap();
    assert_eq!(
        http_get(
            port,
            "/_batch/get?keys=seen-set-greeting,seen-delete-gone,seen-set-seen-set-x"
        )
        .await
        .unwrap(),
        (
            200,
            "seen-set-greeting=hello\nseen-delete-gone=deleted\nseen-set-seen-set-x=<none>"
                .to_string()
        )
    );

    // Without a keyvalue link the bucket cannot be opened: the call fails.
    let resp = l
        .ctl
        .delete_link(
            &trellis_interfaces::link::DeleteInterfaceLinkDefinitionRequest {
                source_id: "kv-watcher".into(),
                name: "default".into(),
                wit_namespace: "wasi".into(),
                wit_package: "keyvalue".into(),
            },
        )
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
    let deadline = tokio::time::Instant::now() + WAIT;
    let error = loop {
        match call_watcher(&l, "on-set", &[b"default", b"late", b"v"]).await {
            Err(e) => break e,
            Ok(()) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(()) => panic!("on-set still succeeds without a keyvalue link"),
        }
    };
    // The provider's call fails with the reason.
    assert!(
        error.starts_with("internal")
            && error.contains("component `kv-watcher` has no keyvalue link named `default`"),
        "{error}"
    );
}
