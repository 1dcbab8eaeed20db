use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use trellis_interfaces::claims::{Claims, Component as ComponentMetadata};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::{WasiHttpView, hyper_request_error};

use super::cache::CacheOutcome;
use super::engine::Runtime;
use super::state::{CallScope, InvocationState};
use crate::dataplane::DataPlane;
use crate::dataplane::exports::ExportTable;
use crate::observability::metrics::InvocationMetrics;
use crate::observability::spans::{self, InvocationSpan};

/// The export an HTTP request invokes, as `wit.interface` / `wit.function`.
const HTTP_HANDLER: (&str, &str) = ("wasi:http/incoming-handler@0.2.0", "handle");

/// A component's merged named config, shared by every generation of a running
/// component and refreshed when `CONFIGDATA` changes.
pub type SharedConfig = Arc<RwLock<Arc<BTreeMap<String, String>>>>;

/// Verified claims of a signed component, shared by its generations.
pub type VerifiedClaims = Arc<Claims<ComponentMetadata>>;

/// Why an artifact could not become a running component.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComponentError {
    /// The bytes are not WebAssembly at all.
    #[error("artifact is not a WebAssembly binary (no `\\0asm` header)")]
    NotWasm,
    /// A core module where a component is required.
    #[error(
        "artifact is a core WebAssembly module, not a component: build it for `wasm32-wasip2` or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    /// wasmtime could not compile it.
    #[error("cannot compile component: {0}")]
    Compile(String),
    /// Its imports could not be linked.
    #[error("cannot link component: {0}")]
    Link(String),
}

/// Why one invocation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// The component does not export what was called.
    #[error("component `{component_id}` does not export `{export}`")]
    NotExported {
        /// The component.
        component_id: String,
        /// The missing export.
        export: String,
    },
    /// The parameters of a lattice call could not be decoded.
    #[error("component `{component_id}` received a malformed call: {message}")]
    Decode {
        /// The component.
        component_id: String,
        /// What was wrong.
        message: String,
    },
    /// The call's deadline passed.
    #[error("component `{component_id}` did not finish within the call's deadline of {ms} ms")]
    Deadline {
        /// The component.
        component_id: String,
        /// The budget it had.
        ms: u64,
    },
    /// The component is draining or stopped.
    #[error("component `{0}` is stopping and takes no new invocations")]
    Stopping(String),
    /// The guest trapped (panic, deadline, out of memory, …).
    #[error("component `{component_id}` failed: {message}")]
    Trap {
        /// The component.
        component_id: String,
        /// The trap, with its wasm backtrace when available.
        message: String,
    },
    /// No instance slot became free in time.
    #[error("component `{0}` is at its instance limit; try again")]
    Busy(String),
    /// Every instance slot of the host stayed in use (by any component)
    /// for the whole wait.
    #[error(
        "the host's instance pool is full ({slots} instances running), so component `{component_id}` could not start one in time; try again, or give the host more with --max-memory-bytes"
    )]
    HostFull {
        /// The component that waited.
        component_id: String,
        /// The host's instance slots.
        slots: u32,
    },
}

/// Result of loading an artifact: the compiled component and whether the
/// precompiled cache was hit.
pub struct CompiledArtifact {
    /// The compiled component.
    pub component: Component,
    /// sha256 of the artifact.
    pub digest: String,
    /// Cache outcome.
    pub cache: CacheOutcome,
}

/// Refuses bytes that are not a component before anything else looks at
/// them, so the error says what they are (not wasm, a core module).
pub fn check_header(bytes: &[u8]) -> Result<(), ComponentError> {
    match bytes.get(0..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00]) => Ok(()),
        Some([0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => Err(ComponentError::CoreModule),
        _ => Err(ComponentError::NotWasm),
    }
}

/// Checks the header and compiles (or loads precompiled) `bytes`.
pub fn compile(runtime: &Runtime, bytes: &[u8]) -> Result<CompiledArtifact, ComponentError> {
    check_header(bytes)?;
    let (component, cache) = runtime
        .cache()
        .load_or_compile(runtime.engine(), bytes)
        .map_err(|e| ComponentError::Compile(format!("{e:#}")))?;
    Ok(CompiledArtifact {
        component,
        digest: super::cache::PrecompiledCache::digest(bytes),
        cache,
    })
}

/// One generation of a running component: compiled, linked, pre-instantiated,
/// with its concurrency bound. Scaling or updating creates a new generation;
/// in-flight invocations finish on the one they started on.
pub struct RunningComponent {
    pub(super) id: Arc<str>,
    image_ref: String,
    digest: String,
    max_instances: u32,
    annotations: BTreeMap<String, String>,
    pub(super) pre: InstancePre<InvocationState>,
    proxy: Option<ProxyPre<InvocationState>>,
    pub(super) permits: Arc<Semaphore>,
    pub(super) config: SharedConfig,
    pub(super) runtime: Arc<Runtime>,
    pub(super) max_execution_time: Duration,
    claims: Option<VerifiedClaims>,
    exports: Arc<ExportTable>,
    pub(super) dataplane: Arc<DataPlane>,
    /// Whether it imports `wasi:http/outgoing-handler` (its stores then look
    /// up the http-client link).
    outgoing_http: bool,
    /// Idle instances, when the component opted into instance reuse.
    pub(super) reuse: Option<Arc<super::reuse::ReusePool>>,
}

/// The limits a rescale sets ([`RunningComponent::rescaled`]); `None`
/// keeps the running generation's value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RescaleLimits {
    /// Calls one instance may answer.
    pub max_instance_reuse: Option<u32>,
    /// Wall-clock limit of one invocation.
    pub max_execution_time: Option<Duration>,
}

/// What is needed to build a [`RunningComponent`].
pub struct ComponentParams {
    /// Component id.
    pub id: String,
    /// Artifact reference it came from.
    pub image_ref: String,
    /// Max concurrent instances (> 0).
    pub max_instances: u32,
    /// Annotations from the scale request.
    pub annotations: BTreeMap<String, String>,
    /// Shared merged config.
    pub config: SharedConfig,
    /// Per-component execution limit, if the request set one.
    pub max_execution_time: Option<Duration>,
    /// Claims admission verified, if the artifact is signed.
    pub claims: Option<VerifiedClaims>,
    /// Where its imports go and how its exports are reached.
    pub dataplane: Arc<DataPlane>,
    /// Calls one instance may answer, if the request set it (else the
    /// host's default; 1: a fresh instance per call).
    pub max_instance_reuse: Option<u32>,
}

impl RunningComponent {
    /// Links `compiled` and pre-instantiates it.
    pub fn new(
        runtime: Arc<Runtime>,
        compiled: &CompiledArtifact,
        params: ComponentParams,
    ) -> Result<Self, ComponentError> {
        let id: Arc<str> = Arc::from(params.id);
        let pre = crate::dataplane::imports::instantiate_pre(
            runtime.linker(),
            runtime.engine(),
            &compiled.component,
            &id,
            &params.dataplane,
        )?;
        let exports = Arc::new(ExportTable::new(runtime.engine(), &compiled.component));
        let proxy = ProxyPre::new(pre.clone()).ok();
        let outgoing_http = crate::capability::http_client::imports_outgoing_http(
            runtime.engine(),
            &compiled.component,
        );
        let max_execution_time = params
            .max_execution_time
            .unwrap_or_else(|| runtime.max_execution_time());
        let reuse = runtime.reuse_pools().pool(
            params
                .max_instance_reuse
                .unwrap_or(runtime.max_instance_reuse()),
        );
        Ok(Self {
            id,
            image_ref: params.image_ref,
            digest: compiled.digest.clone(),
            max_instances: params.max_instances.max(1),
            annotations: params.annotations,
            permits: Arc::new(Semaphore::new(params.max_instances.max(1) as usize)),
            pre,
            proxy,
            config: params.config,
            runtime,
            max_execution_time,
            claims: params.claims,
            exports,
            dataplane: params.dataplane,
            outgoing_http,
            reuse,
        })
    }

    /// A new generation with another concurrency bound and annotations (and
    /// the `limits` that are set), sharing the compiled code.
    pub fn rescaled(
        &self,
        max_instances: u32,
        annotations: BTreeMap<String, String>,
        limits: RescaleLimits,
    ) -> Self {
        Self {
            id: self.id.clone(),
            image_ref: self.image_ref.clone(),
            digest: self.digest.clone(),
            max_instances: max_instances.max(1),
            annotations,
            pre: self.pre.clone(),
            proxy: self.proxy.clone(),
            permits: Arc::new(Semaphore::new(max_instances.max(1) as usize)),
            config: self.config.clone(),
            runtime: self.runtime.clone(),
            max_execution_time: limits.max_execution_time.unwrap_or(self.max_execution_time),
            claims: self.claims.clone(),
            exports: self.exports.clone(),
            dataplane: self.dataplane.clone(),
            outgoing_http: self.outgoing_http,
            reuse: self.runtime.reuse_pools().pool(
                limits
                    .max_instance_reuse
                    .unwrap_or_else(|| self.max_instance_reuse()),
            ),
        }
    }

    /// The host's runtime this component runs in.
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Component id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Component id, shared (for span attributes: no copy per request).
    pub fn shared_id(&self) -> &Arc<str> {
        &self.id
    }
    /// Artifact reference.
    pub fn image_ref(&self) -> &str {
        &self.image_ref
    }
    /// sha256 of the artifact.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    /// Max concurrent instances.
    pub fn max_instances(&self) -> u32 {
        self.max_instances
    }
    /// Wall-clock limit of one invocation.
    pub fn max_execution_time(&self) -> Duration {
        self.max_execution_time
    }
    /// Annotations.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }
    /// Verified claims, if the artifact was signed.
    pub fn claims(&self) -> Option<&VerifiedClaims> {
        self.claims.as_ref()
    }
    /// Whether the component exports `wasi:http/incoming-handler`.
    pub fn exports_http(&self) -> bool {
        self.proxy.is_some()
    }
    /// Its exported functions.
    pub fn exports(&self) -> &ExportTable {
        &self.exports
    }
    /// The underlying pre-instance (for other exports).
    pub fn instance_pre(&self) -> &InstancePre<InvocationState> {
        &self.pre
    }

    /// Invocations currently running on this generation.
    pub fn in_flight(&self) -> usize {
        (self.max_instances as usize).saturating_sub(self.permits.available_permits())
    }

    /// Stops taking new invocations and waits up to `timeout` for in-flight ones.
    /// Returns how many were still running when it gave up (0 on a clean drain).
    pub async fn drain(&self, timeout: Duration) -> usize {
        let all = self.max_instances;
        let drained = tokio::time::timeout(timeout, self.permits.acquire_many(all)).await;
        let left = self.in_flight();
        self.permits.close();
        match drained {
            Ok(Ok(_permits)) => 0,
            _ => left,
        }
    }

    async fn acquire(&self) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), InvokeError> {
        self.acquire_within(self.max_execution_time).await
    }

    /// Takes this component's instance permit and a host instance slot,
    /// waiting at most `wait` for each.
    pub(super) async fn acquire_within(
        &self,
        wait: Duration,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), InvokeError> {
        let own = self.take_permit(&self.permits, wait).await?;
        let slots = self.runtime.instance_slots();
        if slots.available_permits() == 0 {
            // Idle reused instances and spares hold slots that calls need more.
            let evicted = self.runtime.evict_waiting_instances();
            if evicted > 0 {
                tracing::debug!(component_id = %self.id, evicted, "host instance slots exhausted: waiting instances torn down");
            }
        }
        let slot = self.take_permit(slots, wait).await.map_err(|e| match e {
            InvokeError::Busy(component_id) => InvokeError::HostFull {
                component_id,
                slots: self.runtime.pooled_instances(),
            },
            other => other,
        })?;
        Ok((own, slot))
    }

    /// One permit of `semaphore`: at once when one is free (no timer on the
    /// hot path), else waiting at most `wait`.
    pub(super) async fn take_permit(
        &self,
        semaphore: &Arc<Semaphore>,
        wait: Duration,
    ) -> Result<OwnedSemaphorePermit, InvokeError> {
        match semaphore.clone().try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(InvokeError::Stopping(self.id.to_string()));
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        tokio::time::timeout(wait, semaphore.clone().acquire_owned())
            .await
            .map_err(|_| InvokeError::Busy(self.id.to_string()))?
            .map_err(|_| InvokeError::Stopping(self.id.to_string()))
    }

    /// A fresh store for one invocation, with its deadline armed.
    pub fn new_store(&self) -> Store<InvocationState> {
        self.new_store_in(CallScope::root(self.max_execution_time))
    }

    /// A fresh store for an invocation made within `scope` (its deadline
    /// already capped by the execution limit).
    pub(super) fn new_store_in(&self, scope: CallScope) -> Store<InvocationState> {
        let config = self.config.read().map(|c| c.clone()).unwrap_or_default();
        let mut state = InvocationState::new(
            self.id.clone(),
            config,
            self.runtime.max_linear_memory_bytes(),
        );
        let budget = scope.remaining();
        state.scope = scope;
        self.arm_outgoing_http(&mut state);
        state.links = Some(self.dataplane.clone());
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(Runtime::deadline_ticks(budget));
        store.epoch_deadline_trap();
        store
    }

    /// Outgoing `wasi:http` of one invocation, if the component imports
    /// `wasi:http/outgoing-handler`: through its http-client link under the
    /// default link name, or denied when there is no http-client.
    pub(super) fn arm_outgoing_http(&self, state: &mut InvocationState) {
        if !self.outgoing_http {
            return;
        }
        state.set_outgoing_http(match self.dataplane.http_client() {
            Some(http_client) => {
                http_client.hooks(&self.id, crate::dataplane::links::default_link_name())
            }
            None => crate::capability::http_client::OutgoingHttp::denied(self.id.clone()),
        });
    }

    /// Handles one HTTP request with `wasi:http/incoming-handler`. The
    /// instance permit is held until the guest returns, including while it
    /// streams the response body, so draining waits for it. It is recorded
    /// under `span`, the ingress span of the request (`http.server.request`),
    /// which is also this invocation's span: no `component.invoke` of its
    /// own. It ends when the ingress has answered and the guest has returned.
    /// A body over the listener's limit fails the guest's read with
    /// `HTTP-request-body-size`.
    pub async fn handle_http_under(
        &self,
        req: hyper::Request<trellis_wrpc_http::limit::RequestBody>,
        span: InvocationSpan,
    ) -> Result<hyper::Response<HyperOutgoingBody>, InvokeError> {
        use trellis_wrpc_http::limit::CappedError;
        let req = req.map(|body| {
            body.map_err(|e| match e {
                CappedError::TooLarge { limit } => {
                    wasmtime_wasi_http::p2::bindings::http::types::ErrorCode::HttpRequestBodySize(
                        Some(limit),
                    )
                }
                CappedError::Body(e) => hyper_request_error(e),
            })
            .boxed_unsync()
        });
        self.run_http(req, span).await
    }

    /// [`handle_http`](Self::handle_http) for a request whose body comes
    /// from anywhere (the lattice: `wrpc:http`), with its `component.invoke`
    /// span a child of `parent` (the `lattice.serve` span).
    pub async fn handle_http_body(
        &self,
        req: hyper::Request<wasmtime_wasi_http::p2::body::HyperIncomingBody>,
        parent: &tracing::Span,
    ) -> Result<hyper::Response<HyperOutgoingBody>, InvokeError> {
        let span = spans::invoke(
            &parent.clone().into(),
            &self.id,
            HTTP_HANDLER.0,
            HTTP_HANDLER.1,
        );
        self.run_http(req, span.into()).await
    }

    /// Runs one `wasi:http/incoming-handler` invocation under `span`.
    async fn run_http(
        &self,
        req: hyper::Request<wasmtime_wasi_http::p2::body::HyperIncomingBody>,
        span: InvocationSpan,
    ) -> Result<hyper::Response<HyperOutgoingBody>, InvokeError> {
        let Some(proxy) = self.proxy.clone() else {
            return Err(InvokeError::NotExported {
                component_id: self.id.to_string(),
                export: "wasi:http/incoming-handler".into(),
            });
        };
        let metrics =
            InvocationMetrics::start(&self.id, &self.image_ref, HTTP_HANDLER.0, HTTP_HANDLER.1);
        let permits = match self.acquire().await {
            Ok(permits) => permits,
            Err(e) => {
                span.fail(&e);
                return Err(e);
            }
        };
        let trap = |e: wasmtime::Error| InvokeError::Trap {
            component_id: self.id.to_string(),
            message: format!("{e:#}"),
        };
        let mut scope = CallScope::root(self.max_execution_time);
        // Borrow the headers only: the body is not `Sync`.
        let headers = req.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        scope.trace =
            super::state::TraceContext::from_headers(header("traceparent"), header("tracestate"))
                .map(Arc::new);
        scope.span = span.clone();
        let mut store = self.new_store_in(scope);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(trap)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(trap)?;
        let deadline = self.max_execution_time;
        let id = self.id.clone();
        let task = tokio::spawn(span.instrument({
            let span = span.clone();
            async move {
                let _permits = permits;
                let call = async {
                    let proxy = proxy.instantiate_async(&mut store).await?;
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, req, out)
                        .await
                };
                let result = match tokio::time::timeout(deadline, call).await {
                    Ok(r) => r,
                    Err(_) => Err(wasmtime::Error::msg(format!(
                        "invocation exceeded the execution limit of {} ms",
                        deadline.as_millis()
                    ))),
                };
                if let Err(e) = &result {
                    tracing::warn!(
                        component_id = &*id,
                        error = format!("{e:#}"),
                        "invocation failed"
                    );
                    span.fail(&format_args!("{e:#}"));
                }
                metrics.finish(result.is_ok());
                result
            }
        }));
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => Err(InvokeError::Trap {
                component_id: self.id.to_string(),
                message: format!("guest returned HTTP error code {code:?}"),
            }),
            Err(_) => {
                let message = match task.await {
                    Ok(Ok(())) => "guest never set a response".to_string(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(e) => format!("invocation task failed: {e}"),
                };
                Err(InvokeError::Trap {
                    component_id: self.id.to_string(),
                    message,
                })
            }
        }
    }
}

/// Maps an [`InvokeError`] to the HTTP error the ingress returns.
pub fn error_status(e: &InvokeError) -> http::StatusCode {
    match e {
        InvokeError::NotExported { .. } => http::StatusCode::NOT_IMPLEMENTED,
        InvokeError::Stopping(_) | InvokeError::Busy(_) | InvokeError::HostFull { .. } => {
            http::StatusCode::SERVICE_UNAVAILABLE
        }
        InvokeError::Trap { .. } | InvokeError::Decode { .. } => {
            http::StatusCode::INTERNAL_SERVER_ERROR
        }
        InvokeError::Deadline { .. } => http::StatusCode::GATEWAY_TIMEOUT,
    }
}
