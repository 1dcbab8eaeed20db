//! `wasi:keyvalue/watcher@0.2.0-draft` exported by a component, offered on
//! the lattice in its wire form `wrpc:keyvalue/watcher@0.2.0-draft`
//! (`on-set(bucket: string, key, value)`, `on-delete(bucket: string, key)`,
//! PROTOCOL.md §3.2), which keyvalue providers call when an entry changes.
//!
//! The export takes a `bucket` resource, so the generic export server cannot
//! offer it; here each call opens the named bucket the way the component's
//! own `store.open` would (through its `wasi:keyvalue/store` link: the call's
//! `link-name` when the component has a keyvalue link of that name, else
//! `default`), hands it to the guest as an owned `bucket`, and calls
//! `on-set` / `on-delete` under the component's usual limits.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::task::JoinHandle;
use trellis_wrpc::ServeContext;
use wasmtime::component::{ResourceAny, Val};
use wrpc_transport::Serve as _;

use super::STORE_INTERFACE;
use crate::dataplane::DataPlane;
use crate::runtime::CallScope;
use crate::runtime::state::TraceContext;

/// The wire instance providers call.
const WIRE_INSTANCE: &str = "wrpc:keyvalue/watcher@0.2.0-draft";

/// The export a component implements to be told of changes.
pub const WATCHER_INSTANCE: &str = "wasi:keyvalue/watcher@0.2.0-draft";

/// Whether a component with these exports is a keyvalue watcher.
pub fn exports_watcher(exports: &crate::dataplane::exports::ExportTable) -> bool {
    exports.get(WATCHER_INSTANCE, "on-set").is_some()
        || exports.get(WATCHER_INSTANCE, "on-delete").is_some()
}

/// Subscribes `wrpc:keyvalue/watcher@0.2.0-draft` (`on-set`, `on-delete`)
/// for component `id` on `server` (its `{lattice}.{id}` prefix); the task
/// serves until aborted. A failed delivery is answered with its reason (the
/// provider's call fails with `internal` and the message).
pub(crate) async fn serve_watcher(
    dp: Arc<DataPlane>,
    server: &trellis_wrpc::Server,
    id: Arc<str>,
) -> Option<JoinHandle<()>> {
    let watcher = Watcher { dp, id: id.clone() };
    let mut subscriptions = Vec::new();
    for func in ["on-set", "on-delete"] {
        let no_paths: [Box<[Option<usize>]>; 0] = [];
        match server.serve(WIRE_INSTANCE, func, no_paths).await {
            Ok(calls) => subscriptions.push(Box::pin(calls.map(move |call| (func, call)))),
            Err(e) => {
                tracing::warn!(component_id = %id, func, error = format!("{e:#}"), "cannot offer wrpc:keyvalue/watcher on the lattice");
                return None;
            }
        }
    }
    let mut calls = futures::stream::select_all(subscriptions);
    Some(tokio::spawn(async move {
        while let Some((func, call)) = calls.next().await {
            match call {
                Ok((cx, tx, rx)) => {
                    let watcher = watcher.clone();
                    tokio::spawn(async move { watcher.serve(func, cx, tx, rx).await });
                }
                Err(e) => {
                    tracing::debug!(component_id = %watcher.id, func, error = format!("{e:#}"), "malformed keyvalue watcher call dropped");
                }
            }
        }
    }))
}

/// Serves one component's watcher calls.
#[derive(Clone)]
struct Watcher {
    dp: Arc<DataPlane>,
    id: Arc<str>,
}

impl Watcher {
    /// Decodes one call's parameters, delivers it, and answers: empty
    /// results, or the reason it failed.
    async fn serve(
        &self,
        func: &'static str,
        cx: ServeContext,
        mut tx: trellis_wrpc::ResultWriter,
        rx: trellis_wrpc::ParamReader,
    ) {
        let reporter = tx.reporter();
        let delivered = async {
            let (bucket, key, value) = if func == "on-set" {
                let (bucket, key, value) = decode::<(String, String, Bytes)>(rx).await?;
                (bucket, key, Some(value))
            } else {
                let (bucket, key) = decode::<(String, String)>(rx).await?;
                (bucket, key, None)
            };
            self.deliver(cx, func, bucket, key, value).await
        }
        .await;
        match delivered {
            Ok(()) => {
                if let Err(e) = tx.shutdown().await {
                    tracing::debug!(component_id = %self.id, func, error = %e, "cannot answer a keyvalue watcher call");
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::warn!(component_id = %self.id, func, "keyvalue watcher call failed: {message}");
                reporter.fail(trellis_wrpc::RemoteErrorKind::Internal, message);
            }
        }
    }

    /// Opens `bucket` for the component and calls `func` with it.
    async fn deliver(
        &self,
        cx: ServeContext,
        func: &'static str,
        bucket: String,
        key: String,
        value: Option<Bytes>,
    ) -> anyhow::Result<()> {
        let id = &self.id;
        let Some(component) = self.dp.current(id) else {
            anyhow::bail!("component `{id}` no longer runs on this host");
        };
        let Some(keyvalue) = self.dp.keyvalue().cloned() else {
            anyhow::bail!("keyvalue is not available in this host");
        };
        let link = if self.dp.has_link(id, STORE_INTERFACE, cx.link_name()) {
            cx.link_name()
        } else {
            crate::dataplane::links::default_link_name()
        };
        let opened = keyvalue
            .open(id, link, bucket, cx.deadline)
            .await
            .map_err(|e| anyhow::anyhow!("{func} for component `{id}`: {}", error_text(&e)))?;
        let scope = CallScope {
            source_id: cx.source_id().map(Arc::from),
            link_name: Some(Arc::from(link)),
            deadline: cx.deadline,
            depth: 0,
            trace: TraceContext::from_headers(
                cx.header(trellis_wrpc::headers::TRACEPARENT),
                cx.header(trellis_wrpc::headers::TRACESTATE),
            )
            .map(Arc::new),
            span: Default::default(),
        };
        component
            .call_with(scope, WATCHER_INSTANCE, func, move |store| {
                let bucket = store.data_mut().table_mut().push(opened)?;
                let bucket = ResourceAny::try_from_resource(bucket, &mut *store)?;
                let mut params = vec![Val::Resource(bucket), Val::String(key)];
                if let Some(value) = value {
                    params.push(Val::List(value.iter().map(|b| Val::U8(*b)).collect()));
                }
                Ok(params)
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// The text of a keyvalue error.
fn error_text(e: &super::Error) -> String {
    match e {
        super::Error::NoSuchStore => "no such store".to_string(),
        super::Error::AccessDenied => "access denied".to_string(),
        super::Error::Other(message) => message.clone(),
    }
}

/// The parameters of a call, in the component-model value encoding.
async fn decode<T>(rx: trellis_wrpc::ParamReader) -> anyhow::Result<T>
where
    T: wrpc_transport::Decode<trellis_wrpc::ParamReader>,
    <T::Decoder as tokio_util::codec::Decoder>::Error: std::fmt::Display,
{
    let decoder = <T as wrpc_transport::Decode<trellis_wrpc::ParamReader>>::Decoder::default();
    match tokio_util::codec::FramedRead::new(rx, decoder).next().await {
        Some(Ok(params)) => Ok(params),
        Some(Err(e)) => Err(anyhow::anyhow!("cannot decode the parameters: {e}")),
        None => Err(anyhow::anyhow!("the call carried no parameters")),
    }
}
