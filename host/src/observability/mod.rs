//! Observability: logs, OTLP traces and OTLP metrics of one host process.
//!
//! [`init`] installs the process's `tracing` subscriber: the log layer
//! (plain or JSON lines) and, when traces are enabled, the
//! `tracing-opentelemetry` layer exporting spans over OTLP/HTTP (protobuf);
//! when metrics are enabled it also installs the meter behind
//! [`metrics`]. [`spans`] builds the spans of one request (HTTP ingress,
//! component invocation, link call, lattice serve) and carries their W3C
//! trace context across NATS. Everything is off by default and then costs a
//! relaxed atomic load per span point: spans are [`tracing::Span::none`] and
//! no instrument is touched. See `docs/observability.md`.

pub mod metrics;
pub mod spans;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// `service.name` of the host's traces and metrics.
pub const SERVICE_NAME: &str = "trellis-host";

/// Path of the OTLP/HTTP traces endpoint under a collector's base URL.
pub const TRACES_PATH: &str = "/v1/traces";
/// Path of the OTLP/HTTP metrics endpoint under a collector's base URL.
pub const METRICS_PATH: &str = "/v1/metrics";

/// Whether spans are built and exported (set once by [`init`]).
static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// Host id and lattice, the `host` and `lattice` attributes of every span
/// and metric point.
static IDENTITY: OnceLock<Identity> = OnceLock::new();

/// Whether spans are being built and exported.
#[inline]
pub fn traces_enabled() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

/// Which host and lattice this process is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Host id (public server key, `N…`).
    pub host_id: String,
    /// Lattice name.
    pub lattice: String,
}

pub(crate) fn identity() -> Option<&'static Identity> {
    IDENTITY.get()
}

/// OTLP transport protocol (`--observability-protocol`). `Grpc` is accepted
/// for compatibility with wasmCloud configurations, but this build exports
/// over HTTP only; export is then disabled with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtelProtocol {
    /// OTLP/HTTP with protobuf bodies (collector port 4318).
    #[default]
    Http,
    /// OTLP/gRPC (collector port 4317): not built in.
    Grpc,
}

impl std::str::FromStr for OtelProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Ok(Self::Http),
            "grpc" => Ok(Self::Grpc),
            other => Err(format!("unknown OTLP protocol `{other}` (http or grpc)")),
        }
    }
}

/// What to export and where (the wasmCloud host's `OtelConfig`).
#[derive(Debug, Clone, Default)]
pub struct OtelSettings {
    /// Turns every signal on (`--enable-observability`).
    pub enable_observability: bool,
    /// Traces on or off regardless of `enable_observability` (`--enable-traces`).
    pub enable_traces: Option<bool>,
    /// Metrics on or off regardless of `enable_observability` (`--enable-metrics`).
    pub enable_metrics: Option<bool>,
    /// Base URL of the collector for every signal
    /// (`--override-observability-endpoint`); `/v1/traces` and `/v1/metrics`
    /// are appended. Without it the standard `OTEL_EXPORTER_OTLP_*` variables
    /// apply, then `http://localhost:4318`.
    pub observability_endpoint: Option<String>,
    /// Full traces URL (`--override-traces-endpoint`), used as given.
    pub traces_endpoint: Option<String>,
    /// Full metrics URL (`--override-metrics-endpoint`), used as given.
    pub metrics_endpoint: Option<String>,
    /// Transport.
    pub protocol: OtelProtocol,
    /// Most verbose level of spans exported (`--trace-level`) [default info].
    pub trace_level: Option<String>,
}

impl OtelSettings {
    /// Whether traces are exported.
    pub fn traces(&self) -> bool {
        self.enable_traces.unwrap_or(self.enable_observability)
    }
    /// Whether metrics are exported.
    pub fn metrics(&self) -> bool {
        self.enable_metrics.unwrap_or(self.enable_observability)
    }
    fn endpoint(&self, signal: Option<&String>, path: &str) -> Option<String> {
        signal.cloned().or_else(|| {
            self.observability_endpoint
                .as_ref()
                .map(|base| format!("{}{path}", base.trim_end_matches('/')))
        })
    }
}

/// How the log layer writes.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// JSON lines instead of human-readable text.
    pub structured: bool,
    /// Level directive when `RUST_LOG` is unset (`info`, `debug`, …).
    pub level: String,
}

/// Why observability could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObservabilityError {
    /// The OTLP exporter could not be built (bad endpoint, HTTP client).
    #[error("cannot build the OTLP {signal} exporter: {message}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// What failed.
        message: String,
    },
    /// A subscriber was already installed in this process.
    #[error("cannot install the tracing subscriber: {0}")]
    Subscriber(String),
}

/// Flushes and stops the exporters when dropped (at process exit).
#[must_use = "dropping the guard stops exporting"]
pub struct ObservabilityGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Drop for ObservabilityGuard {
    fn drop(&mut self) {
        TRACES_ON.store(false, Ordering::Relaxed);
        if let Some(t) = self.tracer.take()
            && let Err(e) = t.shutdown()
        {
            eprintln!("trellis: flushing traces failed: {e}");
        }
        if let Some(m) = self.meter.take()
            && let Err(e) = m.shutdown()
        {
            eprintln!("trellis: flushing metrics failed: {e}");
        }
    }
}

fn resource(identity: &Identity) -> Resource {
    Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attributes([
            KeyValue::new("service.instance.id", identity.host_id.clone()),
            KeyValue::new("service.version", crate::HOST_VERSION),
            KeyValue::new("host", identity.host_id.clone()),
            KeyValue::new("lattice", identity.lattice.clone()),
        ])
        .build()
}

fn tracer_provider(
    settings: &OtelSettings,
    identity: &Identity,
) -> Result<SdkTracerProvider, ObservabilityError> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(url) = settings.endpoint(settings.traces_endpoint.as_ref(), TRACES_PATH) {
        builder = builder.with_endpoint(url);
    }
    let exporter = builder.build().map_err(|e| ObservabilityError::Exporter {
        signal: "traces",
        message: e.to_string(),
    })?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(identity))
        .build())
}

fn meter_provider(
    settings: &OtelSettings,
    identity: &Identity,
) -> Result<SdkMeterProvider, ObservabilityError> {
    let mut builder = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(url) = settings.endpoint(settings.metrics_endpoint.as_ref(), METRICS_PATH) {
        builder = builder.with_endpoint(url);
    }
    let exporter = builder.build().map_err(|e| ObservabilityError::Exporter {
        signal: "metrics",
        message: e.to_string(),
    })?;
    Ok(SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource(identity))
        .build())
}

/// Installs logging and, as `settings` ask, OTLP traces and metrics for this
/// process. Call once, before the host starts; keep the guard until exit.
pub fn init(
    logs: &LogSettings,
    settings: &OtelSettings,
    identity: Identity,
) -> Result<ObservabilityGuard, ObservabilityError> {
    let grpc = settings.protocol == OtelProtocol::Grpc && (settings.traces() || settings.metrics());
    let want_traces = settings.traces() && !grpc;
    let want_metrics = settings.metrics() && !grpc;
    let tracer = want_traces
        .then(|| tracer_provider(settings, &identity))
        .transpose()?;
    let meter = want_metrics
        .then(|| meter_provider(settings, &identity))
        .transpose()?;

    // Logs: `RUST_LOG`, else `--log-level`. Our own spans exist for export,
    // not for log lines, so the log layer never records them.
    let mut log_filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                "{},cranelift=warn,wasmtime=warn",
                logs.level
            ))
        });
    if let Some(exclusion) = spans::log_exclusion() {
        log_filter = log_filter.add_directive(exclusion);
    }
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let log_layer = if logs.structured {
        fmt.json().with_filter(log_filter).boxed()
    } else {
        fmt.with_filter(log_filter).boxed()
    };
    let otel_layer = tracer.as_ref().map(|provider| {
        let level = settings
            .trace_level
            .as_deref()
            .unwrap_or("info")
            .parse::<tracing::level_filters::LevelFilter>()
            .unwrap_or(tracing::level_filters::LevelFilter::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(SERVICE_NAME))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            // Parents are explicit (`CallScope.span`): activating an
            // OpenTelemetry context on every poll of a guest call only costs.
            .with_context_activation(false)
            .with_filter(level)
    });
    tracing_subscriber::registry()
        .with(log_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|e| ObservabilityError::Subscriber(e.to_string()))?;

    if grpc {
        tracing::warn!(
            "--observability-protocol grpc is not built into this host; traces and metrics are not exported (use http, collector port 4318)"
        );
    }
    if let Some(provider) = &meter {
        metrics::install(provider, &identity);
    }
    let _ = IDENTITY.set(identity);
    if tracer.is_some() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        TRACES_ON.store(true, Ordering::Relaxed);
    }
    tracing::info!(
        traces = tracer.is_some(),
        metrics = meter.is_some(),
        "observability configured"
    );
    Ok(ObservabilityGuard { tracer, meter })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_follow_the_umbrella_flag_unless_set() {
        let mut s = OtelSettings {
            enable_observability: true,
            ..Default::default()
        };
        assert!(s.traces() && s.metrics());
        s.enable_metrics = Some(false);
        assert!(s.traces() && !s.metrics());
        let s = OtelSettings {
            enable_traces: Some(true),
            ..Default::default()
        };
        assert!(s.traces() && !s.metrics());
    }

    #[test]
    fn base_endpoint_gets_the_signal_path_and_signal_endpoints_win() {
        let s = OtelSettings {
            observability_endpoint: Some("http://collector:4318/".into()),
            traces_endpoint: Some("http://traces:9999/x".into()),
            ..Default::default()
        };
        assert_eq!(
            s.endpoint(s.traces_endpoint.as_ref(), TRACES_PATH)
                .as_deref(),
            Some("http://traces:9999/x")
        );
        assert_eq!(
            s.endpoint(None, METRICS_PATH).as_deref(),
            Some("http://collector:4318/v1/metrics")
        );
        assert_eq!(OtelSettings::default().endpoint(None, TRACES_PATH), None);
        assert_eq!("GRPC".parse::<OtelProtocol>(), Ok(OtelProtocol::Grpc));
    }
}
