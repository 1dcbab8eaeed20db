#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod body;
pub mod complete;
mod convert;
pub mod limit;
pub mod listeners;
pub mod routing;

pub use body::{BODY_ERROR_TRAILER, WireBody, WireBodyError, split_body};
pub use convert::{
    ConvertError, fields_to_headers, headers_to_fields, request_from_wire, request_to_wire,
    response_from_wire, response_to_wire,
};

/// Typed wRPC bindings of `wrpc:http@0.1.0` (world `interfaces`: both handlers
/// imported and exported), generated from the vendored WIT.
#[allow(missing_docs)] // generated code
#[allow(
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // generated code
pub mod bindings {
    wit_bindgen_wrpc::generate!({
        path: "../interfaces/wit/deps/wrpc-http",
        world: "wrpc:http/interfaces",
        generate_all,
    });
}

pub use bindings::wasi::http::types::ErrorCode;
pub use bindings::wrpc::http::types::{Fields, Method, Request, RequestOptions, Response, Scheme};

/// The wire instance a provider calls on a component (`handle`).
pub const INCOMING_HANDLER: &str = "wrpc:http/incoming-handler@0.1.0";
/// The wire instance a host calls on an http-client provider (`handle`).
pub const OUTGOING_HANDLER: &str = "wrpc:http/outgoing-handler@0.1.0";
/// The function both handlers export.
pub const HANDLE: &str = "handle";
/// The nested (async) param paths of both handlers' `handle`: the request
/// record's body (`0.0`, `stream<u8>`) and trailers (`0.1`,
/// `future<option<fields>>`). Servers pass them to `serve`; Trellis callers
/// declare them (`trellis_wrpc::Transport::declare_async_params`) so a
/// request whose body is empty or small and complete travels whole in one
/// message.
pub const REQUEST_PARAM_PATHS: [[Option<usize>; 2]; 2] = [[Some(0), Some(0)], [Some(0), Some(1)]];

/// A plain-text response: what an HTTP server answers itself when no
/// component does (no route, component unreachable, component failed).
pub fn text_response(
    status: http::StatusCode,
    text: String,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// How an HTTP client's failure looked, for [`client_error_code`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientFailure {
    /// The client gave up waiting.
    pub timeout: bool,
    /// Connecting failed.
    pub connect: bool,
    /// The request could not be built (bad URI).
    pub builder: bool,
}

/// The `wasi:http` error code for a failed outgoing request, from the
/// client's error and its [`error_chain`] (the same mapping for the host's
/// built-in http-client and the http-client provider).
pub fn client_error_code(failure: ClientFailure, chain: String) -> ErrorCode {
    if failure.timeout {
        ErrorCode::ConnectionTimeout
    } else if failure.connect && chain.contains("dns error") {
        ErrorCode::DnsError(bindings::wasi::http::types::DnsErrorPayload {
            rcode: Some("address not available".into()),
            info_code: Some(0),
        })
    } else if failure.connect && chain.contains("refused") {
        ErrorCode::ConnectionRefused
    } else if failure.builder {
        ErrorCode::HttpRequestUriInvalid
    } else {
        ErrorCode::InternalError(Some(chain))
    }
}

/// `e` and its sources, `: `-separated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
