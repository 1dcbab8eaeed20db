//! `builtin://keyvalue-nats`: JetStream key-value buckets on the host's own
//! NATS connection, configured by the link's target config exactly as
//! wasmCloud's keyvalue-nats provider (`bucket`, `enable_bucket_auto_create`,
//! `js_domain`). Bucket handles are opened once and cached, each with its
//! [`Counters`] (`atomics.increment`: one compare-and-set on a remembered
//! revision, concurrent increments of a key combined).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_nats::jetstream::kv;
use futures::TryStreamExt as _;
use trellis_nats_counter::{Counters, IncrementError};

use super::{BackendError, KeyPage, LIST_KEYS_PAGE};

/// Link target config keys (wasmCloud keyvalue-nats).
const BUCKET_KEY: &str = "bucket";
const AUTO_CREATE_KEY: &str = "enable_bucket_auto_create";
const JS_DOMAIN_KEY: &str = "js_domain";

/// Where a bucket lives, from the link's target config and `open`'s argument.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct NatsBucketSpec {
    pub bucket: String,
    pub js_domain: Option<String>,
    pub auto_create: bool,
}

impl NatsBucketSpec {
    /// The link's `bucket` wins over the identifier the component opened;
    /// `js_domain` falls back to the host's own domain.
    pub fn new(
        config: &BTreeMap<String, String>,
        identifier: &str,
        host_js_domain: Option<&str>,
    ) -> Self {
        let bucket = config
            .get(BUCKET_KEY)
            .filter(|b| !b.is_empty())
            .cloned()
            .unwrap_or_else(|| identifier.to_string());
        let js_domain = config
            .get(JS_DOMAIN_KEY)
            .filter(|d| !d.is_empty())
            .cloned()
            .or_else(|| host_js_domain.map(str::to_string));
        let auto_create = config
            .get(AUTO_CREATE_KEY)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Self {
            bucket,
            js_domain,
            auto_create,
        }
    }
}

/// `(js_domain, bucket)`.
type BucketKey = (Option<String>, String);

/// Opened JetStream KV buckets of one host.
pub(crate) struct NatsStores {
    nats: async_nats::Client,
    opened: Mutex<HashMap<BucketKey, Arc<Counters>>>,
}

impl NatsStores {
    pub fn new(nats: async_nats::Client) -> Self {
        Self {
            nats,
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// The bucket `spec` names, opened (or created, when allowed) once.
    pub async fn open(&self, spec: &NatsBucketSpec) -> Result<Arc<Counters>, BackendError> {
        let key = (spec.js_domain.clone(), spec.bucket.clone());
        if let Some(store) = self.opened.lock().ok().and_then(|o| o.get(&key).cloned()) {
            return Ok(store);
        }
        if !is_valid_bucket_name(&spec.bucket) {
            return Err(BackendError::NoSuchStore(format!(
                "`{}` is not a valid JetStream KV bucket name (letters, digits, `-` and `_`); set the link's `bucket` config",
                spec.bucket
            )));
        }
        let js = match &spec.js_domain {
            Some(domain) => async_nats::jetstream::with_domain(self.nats.clone(), domain),
            None => async_nats::jetstream::new(self.nats.clone()),
        };
        let store = match js.get_key_value(&spec.bucket).await {
            Ok(store) => store,
            Err(e) if e.kind() == async_nats::jetstream::context::KeyValueErrorKind::GetBucket => {
                if !spec.auto_create {
                    return Err(BackendError::NoSuchStore(format!(
                        "JetStream KV bucket `{}` does not exist ({e}): create it, or set `{AUTO_CREATE_KEY}` = true in the link's target config",
                        spec.bucket
                    )));
                }
                js.create_key_value(kv::Config {
                    bucket: spec.bucket.clone(),
                    history: 1,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    BackendError::Backend(format!(
                        "cannot create JetStream KV bucket `{}`: {e}",
                        spec.bucket
                    ))
                })?
            }
            Err(e) => {
                return Err(BackendError::Backend(format!(
                    "cannot open JetStream KV bucket `{}`: {e}",
                    spec.bucket
                )));
            }
        };
        let store = Counters::new(store);
        if let Ok(mut opened) = self.opened.lock() {
            opened.insert(key, store.clone());
        }
        Ok(store)
    }
}

/// JetStream's rule for bucket names (async-nats keeps its check private).
fn is_valid_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn backend(op: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Backend(format!("JetStream KV {op} failed: {e}"))
}

pub(crate) async fn get(store: &kv::Store, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
    let value = store.get(key).await.map_err(|e| backend("get", e))?;
    Ok(value.map(|v| v.to_vec()))
}

pub(crate) async fn set(
    counters: &Counters,
    key: &str,
    value: Vec<u8>,
) -> Result<(), BackendError> {
    counters.forget(key);
    counters
        .store()
        .put(key, value.into())
        .await
        .map_err(|e| backend("put", e))?;
    Ok(())
}

pub(crate) async fn delete(counters: &Counters, key: &str) -> Result<(), BackendError> {
    counters.forget(key);
    counters
        .store()
        .delete(key)
        .await
        .map_err(|e| backend("delete", e))
}

pub(crate) async fn exists(store: &kv::Store, key: &str) -> Result<bool, BackendError> {
    Ok(get(store, key).await?.is_some())
}

/// Keys after position `cursor`, [`LIST_KEYS_PAGE`] at a time (JetStream
/// lists keys in stream order, which is stable between calls without writes).
pub(crate) async fn list_keys(
    store: &kv::Store,
    cursor: Option<u64>,
) -> Result<KeyPage, BackendError> {
    let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
    let mut keys = store.keys().await.map_err(|e| backend("keys", e))?;
    let mut page = Vec::new();
    let mut seen = 0usize;
    let mut more = false;
    while let Some(key) = keys.try_next().await.map_err(|e| backend("keys", e))? {
        if seen >= skip {
            if page.len() == LIST_KEYS_PAGE {
                more = true;
                break;
            }
            page.push(key);
        }
        seen = seen.saturating_add(1);
    }
    let cursor = more.then(|| skip.saturating_add(page.len()) as u64);
    Ok(KeyPage { keys: page, cursor })
}

/// Adds `delta` (see [`Counters`]): concurrent increments from any number
/// of hosts never lose one.
pub(crate) async fn increment(
    counters: &Arc<Counters>,
    key: &str,
    delta: u64,
) -> Result<u64, BackendError> {
    counters.increment(key, delta).await.map_err(|e| match e {
        IncrementError::NotACounter { .. } => BackendError::NotACounter { key: key.into() },
        IncrementError::Overflow { delta, .. } => BackendError::Overflow {
            key: key.into(),
            delta,
        },
        IncrementError::Contended => BackendError::Backend(format!(
            "increment of `{key}` lost the race {} times in a row; retry",
            trellis_nats_counter::MAX_ATTEMPTS
        )),
        other => BackendError::Backend(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_bucket_wins_over_identifier() {
        let mut config = BTreeMap::new();
        let spec = NatsBucketSpec::new(&config, "default", Some("hub"));
        assert_eq!(spec.bucket, "default");
        assert_eq!(spec.js_domain.as_deref(), Some("hub"));
        assert!(!spec.auto_create);
        config.insert("bucket".into(), "counters".into());
        config.insert("js_domain".into(), "leaf".into());
        config.insert("enable_bucket_auto_create".into(), "TRUE".into());
        let spec = NatsBucketSpec::new(&config, "default", Some("hub"));
        assert_eq!(spec.bucket, "counters");
        assert_eq!(spec.js_domain.as_deref(), Some("leaf"));
        assert!(spec.auto_create);
    }
}
