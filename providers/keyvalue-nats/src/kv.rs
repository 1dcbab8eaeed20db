//! The keyvalue operations on one opened JetStream KV bucket.

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use trellis_keyvalue_provider::{Bucket as KeyValueBucket, KeyPage};

use std::sync::Arc;

use trellis_nats_counter::{Counters, IncrementError, MAX_ATTEMPTS as MAX_INCREMENT_ATTEMPTS};

/// A failed operation on a bucket; the message goes back to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// JetStream refused or failed the operation.
    #[error("JetStream KV {op} of `{key}` in bucket `{bucket}` failed: {message}")]
    Backend {
        /// `get`, `put`, …
        op: &'static str,
        /// The key (or `*` for whole-bucket operations).
        key: String,
        /// The bucket.
        bucket: String,
        /// What JetStream said.
        message: String,
    },
    /// An increment found a value that is not a decimal `u64`.
    #[error("`{key}` holds {value:?}, not a decimal counter: cannot increment it")]
    NotACounter {
        /// The key.
        key: String,
        /// The value, lossily decoded.
        value: String,
    },
    /// The counter would pass `u64::MAX`.
    #[error("incrementing `{key}` ({current}) by {delta} overflows u64")]
    Overflow {
        /// The key.
        key: String,
        /// Its value.
        current: u64,
        /// The delta asked.
        delta: u64,
    },
    /// Every compare-and-set attempt lost a race.
    #[error("increment of `{key}` lost the race {MAX_INCREMENT_ATTEMPTS} times in a row; retry")]
    Contended {
        /// The key.
        key: String,
    },
}

/// An opened bucket and its counters (see [`Counters`]).
#[derive(Clone, Debug)]
pub struct Bucket {
    store: kv::Store,
    counters: Arc<Counters>,
    page_size: usize,
}

impl Bucket {
    /// Wraps an opened store; `page_size` keys per `list-keys` page.
    pub fn new(store: kv::Store, page_size: usize) -> Self {
        Self {
            counters: Counters::new(store.clone()),
            store,
            page_size,
        }
    }

    fn error(&self, op: &'static str, key: &str, e: impl std::fmt::Display) -> KvError {
        KvError::Backend {
            op,
            key: key.to_string(),
            bucket: self.store.name.clone(),
            message: e.to_string(),
        }
    }
}

impl KeyValueBucket for Bucket {
    type Error = KvError;

    /// The value of `key`, `None` when absent or deleted.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, KvError> {
        self.store
            .get(key)
            .await
            .map_err(|e| self.error("get", key, e))
    }

    /// Writes `value` at `key`.
    async fn set(&self, key: &str, value: Bytes) -> Result<(), KvError> {
        self.counters.forget(key);
        self.store
            .put(key, value)
            .await
            .map(|_| ())
            .map_err(|e| self.error("put", key, e))
    }

    /// Removes `key` and its history (a purge, as wasmCloud's provider does).
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.counters.forget(key);
        self.store
            .purge(key)
            .await
            .map_err(|e| self.error("purge", key, e))
    }

    /// Whether `key` holds a value.
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.get(key).await?.is_some())
    }

    /// The keys after position `cursor`, one page at a time. JetStream
    /// lists keys in a stable order while the bucket does not change, so the
    /// cursor is a position in that listing.
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let keys = match self.store.keys().await {
            Ok(keys) => keys,
            Err(e) => return Err(self.error("keys", "*", e)),
        };
        // One more than a page tells whether another page follows.
        let mut page: Vec<String> = keys
            .skip(skip)
            .take(self.page_size.saturating_add(1))
            .try_collect()
            .await
            .map_err(|e| self.error("keys", "*", e))?;
        let more = page.len() > self.page_size;
        page.truncate(self.page_size);
        let cursor =
            more.then(|| u64::try_from(skip.saturating_add(page.len())).unwrap_or(u64::MAX));
        Ok(KeyPage { keys: page, cursor })
    }

    /// Adds `delta` to the decimal counter at `key` (absent counts as 0) and
    /// returns the new value: a compare-and-set on the entry's revision, so
    /// concurrent increments from any number of callers or provider
    /// instances never lose one; one round trip when the key's revision is
    /// remembered (see [`Counters`]).
    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        self.counters
            .increment(key, delta)
            .await
            .map_err(|e| match e {
                IncrementError::NotACounter { value } => KvError::NotACounter {
                    key: key.to_string(),
                    value,
                },
                IncrementError::Overflow { current, delta } => KvError::Overflow {
                    key: key.to_string(),
                    current,
                    delta,
                },
                IncrementError::Contended => KvError::Contended {
                    key: key.to_string(),
                },
                IncrementError::Backend { op, message } => self.error(op, key, message),
                other => self.error("increment", key, other),
            })
    }

    /// The values of `keys`, `None` for absent ones, in the order asked.
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<(String, Bytes)>>, KvError> {
        futures::stream::iter(keys)
            .map(|key| async move {
                let value = self.get(&key).await?;
                Ok(value.map(|value| (key, value)))
            })
            .buffered(BATCH_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Writes every pair; stops at the first failure (earlier writes stay).
    async fn set_many(&self, entries: Vec<(String, Bytes)>) -> Result<(), KvError> {
        futures::stream::iter(entries)
            .map(|(key, value)| async move { self.set(&key, value).await })
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Deletes every key; absent keys are skipped.
    async fn delete_many(&self, keys: Vec<String>) -> Result<(), KvError> {
        futures::stream::iter(keys)
            .map(|key| async move { self.delete(&key).await })
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect()
            .await
    }
}

/// Requests of one batch call in flight at once: enough to hide round-trip
/// latency, few enough not to flood JetStream from one call.
pub const BATCH_CONCURRENCY: usize = 32;
