//! The `wadm_manifests` JetStream KV bucket: [`StoredManifest`] per application under
//! `{lattice}-{name}`, the lattice's name list under `{lattice}`, both written with
//! optimistic concurrency on the KV revision, as wadm 0.21 does.

use std::collections::BTreeSet;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use tracing::debug;

use crate::stored::{StoredManifest, model_key, model_set_key};

/// Default name of the manifest bucket (`--manifest-bucket-name`).
pub const DEFAULT_MANIFEST_BUCKET: &str = "wadm_manifests";

/// Attempts at updating a lattice's name list when another writer changed it
/// concurrently (wadm retries 3 times).
const NAME_LIST_ATTEMPTS: usize = 3;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The bucket could not be opened or created.
    #[error("cannot open or create KV bucket {bucket}: {detail}")]
    Bucket {
        /// Bucket name.
        bucket: String,
        /// What NATS said.
        detail: String,
    },
    /// Reading a key failed.
    #[error("cannot read key {key} of the manifest bucket: {detail}")]
    Read {
        /// Key.
        key: String,
        /// What NATS said.
        detail: String,
    },
    /// A stored value is not what wadm writes.
    #[error("key {key} of the manifest bucket holds unreadable data: {source}")]
    Decode {
        /// Key.
        key: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Writing a key failed (including a concurrent change of the same key).
    #[error(
        "cannot write key {key} of the manifest bucket: {detail}; if another request changed the application at the same time, retry"
    )]
    Write {
        /// Key.
        key: String,
        /// What NATS said.
        detail: String,
    },
}

/// The manifest store of every lattice on one NATS server.
#[derive(Clone)]
pub struct ManifestStore {
    kv: kv::Store,
}

impl ManifestStore {
    /// Opens the bucket `bucket`, creating it (one replica, file storage, history 1) if
    /// it does not exist.
    pub async fn open(js: &jetstream::Context, bucket: &str) -> Result<Self, StoreError> {
        let kv = match js.get_key_value(bucket).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: bucket.to_string(),
                    description: "Storage for wadm manifests".to_string(),
                    history: 1,
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: 1,
                    ..Default::default()
                })
                .await
                .map_err(|e| StoreError::Bucket {
                    bucket: bucket.to_string(),
                    detail: e.to_string(),
                })?,
        };
        Ok(Self { kv })
    }

    /// Every key's current value, then every change: how the reconcile loop learns of
    /// lattices and of application changes made by any wadm process.
    pub async fn watch(&self) -> Result<kv::Watch, StoreError> {
        self.kv
            .watch_with_history(">")
            .await
            .map_err(|e| StoreError::Read {
                key: ">".to_string(),
                detail: e.to_string(),
            })
    }

    /// The application `name` of `lattice` and the KV revision it was read at.
    pub async fn get(
        &self,
        lattice: &str,
        name: &str,
    ) -> Result<Option<(StoredManifest, u64)>, StoreError> {
        let key = model_key(lattice, name);
        let Some(entry) = self.entry(&key).await? else {
            return Ok(None);
        };
        let stored = serde_json::from_slice(&entry.0)
            .map_err(|source| StoreError::Decode { key, source })?;
        Ok(Some((stored, entry.1)))
    }

    /// Writes `stored` (revision 0: the key must not exist yet), then adds its name to
    /// the lattice's list.
    pub async fn set(
        &self,
        lattice: &str,
        stored: &StoredManifest,
        revision: u64,
    ) -> Result<(), StoreError> {
        let name = stored.name().to_string();
        let key = model_key(lattice, &name);
        self.write_at(&key, stored, revision)
            .await?
            .map_err(|detail| StoreError::Write { key, detail })?;
        self.update_names(lattice, &name, true).await
    }

    /// Writes `value` as JSON at `key` if the key is still at `revision`
    /// (0: if it does not exist). The outer error is an encoding failure; the
    /// inner one is the store's refusal (e.g. a concurrent write), which the
    /// caller may retry.
    async fn write_at<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
        revision: u64,
    ) -> Result<Result<(), String>, StoreError> {
        let data = Bytes::from(
            serde_json::to_vec(value).map_err(|source| StoreError::Decode {
                key: key.to_string(),
                source,
            })?,
        );
        let written = if revision == 0 {
            self.kv
                .create(key, data)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        } else {
            self.kv
                .update(key, data, revision)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        };
        Ok(written)
    }

    /// Removes the application from the lattice's list, then purges its key.
    pub async fn delete(&self, lattice: &str, name: &str) -> Result<(), StoreError> {
        self.update_names(lattice, name, false).await?;
        let key = model_key(lattice, name);
        self.kv.purge(&key).await.map_err(|e| StoreError::Write {
            key,
            detail: e.to_string(),
        })
    }

    /// Every application of `lattice`, sorted by name.
    pub async fn list(&self, lattice: &str) -> Result<Vec<StoredManifest>, StoreError> {
        let mut out = Vec::new();
        for name in self.names(lattice).await?.0 {
            if let Some((stored, _)) = self.get(lattice, &name).await? {
                out.push(stored);
            }
        }
        Ok(out)
    }

    /// The lattice's name list and its revision (0 when absent).
    async fn names(&self, lattice: &str) -> Result<(BTreeSet<String>, u64), StoreError> {
        let key = model_set_key(lattice);
        match self.entry(&key).await? {
            None => Ok((BTreeSet::new(), 0)),
            Some((value, revision)) => {
                let names = serde_json::from_slice(&value)
                    .map_err(|source| StoreError::Decode { key, source })?;
                Ok((names, revision))
            }
        }
    }

    /// Adds (`add`) or removes `name` in the lattice's list, retrying on concurrent
    /// changes.
    async fn update_names(&self, lattice: &str, name: &str, add: bool) -> Result<(), StoreError> {
        let key = model_set_key(lattice);
        let mut last_error = String::new();
        for attempt in 1..=NAME_LIST_ATTEMPTS {
            let (mut names, revision) = self.names(lattice).await?;
            let changed = if add {
                names.insert(name.to_string())
            } else {
                names.remove(name)
            };
            if !changed {
                return Ok(());
            }
            match self.write_at(&key, &names, revision).await? {
                Ok(()) => return Ok(()),
                Err(detail) => {
                    debug!(%key, attempt, %detail, "application list changed concurrently; retrying");
                    last_error = detail;
                }
            }
        }
        Err(StoreError::Write {
            key,
            detail: last_error,
        })
    }

    /// The value and revision of `key`, `None` when absent, deleted or purged.
    async fn entry(&self, key: &str) -> Result<Option<(Bytes, u64)>, StoreError> {
        let entry = self.kv.entry(key).await.map_err(|e| StoreError::Read {
            key: key.to_string(),
            detail: e.to_string(),
        })?;
        Ok(entry
            .filter(|e| !matches!(e.operation, kv::Operation::Delete | kv::Operation::Purge))
            .map(|e| (e.value, e.revision)))
    }
}
