//! Logs to stderr (which the host captures and tags with the provider id)
//! and OTLP export, configured from host data as wasmCloud providers are.
//!
//! The filter is `RUST_LOG` when set (the host passes it through), else host
//! data's `log_level`, else `info`; host data's `structured_logging` selects
//! JSON lines; `otel_config` (the host's own export settings) turns on OTLP
//! traces, metrics and logs over HTTP or gRPC. The setup is
//! `trellis-observability`, shared with the host and wadm.

use trellis_interfaces::provider::HostData;
use trellis_observability::{Identity, LogSettings, ObservabilityGuard, OtelSettings};

fn log_settings(host_data: &HostData) -> LogSettings {
    LogSettings {
        structured: host_data.structured_logging,
        level: host_data.log_level.clone().unwrap_or_else(|| "info".into()),
    }
}

/// Installs the global `tracing` subscriber for logs only (no export). Does
/// nothing when one is already installed (a test harness, or an application
/// that set up its own).
pub fn init_logging(host_data: &HostData) {
    // An already installed subscriber is fine: the application chose.
    drop(trellis_observability::init(
        &log_settings(host_data),
        &OtelSettings::default(),
        &Identity::default(),
    ));
}

/// Installs logs and, as host data's `otel_config` asks, OTLP export for a
/// provider named `name`; keep the guard until the provider stops (dropping
/// it flushes). `None` when a subscriber was already installed or export
/// could not be set up (then logs still go to stderr, and why is logged).
pub fn init_observability(host_data: &HostData, name: &str) -> Option<ObservabilityGuard> {
    let logs = log_settings(host_data);
    let otel = OtelSettings::from(&host_data.otel_config);
    let instance_id = if host_data.instance_id.is_empty() {
        host_data.provider_key.clone()
    } else {
        host_data.instance_id.clone()
    };
    let identity = Identity {
        service_name: name.to_string(),
        service_version: env!("CARGO_PKG_VERSION").to_string(),
        instance_id,
        attributes: vec![
            ("provider.id", host_data.provider_key.clone()),
            ("host", host_data.host_id.clone()),
            ("lattice", host_data.lattice_rpc_prefix.clone()),
        ],
    };
    match trellis_observability::init(&logs, &otel, &identity) {
        Ok(guard) => Some(guard),
        Err(trellis_observability::ObservabilityError::Subscriber(_)) => None,
        Err(error) => {
            init_logging(host_data);
            tracing::warn!(%error, "OTLP export is off: its setup failed");
            None
        }
    }
}
