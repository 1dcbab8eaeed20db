//! Outgoing `wasi:http` (`wasi:http/outgoing-handler`), `builtin://http-client`.
//!
//! Nothing is granted by default. A component may make outgoing requests when
//! its `wasi:http/outgoing-handler` link (namespace `wasi`, package `http`,
//! interface `outgoing-handler`; name `default`, or the one chosen with
//! `wasmcloud:bus/lattice.set-link-name`) targets a built-in http-client
//! provider running on this host (`provider.start builtin://http-client`, or
//! `wasmcloud+builtin://http-client`). The decision is taken when the
//! invocation's store is created (one link lookup, and only for components that
//! import the interface), so a link put or deleted applies from the next
//! invocation on.
//!
//! When the link targets anything else that is not a built-in — an
//! http-client provider process, on this host or any other — requests are
//! forwarded over the lattice as `wrpc:http/outgoing-handler@0.1.0.handle`
//! ([`super::http_forward`]), as wasmCloud 1.x does.
//!
//! Without a link every request is refused before anything reaches the
//! network, with an `internal-error` naming what to link. A link to another
//! built-in (e.g. `builtin://http-server`) is refused too.
//!
//! Requests go out through one host-wide connection pool (HTTP/1.1, TLS with
//! the platform's trust store, no redirects followed, no proxy). The provider
//! config keys of wasmCloud's http-client (`load_native_certs`,
//! `ssl_certs_file`) are accepted and not yet honoured.

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{
    HostFutureIncomingResponse, IncomingResponse, OutgoingRequestConfig,
};
use wasmtime_wasi_http::p2::{HttpResult, WasiHttpHooks};

use super::http_forward::LatticeClient;
use crate::host::HostInner;

/// `builtin://` name of the outgoing HTTP capability.
pub const BUILTIN_NAME: &str = "http-client";
/// The link key (`namespace:package/interface`) outgoing requests resolve.
pub const OUTGOING_INTERFACE: &str = "wasi:http/outgoing-handler";

/// Whether `image_ref` names the built-in http-client
/// (`builtin://http-client` or `wasmcloud+builtin://http-client`).
pub fn is_builtin_http_client(image_ref: &str) -> bool {
    matches!(
        crate::artifact::ArtifactRef::parse(image_ref),
        Ok(crate::artifact::ArtifactRef::Builtin(name)) if name == BUILTIN_NAME
    )
}

/// Whether `component` imports `wasi:http/outgoing-handler` (any 0.2.x), so
/// its stores need a decision at all.
pub fn imports_outgoing_http(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> bool {
    component.component_type().imports(engine).any(|(name, _)| {
        name.strip_prefix(OUTGOING_INTERFACE)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('@'))
    })
}

/// The host-wide state of the capability: the connection pool, built on first
/// use. Reached from a store through the data plane.
pub struct HttpClientService {
    host: Weak<HostInner>,
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl HttpClientService {
    pub(crate) fn new(host: Weak<HostInner>) -> Self {
        Self {
            host,
            client: OnceLock::new(),
        }
    }

    /// The hooks of one invocation of `component`, whose outgoing-handler link
    /// is `link_name`.
    pub(crate) fn hooks(self: &Arc<Self>, component: &Arc<str>, link_name: &str) -> OutgoingHttp {
        let denied = |reason| OutgoingHttp {
            grant: Grant::Denied(Arc::new(Denial {
                component: component.clone(),
                link_name: link_name.to_string(),
                reason,
            })),
        };
        let Some(host) = self.host.upgrade() else {
            return denied(Reason::Stopping);
        };
        let Ok(target) = host
            .dataplane
            .resolve(component, OUTGOING_INTERFACE, link_name)
        else {
            return denied(Reason::NoLink);
        };
        let image_ref = host
            .providers
            .read()
            .ok()
            .and_then(|p| p.get(&*target).map(|s| s.image_ref.clone()));
        match image_ref {
            Some(r) if is_builtin_http_client(&r) => OutgoingHttp {
                grant: Grant::Builtin(self.clone()),
            },
            Some(image_ref) => denied(Reason::OtherBuiltin { target, image_ref }),
            None => OutgoingHttp {
                grant: Grant::Lattice(Arc::new(LatticeClient {
                    dataplane: host.dataplane.clone(),
                    component: component.clone(),
                    link_name: link_name.to_string(),
                    target,
                })),
            },
        }
    }

    /// The connection pool.
    fn client(&self) -> Result<reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .build()
                    .map_err(|e| format!("the host's HTTP client could not be built: {e}"))
            })
            .clone()
    }
}

/// The `wasi:http` hooks of one store: send through the built-in client, or
/// refuse.
pub struct OutgoingHttp {
    grant: Grant,
}

enum Grant {
    Builtin(Arc<HttpClientService>),
    Lattice(Arc<LatticeClient>),
    Denied(Arc<Denial>),
}

impl OutgoingHttp {
    /// Refuses every request of `component` (no link looked up).
    pub fn denied(component: Arc<str>) -> Self {
        Self {
            grant: Grant::Denied(Arc::new(Denial {
                component,
                link_name: crate::dataplane::links::default_link_name().to_string(),
                reason: Reason::NoLink,
            })),
        }
    }

    /// Whether requests are sent.
    pub fn is_granted(&self) -> bool {
        matches!(self.grant, Grant::Builtin(_) | Grant::Lattice(_))
    }
}

/// Why a component may not make outgoing requests; the message is built only
/// when a request is refused.
#[derive(Debug)]
struct Denial {
    component: Arc<str>,
    link_name: String,
    reason: Reason,
}

#[derive(Debug)]
enum Reason {
    NoLink,
    Stopping,
    OtherBuiltin { target: Arc<str>, image_ref: String },
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            component,
            link_name,
            reason,
        } = self;
        write!(f, "HTTP request denied: ")?;
        match reason {
            Reason::NoLink => write!(
                f,
                "component `{component}` has no `{OUTGOING_INTERFACE}` link named `{link_name}`: start `builtin://http-client` (or an http-client provider) and link it (`wash link put {component} <provider-id> wasi http --interface outgoing-handler`, or a link trait in the manifest)"
            ),
            Reason::Stopping => write!(f, "the host is stopping"),
            Reason::OtherBuiltin { target, image_ref } => write!(
                f,
                "component `{component}` links `{OUTGOING_INTERFACE}` (`{link_name}`) to `{target}`, which is `{image_ref}` and serves no outgoing HTTP: link it to `builtin://http-client`"
            ),
        }
    }
}

impl WasiHttpHooks for OutgoingHttp {
    fn send_request(
        &mut self,
        request: hyper::Request<HyperOutgoingBody>,
        config: OutgoingRequestConfig,
    ) -> HttpResult<HostFutureIncomingResponse> {
        let service = match &self.grant {
            Grant::Builtin(service) => service,
            Grant::Lattice(remote) => {
                let remote = remote.clone();
                let handle =
                    wasmtime_wasi::runtime::spawn(
                        async move { Ok(remote.send(request, config).await) },
                    );
                return Ok(HostFutureIncomingResponse::pending(handle));
            }
            Grant::Denied(denial) => {
                tracing::warn!(component_id = %denial.component, uri = %request.uri(), "{denial}");
                return Err(ErrorCode::InternalError(Some(denial.to_string())).into());
            }
        };
        let client = service
            .client()
            .map_err(|e| ErrorCode::InternalError(Some(e)))?;
        let handle =
            wasmtime_wasi::runtime::spawn(async move { Ok(send(client, request, config).await) });
        Ok(HostFutureIncomingResponse::pending(handle))
    }
}

/// Sends `request` and maps the outcome onto `wasi:http` error codes.
async fn send(
    client: reqwest::Client,
    request: hyper::Request<HyperOutgoingBody>,
    config: OutgoingRequestConfig,
) -> Result<IncomingResponse, ErrorCode> {
    let (parts, body) = request.into_parts();
    let size = body.size_hint();
    let body = reqwest::Body::wrap(SyncBody {
        inner: Mutex::new(body),
        size,
    });
    let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    let budget = config
        .connect_timeout
        .saturating_add(config.first_byte_timeout);
    let response = tokio::time::timeout(budget, client.execute(request))
        .await
        .map_err(|_| ErrorCode::ConnectionTimeout)?
        .map_err(|e| request_error(&e))?;
    let response: http::Response<reqwest::Body> = response.into();
    let resp = response.map(|body| {
        body.map_err(|e| {
            if e.is_timeout() {
                ErrorCode::ConnectionReadTimeout
            } else {
                ErrorCode::HttpProtocolError
            }
        })
        .boxed_unsync()
    });
    Ok(IncomingResponse {
        resp,
        worker: None,
        between_bytes_timeout: config.between_bytes_timeout,
    })
}

/// The `wasi:http` error code for a failed request (the mapping the
/// http-client provider uses too).
fn request_error(e: &reqwest::Error) -> ErrorCode {
    let failure = trellis_wrpc_http::ClientFailure {
        timeout: e.is_timeout(),
        connect: e.is_connect(),
        builder: e.is_builder(),
    };
    super::http_forward::from_wire(trellis_wrpc_http::client_error_code(
        failure,
        trellis_wrpc_http::error_chain(e),
    ))
}

/// The guest's request body, made `Sync` for the client (it is only ever
/// polled through `&mut`, so the mutex is never contended).
struct SyncBody {
    inner: Mutex<HyperOutgoingBody>,
    size: SizeHint,
}

/// The guest's request body failed.
#[derive(Debug, thiserror::Error)]
#[error("request body: {0:?}")]
struct OutgoingBodyError(ErrorCode);

impl Body for SyncBody {
    type Data = Bytes;
    type Error = OutgoingBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let body = match self.get_mut().inner.get_mut() {
            Ok(body) => body,
            Err(poisoned) => poisoned.into_inner(),
        };
        Pin::new(body).poll_frame(cx).map_err(OutgoingBodyError)
    }

    fn is_end_stream(&self) -> bool {
        self.size.exact() == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names() {
        assert!(is_builtin_http_client("builtin://http-client"));
        assert!(is_builtin_http_client("wasmcloud+builtin://http-client"));
        assert!(!is_builtin_http_client("builtin://http-server"));
        assert!(!is_builtin_http_client(
            "registry.example/wasmcloud/http-client:0.12.0"
        ));
    }

    #[test]
    fn denial_names_what_to_link() {
        let d = Denial {
            component: Arc::from("fetcher"),
            link_name: "default".into(),
            reason: Reason::NoLink,
        }
        .to_string();
        assert!(d.contains("component `fetcher`"), "{d}");
        assert!(d.contains("wasi:http/outgoing-handler"), "{d}");
        assert!(d.contains("builtin://http-client"), "{d}");
    }

    #[test]
    fn denied_hooks_refuse() {
        let mut hooks = OutgoingHttp::denied(Arc::from("fetcher"));
        assert!(!hooks.is_granted());
        let request = hyper::Request::builder()
            .uri("http://127.0.0.1:9/")
            .body(
                http_body_util::Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap();
        let config = OutgoingRequestConfig {
            use_tls: false,
            connect_timeout: std::time::Duration::from_secs(1),
            first_byte_timeout: std::time::Duration::from_secs(1),
            between_bytes_timeout: std::time::Duration::from_secs(1),
        };
        assert!(hooks.send_request(request, config).is_err());
    }
}
