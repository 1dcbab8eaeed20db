//! The HTTP listeners of a server (the host's `builtin://http-server` or the
//! `http-server-provider` process): bound, re-routed and closed to match the
//! desired routes, each request routed to a component and handed to the
//! server's [`RequestHandler`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::limit::{CappedBody, RequestBody, declared_too_large};
use crate::routing::ListenerRoutes;

/// What a server does with a routed request.
pub trait RequestHandler: Clone + Send + Sync + 'static {
    /// Response body type.
    type Body: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;

    /// Answers `req`; `target` is the component its listener's routes chose
    /// (`None`: no route matches). The body counts against the listener's
    /// limit ([`crate::limit`]).
    fn handle(
        &self,
        target: Option<String>,
        req: hyper::Request<RequestBody>,
    ) -> impl Future<Output = hyper::Response<Self::Body>> + Send;

    /// A plain-text answer of the server itself (e.g. 413 for a body over
    /// the limit).
    fn plain(&self, status: http::StatusCode, text: String) -> hyper::Response<Self::Body>;
}

struct Listener {
    routes: Arc<RwLock<ListenerRoutes>>,
    stop: watch::Sender<bool>,
}

/// A set of HTTP/1.1 listeners.
#[derive(Default)]
pub struct HttpListeners {
    listeners: Mutex<HashMap<SocketAddr, Listener>>,
}

/// A listener that could not be bound (the others are).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for HTTP on {addr}: {source}")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl HttpListeners {
    /// Binds, re-routes and closes listeners to match `desired`; requests go
    /// to `handler`. Returns the addresses that could not be bound.
    pub fn apply<H: RequestHandler>(
        &self,
        desired: BTreeMap<SocketAddr, ListenerRoutes>,
        handler: &H,
    ) -> Vec<BindError> {
        let mut failed = Vec::new();
        let Ok(mut listeners) = self.listeners.lock() else {
            return failed;
        };
        listeners.retain(|addr, l| {
            let keep = desired.contains_key(addr);
            if !keep {
                tracing::info!(%addr, "closing HTTP listener");
                let _ = l.stop.send(true);
            }
            keep
        });
        for (addr, routes) in desired {
            if let Some(existing) = listeners.get(&addr) {
                if let Ok(mut r) = existing.routes.write() {
                    *r = routes;
                }
                continue;
            }
            match bind(addr) {
                Ok(socket) => {
                    let routes = Arc::new(RwLock::new(routes));
                    let (stop, stop_rx) = watch::channel(false);
                    tokio::spawn(accept_loop(
                        socket,
                        routes.clone(),
                        handler.clone(),
                        stop_rx,
                    ));
                    tracing::info!(%addr, "HTTP listener started");
                    listeners.insert(addr, Listener { routes, stop });
                }
                Err(source) => failed.push(BindError { addr, source }),
            }
        }
        failed
    }

    /// Closes every listener.
    pub fn close_all(&self) {
        if let Ok(mut listeners) = self.listeners.lock() {
            for (_, l) in listeners.drain() {
                let _ = l.stop.send(true);
            }
        }
    }

    /// Addresses currently listened on.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.listeners
            .lock()
            .map(|l| l.keys().copied().collect())
            .unwrap_or_default()
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = std::net::TcpListener::bind(addr)?;
    socket.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(socket)
}

async fn accept_loop<H: RequestHandler>(
    socket: tokio::net::TcpListener,
    routes: Arc<RwLock<ListenerRoutes>>,
    handler: H,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, _peer) = tokio::select! {
            _ = stop.changed() => return,
            accepted = socket.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    continue;
                }
            },
        };
        // wasi-http writes headers, body and trailers separately: without
        // TCP_NODELAY, Nagle plus delayed ACK adds ~40 ms to every response.
        let _ = stream.set_nodelay(true);
        let routes = routes.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (target, limit) = routes.read().map_or((None, None), |r| {
                    let target = r.route(req.uri().path(), req.headers()).map(str::to_string);
                    (target, r.max_request_body)
                });
                let handler = handler.clone();
                async move {
                    if let Some(text) = declared_too_large(req.headers(), limit) {
                        return Ok(handler.plain(http::StatusCode::PAYLOAD_TOO_LARGE, text));
                    }
                    let req = req.map(|body| CappedBody::new(body, limit));
                    Ok::<_, std::convert::Infallible>(handler.handle(target, req).await)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
}
