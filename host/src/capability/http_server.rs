//! `builtin://http-server`: the `wasi:http` incoming listener inside the host.
//!
//! It is started exactly like wasmCloud's builtin: `provider.start` with
//! `builtin://http-server` (or `wasmcloud+builtin://http-server`), then a link
//! from that provider id to a component (`wasi:http`, interface
//! `incoming-handler`) whose `source_config` names a config holding `address`.
//! Provider config keys (PROTOCOL.md §4.4): `routing_mode` = `address`
//! (default) | `path` | `host`, `default_address` (default `0.0.0.0:8000`),
//! `header` (host mode, default `host`); link source config: `address`,
//! `path`, `host`. The rules live in `trellis_wrpc_http::routing`, shared
//! with the `http-server-provider` process.
//!
//! *Configure* happens here: whenever links, config or providers change, the
//! desired routes are recomputed ([`desired_routes`]) and listeners are bound,
//! re-routed or closed ([`HttpIngress::apply`]), so a bad address surfaces in
//! the log at link time, not at the first request.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock, Weak};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tracing::Instrument as _;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::host::{HostInner, ProviderSlot};
use crate::lattice::LatticeView;
use crate::observability::spans;
use crate::runtime::error_status;
use crate::runtime::state::TraceContext;

/// Names under which the built-in HTTP server can be started.
pub const BUILTIN_NAME: &str = "http-server";
pub use trellis_wrpc_http::routing::{DEFAULT_ADDRESS, ListenerRoutes, RoutingMode};
use trellis_wrpc_http::routing::{ServerSettings, add_route};

/// Whether `image_ref` names the built-in HTTP server.
pub fn is_builtin_http_server(image_ref: &str) -> bool {
    matches!(
        crate::artifact::ArtifactRef::parse(image_ref),
        Ok(crate::artifact::ArtifactRef::Builtin(name)) if name == BUILTIN_NAME
    )
}

/// Computes every listener the host should have from the running built-in
/// HTTP servers, their links and config.
pub(crate) fn desired_routes(
    providers: &[(String, ProviderSlot)],
    view: &LatticeView,
) -> BTreeMap<SocketAddr, ListenerRoutes> {
    let mut out: BTreeMap<SocketAddr, ListenerRoutes> = BTreeMap::new();
    for (provider_id, slot) in providers {
        if !is_builtin_http_server(&slot.image_ref) {
            continue;
        }
        let provider_config = view.merged_config(&slot.config_names);
        let settings = ServerSettings::from_config(|k| provider_config.get(k));
        for link in view.links_from(provider_id) {
            if link.wit_namespace != "wasi"
                || link.wit_package != "http"
                || !link.interfaces.iter().any(|i| i == "incoming-handler")
            {
                continue;
            }
            let link_config = view.merged_config(&link.source_config);
            if let Err(e) = add_route(&mut out, &settings, &link.target, |k| link_config.get(k)) {
                tracing::error!(provider_id, target = %link.target, "{e}");
            }
        }
    }
    out
}

struct Listener {
    routes: Arc<RwLock<ListenerRoutes>>,
    stop: watch::Sender<bool>,
}

/// The host's HTTP listeners.
#[derive(Default)]
pub struct HttpIngress {
    listeners: Mutex<HashMap<SocketAddr, Listener>>,
}

impl HttpIngress {
    /// Binds, re-routes and closes listeners to match `desired`.
    pub(crate) fn apply(
        &self,
        desired: BTreeMap<SocketAddr, ListenerRoutes>,
        host: &Arc<HostInner>,
    ) {
        let Ok(mut listeners) = self.listeners.lock() else {
            return;
        };
        listeners.retain(|addr, l| {
            let keep = desired.contains_key(addr);
            if !keep {
                tracing::info!(%addr, "closing HTTP listener");
                let _ = l.stop.send(true);
            }
            keep
        });
        for (addr, routes) in desired {
            if let Some(existing) = listeners.get(&addr) {
                if let Ok(mut r) = existing.routes.write() {
                    *r = routes;
                }
                continue;
            }
            match bind(addr) {
                Ok(socket) => {
                    let routes = Arc::new(RwLock::new(routes));
                    let (stop, stop_rx) = watch::channel(false);
                    tokio::spawn(accept_loop(
                        socket,
                        routes.clone(),
                        Arc::downgrade(host),
                        stop_rx,
                    ));
                    tracing::info!(%addr, "HTTP listener started");
                    listeners.insert(addr, Listener { routes, stop });
                }
                Err(e) => tracing::error!(%addr, error = %e, "cannot bind HTTP listener"),
            }
        }
    }

    /// Closes every listener.
    pub fn close_all(&self) {
        if let Ok(mut listeners) = self.listeners.lock() {
            for (_, l) in listeners.drain() {
                let _ = l.stop.send(true);
            }
        }
    }

    /// Addresses currently listened on.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.listeners
            .lock()
            .map(|l| l.keys().copied().collect())
            .unwrap_or_default()
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = std::net::TcpListener::bind(addr)?;
    socket.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(socket)
}

async fn accept_loop(
    socket: tokio::net::TcpListener,
    routes: Arc<RwLock<ListenerRoutes>>,
    host: Weak<HostInner>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, _peer) = tokio::select! {
            _ = stop.changed() => return,
            accepted = socket.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    continue;
                }
            },
        };
        // wasi-http writes headers, body and trailers separately: without
        // TCP_NODELAY, Nagle plus delayed ACK adds ~40 ms to every response.
        let _ = stream.set_nodelay(true);
        let routes = routes.clone();
        let host = host.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let routes = routes.clone();
                let host = host.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, &routes, &host).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

/// Handles one request under its `http.server.request` span (a child of the
/// request's `traceparent`, if any, else a new trace).
async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    routes: &RwLock<ListenerRoutes>,
    host: &Weak<HostInner>,
) -> hyper::Response<HyperOutgoingBody> {
    let target = routes
        .read()
        .ok()
        .and_then(|r| r.route(req.uri().path(), req.headers()).map(str::to_string));
    if !crate::observability::traces_enabled() {
        return route(req, target, host, &tracing::Span::none()).await;
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let trace = TraceContext::from_headers(header("traceparent"), header("tracestate"));
    let span = spans::http_ingress(req.method(), req.uri().path(), trace.as_ref());
    let resp = route(req, target.clone(), host, &span)
        .instrument(span.clone())
        .await;
    spans::http_response(&span, target.as_deref(), resp.status().as_u16());
    resp
}

async fn route(
    req: hyper::Request<hyper::body::Incoming>,
    target: Option<String>,
    host: &Weak<HostInner>,
    span: &tracing::Span,
) -> hyper::Response<HyperOutgoingBody> {
    let Some(target) = target else {
        return plain(
            http::StatusCode::NOT_FOUND,
            "no component is linked to this route\n".into(),
        );
    };
    let Some(component) = host.upgrade().and_then(|h| h.component(&target)) else {
        return plain(
            http::StatusCode::SERVICE_UNAVAILABLE,
            format!("component `{target}` is not running on this host\n"),
        );
    };
    match component.handle_http_under(req, span).await {
        Ok(resp) => resp,
        Err(e) => plain(error_status(&e), format!("{e}\n")),
    }
}

fn plain(status: http::StatusCode, body: String) -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names() {
        assert!(is_builtin_http_server("builtin://http-server"));
        assert!(is_builtin_http_server("wasmcloud+builtin://http-server"));
        assert!(!is_builtin_http_server(
            "registry.example/wasmcloud/http-server:0.27.0"
        ));
    }
}
