//! Observability of one host process: logs, OTLP traces, metrics and logs.
//!
//! The setup (stderr logs, OTLP exporters over HTTP or gRPC, the `tracing`
//! bridges) is the workspace's shared `trellis-observability` crate, which
//! wadm and the provider SDK use too; this module adds what only a host has:
//! [`spans`] builds the spans of one request (HTTP ingress, component
//! invocation, link call, lattice serve) and carries their W3C trace context
//! across NATS, [`metrics`] the wasmCloud-named invocation instruments, and
//! [`provider_settings`] what the host passes on to the providers it starts
//! (`HostData.otel_config`, `log_level`, `structured_logging`). Everything
//! is off by default and then costs a relaxed atomic load per span point:
//! spans record nothing and no instrument is touched. See
//! `docs/observability.md`.

pub mod metrics;
pub mod spans;

use std::sync::OnceLock;

pub use trellis_observability::{
    LogSettings, ObservabilityError, ObservabilityGuard, OtelProtocol, OtelSettings, Signal,
    traces_enabled,
};

/// `service.name` of the host's traces, metrics and logs.
pub const SERVICE_NAME: &str = "trellis-host";

/// Log and export settings of this host, passed on to its providers.
static PROVIDER_SETTINGS: OnceLock<(LogSettings, OtelSettings)> = OnceLock::new();

/// Which host and lattice this process is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Host id (public server key, `N…`).
    pub host_id: String,
    /// Lattice name.
    pub lattice: String,
}

/// The log and export settings this host was started with (defaults before
/// [`init`]): providers get them in `HostData` (`log_level`,
/// `structured_logging`, `otel_config`), as wasmCloud hosts do.
pub fn provider_settings() -> (LogSettings, OtelSettings) {
    PROVIDER_SETTINGS.get().cloned().unwrap_or_default()
}

/// Installs logging and, as `settings` ask, OTLP traces, metrics and logs
/// for this process. Call once, inside the runtime, before the host starts;
/// keep the guard until exit.
pub fn init(
    logs: &LogSettings,
    settings: &OtelSettings,
    identity: Identity,
) -> Result<ObservabilityGuard, ObservabilityError> {
    let _ = PROVIDER_SETTINGS.set((logs.clone(), settings.clone()));
    let guard = trellis_observability::init(
        logs,
        settings,
        &trellis_observability::Identity {
            service_name: SERVICE_NAME.into(),
            service_version: crate::HOST_VERSION.into(),
            instance_id: identity.host_id.clone(),
            attributes: vec![
                ("host", identity.host_id.clone()),
                ("lattice", identity.lattice.clone()),
            ],
        },
    )?;
    if let Some(provider) = guard.meter_provider() {
        metrics::install(provider, &identity);
    }
    Ok(guard)
}
