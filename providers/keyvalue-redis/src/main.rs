//! `keyvalue-redis-provider`: a capability provider serving
//! `wrpc:keyvalue/{store,atomics,batch}@0.2.0-draft` — what a wasmCloud 1.x
//! or Trellis host calls when a component's `wasi:keyvalue` import is linked
//! to it — on Redis.
//!
//! Each link may name its own Redis (`URL` in the link's target config);
//! the config keys are those of wasmCloud's keyvalue-redis provider (see
//! README.md).

mod backend;
mod config;
mod links;

use std::sync::Arc;

use trellis_keyvalue_provider::Buckets;
use trellis_provider_sdk::Connection;

use crate::backend::Database;
use crate::links::KvRedis;

/// A call's database: its link's `URL`. The bucket the component opened
/// only picks a link (see [`KvRedis::database`]).
impl Buckets for KvRedis {
    type Bucket = Database;

    async fn bucket(
        &self,
        source_id: Option<&str>,
        link_name: &str,
        opened: &str,
    ) -> Result<Database, String> {
        self.database(source_id, link_name, opened)
            .map_err(|e| e.to_string())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    trellis_provider_sdk::run(
        KvRedis::default(),
        "keyvalue-redis",
        async |conn: Connection, provider: Arc<KvRedis>| {
            trellis_keyvalue_provider::serve(&conn, provider).await
        },
    )
    .await?;
    Ok(())
}
