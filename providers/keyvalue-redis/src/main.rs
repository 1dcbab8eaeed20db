//! `keyvalue-redis-provider`: a capability provider serving
//! `wrpc:keyvalue/{store,atomics,batch}@0.2.0-draft` — what a wasmCloud 1.x
//! or Trellis host calls when a component's `wasi:keyvalue` import is linked
//! to it — on Redis.
//!
//! Each link may name its own Redis (`URL` in the link's target config);
//! the config keys are those of wasmCloud's keyvalue-redis provider (see
//! README.md).

mod bindings {
    wit_bindgen_wrpc::generate!({
        inline: "
            package trellis:keyvalue-redis-provider;

            world provider {
                export wrpc:keyvalue/store@0.2.0-draft;
                export wrpc:keyvalue/atomics@0.2.0-draft;
                export wrpc:keyvalue/batch@0.2.0-draft;
            }
        ",
        path: ["../../interfaces/wit/deps/wrpc-keyvalue"],
        world: "trellis:keyvalue-redis-provider/provider",
        generate_all,
    });
}

mod backend;
mod config;
mod handler;
mod links;

use std::sync::Arc;

use trellis_provider_sdk::Connection;

use crate::links::KvRedis;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    trellis_provider_sdk::run(
        KvRedis::default(),
        "keyvalue-redis",
        async |conn: Connection, provider: Arc<KvRedis>| {
            let handler = handler::Handler::new(provider);
            let exports = bindings::serve(&conn.server(), handler).await?;
            trellis_provider_sdk::serve_exports(exports).await
        },
    )
    .await?;
    Ok(())
}
