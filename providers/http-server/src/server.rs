//! Listeners kept in line with the links, and each request forwarded to its
//! component over wRPC.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::Notify;
use trellis_provider_sdk::Connection;
use trellis_wrpc_http::bindings::wrpc::http::incoming_handler;
use trellis_wrpc_http::listeners::{HttpListeners, RequestHandler};
use trellis_wrpc_http::routing::{ListenerRoutes, ServerSettings, add_route};

/// The body of every response this provider sends.
type ResponseBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Keeps the listeners in line with the links and the provider config until
/// the provider stops.
pub async fn manage(conn: Connection, changed: Arc<Notify>) {
    // Requests whose body is already complete (every GET, small POSTs) go
    // out whole: one message to the component's host, one back.
    conn.transport().declare_async_params(
        trellis_wrpc_http::INCOMING_HANDLER,
        trellis_wrpc_http::HANDLE,
        trellis_wrpc_http::REQUEST_PARAM_PATHS,
    );
    let listeners = HttpListeners::default();
    let handler = Forward { conn: conn.clone() };
    loop {
        let desired = desired_routes(&conn);
        for e in listeners.apply(desired, &handler) {
            tracing::error!(addr = %e.addr, error = %e.source, "cannot bind HTTP listener");
        }
        changed.notified().await;
    }
}

/// The listeners the current links ask for.
fn desired_routes(conn: &Connection) -> BTreeMap<SocketAddr, ListenerRoutes> {
    let config = conn.config();
    let settings = ServerSettings::from_config(|k| config.get(k));
    let mut routes = BTreeMap::new();
    for link in conn.links().as_source() {
        if !link.covers("wasi", "http", "incoming-handler") {
            continue;
        }
        if let Err(e) = add_route(&mut routes, &settings, &link.target_id, |k| {
            link.config.get(k)
        }) {
            tracing::error!(component_id = %link.target_id, "{e}");
        }
    }
    routes
}

/// Sends each request to its component's `wrpc:http/incoming-handler`.
#[derive(Clone)]
struct Forward {
    conn: Connection,
}

impl RequestHandler for Forward {
    type Body = ResponseBody;

    async fn handle(
        &self,
        target: Option<String>,
        req: hyper::Request<trellis_wrpc_http::limit::RequestBody>,
    ) -> hyper::Response<ResponseBody> {
        let Some(target) = target else {
            return plain(
                http::StatusCode::NOT_FOUND,
                "no component is linked to this route\n".into(),
            );
        };
        let client = self.conn.client_for(&target);
        let (limit, tripped) = (req.body().limit(), req.body().tripped());
        let request = trellis_wrpc_http::request_to_wire(req);
        let (result, io) = match incoming_handler::handle(&client, None, request).await {
            Ok(answer) => answer,
            Err(e) => {
                let detail = e
                    .chain()
                    .find_map(trellis_provider_sdk::trellis_wrpc::find_wrpc_error)
                    .map_or_else(|| format!("{e:#}"), ToString::to_string);
                tracing::warn!(component_id = %target, error = %detail, "HTTP request could not be handed to the component");
                return plain(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    format!("component `{target}` could not be reached: {detail}\n"),
                );
            }
        };
        if let Some(io) = io {
            let target = target.clone();
            tokio::spawn(async move {
                if let Err(e) = io.await {
                    tracing::debug!(component_id = %target, error = format!("{e:#}"), "HTTP body transfer with the component ended early");
                }
            });
        }
        if tripped.get() {
            // The component's read failed (the body ended with the
            // body-error trailer); whatever it answered, the client is told.
            return plain(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                trellis_wrpc_http::limit::streamed_too_large(limit),
            );
        }
        match result {
            Ok(response) => match trellis_wrpc_http::response_from_wire(response) {
                Ok(response) => response.map(|body| body.map_err(Into::into).boxed_unsync()),
                Err(e) => plain(
                    http::StatusCode::BAD_GATEWAY,
                    format!("component `{target}` sent an invalid response: {e}\n"),
                ),
            },
            Err(code) => plain(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{target}` failed the request: {code:?}\n"),
            ),
        }
    }

    fn plain(&self, status: http::StatusCode, text: String) -> hyper::Response<ResponseBody> {
        plain(status, text)
    }
}

fn plain(status: http::StatusCode, body: String) -> hyper::Response<ResponseBody> {
    trellis_wrpc_http::text_response(status, body)
        .map(|body| body.map_err(|never| match never {}).boxed_unsync())
}
