//! `http-server-provider`: an HTTP server as a capability provider, the
//! contract of wasmCloud's http-server provider (PROTOCOL.md §4.4). For every
//! link on which it is the source (`wasi:http`, interface
//! `incoming-handler`, to a component) it listens as the link's source
//! config and the provider config say, and hands each request to the
//! component's `wrpc:http/incoming-handler@0.1.0.handle` over the lattice,
//! wherever the component runs. Bodies stream both ways.
//!
//! Config keys (the same as `builtin://http-server`): provider config
//! `routing_mode` = `address` (default) | `path` | `host`,
//! `default_address` (default `0.0.0.0:8000`), `header` (host mode); link
//! source config `address`, `path`, `host`.

mod server;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;
use trellis_provider_sdk::{Connection, LinkConfig, LinkKey, Provider};

/// mimalloc instead of glibc's malloc, as the host: allocation is a large
/// part of a provider's CPU per call (docs/PERFORMANCE.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The provider: its state is the SDK's link table; link and config changes
/// wake the listener manager.
#[derive(Default)]
pub struct HttpServer {
    changed: Arc<Notify>,
}

impl Provider for HttpServer {
    async fn on_link_as_source(&self, _link: &LinkConfig) -> anyhow::Result<()> {
        self.changed.notify_one();
        Ok(())
    }

    async fn on_link_deleted_as_source(&self, _link: &LinkKey) -> anyhow::Result<()> {
        self.changed.notify_one();
        Ok(())
    }

    async fn on_config_update(&self, _config: &HashMap<String, String>) -> anyhow::Result<()> {
        self.changed.notify_one();
        Ok(())
    }
}

/// One thread: the provider only moves bytes between NATS (and, for the
/// HTTP server, its listeners); a second worker only added cross-thread
/// wake-ups (futex) and smaller write batches (docs/PERFORMANCE.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    trellis_provider_sdk::run(
        HttpServer::default(),
        "http-server",
        async |conn: Connection, provider: Arc<HttpServer>| {
            server::manage(conn, provider.changed.clone()).await;
            Ok(())
        },
    )
    .await?;
    Ok(())
}
