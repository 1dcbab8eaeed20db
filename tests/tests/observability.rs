//! Observability end to end: real `trellis` hosts (and a provider process)
//! on a real nats-server export OTLP to a receiver started by the test
//! (`observability/otlp.rs`: OTLP/HTTP and OTLP/gRPC on one port), which
//! decodes the protobuf export requests of traces, metrics and logs.
//!
//! - `pinger` (HTTP front) on host A calls `ponger` on host B (and
//!   `ponger-local` on A for the in-process path). Host A is configured with
//!   flags (`--enable-observability --override-observability-endpoint`),
//!   host B with the environment (`WASMCLOUD_OBSERVABILITY_ENABLED`,
//!   `OTEL_EXPORTER_OTLP_ENDPOINT`).
//! - Three processes: `system-info-caller` on host A calls the
//!   `system-info` provider (a process of host B), which calls back a
//!   `system-info-caller` on host B; host B and its provider export over
//!   gRPC (the provider gets the host's settings in `HostData.otel_config`).
//! - Logs: a component's `wasi:logging` line arrives as an OTLP log record
//!   carrying the trace and span id of its invocation.
//!
//! Build first: `cargo build -p trellis-host -p system-info-provider`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test loudly on purpose"
)]

mod common;
#[path = "observability/otlp.rs"]
mod otlp;

use common::{
    TestLattice, WAIT, expose_http, http_until, image, pong_link, scale, start_provider,
    system_info_link, system_info_provider_ref,
};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use otlp::{OtlpReceiver, SpanRecord, Transport};
use trellis_tests::{HostProcess, eventually};

/// Span-processor delay and metric interval of the hosts under test, in ms:
/// short, so the test waits on exports for well under a second.
const EXPORT_DELAY_MS: &str = "100";
const METRIC_INTERVAL_MS: &str = "300";

/// Options of a host exporting everything to `receiver` over OTLP/HTTP (by
/// flags), with a short span-export delay.
fn exporting_to(l: &TestLattice, receiver: &OtlpReceiver) -> trellis_tests::HostOptions {
    l.host_options()
        .arg("--enable-observability")
        .arg("--override-observability-endpoint")
        .arg(receiver.url())
        .env("OTEL_BSP_SCHEDULE_DELAY", EXPORT_DELAY_MS)
}

/// Host A (flags) and host B (environment), both exporting to `receiver`.
async fn traced_hosts(
    l: &TestLattice,
    receiver: &OtlpReceiver,
) -> anyhow::Result<(HostProcess, HostProcess)> {
    let a = HostProcess::start(
        exporting_to(l, receiver).env("OTEL_METRIC_EXPORT_INTERVAL", METRIC_INTERVAL_MS),
    )
    .await?;
    let b = HostProcess::start(
        l.host_options()
            .env("WASMCLOUD_OBSERVABILITY_ENABLED", "true")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url())
            .env("OTEL_BSP_SCHEDULE_DELAY", EXPORT_DELAY_MS)
            .env("OTEL_METRIC_EXPORT_INTERVAL", METRIC_INTERVAL_MS),
    )
    .await?;
    Ok((a, b))
}

/// `pinger` on A linked (`default`) to `ponger` on B and (`local`) to
/// `ponger-local` on A; returns the HTTP port of `pinger`.
async fn deploy(l: &mut TestLattice, a: &HostProcess, b: &HostProcess) -> u16 {
    scale(l, a.id(), &image("pinger"), "pinger", 4)
        .await
        .unwrap();
    scale(l, b.id(), &image("ponger"), "ponger", 4)
        .await
        .unwrap();
    scale(l, a.id(), &image("ponger"), "ponger-local", 4)
        .await
        .unwrap();
    for link in [
        pong_link("pinger", "ponger", "default"),
        pong_link("pinger", "ponger-local", "local"),
    ] {
        let resp = l.ctl.put_link(&link).await.unwrap();
        assert!(resp.success, "link put rejected: {}", resp.message);
    }
    let port = expose_http(l, a.id(), "pinger").await.unwrap();
    assert_eq!(http_until(port, "/", 200).await.unwrap(), "ping -> pong\n");
    port
}

/// `GET path`, with `traceparent` when given; returns status and body.
async fn get(port: u16, path: &str, traceparent: Option<&str>) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::get(path).header("host", format!("127.0.0.1:{port}"));
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let resp = sender
        .send_request(req.body(Empty::<bytes::Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Waits until the trace `trace_id` has `count` spans, and returns them.
async fn trace_of(receiver: &OtlpReceiver, trace_id: &str, count: usize) -> Vec<SpanRecord> {
    eventually(WAIT, || async move {
        let spans = receiver.trace(trace_id);
        anyhow::ensure!(
            spans.len() >= count,
            "trace {trace_id} has {} of {count} spans: {spans:#?}",
            spans.len()
        );
        Ok(spans)
    })
    .await
    .unwrap()
}

/// The one span named `name` whose parent is `parent`.
fn child<'a>(spans: &'a [SpanRecord], parent: &str, name: &str) -> &'a SpanRecord {
    let found: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.parent == parent && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one `{name}` under {parent}: {spans:#?}"
    );
    found.first().copied().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_get_is_one_trace_across_two_hosts() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let mut l = TestLattice::start().await.unwrap();
    let (a, b) = traced_hosts(&l, &receiver).await.unwrap();
    let port = deploy(&mut l, &a, &b).await;

    // Over the lattice: the caller's trace context is honoured.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    assert_eq!(
        get(port, "/", Some(&traceparent)).await,
        (200, "ping -> pong\n".into())
    );
    let spans = trace_of(&receiver, trace_id, 4).await;
    assert_eq!(spans.len(), 4, "{spans:#?}");

    let ingress = child(&spans, caller_span, "http.server.request");
    assert_eq!(ingress.process, a.id());
    assert_eq!(ingress.attr("http.request.method"), "GET");
    assert_eq!(ingress.attr("url.path"), "/");
    assert_eq!(ingress.attr("http.response.status_code"), "200");
    assert_eq!(ingress.attr("component.id"), "pinger");
    assert_eq!(ingress.kind, 2, "a server span: {ingress:?}");
    assert_eq!(ingress.status, 0, "unset on success: {ingress:?}");
    // Host and lattice are resource attributes of the exporting process.
    assert_eq!(ingress.resource["host"], a.id());
    assert_eq!(ingress.resource["lattice"], l.lattice);

    // The ingress span is also the invocation span of the component it
    // routes to: host A has no `component.invoke` of its own.
    assert!(
        !spans
            .iter()
            .any(|s| s.name == "component.invoke" && s.process == a.id()),
        "{spans:#?}"
    );

    let call = child(&spans, &ingress.span_id, "link.call");
    assert_eq!(call.process, a.id());
    assert_eq!(call.attr("component.id"), "pinger");
    assert_eq!(call.attr("link.target"), "ponger");
    assert_eq!(call.attr("link.name"), "default");
    assert_eq!(call.attr("wit.interface"), "example:pong/pingpong@0.1.0");
    assert_eq!(call.attr("wit.function"), "ping");
    assert_eq!(call.attr("call.path"), "lattice");

    let served = child(&spans, &call.span_id, "lattice.serve");
    assert_eq!(served.process, b.id(), "served on the other host process");
    assert_eq!(served.resource["host"], b.id());
    assert_eq!(served.attr("component.id"), "ponger");
    assert_eq!(served.attr("source.id"), "pinger");
    assert_eq!(served.attr("link.name"), "default");
    assert_eq!(served.attr("wit.function"), "ping");

    let ponger = child(&spans, &served.span_id, "component.invoke");
    assert_eq!(ponger.process, b.id());
    assert_eq!(ponger.attr("component.id"), "ponger");
    assert_eq!(ponger.attr("wit.interface"), "example:pong/pingpong@0.1.0");
    assert_eq!(ponger.attr("wit.function"), "ping");
    assert_eq!(ponger.resource["lattice"], l.lattice);

    // `set-link-name` picks another link mid-invocation, and the target runs
    // on the caller's host: the in-process call stays in the same trace.
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
    assert_eq!(
        get(port, "/link/local", Some(&traceparent)).await,
        (200, "ping via local -> pong\n".into())
    );
    let spans = trace_of(&receiver, trace_id, 3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let ingress = child(&spans, "b7ad6b7169203331", "http.server.request");
    let call = child(&spans, &ingress.span_id, "link.call");
    assert_eq!(call.attr("link.name"), "local");
    assert_eq!(call.attr("link.target"), "ponger-local");
    assert_eq!(call.attr("call.path"), "local");
    let local = child(&spans, &call.span_id, "component.invoke");
    assert_eq!(local.attr("component.id"), "ponger-local");
    assert_eq!(local.process, a.id());

    // Without `traceparent` the ingress starts a new trace, which still
    // reaches the other host.
    assert_eq!(get(port, "/", None).await.0, 200);
    let (a_id, b_id) = (a.id().to_string(), b.id().to_string());
    eventually(WAIT, || {
        let spans = receiver.spans();
        let (a_id, b_id) = (a_id.clone(), b_id.clone());
        async move {
            let root = spans
                .iter()
                .filter(|s| {
                    s.name == "http.server.request" && s.parent.is_empty() && s.process == a_id
                })
                .find(|root| {
                    spans.iter().any(|s| {
                        s.trace_id == root.trace_id
                            && s.name == "component.invoke"
                            && s.attr("component.id") == "ponger"
                            && s.process == b_id
                    })
                });
            anyhow::ensure!(root.is_some(), "no new root trace reached host B");
            Ok(())
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn invocation_metrics_count_every_request() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let mut l = TestLattice::start().await.unwrap();
    let (a, b) = traced_hosts(&l, &receiver).await.unwrap();
    let port = deploy(&mut l, &a, &b).await;

    // Every warm-up invocation has finished; two exports later the
    // cumulative counters hold all of them.
    let seen = receiver.metric_exports();
    eventually(WAIT, || async {
        anyhow::ensure!(receiver.metric_exports() >= seen + 4, "waiting for exports");
        Ok(())
    })
    .await
    .unwrap();
    const INVOCATIONS: &str = "wasmcloud_host.component.invocations";
    const DURATION: &str = "wasmcloud_host.handle_rpc_message.duration";
    const ERRORS: &str = "wasmcloud_host.component.invocation.errors";
    const ACTIVE: &str = "wasmcloud_host.component.active_instances";
    let count = |host: &str, id: &str| {
        receiver
            .latest(host, INVOCATIONS, id)
            .map_or(0, |p| p.value)
    };
    let errors = |host: &str, id: &str| receiver.latest(host, ERRORS, id).map_or(0, |p| p.value);
    let base_pinger = count(a.id(), "pinger");
    let base_ponger = count(b.id(), "ponger");
    let base_errors = (errors(a.id(), "pinger"), errors(b.id(), "ponger"));
    assert!(base_pinger >= 1 && base_ponger >= 1, "warm-up not counted");

    let requests = 7;
    for _ in 0..requests {
        assert_eq!(get(port, "/", None).await, (200, "ping -> pong\n".into()));
    }
    eventually(WAIT, || async {
        let (p, q) = (count(a.id(), "pinger"), count(b.id(), "ponger"));
        anyhow::ensure!(
            p == base_pinger + requests && q == base_ponger + requests,
            "pinger {p} (base {base_pinger}), ponger {q} (base {base_ponger})"
        );
        Ok(())
    })
    .await
    .unwrap();

    let pong = receiver.latest(b.id(), INVOCATIONS, "ponger").unwrap();
    assert_eq!(pong.attrs["host"], b.id());
    assert_eq!(pong.attrs["lattice"], l.lattice);
    assert_eq!(pong.attrs["operation"], "example:pong/pingpong@0.1.0/ping");
    assert!(
        pong.attrs["component.ref"].ends_with("ponger.wasm"),
        "{pong:?}"
    );
    let ping = receiver.latest(a.id(), INVOCATIONS, "pinger").unwrap();
    assert_eq!(ping.attrs["host"], a.id());
    // One duration sample per invocation; no new errors; nothing in flight.
    let latest_at = |host: &str, name: &str, id: &str, export: usize| {
        receiver
            .latest(host, name, id)
            .filter(|p| p.export >= export)
            .map(|p| p.value)
    };
    assert_eq!(
        latest_at(b.id(), DURATION, "ponger", pong.export),
        Some(pong.value)
    );
    assert_eq!(
        latest_at(a.id(), DURATION, "pinger", ping.export),
        Some(ping.value)
    );
    assert_eq!(
        (errors(a.id(), "pinger"), errors(b.id(), "ponger")),
        base_errors
    );
    assert_eq!(latest_at(b.id(), ACTIVE, "ponger", pong.export), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_exported_with_observability_off() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let mut l = TestLattice::start().await.unwrap();
    // The standard variables alone name a collector but do not turn export on.
    let mut host = HostProcess::start(
        l.host_options()
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url())
            .env("OTEL_BSP_SCHEDULE_DELAY", EXPORT_DELAY_MS)
            .env("OTEL_METRIC_EXPORT_INTERVAL", METRIC_INTERVAL_MS),
    )
    .await
    .unwrap();
    scale(&mut l, host.id(), &common::hello_ref().unwrap(), "hello", 1)
        .await
        .unwrap();
    let port = expose_http(&mut l, host.id(), "hello").await.unwrap();
    http_until(port, "/", 200).await.unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for _ in 0..5 {
        assert_eq!(get(port, "/", Some(traceparent)).await.0, 200);
    }
    // A graceful stop flushes whatever an exporter would hold.
    host.signal_term().unwrap();
    host.wait_exit(WAIT).await.unwrap();
    assert_eq!(
        receiver.requests(),
        0,
        "observability off exported something"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn component_logs_arrive_over_otlp_with_their_trace_id() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let mut l = TestLattice::start().await.unwrap();
    let host = HostProcess::start(
        exporting_to(&l, &receiver).env("OTEL_BLRP_SCHEDULE_DELAY", EXPORT_DELAY_MS),
    )
    .await
    .unwrap();
    scale(&mut l, host.id(), &image("http-config"), "configured", 1)
        .await
        .unwrap();
    let port = expose_http(&mut l, host.id(), "configured").await.unwrap();
    http_until(port, "/warm-up", 200).await.unwrap();

    let trace_id = "5b8efff798038103d269b633813fc60c";
    let traceparent = format!("00-{trace_id}-eee19b7ec3c1b174-01");
    assert_eq!(
        get(port, "/colour", Some(&traceparent)).await,
        (200, "<unset>".into())
    );
    let spans = trace_of(&receiver, trace_id, 1).await;
    let ingress = child(&spans, "eee19b7ec3c1b174", "http.server.request");
    assert_eq!(ingress.attr("component.id"), "configured");
    let log = eventually(WAIT, || async {
        receiver
            .logs()
            .into_iter()
            .find(|r| r.body.contains("config lookup for `colour`"))
            .ok_or_else(|| anyhow::anyhow!("no log record yet: {:#?}", receiver.logs()))
    })
    .await
    .unwrap();
    assert_eq!(log.trace_id, trace_id, "{log:#?}");
    assert_eq!(
        log.span_id, ingress.span_id,
        "the log belongs to the invocation (the ingress span)"
    );
    assert_eq!(log.severity, "INFO");
    assert_eq!(
        log.attrs.get("component_id").map(String::as_str),
        Some("configured")
    );
    assert_eq!(log.process, host.id());
    assert_eq!(log.service, "trellis-host");
    assert_eq!(log.transport, Transport::Http);
}

/// HTTP on host A → `caller-a` → `system-info` (provider process of host B)
/// → calls back `caller-b` on host B: one trace over three processes, the
/// last two exporting over gRPC.
#[tokio::test(flavor = "multi_thread")]
async fn one_trace_across_a_host_a_provider_and_another_host() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let mut l = TestLattice::start().await.unwrap();
    let a = HostProcess::start(exporting_to(&l, &receiver))
        .await
        .unwrap();
    let b = HostProcess::start(
        l.host_options()
            .arg("--enable-observability")
            .arg("--observability-protocol")
            .arg("grpc")
            .arg("--override-observability-endpoint")
            .arg(receiver.url())
            .env("OTEL_BSP_SCHEDULE_DELAY", EXPORT_DELAY_MS),
    )
    .await
    .unwrap();
    let caller = image("system-info-caller");
    scale(&mut l, a.id(), &caller, "caller-a", 2).await.unwrap();
    scale(&mut l, b.id(), &caller, "caller-b", 2).await.unwrap();
    let provider_ref = system_info_provider_ref().unwrap();
    start_provider(&mut l, b.id(), "system-info", &provider_ref)
        .await
        .unwrap();
    for link in [
        system_info_link("caller-a", "system-info", "info"),
        system_info_link("system-info", "caller-b", "invoker"),
    ] {
        let resp = l.ctl.put_link(&link).await.unwrap();
        assert!(resp.success, "{}", resp.message);
    }
    let port = expose_http(&mut l, a.id(), "caller-a").await.unwrap();
    let answer = "callback: hello from system-info-caller\n";
    assert_eq!(http_until(port, "/callback", 200).await.unwrap(), answer);

    let trace_id = "7d3c5a1e9f0b4c2d8e6f1a2b3c4d5e6f";
    let caller_span = "1a2b3c4d5e6f7a8b";
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    assert_eq!(
        get(port, "/callback", Some(&traceparent)).await,
        (200, answer.into())
    );
    let spans = trace_of(&receiver, trace_id, 6).await;
    assert_eq!(spans.len(), 6, "{spans:#?}");

    // Host A: ingress (the caller's invocation), its call to the provider.
    let ingress = child(&spans, caller_span, "http.server.request");
    assert_eq!(ingress.attr("component.id"), "caller-a");
    let call = child(&spans, &ingress.span_id, "link.call");
    assert_eq!(call.attr("link.target"), "system-info");
    assert_eq!(call.attr("wit.interface"), "trellis:system-info/info@0.1.0");
    assert_eq!(call.attr("wit.function"), "call-back");
    assert_eq!(call.attr("call.path"), "lattice");
    for s in [ingress, call] {
        assert_eq!((s.process.as_str(), s.transport), (a.id(), Transport::Http));
    }

    // The provider process: serves the call, calls back.
    let served = child(&spans, &call.span_id, "provider.serve");
    assert_eq!(served.service, "system-info");
    assert_eq!(served.transport, Transport::Grpc);
    assert_ne!(served.process, a.id());
    assert_ne!(served.process, b.id());
    assert_eq!(served.attr("provider.id"), "system-info");
    assert_eq!(served.attr("source.id"), "caller-a");
    assert_eq!(served.attr("wit.function"), "call-back");
    let back = child(&spans, &served.span_id, "provider.call");
    assert_eq!(back.process, served.process);
    assert_eq!(back.attr("link.target"), "caller-b");
    assert_eq!(
        back.attr("wit.interface"),
        "trellis:system-info/invoker@0.1.0"
    );
    assert_eq!(back.attr("wit.function"), "call");

    // Host B: the call back served, the component it ran.
    let serve_b = child(&spans, &back.span_id, "lattice.serve");
    assert_eq!(serve_b.attr("source.id"), "system-info");
    let invoke_b = child(&spans, &serve_b.span_id, "component.invoke");
    assert_eq!(invoke_b.attr("component.id"), "caller-b");
    assert_eq!(invoke_b.attr("wit.function"), "call");
    for s in [serve_b, invoke_b] {
        assert_eq!((s.process.as_str(), s.transport), (b.id(), Transport::Grpc));
    }
    let processes: std::collections::BTreeSet<&str> =
        spans.iter().map(|s| s.process.as_str()).collect();
    assert_eq!(processes.len(), 3, "{processes:?}");

    // Host B's own log records arrive over gRPC too (its startup lines).
    eventually(WAIT, || async {
        anyhow::ensure!(
            receiver
                .logs()
                .iter()
                .any(|r| r.process == b.id() && r.transport == Transport::Grpc),
            "no log record from host B over gRPC"
        );
        Ok(())
    })
    .await
    .unwrap();
}

/// Control requests carry the W3C trace context: a request sent with a
/// `traceparent` becomes the parent of the host's `ctl.request` span, and
/// each wadm command (`wadm.command`) is the parent of the `ctl.request` it
/// causes on the host.
#[tokio::test(flavor = "multi_thread")]
async fn control_requests_continue_the_requesters_trace() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let l = TestLattice::start().await.unwrap();
    let host = HostProcess::start(exporting_to(&l, &receiver))
        .await
        .unwrap();

    // A client whose requests carry a fixed trace context.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{parent}-01");
    let traced = trellis_interfaces::client::CtlClient::new(l.client.clone(), l.lattice.clone())
        .with_request_headers(std::sync::Arc::new(move || {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("traceparent", traceparent.as_str());
            Some(headers)
        }));
    traced.get_host_inventory(host.id()).await.unwrap();
    let spans = trace_of(&receiver, trace_id, 1).await;
    let ctl = spans.iter().find(|s| s.name == "ctl.request").unwrap();
    assert_eq!(ctl.parent, parent, "{ctl:?}");
    assert_eq!(
        ctl.attr("messaging.destination.name"),
        format!("wasmbus.ctl.v1.{}.host.get.{}", l.lattice, host.id())
    );
    assert_eq!(ctl.service, "trellis-host");

    // wadm's commands: deploy one component and find the host's span of its
    // scale request under wadm's command span.
    let _wadm = trellis_tests::WadmProcess::start(
        &l.nats.url(),
        &l.lattice,
        &[
            "--enable-observability",
            "--override-observability-endpoint",
            &receiver.url(),
        ],
    )
    .await
    .unwrap();
    let manifest = serde_json::json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "traced", "annotations": {"version": "v1"}},
        "spec": {"components": [{
            "name": "hello",
            "type": "component",
            "properties": {"image": image("http-hello"), "id": "hello"},
            "traits": [{"type": "spreadscaler", "properties": {"instances": 1}}]
        }]}
    })
    .to_string();
    let api = |op: &str| format!("wadm.api.{}.model.{op}", l.lattice);
    l.client.request(api("put"), manifest.into()).await.unwrap();
    l.client
        .request(format!("{}.traced", api("deploy")), "{}".into())
        .await
        .unwrap();
    let (command, served) = eventually(std::time::Duration::from_secs(30), || async {
        let spans = receiver.spans();
        let command = spans
            .iter()
            .find(|s| s.name == "wadm.command" && s.attr("wadm.command") == "scale_component")
            .ok_or_else(|| anyhow::anyhow!("no wadm.command span yet"))?;
        let served = spans
            .iter()
            .find(|s| s.name == "ctl.request" && s.parent == command.span_id)
            .ok_or_else(|| anyhow::anyhow!("no ctl.request under {command:?}"))?;
        Ok((command.clone(), served.clone()))
    })
    .await
    .unwrap();
    assert_eq!(served.trace_id, command.trace_id);
    assert_eq!(command.service, "wadm");
    assert_eq!(served.service, "trellis-host");
    assert!(
        served
            .attr("messaging.destination.name")
            .contains(".component.scale."),
        "{served:?}"
    );
}
