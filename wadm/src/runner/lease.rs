//! One active wadm: a lease in JetStream KV. Any number of wadm processes may run (they
//! all serve the API); the one holding the lease reconciles.
//!
//! The bucket keeps one key, [`LEASE_KEY`], whose value is the holder's id, and has a
//! `max_age` equal to the lease's time to live: the holder renews it (a revision-checked
//! `update`) every third of the TTL; when the holder dies its last write ages out, the
//! key disappears, and the next candidate's `create` succeeds. A candidate only ever
//! `create`s, so two processes can never both think they hold it: the KV's revision
//! check decides. A holder that cannot renew within the TTL stops acting before anyone
//! else can take over ([`Lease::holds`]).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use tracing::{info, warn};

/// Default lease bucket.
pub const LEASE_BUCKET: &str = "trellis_wadm_lease";
/// The one key of the lease bucket.
pub const LEASE_KEY: &str = "leader";
/// Default time to live: a killed leader is replaced within about this long.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);

/// Why the lease bucket is unusable.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot open or create the wadm lease bucket {bucket}: {detail} (JetStream must be enabled: nats-server -js)"
)]
pub struct LeaseError {
    bucket: String,
    detail: String,
}

/// This process's side of the lease.
pub struct Lease {
    kv: kv::Store,
    id: Bytes,
    ttl: Duration,
    /// Revision of our last successful write, while we believe we hold the lease.
    revision: Option<u64>,
    /// When that write succeeded.
    renewed_at: Option<Instant>,
}

impl Lease {
    /// Opens (creating if needed) the lease bucket for a candidate named `id`.
    pub async fn open(
        js: &jetstream::Context,
        bucket: &str,
        ttl: Duration,
        id: impl Into<String>,
    ) -> Result<Self, LeaseError> {
        let kv = match js.get_key_value(bucket).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: bucket.to_string(),
                    description: "Which wadm process reconciles (Trellis)".to_string(),
                    history: 1,
                    max_age: ttl,
                    storage: jetstream::stream::StorageType::Memory,
                    ..Default::default()
                })
                .await
                .map_err(|e| LeaseError {
                    bucket: bucket.to_string(),
                    detail: e.to_string(),
                })?,
        };
        Ok(Self {
            kv,
            id: Bytes::from(id.into()),
            ttl,
            revision: None,
            renewed_at: None,
        })
    }

    /// How often [`Self::step`] should run.
    #[must_use]
    pub fn renew_interval(&self) -> Duration {
        self.ttl / 3
    }

    /// Takes the lease if it is free, or renews it if held. Returns [`Self::holds`].
    pub async fn step(&mut self) -> bool {
        match self.revision {
            Some(revision) => match self.kv.update(LEASE_KEY, self.id.clone(), revision).await {
                Ok(next) => self.renewed(next),
                Err(e) => self.recover(&e.to_string()).await,
            },
            None => {
                if let Ok(revision) = self.kv.create(LEASE_KEY, self.id.clone()).await {
                    info!(holder = %String::from_utf8_lossy(&self.id), "took the wadm lease; reconciling");
                    self.renewed(revision);
                }
            }
        }
        self.holds()
    }

    /// Whether we hold the lease now: our last renewal is younger than the TTL (minus
    /// a margin, so we stop before anyone else can start).
    #[must_use]
    pub fn holds(&self) -> bool {
        self.revision.is_some()
            && self
                .renewed_at
                .is_some_and(|at| at.elapsed() < self.ttl.saturating_sub(self.ttl / 6))
    }

    /// Gives the lease up (on shutdown), so another wadm takes over at once.
    pub async fn release(&mut self) {
        if self.revision.take().is_some()
            && let Err(e) = self.kv.delete(LEASE_KEY).await
        {
            warn!(error = %e, "cannot release the wadm lease; it expires on its own");
        }
        self.renewed_at = None;
    }

    fn renewed(&mut self, revision: u64) {
        self.revision = Some(revision);
        self.renewed_at = Some(Instant::now());
    }

    /// A renewal failed: if the key still names us (a reply was lost, say), carry on
    /// from its revision; otherwise someone else holds it now.
    async fn recover(&mut self, error: &str) {
        match self.kv.entry(LEASE_KEY).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put && entry.value == self.id => {
                self.renewed(entry.revision);
            }
            _ => {
                warn!(%error, "lost the wadm lease; another wadm reconciles now");
                self.revision = None;
                self.renewed_at = None;
            }
        }
    }
}
