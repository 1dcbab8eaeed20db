//! The host: joins a lattice, owns the running components and built-in
//! providers, and ties together the control server, the KV watchers, the
//! heartbeat and the HTTP ingress.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use trellis_interfaces::event::{HostStarted, HostStopped, LatticeEvent};
use trellis_interfaces::inventory::{ComponentDescription, HostInventory, ProviderDescription};

use crate::artifact::ArtifactFetcher;
use crate::capability::http_server::HttpIngress;
use crate::config::HostConfig;
use crate::events::EventPublisher;
use crate::lattice::{Bucket, LatticeChange, LatticeData, LatticeView, watch_bucket};
use crate::runtime::{RunningComponent, Runtime, RuntimeError, SharedConfig};

/// How long a stopping host tries to deliver `host_stopped` before exiting
/// anyway (NATS may be gone).
pub const STOP_FAREWELL_TIMEOUT: Duration = Duration::from_secs(5);

/// Version reported in inventories and heartbeats (semver, as wadm requires).
pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// `--host-seed` is not a server seed.
    #[error("invalid host seed: {0} (expected an nkey server seed starting with `SN`)")]
    Seed(String),
    /// NATS is unreachable.
    #[error(
        "cannot connect to NATS at {url}: {reason}. Start one with `nats-server -js` or point `--nats-url` at yours"
    )]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The lattice buckets could not be opened.
    #[error(transparent)]
    LatticeData(#[from] crate::lattice::LatticeDataError),
    /// The runtime could not be set up.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An `allowed_issuers` entry is not an account public key.
    #[error("invalid allowed issuer: {0}")]
    AllowedIssuer(#[from] crate::admission::IssuerKeyError),
    /// The wRPC transport could not subscribe its inbox.
    #[error("cannot start the lattice call transport: {0}")]
    Transport(String),
    /// A control subscription failed.
    #[error("cannot subscribe to `{subject}`: {reason}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
}

/// A component running on this host: its current generation and the config it
/// was started with.
pub(crate) struct ComponentSlot {
    pub current: Arc<RunningComponent>,
    pub config_names: Vec<String>,
    pub shared_config: SharedConfig,
}

/// A built-in provider running in this host.
#[derive(Clone)]
pub(crate) struct ProviderSlot {
    pub image_ref: String,
    pub annotations: BTreeMap<String, String>,
    pub config_names: Vec<String>,
    /// Name from the provider's claims (archives only).
    pub name: Option<String>,
    /// Revision from the provider's claims, 0 without.
    pub revision: i32,
}

/// Shared state of a running host.
pub(crate) struct HostInner {
    pub id: String,
    pub friendly_name: String,
    pub config: HostConfig,
    pub labels: RwLock<BTreeMap<String, String>>,
    pub started: Instant,
    pub nats: async_nats::Client,
    pub data: LatticeData,
    pub view: RwLock<LatticeView>,
    pub events: EventPublisher,
    pub runtime: Arc<Runtime>,
    pub fetcher: ArtifactFetcher,
    pub components: Arc<RwLock<HashMap<String, ComponentSlot>>>,
    pub dataplane: Arc<crate::dataplane::DataPlane>,
    pub providers: RwLock<HashMap<String, ProviderSlot>>,
    /// External provider processes (fetch, supervise, restart, stop).
    pub provider_sup: crate::provider::ProviderSupervisor,
    /// Serializes lifecycle operations per component id.
    pub component_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub inventory_changed: Notify,
    /// Fires when the NATS connection is (re-)established.
    pub reconnected: Arc<Notify>,
    pub stop_tx: watch::Sender<bool>,
    /// Ends the control-interface loops (before `host_stopped`).
    pub ctl_stop: watch::Sender<bool>,
    /// The control-interface loops, one per subscription.
    pub ctl_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub http: HttpIngress,
}

/// A running host. Dropping it does not stop it: call [`Host::stop`].
pub struct Host {
    inner: Arc<HostInner>,
    stopped: watch::Receiver<bool>,
}

impl Host {
    /// Joins the lattice and starts serving. Returns once the host answers the
    /// control interface and has published `host_started`.
    pub async fn start(config: HostConfig) -> Result<Self, HostError> {
        let key = match &config.host_seed {
            Some(seed) => {
                nkeys::KeyPair::from_seed(seed).map_err(|e| HostError::Seed(e.to_string()))?
            }
            None => nkeys::KeyPair::new_server(),
        };
        if key.key_pair_type() != nkeys::KeyPairType::Server {
            return Err(HostError::Seed("not a server key".into()));
        }
        for issuer in &config.allowed_issuers {
            crate::admission::check_issuer_key(issuer)?;
        }
        if !config.allowed_issuers.is_empty() && !config.require_signed {
            tracing::warn!(
                "allowed issuers are set but signatures are not required: unsigned components still start (add --require-signed to refuse them)"
            );
        }
        let id = key.public_key();
        let friendly_name = crate::names::friendly_name(id.as_bytes());
        let reconnected = Arc::new(Notify::new());
        let nats = connect(&config.nats_url, reconnected.clone()).await?;
        let js = match &config.js_domain {
            Some(domain) => async_nats::jetstream::with_domain(nats.clone(), domain),
            None => async_nats::jetstream::new(nats.clone()),
        };
        let data = LatticeData::open(&js, &config.lattice).await?;
        let runtime = Arc::new(Runtime::new(&config)?);
        let fetcher = ArtifactFetcher::new(
            config.allow_file_load,
            config.allow_latest,
            config.allowed_insecure.clone(),
            config.cache_dir.join("oci"),
        );
        let mut labels = builtin_labels();
        labels.extend(config.labels.clone());
        let (stop_tx, stopped) = watch::channel(false);
        let components = Arc::new(RwLock::new(HashMap::new()));
        let dataplane = Arc::new(crate::dataplane::DataPlane::new(
            config.lattice.clone(),
            components.clone(),
            config.prefer_local,
            config.rpc_timeout,
        ));
        let transport = trellis_wrpc::Transport::new(
            nats.clone(),
            trellis_wrpc::TransportOptions {
                default_timeout: config.rpc_timeout,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| HostError::Transport(e.to_string()))?;
        // Outgoing HTTP through an http-client provider: a request whose body
        // is already complete goes out whole (2 messages, `trellis-nested`).
        transport.declare_async_params(
            trellis_wrpc_http::OUTGOING_HANDLER,
            trellis_wrpc_http::HANDLE,
            trellis_wrpc_http::REQUEST_PARAM_PATHS,
        );
        dataplane.set_transport(transport);
        let events = EventPublisher::new(nats.clone(), config.lattice.clone(), id.clone());
        let inner = Arc::new(HostInner {
            id,
            friendly_name,
            labels: RwLock::new(labels),
            started: Instant::now(),
            nats,
            data,
            view: RwLock::new(LatticeView::default()),
            events,
            runtime,
            fetcher,
            components,
            dataplane,
            providers: RwLock::new(HashMap::new()),
            provider_sup: crate::provider::ProviderSupervisor::new(config.providers.clone()),
            component_locks: Mutex::new(HashMap::new()),
            inventory_changed: Notify::new(),
            reconnected,
            stop_tx,
            ctl_stop: watch::channel(false).0,
            ctl_tasks: Mutex::new(Vec::new()),
            http: HttpIngress::default(),
            config,
        });
        inner
            .dataplane
            .set_keyvalue(Arc::new(crate::capability::keyvalue::KeyValueService::new(
                Arc::downgrade(&inner),
                inner.nats.clone(),
            )));
        inner.dataplane.set_blobstore(Arc::new(
            crate::capability::blobstore::BlobstoreService::new(Arc::downgrade(&inner)),
        ));
        inner.dataplane.set_messaging(Arc::new(
            crate::capability::messaging::MessagingService::new(
                Arc::downgrade(&inner),
                inner.nats.clone(),
            ),
        ));
        inner.dataplane.set_http_client(Arc::new(
            crate::capability::http_client::HttpClientService::new(Arc::downgrade(&inner)),
        ));
        inner.replay_lattice_data().await;
        inner.refresh_links();
        for (store, bucket) in [
            (inner.data.lattice.clone(), Bucket::Lattice),
            (inner.data.config.clone(), Bucket::Config),
        ] {
            let host = inner.clone();
            let stop = inner.stop_tx.subscribe();
            tokio::spawn(async move {
                let h = host.clone();
                watch_bucket(store, bucket, stop, move |b, e| h.apply_entry(b, &e)).await;
            });
        }
        crate::ctl::serve(inner.clone()).await?;
        crate::heartbeat::spawn(inner.clone());
        inner
            .events
            .publish(LatticeEvent::HostStarted(HostStarted {
                friendly_name: inner.friendly_name.clone(),
                labels: inner.labels_snapshot(),
                uptime_seconds: Some(0),
                version: Some(HOST_VERSION.to_string()),
            }))
            .await;
        tracing::info!(host_id = %inner.id, friendly_name = %inner.friendly_name, lattice = %inner.config.lattice, "host started");
        Ok(Self { inner, stopped })
    }

    /// The host id (nkey server public key).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Resolves when the host was asked to stop (`host.stop`) or [`Host::stop`] ran.
    pub async fn stopped(&mut self) {
        while !*self.stopped.borrow() {
            if self.stopped.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops the host: drains components, publishes `host_stopped`, flushes.
    pub async fn stop(&self) {
        self.inner.shutdown(None).await;
    }
}

async fn connect(url: &str, reconnected: Arc<Notify>) -> Result<async_nats::Client, HostError> {
    let inner_url = url.to_string();
    async_nats::ConnectOptions::new()
        .name("wasmbus")
        .reconnect_delay_callback(trellis_interfaces::reconnect::reconnect_delay)
        .event_callback(move |event| {
            let url = inner_url.clone();
            let reconnected = reconnected.clone();
            async move {
                match event {
                    async_nats::Event::Disconnected => {
                        tracing::warn!(%url, "disconnected from NATS; reconnecting")
                    }
                    async_nats::Event::Connected => {
                        tracing::info!(%url, "connected to NATS");
                        // Announce ourselves again at once: a scheduler that
                        // lost us during the outage should not wait for the
                        // next periodic heartbeat.
                        reconnected.notify_one();
                    }
                    other => tracing::debug!(event = %other, "NATS event"),
                }
            }
        })
        .connect(url)
        .await
        .map_err(|e| HostError::Connect {
            url: url.to_string(),
            reason: e.to_string(),
        })
}

/// The `wascap` metadata of a running component's verified claims.
fn claims_metadata(c: &RunningComponent) -> Option<&trellis_interfaces::claims::Component> {
    c.claims().and_then(|claims| claims.metadata.as_ref())
}

fn builtin_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "hostcore.arch".to_string(),
            std::env::consts::ARCH.to_string(),
        ),
        ("hostcore.os".to_string(), std::env::consts::OS.to_string()),
        (
            "hostcore.osfamily".to_string(),
            std::env::consts::FAMILY.to_string(),
        ),
    ])
}

impl HostInner {
    pub fn labels_snapshot(&self) -> BTreeMap<String, String> {
        self.labels.read().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn component(&self, id: &str) -> Option<Arc<RunningComponent>> {
        self.components
            .read()
            .ok()
            .and_then(|c| c.get(id).map(|s| s.current.clone()))
    }

    pub fn component_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.component_locks.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        locks.entry(id.to_string()).or_default().clone()
    }

    /// Reads both buckets once so that links and config are known before the
    /// host answers its first request.
    async fn replay_lattice_data(self: &Arc<Self>) {
        use futures::StreamExt;
        for (store, bucket) in [
            (&self.data.lattice, Bucket::Lattice),
            (&self.data.config, Bucket::Config),
        ] {
            let Ok(mut keys) = store.keys().await else {
                continue;
            };
            while let Some(Ok(key)) = keys.next().await {
                if let Ok(Some(entry)) = store.entry(key).await {
                    self.apply_entry(bucket, &entry);
                }
            }
        }
    }

    /// Applies one KV entry and reacts: HTTP routes follow links and config;
    /// running components see new config on their next invocation.
    pub fn apply_entry(self: &Arc<Self>, bucket: Bucket, entry: &async_nats::jetstream::kv::Entry) {
        let change = match self.view.write() {
            Ok(mut view) => view.apply(bucket, entry),
            Err(_) => return,
        };
        match change {
            LatticeChange::Config(name) => {
                self.refresh_component_config(Some(&name));
                self.reconcile_http();
                self.provider_sup.lattice_changed();
            }
            LatticeChange::Spec(_) => {
                self.refresh_links();
                self.refresh_component_config(None);
                self.reconcile_http();
                self.provider_sup.lattice_changed();
            }
            LatticeChange::Other => {}
        }
    }

    /// Rebuilds the data plane's link table from the lattice view.
    pub fn refresh_links(&self) {
        if let Ok(view) = self.view.read() {
            self.dataplane.set_links(&view.links());
        }
    }

    /// Recomputes the merged config of components that use `name` (all if None).
    pub fn refresh_component_config(&self, name: Option<&str>) {
        let (Ok(view), Ok(components)) = (self.view.read(), self.components.read()) else {
            return;
        };
        for (id, slot) in components.iter() {
            let link_names = view.link_config_names(id);
            if name.is_some_and(|n| {
                !slot.config_names.iter().any(|c| c == n) && !link_names.iter().any(|c| c == n)
            }) {
                continue;
            }
            let merged = Arc::new(view.component_config(id, &slot.config_names));
            if let Ok(mut shared) = slot.shared_config.write() {
                *shared = merged;
            }
        }
    }

    /// Brings the HTTP listeners in line with links, config and providers.
    pub fn reconcile_http(self: &Arc<Self>) {
        let providers: Vec<(String, ProviderSlot)> = self
            .providers
            .read()
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let routes = match self.view.read() {
            Ok(view) => crate::capability::http_server::desired_routes(&providers, &view),
            Err(_) => return,
        };
        self.http.apply(routes, self);
        // Messaging subscriptions follow the same links, config and providers.
        if let Some(messaging) = self.dataplane.messaging() {
            messaging.reconcile(self);
        }
    }

    pub fn inventory(&self) -> HostInventory {
        let components = self
            .components
            .read()
            .map(|c| {
                let mut list: Vec<ComponentDescription> = c
                    .values()
                    .map(|s| ComponentDescription {
                        id: s.current.id().to_string(),
                        image_ref: s.current.image_ref().to_string(),
                        name: claims_metadata(&s.current).and_then(|m| m.name.clone()),
                        annotations: Some(s.current.annotations().clone()),
                        revision: claims_metadata(&s.current).and_then(|m| m.rev).unwrap_or(0),
                        max_instances: s.current.max_instances(),
                        limits: None,
                    })
                    .collect();
                list.sort_by(|a, b| a.id.cmp(&b.id));
                list
            })
            .unwrap_or_default();
        let providers = self
            .providers
            .read()
            .map(|p| {
                let mut list: Vec<ProviderDescription> = p
                    .iter()
                    .map(|(id, s)| ProviderDescription {
                        id: id.clone(),
                        image_ref: Some(s.image_ref.clone()),
                        name: s.name.clone(),
                        revision: s.revision,
                        annotations: Some(s.annotations.clone()),
                    })
                    .collect();
                list.sort_by(|a, b| a.id.cmp(&b.id));
                list
            })
            .unwrap_or_default();
        let uptime = self.uptime();
        HostInventory {
            components,
            providers,
            host_id: self.id.clone(),
            friendly_name: self.friendly_name.clone(),
            labels: self.labels_snapshot(),
            version: HOST_VERSION.to_string(),
            uptime_human: human_duration(uptime),
            uptime_seconds: uptime.as_secs(),
        }
    }

    /// Drains everything, publishes `host_stopped`, stops background tasks.
    /// `drain_timeout` overrides the configured drain timeout (from
    /// `host.stop`'s `timeout`).
    pub async fn shutdown(&self, drain_timeout: Option<Duration>) {
        if *self.stop_tx.borrow() {
            return;
        }
        tracing::info!(host_id = %self.id, "stopping host");
        self.http.close_all();
        // Stop taking lattice calls before draining, so NATS routes new calls
        // to the component's other hosts instead of to a draining one.
        self.dataplane.unserve_all();
        let running: Vec<Arc<RunningComponent>> = self
            .components
            .write()
            .map(|mut c| c.drain().map(|(_, s)| s.current).collect())
            .unwrap_or_default();
        let timeout = drain_timeout.unwrap_or(self.config.drain_timeout);
        futures::future::join_all(running.iter().map(|c| c.drain(timeout))).await;
        self.provider_sup.stop_all().await;
        // Stop answering control requests first: once `host_stopped` is out,
        // no ping or inventory request may still reach this host (NATS
        // handles the unsubscribes before the event: one connection).
        let _ = self.ctl_stop.send(true);
        let loops = self
            .ctl_tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        let _ = tokio::time::timeout(STOP_FAREWELL_TIMEOUT, futures::future::join_all(loops)).await;
        let farewell = async {
            self.events
                .publish(LatticeEvent::HostStopped(HostStopped {
                    labels: self.labels_snapshot(),
                }))
                .await;
            self.nats.flush().await
        };
        // With NATS gone the publish and flush would wait for a reconnect
        // that may never come; a stopping host must exit regardless.
        match tokio::time::timeout(STOP_FAREWELL_TIMEOUT, farewell).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot flush NATS on stop"),
            Err(_) => tracing::warn!(
                timeout_ms = STOP_FAREWELL_TIMEOUT.as_millis() as u64,
                "NATS unreachable while stopping; host_stopped not delivered"
            ),
        }
        let _ = self.stop_tx.send(true);
    }
}

/// `1h 2m 3s`, as wasmCloud shows uptime.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    let days = h / 24;
    match (days, h % 24, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m {s}s"),
        (0, h, m) => format!("{h}h {m}m {s}s"),
        (d, h, m) => format!("{d}d {h}h {m}m {s}s"),
    }
}
