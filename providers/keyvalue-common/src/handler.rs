//! The exports: `wrpc:keyvalue/{store,atomics,batch}@0.2.0-draft`, each call
//! routed to the bucket of the link it comes over.

use std::sync::Arc;

use bytes::Bytes;
use trellis_provider_sdk::trellis_wrpc::ServeContext;
use trellis_provider_sdk::{Connection, Context};

use crate::bindings::exports::wrpc::keyvalue::{atomics, batch, store};
use crate::{Bucket, Buckets, KeyPage};

/// A call's outcome: the transport error (never, here) outside, the
/// keyvalue error inside.
type Reply<T> = anyhow::Result<Result<T, store::Error>>;

/// Serves `wrpc:keyvalue/{store,atomics,batch}@0.2.0-draft` on `conn` from
/// `buckets` until the connection's subscriptions end.
pub async fn serve<B: Buckets>(conn: &Connection, buckets: Arc<B>) -> anyhow::Result<()> {
    let exports = crate::bindings::serve(&conn.server(), Handler { buckets }).await?;
    trellis_provider_sdk::serve_exports(exports).await
}

/// Serves the three interfaces; one clone per call.
struct Handler<B> {
    buckets: Arc<B>,
}

impl<B> Clone for Handler<B> {
    fn clone(&self) -> Self {
        Self {
            buckets: Arc::clone(&self.buckets),
        }
    }
}

impl<B: Buckets> Handler<B> {
    /// The bucket of the link the call comes over.
    async fn bucket(&self, cx: &ServeContext, opened: &str) -> Result<B::Bucket, store::Error> {
        let caller = Context::from(cx);
        self.buckets
            .bucket(caller.source_id(), caller.link_name(), opened)
            .await
            .map_err(|e| {
                tracing::warn!(source_id = ?caller.source_id(), link = caller.link_name(), "{e}");
                store::Error::Other(e)
            })
    }
}

fn other(error: &dyn std::fmt::Display) -> store::Error {
    store::Error::Other(error.to_string())
}

/// Runs `op` on the call's bucket; every failure becomes `error::other`.
macro_rules! with_bucket {
    ($self:ident, $cx:ident, $opened:ident, |$bucket:ident| $op:expr) => {{
        let $bucket = match $self.bucket(&$cx, &$opened).await {
            Ok(bucket) => bucket,
            Err(error) => return Ok(Err(error)),
        };
        Ok($op.await.map_err(|e| other(&e)))
    }};
}

impl<B: Buckets> store::Handler<ServeContext> for Handler<B> {
    async fn get(&self, cx: ServeContext, bucket: String, key: String) -> Reply<Option<Bytes>> {
        with_bucket!(self, cx, bucket, |b| b.get(&key))
    }

    async fn set(&self, cx: ServeContext, bucket: String, key: String, value: Bytes) -> Reply<()> {
        with_bucket!(self, cx, bucket, |b| b.set(&key, value))
    }

    async fn delete(&self, cx: ServeContext, bucket: String, key: String) -> Reply<()> {
        with_bucket!(self, cx, bucket, |b| b.delete(&key))
    }

    async fn exists(&self, cx: ServeContext, bucket: String, key: String) -> Reply<bool> {
        with_bucket!(self, cx, bucket, |b| b.exists(&key))
    }

    async fn list_keys(
        &self,
        cx: ServeContext,
        bucket: String,
        cursor: Option<u64>,
    ) -> Reply<store::KeyResponse> {
        let page: Reply<KeyPage> = with_bucket!(self, cx, bucket, |b| b.list_keys(cursor));
        Ok(page?.map(|page| store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        }))
    }
}

impl<B: Buckets> atomics::Handler<ServeContext> for Handler<B> {
    async fn increment(
        &self,
        cx: ServeContext,
        bucket: String,
        key: String,
        delta: u64,
    ) -> Reply<u64> {
        with_bucket!(self, cx, bucket, |b| b.increment(&key, delta))
    }
}

impl<B: Buckets> batch::Handler<ServeContext> for Handler<B> {
    async fn get_many(
        &self,
        cx: ServeContext,
        bucket: String,
        keys: Vec<String>,
    ) -> Reply<Vec<Option<(String, Bytes)>>> {
        with_bucket!(self, cx, bucket, |b| b.get_many(keys))
    }

    async fn set_many(
        &self,
        cx: ServeContext,
        bucket: String,
        key_values: Vec<(String, Bytes)>,
    ) -> Reply<()> {
        with_bucket!(self, cx, bucket, |b| b.set_many(key_values))
    }

    async fn delete_many(&self, cx: ServeContext, bucket: String, keys: Vec<String>) -> Reply<()> {
        with_bucket!(self, cx, bucket, |b| b.delete_many(keys))
    }
}
