//! Offers a running component's exports on the lattice: one queue
//! subscription per exported function on
//! `{lattice}.{id}.wrpc.0.0.1.{instance}.{func}`, group `{lattice}.{id}`, so
//! NATS spreads calls over every host that runs the component. Each call runs
//! on the component's *current* generation, so updates need no resubscribe.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::task::JoinHandle;
use tracing::Instrument as _;
use wrpc_transport::Serve as _;

use super::DataPlane;
use crate::observability::spans;
use crate::runtime::component::InvokeError;
use crate::runtime::state::TraceContext;
use crate::runtime::{Finished, RunningComponent, Spare, SpareHolder};

/// The `lattice.serve` span of one incoming call, a child of the caller's
/// span named by the message's `traceparent`.
pub(crate) fn served_span(
    cx: &trellis_wrpc::ServeContext,
    id: &str,
    instance: &str,
    func: &str,
) -> tracing::Span {
    if !crate::observability::traces_enabled() {
        return tracing::Span::none();
    }
    let trace = TraceContext::from_headers(
        cx.header(trellis_wrpc::headers::TRACEPARENT),
        cx.header(trellis_wrpc::headers::TRACESTATE),
    );
    spans::lattice_serve(
        spans::ServedCall {
            component_id: id,
            source_id: cx.source_id(),
            link_name: cx.link_name(),
            interface: instance,
            function: func,
        },
        trace.as_ref(),
    )
}

/// The subscriptions of one component; dropping it unsubscribes.
pub(crate) struct ExportServer {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ExportServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl ExportServer {
    /// Subscribes every lattice-callable export of `component`.
    pub(crate) async fn start(
        dp: Arc<DataPlane>,
        transport: &trellis_wrpc::Transport,
        component: &RunningComponent,
    ) -> Self {
        let id: Arc<str> = Arc::from(component.id());
        let prefix = format!("{}.{id}", dp.lattice());
        let server = transport.server(prefix.clone(), Some(prefix));
        let mut tasks = Vec::new();
        for export in component.exports().iter() {
            if !export.value_only {
                tracing::debug!(component_id = %id, instance = %export.instance, func = %export.func, "export passes resources or streams; not offered on the lattice");
                continue;
            }
            let no_paths: [Box<[Option<usize>]>; 0] = [];
            let stream = match server.serve(&export.instance, &export.func, no_paths).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(component_id = %id, instance = %export.instance, func = %export.func, error = format!("{e:#}"), "cannot offer export on the lattice");
                    continue;
                }
            };
            let dp = dp.clone();
            let id = id.clone();
            let instance: Arc<str> = Arc::from(export.instance.as_str());
            let func: Arc<str> = Arc::from(export.func.as_str());
            // A component that reuses instances has an answered one ready
            // for its next call: no spares.
            let spares = component.max_instance_reuse() <= 1;
            tasks.push(tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                let mut idle = IdleWork {
                    spares,
                    ..IdleWork::default()
                };
                while let Some(item) = idle.next_call(stream.as_mut(), &dp, &id).await {
                    let (cx, tx, rx) = match item {
                        Ok(item) => item,
                        Err(e) => {
                            tracing::debug!(component_id = %id, error = format!("{e:#}"), "malformed lattice call dropped");
                            continue;
                        }
                    };
                    let dp = dp.clone();
                    let id = id.clone();
                    let instance = instance.clone();
                    let func = func.clone();
                    let span = served_span(&cx, &id, &instance, &func);
                    let spare = idle.take_spare();
                    let task = async move {
                        let reporter = tx.reporter();
                        let span = tracing::Span::current();
                        let Some(current) = dp.current(&id) else {
                            let message = format!("component `{id}` no longer runs on this host");
                            spans::fail(&span, &message);
                            reporter.fail(trellis_wrpc::RemoteErrorKind::Stopping, message);
                            return None;
                        };
                        if let Some(policy) = dp.policy()
                            && let Err(denial) =
                                policy.check_invocation(&current, &instance, &func).await
                        {
                            spans::fail(&span, &denial);
                            reporter.fail(
                                trellis_wrpc::RemoteErrorKind::Internal,
                                denial.to_string(),
                            );
                            return None;
                        }
                        dp.count_served();
                        let (result, done) = current
                            .serve_call(cx, &instance, &func, (tx, rx), spare, &span)
                            .await;
                        if let Err(e) = result {
                            spans::fail(&span, &e);
                            reporter.fail(remote_kind(&e), e.to_string());
                        }
                        done
                    };
                    idle.started(start_call(Box::pin(task.instrument(span))));
                }
            }));
        }
        // `wasi:http/incoming-handler` uses resources: it is offered on its
        // wire form, `wrpc:http/incoming-handler@0.1.0`, by the HTTP capability.
        if component.exports_http()
            && let Some(task) =
                crate::capability::http_lattice::serve_incoming(dp.clone(), &server, id.clone())
                    .await
        {
            tasks.push(task);
        }
        // `wasi:keyvalue/watcher` passes a `bucket` resource: it is offered
        // on its wire form, `wrpc:keyvalue/watcher@0.2.0-draft`, by the
        // keyvalue capability.
        if crate::capability::keyvalue::exports_watcher(component.exports())
            && let Some(task) =
                crate::capability::keyvalue::serve_watcher(dp.clone(), &server, id.clone()).await
        {
            tasks.push(task);
        }
        Self { tasks }
    }
}

/// At most this many answered calls wait for their teardown: an export
/// that never runs out of calls tears them down in batches of this size.
const MAX_FINISHED: usize = 16;

/// What an export server does when no call is ready, so that it is not
/// done between a call's arrival and its reply being written:
/// - tear down the instances of answered calls (dropping a store: wasmtime
///   resets the pool slot);
/// - make the instance of the next call (a [`Spare`]), once the export has
///   been called: the next call does not wait for its instantiation.
///
/// Both wait until `yield_now` has let every other ready task run, the
/// connection task (which writes the replies) included.
#[derive(Default)]
struct IdleWork {
    finished: Vec<Finished>,
    /// Where this export's spare waits (made with the first one): the host
    /// can tear it down when a call needs its slot (`runtime::spares`).
    spare: Option<Arc<SpareHolder>>,
    /// A call took the spare (or found none) since the last idle round.
    want_spare: bool,
    /// Whether this export makes spares at all.
    spares: bool,
}

/// What the export's subscription had.
enum Next<T> {
    Call(T),
    /// Nothing ready now.
    Idle,
    End,
}

impl IdleWork {
    /// The export's next call; `None` once its subscription ends.
    async fn next_call<S: futures::Stream + ?Sized>(
        &mut self,
        mut stream: Pin<&mut S>,
        dp: &DataPlane,
        id: &str,
    ) -> Option<S::Item> {
        loop {
            let work = !self.finished.is_empty() || self.want_spare;
            let next = std::future::poll_fn(|cx| match stream.as_mut().poll_next(cx) {
                Poll::Pending if work => Poll::Ready(Next::Idle),
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(item)) => Poll::Ready(Next::Call(item)),
                Poll::Ready(None) => Poll::Ready(Next::End),
            })
            .await;
            match next {
                Next::Call(item) => return Some(item),
                Next::End => return None,
                Next::Idle => {
                    tokio::task::yield_now().await;
                    self.finished.clear();
                    if std::mem::take(&mut self.want_spare)
                        && self.spare.as_ref().is_none_or(|held| held.is_empty())
                        && let Some(current) = dp.current(id)
                        && let Some(spare) = current.prepare_spare().await
                    {
                        let held = self
                            .spare
                            .get_or_insert_with(|| current.runtime().spares().holder());
                        // Handed back only if one appeared meanwhile: dropped.
                        drop(held.put(spare));
                    }
                }
            }
        }
    }

    /// The spare for the call about to start.
    fn take_spare(&mut self) -> Option<Spare> {
        self.want_spare = self.spares;
        self.spare.as_ref()?.take()
    }

    fn started(&mut self, started: Started) {
        match started {
            Started::Done(Some(done)) => {
                self.finished.push(done);
                if self.finished.len() >= MAX_FINISHED {
                    self.finished.clear();
                }
            }
            Started::Done(None) => {}
            // It may wait for an instance permit that an answered call
            // still holds: release them now.
            Started::Spawned => self.finished.clear(),
        }
    }
}

/// How [`start_call`] left a call.
enum Started {
    /// It finished in its first poll, leaving this instance to tear down.
    Done(Option<Finished>),
    /// It waits, on a task of its own.
    Spawned,
}

/// Runs one served call on the export server's own task until it first has
/// to wait, and only then gives it a task of its own.
///
/// A call that needs nothing from outside (instantiate, run, encode, queue
/// the reply: the common case) finishes in that first poll, so it costs no
/// `tokio::spawn`, no copy of its (large) future into a task and no wake-up
/// of another worker. A call that waits (for an instance permit, on a call
/// of its own) or computes for long (served stores yield at every epoch
/// tick, `runtime::calls`) is moved to its own task, so one slow call holds
/// the export's other calls back by at most one tick; that task tears its
/// instance down itself when done.
fn start_call(mut call: Pin<Box<dyn Future<Output = Option<Finished>> + Send>>) -> Started {
    // A no-op waker: if the call is pending, the spawned task polls it
    // again at once, and every future re-registers the waker it is polled
    // with.
    let mut cx = Context::from_waker(Waker::noop());
    match call.as_mut().poll(&mut cx) {
        Poll::Ready(done) => Started::Done(done),
        Poll::Pending => {
            tokio::spawn(call);
            Started::Spawned
        }
    }
}

/// The wire kind for an invocation failure.
pub(crate) fn remote_kind(e: &InvokeError) -> trellis_wrpc::RemoteErrorKind {
    use trellis_wrpc::RemoteErrorKind as K;
    match e {
        InvokeError::NotExported { .. } => K::NotExported,
        InvokeError::Stopping(_) => K::Stopping,
        InvokeError::Busy(_) | InvokeError::HostFull { .. } => K::Busy,
        InvokeError::Trap { .. } => K::Trap,
        InvokeError::Decode { .. } => K::Decode,
        InvokeError::Deadline { .. } => K::Deadline,
    }
}
