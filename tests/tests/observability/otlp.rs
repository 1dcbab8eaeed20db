//! An OTLP receiver started by the test: one TCP port that answers both
//! OTLP/HTTP (`POST /v1/traces|metrics|logs`, HTTP/1.1, protobuf) and
//! OTLP/gRPC (`/opentelemetry.proto.collector.{trace,metrics,logs}.v*.*Service/Export`,
//! HTTP/2 with gRPC length-prefixed messages and a `grpc-status` trailer).
//! It decodes every export request with `opentelemetry-proto` and keeps the
//! spans, metric points and log records, each tagged with the exporting
//! process (`service.instance.id`) and the transport it came over.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message as _;

/// How an export arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Grpc,
}

/// One exported span, flattened.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub name: String,
    pub attrs: HashMap<String, String>,
    /// `service.instance.id` of the exporting process.
    pub process: String,
    /// `service.name` of the exporting process.
    pub service: String,
    /// Resource attributes of the exporting process (`host`, `lattice`, …).
    pub resource: HashMap<String, String>,
    pub transport: Transport,
    /// OTLP span kind (`SPAN_KIND_SERVER` = 2, …).
    pub kind: i32,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status: i32,
}

impl SpanRecord {
    pub fn attr(&self, key: &str) -> &str {
        self.attrs.get(key).map_or("", String::as_str)
    }
}

/// One exported metric data point, flattened.
#[derive(Debug, Clone)]
pub struct PointRecord {
    /// Index of the export request it came in.
    pub export: usize,
    pub process: String,
    pub name: String,
    pub attrs: HashMap<String, String>,
    /// Sum value, or a histogram's count.
    pub value: i64,
}

/// One exported log record, flattened.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub trace_id: String,
    pub span_id: String,
    pub body: String,
    pub severity: String,
    pub attrs: HashMap<String, String>,
    pub process: String,
    pub service: String,
    pub transport: Transport,
}

#[derive(Default)]
struct Received {
    requests: usize,
    spans: Vec<SpanRecord>,
    points: Vec<PointRecord>,
    logs: Vec<LogRecord>,
    metric_exports: usize,
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

/// `(service.instance.id, service.name)` of a resource.
fn origin(attrs: Option<Vec<KeyValue>>) -> (String, String) {
    let resource = attr_map(&attrs.unwrap_or_default());
    let get = |k: &str| resource.get(k).cloned().unwrap_or_default();
    (get("service.instance.id"), get("service.name"))
}

impl Received {
    fn take_traces(&mut self, body: &[u8], transport: Transport) -> anyhow::Result<()> {
        let req = ExportTraceServiceRequest::decode(body).context("bad trace export")?;
        for rs in req.resource_spans {
            let resource = attr_map(
                &rs.resource
                    .as_ref()
                    .map(|r| r.attributes.clone())
                    .unwrap_or_default(),
            );
            let (process, service) = origin(rs.resource.map(|r| r.attributes));
            for ss in rs.scope_spans {
                for s in ss.spans {
                    self.spans.push(SpanRecord {
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent: hex(&s.parent_span_id),
                        name: s.name,
                        attrs: attr_map(&s.attributes),
                        process: process.clone(),
                        service: service.clone(),
                        resource: resource.clone(),
                        transport,
                        kind: s.kind,
                        status: s.status.map_or(0, |st| st.code),
                    });
                }
            }
        }
        Ok(())
    }

    fn take_logs(&mut self, body: &[u8], transport: Transport) -> anyhow::Result<()> {
        let req = ExportLogsServiceRequest::decode(body).context("bad logs export")?;
        for rl in req.resource_logs {
            let (process, service) = origin(rl.resource.map(|r| r.attributes));
            for sl in rl.scope_logs {
                for l in sl.log_records {
                    self.logs.push(LogRecord {
                        trace_id: hex(&l.trace_id),
                        span_id: hex(&l.span_id),
                        body: value_text(&l.body),
                        severity: l.severity_text,
                        attrs: attr_map(&l.attributes),
                        process: process.clone(),
                        service: service.clone(),
                        transport,
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
            let (process, _) = origin(rm.resource.map(|r| r.attributes));
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

    /// Decodes one export by its HTTP path or gRPC method.
    fn take(&mut self, path: &str, body: &[u8], transport: Transport) -> anyhow::Result<()> {
        self.requests += 1;
        match path {
            "/v1/traces" | "/opentelemetry.proto.collector.trace.v1.TraceService/Export" => {
                self.take_traces(body, transport)
            }
            "/v1/metrics" | "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export" => {
                self.take_metrics(body)
            }
            "/v1/logs" | "/opentelemetry.proto.collector.logs.v1.LogsService/Export" => {
                self.take_logs(body, transport)
            }
            other => Err(anyhow::anyhow!("unexpected path {other}")),
        }
    }
}

/// The messages of a gRPC body: 1 byte compression flag, 4 bytes length.
fn grpc_messages(mut body: &[u8]) -> anyhow::Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        anyhow::ensure!(body.len() >= 5, "truncated gRPC frame");
        let (head, rest) = body.split_at(5);
        let [flag, a, b, c, d] = <[u8; 5]>::try_from(head)?;
        anyhow::ensure!(flag == 0, "compressed gRPC message");
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        anyhow::ensure!(rest.len() >= len, "truncated gRPC message");
        let (msg, rest) = rest.split_at(len);
        out.push(msg);
        body = rest;
    }
    Ok(out)
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A gRPC reply: one empty `Export*ServiceResponse` and `grpc-status`.
fn grpc_reply(status: u32, message: &str) -> hyper::Response<Body> {
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("grpc-status", status.to_string().parse().unwrap());
    if !message.is_empty() {
        trailers.insert(
            "grpc-message",
            message.replace(['\r', '\n'], " ").parse().unwrap(),
        );
    }
    let frames = vec![
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = StreamBody::new(futures::stream::iter(frames)).boxed();
    let mut resp = hyper::Response::new(body);
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/grpc"),
    );
    resp
}

fn http_reply(status: u16) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(Full::new(Bytes::new()).boxed());
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-protobuf"),
    );
    resp
}

async fn handle(
    shared: Arc<Mutex<Received>>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, hyper::Error> {
    let path = req.uri().path().to_string();
    let grpc = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let body = req.into_body().collect().await?.to_bytes();
    let mut r = shared.lock().unwrap();
    if grpc {
        let outcome = grpc_messages(&body).and_then(|messages| {
            messages
                .into_iter()
                .try_for_each(|m| r.take(&path, m, Transport::Grpc))
        });
        return Ok(match outcome {
            Ok(()) => grpc_reply(0, ""),
            Err(e) => {
                eprintln!("OTLP/gRPC receiver: {e:#}");
                grpc_reply(3, &format!("{e:#}"))
            }
        });
    }
    Ok(match r.take(&path, &body, Transport::Http) {
        Ok(()) => http_reply(200),
        Err(e) => {
            eprintln!("OTLP/HTTP receiver: {e:#}");
            http_reply(400)
        }
    })
}

/// The receiver; stops when dropped.
pub struct OtlpReceiver {
    port: u16,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpReceiver {
    pub async fn start() -> anyhow::Result<Self> {
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
                    let service = service_fn(move |req| handle(shared.clone(), req));
                    // HTTP/1.1 for OTLP/HTTP, HTTP/2 (prior knowledge) for gRPC.
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
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

    /// Base URL for either protocol.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> usize {
        self.received.lock().unwrap().requests
    }

    pub fn trace(&self, trace_id: &str) -> Vec<SpanRecord> {
        let r = self.received.lock().unwrap();
        r.spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    pub fn spans(&self) -> Vec<SpanRecord> {
        self.received.lock().unwrap().spans.clone()
    }

    pub fn logs(&self) -> Vec<LogRecord> {
        self.received.lock().unwrap().logs.clone()
    }

    pub fn metric_exports(&self) -> usize {
        self.received.lock().unwrap().metric_exports
    }

    /// The latest value of `name` on `process` for `component_id`.
    pub fn latest(&self, process: &str, name: &str, component_id: &str) -> Option<PointRecord> {
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
