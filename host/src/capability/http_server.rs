//! `builtin://http-server`: the `wasi:http` incoming listener inside the host.
//!
//! It is started exactly like wasmCloud's builtin: `provider.start` with
//! `builtin://http-server` (or `wasmcloud+builtin://http-server`), then a link
//! from that provider id to a component (`wasi:http`, interface
//! `incoming-handler`) whose `source_config` names a config holding `address`.
//! Provider config keys (PROTOCOL.md §4.4): `routing_mode` = `address`
//! (default) | `path` | `host`, `default_address` (default `0.0.0.0:8000`),
//! `header` (host mode, default `host`), `max_request_body_bytes` (413 past
//! it, `trellis_wrpc_http::limit`); link source config: `address`,
//! `path`, `host`. The rules live in `trellis_wrpc_http::routing`, shared
//! with the `http-server-provider` process.
//!
//! *Configure* happens here: whenever links, config or providers change, the
//! desired routes are recomputed ([`desired_routes`]) and listeners are bound,
//! re-routed or closed ([`HttpIngress::apply`]), so a bad address surfaces in
//! the log at link time, not at the first request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use http_body_util::BodyExt;
use trellis_wrpc_http::listeners::{HttpListeners, RequestHandler};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::host::{HostInner, ProviderSlot};
use crate::lattice::LatticeView;
use crate::observability::spans::{self, InvocationSpan};
use crate::runtime::{RunningComponent, error_status};

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

/// The host's HTTP listeners.
#[derive(Default)]
pub struct HttpIngress {
    listeners: HttpListeners,
}

impl HttpIngress {
    /// Binds, re-routes and closes listeners to match `desired`.
    pub(crate) fn apply(
        &self,
        desired: BTreeMap<SocketAddr, ListenerRoutes>,
        host: &Arc<HostInner>,
    ) {
        let handler = Ingress {
            host: Arc::downgrade(host),
        };
        for e in self.listeners.apply(desired, &handler) {
            tracing::error!(addr = %e.addr, error = %e.source, "cannot bind HTTP listener");
        }
    }

    /// Closes every listener.
    pub fn close_all(&self) {
        self.listeners.close_all();
    }

    /// Addresses currently listened on.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.listeners.addresses()
    }
}

/// Requests of the host's listeners go to the component on this host.
#[derive(Clone)]
struct Ingress {
    host: Weak<HostInner>,
}

impl RequestHandler for Ingress {
    type Body = HyperOutgoingBody;

    async fn handle(
        &self,
        target: Option<String>,
        req: hyper::Request<trellis_wrpc_http::limit::RequestBody>,
    ) -> hyper::Response<HyperOutgoingBody> {
        handle(req, target, &self.host).await
    }

    fn plain(&self, status: http::StatusCode, text: String) -> hyper::Response<HyperOutgoingBody> {
        plain(status, text)
    }
}

/// Handles one request under its `http.server.request` span (a child of the
/// request's `traceparent`, if any, else a new trace), which is also the
/// invocation span of the component it is routed to.
async fn handle(
    req: hyper::Request<trellis_wrpc_http::limit::RequestBody>,
    target: Option<String>,
    host: &Weak<HostInner>,
) -> hyper::Response<HyperOutgoingBody> {
    let component = target
        .as_deref()
        .and_then(|t| host.upgrade().and_then(|h| h.component(t)));
    if !crate::observability::traces_enabled() {
        return route(req, target.as_deref(), component, InvocationSpan::None).await;
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let component_id = match &component {
        Some(c) => Some(c.shared_id().clone()),
        None => target.as_deref().map(Arc::from),
    };
    let span = spans::http_ingress(
        req.method(),
        req.uri().path(),
        component_id,
        header("traceparent"),
        header("tracestate"),
    );
    let resp = route(req, target.as_deref(), component, span.clone()).await;
    spans::http_response(&span, resp.status().as_u16());
    resp
}

/// Runs `component` (the one `target` names, if it runs here) on `req`
/// under `span`.
async fn route(
    req: hyper::Request<trellis_wrpc_http::limit::RequestBody>,
    target: Option<&str>,
    component: Option<Arc<RunningComponent>>,
    span: InvocationSpan,
) -> hyper::Response<HyperOutgoingBody> {
    let Some(target) = target else {
        return plain(
            http::StatusCode::NOT_FOUND,
            "no component is linked to this route\n".into(),
        );
    };
    let Some(component) = component else {
        return plain(
            http::StatusCode::SERVICE_UNAVAILABLE,
            format!("component `{target}` is not running on this host\n"),
        );
    };
    let (limit, tripped) = (req.body().limit(), req.body().tripped());
    let resp = match component.handle_http_under(req, span).await {
        Ok(resp) => resp,
        Err(e) => plain(error_status(&e), format!("{e}\n")),
    };
    if tripped.get() {
        // Whatever the component made of its failed read, the client is told
        // why.
        return plain(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            trellis_wrpc_http::limit::streamed_too_large(limit),
        );
    }
    resp
}

fn plain(status: http::StatusCode, body: String) -> hyper::Response<HyperOutgoingBody> {
    trellis_wrpc_http::text_response(status, body)
        .map(|body| body.map_err(|never| match never {}).boxed_unsync())
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
