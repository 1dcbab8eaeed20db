#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod connection;
mod context;
mod control;
mod error;
mod exports;
mod host_data;
mod links;
mod logging;
mod provider;
mod run;
mod secrets;
mod trace;

pub use connection::{Connection, ProviderClient};
pub use context::{Context, DEFAULT_LINK_NAME};
pub use error::RunError;
pub use exports::serve_exports;
pub use host_data::{MAX_HOST_DATA_BYTES, read_host_data, read_host_data_from};
pub use links::{LinkConfig, LinkKey, LinkRole, LinkSnapshot};
pub use logging::{init_logging, init_observability};
pub use provider::{InitContext, Provider};
pub use run::{run, run_with_host_data};
pub use trace::{ProviderServer, Traced};
/// W3C trace context as carried in headers ([`Context::trace`]).
pub use trellis_observability::propagation::W3cContext;

/// Wire types shared with hosts.
pub use trellis_interfaces::provider::{
    HealthCheckResponse, HostData, HostDataError, InterfaceLinkDefinition, SecretValue,
};

// Crates whose types appear in this API, so providers use the same versions.
pub use anyhow;
pub use async_nats;
pub use trellis_wrpc;
pub use wrpc_transport;

#[cfg(test)]
mod control_tests;

#[cfg(test)]
mod readme_tests {
    /// The tutorial shows the example exactly as it is built and tested
    /// (regenerate with `python3 provider-sdk/docs/render-readme.py`).
    #[test]
    fn readme_embeds_the_system_info_example() {
        let readme = include_str!("../README.md");
        for (name, source) in [
            (
                "system-info.wit",
                include_str!("../../examples/providers/system-info/wit/system-info.wit"),
            ),
            (
                "main.rs",
                include_str!("../../examples/providers/system-info/src/main.rs"),
            ),
            (
                "info.rs",
                include_str!("../../examples/providers/system-info/src/info.rs"),
            ),
        ] {
            assert!(
                readme.contains(source.trim_end()),
                "README.md is out of date with {name}: run python3 provider-sdk/docs/render-readme.py"
            );
        }
    }
}
