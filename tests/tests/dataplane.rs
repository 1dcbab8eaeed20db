//! Component-to-component calls over links: across hosts (wRPC over NATS,
//! load-spread over every host that runs the target), in-process when the
//! target runs on the caller's host, link names per invocation, missing links,
//! link config, deadlines. Real nats-server, real hosts, real components
//! (`pinger` imports `example:pong/pingpong`, `ponger` exports it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test loudly on purpose"
)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{
    TestLattice, WAIT, answered, counts_until, expose_http, http_get, http_until, image, pong_link,
    put_link, scale, scale_with,
};
use futures::StreamExt as _;
use trellis_interfaces::ctl::ScaleComponentCommand;
use trellis_tests::HostProcess;

/// Deploys `pinger` on `caller` (with `instances`), each `(host, ponger id,
/// link name)` target, the links, and an HTTP route to `pinger`; returns the
/// route's port once `GET /` answers through the `default` link.
async fn deploy_pingpong(
    l: &mut TestLattice,
    caller: &str,
    pongs: &[(&str, &str, &str)],
    instances: u32,
) -> u16 {
    scale(l, caller, &image("pinger"), "pinger", instances)
        .await
        .unwrap();
    for (host, id, _) in pongs {
        scale(l, host, &image("ponger"), id, instances)
            .await
            .unwrap();
    }
    let mut linked = Vec::new();
    for (_, id, name) in pongs {
        if !linked.contains(&(id, name)) {
            put_link(l, pong_link("pinger", id, name)).await;
            linked.push((id, name));
        }
    }
    let port = expose_http(l, caller, "pinger").await.unwrap();
    assert_eq!(http_until(port, "/", 200).await.unwrap(), "ping -> pong\n");
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_pong_across_hosts_spreads_calls_over_every_pong_host() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    let c = l.host().await.unwrap();
    let pongs = [(b.id(), "ponger", "default"), (c.id(), "ponger", "default")];
    let port = deploy_pingpong(&mut l, a.id(), &pongs, 4).await;
    // Records, lists, strings and results cross the lattice intact.
    let (status, body) = http_get(port, "/echo?msg=hi&times=3&tags=a,b")
        .await
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "0:hi[a,b]\n1:hi[a,b]\n2:hi[a,b]\n")
    );
    let (status, body) = http_get(port, "/echo?msg=hi&times=101").await.unwrap();
    assert_eq!(status, 400);
    assert_eq!(body, "echo refused: times must be at most 100, got 101\n");

    let calls = 60;
    let requests = (0..calls).map(|_| http_get(port, "/"));
    for result in futures::future::join_all(requests).await {
        assert_eq!(result.unwrap(), (200, "ping -> pong\n".to_string()));
    }
    // NATS spread the queue-group calls over both pong hosts.
    let on_b = counts_until(&l, &b, |c| c.served > 0).await;
    let on_c = counts_until(&l, &c, |c| c.served > 0).await;
    let total = calls + 3;
    let caller = counts_until(&l, &a, |c| c.lattice >= total).await;
    assert_eq!(caller.local, 0, "pong does not run on the caller's host");
    assert_eq!(
        on_b.served + on_c.served,
        caller.lattice,
        "b {on_b:?} c {on_c:?}"
    );
}

/// A served call's instance is torn down after its reply is out, while its
/// instance permit is still held: with one instance allowed, every call of a
/// concurrent burst must still get its turn (none fails as busy, none waits
/// out its deadline).
#[tokio::test(flavor = "multi_thread")]
async fn a_target_limited_to_one_instance_answers_every_call_of_a_burst() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    scale(&mut l, a.id(), &image("pinger"), "pinger", 16)
        .await
        .unwrap();
    scale(&mut l, b.id(), &image("ponger"), "ponger", 1)
        .await
        .unwrap();
    put_link(&l, pong_link("pinger", "ponger", "default")).await;
    let port = expose_http(&mut l, a.id(), "pinger").await.unwrap();
    assert_eq!(http_until(port, "/", 200).await.unwrap(), "ping -> pong\n");

    let started = Instant::now();
    for _ in 0..3 {
        // Each request makes ten `ping()` calls in a row.
        let requests = (0..16).map(|_| http_get(port, "/bench?n=10"));
        for result in futures::future::join_all(requests).await {
            let (status, body) = result.unwrap();
            assert_eq!(status, 200, "{body}");
            assert!(body.starts_with("n=10 "), "{body}");
        }
    }
    // 480 calls, one instance at a time: well under a call's deadline.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the burst took {:?}",
        started.elapsed()
    );
    let served = counts_until(&l, &b, |c| c.served >= 481).await;
    assert_eq!(served.served, 481, "{served:?}");

    // One call at a time: while the export waits for the next call, it
    // makes that call's instance, so calls after the first run on it.
    for _ in 0..5 {
        assert_eq!(
            http_get(port, "/").await.unwrap(),
            (200, "ping -> pong\n".to_string())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = counts_until(&l, &b, |c| c.served >= 486).await;
    assert!(
        after.served_ahead >= served.served_ahead + 4,
        "before {served:?} after {after:?}"
    );
}

/// `component_limits` with `max_instance_reuse` = `value` and a 500 ms
/// execution limit.
fn reuse_limits(value: &str) -> Option<std::collections::BTreeMap<String, String>> {
    Some(
        [
            ("max_instance_reuse".to_string(), value.to_string()),
            ("max_execution_time".to_string(), "500".to_string()),
        ]
        .into(),
    )
}

/// Instance reuse is opt-in. By default every call, served or in-process,
/// runs on a fresh instance (`answered` is always 1). A component scaled
/// with `component_limits.max_instance_reuse = 3` keeps an answered
/// instance for its next calls, three calls per instance, across hosts and
/// in-process alike. A value that is not a positive integer is refused
/// with an error naming the key. A rescale without limits keeps the value;
/// one with limits that do not name it restores the host's default (and
/// sets the execution limit they name).
#[tokio::test(flavor = "multi_thread")]
async fn instances_are_reused_only_when_the_component_opts_in() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    let start = |host: &str, id: &str, name: &str, limits| ScaleComponentCommand {
        component_ref: image(name),
        component_id: id.into(),
        max_instances: 4,
        host_id: host.into(),
        component_limits: limits,
        ..Default::default()
    };
    // (caller, target, target's host, target's reuse)
    let pairs = [
        ("pinger", "ponger", b.id(), None),
        ("pinger-far", "ponger-far", b.id(), reuse_limits("3")),
        ("pinger-near", "ponger-near", a.id(), reuse_limits("3")),
    ];
    let mut ports = Vec::new();
    for (caller, target, host, limits) in pairs.clone() {
        let e = scale_with(&mut l, start(a.id(), caller, "pinger", None)).await;
        assert!(e.unwrap()["type"].as_str().unwrap().ends_with("scaled"));
        let e = scale_with(&mut l, start(host, target, "ponger", limits)).await;
        assert!(e.unwrap()["type"].as_str().unwrap().ends_with("scaled"));
        put_link(&l, pong_link(caller, target, "default")).await;
        let port = expose_http(&mut l, a.id(), caller).await.unwrap();
        assert_eq!(http_until(port, "/", 200).await.unwrap(), "ping -> pong\n");
        ports.push(port);
    }
    let before = counts_until(&l, &b, |c| c.served >= 2).await;
    assert_eq!(
        answered(ports[0], 5).await.unwrap(),
        [1, 1, 1, 1, 1],
        "default: fresh instances"
    );
    // The readiness `ping` above was the first instance's first call.
    let reused = [2, 3, 1, 2, 3, 1, 2];
    assert_eq!(answered(ports[1], 7).await.unwrap(), reused, "across hosts");
    assert_eq!(answered(ports[2], 7).await.unwrap(), reused, "in-process");
    let far = counts_until(&l, &b, |c| c.served >= before.served + 12).await;
    assert_eq!(far.reused - before.reused, 5, "{before:?} {far:?}");
    let near = counts_until(&l, &a, |c| c.local >= 8).await;
    assert_eq!(near.reused, 5, "{near:?}");

    // An instance whose call failed (here: it ran out of time) is never
    // reused: the next call gets a fresh one.
    assert_eq!(answered(ports[1], 2).await.unwrap(), [3, 1]);
    let (status, body) = http_get(ports[1], "/work?ms=3000").await.unwrap();
    assert_ne!(status, 200, "{body}");
    assert_eq!(
        answered(ports[1], 1).await.unwrap(),
        [1],
        "the timed-out instance"
    );

    let bad = start(b.id(), "ponger-bad", "ponger", reuse_limits("0"));
    let failed = scale_with(&mut l, bad).await.unwrap();
    assert!(
        failed["type"]
            .as_str()
            .unwrap()
            .ends_with("component_scale_failed"),
        "{failed}"
    );
    assert!(
        failed.to_string().contains("max_instance_reuse"),
        "the error names the key: {failed}"
    );

    // Scaling a running component can turn reuse on; a bad value fails the
    // scale and leaves it as it was.
    let rescale = start(b.id(), "ponger", "ponger", reuse_limits("2"));
    let e = scale_with(&mut l, rescale).await.unwrap();
    assert!(e["type"].as_str().unwrap().ends_with("scaled"), "{e}");
    assert_eq!(answered(ports[0], 3).await.unwrap(), [1, 2, 1]);
    let bad = start(b.id(), "ponger", "ponger", reuse_limits("many"));
    let failed = scale_with(&mut l, bad).await.unwrap();
    assert!(
        failed.to_string().contains("max_instance_reuse"),
        "{failed}"
    );
    assert_eq!(
        answered(ports[0], 2).await.unwrap(),
        [2, 1],
        "still reusing, by 2"
    );

    // A rescale without `component_limits` keeps the value (`wash scale`
    // without `--max-instance-reuse`); one whose limits do not name it
    // returns the component to the host's default (how wadm applies a
    // manifest version that dropped the field).
    let keep = start(b.id(), "ponger", "ponger", None);
    let e = scale_with(&mut l, keep).await.unwrap();
    assert!(e["type"].as_str().unwrap().ends_with("scaled"), "{e}");
    let seen = answered(ports[0], 4).await.unwrap();
    assert!(seen.contains(&2), "still reusing: {seen:?}");
    // So is the execution limit set with reuse 2 above (500 ms).
    let (status, body) = http_get(ports[0], "/work?ms=1000").await.unwrap();
    assert_ne!(status, 200, "{body}");
    let limits = Some([("max_execution_time".to_string(), "3000".to_string())].into());
    let reset = start(b.id(), "ponger", "ponger", limits);
    let e = scale_with(&mut l, reset).await.unwrap();
    assert!(e["type"].as_str().unwrap().ends_with("scaled"), "{e}");
    assert_eq!(
        answered(ports[0], 3).await.unwrap(),
        [1, 1, 1],
        "the host's default: a fresh instance per call"
    );
    // The limit the request names (3 s) applies to the calls that follow.
    let (status, body) = http_get(ports[0], "/work?ms=1000").await.unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn co_located_target_is_called_in_process_without_nats() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let port = deploy_pingpong(&mut l, host.id(), &[(host.id(), "ponger", "default")], 4).await;
    // Every wRPC message for ponger would pass through this subscription.
    let mut wire = l
        .client
        .subscribe(format!("{}.ponger.wrpc.>", l.lattice))
        .await
        .unwrap();
    trellis_tests::nats::synced(&l.client).await.unwrap();

    for _ in 0..20 {
        let (status, body) = http_get(port, "/echo?msg=x&times=2").await.unwrap();
        assert_eq!((status, body.as_str()), (200, "0:x[]\n1:x[]\n"));
    }
    let counts = counts_until(&l, &host, |c| c.local >= 21).await;
    assert_eq!(counts.lattice, 0, "{counts:?}");
    assert_eq!(counts.served, 0, "{counts:?}");
    let stray = tokio::time::timeout(Duration::from_millis(300), wire.next()).await;
    assert!(stray.is_err(), "a local call went over NATS: {stray:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_over_a_missing_link_fails_fast_and_names_it() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    scale(&mut l, host.id(), &image("pinger"), "pinger", 1)
        .await
        .unwrap();
    let port = expose_http(&mut l, host.id(), "pinger").await.unwrap();
    let body = http_until(port, "/", 500).await.unwrap();
    assert!(
        body.contains("component `pinger` has no link named `default` for `example:pong/pingpong`"),
        "{body}"
    );
    let started = Instant::now();
    let (status, _) = http_get(port, "/").await.unwrap();
    assert_eq!(status, 500);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );

    // A link to a target that runs nowhere: the lattice has no responder, and
    // the call fails at once instead of waiting out the RPC timeout.
    put_link(&l, pong_link("pinger", "ponger", "default")).await;
    // Until the host's view has the link, the answer is still the 500 above.
    let body = trellis_tests::eventually(WAIT, || async move {
        let (status, body) = http_get(port, "/").await?;
        anyhow::ensure!(
            status == 500 && !body.contains("has no link named"),
            "{status}: {body}"
        );
        Ok(body)
    })
    .await
    .unwrap();
    let started = Instant::now();
    let (status, again) = http_get(port, "/").await.unwrap();
    assert_eq!(status, 500);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(body.contains("call to `ponger`"), "{body}");
    assert!(again.contains("nothing serves"), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn link_names_are_chosen_per_invocation() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    let c = l.host().await.unwrap();
    let pongs = [
        (b.id(), "pong-main", "default"),
        (c.id(), "pong-backup", "backup"),
    ];
    let port = deploy_pingpong(&mut l, a.id(), &pongs, 8).await;
    assert_eq!(
        http_until(port, "/link/backup", 200).await.unwrap(),
        "ping via backup -> pong\n"
    );
    let (status, body) = http_get(port, "/link/nope").await.unwrap();
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "set-link-name refused: component `pinger` has no link named `nope` for example:pong/pingpong\n"
    );
    // Interleaved concurrent invocations: the choice of one never leaks into
    // another (wasmCloud 1.x kept it per component).
    let n = 40;
    let requests = (0..n).map(|i| {
        let path = if i % 2 == 0 { "/" } else { "/link/backup" };
        http_get(port, path)
    });
    for r in futures::future::join_all(requests).await {
        assert_eq!(r.unwrap().0, 200);
    }
    let main = counts_until(&l, &b, |c| c.served > n / 2).await;
    let backup = counts_until(&l, &c, |c| c.served > n / 2).await;
    assert_eq!(main.served, 1 + n / 2, "default link calls");
    assert_eq!(backup.served, 1 + n / 2, "backup link calls");
}

#[tokio::test(flavor = "multi_thread")]
async fn link_config_reaches_the_component_on_both_sides() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    l.ctl
        .put_config(
            "as-source",
            &HashMap::from([("greeting".to_string(), "from my link".to_string())]),
        )
        .await
        .unwrap();
    l.ctl
        .put_config(
            "as-target",
            &HashMap::from([("colour".to_string(), "linked-red".to_string())]),
        )
        .await
        .unwrap();
    scale(&mut l, host.id(), &image("http-config"), "configured", 1)
        .await
        .unwrap();
    let port = expose_http(&mut l, host.id(), "configured").await.unwrap();
    assert_eq!(http_until(port, "/greeting", 200).await.unwrap(), "<unset>");
    let mut out = pong_link("configured", "somewhere", "default");
    out.source_config = vec!["as-source".into()];
    put_link(&l, out).await;
    let mut inbound = pong_link("caller", "configured", "default");
    inbound.target_config = vec!["as-target".into()];
    put_link(&l, inbound).await;
    trellis_tests::eventually(WAIT, || async {
        let (_, greeting) = http_get(port, "/greeting").await?;
        let (_, colour) = http_get(port, "/colour").await?;
        anyhow::ensure!(
            greeting == "from my link" && colour == "linked-red",
            "{greeting} {colour}"
        );
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_remote_target_is_bounded_by_the_rpc_timeout() {
    let mut l = TestLattice::start().await.unwrap();
    let a = HostProcess::start(l.host_options().arg("--rpc-timeout-ms").arg("1000"))
        .await
        .unwrap();
    let b = l.host().await.unwrap();
    let port = deploy_pingpong(&mut l, a.id(), &[(b.id(), "ponger", "default")], 2).await;
    assert_eq!(
        http_until(port, "/work?ms=10", 200).await.unwrap(),
        "worked 10 ms\n"
    );
    let started = Instant::now();
    let (status, body) = http_get(port, "/work?ms=5000").await.unwrap();
    let took = started.elapsed();
    assert_eq!(status, 500, "{body}");
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert!(body.contains("call to `ponger`"), "{body}");
}

/// The callee host runs a served call on the export's own task until the call
/// first waits (no spawn for a call that just computes and answers): a call
/// that computes for long must still not hold back the next calls of the
/// same export (served stores yield at every epoch tick).
#[tokio::test(flavor = "multi_thread")]
async fn a_long_served_call_does_not_hold_back_calls_of_the_same_export() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    let port = deploy_pingpong(&mut l, a.id(), &[(b.id(), "ponger", "default")], 4).await;
    assert_eq!(
        http_until(port, "/work?ms=1", 200).await.unwrap(),
        "worked 1 ms\n"
    );
    let started = Instant::now();
    let long = tokio::spawn(http_get(port, "/work?ms=2000"));
    // Short calls of the same export while the long one computes on `b`;
    // the ones sent 300 ms after it are surely behind it on the wire.
    let mut quick_while_long = 0;
    while !long.is_finished() {
        let sent = Instant::now();
        let (status, body) = http_get(port, "/work?ms=1").await.unwrap();
        assert_eq!((status, body.as_str()), (200, "worked 1 ms\n"));
        if sent - started > Duration::from_millis(300)
            && sent.elapsed() < Duration::from_millis(300)
            && !long.is_finished()
        {
            quick_while_long += 1;
        }
    }
    let (status, body) = long.await.unwrap().unwrap();
    assert_eq!((status, body.as_str()), (200, "worked 2000 ms\n"));
    assert!(
        quick_while_long >= 3,
        "only {quick_while_long} short calls answered promptly during the long one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lattice_calls_carry_caller_link_deadline_and_trace_headers() {
    use http_body_util::{BodyExt as _, Empty};
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    let port = deploy_pingpong(&mut l, a.id(), &[(b.id(), "ponger", "default")], 2).await;
    // A plain (non-queue) subscription sees a copy of every call to ponger.
    let mut wire = l
        .client
        .subscribe(format!("{}.ponger.wrpc.>", l.lattice))
        .await
        .unwrap();
    trellis_tests::nats::synced(&l.client).await.unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/")
        .header("host", format!("127.0.0.1:{port}"))
        .header("traceparent", traceparent)
        .header("tracestate", "vendor=abc")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await.unwrap();
    let msg = tokio::time::timeout(WAIT, wire.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        msg.subject.as_str(),
        format!(
            "{}.ponger.wrpc.0.0.1.example:pong/pingpong@0.1.0.ping",
            l.lattice
        )
    );
    let headers = msg.headers.expect("lattice calls carry headers");
    let get = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
    assert_eq!(get("source-id").as_deref(), Some("pinger"));
    assert_eq!(get("link-name").as_deref(), Some("default"));
    assert_eq!(get("traceparent").as_deref(), Some(traceparent));
    assert_eq!(get("tracestate").as_deref(), Some("vendor=abc"));
    let budget: u64 = get("trellis-timeout-ms").unwrap().parse().unwrap();
    assert!(budget > 0 && budget <= 10_000, "{budget}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_lattice_call_gets_an_error_reply_and_the_host_carries_on() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    scale(&mut l, host.id(), &image("ponger"), "ponger", 2)
        .await
        .unwrap();
    let subject = format!(
        "{}.ponger.wrpc.0.0.1.example:pong/pingpong@0.1.0.echo",
        l.lattice
    );
    // `echo` takes a record {string, u32, list<string>}: a string length far
    // beyond the payload, then garbage.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("trellis-framing", "1");
    headers.insert("source-id", "fuzzer");
    let reply = trellis_tests::eventually(WAIT, || {
        let client = l.client.clone();
        let subject = subject.clone();
        let headers = headers.clone();
        async move {
            let msg = client
                .request_with_headers(
                    subject,
                    headers,
                    bytes::Bytes::from_static(b"\xff\xff\xff\x0fjunk"),
                )
                .await?;
            Ok(msg)
        }
    })
    .await
    .unwrap();
    let headers = reply.headers.expect("an error reply carries headers");
    let kind = headers.get("trellis-error").map(|v| v.as_str().to_string());
    assert!(
        matches!(kind.as_deref(), Some("decode") | Some("internal")),
        "{kind:?} {:?}",
        String::from_utf8_lossy(&reply.payload)
    );
    // The host still serves well-formed calls.
    scale(&mut l, host.id(), &image("pinger"), "pinger", 2)
        .await
        .unwrap();
    put_link(&l, pong_link("pinger", "ponger", "default")).await;
    let port = expose_http(&mut l, host.id(), "pinger").await.unwrap();
    let body = http_until(port, "/echo?msg=ok&times=1", 200).await.unwrap();
    assert_eq!(body, "0:ok[]\n");
}
