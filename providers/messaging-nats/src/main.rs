//! `messaging-nats-provider`: a capability provider serving
//! `wasmcloud:messaging@0.2.0` on NATS, as wasmCloud's messaging-nats
//! provider, with the same config keys:
//!
//! - it exports `wasmcloud:messaging/consumer@0.2.0` (`request`, `publish`)
//!   to components linked to it (link target config `cluster_uris`, else the
//!   provider's, else the lattice's own NATS connection);
//! - for every link on which it is the source (`wasmcloud:messaging`,
//!   interface `handler`) it subscribes to the subjects of the link's source
//!   config `subscriptions` (comma-separated, `subject` or `subject|queue`)
//!   and calls the component's `wasmcloud:messaging/handler@0.2.0`
//!   `handle-message` for every message.

mod bindings {
    wit_bindgen_wrpc::generate!({
        inline: "
            package trellis:messaging-nats-provider;

            world provider {
                export wasmcloud:messaging/consumer@0.2.0;
                import wasmcloud:messaging/handler@0.2.0;
            }
        ",
        path: ["../../interfaces/wit/deps/messaging"],
        world: "trellis:messaging-nats-provider/provider",
        generate_all,
    });
}

mod connections;
mod handler;
mod subscriptions;

use std::sync::Arc;

use tokio::sync::Notify;
use trellis_provider_sdk::{Connection, LinkConfig, LinkKey, Provider};

/// The provider: its state is the SDK's link table; link changes wake the
/// subscription manager.
#[derive(Default)]
pub struct MessagingNats {
    links_changed: Arc<Notify>,
    connections: connections::Connections,
}

impl Provider for MessagingNats {
    async fn on_link_as_source(&self, _link: &LinkConfig) -> anyhow::Result<()> {
        self.links_changed.notify_one();
        Ok(())
    }

    async fn on_link_deleted_as_source(&self, _link: &LinkKey) -> anyhow::Result<()> {
        self.links_changed.notify_one();
        Ok(())
    }

    async fn on_config_update(
        &self,
        _config: &std::collections::HashMap<String, String>,
    ) -> anyhow::Result<()> {
        self.links_changed.notify_one();
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    trellis_provider_sdk::run(
        MessagingNats::default(),
        "messaging-nats",
        async |conn: Connection, provider: Arc<MessagingNats>| {
            tokio::spawn(subscriptions::manage(conn.clone(), provider.clone()));
            let handler = handler::Handler::new(conn.clone(), provider);
            let exports = bindings::serve(&conn.server(), handler).await?;
            trellis_provider_sdk::serve_exports(exports).await
        },
    )
    .await?;
    Ok(())
}
