//! The keyvalue operations on one opened JetStream KV bucket.

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use trellis_keyvalue_provider::{Bucket as KeyValueBucket, KeyPage};

/// How many times an increment re-reads and retries when another writer
/// changed the key between its read and its compare-and-set. Each retry is
/// one round trip; 64 covers heavy contention on one key without looping
/// forever.
pub const MAX_INCREMENT_ATTEMPTS: usize = 64;

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

/// An opened bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    store: kv::Store,
    page_size: usize,
}

impl Bucket {
    /// Wraps an opened store; `page_size` keys per `list-keys` page.
    pub fn new(store: kv::Store, page_size: usize) -> Self {
        Self { store, page_size }
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
        self.store
            .put(key, value)
            .await
            .map(|_| ())
            .map_err(|e| self.error("put", key, e))
    }

    /// Removes `key` and its history (a purge, as wasmCloud's provider does).
    async fn delete(&self, key: &str) -> Result<(), KvError> {
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
    /// returns the new value. A compare-and-set on the entry's revision, so
    /// concurrent increments from any number of callers or provider
    /// instances never lose one.
    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        for _ in 0..MAX_INCREMENT_ATTEMPTS {
            let entry = self
                .store
                .entry(key)
                .await
                .map_err(|e| self.error("get", key, e))?;
            let live = entry.filter(|e| e.operation == kv::Operation::Put);
            let (current, revision) = match &live {
                Some(entry) => (parse_counter(key, &entry.value)?, Some(entry.revision)),
                None => (0, None),
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| KvError::Overflow {
                    key: key.to_string(),
                    current,
                    delta,
                })?;
            let bytes = Bytes::from(next.to_string());
            let written = match revision {
                Some(revision) => match self.store.update(key, bytes, revision).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(self.error("update", key, e)),
                },
                // `create` also succeeds over a deleted or purged entry.
                None => match self.store.create(key, bytes).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(self.error("create", key, e)),
                },
            };
            if written {
                return Ok(next);
            }
        }
        Err(KvError::Contended {
            key: key.to_string(),
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

/// The counter in `value`: a decimal `u64` (what `increment` writes, and what
/// a component that stores `n.to_string()` writes). Empty counts as 0.
fn parse_counter(key: &str, value: &[u8]) -> Result<u64, KvError> {
    let text = std::str::from_utf8(value).unwrap_or("").trim();
    if value.is_empty() {
        return Ok(0);
    }
    text.parse().map_err(|_| KvError::NotACounter {
        key: key.to_string(),
        value: String::from_utf8_lossy(value).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse() {
        assert_eq!(parse_counter("k", b"").unwrap(), 0);
        assert_eq!(parse_counter("k", b"42").unwrap(), 42);
        assert_eq!(parse_counter("k", b" 7\n").unwrap(), 7);
        let error = parse_counter("k", b"hello").unwrap_err();
        assert!(
            error.to_string().contains("not a decimal counter"),
            "{error}"
        );
        assert!(parse_counter("k", b"-1").is_err());
    }
}
