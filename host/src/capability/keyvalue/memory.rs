//! `builtin://keyvalue-memory`: buckets held in the host's memory, one map per
//! (provider id, bucket name). Fast and gone when the provider stops or the
//! host exits; meant for development, caches and tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use super::{BackendError, KeyPage, LIST_KEYS_PAGE, add_delta, parse_counter};

/// Every in-memory bucket of one host.
#[derive(Default)]
pub(crate) struct MemoryStores {
    buckets: Mutex<HashMap<(String, String), Arc<MemoryBucket>>>,
}

impl MemoryStores {
    /// The bucket `bucket` of provider `provider_id`, created empty on first use.
    pub fn bucket(&self, provider_id: &str, bucket: &str) -> Arc<MemoryBucket> {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        buckets
            .entry((provider_id.to_string(), bucket.to_string()))
            .or_default()
            .clone()
    }

    /// Forgets every bucket of `provider_id` (the provider was stopped).
    pub fn remove_provider(&self, provider_id: &str) {
        if let Ok(mut buckets) = self.buckets.lock() {
            buckets.retain(|(p, _), _| p != provider_id);
        }
    }
}

/// One in-memory bucket: keys in order, so listing pages are stable.
#[derive(Default)]
pub(crate) struct MemoryBucket {
    entries: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryBucket {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Vec<u8>>> {
        match self.entries.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Vec<u8>>> {
        match self.entries.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.read().get(key).cloned()
    }

    pub fn set(&self, key: String, value: Vec<u8>) {
        self.write().insert(key, value);
    }

    pub fn delete(&self, key: &str) {
        self.write().remove(key);
    }

    pub fn exists(&self, key: &str) -> bool {
        self.read().contains_key(key)
    }

    /// Keys after position `cursor`, [`LIST_KEYS_PAGE`] at a time.
    pub fn list_keys(&self, cursor: Option<u64>) -> KeyPage {
        let entries = self.read();
        let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let keys: Vec<String> = entries
            .keys()
            .skip(skip)
            .take(LIST_KEYS_PAGE)
            .cloned()
            .collect();
        let next = skip.saturating_add(keys.len());
        let cursor = (next < entries.len()).then_some(next as u64);
        KeyPage { keys, cursor }
    }

    /// Adds `delta` to the decimal counter at `key` (absent counts as 0)
    /// under the bucket's write lock, so concurrent increments never lose one.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, BackendError> {
        let mut entries = self.write();
        let current = match entries.get(key) {
            Some(v) => parse_counter(key, v)?,
            None => 0,
        };
        let next = add_delta(key, current, delta)?;
        entries.insert(key.to_string(), next.to_string().into_bytes());
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_per_provider_and_name() {
        let stores = MemoryStores::default();
        stores.bucket("kv", "a").set("k".into(), b"1".to_vec());
        assert_eq!(stores.bucket("kv", "a").get("k"), Some(b"1".to_vec()));
        assert_eq!(stores.bucket("kv", "b").get("k"), None);
        assert_eq!(stores.bucket("kv2", "a").get("k"), None);
        stores.remove_provider("kv");
        assert_eq!(stores.bucket("kv", "a").get("k"), None);
    }

    #[test]
    fn increments_decimal_counters() {
        let b = MemoryBucket::default();
        assert_eq!(b.increment("n", 1).unwrap(), 1);
        assert_eq!(b.increment("n", 41).unwrap(), 42);
        assert_eq!(b.get("n"), Some(b"42".to_vec()));
        b.set("s".into(), b"hello".to_vec());
        assert!(b.increment("s", 1).is_err());
        b.set("max".into(), u64::MAX.to_string().into_bytes());
        assert!(b.increment("max", 1).is_err());
    }

    #[test]
    fn lists_keys_in_pages() {
        let b = MemoryBucket::default();
        for i in 0..(LIST_KEYS_PAGE + 5) {
            b.set(format!("k{i:05}"), vec![]);
        }
        let first = b.list_keys(None);
        assert_eq!(first.keys.len(), LIST_KEYS_PAGE);
        let second = b.list_keys(first.cursor);
        assert_eq!(second.keys.len(), 5);
        assert_eq!(second.cursor, None);
    }
}
