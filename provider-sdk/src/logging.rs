//! Logging to stderr, which the host captures and tags with the provider id.
//!
//! The filter is `RUST_LOG` when set (the host passes it through), else host
//! data's `log_level`, else `info`; host data's `structured_logging` selects
//! JSON lines.

use tracing_subscriber::EnvFilter;
use trellis_interfaces::provider::HostData;

/// Level used when neither `RUST_LOG` nor host data set one.
const DEFAULT_LEVEL: &str = "info";

/// Installs the global `tracing` subscriber. Does nothing when one is already
/// installed (a test harness, or an application that set up its own).
pub fn init_logging(host_data: &HostData) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(level_directive(host_data.log_level.as_deref())));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if host_data.structured_logging {
        builder.json().try_init()
    } else {
        use std::io::IsTerminal as _;
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    // An already installed subscriber is fine: the application chose.
    drop(result);
}

/// Maps wasmCloud's level names (`critical` included) to a filter directive.
fn level_directive(level: Option<&str>) -> &'static str {
    match level.map(str::to_ascii_lowercase).as_deref() {
        Some("trace") => "trace",
        Some("debug") => "debug",
        Some("warn" | "warning") => "warn",
        Some("error" | "critical") => "error",
        _ => DEFAULT_LEVEL,
    }
}

#[cfg(test)]
mod tests {
    use super::level_directive;

    #[test]
    fn wasmcloud_levels_map_to_directives() {
        assert_eq!(level_directive(Some("critical")), "error");
        assert_eq!(level_directive(Some("DEBUG")), "debug");
        assert_eq!(level_directive(Some("bogus")), "info");
        assert_eq!(level_directive(None), "info");
    }
}
