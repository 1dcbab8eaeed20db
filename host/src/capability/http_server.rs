//! `builtin://http-server`: the `wasi:http` incoming listener inside the host.
//!
//! It is started exactly like wasmCloud's builtin: `provider.start` with
//! `builtin://http-server` (or `wasmcloud+builtin://http-server`), then a link
//! from that provider id to a component (`wasi:http`, interface
//! `incoming-handler`) whose `source_config` names a config holding `address`.
//! Provider config keys (PROTOCOL.md §4.4): `routing_mode` = `address`
//! (default) | `path` | `host`, `default_address` (default `0.0.0.0:8000`),
//! `header` (host mode, default `host`); link source config: `address`,
//! `path`, `host`.
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
/// Listener address when neither the link nor the provider config names one.
pub const DEFAULT_ADDRESS: &str = "0.0.0.0:8000";

/// How a listener picks the component for a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RoutingMode {
    /// One component per listener address.
    #[default]
    Address,
    /// By request path, on the provider's default address.
    Path,
    /// By a header (default `host`), on the provider's default address.
    Host {
        /// Header to read.
        header: String,
    },
}

/// Routes of one listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerRoutes {
    /// Routing mode.
    pub mode: RoutingMode,
    /// Address mode: the target component.
    pub target: Option<String>,
    /// Path mode: path prefix → component.
    pub paths: BTreeMap<String, String>,
    /// Host mode: header value → component.
    pub hosts: BTreeMap<String, String>,
}

impl ListenerRoutes {
    /// The component a request goes to.
    pub fn route(&self, path: &str, headers: &http::HeaderMap) -> Option<&str> {
        match &self.mode {
            RoutingMode::Address => self.target.as_deref(),
            RoutingMode::Path => self
                .paths
                .iter()
                .filter(|(prefix, _)| path_matches(prefix, path))
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(_, t)| t.as_str()),
            RoutingMode::Host { header } => {
                let value = headers.get(header.as_str())?.to_str().ok()?;
                let value = value.split(':').next().unwrap_or(value);
                self.hosts.get(value).map(String::as_str)
            }
        }
    }
}

fn path_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

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
        let mode = match provider_config.get("routing_mode").map(String::as_str) {
            Some("path") => RoutingMode::Path,
            Some("host") => RoutingMode::Host {
                header: provider_config
                    .get("header")
                    .cloned()
                    .unwrap_or_else(|| "host".into())
                    .to_ascii_lowercase(),
            },
            _ => RoutingMode::Address,
        };
        let default_address = provider_config
            .get("default_address")
            .cloned()
            .unwrap_or_else(|| DEFAULT_ADDRESS.into());
        for link in view.links_from(provider_id) {
            if link.wit_namespace != "wasi"
                || link.wit_package != "http"
                || !link.interfaces.iter().any(|i| i == "incoming-handler")
            {
                continue;
            }
            let link_config = view.merged_config(&link.source_config);
            let address = match mode {
                RoutingMode::Address => link_config.get("address").unwrap_or(&default_address),
                _ => &default_address,
            };
            let Ok(addr) = parse_address(address) else {
                tracing::error!(provider_id, target = %link.target, address, "invalid HTTP listen address in link config");
                continue;
            };
            let routes = out.entry(addr).or_insert_with(|| ListenerRoutes {
                mode: mode.clone(),
                ..Default::default()
            });
            match &mode {
                RoutingMode::Address => {
                    if let Some(existing) = &routes.target {
                        if existing != &link.target {
                            tracing::error!(%addr, existing, target = %link.target, "two components linked to one HTTP address; keeping the first");
                        }
                    } else {
                        routes.target = Some(link.target.clone());
                    }
                }
                RoutingMode::Path => {
                    let path = link_config
                        .get("path")
                        .cloned()
                        .unwrap_or_else(|| "/".into());
                    routes.paths.insert(path, link.target.clone());
                }
                RoutingMode::Host { .. } => match link_config.get("host") {
                    Some(h) => {
                        routes.hosts.insert(h.clone(), link.target.clone());
                    }
                    None => {
                        tracing::error!(provider_id, target = %link.target, "host routing needs a `host` key in the link's source config")
                    }
                },
            }
        }
    }
    out
}

fn parse_address(address: &str) -> Result<SocketAddr, std::net::AddrParseError> {
    address.parse().or_else(|_| format!("{address}:80").parse())
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
    fn path_routing_prefers_the_longest_prefix_on_segment_boundaries() {
        let routes = ListenerRoutes {
            mode: RoutingMode::Path,
            paths: BTreeMap::from([
                ("/".to_string(), "root".to_string()),
                ("/api".to_string(), "api".to_string()),
                ("/api/v2".to_string(), "v2".to_string()),
            ]),
            ..Default::default()
        };
        let h = http::HeaderMap::new();
        assert_eq!(routes.route("/api/v2/x", &h), Some("v2"));
        assert_eq!(routes.route("/api", &h), Some("api"));
        assert_eq!(routes.route("/apix", &h), Some("root"));
        assert_eq!(routes.route("/other", &h), Some("root"));
    }

    #[test]
    fn host_routing_ignores_the_port() {
        let routes = ListenerRoutes {
            mode: RoutingMode::Host {
                header: "host".into(),
            },
            hosts: BTreeMap::from([("a.example".to_string(), "a".to_string())]),
            ..Default::default()
        };
        let mut h = http::HeaderMap::new();
        h.insert("host", http::HeaderValue::from_static("a.example:8080"));
        assert_eq!(routes.route("/", &h), Some("a"));
        h.insert("host", http::HeaderValue::from_static("b.example"));
        assert_eq!(routes.route("/", &h), None);
    }

    #[test]
    fn builtin_names() {
        assert!(is_builtin_http_server("builtin://http-server"));
        assert!(is_builtin_http_server("wasmcloud+builtin://http-server"));
        assert!(!is_builtin_http_server(
            "registry.example/wasmcloud/http-server:0.27.0"
        ));
    }
}
