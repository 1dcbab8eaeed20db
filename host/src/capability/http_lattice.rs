//! A component's `wasi:http/incoming-handler` export offered on the lattice
//! as `wrpc:http/incoming-handler@0.1.0.handle` (PROTOCOL.md §3.2), so an
//! http-server provider process — Trellis's or wasmCloud's — anywhere in the
//! lattice can hand it requests. The component still receives a plain
//! `wasi:http` request; bodies stream in both directions (nothing is
//! buffered whole).
//!
//! Subscribed with the component's other exports (same prefix and queue
//! group `{lattice}.{id}`, see [`crate::dataplane::serve`]), on the
//! component's current generation per call, with the same policy check.

use std::sync::Arc;

use futures::StreamExt as _;
use http_body_util::BodyExt as _;
use tokio::task::JoinHandle;
use tracing::Instrument as _;
use trellis_wrpc_http::bindings::exports::wrpc::http::incoming_handler;
use trellis_wrpc_http::{ErrorCode, Request, Response};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode as WasiErrorCode;

use crate::dataplane::DataPlane;
use crate::observability::spans;
use crate::runtime::error_status;

/// The `wasi:http` export, as the policy service and spans name it.
const WASI_INCOMING: &str = "wasi:http/incoming-handler";

/// Serves `id`'s `wasi:http/incoming-handler` on `server`; the task ends
/// (and the subscription with it) when aborted.
pub(crate) async fn serve_incoming(
    dp: Arc<DataPlane>,
    server: &trellis_wrpc::Server,
    id: Arc<str>,
) -> Option<JoinHandle<()>> {
    let handler = FromLattice { dp, id: id.clone() };
    let [(_, _, invocations)] = match incoming_handler::serve_interface(server, handler).await {
        Ok(served) => served,
        Err(e) => {
            tracing::warn!(component_id = %id, error = format!("{e:#}"), "cannot offer wrpc:http/incoming-handler on the lattice");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        let mut invocations = invocations;
        while let Some(item) = invocations.next().await {
            match item {
                Ok(call) => {
                    let id = id.clone();
                    tokio::spawn(async move {
                        if let Err(e) = call.await {
                            tracing::debug!(component_id = %id, error = format!("{e:#}"), "wrpc:http call from the lattice ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::debug!(component_id = %id, error = format!("{e:#}"), "malformed wrpc:http call dropped");
                }
            }
        }
    }))
}

#[derive(Clone)]
struct FromLattice {
    dp: Arc<DataPlane>,
    id: Arc<str>,
}

impl incoming_handler::Handler<trellis_wrpc::ServeContext> for FromLattice {
    async fn handle(
        &self,
        cx: trellis_wrpc::ServeContext,
        request: Request,
    ) -> anyhow::Result<Result<Response, ErrorCode>> {
        let span = crate::dataplane::serve::served_span(
            &cx,
            &self.id,
            trellis_wrpc_http::INCOMING_HANDLER,
            trellis_wrpc_http::HANDLE,
        );
        async {
            let Some(current) = self.dp.current(&self.id) else {
                return Ok(Ok(plain(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    format!("component `{}` no longer runs on this host\n", self.id),
                )));
            };
            if let Some(policy) = self.dp.policy()
                && let Err(denial) = policy
                    .check_invocation(&current, WASI_INCOMING, trellis_wrpc_http::HANDLE)
                    .await
            {
                spans::fail(&tracing::Span::current(), &denial);
                return Ok(Ok(plain(http::StatusCode::FORBIDDEN, format!("{denial}\n"))));
            }
            self.dp.count_served();
            let request = match trellis_wrpc_http::request_from_wire(request) {
                Ok(request) => request,
                Err(e) => {
                    tracing::debug!(component_id = %self.id, error = %e, "invalid wrpc:http request refused");
                    return Ok(Err(ErrorCode::HttpRequestDenied));
                }
            };
            let request = request.map(|body| {
                body.map_err(|e| WasiErrorCode::InternalError(Some(e.to_string())))
                    .boxed_unsync()
            });
            let response = match current
                .handle_http_body(request, &tracing::Span::current())
                .await
            {
                Ok(response) => response.map(|body| body.map_err(|code| format!("{code:?}"))),
                Err(e) => {
                    spans::fail(&tracing::Span::current(), &e);
                    return Ok(Ok(plain(error_status(&e), format!("{e}\n"))));
                }
            };
            Ok(Ok(trellis_wrpc_http::response_to_wire(response)))
        }
        .instrument(span)
        .await
    }
}

/// A plain-text response (the same the built-in server gives for the same
/// failure).
fn plain(status: http::StatusCode, body: String) -> Response {
    trellis_wrpc_http::response_to_wire(trellis_wrpc_http::text_response(status, body))
}
