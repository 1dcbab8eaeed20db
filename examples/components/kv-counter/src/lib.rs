//! `kv-counter`: written exactly like a wasmCloud 1.x component, with the
//! `wasmcloud-component` crate, against `wasi:keyvalue@0.2.0-draft`. It opens
//! the bucket `default` (a link's `bucket` config may choose another).
//!
//! - `GET /{key}`: `atomics.increment(key, 1)`, then `store.get(key)`;
//!   answers `{key}: {n}`.
//! - `DELETE /{key}`: `store.delete`; `GET /_exists/{key}`: `store.exists`.
//! - `GET /_keys`: every key (`list-keys`, following the cursor), one a line.
//! - `GET /_batch/set?a=1&b=2`: `batch.set-many`.
//! - `GET /_batch/get?keys=a,b,c`: `batch.get-many`, one `key=value` (or
//!   `key=<none>`) a line.
//! - `GET /_batch/delete?keys=a,b`: `batch.delete-many`.
//!
//! Keyvalue errors answer 500 with the error's message.

use wasmcloud_component::http;
use wasmcloud_component::wasi::keyvalue::{atomics, batch, store};

struct KvCounter;

http::export!(KvCounter);

/// The bucket identifier opened, as wasmCloud's keyvalue counter example.
const BUCKET: &str = "default";

impl http::Server for KvCounter {
    fn handle(
        request: http::IncomingRequest,
    ) -> http::Result<http::Response<impl http::OutgoingBody>> {
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let delete = request.method() == http::Method::DELETE;
        let (status, body) = match route(&path, &query, delete) {
            Ok(body) => (200, body),
            Err(message) => (500, message),
        };
        let mut response = http::Response::new(body);
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
        Ok(response)
    }
}

fn describe(e: store::Error) -> String {
    match e {
        store::Error::NoSuchStore => "keyvalue error: no such store".into(),
        store::Error::AccessDenied => "keyvalue error: access denied".into(),
        store::Error::Other(message) => format!("keyvalue error: {message}"),
    }
}

fn route(path: &str, query: &str, delete: bool) -> Result<String, String> {
    let bucket = store::open(BUCKET).map_err(describe)?;
    let key = path.trim_start_matches('/');
    match key {
        "_keys" => {
            let mut keys = Vec::new();
            let mut cursor = None;
            loop {
                let page = bucket.list_keys(cursor).map_err(describe)?;
                keys.extend(page.keys);
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            keys.sort();
            Ok(keys.join("\n"))
        }
        "_batch/set" => {
            let pairs: Vec<(String, Vec<u8>)> = params(query)
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            let n = pairs.len();
            batch::set_many(&bucket, &pairs).map_err(describe)?;
            Ok(format!("set {n}"))
        }
        "_batch/get" => {
            let keys = list_param(query);
            let values = batch::get_many(&bucket, &keys).map_err(describe)?;
            let lines: Vec<String> = keys
                .iter()
                .zip(values)
                .map(|(k, v)| match v {
                    Some((_, value)) => format!("{k}={}", String::from_utf8_lossy(&value)),
                    None => format!("{k}=<none>"),
                })
                .collect();
            Ok(lines.join("\n"))
        }
        "_batch/delete" => {
            let keys = list_param(query);
            batch::delete_many(&bucket, &keys).map_err(describe)?;
            Ok(format!("deleted {}", keys.len()))
        }
        _ if key.starts_with("_exists/") => {
            let key = key.trim_start_matches("_exists/");
            let exists = bucket.exists(key).map_err(describe)?;
            Ok(format!("{key}: {exists}"))
        }
        _ if delete => {
            bucket.delete(key).map_err(describe)?;
            Ok(format!("{key}: deleted"))
        }
        _ => {
            atomics::increment(&bucket, key, 1).map_err(describe)?;
            let value = bucket.get(key).map_err(describe)?.unwrap_or_default();
            Ok(format!("{key}: {}", String::from_utf8_lossy(&value)))
        }
    }
}

fn params(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

fn list_param(query: &str) -> Vec<String> {
    params(query)
        .filter(|(k, _)| *k == "keys")
        .flat_map(|(_, v)| v.split(','))
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}
