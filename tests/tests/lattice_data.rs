//! Links and config live in the lattice's JetStream KV: what one host writes,
//! every host sees — on one nats-server, and across a NATS cluster.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestLattice, WAIT};
use trellis_interfaces::client::CtlClient;
use trellis_interfaces::link::{DeleteInterfaceLinkDefinitionRequest, Link};
use trellis_tests::{HostOptions, HostProcess, NatsServer, eventually};

fn link(source: &str, target: &str) -> Link {
    Link {
        source_id: source.into(),
        target: target.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["atomics".into(), "store".into()],
        source_config: vec![],
        target_config: vec!["redis-url".into()],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn link_and_config_round_trip_through_kv_to_a_second_host() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    let values = HashMap::from([("url".to_string(), "redis://127.0.0.1:6379".to_string())]);
    l.ctl.put_config("redis-url", &values).await.unwrap();
    l.events
        .wait_for_type(
            "config_set",
            |e| e["data"]["config_name"] == "redis-url",
            WAIT,
        )
        .await
        .unwrap();
    l.ctl.put_link(&link("counter", "kvredis")).await.unwrap();
    let ev = l
        .events
        .wait_for_type("linkdef_set", |e| e["data"]["source_id"] == "counter", WAIT)
        .await
        .unwrap();
    assert_eq!(ev["data"]["target"], "kvredis");
    // A conflicting link (same source/ns/pkg/name, overlapping interface,
    // other target) is refused with a message naming the existing one.
    let err = l.ctl.put_link(&link("counter", "other")).await.unwrap_err();
    assert!(err.to_string().contains("kvredis"), "{err}");
    l.events
        .wait_for_type(
            "linkdef_set_failed",
            |e| e["data"]["target"] == "other",
            WAIT,
        )
        .await
        .unwrap();
    // Stop host A: from now on only B answers, so what follows is B's view.
    l.ctl.stop_host(a.id(), None).await.unwrap();
    let a_id = a.id().to_string();
    l.events
        .wait_for_type("host_stopped", |e| e["source"] == a_id.as_str(), WAIT)
        .await
        .unwrap();
    // A host stops answering control requests before it says
    // `host_stopped`.
    let hosts = l.ctl.ping_hosts().await.unwrap();
    assert_eq!(
        hosts.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        vec![b.id()]
    );
    let links = l.ctl.get_links().await.unwrap();
    assert_eq!(links, vec![link("counter", "kvredis")]);
    assert_eq!(l.ctl.get_config("redis-url").await.unwrap(), Some(values));
    // Delete both, through B.
    l.ctl
        .delete_link(&DeleteInterfaceLinkDefinitionRequest {
            source_id: "counter".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
        })
        .await
        .unwrap();
    let ev = l
        .events
        .wait_for_type(
            "linkdef_deleted",
            |e| e["data"]["source_id"] == "counter",
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(ev["data"]["target"], "kvredis");
    eventually(WAIT, || async {
        anyhow::ensure!(l.ctl.get_links().await?.is_empty());
        Ok(())
    })
    .await
    .unwrap();
    l.ctl.delete_config("redis-url").await.unwrap();
    assert_eq!(l.ctl.get_config("redis-url").await.unwrap(), None);
    // Stored in the documented place: COMPONENT_counter in LATTICEDATA_test.
    let js = async_nats::jetstream::new(l.client.clone());
    let kv = js.get_key_value("LATTICEDATA_test").await.unwrap();
    let spec: serde_json::Value =
        serde_json::from_slice(&kv.get("COMPONENT_counter").await.unwrap().unwrap()).unwrap();
    assert_eq!(spec["links"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_restarted_later_replays_links_and_config() {
    let l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    l.ctl
        .put_config("redis-url", &HashMap::from([("url".into(), "x".into())]))
        .await
        .unwrap();
    l.ctl.put_link(&link("counter", "kvredis")).await.unwrap();
    drop(a);
    eventually(WAIT, || async {
        anyhow::ensure!(l.ctl.ping_hosts().await?.is_empty());
        Ok(())
    })
    .await
    .unwrap();
    let _b = l.host().await.unwrap();
    assert_eq!(
        l.ctl.get_links().await.unwrap(),
        vec![link("counter", "kvredis")]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_server_nats_cluster_is_one_lattice() {
    let servers = NatsServer::start_cluster(3).await.unwrap();
    let mut hosts = Vec::new();
    for s in &servers {
        hosts.push(
            HostProcess::start(HostOptions::new(s.url(), "cluster"))
                .await
                .unwrap(),
        );
    }
    let clients: Vec<CtlClient> = futures::future::join_all(servers.iter().map(|s| async {
        CtlClient::new(s.connect().await.unwrap(), "cluster").with_timeout(Duration::from_secs(5))
    }))
    .await;
    let mut want: Vec<String> = hosts.iter().map(|h| h.id().to_string()).collect();
    want.sort();
    for ctl in &clients {
        let ids = eventually(WAIT, || async {
            let mut ids: Vec<String> = ctl.ping_hosts().await?.into_iter().map(|h| h.id).collect();
            ids.sort();
            anyhow::ensure!(ids == want, "ping saw {ids:?}");
            Ok(ids)
        })
        .await
        .unwrap();
        assert_eq!(ids.len(), 3);
    }
    // A link put through server 0 is seen by the host on server 2. Host
    // inventory requests are per host, so ask host 2 directly via a
    // host-scoped read: stop hosts 0 and 1 and query through server 2.
    clients[0]
        .put_config("redis-url", &HashMap::from([("k".into(), "v".into())]))
        .await
        .unwrap();
    clients[0].put_link(&link("src", "dst")).await.unwrap();
    for h in &hosts[..2] {
        clients[0].stop_host(h.id(), None).await.unwrap();
    }
    let only = hosts[2].id().to_string();
    eventually(WAIT, || async {
        let ids: Vec<String> = clients[2]
            .ping_hosts()
            .await?
            .into_iter()
            .map(|h| h.id)
            .collect();
        anyhow::ensure!(ids == vec![only.clone()], "ping saw {ids:?}");
        Ok(())
    })
    .await
    .unwrap();
    let links = eventually(WAIT, || async {
        let links = clients[2].get_links().await?;
        anyhow::ensure!(!links.is_empty(), "no links yet");
        Ok(links)
    })
    .await
    .unwrap();
    assert_eq!(
        links,
        vec![Link {
            target_config: vec!["redis-url".into()],
            ..link("src", "dst")
        }]
    );
}
