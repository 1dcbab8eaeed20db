//! Outgoing `wasi:http`. Nothing is granted by default: until an HTTP client
//! capability is linked to a component (a later capability), every outgoing
//! request is refused with `HTTP-request-denied` instead of reaching the network.

use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, OutgoingRequestConfig};
use wasmtime_wasi_http::p2::{HttpResult, WasiHttpHooks};

/// Hooks that deny every outgoing request.
pub struct DeniedOutgoingHttp;

impl WasiHttpHooks for DeniedOutgoingHttp {
    fn send_request(
        &mut self,
        request: hyper::Request<HyperOutgoingBody>,
        _config: OutgoingRequestConfig,
    ) -> HttpResult<HostFutureIncomingResponse> {
        tracing::warn!(uri = %request.uri(), "outgoing HTTP denied: no http-client capability is linked");
        Err(ErrorCode::HttpRequestDenied.into())
    }
}
