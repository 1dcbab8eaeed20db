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
    _permits: InstancePermits,
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

/// Host instance slots a spare leaves free for calls.
const SPARE_SLOT_MARGIN: usize = 8;

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

/// A local call ready to run (see `RunningComponent::prepare_local`).
struct LocalCall {
    index: wasmtime::component::ComponentExportIndex,
    /// How many results the export returns.
    results: usize,
    budget: Duration,
    /// Held for the whole call.
    _permits: InstancePermits,
    store: wasmtime::Store<super::InvocationState>,
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
        let call = async {
            let f = self
                .instantiate_export(&mut local.store, local.index, func)
                .await?;
            f.call_async(&mut local.store, params, results).await
        };
        self.finish_local(tokio::time::timeout(local.budget, call).await, local.budget)
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
            let call = async {
                let f = self
                    .instantiate_export(&mut local.store, local.index, func)
                    .await?;
                let params = params(&mut local.store)?;
                let mut results = vec![Val::Bool(false); local.results];
                f.call_async(&mut local.store, &params, &mut results).await
            };
            self.finish_local(tokio::time::timeout(local.budget, call).await, local.budget)
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
        let permits = self.acquire_within(budget).await?;
        Ok(LocalCall {
            index,
            results,
            budget,
            _permits: permits,
            store: self.new_store_in(scope),
        })
    }

    /// Instantiates the component in `store` and returns export `index`.
    async fn instantiate_export(
        &self,
        store: &mut wasmtime::Store<super::InvocationState>,
        index: wasmtime::component::ComponentExportIndex,
        func: &str,
    ) -> wasmtime::Result<wasmtime::component::Func> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let Some(f) = instance.get_func(&mut *store, index) else {
            wasmtime::bail!("export `{func}` vanished from its instance");
        };
        Ok(f)
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
    /// when the host has few instance slots left or instantiation fails
    /// (the call then instantiates as usual, and reports the failure).
    pub(crate) async fn prepare_spare(&self) -> Option<Spare> {
        let slots = self.runtime.instance_slots();
        if slots.available_permits() <= SPARE_SLOT_MARGIN {
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
        let (permits, mut store, ready) = match spare.filter(|spare| spare.is_for(self)) {
            Some(spare) => {
                let own = self.take_permit(&self.permits, budget).await?;
                let mut store = spare.store;
                store.data_mut().scope = scope;
                self.dataplane.count_served_ahead();
                ((own, spare.slot), store, Some(spare.instance))
            }
            None => (
                self.acquire_within(budget).await?,
                self.new_store_in(scope),
                None,
            ),
        };
        // The export server runs a call on its own task until the call first
        // waits (`dataplane::serve`): a guest that computes for long must
        // give the task back, so served stores yield at every epoch tick.
        yield_every_tick(&mut store, budget);
        let params = export.param_types();
        let results = export.result_types();
        let call = async {
            let instance = match ready {
                Some(instance) => instance,
                None => self
                    .pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| self.trap(e))?,
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
        *finished = Some(Finished {
            _store: store,
            _permits: permits,
        });
        result
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
