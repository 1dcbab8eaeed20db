#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod handler;
mod links;

pub use handler::serve;
pub use links::{LinkId, LinkTable, NotLinked};

use std::future::Future;

use bytes::Bytes;

/// Bindings generated from the vendored `wrpc:keyvalue` WIT.
#[allow(missing_docs, reason = "generated code")]
mod bindings {
    wit_bindgen_wrpc::generate!({
        inline: "
            package trellis:keyvalue-provider;

            world provider {
                export wrpc:keyvalue/store@0.2.0-draft;
                export wrpc:keyvalue/atomics@0.2.0-draft;
                export wrpc:keyvalue/batch@0.2.0-draft;
            }
        ",
        path: ["../../interfaces/wit/deps/wrpc-keyvalue"],
        world: "trellis:keyvalue-provider/provider",
        generate_all,
    });
}

/// One `list-keys` page.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys of this page.
    pub keys: Vec<String>,
    /// Position of the next page (backend-defined), `None` after the last.
    pub cursor: Option<u64>,
}

/// The keyvalue operations on one bucket of a backend. Errors are shown to
/// the calling component as `error::other` with their message.
pub trait Bucket: Send + Sync + 'static {
    /// A failed operation.
    type Error: std::fmt::Display + Send;

    /// The value of `key`, `None` when absent.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, Self::Error>> + Send;
    /// Stores `value` under `key`.
    fn set(&self, key: &str, value: Bytes) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Removes `key` (absent is not an error).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Whether `key` has a value.
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool, Self::Error>> + Send;
    /// One page of keys from `cursor` (`None`: the first page).
    fn list_keys(
        &self,
        cursor: Option<u64>,
    ) -> impl Future<Output = Result<KeyPage, Self::Error>> + Send;
    /// Adds `delta` to the decimal counter under `key` (absent counts as 0)
    /// and returns the new value.
    fn increment(
        &self,
        key: &str,
        delta: u64,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;
    /// The values of `keys`, in order; `None` for an absent key.
    fn get_many(
        &self,
        keys: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Option<(String, Bytes)>>, Self::Error>> + Send;
    /// Stores every entry.
    fn set_many(
        &self,
        entries: Vec<(String, Bytes)>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Removes every key.
    fn delete_many(
        &self,
        keys: Vec<String>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// How a backend finds the bucket of a call.
pub trait Buckets: Send + Sync + 'static {
    /// The backend's bucket.
    type Bucket: Bucket;

    /// The bucket for a call from `source_id` (the `source-id` header) over
    /// the link named `link_name`, on which the component opened `opened`;
    /// the error is the message the component gets back.
    fn bucket(
        &self,
        source_id: Option<&str>,
        link_name: &str,
        opened: &str,
    ) -> impl Future<Output = Result<Self::Bucket, String>> + Send;
}
