//! The host survives its NATS server going away and coming back.

mod common;

use common::{TestLattice, WAIT, expose_http, hello_ref, http_get, http_until, scale};
use trellis_tests::eventually;

#[tokio::test(flavor = "multi_thread")]
async fn nats_restart_host_comes_back_and_keeps_serving_http() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    scale(&mut l, host.id(), &hello_ref().unwrap(), "hello", 2)
        .await
        .unwrap();
    let port = expose_http(&mut l, host.id(), "hello").await.unwrap();
    http_until(port, "/", 200).await.unwrap();
    l.nats.kill().unwrap();
    // The data plane does not need NATS: HTTP keeps working while it is down.
    let (status, body) = http_get(port, "/").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "Hello from Trellis!\n"));
    l.nats.restart().await.unwrap();
    let id = host.id().to_string();
    eventually(WAIT, || async {
        let hosts = l.ctl.ping_hosts().await?;
        anyhow::ensure!(
            hosts.iter().any(|h| h.id == id),
            "host not back yet: {hosts:?}"
        );
        Ok(())
    })
    .await
    .unwrap();
    // Control still works after the restart: a new component scales.
    scale(&mut l, host.id(), &hello_ref().unwrap(), "after", 1)
        .await
        .unwrap();
    let inv = l.ctl.get_host_inventory(host.id()).await.unwrap();
    assert_eq!(inv.components.len(), 2);
    assert_eq!(http_get(port, "/").await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_even_when_nats_is_gone() {
    let mut l = TestLattice::start().await.unwrap();
    let mut host = l.host().await.unwrap();
    l.nats.kill().unwrap();
    host.signal_term().unwrap();
    let status = host
        .wait_exit(std::time::Duration::from_secs(20))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
