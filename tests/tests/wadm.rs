//! wadm reconciling a real lattice: real nats-server, real `trellis` hosts with zone
//! labels, the real `wadm` binary, real components. Weighted spreads land as asked,
//! a killed host's work is placed elsewhere and its traffic served again, undeploy
//! removes everything, a restarted wadm issues nothing, and a standby wadm takes over
//! when the leader is killed.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers: a failed unwrap is the test failing; serde_json::Value indexing yields Null, never panics"
)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::{TestLattice, WAIT, answered, http_get, image};
use serde_json::{Value, json};
use trellis_tests::{HostProcess, WadmProcess, eventually, free_port};

/// `wadm.api.{lattice}.model.{op}[.{name}]` with a JSON or YAML body.
async fn api(l: &TestLattice, op: &str, name: Option<&str>, body: &str) -> Result<Value> {
    let subject = match name {
        Some(n) => format!("wadm.api.{}.model.{op}.{n}", l.lattice),
        None => format!("wadm.api.{}.model.{op}", l.lattice),
    };
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        l.client.request(subject.clone(), body.to_string().into()),
    )
    .await
    .with_context(|| format!("{subject} timed out"))?
    .with_context(|| format!("{subject} failed"))?;
    Ok(serde_json::from_slice(&reply.payload)?)
}

async fn deploy(l: &TestLattice, manifest: &str, name: &str) -> Result<()> {
    let put = api(l, "put", None, manifest).await?;
    anyhow::ensure!(put["result"] != "error", "put refused: {put}");
    let dep = api(l, "deploy", Some(name), "{}").await?;
    anyhow::ensure!(dep["result"] == "acknowledged", "deploy refused: {dep}");
    Ok(())
}

/// Puts and deploys `manifest` as `name`, waits until its status is
/// `deployed` and `GET /` on `port` answers 200 with a body containing
/// `want`.
async fn deploy_and_serve(l: &TestLattice, manifest: &str, name: &str, port: u16, want: &str) {
    deploy(l, manifest, name).await.unwrap();
    wait_status(l, name, "deployed", WAIT).await.unwrap();
    eventually(WAIT, || async {
        let (code, body) = http_get(port, "/").await?;
        anyhow::ensure!(code == 200 && body.contains(want), "{code} {body}");
        Ok(())
    })
    .await
    .unwrap();
}

async fn status(l: &TestLattice, name: &str) -> Result<Value> {
    let reply = api(l, "status", Some(name), "").await?;
    Ok(reply["status"].clone())
}

/// Waits until the application's status type is `want`; the error shows the last status.
async fn wait_status(l: &TestLattice, name: &str, want: &str, deadline: Duration) -> Result<Value> {
    let mut last = Value::Null;
    let start = Instant::now();
    while start.elapsed() < deadline {
        last = status(l, name).await?;
        if last["status"]["type"] == want {
            return Ok(last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{name} not `{want}` within {deadline:?}; last status: {last:#}")
}

/// `max_instances` of `component` per host id, from `host.get` of every host.
async fn placement(
    l: &TestLattice,
    hosts: &[&HostProcess],
    component: &str,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for h in hosts {
        let inv = l.ctl.get_host_inventory(h.id()).await.unwrap();
        let inv = serde_json::to_value(inv).unwrap();
        for c in inv["components"].as_array().cloned().unwrap_or_default() {
            if c["id"] == component {
                out.insert(h.id().to_string(), c["max_instances"].as_u64().unwrap_or(0));
            }
        }
    }
    out
}

async fn zone_host(l: &TestLattice, zone: &str) -> HostProcess {
    HostProcess::start(l.host_options().label("zone", zone))
        .await
        .unwrap()
}

fn spread_manifest(instances: u32) -> String {
    json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "spread", "annotations": {"version": "v1"}},
        "spec": {"components": [{
            "name": "ponger",
            "type": "component",
            "properties": {"image": image("ponger"), "id": "ponger"},
            "traits": [{"type": "spreadscaler", "properties": {
                "instances": instances,
                "spread": [
                    {"name": "east", "requirements": {"zone": "east"}, "weight": 75},
                    {"name": "west", "requirements": {"zone": "west"}, "weight": 25}
                ]
            }}]
        }]}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_spread_lands_as_specified_and_undeploy_removes_it() {
    let l = TestLattice::start().await.unwrap();
    let east1 = zone_host(&l, "east").await;
    let east2 = zone_host(&l, "east").await;
    let west = zone_host(&l, "west").await;
    let _wadm = WadmProcess::start(&l.nats.url(), &l.lattice, &[])
        .await
        .unwrap();

    deploy(&l, &spread_manifest(8), "spread").await.unwrap();
    let st = wait_status(&l, "spread", "deployed", WAIT).await.unwrap();
    assert_eq!(st["scalers"][0]["kind"], "SpreadScaler", "{st}");

    let hosts = [&east1, &east2, &west];
    let placed = placement(&l, &hosts, "ponger").await;
    // 8 × 75 % = 6 in east, split evenly over its two hosts; 2 in west.
    assert_eq!(placed.get(east1.id()), Some(&3), "{placed:?}");
    assert_eq!(placed.get(east2.id()), Some(&3), "{placed:?}");
    assert_eq!(placed.get(west.id()), Some(&2), "{placed:?}");

    // What wadm started carries its annotations.
    let inv = serde_json::to_value(l.ctl.get_host_inventory(west.id()).await.unwrap()).unwrap();
    let ann = &inv["components"][0]["annotations"];
    assert_eq!(ann["wasmcloud.dev/managed-by"], "wadm", "{inv}");
    assert_eq!(ann["wasmcloud.dev/appspec"], "spread", "{inv}");

    let undeploy = api(&l, "undeploy", Some("spread"), "{}").await.unwrap();
    assert_eq!(undeploy["result"], "acknowledged", "{undeploy}");
    eventually(WAIT, || async {
        let left = placement(&l, &hosts, "ponger").await;
        anyhow::ensure!(left.is_empty(), "still running: {left:?}");
        Ok(())
    })
    .await
    .unwrap();
    wait_status(&l, "spread", "undeployed", WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn requirements_no_host_meets_fail_naming_the_spread_then_converge_when_one_joins() {
    let l = TestLattice::start().await.unwrap();
    let _east = zone_host(&l, "east").await;
    let _wadm = WadmProcess::start(&l.nats.url(), &l.lattice, &[])
        .await
        .unwrap();
    deploy(&l, &spread_manifest(4), "spread").await.unwrap();
    // East is served; west has no host: the app is not deployed, and says why.
    let st = eventually(WAIT, || async {
        let st = status(&l, "spread").await?;
        let msg = st["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
            + st["scalers"][0]["status"]["message"]
                .as_str()
                .unwrap_or_default();
        anyhow::ensure!(
            msg.contains("west"),
            "status does not name the spread yet: {st}"
        );
        Ok(st)
    })
    .await
    .unwrap();
    assert_ne!(st["status"]["type"], "deployed", "{st}");
    let west = zone_host(&l, "west").await;
    wait_status(&l, "spread", "deployed", WAIT).await.unwrap();
    let placed = placement(&l, &[&west], "ponger").await;
    assert_eq!(placed.get(west.id()), Some(&1), "{placed:?}");
}

/// pinger (HTTP front, `pinger_instances`) and the HTTP server on hosts labelled
/// `role=gateway`, one ponger on a `role=worker` host with `ponger_extra` added to
/// its properties. Ids: `{prefix}pinger`, `{prefix}ponger`, `{name}-http`.
fn gateway_worker_manifest(
    name: &str,
    version: &str,
    prefix: &str,
    pinger_instances: u32,
    ponger_extra: Value,
    port: u16,
) -> String {
    let mut ponger = json!({"image": image("ponger"), "id": format!("{prefix}ponger")});
    if let (Some(props), Value::Object(extra)) = (ponger.as_object_mut(), ponger_extra) {
        props.extend(extra);
    }
    let http = format!("{name}-http");
    json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name, "annotations": {"version": version}},
        "spec": {"components": [
            {"name": "pinger", "type": "component",
             "properties": {"image": image("pinger"), "id": format!("{prefix}pinger")},
             "traits": [
                {"type": "spreadscaler", "properties": {"instances": pinger_instances,
                    "spread": [{"name": "gw", "requirements": {"role": "gateway"}}]}},
                {"type": "link", "properties": {"target": {"name": "ponger"},
                    "namespace": "example", "package": "pong", "interfaces": ["pingpong"]}}
             ]},
            {"name": "ponger", "type": "component",
             "properties": ponger,
             "traits": [{"type": "spreadscaler", "properties": {"instances": 1,
                "spread": [{"name": "workers", "requirements": {"role": "worker"}}]}}]},
            {"name": "httpserver", "type": "capability",
             "properties": {"image": "builtin://http-server", "id": http},
             "traits": [
                {"type": "spreadscaler", "properties": {"instances": 1,
                    "spread": [{"name": "gw", "requirements": {"role": "gateway"}}]}},
                {"type": "link", "properties": {"target": {"name": "pinger"},
                    "namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                    "source": {"config": [{"name": http,
                        "properties": {"address": format!("127.0.0.1:{port}")}}]}}}
             ]}
        ]}
    })
    .to_string()
}

/// Killing ponger's host (SIGKILL, no goodbye) must get ponger placed on the other
/// worker and the HTTP requests through it answered again.
fn failover_manifest(port: u16) -> String {
    gateway_worker_manifest("failover", "v1", "", 4, json!({}), port)
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_host_work_is_placed_elsewhere_and_traffic_served_again() {
    let l = TestLattice::start().await.unwrap();
    let _gateway = HostProcess::start(l.host_options().label("role", "gateway"))
        .await
        .unwrap();
    let mut w1 = HostProcess::start(l.host_options().label("role", "worker"))
        .await
        .unwrap();
    let mut w2 = HostProcess::start(l.host_options().label("role", "worker"))
        .await
        .unwrap();
    let _wadm = WadmProcess::start(&l.nats.url(), &l.lattice, &[])
        .await
        .unwrap();
    let port = free_port().unwrap();
    deploy_and_serve(&l, &failover_manifest(port), "failover", port, "").await;

    // One ponger instance, on one worker: kill that worker, and pinger's calls have
    // nowhere to go until wadm places ponger on the other.
    let placed = placement(&l, &[&w1, &w2], "ponger").await;
    assert_eq!(placed.len(), 1, "{placed:?}");
    let (victim, survivor) = if placed.contains_key(w1.id()) {
        (&mut w1, &w2)
    } else {
        (&mut w2, &w1)
    };
    victim.kill().await.unwrap();
    let killed_at = Instant::now();
    eventually(Duration::from_secs(20), || async {
        let (code, body) = http_get(port, "/").await?;
        anyhow::ensure!(code == 200 && body.contains("pong"), "{code} {body}");
        Ok(())
    })
    .await
    .unwrap();
    let took = killed_at.elapsed();
    eprintln!("failover: traffic served again {took:?} after the kill");
    let placed = placement(&l, &[survivor], "ponger").await;
    assert_eq!(placed.get(survivor.id()), Some(&1), "{placed:?}");
    // The bar is 5 s (bench/wadm-failover measures it); a loaded CI machine gets margin.
    assert!(took < Duration::from_secs(15), "failover took {took:?}");
    wait_status(&l, "failover", "deployed", WAIT).await.unwrap();
}

/// Counts `component_scaled` / `provider_started` / `linkdef_set` / `config_set` events
/// for `window`.
async fn commands_seen(l: &TestLattice, window: Duration) -> usize {
    let mut sub = l
        .client
        .subscribe(format!("wasmbus.evt.{}.>", l.lattice))
        .await
        .unwrap();
    trellis_tests::nats::synced(&l.client).await.unwrap();
    let mut n = 0;
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(msg)) = tokio::time::timeout_at(end, futures::StreamExt::next(&mut sub)).await
    {
        let subject = msg.subject.as_str();
        if [
            "component_scaled",
            "provider_started",
            "provider_stopped",
            "linkdef_set",
            "config_set",
        ]
        .iter()
        .any(|e| subject.ends_with(e))
        {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn restarted_wadm_issues_nothing_and_a_standby_takes_over_from_a_killed_leader() {
    let l = TestLattice::start().await.unwrap();
    let east = zone_host(&l, "east").await;
    let west = zone_host(&l, "west").await;
    let mut first = WadmProcess::start(&l.nats.url(), &l.lattice, &[])
        .await
        .unwrap();
    deploy(&l, &spread_manifest(4), "spread").await.unwrap();
    wait_status(&l, "spread", "deployed", WAIT).await.unwrap();

    // A second wadm joins as standby; the leader is killed (the lease is not released).
    let _second = WadmProcess::start(&l.nats.url(), &l.lattice, &[])
        .await
        .unwrap();
    first.kill().await.unwrap();
    let killed_at = Instant::now();
    // Nothing changed in the lattice: the new leader must not send a single command.
    let spurious = commands_seen(&l, Duration::from_secs(6)).await;
    assert_eq!(
        spurious, 0,
        "the new leader re-issued {spurious} command(s)"
    );

    // The standby acts: scale the app up; the change must be carried out.
    let put = api(
        &l,
        "put",
        None,
        &spread_manifest(8).replace("\"v1\"", "\"v2\""),
    )
    .await
    .unwrap();
    assert_ne!(put["result"], "error", "{put}");
    let dep = api(&l, "deploy", Some("spread"), r#"{"version":"v2"}"#)
        .await
        .unwrap();
    assert_eq!(dep["result"], "acknowledged", "{dep}");
    eventually(WAIT, || async {
        let placed = placement(&l, &[&east, &west], "ponger").await;
        anyhow::ensure!(placed.values().sum::<u64>() == 8, "{placed:?}");
        Ok(())
    })
    .await
    .unwrap();
    eprintln!(
        "standby acted {:?} after the leader was killed",
        killed_at.elapsed()
    );
    wait_status(&l, "spread", "deployed", WAIT).await.unwrap();
}

fn web_manifest(version: &str, component: &str, port: u16) -> String {
    json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "web", "annotations": {"version": version}},
        "spec": {"components": [
            {"name": "site", "type": "component",
             "properties": {"image": image(component), "id": "site"},
             "traits": [{"type": "spreadscaler", "properties": {"instances": 4}}]},
            {"name": "httpserver", "type": "capability",
             "properties": {"image": "builtin://http-server", "id": "web-http"},
             "traits": [{"type": "link", "properties": {"target": {"name": "site"},
                "namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                "source": {"config": [{"name": "web-http",
                    "properties": {"address": format!("127.0.0.1:{port}")}}]}}}]}
        ]}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_upgrade_under_load_fails_no_request() {
    let l = TestLattice::start().await.unwrap();
    let _host = l.host().await.unwrap();
    let _wadm = WadmProcess::start(&l.nats.url(), &l.lattice, &[])
        .await
        .unwrap();
    let port = free_port().unwrap();
    let v1 = web_manifest("v1", "http-hello", port);
    deploy_and_serve(&l, &v1, "web", port, "Hello").await;

    // Load: sequential requests until the new version answers, counting failures.
    let load = tokio::spawn(async move {
        let (mut ok, mut failed, mut upgraded) = (0u32, Vec::new(), false);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            match http_get(port, "/").await {
                Ok((200, body)) => {
                    ok += 1;
                    if body.contains("<unset>") {
                        upgraded = true;
                        // Keep going a little: the old instances must be gone cleanly.
                        if ok > 20 {
                            break;
                        }
                    }
                }
                Ok((code, body)) => failed.push(format!("{code} {body}")),
                Err(e) => failed.push(e.to_string()),
            }
        }
        (ok, failed, upgraded)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    deploy(&l, &web_manifest("v2", "http-config", port), "web")
        .await
        .unwrap();
    let (ok, failed, upgraded) = load.await.unwrap();
    assert!(
        upgraded,
        "the new version never answered ({ok} ok, failures: {failed:?})"
    );
    assert!(
        failed.is_empty(),
        "{} request(s) failed during the upgrade: {failed:?}",
        failed.len()
    );
    wait_status(&l, "web", "deployed", WAIT).await.unwrap();
    let list = api(&l, "get", None, "").await.unwrap();
    assert_eq!(list["models"][0]["deployed_version"], "v2", "{list}");
}

fn single_app(name: &str, image_ref: &str) -> String {
    json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name, "annotations": {"version": "v1"}},
        "spec": {"components": [{"name": "c", "type": "component",
            "properties": {"image": image_ref, "id": name},
            "traits": [{"type": "spreadscaler", "properties": {"instances": 2}}]}]}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploying_with_no_host_waits_then_converges_and_a_bad_image_fails_with_the_reason() {
    let l = TestLattice::start().await.unwrap();
    let _wadm = WadmProcess::start(&l.nats.url(), &l.lattice, &[])
        .await
        .unwrap();
    deploy(&l, &single_app("early", &image("ponger")), "early")
        .await
        .unwrap();
    // The reconciler (not just the API) says why: no host to run it on.
    eventually(WAIT, || async {
        let st = status(&l, "early").await?;
        let msg = st["status"]["message"].as_str().unwrap_or_default();
        anyhow::ensure!(
            st["status"]["type"] == "waiting" && msg.contains("No hosts"),
            "{st}"
        );
        Ok(())
    })
    .await
    .unwrap();
    let host = l.host().await.unwrap();
    wait_status(&l, "early", "deployed", WAIT).await.unwrap();
    assert_eq!(
        placement(&l, &[&host], "early").await.get(host.id()),
        Some(&2)
    );
    // Deploying the deployed version again: the API publishes `waiting`, the loop
    // must put the truth back although nothing changed for it.
    let again = api(&l, "deploy", Some("early"), "{}").await.unwrap();
    assert_eq!(again["result"], "acknowledged", "{again}");
    wait_status(&l, "early", "deployed", Duration::from_secs(5))
        .await
        .unwrap();

    let missing = "file:///nonexistent/trellis-test/missing.wasm";
    deploy(&l, &single_app("broken", missing), "broken")
        .await
        .unwrap();
    let st = wait_status(&l, "broken", "failed", WAIT).await.unwrap();
    let message = st["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("missing.wasm"),
        "the reason names the image: {st}"
    );
}

/// Everything on the lattice, as `(host, component, max_instances)`.
async fn snapshot(l: &TestLattice, hosts: &[&HostProcess]) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for h in hosts {
        let inv = serde_json::to_value(l.ctl.get_host_inventory(h.id()).await.unwrap()).unwrap();
        for c in inv["components"].as_array().cloned().unwrap_or_default() {
            out.push((
                h.id().to_string(),
                c["id"].as_str().unwrap_or_default().to_string(),
                c["max_instances"].as_u64().unwrap_or(0),
            ));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nats_outage_evicts_nothing() {
    let mut l = TestLattice::start().await.unwrap();
    let a = zone_host(&l, "east").await;
    let b = zone_host(&l, "east").await;
    let _wadm = WadmProcess::start(&l.nats.url(), &l.lattice, &[])
        .await
        .unwrap();
    let manifest =
        single_app("steady", &image("ponger")).replace("\"instances\":2", "\"instances\":4");
    deploy(&l, &manifest, "steady").await.unwrap();
    wait_status(&l, "steady", "deployed", WAIT).await.unwrap();
    let before = snapshot(&l, &[&a, &b]).await;
    assert_eq!(before.len(), 2, "{before:?}");

    // NATS goes away for longer than the host timeout (3 s), then comes back.
    l.nats.kill().unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    l.nats.restart().await.unwrap();
    let client = l.nats.connect().await.unwrap();
    let mut events = client
        .subscribe(format!("wasmbus.evt.{}.component_scaled", l.lattice))
        .await
        .unwrap();
    trellis_tests::nats::synced(&client).await.unwrap();
    // Everyone reconnects; for the next 8 s nothing may be moved or rescaled.
    let quiet = tokio::time::timeout(
        Duration::from_secs(8),
        futures::StreamExt::next(&mut events),
    )
    .await;
    assert!(
        quiet.is_err(),
        "a component was rescaled after the outage: {quiet:?}"
    );
    // The test's own client has reconnected by now too.
    let after = snapshot(&l, &[&a, &b]).await;
    assert_eq!(before, after);
    wait_status(&l, "steady", "deployed", WAIT).await.unwrap();
}

/// The gateway/worker application with ponger's `max_instance_reuse` (a
/// Trellis extension) set to `reuse`.
fn reuse_manifest(version: &str, reuse: Option<u32>, port: u16) -> String {
    let extra = reuse.map_or_else(|| json!({}), |n| json!({"max_instance_reuse": n}));
    gateway_worker_manifest("reuse", version, "reuse-", 1, extra, port)
}

/// A manifest's `max_instance_reuse` reaches the host that runs the
/// component (instances answer up to that many calls), a new version
/// without the field returns it to the host's default in place (a fresh
/// instance per call), and a manifest with 0 is refused naming the field,
/// leaving the deployed version running.
#[tokio::test(flavor = "multi_thread")]
async fn manifest_max_instance_reuse_reaches_the_host_and_changes_in_place() {
    let l = TestLattice::start().await.unwrap();
    let _gateway = HostProcess::start(l.host_options().label("role", "gateway"))
        .await
        .unwrap();
    let worker = HostProcess::start(l.host_options().label("role", "worker"))
        .await
        .unwrap();
    let _wadm = WadmProcess::start(&l.nats.url(), &l.lattice, &[])
        .await
        .unwrap();
    let port = free_port().unwrap();
    let v1 = reuse_manifest("v1", Some(3), port);
    deploy_and_serve(&l, &v1, "reuse", port, "pong").await;
    // Calls in a row land on one instance until it answered 3 (the first
    // call above was its first).
    assert_eq!(answered(port, 5).await.unwrap(), [2, 3, 1, 2, 3]);

    // v2 drops the field: the host's default (a fresh instance per call)
    // is back, applied in place: ponger keeps running on its worker.
    deploy(&l, &reuse_manifest("v2", None, port), "reuse")
        .await
        .unwrap();
    eventually(WAIT, || async {
        let seen = answered(port, 3).await?;
        anyhow::ensure!(seen == [1, 1, 1], "{seen:?}");
        Ok(())
    })
    .await
    .unwrap();
    wait_status(&l, "reuse", "deployed", WAIT).await.unwrap();
    let placed = placement(&l, &[&worker], "reuse-ponger").await;
    assert_eq!(placed.get(worker.id()), Some(&1), "{placed:?}");

    // 0 is refused at put, naming the field; v2 keeps running.
    let put = api(&l, "put", None, &reuse_manifest("v3", Some(0), port))
        .await
        .unwrap();
    assert_eq!(put["result"], "error", "{put}");
    let message = put["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("max_instance_reuse") && message.contains("at least 1"),
        "{put}"
    );
    assert_eq!(answered(port, 2).await.unwrap(), [1, 1]);
}
