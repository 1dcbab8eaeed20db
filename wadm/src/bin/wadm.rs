//! `wadm`: the Trellis application deployment manager, started like wadm 0.21
//! (`wadm --nats-server 127.0.0.1:4222`). It serves the manifest store and the
//! `wadm.api` subjects for every lattice on that NATS server, and — while it holds the
//! lease (one active wadm per NATS server) — reconciles every lattice that has
//! applications stored.

use anyhow::Context;
use clap::Parser;
use std::time::Duration;

use trellis_wadm::FailurePolicy;
use trellis_wadm::api::DEFAULT_API_PREFIX;
use trellis_wadm::runner::{LEASE_BUCKET, Runner, RunnerConfig, WorkerConfig};
use trellis_wadm::server::{DEFAULT_MANIFEST_BUCKET, Server, ServerConfig};

/// Command-line flags (names and environment variables as wadm 0.21).
#[derive(Debug, Parser)]
#[command(
    name = "wadm",
    version,
    about = "Trellis wadm: application manifests and the wadm.api"
)]
struct Args {
    /// NATS server to connect to.
    #[arg(
        long = "nats-server",
        env = "WADM_NATS_SERVER",
        default_value = "127.0.0.1:4222"
    )]
    nats_server: String,
    /// Subject prefix of the API.
    #[arg(long = "api-prefix", env = "WADM_API_PREFIX", default_value = DEFAULT_API_PREFIX)]
    api_prefix: String,
    /// JetStream KV bucket holding the manifests.
    #[arg(long = "manifest-bucket-name", env = "WADM_MANIFEST_BUCKET_NAME", default_value = DEFAULT_MANIFEST_BUCKET)]
    manifest_bucket: String,
    /// Silence (ms) after which a host that sends liveness beats is fenced and its
    /// work placed elsewhere.
    #[arg(long = "host-timeout-ms", env = "WADM_HOST_TIMEOUT_MS", default_value_t = FailurePolicy::default().host_timeout_ms)]
    host_timeout_ms: u64,
    /// Lease time to live (ms): how fast a standby wadm takes over from a dead one.
    #[arg(
        long = "lease-ttl-ms",
        env = "WADM_LEASE_TTL_MS",
        default_value_t = 3_000
    )]
    lease_ttl_ms: u64,
    /// JetStream KV bucket holding the lease.
    #[arg(long = "lease-bucket-name", env = "WADM_LEASE_BUCKET_NAME", default_value = LEASE_BUCKET)]
    lease_bucket: String,
    /// Serve the API only; never reconcile (never takes the lease).
    #[arg(long = "api-only", env = "WADM_API_ONLY")]
    api_only: bool,
    /// Log level (error, warn, info, debug, trace) or filter (`RUST_LOG` syntax).
    #[arg(long = "log-level", env = "RUST_LOG", default_value = "info")]
    log_level: String,
    /// Log as JSON lines.
    #[arg(
        long = "enable-structured-logging",
        alias = "structured-logging",
        env = "WADM_STRUCTURED_LOGGING"
    )]
    enable_structured_logging: bool,
    /// Export traces, metrics and logs over OTLP (docs/observability.md).
    #[arg(long = "enable-observability", env = "WADM_OBSERVABILITY_ENABLED")]
    enable_observability: bool,
    /// Export traces (true/false), whatever --enable-observability says.
    #[arg(long = "enable-traces", alias = "tracing", env = "WADM_TRACING_ENABLED", num_args = 0..=1, default_missing_value = "true")]
    enable_traces: Option<bool>,
    /// Export metrics (true/false), whatever --enable-observability says.
    #[arg(long = "enable-metrics", env = "WADM_METRICS_ENABLED", num_args = 0..=1, default_missing_value = "true")]
    enable_metrics: Option<bool>,
    /// Export logs (true/false), whatever --enable-observability says.
    #[arg(long = "enable-logs", env = "WADM_LOGS_ENABLED", num_args = 0..=1, default_missing_value = "true")]
    enable_logs: Option<bool>,
    /// Collector base URL for every signal [default: OTEL_EXPORTER_OTLP_* variables, else localhost:4318 (HTTP) or :4317 (gRPC)].
    #[arg(
        long = "override-observability-endpoint",
        env = "WADM_OBSERVABILITY_ENDPOINT"
    )]
    observability_endpoint: Option<String>,
    /// Full OTLP traces URL.
    #[arg(
        long = "override-traces-endpoint",
        alias = "tracing-endpoint",
        env = "WADM_TRACING_ENDPOINT"
    )]
    traces_endpoint: Option<String>,
    /// Full OTLP metrics URL.
    #[arg(long = "override-metrics-endpoint", env = "WADM_METRICS_ENDPOINT")]
    metrics_endpoint: Option<String>,
    /// Full OTLP logs URL.
    #[arg(long = "override-logs-endpoint", env = "WADM_LOGS_ENDPOINT")]
    logs_endpoint: Option<String>,
    /// OTLP protocol: http or grpc [default: OTEL_EXPORTER_OTLP_PROTOCOL, else http].
    #[arg(long = "observability-protocol", env = "WADM_OBSERVABILITY_PROTOCOL")]
    observability_protocol: Option<trellis_observability::OtelProtocol>,
    /// Most verbose span level exported [default info].
    #[arg(long = "trace-level", env = "WADM_TRACE_LEVEL")]
    trace_level: Option<String>,
}

impl Args {
    fn log_settings(&self) -> trellis_observability::LogSettings {
        trellis_observability::LogSettings {
            structured: self.enable_structured_logging,
            level: self.log_level.clone(),
        }
    }

    fn otel_settings(&self) -> trellis_observability::OtelSettings {
        trellis_observability::OtelSettings {
            enable_observability: self.enable_observability,
            enable_traces: self.enable_traces,
            enable_metrics: self.enable_metrics,
            enable_logs: self.enable_logs,
            observability_endpoint: self.observability_endpoint.clone(),
            traces_endpoint: self.traces_endpoint.clone(),
            metrics_endpoint: self.metrics_endpoint.clone(),
            logs_endpoint: self.logs_endpoint.clone(),
            protocol: self.observability_protocol,
            trace_level: self.trace_level.clone(),
            ..Default::default()
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // RUST_LOG is the `--log-level` flag's variable: the flag's value is the filter.
    let identity = trellis_observability::Identity {
        service_name: "wadm".into(),
        service_version: env!("CARGO_PKG_VERSION").into(),
        instance_id: ulid::Ulid::new().to_string(),
        attributes: Vec::new(),
    };
    // Flushes exports at exit.
    let _observability =
        trellis_observability::init(&args.log_settings(), &args.otel_settings(), &identity)?;
    let client = async_nats::ConnectOptions::new()
        .name("wadm")
        .reconnect_delay_callback(trellis_interfaces::reconnect::reconnect_delay)
        .connect(&args.nats_server)
        .await
        .with_context(|| {
            format!(
                "cannot connect to NATS at {}; is nats-server running (with -js)?",
                args.nats_server
            )
        })?;
    let config = ServerConfig {
        api_prefix: args.api_prefix,
        manifest_bucket: args.manifest_bucket,
    };
    let server = Server::start(client.clone(), config)
        .await
        .context("cannot start the wadm API (JetStream must be enabled on the NATS server)")?;
    if args.api_only {
        return tokio::select! {
            result = server.serve() => result.context("wadm API stopped"),
            _ = tokio::signal::ctrl_c() => Ok(()),
        };
    }
    let runner_config = RunnerConfig {
        worker: WorkerConfig {
            policy: FailurePolicy {
                host_timeout_ms: args.host_timeout_ms,
                ..FailurePolicy::default()
            },
            ..WorkerConfig::default()
        },
        lease_bucket: args.lease_bucket,
        lease_ttl: Duration::from_millis(args.lease_ttl_ms.max(300)),
        ..RunnerConfig::default()
    };
    let runner = Runner::new(client, server.store(), server.notifier(), runner_config)
        .await
        .context("cannot start the reconcile loop")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let reconciling = tokio::spawn(runner.run(async move {
        let _ = stop_rx.await;
    }));
    let outcome = tokio::select! {
        result = server.serve() => result.context("wadm API stopped"),
        _ = shutdown_signal() => {
            tracing::info!("stopping; releasing the lease");
            Ok(())
        }
    };
    let _ = stop_tx.send(());
    match reconciling.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "reconcile loop failed"),
        Err(e) => tracing::warn!(error = %e, "reconcile loop panicked"),
        Ok(Ok(())) => {}
    }
    outcome
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
