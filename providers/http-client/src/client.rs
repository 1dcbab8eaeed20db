//! One outgoing request: the wire request to a `reqwest` request, the
//! response back to the wire, failures to `wasi:http` error codes.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use trellis_wrpc_http::bindings::exports::wrpc::http::outgoing_handler::Handler;
use trellis_wrpc_http::{ErrorCode, Request, RequestOptions, Response, WireBody};

/// Connect plus first-byte budget when the caller sets none (wasmtime's
/// `wasi:http` default for each is 600 s; a provider serving many components
/// should not hold a request that long).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The export's handler: one client (connection pool) for every component.
#[derive(Clone)]
pub struct Outgoing {
    client: reqwest::Client,
}

impl Outgoing {
    /// Builds the connection pool.
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        Ok(Self { client })
    }
}

impl<Ctx: Send> Handler<Ctx> for Outgoing {
    async fn handle(
        &self,
        _cx: Ctx,
        request: Request,
        options: Option<RequestOptions>,
    ) -> anyhow::Result<Result<Response, ErrorCode>> {
        Ok(self.send(request, options).await)
    }
}

impl Outgoing {
    async fn send(
        &self,
        request: Request,
        options: Option<RequestOptions>,
    ) -> Result<Response, ErrorCode> {
        let request = trellis_wrpc_http::request_from_wire(request)
            .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
        if request.uri().authority().is_none() {
            return Err(ErrorCode::HttpRequestUriInvalid);
        }
        let request = request.map(|body| reqwest::Body::wrap(SyncBody(Mutex::new(body))));
        let request =
            reqwest::Request::try_from(request).map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
        let nanos = |n: Option<u64>| n.map(Duration::from_nanos);
        let budget = match options {
            Some(o) => match (nanos(o.connect_timeout), nanos(o.first_byte_timeout)) {
                (None, None) => DEFAULT_REQUEST_TIMEOUT,
                (c, f) => c.unwrap_or_default().saturating_add(f.unwrap_or_default()),
            },
            None => DEFAULT_REQUEST_TIMEOUT,
        };
        let response = tokio::time::timeout(budget, self.client.execute(request))
            .await
            .map_err(|_| ErrorCode::ConnectionTimeout)?
            .map_err(|e| request_error(&e))?;
        let response: http::Response<reqwest::Body> = response.into();
        Ok(trellis_wrpc_http::response_to_wire(response))
    }
}

/// The `wasi:http` error code for a failed request.
fn request_error(e: &reqwest::Error) -> ErrorCode {
    let failure = trellis_wrpc_http::ClientFailure {
        timeout: e.is_timeout(),
        connect: e.is_connect(),
        builder: e.is_builder(),
    };
    trellis_wrpc_http::client_error_code(failure, trellis_wrpc_http::error_chain(e))
}

/// The request body from the wire, made `Sync` for the client (it is only
/// ever polled through `&mut`, so the mutex is never contended).
struct SyncBody(Mutex<WireBody>);

impl Body for SyncBody {
    type Data = Bytes;
    type Error = trellis_wrpc_http::WireBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let body = match self.get_mut().0.get_mut() {
            Ok(body) => body,
            Err(poisoned) => poisoned.into_inner(),
        };
        Pin::new(body).poll_frame(cx)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
