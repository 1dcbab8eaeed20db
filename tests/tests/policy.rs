//! The policy service (issue 5 item 6, PROTOCOL.md §5.2) on real hosts: a
//! native responder on the policy topic permits or denies component starts,
//! provider starts and lattice calls; the host denies when nobody answers;
//! decisions are cached and a message on the changes topic flips one.
#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing yields Null on a missing key, it never panics"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test loudly on purpose"
)]

mod common;

use common::{TestLattice, WAIT, hello_ref, scale};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use trellis_interfaces::ctl::StartProviderCommand;
use trellis_tests::{HostProcess, component_path};

const DENIAL: &str = "not on my lattice";

/// A policy service in the test: denies anything with id `forbidden`, and
/// calls to `ponger`; permits the rest. Every request it sees is forwarded.
async fn responder(l: &TestLattice, topic: &str) -> mpsc::UnboundedReceiver<Value> {
    let mut sub = l.client.subscribe(topic.to_string()).await.unwrap();
    trellis_tests::nats::synced(&l.client).await.unwrap();
    let client = l.client.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let req: Value = serde_json::from_slice(&msg.payload).unwrap_or(Value::Null);
            let body = &req["request"];
            let denied = body["componentId"] == "forbidden"
                || body["providerId"] == "forbidden"
                || (req["kind"] == "performInvocation"
                    && body["target"]["componentId"] == "ponger");
            let resp = if denied {
                json!({"requestId": req["requestId"], "permitted": false, "message": DENIAL})
            } else {
                json!({"requestId": req["requestId"], "permitted": true})
            };
            if let Some(reply) = msg.reply {
                let _ = client
                    .publish(reply, serde_json::to_vec(&resp).unwrap().into())
                    .await;
            }
            let _ = tx.send(req);
        }
    });
    rx
}

/// The next request the responder saw for which `pred` holds.
async fn next_request(
    rx: &mut mpsc::UnboundedReceiver<Value>,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            let req = rx.recv().await.expect("responder stopped");
            if pred(&req) {
                return req;
            }
        }
    })
    .await
    .expect("no matching policy request")
}

fn event_type(e: &Value) -> &str {
    e["type"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_permits_denies_caches_and_follows_changes() {
    let mut l = TestLattice::start().await.unwrap();
    let mut requests = responder(&l, "test.policy").await;
    let host = HostProcess::start(
        l.host_options()
            .arg("--label")
            .arg("zone=policy-test")
            .arg("--policy-topic")
            .arg("test.policy")
            .arg("--policy-changes-topic")
            .arg("test.policy.changes"),
    )
    .await
    .unwrap();
    let hello = hello_ref().unwrap();

    // Permitted.
    let event = scale(&mut l, host.id(), &hello, "hello", 2).await.unwrap();
    assert!(event_type(&event).ends_with("component_scaled"), "{event}");
    let req = next_request(&mut requests, |r| r["request"]["componentId"] == "hello").await;
    // The documented wasmCloud shape.
    assert_eq!(req["kind"], "startComponent");
    assert_eq!(req["version"], "v1");
    let id = req["requestId"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let body = &req["request"];
    assert_eq!(body["imageRef"], hello.as_str());
    assert_eq!(body["maxInstances"], 2);
    assert!(body["annotations"].is_object(), "{req}");
    assert!(body["claims"].is_null(), "unsigned: {req}");
    assert_eq!(req["host"]["publicKey"], host.id());
    assert_eq!(req["host"]["lattice"], l.lattice.as_str());
    assert_eq!(req["host"]["labels"]["zone"], "policy-test");

    // Denied, with the service's message.
    let event = scale(&mut l, host.id(), &hello, "forbidden", 1)
        .await
        .unwrap();
    assert!(
        event_type(&event).ends_with("component_scale_failed"),
        "{event}"
    );
    let error = event["data"]["error"].as_str().unwrap();
    assert_eq!(
        error,
        format!("component `forbidden` denied by the policy service on `test.policy`: {DENIAL}")
    );
    let inventory = l.ctl.get_host_inventory(host.id()).await.unwrap();
    assert!(inventory.components.iter().all(|c| c.id != "forbidden"));
    let denied_req = next_request(&mut requests, |r| {
        r["request"]["componentId"] == "forbidden"
    })
    .await;
    let denied_id = denied_req["requestId"].as_str().unwrap().to_string();

    // Providers too.
    let resp = l
        .ctl
        .start_provider(&StartProviderCommand {
            provider_id: "forbidden".into(),
            provider_ref: "builtin://http-server".into(),
            host_id: host.id().to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
    let failed = l
        .events
        .wait_for_type(
            "provider_start_failed",
            |e| e["data"]["provider_id"] == "forbidden",
            WAIT,
        )
        .await
        .unwrap();
    assert!(
        failed["data"]["error"].as_str().unwrap().contains(DENIAL),
        "{failed}"
    );
    let provider_req =
        next_request(&mut requests, |r| r["request"]["providerId"] == "forbidden").await;
    assert_eq!(provider_req["kind"], "startProvider");
    assert_eq!(provider_req["request"]["imageRef"], "builtin://http-server");

    // The change notification flips the cached denial: the next start is
    // permitted without asking again.
    l.client
        .publish(
            "test.policy.changes",
            serde_json::to_vec(&json!({"requestId": denied_id, "permitted": true}))
                .unwrap()
                .into(),
        )
        .await
        .unwrap();
    l.client.flush().await.unwrap();
    let mut started = None;
    for _ in 0..20 {
        let event = scale(&mut l, host.id(), &hello, "forbidden", 1)
            .await
            .unwrap();
        if event_type(&event).ends_with("component_scaled") {
            started = Some(event);
            break;
        }
    }
    assert!(started.is_some(), "the change never reached the host");
    while let Ok(req) = requests.try_recv() {
        assert_ne!(
            req["request"]["componentId"], "forbidden",
            "a cached decision was asked again: {req}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_invocation_gets_an_error_reply_before_the_component_runs() {
    let mut l = TestLattice::start().await.unwrap();
    let mut requests = responder(&l, "test.policy").await;
    let host = HostProcess::start(l.host_options().arg("--policy-topic").arg("test.policy"))
        .await
        .unwrap();
    let ponger = format!("file://{}", component_path("ponger").unwrap().display());
    let event = scale(&mut l, host.id(), &ponger, "ponger", 1)
        .await
        .unwrap();
    assert!(event_type(&event).ends_with("component_scaled"), "{event}");
    let subject = format!(
        "{}.ponger.wrpc.0.0.1.example:pong/pingpong@0.1.0.ping",
        l.lattice
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("trellis-framing", "1");
    headers.insert("source-id", "policy-test");
    let reply = trellis_tests::eventually(WAIT, || {
        let client = l.client.clone();
        let subject = subject.clone();
        let headers = headers.clone();
        async move {
            Ok(client
                .request_with_headers(subject, headers, bytes::Bytes::new())
                .await?)
        }
    })
    .await
    .unwrap();
    let kind = reply
        .headers
        .as_ref()
        .and_then(|h| h.get("trellis-error"))
        .map(|v| v.as_str().to_string());
    assert_eq!(kind.as_deref(), Some("internal"));
    let text = String::from_utf8_lossy(&reply.payload);
    assert!(text.contains(DENIAL), "{text}");
    let req = next_request(&mut requests, |r| r["kind"] == "performInvocation").await;
    let body = &req["request"];
    assert_eq!(body["interface"], "example:pong/pingpong@0.1.0");
    assert_eq!(body["function"], "ping");
    assert_eq!(body["target"]["componentId"], "ponger");
    assert_eq!(body["target"]["imageRef"], ponger.as_str());
    assert_eq!(body["target"]["maxInstances"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_topic_nobody_answers_denies_starts() {
    let mut l = TestLattice::start().await.unwrap();
    // Subscribed but silent: the request times out.
    let _silent = l.client.subscribe("test.policy.silent").await.unwrap();
    trellis_tests::nats::synced(&l.client).await.unwrap();
    let silent = HostProcess::start(
        l.host_options()
            .arg("--policy-topic")
            .arg("test.policy.silent"),
    )
    .await
    .unwrap();
    // Nobody subscribed at all: NATS says so at once.
    let absent = HostProcess::start(
        l.host_options()
            .arg("--policy-topic")
            .arg("test.policy.absent"),
    )
    .await
    .unwrap();
    let hello = hello_ref().unwrap();

    let event = scale(&mut l, silent.id(), &hello, "hello", 1)
        .await
        .unwrap();
    assert!(
        event_type(&event).ends_with("component_scale_failed"),
        "{event}"
    );
    assert_eq!(
        event["data"]["error"],
        "policy service on `test.policy.silent` did not answer within 1000 ms: start denied"
    );
    let event = scale(&mut l, absent.id(), &hello, "hello", 1)
        .await
        .unwrap();
    assert!(
        event_type(&event).ends_with("component_scale_failed"),
        "{event}"
    );
    assert_eq!(
        event["data"]["error"],
        "no policy service listens on `test.policy.absent`: start denied"
    );
}
