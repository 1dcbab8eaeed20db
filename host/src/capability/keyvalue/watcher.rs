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
use tokio::task::JoinHandle;
use trellis_wrpc::ServeContext;
use wasmtime::component::{ResourceAny, Val};

use super::STORE_INTERFACE;
use crate::dataplane::DataPlane;
use crate::runtime::CallScope;
use crate::runtime::state::TraceContext;

mod wire {
    wit_bindgen_wrpc::generate!({
        inline: "
            package trellis:keyvalue-watcher@0.1.0;

            world watcher {
                export wrpc:keyvalue/watcher@0.2.0-draft;
            }
        ",
        path: "../interfaces/wit/deps/wrpc-keyvalue",
        world: "trellis:keyvalue-watcher/watcher",
        generate_all,
    });
}

use wire::exports::wrpc::keyvalue::watcher;

/// The export a component implements to be told of changes.
pub const WATCHER_INSTANCE: &str = "wasi:keyvalue/watcher@0.2.0-draft";

/// Whether a component with these exports is a keyvalue watcher.
pub fn exports_watcher(exports: &crate::dataplane::exports::ExportTable) -> bool {
    exports.get(WATCHER_INSTANCE, "on-set").is_some()
        || exports.get(WATCHER_INSTANCE, "on-delete").is_some()
}

/// Subscribes `wrpc:keyvalue/watcher@0.2.0-draft` for component `id` on
/// `server` (its `{lattice}.{id}` prefix); the task serves until aborted.
pub(crate) async fn serve_watcher(
    dp: Arc<DataPlane>,
    server: &trellis_wrpc::Server,
    id: Arc<str>,
) -> Option<JoinHandle<()>> {
    let handler = Watcher { dp, id: id.clone() };
    let exports = match wire::serve(server, handler).await {
        Ok(exports) => exports,
        Err(e) => {
            tracing::warn!(component_id = %id, error = format!("{e:#}"), "cannot offer wrpc:keyvalue/watcher on the lattice");
            return None;
        }
    };
    let mut calls = futures::stream::select_all(
        exports
            .into_iter()
            .map(|(_, func, calls)| calls.map(move |call| (func, call))),
    );
    Some(tokio::spawn(async move {
        while let Some((func, call)) = calls.next().await {
            let id = id.clone();
            match call {
                Ok(call) => {
                    tokio::spawn(async move {
                        if let Err(e) = call.await {
                            tracing::warn!(component_id = %id, func, error = format!("{e:#}"), "keyvalue watcher call failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::debug!(component_id = %id, func, error = format!("{e:#}"), "malformed keyvalue watcher call dropped");
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
            span: tracing::Span::none(),
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

impl watcher::Handler<ServeContext> for Watcher {
    async fn on_set(
        &self,
        cx: ServeContext,
        bucket: String,
        key: String,
        value: Bytes,
    ) -> anyhow::Result<()> {
        self.deliver(cx, "on-set", bucket, key, Some(value)).await
    }

    async fn on_delete(&self, cx: ServeContext, bucket: String, key: String) -> anyhow::Result<()> {
        self.deliver(cx, "on-delete", bucket, key, None).await
    }
}
