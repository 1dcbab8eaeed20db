//! The lattice's shared state in JetStream KV: `LATTICEDATA_{lattice}`
//! (component specs with their links, stored claims) and `CONFIGDATA_{lattice}`
//! (named config). The host opens or creates both, replays them on start and
//! watches them, re-establishing the watch after NATS comes back.

mod view;

pub use view::{LatticeChange, LatticeView};

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use trellis_interfaces::subject;

/// Delay before re-establishing a KV watch that ended (server restart,
/// disconnect). Short: the watch resumes from the last revision seen.
pub const WATCH_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Why the lattice buckets could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LatticeDataError {
    /// JetStream refused to create or open a bucket.
    #[error(
        "cannot open JetStream bucket `{bucket}`: {reason}. Is JetStream enabled on the NATS server (`nats-server -js`)?"
    )]
    Bucket {
        /// The bucket.
        bucket: String,
        /// What JetStream said.
        reason: String,
    },
}

/// The two lattice buckets.
#[derive(Clone)]
pub struct LatticeData {
    /// `LATTICEDATA_{lattice}`.
    pub lattice: kv::Store,
    /// `CONFIGDATA_{lattice}`.
    pub config: kv::Store,
}

impl LatticeData {
    /// Opens both buckets, creating them (1 replica, default config) if the
    /// lattice is new.
    pub async fn open(js: &jetstream::Context, lattice: &str) -> Result<Self, LatticeDataError> {
        Ok(Self {
            lattice: open_bucket(js, &subject::lattice_data_bucket(lattice)).await?,
            config: open_bucket(js, &subject::config_data_bucket(lattice)).await?,
        })
    }
}

async fn open_bucket(js: &jetstream::Context, bucket: &str) -> Result<kv::Store, LatticeDataError> {
    let err = |reason: String| LatticeDataError::Bucket {
        bucket: bucket.to_string(),
        reason,
    };
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    match js
        .create_key_value(kv::Config {
            bucket: bucket.to_string(),
            history: 1,
            ..Default::default()
        })
        .await
    {
        Ok(store) => Ok(store),
        // Another host created it in between.
        Err(create) => js
            .get_key_value(bucket)
            .await
            .map_err(|_| err(create.to_string())),
    }
}

/// Which bucket a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// `LATTICEDATA_{lattice}`.
    Lattice,
    /// `CONFIGDATA_{lattice}`.
    Config,
}

/// Watches `store` for ever (until `stop` fires), replaying its current
/// content first, and hands every entry to `apply`. When the watch ends
/// (NATS restart) it resumes from the last revision it saw.
pub async fn watch_bucket<F>(
    store: kv::Store,
    bucket: Bucket,
    mut stop: tokio::sync::watch::Receiver<bool>,
    apply: F,
) where
    F: Fn(Bucket, kv::Entry) + Send + Sync,
{
    let mut last_revision: u64 = 0;
    loop {
        let watch = if last_revision == 0 {
            store.watch_with_history(">").await
        } else {
            store.watch_all_from_revision(last_revision + 1).await
        };
        match watch {
            Ok(mut entries) => loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    next = entries.next() => match next {
                        Some(Ok(entry)) => {
                            last_revision = last_revision.max(entry.revision);
                            apply(bucket, entry);
                        }
                        Some(Err(e)) => {
                            tracing::warn!(?bucket, error = %e, "KV watch error; re-establishing");
                            break;
                        }
                        None => {
                            tracing::warn!(?bucket, "KV watch ended; re-establishing");
                            break;
                        }
                    }
                }
            },
            Err(e) => tracing::warn!(?bucket, error = %e, "cannot watch KV bucket; retrying"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(WATCH_RETRY_DELAY) => {}
        }
    }
}
