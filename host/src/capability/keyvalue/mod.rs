//! `wasi:keyvalue@0.2.0-draft` (`store`, `atomics`, `batch`) served by the
//! host for every component, the versions wasmCloud 1.x components import.
//!
//! `store.open` resolves the component's `wasi:keyvalue/store` link (name from
//! `set-link-name`, else `default`) and picks a backend by what the link
//! targets: a `builtin://keyvalue-memory` provider on this host ([`memory`]),
//! a `builtin://keyvalue-nats` provider on this host ([`nats`], JetStream KV on
//! the host's own connection), or anything else, a provider process somewhere
//! in the lattice reached over wRPC on `wrpc:keyvalue/*@0.2.0-draft`
//! ([`remote`]). The opened bucket keeps its backend: `atomics` and `batch`
//! calls on it go where `open` went.
//!
//! A component that exports `wasi:keyvalue/watcher` is offered on the
//! lattice as `wrpc:keyvalue/watcher@0.2.0-draft` ([`watcher`]), which
//! providers call when an entry changes.

mod memory;
mod nats;
mod remote;
mod watcher;

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use wasmtime::component::{HasSelf, Linker, Resource};

use crate::host::HostInner;
use crate::runtime::InvocationState;
use bindings::wasi::keyvalue::store::{Error, KeyResponse};

pub(crate) use watcher::serve_watcher;
pub use watcher::{WATCHER_INSTANCE, exports_watcher};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wit/deps/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: { "wasi:keyvalue/store.bucket": super::Bucket },
    });
}

/// The link key `open` resolves.
const STORE_INTERFACE: &str = "wasi:keyvalue/store";
/// Keys per `list-keys` page; the cursor is the position of the next key.
pub const LIST_KEYS_PAGE: usize = 1000;
/// `builtin://` name of the in-memory backend.
pub const BUILTIN_MEMORY: &str = "keyvalue-memory";
/// `builtin://` name of the JetStream KV backend.
pub const BUILTIN_NATS: &str = "keyvalue-nats";

/// The built-in keyvalue providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinKeyValue {
    /// `builtin://keyvalue-memory`.
    Memory,
    /// `builtin://keyvalue-nats`.
    Nats,
}

/// Which built-in keyvalue provider `image_ref` names, if any
/// (`builtin://…` or `wasmcloud+builtin://…`).
pub fn builtin_keyvalue(image_ref: &str) -> Option<BuiltinKeyValue> {
    match crate::artifact::ArtifactRef::parse(image_ref) {
        Ok(crate::artifact::ArtifactRef::Builtin(name)) if name == BUILTIN_MEMORY => {
            Some(BuiltinKeyValue::Memory)
        }
        Ok(crate::artifact::ArtifactRef::Builtin(name)) if name == BUILTIN_NATS => {
            Some(BuiltinKeyValue::Nats)
        }
        _ => None,
    }
}

/// Whether `image_ref` names one of the host's built-in capabilities.
fn is_builtin(image_ref: &str) -> bool {
    matches!(
        crate::artifact::ArtifactRef::parse(image_ref),
        Ok(crate::artifact::ArtifactRef::Builtin(_))
    )
}

/// Why a bucket operation failed; becomes the WIT `error`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The bucket does not exist and may not be created.
    #[error("{0}")]
    NoSuchStore(String),
    /// The value at `key` is not a decimal `u64`, so it cannot be incremented.
    #[error("the value at `{key}` is not a decimal unsigned counter")]
    NotACounter {
        /// The key.
        key: String,
    },
    /// The increment would pass `u64::MAX`.
    #[error("incrementing `{key}` by {delta} overflows u64")]
    Overflow {
        /// The key.
        key: String,
        /// The delta asked for.
        delta: u64,
    },
    /// The backend failed (NATS, the provider, the transport).
    #[error("{0}")]
    Backend(String),
}

/// One page of keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in this page.
    pub keys: Vec<String>,
    /// Where the next page starts, if there is one.
    pub cursor: Option<u64>,
}

/// Counters are stored as decimal text, as Redis `INCRBY` and wasmCloud's
/// keyvalue providers do, so `store.get` after `increment` reads `"3"`.
pub(crate) fn parse_counter(key: &str, value: &[u8]) -> Result<u64, BackendError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| BackendError::NotACounter { key: key.into() })
}

pub(crate) fn add_delta(key: &str, current: u64, delta: u64) -> Result<u64, BackendError> {
    current.checked_add(delta).ok_or(BackendError::Overflow {
        key: key.into(),
        delta,
    })
}

/// The host-wide state of the keyvalue capability: in-memory buckets and
/// opened JetStream KV handles. Reached from a store through the data plane.
pub struct KeyValueService {
    host: Weak<HostInner>,
    memory: memory::MemoryStores,
    nats: nats::NatsStores,
}

impl KeyValueService {
    pub(crate) fn new(host: Weak<HostInner>, nats: async_nats::Client) -> Self {
        Self {
            host,
            memory: memory::MemoryStores::default(),
            nats: nats::NatsStores::new(nats),
        }
    }

    /// A built-in provider stopped: its in-memory buckets go with it.
    pub(crate) fn provider_stopped(&self, provider_id: &str) {
        self.memory.remove_provider(provider_id);
    }

    /// `store.open(identifier)` for `component` under `link_name`.
    async fn open(
        &self,
        component: &Arc<str>,
        link_name: &str,
        identifier: String,
        deadline: tokio::time::Instant,
    ) -> Result<Bucket, Error> {
        let host = self
            .host
            .upgrade()
            .ok_or_else(|| Error::Other("the host is stopping".into()))?;
        let target = host
            .dataplane
            .resolve(component, STORE_INTERFACE, link_name)
            .map_err(|_| {
                Error::Other(format!(
                    "component `{component}` has no keyvalue link named `{link_name}`: link it to a provider, e.g. builtin://keyvalue-memory"
                ))
            })?;
        let builtin = host
            .providers
            .read()
            .ok()
            .and_then(|p| p.get(&*target).map(|s| s.image_ref.clone()));
        // Only the built-ins read the link's target config (providers get it
        // with the link), so remote buckets skip the lookup.
        let config = || link_target_config(&host, component, &target, link_name);
        let label = BucketLabel {
            component: component.clone(),
            link_name: link_name.to_string(),
            target: target.clone(),
            name: identifier.clone(),
        };
        let backend = match builtin.as_deref().map(|r| (r, builtin_keyvalue(r))) {
            Some((_, Some(BuiltinKeyValue::Memory))) => {
                let name = config()
                    .get("bucket")
                    .filter(|b| !b.is_empty())
                    .cloned()
                    .unwrap_or(identifier);
                Backend::Memory(self.memory.bucket(&target, &name))
            }
            Some((_, Some(BuiltinKeyValue::Nats))) => {
                let spec = nats::NatsBucketSpec::new(
                    &config(),
                    &identifier,
                    host.config.js_domain.as_deref(),
                );
                let store = self
                    .nats
                    .open(&spec)
                    .await
                    .map_err(|e| label.error(&spec.bucket, e))?;
                Backend::Nats(store)
            }
            Some((image_ref, None)) if is_builtin(image_ref) => {
                return Err(Error::Other(format!(
                    "component `{component}` links keyvalue (`{link_name}`) to `{target}`, which is `{image_ref}` and serves no keyvalue interface"
                )));
            }
            // A provider process (on this host or another) serves it over wRPC.
            Some(_) | None => Backend::Remote(remote::RemoteBucket::new(
                host.dataplane.clone(),
                identifier,
                deadline,
            )),
        };
        Ok(Bucket {
            backend,
            label: Arc::new(label),
        })
    }
}

/// The merged target config of `component`'s keyvalue link `link_name`
/// (empty when the lattice view is unavailable).
fn link_target_config(
    host: &HostInner,
    component: &str,
    target: &str,
    link_name: &str,
) -> BTreeMap<String, String> {
    super::link_target_config(host, component, target, link_name, ("wasi", "keyvalue"))
        .unwrap_or_default()
}

/// The `bucket` resource a component holds: where it goes and, for error
/// messages, whose it is.
pub struct Bucket {
    backend: Backend,
    label: Arc<BucketLabel>,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<memory::MemoryBucket>),
    /// Shared: the bucket's handle (~1.5 KiB) and its remembered counters.
    Nats(Arc<trellis_nats_counter::Counters>),
    Remote(remote::RemoteBucket),
}

struct BucketLabel {
    component: Arc<str>,
    link_name: String,
    target: Arc<str>,
    name: String,
}

impl BucketLabel {
    fn error(&self, bucket: &str, e: BackendError) -> Error {
        let message = format!(
            "keyvalue bucket `{bucket}` of component `{}` (link `{}` to `{}`): {e}",
            self.component, self.link_name, self.target
        );
        tracing::debug!(component_id = %self.component, link = %self.link_name, bucket, "{message}");
        // `no-such-store` carries no text; the message is what helps.
        Error::Other(message)
    }
}

impl Bucket {
    fn fail(&self, e: BackendError) -> Error {
        self.label.error(&self.label.name, e)
    }

    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, Error> {
        match &self.backend {
            Backend::Memory(b) => Ok(b.get(&key)),
            Backend::Nats(s) => nats::get(s.store(), &key).await.map_err(|e| self.fail(e)),
            Backend::Remote(r) => r.get(&self.label, key).await.map_err(|e| self.fail(e)),
        }
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
        match &self.backend {
            Backend::Memory(b) => {
                b.set(key, value);
                Ok(())
            }
            Backend::Nats(s) => nats::set(s, &key, value).await.map_err(|e| self.fail(e)),
            Backend::Remote(r) => r
                .set(&self.label, key, value)
                .await
                .map_err(|e| self.fail(e)),
        }
    }

    async fn delete(&self, key: String) -> Result<(), Error> {
        match &self.backend {
            Backend::Memory(b) => {
                b.delete(&key);
                Ok(())
            }
            Backend::Nats(s) => nats::delete(s, &key).await.map_err(|e| self.fail(e)),
            Backend::Remote(r) => r.delete(&self.label, key).await.map_err(|e| self.fail(e)),
        }
    }

    async fn exists(&self, key: String) -> Result<bool, Error> {
        match &self.backend {
            Backend::Memory(b) => Ok(b.exists(&key)),
            Backend::Nats(s) => nats::exists(s.store(), &key)
                .await
                .map_err(|e| self.fail(e)),
            Backend::Remote(r) => r.exists(&self.label, key).await.map_err(|e| self.fail(e)),
        }
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, Error> {
        match &self.backend {
            Backend::Memory(b) => Ok(b.list_keys(cursor)),
            Backend::Nats(s) => nats::list_keys(s.store(), cursor)
                .await
                .map_err(|e| self.fail(e)),
            Backend::Remote(r) => r
                .list_keys(&self.label, cursor)
                .await
                .map_err(|e| self.fail(e)),
        }
    }

    async fn increment(&self, key: String, delta: u64) -> Result<u64, Error> {
        match &self.backend {
            Backend::Memory(b) => b.increment(&key, delta).map_err(|e| self.fail(e)),
            Backend::Nats(s) => nats::increment(s, &key, delta)
                .await
                .map_err(|e| self.fail(e)),
            Backend::Remote(r) => r
                .increment(&self.label, key, delta)
                .await
                .map_err(|e| self.fail(e)),
        }
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<(String, Vec<u8>)>>, Error> {
        if let Backend::Remote(r) = &self.backend {
            return r
                .get_many(&self.label, keys)
                .await
                .map_err(|e| self.fail(e));
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.get(key.clone()).await?;
            out.push(value.map(|v| (key, v)));
        }
        Ok(out)
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), Error> {
        if let Backend::Remote(r) = &self.backend {
            return r
                .set_many(&self.label, entries)
                .await
                .map_err(|e| self.fail(e));
        }
        for (key, value) in entries {
            self.set(key, value).await?;
        }
        Ok(())
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<(), Error> {
        if let Backend::Remote(r) = &self.backend {
            return r
                .delete_many(&self.label, keys)
                .await
                .map_err(|e| self.fail(e));
        }
        for key in keys {
            self.delete(key).await?;
        }
        Ok(())
    }
}

/// Adds `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft` to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    use bindings::wasi::keyvalue::{atomics, batch, store};
    store::add_to_linker::<_, HasSelf<InvocationState>>(linker, |s| s)?;
    atomics::add_to_linker::<_, HasSelf<InvocationState>>(linker, |s| s)?;
    batch::add_to_linker::<_, HasSelf<InvocationState>>(linker, |s| s)?;
    Ok(())
}

impl InvocationState {
    /// The bucket behind `bucket`, cloned out of the table so no borrow of
    /// the store is held across the backend's await.
    fn bucket(
        &mut self,
        bucket: &Resource<Bucket>,
    ) -> wasmtime::Result<(Backend, Arc<BucketLabel>)> {
        let b = self.table_mut().get(bucket)?;
        Ok((b.backend.clone(), b.label.clone()))
    }

    fn bucket_handle(&mut self, bucket: &Resource<Bucket>) -> wasmtime::Result<Bucket> {
        let (backend, label) = self.bucket(bucket)?;
        Ok(Bucket { backend, label })
    }
}

impl bindings::wasi::keyvalue::store::Host for InvocationState {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, Error>> {
        let link_name = self
            .link_names
            .get(STORE_INTERFACE)
            .cloned()
            .unwrap_or_else(|| crate::dataplane::links::default_link_name().to_string());
        let Some(service) = self.links.as_ref().and_then(|dp| dp.keyvalue()) else {
            return Ok(Err(Error::Other(
                "keyvalue is not available in this host".into(),
            )));
        };
        let deadline = self.scope.deadline;
        match service
            .open(&self.component_id, &link_name, identifier, deadline)
            .await
        {
            Ok(bucket) => Ok(Ok(self.table_mut().push(bucket)?)),
            Err(e) => {
                if let Error::Other(message) = &e {
                    tracing::warn!(component_id = %self.component_id, link = %link_name, "{message}");
                }
                Ok(Err(e))
            }
        }
    }
}

impl bindings::wasi::keyvalue::store::HostBucket for InvocationState {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(self.bucket_handle(&bucket)?.get(key).await)
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.bucket_handle(&bucket)?.set(key, value).await)
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.bucket_handle(&bucket)?.delete(key).await)
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(self.bucket_handle(&bucket)?.exists(key).await)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<KeyResponse, Error>> {
        let page = self.bucket_handle(&bucket)?.list_keys(cursor).await;
        Ok(page.map(|p| KeyResponse {
            keys: p.keys,
            cursor: p.cursor,
        }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table_mut().delete(bucket)?;
        Ok(())
    }
}

impl bindings::wasi::keyvalue::atomics::Host for InvocationState {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, Error>> {
        Ok(self.bucket_handle(&bucket)?.increment(key, delta).await)
    }
}

impl bindings::wasi::keyvalue::batch::Host for InvocationState {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, Error>> {
        Ok(self.bucket_handle(&bucket)?.get_many(keys).await)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.bucket_handle(&bucket)?.set_many(key_values).await)
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.bucket_handle(&bucket)?.delete_many(keys).await)
    }
}
