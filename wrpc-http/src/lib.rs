#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod body;
mod convert;
pub mod routing;

pub use body::{WireBody, WireBodyError, split_body};
pub use convert::{
    ConvertError, fields_to_headers, headers_to_fields, request_from_wire, request_to_wire,
    response_from_wire, response_to_wire,
};

/// Typed wRPC bindings of `wrpc:http@0.1.0` (world `interfaces`: both handlers
/// imported and exported), generated from the vendored WIT.
#[allow(missing_docs)] // generated code
#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // generated code
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
