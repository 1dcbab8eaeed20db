//! What to export and where: [`OtelSettings`] (the wasmCloud host's
//! `OtelConfig`, filled from flags, `HostData.otel_config` or the standard
//! `OTEL_*` variables) and [`LogSettings`] (stderr logs).

use trellis_interfaces::provider::OtelConfig;

/// One OpenTelemetry signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Instruments.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// `traces`, `metrics` or `logs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Metrics => "metrics",
            Self::Logs => "logs",
        }
    }

    /// Path of the signal's OTLP/HTTP endpoint under a collector's base URL.
    pub fn http_path(self) -> &'static str {
        match self {
            Self::Traces => "/v1/traces",
            Self::Metrics => "/v1/metrics",
            Self::Logs => "/v1/logs",
        }
    }

    fn env_infix(self) -> &'static str {
        match self {
            Self::Traces => "TRACES",
            Self::Metrics => "METRICS",
            Self::Logs => "LOGS",
        }
    }
}

/// OTLP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtelProtocol {
    /// OTLP/HTTP with protobuf bodies (collector port 4318).
    #[default]
    Http,
    /// OTLP/gRPC (collector port 4317).
    Grpc,
}

impl std::str::FromStr for OtelProtocol {
    type Err = String;
    /// `http` / `grpc` as wasmCloud's flag (any case), and the standard
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` values `http/protobuf` and `grpc`.
    /// `http/json` is refused: only protobuf bodies are built in.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http" | "http/protobuf" => Ok(Self::Http),
            "grpc" => Ok(Self::Grpc),
            other => Err(format!(
                "unknown OTLP protocol `{other}` (http, http/protobuf or grpc)"
            )),
        }
    }
}

/// What to export and where (the wasmCloud host's `OtelConfig`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtelSettings {
    /// Turns every signal on (`--enable-observability`).
    pub enable_observability: bool,
    /// Traces on or off regardless of `enable_observability` (`--enable-traces`).
    pub enable_traces: Option<bool>,
    /// Metrics on or off regardless of `enable_observability` (`--enable-metrics`).
    pub enable_metrics: Option<bool>,
    /// Logs on or off regardless of `enable_observability` (`--enable-logs`).
    pub enable_logs: Option<bool>,
    /// Base URL of the collector for every signal
    /// (`--override-observability-endpoint`); over HTTP the signal's path
    /// (`/v1/traces`, …) is appended, over gRPC it is used as given. Without
    /// it the standard `OTEL_EXPORTER_OTLP_*` variables apply, then
    /// `http://localhost:4318` (HTTP) or `http://localhost:4317` (gRPC).
    pub observability_endpoint: Option<String>,
    /// Full traces URL (`--override-traces-endpoint`), used as given.
    pub traces_endpoint: Option<String>,
    /// Full metrics URL (`--override-metrics-endpoint`), used as given.
    pub metrics_endpoint: Option<String>,
    /// Full logs URL (`--override-logs-endpoint`), used as given.
    pub logs_endpoint: Option<String>,
    /// Transport for every signal (`--observability-protocol`); when unset,
    /// `OTEL_EXPORTER_OTLP_{SIGNAL}_PROTOCOL`, then
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, then HTTP.
    pub protocol: Option<OtelProtocol>,
    /// Most verbose level of spans exported (`--trace-level`) [default info].
    pub trace_level: Option<String>,
    /// Sampler name as `OTEL_TRACES_SAMPLER` (`always_on`,
    /// `parentbased_traceidratio`, …); unset: the variable, else
    /// `parentbased_always_on`.
    pub traces_sampler: Option<String>,
    /// Sampler argument (the ratio), as `OTEL_TRACES_SAMPLER_ARG`.
    pub traces_sampler_arg: Option<String>,
    /// Span queue size of the batch processor (`OTEL_BSP_MAX_QUEUE_SIZE`
    /// otherwise, else [`crate::DEFAULT_MAX_QUEUE_SIZE`]). A full queue
    /// drops spans, never blocks.
    pub max_batch_queue_size: Option<usize>,
}

impl OtelSettings {
    /// Whether `signal` is exported.
    pub fn enabled(&self, signal: Signal) -> bool {
        let explicit = match signal {
            Signal::Traces => self.enable_traces,
            Signal::Metrics => self.enable_metrics,
            Signal::Logs => self.enable_logs,
        };
        explicit.unwrap_or(self.enable_observability)
    }

    /// Whether any signal is exported.
    pub fn any_enabled(&self) -> bool {
        [Signal::Traces, Signal::Metrics, Signal::Logs]
            .into_iter()
            .any(|s| self.enabled(s))
    }

    /// The protocol of `signal`, with `env` looking variables up.
    pub fn protocol_with(
        &self,
        signal: Signal,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<OtelProtocol, String> {
        if let Some(p) = self.protocol {
            return Ok(p);
        }
        let specific = format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", signal.env_infix());
        for var in [specific.as_str(), "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(value) = env(var).filter(|v| !v.trim().is_empty()) {
                return value.parse().map_err(|e| format!("{var}: {e}"));
            }
        }
        Ok(OtelProtocol::Http)
    }

    /// The endpoint of `signal` over `protocol`, if the settings name one
    /// (else the exporter reads the standard variables).
    pub fn endpoint(&self, signal: Signal, protocol: OtelProtocol) -> Option<String> {
        let specific = match signal {
            Signal::Traces => self.traces_endpoint.as_ref(),
            Signal::Metrics => self.metrics_endpoint.as_ref(),
            Signal::Logs => self.logs_endpoint.as_ref(),
        };
        specific.cloned().or_else(|| {
            self.observability_endpoint.as_ref().map(|base| {
                let base = base.trim_end_matches('/');
                match protocol {
                    OtelProtocol::Http => format!("{base}{}", signal.http_path()),
                    OtelProtocol::Grpc => base.to_string(),
                }
            })
        })
    }
}

impl From<&OtelConfig> for OtelSettings {
    /// What a host passed to a provider in `HostData.otel_config`. An
    /// unknown protocol falls back to the standard variables, then HTTP.
    fn from(c: &OtelConfig) -> Self {
        Self {
            enable_observability: c.enable_observability,
            enable_traces: c.enable_traces,
            enable_metrics: c.enable_metrics,
            enable_logs: c.enable_logs,
            observability_endpoint: c.observability_endpoint.clone(),
            traces_endpoint: c.traces_endpoint.clone(),
            metrics_endpoint: c.metrics_endpoint.clone(),
            logs_endpoint: c.logs_endpoint.clone(),
            protocol: c.protocol.as_deref().and_then(|p| p.parse().ok()),
            trace_level: c.trace_level.clone(),
            traces_sampler: c.traces_sampler.clone(),
            traces_sampler_arg: c.traces_sampler_arg.clone(),
            max_batch_queue_size: c.max_batch_queue_size,
        }
    }
}

impl From<&OtelSettings> for OtelConfig {
    /// What a host passes on to the providers it starts (PROTOCOL.md §4.1;
    /// the protocol is spelled `Http` / `Grpc` as wasmCloud serializes it).
    fn from(s: &OtelSettings) -> Self {
        Self {
            enable_observability: s.enable_observability,
            enable_traces: s.enable_traces,
            enable_metrics: s.enable_metrics,
            enable_logs: s.enable_logs,
            observability_endpoint: s.observability_endpoint.clone(),
            traces_endpoint: s.traces_endpoint.clone(),
            metrics_endpoint: s.metrics_endpoint.clone(),
            logs_endpoint: s.logs_endpoint.clone(),
            protocol: s.protocol.map(|p| match p {
                OtelProtocol::Http => "Http".to_string(),
                OtelProtocol::Grpc => "Grpc".to_string(),
            }),
            trace_level: s.trace_level.clone(),
            traces_sampler: s.traces_sampler.clone(),
            traces_sampler_arg: s.traces_sampler_arg.clone(),
            max_batch_queue_size: s.max_batch_queue_size,
            ..Default::default()
        }
    }
}

/// How the stderr log layer writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// JSON lines instead of human-readable text.
    pub structured: bool,
    /// Level when `RUST_LOG` is unset: a level name (wasmCloud's, including
    /// `critical`) or a filter directive (`info,trellis_wadm=debug`).
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            structured: false,
            level: "info".into(),
        }
    }
}

impl LogSettings {
    /// The filter directive for [`level`](Self::level): wasmCloud's level
    /// names map to `tracing` levels (`critical` is `error`, `warning` is
    /// `warn`); anything else is taken as a directive.
    pub fn directive(&self) -> String {
        let level = self.level.trim();
        match level.to_ascii_lowercase().as_str() {
            "" => "info".into(),
            "critical" => "error".into(),
            "warning" => "warn".into(),
            l @ ("trace" | "debug" | "info" | "warn" | "error" | "off") => l.into(),
            _ => level.into(),
        }
    }
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
        assert!(s.enabled(Signal::Traces) && s.enabled(Signal::Metrics) && s.enabled(Signal::Logs));
        s.enable_metrics = Some(false);
        assert!(s.enabled(Signal::Traces) && !s.enabled(Signal::Metrics));
        let s = OtelSettings {
            enable_logs: Some(true),
            ..Default::default()
        };
        assert!(s.enabled(Signal::Logs) && !s.enabled(Signal::Traces) && s.any_enabled());
        assert!(!OtelSettings::default().any_enabled());
    }

    #[test]
    fn endpoints_per_protocol() {
        let s = OtelSettings {
            observability_endpoint: Some("http://collector:4318/".into()),
            traces_endpoint: Some("http://traces:9999/x".into()),
            ..Default::default()
        };
        assert_eq!(
            s.endpoint(Signal::Traces, OtelProtocol::Http).as_deref(),
            Some("http://traces:9999/x")
        );
        assert_eq!(
            s.endpoint(Signal::Logs, OtelProtocol::Http).as_deref(),
            Some("http://collector:4318/v1/logs")
        );
        assert_eq!(
            s.endpoint(Signal::Metrics, OtelProtocol::Grpc).as_deref(),
            Some("http://collector:4318")
        );
        assert_eq!(
            OtelSettings::default().endpoint(Signal::Traces, OtelProtocol::Http),
            None
        );
    }

    #[test]
    fn protocol_flag_then_signal_variable_then_general_variable() {
        let env = |var: &str| match var {
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL" => Some("grpc".to_string()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_string()),
            _ => None,
        };
        let s = OtelSettings::default();
        assert_eq!(s.protocol_with(Signal::Logs, env), Ok(OtelProtocol::Grpc));
        assert_eq!(s.protocol_with(Signal::Traces, env), Ok(OtelProtocol::Http));
        assert_eq!(
            s.protocol_with(Signal::Traces, |_| None),
            Ok(OtelProtocol::Http)
        );
        let s = OtelSettings {
            protocol: Some(OtelProtocol::Grpc),
            ..Default::default()
        };
        assert_eq!(s.protocol_with(Signal::Traces, env), Ok(OtelProtocol::Grpc));
        assert!(
            OtelSettings::default()
                .protocol_with(Signal::Traces, |_| Some("http/json".into()))
                .is_err()
        );
    }

    #[test]
    fn host_data_round_trip_keeps_what_providers_need() {
        let s = OtelSettings {
            enable_observability: true,
            enable_logs: Some(false),
            observability_endpoint: Some("http://c:4317".into()),
            protocol: Some(OtelProtocol::Grpc),
            traces_sampler: Some("always_on".into()),
            ..Default::default()
        };
        let config = OtelConfig::from(&s);
        assert_eq!(config.protocol.as_deref(), Some("Grpc"));
        assert_eq!(OtelSettings::from(&config), s);
    }

    #[test]
    fn wasmcloud_levels_map_to_directives() {
        let level = |l: &str| LogSettings {
            level: l.into(),
            structured: false,
        };
        assert_eq!(level("critical").directive(), "error");
        assert_eq!(level("DEBUG").directive(), "debug");
        assert_eq!(level("").directive(), "info");
        assert_eq!(
            level("info,trellis_wadm=debug").directive(),
            "info,trellis_wadm=debug"
        );
    }
}
