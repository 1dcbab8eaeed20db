//! The control interface of real `trellis` hosts on a real nats-server:
//! ping, inventory, auctions, labels, stop, and bad input.

mod common;

use std::time::Duration;

use common::{TestLattice, WAIT, hello_ref, scale};
use trellis_interfaces::ctl::ComponentAuctionRequest;

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_see_each_other_in_ping_and_inventory() {
    let l = TestLattice::start().await.unwrap();
    let a = HostPair::start(&l).await.unwrap();
    let hosts = l.ctl.ping_hosts().await.unwrap();
    let mut ids: Vec<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
    ids.sort();
    let mut want = vec![a.0.id(), a.1.id()];
    want.sort();
    assert_eq!(ids, want);
    for h in &hosts {
        assert_eq!(h.lattice, "test");
        assert!(h.labels.contains_key("hostcore.arch"), "{:?}", h.labels);
        assert!(h.id.starts_with('N'));
    }
    let inv = l.ctl.get_host_inventory(a.0.id()).await.unwrap();
    assert_eq!(inv.host_id, a.0.id());
    assert!(inv.components.is_empty());
    assert_eq!(inv.labels.get("zone").map(String::as_str), Some("a"));
}

struct HostPair(trellis_tests::HostProcess, trellis_tests::HostProcess);

impl HostPair {
    async fn start(l: &TestLattice) -> anyhow::Result<Self> {
        let a = trellis_tests::HostProcess::start(l.host_options().label("zone", "a")).await?;
        let b = trellis_tests::HostProcess::start(l.host_options().label("zone", "b")).await?;
        Ok(Self(a, b))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auction_honours_label_constraints_and_running_components() {
    let mut l = TestLattice::start().await.unwrap();
    let hosts = HostPair::start(&l).await.unwrap();
    let auction = |zone: &str| ComponentAuctionRequest {
        component_ref: hello_ref().unwrap(),
        component_id: "hello".into(),
        constraints: [("zone".to_string(), zone.to_string())].into(),
    };
    let acks = l.ctl.auction_component(auction("b")).await.unwrap();
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0].host_id, hosts.1.id());
    assert_eq!(acks[0].component_id, "hello");
    let acks = l.ctl.auction_component(auction("nowhere")).await.unwrap();
    assert!(acks.is_empty(), "{acks:?}");
    // A host already running the component does not bid.
    scale(&mut l, hosts.1.id(), &hello_ref().unwrap(), "hello", 1)
        .await
        .unwrap();
    let acks = l.ctl.auction_component(auction("b")).await.unwrap();
    assert!(acks.is_empty(), "{acks:?}");
    let any = ComponentAuctionRequest {
        constraints: Default::default(),
        ..auction("a")
    };
    let acks = l.ctl.auction_component(any).await.unwrap();
    assert_eq!(
        acks.iter().map(|a| a.host_id.as_str()).collect::<Vec<_>>(),
        vec![hosts.0.id()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_change_with_events_and_reserved_keys_are_refused() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    l.ctl.put_label(host.id(), "tier", "gold").await.unwrap();
    let ev = l
        .events
        .wait_for_type(
            "labels_changed",
            |e| e["data"]["labels"]["tier"] == "gold",
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(ev["data"]["host_id"], host.id());
    let inv = l.ctl.get_host_inventory(host.id()).await.unwrap();
    assert_eq!(inv.labels.get("tier").map(String::as_str), Some("gold"));
    let err = l
        .ctl
        .put_label(host.id(), "hostcore.os", "plan9")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
    l.ctl.delete_label(host.id(), "tier").await.unwrap();
    let inv = l.ctl.get_host_inventory(host.id()).await.unwrap();
    assert!(!inv.labels.contains_key("tier"));
    assert_eq!(
        inv.labels.get("hostcore.os").map(String::as_str),
        Some(std::env::consts::OS)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn host_stop_publishes_host_stopped_and_exits() {
    let mut l = TestLattice::start().await.unwrap();
    let mut host = l.host().await.unwrap();
    let resp = l.ctl.stop_host(host.id(), None).await.unwrap();
    assert!(resp.success);
    let id = host.id().to_string();
    let ev = l
        .events
        .wait_for_type("host_stopped", |e| e["source"] == id.as_str(), WAIT)
        .await
        .unwrap();
    assert!(ev["data"]["labels"]["hostcore.arch"].is_string());
    let status = host.wait_exit(WAIT).await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(l.ctl.ping_hosts().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_publishes_host_stopped() {
    let mut l = TestLattice::start().await.unwrap();
    let mut host = l.host().await.unwrap();
    host.signal_term().unwrap();
    let id = host.id().to_string();
    l.events
        .wait_for_type("host_stopped", |e| e["source"] == id.as_str(), WAIT)
        .await
        .unwrap();
    assert!(host.wait_exit(WAIT).await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_carries_the_inventory_after_a_change() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    scale(&mut l, host.id(), &hello_ref().unwrap(), "beat", 2)
        .await
        .unwrap();
    let id = host.id().to_string();
    let ev = l
        .events
        .wait_for_type(
            "host_heartbeat",
            |e| {
                e["source"] == id.as_str()
                    && e["data"]["components"]
                        .as_array()
                        .is_some_and(|c| !c.is_empty())
            },
            WAIT,
        )
        .await
        .unwrap();
    let c = &ev["data"]["components"][0];
    assert_eq!(c["id"], "beat");
    assert_eq!(c["max_instances"], 2);
    assert!(ev["data"]["version"].as_str().unwrap().contains('.'));
}

#[tokio::test(flavor = "multi_thread")]
async fn liveness_beats_every_second() {
    let l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let mut sub = l
        .client
        .subscribe(format!("trellis.liveness.test.{}", host.id()))
        .await
        .unwrap();
    use futures::StreamExt;
    let mut seqs = Vec::new();
    let started = std::time::Instant::now();
    while seqs.len() < 3 {
        let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(v["host_id"], host.id());
        assert_eq!(v["ready"], true);
        seqs.push(v["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(4),
        "three beats took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors_and_the_host_keeps_serving() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let id = host.id();
    let p = "wasmbus.ctl.v1.test";
    let tmp = tempfile::tempdir().unwrap();
    let not_wasm = tmp.path().join("not.wasm");
    std::fs::write(&not_wasm, b"hello, I am not wasm").unwrap();
    let core = tmp.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let cases: Vec<(String, Vec<u8>, &str)> = vec![
        (format!("{p}.component.scale.{id}"), b"{not json".to_vec(), "invalid component scale request"),
        (format!("{p}.component.scale.{id}"), br#"{"component_ref":"builtin://http-server","component_id":"x","count":1}"#.to_vec(), "built-in capability"),
        (format!("{p}.component.scale.{id}"), br#"{"component_ref":"file:///x.wasm","component_id":"a b","count":1}"#.to_vec(), "not a valid NATS subject token"),
        (format!("{p}.component.scale.{id}"), r#"{"component_ref":"file:///x.wasm","component_id":"x","count":1,"host_id":"NOTME"}"#.to_string().into_bytes(), "addressed to host `NOTME`"),
        (format!("{p}.component.update.{id}"), br#"{"component_id":"ghost","new_component_ref":"file:///x.wasm"}"#.to_vec(), "is not running"),
        (format!("{p}.component.frobnicate.{id}"), b"{}".to_vec(), "unsupported subject"),
        (format!("{p}.provider.stop.{id}"), br#"{"provider_id":"ghost"}"#.to_vec(), "not running"),
        (format!("{p}.label.put.{id}"), b"[]".to_vec(), "invalid label put request"),
        (format!("{p}.config.put.bad"), b"{\"a\": 1}".to_vec(), "JSON object of strings"),
        (format!("{p}.link.put"), br#"{"source_id":"a","target":"b","wit_namespace":"wasi","wit_package":"http","interfaces":["incoming-handler"],"source_config":["missing-cfg"]}"#.to_vec(), "`missing-cfg` does not exist"),
        (format!("{p}.link.put"), br#"{"source_id":"a","target":"b","wit_namespace":"wasi","wit_package":"http","interfaces":[]}"#.to_vec(), "at least one interface"),
    ];
    for (subject, body, want) in &cases {
        let reply = l
            .client
            .request(subject.clone(), body.clone().into())
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(v["success"], false, "{subject}: {v}");
        let msg = v["message"].as_str().unwrap();
        assert!(
            msg.contains(want),
            "{subject}: expected `{want}` in `{msg}`"
        );
    }
    // Failures that happen after the acknowledgement arrive as events.
    let failing = [
        (
            format!("file://{}", not_wasm.display()),
            "not a WebAssembly binary",
        ),
        (
            format!("file://{}", core.display()),
            "core WebAssembly module, not a component",
        ),
        ("file:///does/not/exist.wasm".to_string(), "cannot read"),
    ];
    for (i, (image, want)) in failing.iter().enumerate() {
        let cid = format!("bad{i}");
        let ev = scale(&mut l, id, image, &cid, 1).await.unwrap();
        assert!(
            ev["type"]
                .as_str()
                .unwrap()
                .ends_with("component_scale_failed"),
            "{ev}"
        );
        let err = ev["data"]["error"].as_str().unwrap();
        assert!(err.contains(want), "expected `{want}` in `{err}`");
    }
    // The host still answers and runs components.
    scale(&mut l, id, &hello_ref().unwrap(), "good", 1)
        .await
        .unwrap();
    let inv = l.ctl.get_host_inventory(id).await.unwrap();
    assert_eq!(
        inv.components
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        vec!["good"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_host_id_gets_an_error_that_says_what_to_do() {
    let l = TestLattice::start().await.unwrap();
    let _host = l.host().await.unwrap();
    let err = l.ctl.get_host_inventory("NDOESNOTEXIST").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("NDOESNOTEXIST") || msg.contains("no host"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_come_from_flags_and_both_env_prefixes() {
    let l = TestLattice::start().await.unwrap();
    let host = trellis_tests::HostProcess::start(
        l.host_options()
            .label("zone", "eu-west")
            .env("TRELLIS_LABEL_region", "eu")
            .env("WASMCLOUD_LABEL_legacy", "yes"),
    )
    .await
    .unwrap();
    let hosts = l.ctl.ping_hosts().await.unwrap();
    let labels = &hosts.iter().find(|h| h.id == host.id()).unwrap().labels;
    assert_eq!(labels.get("zone").map(String::as_str), Some("eu-west"));
    assert_eq!(labels.get("region").map(String::as_str), Some("eu"));
    assert_eq!(labels.get("legacy").map(String::as_str), Some("yes"));
    assert_eq!(
        labels.get("hostcore.os").map(String::as_str),
        Some(std::env::consts::OS)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_registry_and_unreachable_provider_images_answer_clearly() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    assert!(l.ctl.get_claims().await.unwrap().is_empty());
    let creds: trellis_interfaces::ctl::RegistryCredentialMap =
        serde_json::from_value(serde_json::json!({
            "registry.example:5000": {"username": "u", "password": "p", "registryType": "oci"}
        }))
        .unwrap();
    l.ctl.put_registries(&creds).await.unwrap();
    let resp = l
        .ctl
        .start_provider(&trellis_interfaces::ctl::StartProviderCommand {
            provider_id: "kv".into(),
            // A registry on a closed local port: the pull fails at once,
            // without reaching for the network.
            provider_ref: "127.0.0.1:1/wasmcloud/keyvalue-redis:0.30.0".into(),
            host_id: host.id().into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(resp.success);
    let ev = l
        .events
        .wait_for_type(
            "provider_start_failed",
            |e| e["data"]["provider_id"] == "kv",
            WAIT,
        )
        .await
        .unwrap();
    let error = ev["data"]["error"].as_str().unwrap();
    assert!(error.contains("cannot pull"), "{error}");
    assert!(
        error.contains("127.0.0.1:1/wasmcloud/keyvalue-redis:0.30.0"),
        "{error}"
    );
    // The host is unaffected.
    assert_eq!(l.ctl.ping_hosts().await.unwrap().len(), 1);
}
