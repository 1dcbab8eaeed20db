//! The data plane: how a component's calls reach their targets.
//!
//! - [`links`]: the link table, rebuilt when links change.
//! - [`exports`]: what a component exports, indexed once per compiled component.
//! - [`imports`]: the import router linked into every component whose imports
//!   the host does not serve itself. Per call it resolves the link and takes
//!   the **in-process fast path** when the target runs here (plain values, no
//!   NATS, no encoding), else the lattice.
//! - [`remote`]: the lattice path, wRPC 0.0.1 over NATS through `trellis-wrpc`.
//! - [`serve`]: offers each running component's exports on the lattice.

pub mod exports;
pub mod imports;
pub mod links;
pub mod remote;
pub mod serve;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use trellis_interfaces::link::Link;
pub use trellis_interfaces::liveness::CallCounts;

use crate::host::ComponentSlot;
use crate::runtime::RunningComponent;
use links::{LinkTable, RouteError};

/// Default budget of a call across the lattice when the caller has no tighter
/// deadline: wasmCloud's 10 s, now a flag (`--rpc-timeout-ms`).
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of calls by the path they took (tests and metrics read them).
#[derive(Debug, Default)]
pub struct CallStats {
    local: AtomicU64,
    lattice: AtomicU64,
    served: AtomicU64,
    served_ahead: AtomicU64,
    reused: AtomicU64,
}

/// Shared by the host, the import routers of every component and the export
/// servers.
pub struct DataPlane {
    lattice: String,
    components: Arc<RwLock<HashMap<String, ComponentSlot>>>,
    links: RwLock<Arc<LinkTable>>,
    transport: OnceLock<trellis_wrpc::Transport>,
    prefer_local: bool,
    rpc_timeout: Duration,
    stats: CallStats,
    served: Mutex<HashMap<String, serve::ExportServer>>,
    /// The host's `wasi:keyvalue` capability (set once at host start).
    keyvalue: OnceLock<Arc<crate::capability::keyvalue::KeyValueService>>,
    /// The host's `wasi:blobstore` capability (set once at host start).
    blobstore: OnceLock<Arc<crate::capability::blobstore::BlobstoreService>>,
    /// The host's `wasmcloud:messaging` capability (set once at host start).
    messaging: OnceLock<Arc<crate::capability::messaging::MessagingService>>,
    /// The host's outgoing `wasi:http` capability (set once at host start).
    http_client: OnceLock<Arc<crate::capability::http_client::HttpClientService>>,
    /// The policy service, set on first use when `--policy-topic` is given.
    policy: OnceLock<Arc<crate::policy::PolicyService>>,
}

impl DataPlane {
    /// A data plane for `lattice`, looking local targets up in `components`.
    pub(crate) fn new(
        lattice: String,
        components: Arc<RwLock<HashMap<String, ComponentSlot>>>,
        prefer_local: bool,
        rpc_timeout: Duration,
    ) -> Self {
        Self {
            lattice,
            components,
            links: RwLock::new(Arc::new(LinkTable::default())),
            transport: OnceLock::new(),
            prefer_local,
            rpc_timeout,
            stats: CallStats::default(),
            served: Mutex::new(HashMap::new()),
            keyvalue: OnceLock::new(),
            blobstore: OnceLock::new(),
            messaging: OnceLock::new(),
            http_client: OnceLock::new(),
            policy: OnceLock::new(),
        }
    }

    /// Installs the wRPC transport (once, at host start).
    pub(crate) fn set_transport(&self, transport: trellis_wrpc::Transport) {
        let _ = self.transport.set(transport);
    }

    pub(crate) fn transport(&self) -> Option<&trellis_wrpc::Transport> {
        self.transport.get()
    }

    /// Installs the keyvalue capability (once, at host start).
    pub(crate) fn set_keyvalue(&self, keyvalue: Arc<crate::capability::keyvalue::KeyValueService>) {
        let _ = self.keyvalue.set(keyvalue);
    }

    /// The keyvalue capability, once the host has started.
    pub(crate) fn keyvalue(&self) -> Option<&Arc<crate::capability::keyvalue::KeyValueService>> {
        self.keyvalue.get()
    }

    /// Installs the blobstore capability (once, at host start).
    pub(crate) fn set_blobstore(
        &self,
        blobstore: Arc<crate::capability::blobstore::BlobstoreService>,
    ) {
        let _ = self.blobstore.set(blobstore);
    }

    /// The blobstore capability, once the host has started.
    pub(crate) fn blobstore(&self) -> Option<&Arc<crate::capability::blobstore::BlobstoreService>> {
        self.blobstore.get()
    }

    /// Installs the messaging capability (once, at host start).
    pub(crate) fn set_messaging(
        &self,
        messaging: Arc<crate::capability::messaging::MessagingService>,
    ) {
        let _ = self.messaging.set(messaging);
    }

    /// The messaging capability, once the host has started.
    pub(crate) fn messaging(&self) -> Option<&Arc<crate::capability::messaging::MessagingService>> {
        self.messaging.get()
    }

    /// Installs the outgoing HTTP capability (once, at host start).
    pub(crate) fn set_http_client(
        &self,
        http_client: Arc<crate::capability::http_client::HttpClientService>,
    ) {
        let _ = self.http_client.set(http_client);
    }

    /// The outgoing HTTP capability, once the host has started.
    pub(crate) fn http_client(
        &self,
    ) -> Option<&Arc<crate::capability::http_client::HttpClientService>> {
        self.http_client.get()
    }

    /// The policy service, once a start has consulted it (`None` without
    /// `--policy-topic`): incoming calls check it before running.
    pub(crate) fn policy(&self) -> Option<&Arc<crate::policy::PolicyService>> {
        self.policy.get()
    }

    /// The policy service, created by `init` on first use.
    pub(crate) fn policy_or_init(
        &self,
        init: impl FnOnce() -> Arc<crate::policy::PolicyService>,
    ) -> &Arc<crate::policy::PolicyService> {
        self.policy.get_or_init(init)
    }

    /// The lattice name.
    pub fn lattice(&self) -> &str {
        &self.lattice
    }

    /// Budget of a lattice call when the caller has none tighter.
    pub fn rpc_timeout(&self) -> Duration {
        self.rpc_timeout
    }

    /// Replaces the link table (called when a component spec changes).
    pub(crate) fn set_links(&self, links: &[Link]) {
        let table = Arc::new(LinkTable::new(links));
        if let Ok(mut current) = self.links.write() {
            *current = table;
        }
    }

    /// Where `source`'s call to `interface` under `link_name` goes.
    pub fn resolve(
        &self,
        source: &str,
        interface: &str,
        link_name: &str,
    ) -> Result<Arc<str>, RouteError> {
        let table = self.links.read().map(|t| t.clone()).unwrap_or_default();
        table.resolve(source, interface, link_name)
    }

    /// Whether a link exists (for `set-link-name` validation).
    pub fn has_link(&self, source: &str, interface: &str, name: &str) -> bool {
        self.links
            .read()
            .map(|t| t.has(source, interface, name))
            .unwrap_or(false)
    }

    /// The current generation of `id` if it runs on this host and local
    /// calls are preferred.
    pub(crate) fn local_target(&self, id: &str) -> Option<Arc<RunningComponent>> {
        if !self.prefer_local {
            return None;
        }
        self.current(id)
    }

    /// The current generation of `id` on this host.
    pub(crate) fn current(&self, id: &str) -> Option<Arc<RunningComponent>> {
        self.components
            .read()
            .ok()
            .and_then(|c| c.get(id).map(|s| s.current.clone()))
    }

    pub(crate) fn count_local(&self) {
        self.stats.local.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_lattice(&self) {
        self.stats.lattice.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_served(&self) {
        self.stats.served.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_served_ahead(&self) {
        self.stats.served_ahead.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_reused(&self) {
        self.stats.reused.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls by path so far.
    pub fn counts(&self) -> CallCounts {
        CallCounts {
            local: self.stats.local.load(Ordering::Relaxed),
            lattice: self.stats.lattice.load(Ordering::Relaxed),
            served: self.stats.served.load(Ordering::Relaxed),
            served_ahead: self.stats.served_ahead.load(Ordering::Relaxed),
            reused: self.stats.reused.load(Ordering::Relaxed),
        }
    }

    /// Starts (or restarts, after an update) offering `component`'s exports on
    /// the lattice.
    pub(crate) async fn serve_component(self: &Arc<Self>, component: &RunningComponent) {
        let Some(transport) = self.transport() else {
            return;
        };
        let server = serve::ExportServer::start(self.clone(), transport, component).await;
        if let Ok(mut served) = self.served.lock() {
            // Dropping the previous server (after an update) unsubscribes it;
            // the new one is already subscribed, so no call is refused between.
            served.insert(component.id().to_string(), server);
        }
    }

    /// Stops offering `id`'s exports: NATS stops routing calls here before the
    /// component drains.
    pub(crate) fn unserve_component(&self, id: &str) {
        let server = self.served.lock().ok().and_then(|mut s| s.remove(id));
        drop(server);
    }

    /// Stops every export server (host shutdown).
    pub(crate) fn unserve_all(&self) {
        let servers: Vec<_> = self
            .served
            .lock()
            .map(|mut s| s.drain().map(|(_, v)| v).collect())
            .unwrap_or_default();
        drop(servers);
    }
}
