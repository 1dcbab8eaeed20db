use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::p2::{WasiHttpCtxView, WasiHttpView};

use super::engine::RuntimeError;
use crate::capability;

/// The data of one invocation's `Store`: WASI contexts with nothing granted
/// (no environment, no preopened directories, no sockets), the component's
/// named config as it stood when the invocation began, and memory limits.
pub struct InvocationState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: capability::http_client::OutgoingHttp,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    /// Id of the component this store runs, for logs.
    pub(crate) component_id: Arc<str>,
    /// Merged named config of the component (`wasi:config/store`).
    pub(crate) config: Arc<BTreeMap<String, String>>,
    /// Who called and until when: bounds nested calls made by this invocation.
    pub(crate) scope: CallScope,
    /// Link names chosen with `wasmcloud:bus/lattice.set-link-name`, keyed by
    /// `namespace:package/interface`. Per store, so per invocation: concurrent
    /// invocations of one component never see each other's choice.
    pub(crate) link_names: HashMap<String, String>,
    /// `wasmcloud:bus/lattice` needs the link table to validate names.
    pub(crate) links: Option<Arc<crate::dataplane::DataPlane>>,
    wrpc: WrpcSlot,
}

/// Maximum depth of nested in-process calls (A calls B calls C …). Each level
/// holds an instance slot while it waits for the next, so without a bound two
/// components calling each other could wait on slots forever.
pub const MAX_CALL_DEPTH: u8 = 8;

/// The caller-side context of one invocation.
#[derive(Clone, Debug)]
pub struct CallScope {
    /// The component or provider that called this invocation, if any.
    pub source_id: Option<Arc<str>>,
    /// The link name the caller used.
    pub link_name: Option<Arc<str>>,
    /// When this invocation must be done (the callee's execution limit capped
    /// by the caller's remaining budget).
    pub deadline: Instant,
    /// Nesting depth of in-process calls.
    pub depth: u8,
    /// W3C trace context (`traceparent`, `tracestate`) of the request this
    /// invocation serves, passed on to the calls it makes so a trace spans
    /// hosts.
    pub trace: Option<Arc<TraceContext>>,
    /// The span this invocation's work is recorded under (its
    /// `component.invoke` span once running, or the ingress span of an HTTP
    /// request); nothing while traces are off. Outgoing calls are its
    /// children, whatever link name `set-link-name` picked.
    pub span: crate::observability::spans::InvocationSpan,
}

/// W3C trace-context headers, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent`
    pub traceparent: String,
    /// `tracestate`, if any.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// From header values; `None` without a plausible `traceparent`
    /// (`version-traceid-parentid-flags`, 55 characters for version 00).
    pub fn from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let traceparent = traceparent?.trim();
        let plausible = traceparent.len() >= 55
            && traceparent.len() <= 512
            && traceparent.split('-').count() >= 4
            && traceparent
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '-');
        plausible.then(|| Self {
            traceparent: traceparent.to_string(),
            tracestate: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 512 && s.is_ascii())
                .map(String::from),
        })
    }
}

impl CallScope {
    /// A top-level invocation (HTTP request, message) with `limit` to run.
    pub fn root(limit: Duration) -> Self {
        Self {
            source_id: None,
            link_name: None,
            deadline: Instant::now() + limit,
            depth: 0,
            trace: None,
            span: crate::observability::spans::InvocationSpan::None,
        }
    }

    /// What is left of the budget.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

impl InvocationState {
    /// State for one invocation of `component_id`.
    pub fn new(
        component_id: Arc<str>,
        config: Arc<BTreeMap<String, String>>,
        max_linear_memory_bytes: usize,
    ) -> Self {
        let mut wasi = WasiCtx::builder();
        // Nothing is granted by default: no env, no args, no preopens, no
        // network. stdout/stderr of guests go to the host's log.
        wasi.inherit_stdout().inherit_stderr();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            http_hooks: capability::http_client::OutgoingHttp::denied(component_id.clone()),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(max_linear_memory_bytes)
                .instances(64)
                .build(),
            component_id,
            config,
            scope: CallScope::root(Duration::from_secs(60)),
            link_names: HashMap::new(),
            links: None,
            wrpc: WrpcSlot::default(),
        }
    }
}

/// `wrpc-runtime-wasmtime`'s value codec needs a [`wrpc_runtime_wasmtime::WrpcView`]
/// on the store data. Trellis routes imports itself (see
/// [`crate::dataplane`]), so the view's own client is never used to invoke:
/// [`Unrouted`] refuses, and only the resource table is real.
#[derive(Default)]
struct WrpcSlot {
    client: Unrouted,
    shared: wrpc_runtime_wasmtime::SharedResourceTable,
}

/// An `Invoke` that refuses every call: imports are routed by the data plane.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unrouted;

impl wrpc_transport::Invoke for Unrouted {
    type Context = ();
    type Outgoing = Closed;
    type Incoming = Closed;

    async fn invoke<P>(
        &self,
        _cx: Self::Context,
        instance: &str,
        func: &str,
        _params: bytes::Bytes,
        _paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(Self::Outgoing, Self::Incoming)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        anyhow::bail!("`{instance}.{func}` is not routed through wrpc-runtime-wasmtime")
    }
}

/// The streams of an [`Unrouted`] call: reads end at once, writes fail.
#[derive(Debug, Default)]
pub struct Closed;

impl wrpc_transport::Index<Closed> for Closed {
    fn index(&self, _path: &[usize]) -> anyhow::Result<Closed> {
        Ok(Closed)
    }
}

impl tokio::io::AsyncRead for Closed {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Closed {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Err(std::io::ErrorKind::NotConnected.into()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl wrpc_runtime_wasmtime::WrpcCtx<Unrouted> for WrpcSlot {
    fn context(&self) {}
    fn client(&self) -> &Unrouted {
        &self.client
    }
    fn shared_resources(&mut self) -> &mut wrpc_runtime_wasmtime::SharedResourceTable {
        &mut self.shared
    }
}

impl wrpc_runtime_wasmtime::WrpcView for InvocationState {
    type Invoke = Unrouted;
    fn wrpc(&mut self) -> wrpc_runtime_wasmtime::WrpcCtxView<'_, Unrouted> {
        wrpc_runtime_wasmtime::WrpcCtxView {
            ctx: &mut self.wrpc,
            table: &mut self.table,
        }
    }
}

impl InvocationState {
    /// Outgoing `wasi:http` for this invocation (decided from the component's
    /// `wasi:http/outgoing-handler` link).
    pub(crate) fn set_outgoing_http(&mut self, hooks: capability::http_client::OutgoingHttp) {
        self.http_hooks = hooks;
    }

    /// The store's resource table (host-defined resources).
    pub(crate) fn table_mut(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InvocationState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// The linker every component starts from: the WASI 0.2 CLI world, `wasi:http`
/// and the host's built-in interfaces.
pub(crate) fn base_linker(engine: &Engine) -> Result<Linker<InvocationState>, RuntimeError> {
    let mut linker = Linker::new(engine);
    let err = |e: wasmtime::Error| RuntimeError::Linker(format!("{e:#}"));
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(err)?;
    capability::add_to_linker(&mut linker).map_err(err)?;
    Ok(linker)
}
