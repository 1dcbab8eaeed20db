//! Calls into a component's exported functions other than HTTP: from another
//! component on this host (the in-process fast path: plain [`Val`]s, no
//! encoding) and from the lattice (wRPC-encoded, through `trellis-wrpc`).

use std::future::Future;
use std::time::Duration;

use tracing::Instrument as _;
use wasmtime::UpdateDeadline;
use wasmtime::component::Val;

use super::component::{InvokeError, RunningComponent};
use super::engine::Runtime;
use super::reuse::Reusable;
use super::state::CallScope;
use crate::observability::metrics::InvocationMetrics;
use crate::observability::spans;

/// The permits that bound a running instance: the component's own and the
/// host's instance slot.
type InstancePermits = (
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::OwnedSemaphorePermit,
);

/// What is left of a served call once it has answered: its store (the
/// instance and its pool slot) and the permits that bound it. Dropping it
/// tears the instance down (wasmtime resets the pool slot), which the
/// export server does once the reply is on its way (`dataplane::serve`),
/// not between the reply and its write. The store goes first, then the
/// permits, so a permit never outlives its slot.
pub(crate) struct Finished {
    _store: wasmtime::Store<super::InvocationState>,
    _slot: tokio::sync::OwnedSemaphorePermit,
    _own: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Finished {
    /// What is left of a call: its instance goes back to the component's
    /// reuse pool when the call succeeded and the component reuses
    /// instances (`runtime::reuse`); else it is to be torn down.
    fn after_call(
        component: &RunningComponent,
        store: wasmtime::Store<super::InvocationState>,
        (own, slot): InstancePermits,
        reuse: Option<(wasmtime::component::Instance, u32)>,
    ) -> Option<Self> {
        match reuse {
            Some((instance, uses)) if component.reuse.is_some() => {
                drop(own);
                let reusable = Reusable {
                    store,
                    instance,
                    slot,
                    uses,
                };
                component.release_instance(reusable).map(|r| Self {
                    _store: r.store,
                    _slot: r.slot,
                    _own: None,
                })
            }
            _ => Some(Self {
                _store: store,
                _slot: slot,
                _own: Some(own),
            }),
        }
    }
}

/// An instance made before its call arrived (see `dataplane::serve`), so a
/// served call does not wait for its instantiation. It is still a fresh
/// instance: none of its exports has run, and it serves exactly one call.
/// Its store has no call scope yet, and it holds a host instance slot but
/// not the component's own permit (an idle spare never keeps a call of
/// the component waiting).
pub(crate) struct Spare {
    store: wasmtime::Store<super::InvocationState>,
    instance: wasmtime::component::Instance,
    slot: tokio::sync::OwnedSemaphorePermit,
    /// The generation that made it (its permits), to tell a stale spare.
    generation: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Spare {
    /// Whether it was made by `component` and with its current config.
    fn is_for(&self, component: &RunningComponent) -> bool {
        std::sync::Arc::ptr_eq(&self.generation, &component.permits)
            && component
                .config
                .read()
                .is_ok_and(|config| std::sync::Arc::ptr_eq(&self.store.data().config, &config))
    }
}

/// What a call runs on (see `RunningComponent::ready_instance`).
struct ReadyInstance {
    permits: InstancePermits,
    store: wasmtime::Store<super::InvocationState>,
    /// Set when the instance already exists (reused, or a spare).
    instance: Option<wasmtime::component::Instance>,
    /// Calls it answered before.
    uses: u32,
}

/// A local call ready to run (see `RunningComponent::prepare_local`).
struct LocalCall {
    index: wasmtime::component::ComponentExportIndex,
    /// How many results the export returns.
    results: usize,
    budget: Duration,
    /// Held for the whole call.
    permits: InstancePermits,
    store: wasmtime::Store<super::InvocationState>,
    /// The instance, once made (or when reused).
    instance: Option<wasmtime::component::Instance>,
    /// Calls the instance answered before this one.
    uses: u32,
}

impl LocalCall {
    /// The export to call, instantiating the component first unless the
    /// call reuses an instance.
    async fn export(
        &mut self,
        component: &RunningComponent,
        func: &str,
    ) -> wasmtime::Result<wasmtime::component::Func> {
        let instance = match self.instance {
            Some(instance) => instance,
            None => {
                let made = component.pre.instantiate_async(&mut self.store).await?;
                self.instance = Some(made);
                made
            }
        };
        let Some(f) = instance.get_func(&mut self.store, self.index) else {
            wasmtime::bail!("export `{func}` vanished from its instance");
        };
        Ok(f)
    }

    /// Ends the call: its instance back to the reuse pool when the call
    /// succeeded and the component reuses instances, else torn down.
    fn end(self, component: &RunningComponent, succeeded: bool) {
        let reuse = self
            .instance
            .filter(|_| succeeded)
            .map(|i| (i, self.uses + 1));
        drop(Finished::after_call(
            component,
            self.store,
            self.permits,
            reuse,
        ));
    }
}

impl RunningComponent {
    /// Calls `instance.func` with `params`, writing into the caller's
    /// `results`. wasmtime type-checks the values against this component's
    /// own types (record fields and cases by name).
    pub async fn call_local(
        &self,
        scope: CallScope,
        instance: &str,
        func: &str,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<(), InvokeError> {
        self.observed(scope, instance, func, |scope| {
            self.call_local_in(scope, instance, func, params, results)
        })
        .await
    }

    /// Runs `call` under this invocation's `component.invoke` span (handed
    /// to it in the scope) and counts it in the invocation metrics.
    async fn observed<F>(
        &self,
        mut scope: CallScope,
        instance: &str,
        func: &str,
        call: impl FnOnce(CallScope) -> F,
    ) -> Result<(), InvokeError>
    where
        F: Future<Output = Result<(), InvokeError>>,
    {
        let span = spans::invoke(&scope.span, &self.id, instance, func);
        scope.span = span.clone().into();
        let metrics = InvocationMetrics::start(&self.id, self.image_ref(), instance, func);
        let result = call(scope).instrument(span.clone()).await;
        if let Err(e) = &result {
            spans::fail(&span, e);
        }
        metrics.finish(result.is_ok());
        result
    }

    async fn call_local_in(
        &self,
        scope: CallScope,
        instance: &str,
        func: &str,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<(), InvokeError> {
        let mut local = self.prepare_local(scope, instance, func).await?;
        let budget = local.budget;
        let call = async {
            let f = local.export(self, func).await?;
            f.call_async(&mut local.store, params, results).await
        };
        let outcome = tokio::time::timeout(budget, call).await;
        let result = self.finish_local(outcome, budget);
        local.end(self, result.is_ok());
        result
    }

    /// Calls `instance.func`, whose parameters `params` builds in the
    /// invocation's store (for host resources a capability hands the guest,
    /// e.g. the `bucket` of a `wasi:keyvalue/watcher` event). Same limits as
    /// [`Self::call_local`]: the component's execution limit and instance
    /// permits. Results are dropped.
    pub async fn call_with(
        &self,
        scope: CallScope,
        instance: &str,
        func: &str,
        params: impl FnOnce(&mut wasmtime::Store<super::InvocationState>) -> wasmtime::Result<Vec<Val>>
        + Send,
    ) -> Result<(), InvokeError> {
        self.observed(scope, instance, func, |scope| async move {
            let mut local = self.prepare_local(scope, instance, func).await?;
            let budget = local.budget;
            let call = async {
                let f = local.export(self, func).await?;
                let params = params(&mut local.store)?;
                let mut results = vec![Val::Bool(false); local.results];
                f.call_async(&mut local.store, &params, &mut results).await
            };
            let outcome = tokio::time::timeout(budget, call).await;
            let result = self.finish_local(outcome, budget);
            local.end(self, result.is_ok());
            result
        })
        .await
    }

    /// Everything a local call needs before it runs: the export, the budget
    /// (the scope's deadline capped by the execution limit), the instance
    /// permits and a fresh store.
    async fn prepare_local(
        &self,
        mut scope: CallScope,
        instance: &str,
        func: &str,
    ) -> Result<LocalCall, InvokeError> {
        let export = self
            .exports()
            .get(instance, func)
            .ok_or_else(|| self.not_exported(instance, func))?;
        let (index, results) = (export.index, export.result_types().len());
        scope.deadline = scope
            .deadline
            .min(tokio::time::Instant::now() + self.max_execution_time);
        let budget = scope.remaining();
        let ready = self.ready_instance(scope, budget, None).await?;
        Ok(LocalCall {
            index,
            results,
            budget,
            permits: ready.permits,
            store: ready.store,
            instance: ready.instance,
            uses: ready.uses,
        })
    }

    /// The outcome of a local call run under `budget`.
    fn finish_local(
        &self,
        outcome: Result<wasmtime::Result<()>, tokio::time::error::Elapsed>,
        budget: Duration,
    ) -> Result<(), InvokeError> {
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.trap(e)),
            Err(_) => Err(self.deadline(budget)),
        }
    }

    /// An instance for this component's next served call, made now; `None`
    /// when the host has few instance slots left, an answered instance
    /// waits for reuse (`runtime::reuse`) or instantiation fails
    /// (the call then instantiates as usual, and reports the failure).
    pub(crate) async fn prepare_spare(&self) -> Option<Spare> {
        let slots = self.runtime.instance_slots();
        if slots.available_permits() <= super::reuse::SLOT_MARGIN || self.idle_instances() > 0 {
            return None;
        }
        let slot = slots.clone().try_acquire_owned().ok()?;
        let mut store = self.new_store_in(CallScope::root(self.max_execution_time));
        let instance = self.pre.instantiate_async(&mut store).await.ok()?;
        Some(Spare {
            store,
            instance,
            slot,
            generation: self.permits.clone(),
        })
    }

    /// Runs one call that arrived over the lattice: decodes the parameters
    /// from `rx`, calls, encodes the results to `tx`. Its `component.invoke`
    /// span is a child of `parent` (the `lattice.serve` span). Returns the
    /// instance to tear down, if one was made, besides the outcome.
    pub(crate) async fn serve_call(
        &self,
        cx: trellis_wrpc::ServeContext,
        instance: &str,
        func: &str,
        (tx, rx): (trellis_wrpc::ResultWriter, trellis_wrpc::ParamReader),
        spare: Option<Spare>,
        parent: &tracing::Span,
    ) -> (Result<(), InvokeError>, Option<Finished>) {
        let span = spans::invoke(&parent.clone().into(), &self.id, instance, func);
        let metrics = InvocationMetrics::start(&self.id, self.image_ref(), instance, func);
        let mut finished = None;
        let result = self
            .serve_call_in(
                cx,
                instance,
                func,
                (tx, rx, spare),
                span.clone(),
                &mut finished,
            )
            .instrument(span.clone())
            .await;
        if let Err(e) = &result {
            spans::fail(&span, e);
        }
        metrics.finish(result.is_ok());
        (result, finished)
    }

    async fn serve_call_in(
        &self,
        cx: trellis_wrpc::ServeContext,
        instance: &str,
        func: &str,
        (tx, rx, spare): (
            trellis_wrpc::ResultWriter,
            trellis_wrpc::ParamReader,
            Option<Spare>,
        ),
        span: tracing::Span,
        finished: &mut Option<Finished>,
    ) -> Result<(), InvokeError> {
        let export = self
            .exports()
            .get(instance, func)
            .ok_or_else(|| self.not_exported(instance, func))?;
        let now = tokio::time::Instant::now();
        let scope = CallScope {
            source_id: cx.source_id().map(std::sync::Arc::from),
            link_name: Some(std::sync::Arc::from(cx.link_name())),
            deadline: cx.deadline.min(now + self.max_execution_time),
            depth: 0,
            trace: crate::runtime::state::TraceContext::from_headers(
                cx.header(trellis_wrpc::headers::TRACEPARENT),
                cx.header(trellis_wrpc::headers::TRACESTATE),
            )
            .map(std::sync::Arc::new),
            span: span.into(),
        };
        let budget = scope.remaining();
        if budget.is_zero() {
            return Err(self.deadline(budget));
        }
        let ReadyInstance {
            permits,
            mut store,
            instance: mut ready,
            uses,
        } = self.ready_instance(scope, budget, spare).await?;
        // The export server runs a call on its own task until the call first
        // waits (`dataplane::serve`): a guest that computes for long must
        // give the task back, so served stores yield at every epoch tick.
        yield_every_tick(&mut store, budget);
        let params = export.param_types();
        let results = export.result_types();
        let call = async {
            let instance = match ready {
                Some(instance) => instance,
                None => {
                    let made = self
                        .pre
                        .instantiate_async(&mut store)
                        .await
                        .map_err(|e| self.trap(e))?;
                    ready = Some(made);
                    made
                }
            };
            let Some(f) = instance.get_func(&mut store, export.index) else {
                return Err(self.not_exported(&export.instance, &export.func));
            };
            wrpc_runtime_wasmtime::call(
                &mut store,
                rx,
                tx,
                &[],
                &Default::default(),
                &[],
                params.iter(),
                results,
                f,
            )
            .await
            .map_err(|e| match e {
                wrpc_runtime_wasmtime::CallError::Decode(e) => InvokeError::Decode {
                    component_id: self.id.to_string(),
                    message: format!("{e:#}"),
                },
                other => InvokeError::Trap {
                    component_id: self.id.to_string(),
                    message: other.to_string(),
                },
            })
        };
        let result = match tokio::time::timeout(budget, call).await {
            Ok(r) => r,
            Err(_) => Err(self.deadline(budget)),
        };
        let reuse = ready.filter(|_| result.is_ok()).map(|i| (i, uses + 1));
        *finished = Finished::after_call(self, store, permits, reuse);
        result
    }

    /// The permits and store of a call made within `scope`, waiting at most
    /// `budget` for permits: an idle instance when the component reuses
    /// them, else `spare` when it is still good, else a fresh store (the
    /// call instantiates).
    async fn ready_instance(
        &self,
        scope: CallScope,
        budget: Duration,
        spare: Option<Spare>,
    ) -> Result<ReadyInstance, InvokeError> {
        let scope = match self.reuse_instance(scope) {
            Ok(reusable) => {
                let own = self.take_permit(&self.permits, budget).await?;
                return Ok(ReadyInstance {
                    permits: (own, reusable.slot),
                    store: reusable.store,
                    instance: Some(reusable.instance),
                    uses: reusable.uses,
                });
            }
            Err(scope) => scope,
        };
        if let Some(spare) = spare.filter(|spare| spare.is_for(self)) {
            let own = self.take_permit(&self.permits, budget).await?;
            let mut store = spare.store;
            store.data_mut().scope = scope;
            self.dataplane.count_served_ahead();
            return Ok(ReadyInstance {
                permits: (own, spare.slot),
                store,
                instance: Some(spare.instance),
                uses: 0,
            });
        }
        Ok(ReadyInstance {
            permits: self.acquire_within(budget).await?,
            store: self.new_store_in(scope),
            instance: None,
            uses: 0,
        })
    }

    fn not_exported(&self, instance: &str, func: &str) -> InvokeError {
        InvokeError::NotExported {
            component_id: self.id.to_string(),
            export: if instance.is_empty() {
                func.to_string()
            } else {
                format!("{instance}.{func}")
            },
        }
    }

    fn trap(&self, e: wasmtime::Error) -> InvokeError {
        InvokeError::Trap {
            component_id: self.id.to_string(),
            message: format!("{e:#}"),
        }
    }

    fn deadline(&self, budget: std::time::Duration) -> InvokeError {
        InvokeError::Deadline {
            component_id: self.id.to_string(),
            ms: budget.as_millis() as u64,
        }
    }
}

/// Makes `store` yield to the executor at every epoch tick, and trap (as
/// `epoch_deadline_trap` would) once `budget` has run out. Without yields a
/// guest that computes for seconds would hold the task that polls it for
/// that long.
fn yield_every_tick(store: &mut wasmtime::Store<super::state::InvocationState>, budget: Duration) {
    let mut ticks_left = Runtime::deadline_ticks(budget);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        ticks_left = ticks_left.saturating_sub(1);
        Ok(if ticks_left == 0 {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
}
