//! `wasi:keyvalue@0.2.0-draft` served by the host to `kv-counter`, a component
//! written exactly like a wasmCloud 1.x one: against the built-in in-memory
//! store, the built-in JetStream KV store (values checked with a plain NATS
//! client, surviving a host restart), and a missing link. Real nats-server,
//! real host processes, real components.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers: a failed unwrap is the test failing; serde_json::Value indexing yields Null, never panics"
)]

mod common;

use std::collections::HashMap;

use common::{
    TestLattice, WAIT, expose_http, http_get, http_until, put_link, scale, start_provider,
};
use trellis_interfaces::link::Link;
use trellis_tests::component_path;

fn counter_image() -> String {
    format!("file://{}", component_path("kv-counter").unwrap().display())
}

fn kv_link(source: &str, target: &str, target_config: &[&str]) -> Link {
    Link {
        source_id: source.into(),
        target: target.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into(), "atomics".into(), "batch".into()],
        target_config: target_config.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

async fn put_config(l: &TestLattice, name: &str, values: &[(&str, &str)]) {
    let values: HashMap<String, String> = values
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let resp = l.ctl.put_config(name, &values).await.unwrap();
    assert!(resp.success, "config put rejected: {}", resp.message);
}

/// Starts a built-in provider and waits for `provider_started`.
async fn start_builtin(l: &mut TestLattice, host: &str, id: &str, image_ref: &str) {
    let event = start_provider(l, host, id, image_ref).await.unwrap();
    assert_eq!(event["data"]["image_ref"], image_ref);
}

async fn get_ok(port: u16, path: &str) -> String {
    let (status, body) = http_get(port, path).await.unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn counter_on_builtin_memory() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let image = counter_image();
    let scaled = scale(&mut l, host.id(), &image, "counter", 4)
        .await
        .unwrap();
    assert_eq!(
        scaled["type"], "com.wasmcloud.lattice.component_scaled",
        "{scaled}"
    );
    let port = expose_http(&mut l, host.id(), "counter").await.unwrap();

    // No keyvalue link yet: a clear error naming the component and the link.
    let body = http_until(port, "/a", 500).await.unwrap();
    assert!(
        body.contains("component `counter` has no keyvalue link named `default`")
            && body.contains("builtin://keyvalue-memory"),
        "{body}"
    );

    start_builtin(&mut l, host.id(), "kv-mem", "builtin://keyvalue-memory").await;
    let inventory = l.ctl.get_host_inventory(host.id()).await.unwrap();
    assert!(
        inventory.providers.iter().any(
            |p| p.id == "kv-mem" && p.image_ref.as_deref() == Some("builtin://keyvalue-memory")
        ),
        "{:?}",
        inventory.providers
    );
    put_link(&l, kv_link("counter", "kv-mem", &[])).await;

    // Until the link arrives `open` fails (500) and nothing is incremented.
    assert_eq!(http_until(port, "/a", 200).await.unwrap(), "a: 1");
    assert_eq!(get_ok(port, "/a").await, "a: 2");
    assert_eq!(get_ok(port, "/a").await, "a: 3");
    assert_eq!(get_ok(port, "/b").await, "b: 1");
    assert_eq!(get_ok(port, "/a").await, "a: 4");

    // Concurrent increments lose nothing.
    let calls = (0..20).map(|_| http_get(port, "/c"));
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().0, 200);
    }
    assert_eq!(get_ok(port, "/c").await, "c: 21");

    // Batch operations, exists, delete, list-keys.
    assert_eq!(get_ok(port, "/_batch/set?x=10&y=hello").await, "set 2");
    assert_eq!(
        get_ok(port, "/_batch/get?keys=x,y,z,a").await,
        "x=10\ny=hello\nz=<none>\na=4"
    );
    assert_eq!(get_ok(port, "/_keys").await, "a\nb\nc\nx\ny");
    assert_eq!(get_ok(port, "/_batch/delete?keys=x,y,z").await, "deleted 3");
    assert_eq!(
        get_ok(port, "/_batch/get?keys=x,y").await,
        "x=<none>\ny=<none>"
    );
    assert_eq!(get_ok(port, "/_exists/a").await, "a: true");
    assert_eq!(get_ok(port, "/_exists/x").await, "x: false");
    // Incrementing a non-number is an error the component sees.
    get_ok(port, "/_batch/set?word=hello").await;
    let (status, body) = http_get(port, "/word").await.unwrap();
    assert_eq!(status, 500);
    assert!(
        body.contains("`word`") && body.contains("not a decimal") && body.contains("`counter`"),
        "{body}"
    );

    // A second counter linked to the same provider with its own bucket
    // (link target config `bucket`) does not see the first one's counts; a
    // third on the first's bucket (`default`, the identifier opened) does.
    put_config(&l, "kv-other-bucket", &[("bucket", "other")]).await;
    for id in ["counter2", "counter3"] {
        scale(&mut l, host.id(), &image, id, 1).await.unwrap();
    }
    put_link(&l, kv_link("counter2", "kv-mem", &["kv-other-bucket"])).await;
    put_link(&l, kv_link("counter3", "kv-mem", &[])).await;
    let port2 = expose_http(&mut l, host.id(), "counter2").await.unwrap();
    let port3 = expose_http(&mut l, host.id(), "counter3").await.unwrap();
    assert_eq!(http_until(port2, "/a", 200).await.unwrap(), "a: 1");
    assert_eq!(get_ok(port2, "/a").await, "a: 2");
    assert_eq!(http_until(port3, "/a", 200).await.unwrap(), "a: 5");
    assert_eq!(get_ok(port, "/a").await, "a: 6");

    // Stopping the provider drops its buckets; a new one starts empty.
    let resp = l
        .ctl
        .stop_provider(&trellis_interfaces::ctl::StopProviderCommand {
            provider_id: "kv-mem".into(),
            host_id: host.id().into(),
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
    // The link now points at nothing that runs: the call is tried on the
    // lattice (as for any provider process) and fails at once, naming it.
    let body = http_until(port, "/a", 500).await.unwrap();
    assert!(
        body.contains("provider `kv-mem`") && body.contains("nothing serves"),
        "{body}"
    );
    start_builtin(
        &mut l,
        host.id(),
        "kv-mem",
        "wasmcloud+builtin://keyvalue-memory",
    )
    .await;
    assert_eq!(http_until(port, "/a", 200).await.unwrap(), "a: 1");
}

#[tokio::test(flavor = "multi_thread")]
async fn counter_on_builtin_nats_kv_survives_a_host_restart() {
    let mut l = TestLattice::start().await.unwrap();
    let mut host = l.host().await.unwrap();
    let image = counter_image();
    scale(&mut l, host.id(), &image, "counter", 2)
        .await
        .unwrap();
    let port = expose_http(&mut l, host.id(), "counter").await.unwrap();
    start_builtin(&mut l, host.id(), "kv-nats", "builtin://keyvalue-nats").await;
    put_config(
        &l,
        "kv-counters",
        &[
            ("bucket", "counters"),
            ("enable_bucket_auto_create", "true"),
        ],
    )
    .await;
    put_link(&l, kv_link("counter", "kv-nats", &["kv-counters"])).await;

    assert_eq!(http_until(port, "/a", 200).await.unwrap(), "a: 1");
    assert_eq!(get_ok(port, "/a").await, "a: 2");
    assert_eq!(get_ok(port, "/a").await, "a: 3");
    assert_eq!(get_ok(port, "/b").await, "b: 1");

    // The values are in the JetStream KV bucket, readable by any NATS client.
    let js = async_nats::jetstream::new(l.client.clone());
    let kv = js.get_key_value("counters").await.unwrap();
    assert_eq!(kv.get("a").await.unwrap().unwrap().as_ref(), b"3");
    assert_eq!(kv.get("b").await.unwrap().unwrap().as_ref(), b"1");
    // …and writes from outside are seen by the component.
    kv.put("a", "41".into()).await.unwrap();
    assert_eq!(get_ok(port, "/a").await, "a: 42");

    // Batch operations and listing go to the same bucket.
    assert_eq!(get_ok(port, "/_batch/set?x=1&y=2").await, "set 2");
    assert_eq!(kv.get("y").await.unwrap().unwrap().as_ref(), b"2");
    assert_eq!(
        get_ok(port, "/_batch/get?keys=x,y,nope").await,
        "x=1\ny=2\nnope=<none>"
    );
    assert_eq!(get_ok(port, "/_keys").await, "a\nb\nx\ny");
    assert_eq!(get_ok(port, "/_batch/delete?keys=x,y").await, "deleted 2");
    assert!(kv.get("x").await.unwrap().is_none());
    assert_eq!(get_ok(port, "/_keys").await, "a\nb");

    // A host restart loses nothing: the data lives in JetStream.
    host.signal_term().unwrap();
    host.wait_exit(WAIT).await.unwrap();
    let host = l.host().await.unwrap();
    scale(&mut l, host.id(), &image, "counter", 2)
        .await
        .unwrap();
    start_builtin(&mut l, host.id(), "kv-nats", "builtin://keyvalue-nats").await;
    let port = expose_http(&mut l, host.id(), "counter").await.unwrap();
    assert_eq!(http_until(port, "/a", 200).await.unwrap(), "a: 43");
    assert_eq!(kv.get("a").await.unwrap().unwrap().as_ref(), b"43");

    // A bucket that does not exist, without auto-create: a clear error.
    put_config(&l, "kv-missing", &[("bucket", "missing")]).await;
    scale(&mut l, host.id(), &image, "counter-missing", 1)
        .await
        .unwrap();
    put_link(&l, kv_link("counter-missing", "kv-nats", &["kv-missing"])).await;
    let port = expose_http(&mut l, host.id(), "counter-missing")
        .await
        .unwrap();
    let body = http_until(port, "/a", 500).await.unwrap();
    assert!(
        body.contains("`missing` does not exist") && body.contains("enable_bucket_auto_create"),
        "{body}"
    );
    assert!(js.get_key_value("missing").await.is_err());
}

fn provider_binary(name: &str, env_var: &str) -> String {
    let path = trellis_tests::host::workspace_binary(name, env_var, name).unwrap();
    format!("file://{}", path.display())
}

/// Pid of the child process of `host` whose command line mentions `name`.
fn child_pid(host: &trellis_tests::HostProcess, name: &str) -> Option<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-P", &host.pid()?.to_string(), "-f", name])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The same component, linked to the keyvalue-nats *provider process* on
/// another host instead of a built-in: calls travel over wRPC
/// (`wrpc:keyvalue/*@0.2.0-draft`), the data is in JetStream, and it survives
/// the provider being killed and restarted.
#[tokio::test(flavor = "multi_thread")]
async fn counter_on_the_keyvalue_nats_provider_process() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    let image = counter_image();
    scale(&mut l, a.id(), &image, "counter", 4).await.unwrap();
    let port = expose_http(&mut l, a.id(), "counter").await.unwrap();
    let provider_ref = provider_binary("keyvalue-nats-provider", "KEYVALUE_NATS_PROVIDER_BIN");
    start_builtin(&mut l, b.id(), "kv-nats-provider", &provider_ref).await;
    put_config(
        &l,
        "kv-remote",
        &[
            ("bucket", "remote-counters"),
            ("enable_bucket_auto_create", "true"),
        ],
    )
    .await;
    put_link(&l, kv_link("counter", "kv-nats-provider", &["kv-remote"])).await;

    assert_eq!(http_until(port, "/a", 200).await.unwrap(), "a: 1");
    assert_eq!(get_ok(port, "/a").await, "a: 2");
    assert_eq!(get_ok(port, "/a").await, "a: 3");
    assert_eq!(get_ok(port, "/b").await, "b: 1");
    let js = async_nats::jetstream::new(l.client.clone());
    let kv = js.get_key_value("remote-counters").await.unwrap();
    assert_eq!(kv.get("a").await.unwrap().unwrap().as_ref(), b"3");

    assert_eq!(get_ok(port, "/_batch/set?x=1&y=2").await, "set 2");
    assert_eq!(
        get_ok(port, "/_batch/get?keys=x,y,nope").await,
        "x=1\ny=2\nnope=<none>"
    );
    assert_eq!(get_ok(port, "/_keys").await, "a\nb\nx\ny");
    assert_eq!(get_ok(port, "/_batch/delete?keys=x,y").await, "deleted 2");
    assert_eq!(get_ok(port, "/_exists/x").await, "x: false");
    assert_eq!(get_ok(port, "/_exists/a").await, "a: true");

    // kill -9 the provider: its host restarts it and the count goes on.
    let pid = child_pid(&b, "keyvalue-nats-provider").expect("provider process");
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    l.events
        .wait_for_type(
            "provider_started",
            |e| e["data"]["provider_id"] == "kv-nats-provider",
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(http_until(port, "/a", 200).await.unwrap(), "a: 4");
    assert_ne!(child_pid(&b, "keyvalue-nats-provider"), Some(pid));
}

/// The provider process on the component's own host: still called over wRPC (a host
/// once refused this, taking every non-built-in provider on the host for one that
/// serves no keyvalue).
#[tokio::test(flavor = "multi_thread")]
async fn counter_with_the_provider_process_on_the_same_host() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    scale(&mut l, a.id(), &counter_image(), "counter", 4)
        .await
        .unwrap();
    let port = expose_http(&mut l, a.id(), "counter").await.unwrap();
    let provider_ref = provider_binary("keyvalue-nats-provider", "KEYVALUE_NATS_PROVIDER_BIN");
    start_builtin(&mut l, a.id(), "kv-local-provider", &provider_ref).await;
    put_config(
        &l,
        "kv-local",
        &[
            ("bucket", "local-counters"),
            ("enable_bucket_auto_create", "true"),
        ],
    )
    .await;
    put_link(&l, kv_link("counter", "kv-local-provider", &["kv-local"])).await;
    assert_eq!(http_until(port, "/a", 200).await.unwrap(), "a: 1");
    assert_eq!(get_ok(port, "/a").await, "a: 2");
    let js = async_nats::jetstream::new(l.client.clone());
    let kv = js.get_key_value("local-counters").await.unwrap();
    assert_eq!(kv.get("a").await.unwrap().unwrap().as_ref(), b"2");
}
