//! `wasmcloud:messaging@0.2.0` served by the host's built-in
//! `messaging-nats` to `echo-messaging`, a handler written like wasmCloud's
//! echo example: a NATS request on a subscribed subject gets the echo back
//! (the component answers with `consumer.publish` to the reply-to subject),
//! a publish to a subject with wildcards is refused with a clear error, a
//! bad subscription entry does not stop the good ones, and deleting the
//! link unsubscribes. Real nats-server, real host process, real component.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers: a failed unwrap is the test failing; serde_json::Value indexing yields Null, never panics"
)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestLattice, WAIT, scale, start_provider};
use futures::StreamExt as _;
use trellis_interfaces::link::{DeleteInterfaceLinkDefinitionRequest, Link};
use trellis_tests::{component_path, eventually};

fn echo_image() -> String {
    format!(
        "file://{}",
        component_path("echo-messaging").unwrap().display()
    )
}

/// One request with a short timeout; the body of the reply as text.
async fn ask(client: &async_nats::Client, subject: &str, body: &str) -> anyhow::Result<String> {
    let request = async_nats::Request::new()
        .payload(body.to_string().into())
        .timeout(Some(Duration::from_secs(2)));
    let reply = client.send_request(subject.to_string(), request).await?;
    Ok(String::from_utf8_lossy(&reply.payload).into_owned())
}

/// Starts provider `provider_ref` as `messaging` on `provider_host` and
/// waits for it.
async fn start_messaging(l: &mut TestLattice, provider_host: &str, provider_ref: &str) {
    start_provider(l, provider_host, "messaging", provider_ref)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_over_a_real_subject() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    scale(&mut l, host.id(), &echo_image(), "echo", 4)
        .await
        .unwrap();
    start_messaging(&mut l, host.id(), "builtin://messaging-nats").await;
    echo_round_trip(&l).await;
}

/// The same component and links, served by the `messaging-nats-provider`
/// process on another host: deliveries and the component's publishes both
/// cross hosts over wRPC (`wasmcloud:messaging/{handler,consumer}@0.2.0`).
#[tokio::test(flavor = "multi_thread")]
async fn echo_through_the_messaging_nats_provider_process() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    scale(&mut l, a.id(), &echo_image(), "echo", 4)
        .await
        .unwrap();
    let path = trellis_tests::host::workspace_binary(
        "messaging-nats-provider",
        "MESSAGING_NATS_PROVIDER_BIN",
        "messaging-nats-provider",
    )
    .unwrap();
    start_messaging(&mut l, b.id(), &format!("file://{}", path.display())).await;
    echo_round_trip(&l).await;
}

/// Links `messaging` and `echo` both ways (subscriptions `echo.>`,
/// `jobs|workers` and a bad entry) and checks the echo, the wildcard rule
/// and that deleting the handler link unsubscribes.
async fn echo_round_trip(l: &TestLattice) {
    // `bad.>.x` is not a valid subscription; `echo.>` still runs.
    let subs = HashMap::from([(
        "subscriptions".to_string(),
        "echo.>, bad.>.x, jobs|workers".to_string(),
    )]);
    assert!(l.ctl.put_config("echo-subs", &subs).await.unwrap().success);
    let handler = Link {
        source_id: "messaging".into(),
        target: "echo".into(),
        name: "default".into(),
        wit_namespace: "wasmcloud".into(),
        wit_package: "messaging".into(),
        interfaces: vec!["handler".into()],
        source_config: vec!["echo-subs".into()],
        ..Default::default()
    };
    assert!(l.ctl.put_link(&handler).await.unwrap().success);
    let consumer = Link {
        source_id: "echo".into(),
        target: "messaging".into(),
        name: "default".into(),
        wit_namespace: "wasmcloud".into(),
        wit_package: "messaging".into(),
        interfaces: vec!["consumer".into()],
        ..Default::default()
    };
    assert!(l.ctl.put_link(&consumer).await.unwrap().success);

    // The echo: a plain NATS request on a subscribed subject.
    let client = l.client.clone();
    let echoed = eventually(WAIT, || ask(&client, "echo.hello", "hi there"))
        .await
        .unwrap();
    assert_eq!(echoed, "hi there");
    assert_eq!(ask(&client, "echo.a.b.c", "deep").await.unwrap(), "deep");
    // A queue subscription delivers too.
    assert_eq!(ask(&client, "jobs", "queued").await.unwrap(), "queued");
    // Concurrent requests each get their own answer.
    let asks = (0..20).map(|i| {
        let client = client.clone();
        async move { (i, ask(&client, "echo.many", &format!("n{i}")).await) }
    });
    for (i, r) in futures::future::join_all(asks).await {
        assert_eq!(r.unwrap(), format!("n{i}"));
    }
    // Nothing subscribed the invalid entry.
    assert!(ask(&client, "bad.y.x", "x").await.is_err());

    // The component publishes through consumer.publish: to a concrete
    // subject it arrives, to a wildcard subject it is refused, clearly.
    let mut forwarded = client.subscribe("fwd.target").await.unwrap();
    trellis_tests::nats::synced(&client).await.unwrap();
    assert_eq!(
        ask(&client, "echo.fwd", "forward:fwd.target")
            .await
            .unwrap(),
        "forwarded to fwd.target"
    );
    let got = tokio::time::timeout(WAIT, forwarded.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got.payload[..], b"forwarded");
    let refused = ask(&client, "echo.fwd", "forward:orders.*").await.unwrap();
    assert!(
        refused.starts_with("error: ") && refused.contains("`orders.*` contains a wildcard"),
        "{refused}"
    );

    // Deleting the handler link unsubscribes: requests find no responder.
    let resp = l
        .ctl
        .delete_link(&DeleteInterfaceLinkDefinitionRequest {
            source_id: "messaging".into(),
            name: "default".into(),
            wit_namespace: "wasmcloud".into(),
            wit_package: "messaging".into(),
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
    eventually(WAIT, || {
        let client = client.clone();
        async move {
            match ask(&client, "echo.hello", "still there?").await {
                Ok(body) => anyhow::bail!("still answered: {body}"),
                Err(_) => Ok(()),
            }
        }
    })
    .await
    .unwrap();
}
