//! Buckets of a keyvalue provider process anywhere in the lattice, reached
//! over wRPC on the resource-free wire interfaces
//! `wrpc:keyvalue/{store,atomics,batch}@0.2.0-draft` (PROTOCOL.md §3.2), as
//! wasmCloud's host does: prefix `{lattice}.{target}`, headers `source-id`
//! and `link-name`, the bucket named by the identifier the component opened.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use super::{BackendError, BucketLabel, KeyPage};
use crate::dataplane::DataPlane;

mod wire {
    wit_bindgen_wrpc::generate!({
        path: "../interfaces/wit/deps/wrpc-keyvalue",
        world: "wrpc:keyvalue/imports",
    });
}

use wire::wrpc::keyvalue::{atomics, batch, store};

/// A bucket of a remote provider: every operation is one wRPC call.
#[derive(Clone)]
pub(crate) struct RemoteBucket {
    dataplane: Arc<DataPlane>,
    identifier: String,
    /// The opening invocation's deadline: a bucket lives in one store, so
    /// its calls never outlast the invocation.
    deadline: Instant,
}

/// What went wrong, in the provider's words or the transport's.
fn wire_error(e: store::Error) -> BackendError {
    match e {
        store::Error::NoSuchStore => {
            BackendError::NoSuchStore("the provider has no such store".into())
        }
        store::Error::AccessDenied => BackendError::Backend("the provider denied access".into()),
        store::Error::Other(message) => BackendError::Backend(message),
    }
}

impl RemoteBucket {
    pub fn new(dataplane: Arc<DataPlane>, identifier: String, deadline: Instant) -> Self {
        Self {
            dataplane,
            identifier,
            deadline,
        }
    }

    /// The client and call context for one call to `label.target`.
    fn call(
        &self,
        label: &BucketLabel,
    ) -> Result<(trellis_wrpc::Client, trellis_wrpc::CallContext), BackendError> {
        let Some(transport) = self.dataplane.transport() else {
            return Err(BackendError::Backend(
                "the lattice transport is not connected yet; retry".into(),
            ));
        };
        let headers =
            trellis_wrpc::headers::call_headers(&label.component, label.link_name.as_str());
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let cx = trellis_wrpc::CallContext {
            prefix: format!("{}.{}", self.dataplane.lattice(), label.target),
            headers: Some(headers),
            timeout: Some(remaining.min(self.dataplane.rpc_timeout())),
        };
        Ok((transport.client(), cx))
    }

    pub async fn get(
        &self,
        label: &BucketLabel,
        key: String,
    ) -> Result<Option<Vec<u8>>, BackendError> {
        let (client, cx) = self.call(label)?;
        let value = store::get(&client, cx, &self.identifier, &key)
            .await
            .map_err(|e| transport_error(label, "store.get", e))?
            .map_err(wire_error)?;
        Ok(value.map(|v| v.to_vec()))
    }

    pub async fn set(
        &self,
        label: &BucketLabel,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), BackendError> {
        let (client, cx) = self.call(label)?;
        store::set(&client, cx, &self.identifier, &key, &Bytes::from(value))
            .await
            .map_err(|e| transport_error(label, "store.set", e))?
            .map_err(wire_error)
    }

    pub async fn delete(&self, label: &BucketLabel, key: String) -> Result<(), BackendError> {
        let (client, cx) = self.call(label)?;
        store::delete(&client, cx, &self.identifier, &key)
            .await
            .map_err(|e| transport_error(label, "store.delete", e))?
            .map_err(wire_error)
    }

    pub async fn exists(&self, label: &BucketLabel, key: String) -> Result<bool, BackendError> {
        let (client, cx) = self.call(label)?;
        store::exists(&client, cx, &self.identifier, &key)
            .await
            .map_err(|e| transport_error(label, "store.exists", e))?
            .map_err(wire_error)
    }

    pub async fn list_keys(
        &self,
        label: &BucketLabel,
        cursor: Option<u64>,
    ) -> Result<KeyPage, BackendError> {
        let (client, cx) = self.call(label)?;
        let page = store::list_keys(&client, cx, &self.identifier, cursor)
            .await
            .map_err(|e| transport_error(label, "store.list-keys", e))?
            .map_err(wire_error)?;
        Ok(KeyPage {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    pub async fn increment(
        &self,
        label: &BucketLabel,
        key: String,
        delta: u64,
    ) -> Result<u64, BackendError> {
        let (client, cx) = self.call(label)?;
        atomics::increment(&client, cx, &self.identifier, &key, delta)
            .await
            .map_err(|e| transport_error(label, "atomics.increment", e))?
            .map_err(wire_error)
    }

    pub async fn get_many(
        &self,
        label: &BucketLabel,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, BackendError> {
        let (client, cx) = self.call(label)?;
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = batch::get_many(&client, cx, &self.identifier, &keys)
            .await
            .map_err(|e| transport_error(label, "batch.get-many", e))?
            .map_err(wire_error)?;
        Ok(values
            .into_iter()
            .map(|v| v.map(|(k, v)| (k, v.to_vec())))
            .collect())
    }

    pub async fn set_many(
        &self,
        label: &BucketLabel,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), BackendError> {
        let (client, cx) = self.call(label)?;
        let (keys, values): (Vec<String>, Vec<Bytes>) = entries
            .into_iter()
            .map(|(k, v)| (k, Bytes::from(v)))
            .unzip();
        let pairs: Vec<(&str, &Bytes)> = keys.iter().map(String::as_str).zip(&values).collect();
        batch::set_many(&client, cx, &self.identifier, &pairs)
            .await
            .map_err(|e| transport_error(label, "batch.set-many", e))?
            .map_err(wire_error)
    }

    pub async fn delete_many(
        &self,
        label: &BucketLabel,
        keys: Vec<String>,
    ) -> Result<(), BackendError> {
        let (client, cx) = self.call(label)?;
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        batch::delete_many(&client, cx, &self.identifier, &keys)
            .await
            .map_err(|e| transport_error(label, "batch.delete-many", e))?
            .map_err(wire_error)
    }
}

/// A call that did not get an answer from the provider.
fn transport_error(label: &BucketLabel, op: &str, err: anyhow::Error) -> BackendError {
    let detail = err
        .chain()
        .find_map(trellis_wrpc::find_wrpc_error)
        .map_or_else(|| format!("{err:#}"), ToString::to_string);
    BackendError::Backend(format!(
        "wrpc:keyvalue/{op} on provider `{}` failed: {detail}",
        label.target
    ))
}
