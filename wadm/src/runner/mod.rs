//! The reconcile loop wired to a real lattice: the I/O around the pure reconciler.
//!
//! * `lease.rs`: one active wadm per NATS server (a JetStream KV lease); the others
//!   serve the API and wait.
//! * `worker.rs`: per lattice, the observer (events, liveness beats, `host.get`,
//!   `link.get`, `config.get`), a pass every tick, commands sent as control requests,
//!   status published on `wadm.status.{lattice}.{app}`.
//! * `apps.rs`: stored manifests → the reconciler's applications, with tombstones for
//!   deleted ones until what they started is gone.
//!
//! Lattices are found in the manifest bucket: every lattice with an application
//! stored gets a worker while this process holds the lease.

mod apps;
mod exec;
mod lease;
mod worker;

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use tracing::{info, warn};

pub use apps::{AppSet, deployed_app};
pub use lease::{DEFAULT_LEASE_TTL, LEASE_BUCKET, LEASE_KEY, Lease, LeaseError};
pub use worker::WorkerConfig;

use crate::server::{ManifestStore, Notifier, StoreError};
use worker::{Input, WorkerHandle};

/// Settings of the reconcile loop.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Per-lattice worker settings.
    pub worker: WorkerConfig,
    /// Lease bucket name.
    pub lease_bucket: String,
    /// Lease time to live: how fast a standby takes over from a dead leader.
    pub lease_ttl: Duration,
    /// This process's name in the lease (for logs and `nats kv get`).
    pub id: String,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            worker: WorkerConfig::default(),
            lease_bucket: LEASE_BUCKET.to_string(),
            lease_ttl: DEFAULT_LEASE_TTL,
            id: format!("wadm-{}", std::process::id()),
        }
    }
}

/// Why the reconcile loop could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The lease bucket is unusable.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The manifest bucket cannot be watched.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The reconcile loop of one wadm process.
pub struct Runner {
    nats: async_nats::Client,
    store: ManifestStore,
    notifier: Notifier,
    config: RunnerConfig,
    lease: Lease,
}

impl Runner {
    /// Opens the lease bucket.
    pub async fn new(
        nats: async_nats::Client,
        store: ManifestStore,
        notifier: Notifier,
        config: RunnerConfig,
    ) -> Result<Self, RunnerError> {
        let js = async_nats::jetstream::new(nats.clone());
        let lease = Lease::open(&js, &config.lease_bucket, config.lease_ttl, &config.id).await?;
        Ok(Self {
            nats,
            store,
            notifier,
            config,
            lease,
        })
    }

    /// Runs until `shutdown` resolves: competes for the lease, and while holding it
    /// runs one worker per lattice found in the manifest bucket. Releases the lease on
    /// the way out so a standby takes over at once.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), RunnerError> {
        let mut changes = self.store.watch().await?;
        let mut lattices: BTreeMap<String, ()> = BTreeMap::new();
        let mut workers: BTreeMap<String, WorkerHandle> = BTreeMap::new();
        let mut renew = tokio::time::interval(self.lease.renew_interval());
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = renew.tick() => {
                    let leader = self.lease.step().await;
                    if leader {
                        for lattice in lattices.keys() {
                            if !workers.contains_key(lattice) {
                                workers.insert(lattice.clone(), self.spawn(lattice));
                            }
                        }
                    } else if !workers.is_empty() {
                        info!("not the wadm leader (any more); stopping the reconcile loops");
                        workers.clear();
                    }
                }
                change = changes.next() => {
                    let Some(change) = change else {
                        warn!("the manifest bucket watch ended; re-opening it");
                        changes = self.store.watch().await?;
                        continue;
                    };
                    let Ok(entry) = change else { continue };
                    if let Some(lattice) = lattice_of(&entry)
                        && lattices.insert(lattice.clone(), ()).is_none()
                        && self.lease.holds()
                    {
                        workers.insert(lattice.clone(), self.spawn(&lattice));
                    }
                    for worker in workers.values() {
                        // A full queue already holds a pass; dropping this is fine.
                        let _ = worker.tx.try_send(Input::AppsChanged);
                    }
                }
            }
        }
        workers.clear();
        self.lease.release().await;
        Ok(())
    }

    fn spawn(&self, lattice: &str) -> WorkerHandle {
        worker::spawn(
            lattice.to_string(),
            self.nats.clone(),
            self.store.clone(),
            self.notifier.clone(),
            self.config.worker.clone(),
        )
    }
}

/// The lattice a manifest-bucket entry names: the key of a lattice's name list
/// (a JSON array of application names; application keys hold objects).
fn lattice_of(entry: &kv::Entry) -> Option<String> {
    if entry.operation != kv::Operation::Put {
        return None;
    }
    serde_json::from_slice::<Vec<String>>(&entry.value)
        .ok()
        .map(|_| entry.key.clone())
}
