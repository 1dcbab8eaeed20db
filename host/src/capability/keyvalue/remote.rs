//! Buckets of a keyvalue provider process anywhere in the lattice, reached
//! over wRPC on the resource-free wire interfaces
//! `wrpc:keyvalue/{store,atomics,batch}@0.2.0-draft` (PROTOCOL.md §3.2).

use std::sync::Arc;

use super::{BackendError, BucketLabel, KeyPage};
use crate::dataplane::DataPlane;

/// A bucket of a remote provider: every operation is one wRPC call naming the
/// bucket by the identifier the component opened.
#[derive(Clone)]
pub(crate) struct RemoteBucket {
    dataplane: Arc<DataPlane>,
    identifier: String,
}

impl RemoteBucket {
    pub fn new(dataplane: Arc<DataPlane>, identifier: String) -> Self {
        Self {
            dataplane,
            identifier,
        }
    }

    fn unsupported(&self, label: &BucketLabel) -> BackendError {
        let _ = (&self.dataplane, &self.identifier);
        BackendError::Backend(format!(
            "`{}` is not a built-in keyvalue provider of this host, and keyvalue provider processes are not reachable yet",
            label.target
        ))
    }

    pub async fn get(
        &self,
        label: &BucketLabel,
        _key: String,
    ) -> Result<Option<Vec<u8>>, BackendError> {
        Err(self.unsupported(label))
    }
    pub async fn set(
        &self,
        label: &BucketLabel,
        _key: String,
        _value: Vec<u8>,
    ) -> Result<(), BackendError> {
        Err(self.unsupported(label))
    }
    pub async fn delete(&self, label: &BucketLabel, _key: String) -> Result<(), BackendError> {
        Err(self.unsupported(label))
    }
    pub async fn exists(&self, label: &BucketLabel, _key: String) -> Result<bool, BackendError> {
        Err(self.unsupported(label))
    }
    pub async fn list_keys(
        &self,
        label: &BucketLabel,
        _cursor: Option<u64>,
    ) -> Result<KeyPage, BackendError> {
        Err(self.unsupported(label))
    }
    pub async fn increment(
        &self,
        label: &BucketLabel,
        _key: String,
        _delta: u64,
    ) -> Result<u64, BackendError> {
        Err(self.unsupported(label))
    }
    pub async fn get_many(
        &self,
        label: &BucketLabel,
        _keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, BackendError> {
        Err(self.unsupported(label))
    }
    pub async fn set_many(
        &self,
        label: &BucketLabel,
        _entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), BackendError> {
        Err(self.unsupported(label))
    }
    pub async fn delete_many(
        &self,
        label: &BucketLabel,
        _keys: Vec<String>,
    ) -> Result<(), BackendError> {
        Err(self.unsupported(label))
    }
}
