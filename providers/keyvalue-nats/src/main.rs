//! `keyvalue-nats-provider`: a capability provider serving
//! `wrpc:keyvalue/{store,atomics,batch}@0.2.0-draft` — what a wasmCloud 1.x
//! or Trellis host calls when a component's `wasi:keyvalue` import is linked
//! to it — on NATS JetStream key-value buckets.
//!
//! Each link from a component names its bucket (`bucket`, in the link's
//! target config or the provider's config); the config keys are those of
//! wasmCloud's keyvalue-nats provider (see README.md).

mod bindings {
    wit_bindgen_wrpc::generate!({
        inline: "
            package trellis:keyvalue-nats-provider;

            world provider {
                export wrpc:keyvalue/store@0.2.0-draft;
                export wrpc:keyvalue/atomics@0.2.0-draft;
                export wrpc:keyvalue/batch@0.2.0-draft;
            }
        ",
        path: ["../../interfaces/wit/deps/wrpc-keyvalue"],
        world: "trellis:keyvalue-nats-provider/provider",
        generate_all,
    });
}

mod config;
mod handler;
mod kv;
mod links;

use std::sync::Arc;

use trellis_provider_sdk::Connection;

use crate::links::KvNats;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    trellis_provider_sdk::run(
        KvNats::default(),
        "keyvalue-nats",
        async |conn: Connection, provider: Arc<KvNats>| {
            let handler = handler::Handler::new(conn.clone(), provider);
            let exports = bindings::serve(&conn.server(), handler).await?;
            trellis_provider_sdk::serve_exports(exports).await
        },
    )
    .await?;
    Ok(())
}
