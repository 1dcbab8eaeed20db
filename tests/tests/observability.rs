//! Observability end to end: two real `trellis` hosts on a real nats-server
//! export OTLP/HTTP to a receiver started by the test, which decodes the
//! protobuf `ExportTraceServiceRequest` / `ExportMetricsServiceRequest`
//! bodies. `pinger` (HTTP front) runs on host A, `ponger` on host B (and
//! `ponger-local` on A for the in-process path).
//!
//! Host A is configured with flags (`--enable-observability
//! --override-observability-endpoint`), host B with the environment
//! (`WASMCLOUD_OBSERVABILITY_ENABLED`, `OTEL_EXPORTER_OTLP_ENDPOINT`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test loudly on purpose"
)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use common::{TestLattice, WAIT, expose_http, http_until, scale};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message as _;
use trellis_interfaces::link::Link;
use trellis_tests::{HostProcess, component_path, eventually};

/// Span-processor delay and metric interval of the hosts under test, in ms:
/// short, so the test waits on exports for well under a second.
const EXPORT_DELAY_MS: &str = "100";
const METRIC_INTERVAL_MS: &str = "300";

/// One exported span, flattened.
#[derive(Debug, Clone)]
struct SpanRecord {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    attrs: HashMap<String, String>,
    /// `service.instance.id` of the exporting process (the host id).
    process: String,
}

impl SpanRecord {
    fn attr(&self, key: &str) -> &str {
        self.attrs.get(key).map_or("", String::as_str)
    }
}

/// One exported metric data point, flattened.
#[derive(Debug, Clone)]
struct PointRecord {
    /// Index of the export request it came in.
    export: usize,
    process: String,
    name: String,
    attrs: HashMap<String, String>,
    /// Sum value, or a histogram's count.
    value: i64,
}

#[derive(Default)]
struct Received {
    requests: usize,
    spans: Vec<SpanRecord>,
    points: Vec<PointRecord>,
    metric_exports: usize,
}

/// The OTLP/HTTP receiver: `POST /v1/traces` and `POST /v1/metrics`.
struct OtlpReceiver {
    port: u16,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn value_text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr_map(attrs: &[KeyValue]) -> HashMap<String, String> {
    attrs
        .iter()
        .map(|kv| (kv.key.clone(), value_text(&kv.value)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Received {
    fn take_traces(&mut self, body: &[u8]) -> anyhow::Result<()> {
        let req = ExportTraceServiceRequest::decode(body).context("bad trace export")?;
        for rs in req.resource_spans {
            let resource = attr_map(&rs.resource.map(|r| r.attributes).unwrap_or_default());
            let process = resource
                .get("service.instance.id")
                .cloned()
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    self.spans.push(SpanRecord {
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent: hex(&s.parent_span_id),
                        name: s.name,
                        attrs: attr_map(&s.attributes),
                        process: process.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn take_metrics(&mut self, body: &[u8]) -> anyhow::Result<()> {
        let req = ExportMetricsServiceRequest::decode(body).context("bad metrics export")?;
        self.metric_exports += 1;
        let export = self.metric_exports;
        for rm in req.resource_metrics {
            let resource = attr_map(&rm.resource.map(|r| r.attributes).unwrap_or_default());
            let process = resource
                .get("service.instance.id")
                .cloned()
                .unwrap_or_default();
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    let points: Vec<(Vec<KeyValue>, i64)> = match m.data {
                        Some(metric::Data::Sum(sum)) => sum
                            .data_points
                            .into_iter()
                            .map(|p| {
                                let v = match p.value {
                                    Some(number_data_point::Value::AsInt(i)) => i,
                                    Some(number_data_point::Value::AsDouble(d)) => d as i64,
                                    None => 0,
                                };
                                (p.attributes, v)
                            })
                            .collect(),
                        Some(metric::Data::Histogram(h)) => h
                            .data_points
                            .into_iter()
                            .map(|p| (p.attributes, p.count as i64))
                            .collect(),
                        _ => Vec::new(),
                    };
                    for (attrs, value) in points {
                        self.points.push(PointRecord {
                            export,
                            process: process.clone(),
                            name: m.name.clone(),
                            attrs: attr_map(&attrs),
                            value,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

impl OtlpReceiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let shared = shared.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let body = req.into_body().collect().await?.to_bytes();
                            let mut r = shared.lock().unwrap();
                            r.requests += 1;
                            let outcome = match path.as_str() {
                                "/v1/traces" => r.take_traces(&body),
                                "/v1/metrics" => r.take_metrics(&body),
                                other => Err(anyhow::anyhow!("unexpected path {other}")),
                            };
                            let status = if let Err(e) = outcome {
                                eprintln!("OTLP receiver: {e:#}");
                                400
                            } else {
                                200
                            };
                            let mut resp = hyper::Response::new(Full::new(bytes::Bytes::new()));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            resp.headers_mut().insert(
                                "content-type",
                                hyper::header::HeaderValue::from_static("application/x-protobuf"),
                            );
                            Ok::<_, hyper::Error>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            port,
            received,
            task,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> usize {
        self.received.lock().unwrap().requests
    }

    fn trace(&self, trace_id: &str) -> Vec<SpanRecord> {
        let r = self.received.lock().unwrap();
        r.spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    fn spans(&self) -> Vec<SpanRecord> {
        self.received.lock().unwrap().spans.clone()
    }

    fn metric_exports(&self) -> usize {
        self.received.lock().unwrap().metric_exports
    }

    /// The latest value of `name` on `process` for `component_id`.
    fn latest(&self, process: &str, name: &str, component_id: &str) -> Option<PointRecord> {
        let r = self.received.lock().unwrap();
        r.points
            .iter()
            .rev()
            .find(|p| {
                p.process == process
                    && p.name == name
                    && p.attrs.get("component.id").map(String::as_str) == Some(component_id)
            })
            .cloned()
    }
}

fn image(name: &str) -> String {
    format!("file://{}", component_path(name).unwrap().display())
}

fn pong_link(target: &str, name: &str) -> Link {
    Link {
        source_id: "pinger".into(),
        target: target.into(),
        name: name.into(),
        wit_namespace: "example".into(),
        wit_package: "pong".into(),
        interfaces: vec!["pingpong".into()],
        ..Default::default()
    }
}

/// Host A (flags) and host B (environment), both exporting to `receiver`.
async fn traced_hosts(
    l: &TestLattice,
    receiver: &OtlpReceiver,
) -> anyhow::Result<(HostProcess, HostProcess)> {
    let a = HostProcess::start(
        l.host_options()
            .arg("--enable-observability")
            .arg("--override-observability-endpoint")
            .arg(receiver.url())
            .env("OTEL_BSP_SCHEDULE_DELAY", EXPORT_DELAY_MS)
            .env("OTEL_METRIC_EXPORT_INTERVAL", METRIC_INTERVAL_MS),
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
        pong_link("ponger", "default"),
        pong_link("ponger-local", "local"),
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
    let spans = trace_of(&receiver, trace_id, 5).await;
    assert_eq!(spans.len(), 5, "{spans:#?}");

    let ingress = child(&spans, caller_span, "http.server.request");
    assert_eq!(ingress.process, a.id());
    assert_eq!(ingress.attr("http.request.method"), "GET");
    assert_eq!(ingress.attr("url.path"), "/");
    assert_eq!(ingress.attr("http.response.status_code"), "200");
    assert_eq!(ingress.attr("component.id"), "pinger");
    assert_eq!(ingress.attr("host"), a.id());
    assert_eq!(ingress.attr("lattice"), l.lattice);

    let pinger = child(&spans, &ingress.span_id, "component.invoke");
    assert_eq!(pinger.process, a.id());
    assert_eq!(pinger.attr("component.id"), "pinger");
    assert!(
        pinger
            .attr("wit.interface")
            .starts_with("wasi:http/incoming-handler"),
        "{pinger:?}"
    );
    assert_eq!(pinger.attr("wit.function"), "handle");

    let call = child(&spans, &pinger.span_id, "link.call");
    assert_eq!(call.process, a.id());
    assert_eq!(call.attr("component.id"), "pinger");
    assert_eq!(call.attr("link.target"), "ponger");
    assert_eq!(call.attr("link.name"), "default");
    assert_eq!(call.attr("wit.interface"), "example:pong/pingpong@0.1.0");
    assert_eq!(call.attr("wit.function"), "ping");
    assert_eq!(call.attr("call.path"), "lattice");

    let served = child(&spans, &call.span_id, "lattice.serve");
    assert_eq!(served.process, b.id(), "served on the other host process");
    assert_eq!(served.attr("host"), b.id());
    assert_eq!(served.attr("component.id"), "ponger");
    assert_eq!(served.attr("source.id"), "pinger");
    assert_eq!(served.attr("link.name"), "default");
    assert_eq!(served.attr("wit.function"), "ping");

    let ponger = child(&spans, &served.span_id, "component.invoke");
    assert_eq!(ponger.process, b.id());
    assert_eq!(ponger.attr("component.id"), "ponger");
    assert_eq!(ponger.attr("wit.interface"), "example:pong/pingpong@0.1.0");
    assert_eq!(ponger.attr("wit.function"), "ping");
    assert_eq!(ponger.attr("lattice"), l.lattice);

    // `set-link-name` picks another link mid-invocation, and the target runs
    // on the caller's host: the in-process call stays in the same trace.
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
    assert_eq!(
        get(port, "/link/local", Some(&traceparent)).await,
        (200, "ping via local -> pong\n".into())
    );
    let spans = trace_of(&receiver, trace_id, 4).await;
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let ingress = child(&spans, "b7ad6b7169203331", "http.server.request");
    let pinger = child(&spans, &ingress.span_id, "component.invoke");
    let call = child(&spans, &pinger.span_id, "link.call");
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
