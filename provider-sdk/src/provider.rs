//! The [`Provider`] trait: what a capability provider does when the host
//! starts it, links it, updates its config, checks its health and stops it.

use std::collections::HashMap;
use std::future::Future;

use trellis_interfaces::provider::{HealthCheckResponse, SecretValue};

use crate::links::{LinkConfig, LinkKey};

/// What a provider learns at start, before any link is delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitContext {
    /// This provider's id in the lattice (host data `provider_key`).
    pub provider_id: String,
    /// Id of the host that started this process.
    pub host_id: String,
    /// Lattice name (host data `lattice_rpc_prefix`).
    pub lattice: String,
    /// The provider's merged named config.
    pub config: HashMap<String, String>,
    /// The provider's secrets.
    pub secrets: HashMap<String, SecretValue>,
}

/// A capability provider.
///
/// Every method has a default that does nothing (and reports healthy), so an
/// implementation overrides only what it needs. Callbacks are called one at a
/// time, in the order the host sent the events, except [`Provider::health`],
/// which is answered concurrently so a slow link callback cannot make the
/// provider look dead.
///
/// Implement the methods with `async fn`; the futures must be `Send`
/// (the SDK runs them on a multi-threaded runtime).
///
/// An error returned from a link or config callback is logged with the link
/// and the provider keeps running; an error from [`Provider::init`] ends
/// [`run`](crate::run).
pub trait Provider: Send + Sync + 'static {
    /// Called once, after the NATS connection is up and before any link.
    fn init(&self, cx: &InitContext) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = cx;
        async { Ok(()) }
    }

    /// A link on which this provider is the source (it will call
    /// `link.target_id`) was put, or its config changed.
    fn on_link_as_source(
        &self,
        link: &LinkConfig,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = link;
        async { Ok(()) }
    }

    /// A link on which this provider is the target (`link.source_id` will
    /// call it) was put, or its config changed.
    fn on_link_as_target(
        &self,
        link: &LinkConfig,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = link;
        async { Ok(()) }
    }

    /// A link on which this provider was the source was deleted.
    fn on_link_deleted_as_source(
        &self,
        link: &LinkKey,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = link;
        async { Ok(()) }
    }

    /// A link on which this provider was the target was deleted.
    fn on_link_deleted_as_target(
        &self,
        link: &LinkKey,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = link;
        async { Ok(()) }
    }

    /// The provider's merged named config changed; `config` is the whole new
    /// map.
    fn on_config_update(
        &self,
        config: &HashMap<String, String>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = config;
        async { Ok(()) }
    }

    /// Answers the host's health check (every 30 s by default).
    fn health(&self) -> impl Future<Output = HealthCheckResponse> + Send {
        async {
            HealthCheckResponse {
                healthy: true,
                message: None,
            }
        }
    }

    /// The host asked this provider to stop (or the process got SIGTERM or
    /// SIGINT). Release resources here; [`run`](crate::run) returns after it.
    fn shutdown(&self) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
}
