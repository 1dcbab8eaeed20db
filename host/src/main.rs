//! `trellis`: a lattice host. Flags use the wasmCloud host's names; every flag
//! can also come from `TRELLIS_{NAME}` or, as a fallback, `WASMCLOUD_{NAME}`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use trellis_host::observability::{self, Identity, LogSettings, OtelSettings};
use trellis_host::{Host, HostConfig};

/// mimalloc instead of glibc's malloc: allocation was ~15 % of the host's CPU
/// on the request path (docs/PERFORMANCE.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "trellis",
    version,
    about = "A Trellis lattice host: runs WebAssembly components and answers the wasmCloud 1.x control interface",
    after_help = "Example:\n  trellis --nats-url nats://127.0.0.1:4222 --lattice default -l zone=eu-west --allow-file-load\n\nEvery flag can also be set as TRELLIS_<FLAG> (e.g. TRELLIS_LATTICE) or WASMCLOUD_<FLAG>;\nlabels as TRELLIS_LABEL_<key>=<value> or WASMCLOUD_LABEL_<key>=<value>."
)]
struct Args {
    /// NATS server URL [env TRELLIS_NATS_URL; default nats://<nats-host>:<nats-port>]
    #[arg(long)]
    nats_url: Option<String>,
    /// NATS host, when --nats-url is not given [default 127.0.0.1]
    #[arg(long)]
    nats_host: Option<String>,
    /// NATS port, when --nats-url is not given [default 4222]
    #[arg(long)]
    nats_port: Option<u16>,
    /// Lattice to join [default "default"]
    #[arg(short = 'x', long)]
    lattice: Option<String>,
    /// Host seed (nkey server seed `SN…`); a new key is generated if absent
    #[arg(long)]
    host_seed: Option<String>,
    /// Host label `key=value` (repeatable)
    #[arg(short = 'l', long = "label")]
    labels: Vec<String>,
    /// JetStream domain of the lattice buckets
    #[arg(long)]
    js_domain: Option<String>,
    /// Allow `file://` component references
    #[arg(long)]
    allow_file_load: bool,
    /// Allow OCI references tagged `latest` (or untagged)
    #[arg(long)]
    allow_latest: bool,
    /// Registry reached over plain HTTP (repeatable)
    #[arg(long)]
    allowed_insecure: Vec<String>,
    /// Wall-clock limit of one invocation, in ms [default 600000]
    #[arg(long)]
    max_execution_time_ms: Option<u64>,
    /// Budget of a call over the lattice, in ms, when the caller's deadline is not tighter [default 10000]
    #[arg(long)]
    rpc_timeout_ms: Option<u64>,
    /// Send calls to link targets over the lattice even when they run on this host (benchmarks, tests)
    #[arg(long)]
    no_local_calls: bool,
    /// Linear-memory limit of one component instance, in bytes [default 64 MiB]
    #[arg(long)]
    max_linear_memory_bytes: Option<u64>,
    /// Memory budget of all component instances, in bytes; sizes the instance pool [default: half of RAM]
    #[arg(long)]
    max_memory_bytes: Option<u64>,
    /// Calls one component instance may answer before it is torn down, for components that do not set `component_limits.max_instance_reuse` [default 1: a fresh instance per call]
    #[arg(long)]
    max_instance_reuse: Option<u32>,
    /// Interval of the full-inventory heartbeat, in seconds [default 30]
    #[arg(long)]
    heartbeat_interval_seconds: Option<u64>,
    /// How long scale-down, update and stop wait for in-flight invocations, in ms [default 30000]
    #[arg(long)]
    drain_timeout_ms: Option<u64>,
    /// Directory of the precompiled-component cache [default ~/.cache/trellis/precompiled]
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Refuse components that are not signed (claims are verified whenever present)
    #[arg(long)]
    require_signed: bool,
    /// Account public keys (A…) allowed to sign components, comma-separated or repeated [default: any]
    #[arg(long, value_delimiter = ',')]
    allowed_issuers: Vec<String>,
    /// Subject of the policy service asked before starts and lattice calls; deny by default once set [default: no policy]
    #[arg(long)]
    policy_topic: Option<String>,
    /// Subject on which the policy service publishes changed decisions
    #[arg(long)]
    policy_changes_topic: Option<String>,
    /// How long to wait for a policy decision, in ms [default 1000]
    #[arg(long)]
    policy_timeout_ms: Option<u64>,
    /// First provider health check after a provider process starts, in ms [default 5000]
    #[arg(long)]
    provider_health_initial_delay_ms: Option<u64>,
    /// Interval of provider health checks, in ms [default 30000]
    #[arg(long)]
    provider_health_interval_ms: Option<u64>,
    /// How long a provider health check waits for a reply, in ms [default 5000]
    #[arg(long)]
    provider_health_timeout_ms: Option<u64>,
    /// Wait for a provider's shutdown reply, then for its exit, before SIGTERM, in ms [default 300]
    #[arg(long)]
    provider_shutdown_delay_ms: Option<u64>,
    /// A provider process that exits sooner than this after spawning failed to start, in ms [default 2000]
    #[arg(long)]
    provider_startup_grace_ms: Option<u64>,
    /// First restart delay of a provider that exited, doubling each time, in ms [default 1000]
    #[arg(long)]
    provider_restart_initial_ms: Option<u64>,
    /// Longest restart delay of a provider that keeps exiting, in ms [default 60000]
    #[arg(long)]
    provider_restart_max_ms: Option<u64>,
    /// Control subject prefix [default wasmbus.ctl]
    #[arg(long)]
    ctl_topic_prefix: Option<String>,
    /// Log as JSON lines
    #[arg(long)]
    enable_structured_logging: bool,
    /// Log level (error, warn, info, debug, trace) [default info]
    #[arg(long)]
    log_level: Option<String>,
    /// Export traces, metrics and logs over OTLP (see docs/observability.md) [env WASMCLOUD_OBSERVABILITY_ENABLED]
    #[arg(long)]
    enable_observability: bool,
    /// Export traces (true/false), whatever --enable-observability says [env WASMCLOUD_TRACING_ENABLED]
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    enable_traces: Option<bool>,
    /// Export metrics (true/false), whatever --enable-observability says [env WASMCLOUD_METRICS_ENABLED]
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    enable_metrics: Option<bool>,
    /// Export logs (true/false), whatever --enable-observability says [env WASMCLOUD_LOGS_ENABLED]
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    enable_logs: Option<bool>,
    /// Collector base URL for every signal (over HTTP `/v1/traces`, `/v1/metrics`, `/v1/logs` appended) [default: OTEL_EXPORTER_OTLP_* variables, else http://localhost:4318 (HTTP) or :4317 (gRPC)]
    #[arg(long)]
    override_observability_endpoint: Option<String>,
    /// Full OTLP traces URL [default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else the base URL + /v1/traces]
    #[arg(long)]
    override_traces_endpoint: Option<String>,
    /// Full OTLP metrics URL [default: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, else the base URL + /v1/metrics]
    #[arg(long)]
    override_metrics_endpoint: Option<String>,
    /// Full OTLP logs URL [default: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, else the base URL + /v1/logs]
    #[arg(long)]
    override_logs_endpoint: Option<String>,
    /// OTLP protocol of every signal: http (protobuf; collector port 4318) or grpc (port 4317) [default: OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL, else http]
    #[arg(long)]
    observability_protocol: Option<observability::OtelProtocol>,
    /// Most verbose span level exported (error, warn, info, debug, trace) [default info]
    #[arg(long)]
    trace_level: Option<String>,
}

/// Flag, else `TRELLIS_{name}`, else `WASMCLOUD_{name}`.
fn env_or<T: FromStr>(flag: Option<T>, name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    if flag.is_some() {
        return Ok(flag);
    }
    for prefix in ["TRELLIS_", "WASMCLOUD_"] {
        let var = format!("{prefix}{name}");
        if let Ok(value) = std::env::var(&var) {
            return value
                .parse()
                .map(Some)
                .map_err(|e| anyhow::anyhow!("invalid {var}={value}: {e}"));
        }
    }
    Ok(None)
}

fn env_flag(flag: bool, name: &str) -> anyhow::Result<bool> {
    Ok(flag || env_or::<bool>(None, name)?.unwrap_or(false))
}

fn labels(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for prefix in ["WASMCLOUD_LABEL_", "TRELLIS_LABEL_"] {
        for (k, v) in std::env::vars() {
            if let Some(key) = k.strip_prefix(prefix) {
                out.insert(key.to_string(), v);
            }
        }
    }
    for l in args {
        let Some((k, v)) = l.split_once('=') else {
            bail!("invalid label `{l}`: expected key=value");
        };
        if k.starts_with("hostcore.") {
            bail!("label `{k}` is reserved: hostcore.* labels are set by the host");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// `--allowed-issuers`, else `TRELLIS_ALLOWED_ISSUERS` / `WASMCLOUD_ALLOWED_ISSUERS`
/// (comma-separated). Each must be an account public key.
fn allowed_issuers(flag: Vec<String>) -> anyhow::Result<Vec<String>> {
    let listed = if flag.is_empty() {
        env_or::<String>(None, "ALLOWED_ISSUERS")?
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    } else {
        flag
    };
    let keys: Vec<String> = listed
        .iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    for key in &keys {
        trellis_host::admission::check_issuer_key(key)
            .with_context(|| format!("invalid --allowed-issuers entry `{key}`"))?;
    }
    Ok(keys)
}

/// What `init` needs besides the host's own config.
struct Telemetry {
    logs: LogSettings,
    otel: OtelSettings,
}

fn telemetry(args: &mut Args) -> anyhow::Result<Telemetry> {
    let structured = env_flag(args.enable_structured_logging, "ENABLE_STRUCTURED_LOGGING")?;
    let level = env_or(args.log_level.take(), "LOG_LEVEL")?.unwrap_or_else(|| "info".into());
    let otel = OtelSettings {
        enable_observability: env_flag(args.enable_observability, "OBSERVABILITY_ENABLED")?,
        enable_traces: env_or(args.enable_traces, "TRACING_ENABLED")?,
        enable_metrics: env_or(args.enable_metrics, "METRICS_ENABLED")?,
        enable_logs: env_or(args.enable_logs, "LOGS_ENABLED")?,
        observability_endpoint: env_or(
            args.override_observability_endpoint.take(),
            "OBSERVABILITY_ENDPOINT",
        )?,
        traces_endpoint: env_or(args.override_traces_endpoint.take(), "TRACING_ENDPOINT")?,
        metrics_endpoint: env_or(args.override_metrics_endpoint.take(), "METRICS_ENDPOINT")?,
        logs_endpoint: env_or(args.override_logs_endpoint.take(), "LOGS_ENDPOINT")?,
        protocol: env_or(args.observability_protocol, "OBSERVABILITY_PROTOCOL")?,
        trace_level: env_or(args.trace_level.take(), "TRACE_LEVEL")?,
        ..Default::default()
    };
    Ok(Telemetry {
        logs: LogSettings { structured, level },
        otel,
    })
}

fn config(args: Args) -> anyhow::Result<HostConfig> {
    let nats_url = match env_or(args.nats_url, "NATS_URL")? {
        Some(url) => url,
        None => {
            let host = env_or(args.nats_host, "NATS_HOST")?.unwrap_or_else(|| "127.0.0.1".into());
            let port: u16 = env_or(args.nats_port, "NATS_PORT")?.unwrap_or(4222);
            format!("nats://{host}:{port}")
        }
    };
    let lattice = env_or(args.lattice, "LATTICE")?.unwrap_or_else(|| "default".into());
    let mut c = HostConfig::new(nats_url, lattice);
    c.host_seed = env_or(args.host_seed, "HOST_SEED")?;
    c.labels = labels(&args.labels)?;
    c.js_domain = env_or(args.js_domain, "JS_DOMAIN")?;
    c.allow_file_load = env_flag(args.allow_file_load, "ALLOW_FILE_LOAD")?;
    c.allow_latest =
        env_flag(args.allow_latest, "OCI_ALLOW_LATEST")? || env_flag(false, "ALLOW_LATEST")?;
    c.allowed_insecure = args.allowed_insecure;
    if let Some(ms) = env_or(args.max_execution_time_ms, "MAX_EXECUTION_TIME_MS")? {
        c.max_execution_time = Duration::from_millis(ms);
    }
    if let Some(ms) = env_or(args.rpc_timeout_ms, "RPC_TIMEOUT_MS")? {
        c.rpc_timeout = Duration::from_millis(ms);
    }
    c.prefer_local = !env_flag(args.no_local_calls, "NO_LOCAL_CALLS")?;
    if let Some(b) = env_or(args.max_linear_memory_bytes, "MAX_LINEAR_MEMORY_BYTES")? {
        c.max_linear_memory_bytes = b;
    }
    if let Some(b) = env_or(args.max_memory_bytes, "MAX_MEMORY_BYTES")? {
        c.max_memory_bytes = b;
    }
    if let Some(n) = env_or(args.max_instance_reuse, "MAX_INSTANCE_REUSE")? {
        c.max_instance_reuse = n.max(1);
    }
    if let Some(s) = env_or(
        args.heartbeat_interval_seconds,
        "HEARTBEAT_INTERVAL_SECONDS",
    )? {
        c.heartbeat_interval = Duration::from_secs(s.max(1));
    }
    if let Some(ms) = env_or(args.drain_timeout_ms, "DRAIN_TIMEOUT_MS")? {
        c.drain_timeout = Duration::from_millis(ms);
    }
    if let Some(dir) = env_or(args.cache_dir, "CACHE_DIR")? {
        c.cache_dir = dir;
    }
    if let Some(p) = env_or(args.ctl_topic_prefix, "CTL_TOPIC_PREFIX")? {
        c.ctl_prefix = p;
    }
    c.require_signed = env_flag(args.require_signed, "REQUIRE_SIGNED")?;
    let p = &mut c.providers;
    for (flag, name, slot) in [
        (
            args.provider_health_initial_delay_ms,
            "PROVIDER_HEALTH_INITIAL_DELAY_MS",
            &mut p.health_initial_delay,
        ),
        (
            args.provider_health_interval_ms,
            "PROVIDER_HEALTH_INTERVAL_MS",
            &mut p.health_interval,
        ),
        (
            args.provider_health_timeout_ms,
            "PROVIDER_HEALTH_TIMEOUT_MS",
            &mut p.health_timeout,
        ),
        (
            args.provider_shutdown_delay_ms,
            "PROVIDER_SHUTDOWN_DELAY_MS",
            &mut p.shutdown_delay,
        ),
        (
            args.provider_startup_grace_ms,
            "PROVIDER_STARTUP_GRACE_MS",
            &mut p.startup_grace,
        ),
        (
            args.provider_restart_initial_ms,
            "PROVIDER_RESTART_INITIAL_MS",
            &mut p.restart_initial,
        ),
        (
            args.provider_restart_max_ms,
            "PROVIDER_RESTART_MAX_MS",
            &mut p.restart_max,
        ),
    ] {
        if let Some(ms) = env_or(flag, name)? {
            *slot = Duration::from_millis(ms);
        }
    }
    c.allowed_issuers = allowed_issuers(args.allowed_issuers)?;
    c.policy.topic = env_or(args.policy_topic, "POLICY_TOPIC")?.filter(|t| !t.is_empty());
    c.policy.changes_topic =
        env_or(args.policy_changes_topic, "POLICY_CHANGES_TOPIC")?.filter(|t| !t.is_empty());
    if let Some(ms) = env_or(args.policy_timeout_ms, "POLICY_TIMEOUT_MS")? {
        c.policy.timeout = Duration::from_millis(ms);
    }
    Ok(c)
}

/// The host's identity before it starts: its seed is generated here when
/// none is given, so spans and metrics carry the host id from the first one.
fn identity(config: &mut HostConfig) -> anyhow::Result<Identity> {
    let key = match &config.host_seed {
        Some(seed) => nkeys::KeyPair::from_seed(seed).context("invalid --host-seed")?,
        None => {
            let key = nkeys::KeyPair::new_server();
            config.host_seed = Some(key.seed().context("cannot encode the host seed")?);
            key
        }
    };
    Ok(Identity {
        host_id: key.public_key(),
        lattice: config.lattice.clone(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    let telemetry = telemetry(&mut args)?;
    let mut config = config(args)?;
    let identity = identity(&mut config)?;
    let _guard = observability::init(&telemetry.logs, &telemetry.otel, identity)?;
    let mut host = Host::start(config).await.context("host failed to start")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => host.stop().await,
        _ = term.recv() => host.stop().await,
        _ = host.stopped() => {}
    }
    tracing::info!(host_id = host.id(), "host stopped");
    Ok(())
}
