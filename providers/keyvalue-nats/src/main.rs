//! `keyvalue-nats-provider`: a capability provider serving
//! `wrpc:keyvalue/{store,atomics,batch}@0.2.0-draft` — what a wasmCloud 1.x
//! or Trellis host calls when a component's `wasi:keyvalue` import is linked
//! to it — on NATS JetStream key-value buckets.
//!
//! Each link from a component names its bucket (`bucket`, in the link's
//! target config or the provider's config); the config keys are those of
//! wasmCloud's keyvalue-nats provider (see README.md).

mod config;
mod kv;
mod links;

use std::sync::Arc;

use trellis_keyvalue_provider::Buckets;
use trellis_provider_sdk::Connection;

use crate::kv::Bucket;
use crate::links::KvNats;

/// mimalloc instead of glibc's malloc, as the host: allocation is a large
/// part of a provider's CPU per call (docs/PERFORMANCE.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A call's bucket: its link's, opened on the lattice connection when the
/// link has no NATS of its own.
struct NatsBuckets {
    conn: Connection,
    provider: Arc<KvNats>,
}

impl Buckets for NatsBuckets {
    type Bucket = Bucket;

    async fn bucket(
        &self,
        source_id: Option<&str>,
        link_name: &str,
        opened: &str,
    ) -> Result<Bucket, String> {
        let linked = self
            .provider
            .linked_bucket(source_id, link_name, opened)
            .map_err(|e| e.to_string())?;
        linked
            .bucket(self.conn.nats())
            .await
            .map_err(|e| e.to_string())
    }
}

/// One thread: the provider only moves bytes between NATS (and, for the
/// HTTP server, its listeners); a second worker only added cross-thread
/// wake-ups (futex) and smaller write batches (docs/PERFORMANCE.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    trellis_provider_sdk::run(
        KvNats::default(),
        "keyvalue-nats",
        async |conn: Connection, provider: Arc<KvNats>| {
            let buckets = NatsBuckets {
                conn: conn.clone(),
                provider,
            };
            trellis_keyvalue_provider::serve(&conn, Arc::new(buckets)).await
        },
    )
    .await?;
    Ok(())
}
