//! Outgoing `wasi:http` carried to an http-client provider process over the
//! lattice: `wrpc:http/outgoing-handler@0.1.0.handle` on `{lattice}.{target}`
//! with `source-id` and `link-name` headers (PROTOCOL.md §3.2), as a
//! wasmCloud 1.x host calls its http-client provider. The request body
//! streams to the provider as the guest writes it, the response body back as
//! the provider reads it.

use std::sync::Arc;

use http_body_util::BodyExt as _;
use wasmtime_wasi_http::p2::bindings::http::types::{DnsErrorPayload, ErrorCode};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{IncomingResponse, OutgoingRequestConfig};

use crate::dataplane::DataPlane;
use trellis_wrpc_http::ErrorCode as WireCode;

/// Where one component's outgoing requests go: a provider reached over the
/// lattice.
pub(crate) struct LatticeClient {
    pub(crate) dataplane: Arc<DataPlane>,
    pub(crate) component: Arc<str>,
    pub(crate) link_name: String,
    pub(crate) target: Arc<str>,
}

impl LatticeClient {
    /// Sends `request` through the provider and returns its response, whose
    /// body streams from the provider. The whole exchange (including the
    /// response body) is bounded by `--rpc-timeout-ms`.
    pub(crate) async fn send(
        &self,
        request: hyper::Request<HyperOutgoingBody>,
        config: OutgoingRequestConfig,
    ) -> Result<IncomingResponse, ErrorCode> {
        let Some(transport) = self.dataplane.transport() else {
            return Err(ErrorCode::InternalError(Some(
                "the lattice transport is not connected yet; retry".into(),
            )));
        };
        let request = request.map(|body| body.map_err(|code| format!("{code:?}")));
        let wire = trellis_wrpc_http::request_to_wire(request);
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).ok();
        let options = trellis_wrpc_http::RequestOptions {
            connect_timeout: nanos(config.connect_timeout),
            first_byte_timeout: nanos(config.first_byte_timeout),
            between_bytes_timeout: nanos(config.between_bytes_timeout),
        };
        let headers = trellis_wrpc::headers::call_headers(&self.component, self.link_name.as_str());
        let cx = trellis_wrpc::CallContext {
            prefix: format!("{}.{}", self.dataplane.lattice(), self.target),
            headers: Some(headers),
            timeout: Some(self.dataplane.rpc_timeout()),
        };
        let client = transport.client();
        let (result, io) = trellis_wrpc_http::bindings::wrpc::http::outgoing_handler::handle(
            &client,
            cx,
            wire,
            Some(options),
        )
        .await
        .map_err(|e| self.call_failed(&e))?;
        if let Some(io) = io {
            let component = self.component.clone();
            tokio::spawn(async move {
                if let Err(e) = io.await {
                    tracing::debug!(component_id = %component, error = format!("{e:#}"), "outgoing HTTP body transfer through the provider ended early");
                }
            });
        }
        let response = result.map_err(from_wire)?;
        let response = trellis_wrpc_http::response_from_wire(response).map_err(|e| {
            ErrorCode::InternalError(Some(format!(
                "the http-client provider `{}` sent an invalid response: {e}",
                self.target
            )))
        })?;
        let resp = response.map(|body| {
            body.map_err(|e| ErrorCode::InternalError(Some(e.to_string())))
                .boxed_unsync()
        });
        Ok(IncomingResponse {
            resp,
            worker: None,
            between_bytes_timeout: config.between_bytes_timeout,
        })
    }

    fn call_failed(&self, err: &anyhow::Error) -> ErrorCode {
        let detail = err
            .chain()
            .find_map(trellis_wrpc::find_wrpc_error)
            .map_or_else(|| format!("{err:#}"), ToString::to_string);
        let message = format!(
            "outgoing HTTP of component `{}` through the http-client provider `{}` (link `{}`) failed: {detail}",
            self.component, self.target, self.link_name
        );
        tracing::warn!(component_id = %self.component, target = %self.target, "{message}");
        ErrorCode::InternalError(Some(message))
    }
}

/// A `wasi:http` error code received on the wire, as wasmtime's.
pub(crate) fn from_wire(code: WireCode) -> ErrorCode {
    match code {
        WireCode::DnsTimeout => ErrorCode::DnsTimeout,
        WireCode::DnsError(p) => ErrorCode::DnsError(DnsErrorPayload {
            rcode: p.rcode,
            info_code: p.info_code,
        }),
        WireCode::DestinationNotFound => ErrorCode::DestinationNotFound,
        WireCode::DestinationUnavailable => ErrorCode::DestinationUnavailable,
        WireCode::DestinationIpProhibited => ErrorCode::DestinationIpProhibited,
        WireCode::DestinationIpUnroutable => ErrorCode::DestinationIpUnroutable,
        WireCode::ConnectionRefused => ErrorCode::ConnectionRefused,
        WireCode::ConnectionTerminated => ErrorCode::ConnectionTerminated,
        WireCode::ConnectionTimeout => ErrorCode::ConnectionTimeout,
        WireCode::ConnectionReadTimeout => ErrorCode::ConnectionReadTimeout,
        WireCode::ConnectionWriteTimeout => ErrorCode::ConnectionWriteTimeout,
        WireCode::ConnectionLimitReached => ErrorCode::ConnectionLimitReached,
        WireCode::TlsProtocolError => ErrorCode::TlsProtocolError,
        WireCode::TlsCertificateError => ErrorCode::TlsCertificateError,
        WireCode::HttpRequestDenied => ErrorCode::HttpRequestDenied,
        WireCode::HttpRequestLengthRequired => ErrorCode::HttpRequestLengthRequired,
        WireCode::HttpRequestBodySize(size) => ErrorCode::HttpRequestBodySize(size),
        WireCode::HttpRequestMethodInvalid => ErrorCode::HttpRequestMethodInvalid,
        WireCode::HttpRequestUriInvalid => ErrorCode::HttpRequestUriInvalid,
        WireCode::HttpRequestUriTooLong => ErrorCode::HttpRequestUriTooLong,
        WireCode::HttpResponseIncomplete => ErrorCode::HttpResponseIncomplete,
        WireCode::HttpResponseBodySize(size) => ErrorCode::HttpResponseBodySize(size),
        WireCode::HttpResponseTimeout => ErrorCode::HttpResponseTimeout,
        WireCode::HttpUpgradeFailed => ErrorCode::HttpUpgradeFailed,
        WireCode::HttpProtocolError => ErrorCode::HttpProtocolError,
        WireCode::LoopDetected => ErrorCode::LoopDetected,
        WireCode::ConfigurationError => ErrorCode::ConfigurationError,
        WireCode::InternalError(message) => ErrorCode::InternalError(message),
        // Field-size and coding details: kept as text.
        other => ErrorCode::InternalError(Some(format!("{other:?}"))),
    }
}
