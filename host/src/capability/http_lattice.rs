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
use trellis_wrpc_http::complete::{
    HandleResult, INLINE_WAIT, MAX_INLINE_BODY_BYTES, complete_or_stream,
};
use trellis_wrpc_http::{ErrorCode, Request};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode as WasiErrorCode;
use wrpc_transport::ServeExt as _;

use crate::dataplane::DataPlane;
use crate::observability::spans;
use crate::runtime::error_status;

/// The `wasi:http` export, as the policy service and spans name it.
const WASI_INCOMING: &str = "wasi:http/incoming-handler";

/// Serves `id`'s `wasi:http/incoming-handler` on `server`; the task ends
/// (and the subscription with it) when aborted.
///
/// The serve loop is the one `wit-bindgen-wrpc` generates, with one change:
/// a response whose body is already complete goes out whole in the first
/// results message ([`trellis_wrpc_http::complete`]).
pub(crate) async fn serve_incoming(
    dp: Arc<DataPlane>,
    server: &trellis_wrpc::Server,
    id: Arc<str>,
) -> Option<JoinHandle<()>> {
    // The request record's body (0.0) and trailers (0.1) may be pending.
    let paths = trellis_wrpc_http::REQUEST_PARAM_PATHS.map(Box::<[Option<usize>]>::from);
    let served = server
        .serve_values::<(Request,), (HandleResult,)>(
            trellis_wrpc_http::INCOMING_HANDLER,
            trellis_wrpc_http::HANDLE,
            paths,
        )
        .await;
    let invocations = match served {
        Ok(invocations) => invocations,
        Err(e) => {
            tracing::warn!(component_id = %id, error = format!("{e:#}"), "cannot offer wrpc:http/incoming-handler on the lattice");
            return None;
        }
    };
    let handler = FromLattice { dp, id: id.clone() };
    Some(tokio::spawn(async move {
        let mut invocations = std::pin::pin!(invocations);
        while let Some(item) = invocations.next().await {
            let (cx, (request,), rx, tx) = match item {
                Ok(item) => item,
                Err(e) => {
                    tracing::debug!(component_id = %id, error = format!("{e:#}"), "malformed wrpc:http call dropped");
                    continue;
                }
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                // The request's body and trailers arrive while the guest runs.
                let rx = rx.map(tokio::spawn);
                let result = handler.handle(cx, request).await;
                if let Err(e) = tx((result,)).await {
                    tracing::debug!(component_id = %handler.id, error = format!("{e:#}"), "wrpc:http results could not be sent");
                    if let Some(rx) = rx {
                        rx.abort();
                    }
                }
            });
        }
    }))
}

#[derive(Clone)]
struct FromLattice {
    dp: Arc<DataPlane>,
    id: Arc<str>,
}

impl FromLattice {
    async fn handle(&self, cx: trellis_wrpc::ServeContext, request: Request) -> HandleResult {
        let span = crate::dataplane::serve::served_span(
            &cx,
            &self.id,
            trellis_wrpc_http::INCOMING_HANDLER,
            trellis_wrpc_http::HANDLE,
        );
        async {
            let Some(current) = self.dp.current(&self.id) else {
                return plain(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    format!("component `{}` no longer runs on this host\n", self.id),
                );
            };
            if let Some(policy) = self.dp.policy()
                && let Err(denial) = policy
                    .check_invocation(&current, WASI_INCOMING, trellis_wrpc_http::HANDLE)
                    .await
            {
                spans::fail(&tracing::Span::current(), &denial);
                return plain(http::StatusCode::FORBIDDEN, format!("{denial}\n"));
            }
            self.dp.count_served();
            let request = match trellis_wrpc_http::request_from_wire(request) {
                Ok(request) => request,
                Err(e) => {
                    tracing::debug!(component_id = %self.id, error = %e, "invalid wrpc:http request refused");
                    return HandleResult::Streamed(Err(ErrorCode::HttpRequestDenied));
                }
            };
            let request = request.map(|body| {
                body.map_err(|e| WasiErrorCode::InternalError(Some(e.to_string())))
                    .boxed_unsync()
            });
            match current
                .handle_http_body(request, &tracing::Span::current())
                .await
            {
                Ok(response) => {
                    let response = response.map(|body| body.map_err(|code| format!("{code:?}")));
                    complete_or_stream(response, MAX_INLINE_BODY_BYTES, INLINE_WAIT).await
                }
                Err(e) => {
                    spans::fail(&tracing::Span::current(), &e);
                    plain(error_status(&e), format!("{e}\n"))
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// A plain-text response (the same the built-in server gives for the same
/// failure).
fn plain(status: http::StatusCode, body: String) -> HandleResult {
    let headers = trellis_wrpc_http::text_response(status, String::new());
    HandleResult::Complete {
        status: status.as_u16(),
        headers: trellis_wrpc_http::headers_to_fields(headers.headers()),
        body: bytes::Bytes::from(body),
        trailers: None,
    }
}
