//! Running components on a real host: scaling with events, HTTP through the
//! built-in ingress, traps and deadlines, draining and updates.

mod common;

use std::time::Duration;

use common::{TestLattice, WAIT, expose_http, hello_ref, http_get, http_until, scale};
use trellis_interfaces::ctl::UpdateComponentCommand;

#[tokio::test(flavor = "multi_thread")]
async fn scale_zero_four_zero_with_events_and_inventory() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let image = hello_ref().unwrap();
    let ev = scale(&mut l, host.id(), &image, "hello", 4).await.unwrap();
    assert!(
        ev["type"].as_str().unwrap().ends_with("component_scaled"),
        "{ev}"
    );
    assert_eq!(ev["data"]["max_instances"], 4);
    assert_eq!(ev["data"]["image_ref"], image.as_str());
    let inv = l.ctl.get_host_inventory(host.id()).await.unwrap();
    assert_eq!(inv.components.len(), 1);
    assert_eq!(inv.components[0].max_instances, 4);
    assert_eq!(inv.components[0].image_ref, image);
    let ev = scale(&mut l, host.id(), &image, "hello", 0).await.unwrap();
    assert_eq!(ev["data"]["max_instances"], 0);
    let inv = l.ctl.get_host_inventory(host.id()).await.unwrap();
    assert!(inv.components.is_empty(), "{:?}", inv.components);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_through_the_builtin_ingress_returns_the_component_body() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    scale(&mut l, host.id(), &hello_ref().unwrap(), "hello", 2)
        .await
        .unwrap();
    let port = expose_http(&mut l, host.id(), "hello").await.unwrap();
    let body = http_until(port, "/", 200).await.unwrap();
    assert_eq!(body, "Hello from Trellis!\n");
    // Nothing is granted by default: no environment, no filesystem.
    let (status, body) = http_get(port, "/env").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "env=0 fs=denied");
    // The inventory shows the provider.
    let inv = l.ctl.get_host_inventory(host.id()).await.unwrap();
    assert!(
        inv.providers
            .iter()
            .any(|p| p.id == format!("http-server-{port}")),
        "{:?}",
        inv.providers
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn traps_and_runaway_loops_fail_one_request_not_the_host() {
    let mut l = TestLattice::start().await.unwrap();
    let host = trellis_tests::HostProcess::start(
        l.host_options().arg("--max-execution-time-ms").arg("500"),
    )
    .await
    .unwrap();
    scale(&mut l, host.id(), &hello_ref().unwrap(), "hello", 2)
        .await
        .unwrap();
    let port = expose_http(&mut l, host.id(), "hello").await.unwrap();
    http_until(port, "/", 200).await.unwrap();
    let (status, body) = http_get(port, "/trap").await.unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("hello"), "{body}");
    let started = std::time::Instant::now();
    let (status, body) = http_get(port, "/loop").await.unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "deadline not enforced: {:?}",
        started.elapsed()
    );
    let (status, body) = http_get(port, "/").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "Hello from Trellis!\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_down_drains_in_flight_requests() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let image = hello_ref().unwrap();
    scale(&mut l, host.id(), &image, "hello", 2).await.unwrap();
    let port = expose_http(&mut l, host.id(), "hello").await.unwrap();
    http_until(port, "/", 200).await.unwrap();
    let slow = tokio::spawn(async move { http_get(port, "/sleep?ms=1500").await });
    // Wait until the request is inside the component before scaling down.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = scale(&mut l, host.id(), &image, "hello", 0).await.unwrap();
    let (status, body) = slow.await.unwrap().unwrap();
    assert_eq!((status, body.trim()), (200, "slept 1500"));
    assert_eq!(ev["data"]["max_instances"], 0);
    let (status, _) = http_get(port, "/").await.unwrap();
    assert_eq!(status, 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn update_swaps_the_image_without_failing_in_flight_requests() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let image = hello_ref().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("hello-v2.wasm");
    std::fs::copy(trellis_tests::component_path("http-hello").unwrap(), &copy).unwrap();
    let image2 = format!("file://{}", copy.display());
    scale(&mut l, host.id(), &image, "hello", 4).await.unwrap();
    let port = expose_http(&mut l, host.id(), "hello").await.unwrap();
    http_until(port, "/", 200).await.unwrap();
    let slow = tokio::spawn(async move { http_get(port, "/sleep?ms=1000").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = l
        .ctl
        .update_component(&UpdateComponentCommand {
            component_id: "hello".into(),
            host_id: host.id().into(),
            new_component_ref: image2.clone(),
            annotations: None,
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
    let img = image2.clone();
    l.events
        .wait_for_type(
            "component_scaled",
            |e| e["data"]["image_ref"] == img.as_str(),
            WAIT,
        )
        .await
        .unwrap();
    let (status, body) = slow.await.unwrap().unwrap();
    assert_eq!((status, body.trim()), (200, "slept 1000"));
    let inv = l.ctl.get_host_inventory(host.id()).await.unwrap();
    assert_eq!(inv.components[0].image_ref, image2);
    assert_eq!(inv.components[0].max_instances, 4);
    assert_eq!(http_get(port, "/").await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn rescale_with_another_image_keeps_the_old_one_unless_allowed() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let image = hello_ref().unwrap();
    scale(&mut l, host.id(), &image, "hello", 1).await.unwrap();
    let resp = l
        .ctl
        .scale_component(&trellis_interfaces::ctl::ScaleComponentCommand {
            component_ref: "file:///somewhere/else.wasm".into(),
            component_id: "hello".into(),
            max_instances: 3,
            host_id: host.id().into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(resp.success);
    assert!(
        resp.message.contains("keeping that image"),
        "{}",
        resp.message
    );
    l.events
        .wait_for_type(
            "component_scaled",
            |e| e["data"]["max_instances"] == 3,
            WAIT,
        )
        .await
        .unwrap();
    let inv = l.ctl.get_host_inventory(host.id()).await.unwrap();
    assert_eq!(inv.components[0].image_ref, image);
    assert_eq!(inv.components[0].max_instances, 3);
}
