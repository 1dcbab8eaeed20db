//! A host's instance slots (its pooling allocator's capacity) go to calls
//! first: instances that only wait for a call (idle reused instances, and
//! spares made ahead for an export's next call) are torn down when a call
//! finds no slot free, and the liveness beat counts them. Real
//! nats-server, real hosts with 16 slots, real components.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test loudly on purpose"
)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{
    TestLattice, answered, beat_until, counts_until, expose_http, http_get, http_until, image,
    pong_link, put_link, scale_with,
};
use trellis_interfaces::ctl::ScaleComponentCommand;
use trellis_interfaces::liveness::InstanceSlots;
use trellis_tests::HostProcess;

/// A host with 16 instance slots: 16 × 64 MiB of instance memory.
async fn host_with_16_slots(l: &TestLattice) -> HostProcess {
    HostProcess::start(
        l.host_options()
            .arg("--max-linear-memory-bytes=67108864")
            .arg("--max-memory-bytes=1073741824"),
    )
    .await
    .unwrap()
}

/// What the beat of a host with 16 slots says with `free` slots and `idle`
/// instances waiting for a call.
fn slots_of_16(free: u32, idle: u32) -> InstanceSlots {
    InstanceSlots {
        slots: 16,
        free,
        idle,
    }
}

/// `component_limits` from `pairs`.
fn limits(pairs: &[(&str, &str)]) -> Option<std::collections::BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
    )
}

/// Scales `name` (a guest component) as `id` on `host`, up to 16 instances.
fn on(
    host: &str,
    id: &str,
    name: &str,
    limits: Option<std::collections::BTreeMap<String, String>>,
) -> ScaleComponentCommand {
    ScaleComponentCommand {
        component_ref: image(name),
        component_id: id.into(),
        max_instances: 16,
        host_id: host.into(),
        component_limits: limits,
        ..Default::default()
    }
}

/// `n` concurrent `GET path` on `port`.
fn concurrently(
    port: u16,
    path: &'static str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<(u16, String)>> {
    (0..n)
        .map(|_| tokio::spawn(async move { http_get(port, path).await.unwrap() }))
        .collect()
}

/// Idle reused instances hold host instance slots, but never keep another
/// call waiting: a call that finds no slot free has them torn down first.
/// Host `b` has 16 slots. 7 concurrent calls leave 7 idle `reuser`
/// instances (each was kept because more than 8 slots were free); 9 long
/// calls of `busy` take the other 9 slots; then a call of `short` (1 s
/// budget) must still run (without eviction it would wait for a slot until
/// its budget ran out), and `reuser`'s next call gets a fresh instance.
/// Once all 16 slots run calls, a call that cannot get one fails naming
/// the host's pool, not the component's limit.
#[tokio::test(flavor = "multi_thread")]
async fn idle_reused_instances_give_their_slots_to_waiting_calls() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = host_with_16_slots(&l).await;
    let targets = [
        ("reuser", limits(&[("max_instance_reuse", "100")])),
        ("busy", limits(&[("max_execution_time", "20000")])),
        ("short", limits(&[("max_execution_time", "1000")])),
    ];
    let mut ports = HashMap::new();
    for (target, limits) in targets {
        let caller = format!("pinger-{target}");
        let e = scale_with(&mut l, on(a.id(), &caller, "pinger", None)).await;
        assert!(e.unwrap()["type"].as_str().unwrap().ends_with("scaled"));
        let e = scale_with(&mut l, on(b.id(), target, "ponger", limits)).await;
        assert!(e.unwrap()["type"].as_str().unwrap().ends_with("scaled"));
        put_link(&l, pong_link(&caller, target, "default")).await;
        let port = expose_http(&mut l, a.id(), &caller).await.unwrap();
        ports.insert(target, port);
    }
    // Only `reuser` is called before the test proper: an export that was
    // called makes its next instance ahead (a spare, holding a slot), which
    // would blur the count of free slots. The others are ready once their
    // scale and link events are in (their subscriptions come first).
    let ready = http_until(ports["reuser"], "/", 200).await.unwrap();
    assert_eq!(ready, "ping -> pong\n");
    let served = counts_until(&l, &b, |c| c.served >= 1).await.served;
    // Long enough that the 7 calls overlap even on a loaded machine: 7
    // instances at once, each kept when it ends (9 slots stay free).
    for done in concurrently(ports["reuser"], "/work?ms=1500", 7) {
        let (status, body) = done.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // The idle instances are there: the next call reuses one, and the
    // host's beat counts them.
    let again = answered(ports["reuser"], 1).await.unwrap();
    assert!(again[0] >= 2, "a reused instance: {again:?}");
    let slots = beat_until(&l, &b, |beat| {
        beat.calls.is_some_and(|c| c.served >= served + 8)
    })
    .await
    .instances;
    assert_eq!(slots, Some(slots_of_16(9, 7)));
    let busy = concurrently(ports["busy"], "/work?ms=8000", 9);
    counts_until(&l, &b, |c| c.served >= served + 7 + 1 + 9).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = http_get(ports["short"], "/").await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "ping -> pong\n"),
        "a call waiting for a slot held by idle instances"
    );
    assert_eq!(
        answered(ports["reuser"], 1).await.unwrap(),
        [1],
        "the idle instances were torn down"
    );
    // With every slot running a call and none idle, a call that cannot get
    // one in time fails saying the host is full, not the component.
    let more = concurrently(ports["busy"], "/work?ms=8000", 7);
    counts_until(&l, &b, |c| c.served >= served + 7 + 1 + 9 + 2 + 7).await;
    let (status, body) = http_get(ports["short"], "/").await.unwrap();
    assert_ne!(status, 200, "{body}");
    assert!(
        body.contains("instance pool is full (16 instances running)")
            && body.contains("component `short`")
            && body.contains("--max-memory-bytes"),
        "{body}"
    );
    for done in busy.into_iter().chain(more) {
        let (status, body) = done.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
}

/// Spares (an export's next instance, made ahead once the export has been
/// called) hold host instance slots too, and give them up the same way.
/// Host `b` has 16 slots; a spare is made only while more than 8 are free.
/// `busy` and `p1`…`p7` are called once each: 8 spares, 8 slots free (the
/// beat says so). 9 long calls of `busy` take its spare and the 8 free
/// slots; a call of `short` (1 s budget) must still run, which it can only
/// if the spares are torn down (without that it would wait for a slot
/// until its budget ran out).
#[tokio::test(flavor = "multi_thread")]
async fn spares_give_their_slots_to_waiting_calls() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = host_with_16_slots(&l).await;
    let targets = ["busy", "short", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];
    for target in targets {
        let limits = match target {
            "busy" => limits(&[("max_execution_time", "20000")]),
            "short" => limits(&[("max_execution_time", "1000")]),
            _ => None,
        };
        let e = scale_with(&mut l, on(b.id(), target, "ponger", limits)).await;
        assert!(e.unwrap()["type"].as_str().unwrap().ends_with("scaled"));
    }
    // `pinger` reaches `short` by its default link and `p1`…`p7` by name;
    // `pinger-busy` reaches `busy`.
    let mut ports = HashMap::new();
    for (caller, links) in [
        (
            "pinger",
            vec![
                ("short", "default"),
                ("p1", "p1"),
                ("p2", "p2"),
                ("p3", "p3"),
                ("p4", "p4"),
                ("p5", "p5"),
                ("p6", "p6"),
                ("p7", "p7"),
            ],
        ),
        ("pinger-busy", vec![("busy", "default")]),
    ] {
        let e = scale_with(&mut l, on(a.id(), caller, "pinger", None)).await;
        assert!(e.unwrap()["type"].as_str().unwrap().ends_with("scaled"));
        for (target, name) in links {
            put_link(&l, pong_link(caller, target, name)).await;
        }
        ports.insert(caller, expose_http(&mut l, a.id(), caller).await.unwrap());
    }
    // One call each (`short` is not called: its spare would take a slot).
    let ready = http_until(ports["pinger-busy"], "/", 200).await.unwrap();
    assert_eq!(ready, "ping -> pong\n");
    for p in 1..=7 {
        let path = format!("/link/p{p}");
        let body = http_until(ports["pinger"], &path, 200).await.unwrap();
        assert_eq!(body, format!("ping via p{p} -> pong\n"));
    }
    let slots = beat_until(&l, &b, |beat| beat.instances.is_some_and(|i| i.idle == 8))
        .await
        .instances;
    assert_eq!(
        slots,
        Some(slots_of_16(8, 8)),
        "8 spares, each holding a slot"
    );
    let served = counts_until(&l, &b, |c| c.served >= 8).await.served;
    let busy = concurrently(ports["pinger-busy"], "/work?ms=8000", 9);
    counts_until(&l, &b, |c| c.served >= served + 9).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = http_get(ports["pinger"], "/").await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "ping -> pong\n"),
        "a call waiting for a slot held by spares"
    );
    for done in busy {
        let (status, body) = done.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
}
