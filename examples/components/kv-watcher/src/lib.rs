//! `kv-watcher`: a component that exports `wasi:keyvalue/watcher@0.2.0-draft`,
//! which a keyvalue provider calls (as `wrpc:keyvalue/watcher@0.2.0-draft`)
//! when an entry of a bucket changes. It records each event in the bucket it
//! is handed, through that `bucket` resource:
//!
//! - `on-set(bucket, key, value)` stores `value` at `seen-set-{key}`;
//! - `on-delete(bucket, key)` stores `deleted` at `seen-delete-{key}`.
//!
//! Keys starting with `seen-` are its own records and are ignored, so a
//! provider that reports every write does not make it loop.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../interfaces/wit/deps/keyvalue",
        world: "wasi:keyvalue/watch-service",
    });
}

use bindings::exports::wasi::keyvalue::watcher::Guest;
use bindings::wasi::keyvalue::store::Bucket;

/// Prefix of the records this component writes.
const RECORD_PREFIX: &str = "seen-";

struct KvWatcher;

impl Guest for KvWatcher {
    fn on_set(bucket: Bucket, key: String, value: Vec<u8>) {
        if key.starts_with(RECORD_PREFIX) {
            return;
        }
        // A failed write has nowhere to go: the export returns nothing.
        let _ = bucket.set(&format!("{RECORD_PREFIX}set-{key}"), &value);
    }

    fn on_delete(bucket: Bucket, key: String) {
        if key.starts_with(RECORD_PREFIX) {
            return;
        }
        let _ = bucket.set(&format!("{RECORD_PREFIX}delete-{key}"), b"deleted");
    }
}

bindings::export!(KvWatcher with_types_in bindings);
