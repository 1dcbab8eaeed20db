//! The exports: `wrpc:keyvalue/{store,atomics,batch}@0.2.0-draft`, each call
//! routed to the bucket of the link it comes over.

use std::sync::Arc;

use bytes::Bytes;
use trellis_provider_sdk::Context;
use trellis_provider_sdk::trellis_wrpc::ServeContext;

use crate::backend::Database;
use crate::bindings::exports::wrpc::keyvalue::{atomics, batch, store};
use crate::links::KvRedis;

/// A call's outcome: the transport error (never, here) outside, the
/// keyvalue error inside.
type Reply<T> = anyhow::Result<Result<T, store::Error>>;

/// Serves the three interfaces; one clone per call.
#[derive(Clone)]
pub struct Handler {
    provider: Arc<KvRedis>,
}

impl Handler {
    /// Serves calls with the links of `provider`.
    pub fn new(provider: Arc<KvRedis>) -> Self {
        Self { provider }
    }

    /// The database of the link the call comes over. The bucket the
    /// component opened only picks a link (see [`KvRedis::database`]): the
    /// database is the one in the link's `URL`.
    async fn bucket(&self, cx: &ServeContext, opened: &str) -> Result<Database, store::Error> {
        let caller = Context::from(cx);
        self.provider
            .database(caller.source_id(), caller.link_name(), opened)
            .map_err(|e| other(&e))
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

impl store::Handler<ServeContext> for Handler {
    async fn get(&self, cx: ServeContext, bucket: String, key: String) -> Reply<Option<Bytes>> {
        with_bucket!(self, cx, bucket, |b| b.get(&key))
    }

    async fn set(&self, cx: ServeContext, bucket: String, key: String, value: Bytes) -> Reply<()> {
        with_bucket!(self, cx, bucket, |b| b.set(&key, &value))
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
        let page: Reply<crate::backend::KeyPage> =
            with_bucket!(self, cx, bucket, |b| b.list_keys(cursor));
        Ok(page?.map(|page| store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        }))
    }
}

impl atomics::Handler<ServeContext> for Handler {
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

impl batch::Handler<ServeContext> for Handler {
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
