//! [`Outbox`]: coalesces the small messages many call tasks publish at about
//! the same time, so the NATS connection writes them in one batch.
//!
//! Every publish through `async_nats::Client` wakes the connection task, and
//! tokio runs a task woken from a worker right after the current one (its
//! LIFO slot): when each call runs in its own task (as the host serves
//! them), every reply is then written to the socket on its own — one
//! `writev` per message here and one read per message on the server. The
//! outbox is drained by one pump task that first lets every runnable task
//! add its messages (`yield_now`) and then hands the whole batch to the
//! connection in one poll: one wake-up and one `writev` for the batch. Order
//! is kept (one FIFO), and the pump drains what is left before it exits when
//! the transport drops.
//!
//! A served call's reply skips the pump ([`Outbox::push_reply`]) when the
//! pump is parked with nothing in hand: the export task that runs the calls
//! hands it to the connection itself. That saves a task hop per call, and
//! with it the wake-up of a second worker: tokio runs at most three tasks in
//! a row from its LIFO slot, and the chain connection → call → pump →
//! connection was one too many, so every lone reply made the worker notify
//! its idle sibling (a futex wake and a context switch on each side). It
//! costs no batching: one export task serves a burst of calls in one poll,
//! so the connection task, woken by the first reply, runs after the last
//! and writes them all at once. A request comes from its caller's own task,
//! and only the pump gathers a burst of those: one skips the pump only
//! when the demux task's last round delivered a single message (a lone
//! caller answered and calling again), and only one request per such round.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use async_nats::message::OutboundMessage;
use futures::{Sink, SinkExt as _};

use crate::demux::Counters;
use crate::error::WrpcError;

#[derive(Default)]
struct State {
    queue: VecDeque<OutboundMessage>,
    /// Set while the pump is parked with nothing in hand.
    waker: Option<Waker>,
    /// The demux task's last round delivered one message, and no request
    /// skipped the pump since.
    lone_delivery: bool,
    closed: bool,
}

/// Messages waiting for the pump task.
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// The connection, for messages that skip the pump (a handle of its own:
    /// publishing through the `Sink` needs `&mut`).
    direct: Mutex<async_nats::Client>,
    counters: Arc<Counters>,
}

impl Outbox {
    pub(crate) fn new(nats: async_nats::Client, counters: Arc<Counters>) -> Self {
        Self {
            state: Mutex::default(),
            direct: Mutex::new(nats),
            counters,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues messages for publishing, in order; never waits.
    pub(crate) fn push(
        &self,
        messages: impl IntoIterator<Item = OutboundMessage>,
    ) -> Result<(), WrpcError> {
        self.publish(messages, false)
    }

    /// The demux task delivered `count` messages in its last round.
    pub(crate) fn delivered(&self, count: usize) {
        self.lock().lone_delivery = count == 1;
    }

    /// Publishes a served call's reply: straight to the connection when
    /// nothing is queued before it (see the module docs), else queued.
    pub(crate) fn push_reply(
        &self,
        messages: impl IntoIterator<Item = OutboundMessage>,
    ) -> Result<(), WrpcError> {
        self.publish(messages, true)
    }

    fn publish(
        &self,
        messages: impl IntoIterator<Item = OutboundMessage>,
        reply: bool,
    ) -> Result<(), WrpcError> {
        let waker = {
            let mut state = self.lock();
            if state.closed {
                return Err(WrpcError::Connection(
                    "the transport was dropped: cannot publish".to_string(),
                ));
            }
            let mut messages = messages.into_iter();
            let direct = reply || std::mem::take(&mut state.lone_delivery);
            // Nothing queued and nothing in the pump's hands: sending now
            // keeps the order (the state lock is held throughout).
            if direct
                && state.queue.is_empty()
                && state.waker.is_some()
                && let Ok(mut nats) = self.direct.try_lock()
            {
                send_now(&mut nats, &mut messages, &mut state.queue);
                Counters::bump(&self.counters.direct_publishes);
            }
            state.queue.extend(messages);
            if state.queue.is_empty() {
                None
            } else {
                state.waker.take()
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Lets the pump drain what is queued and exit.
    pub(crate) fn close(&self) {
        let waker = {
            let mut state = self.lock();
            state.closed = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Hands `messages` to the connection while its queue has room; the first
/// that does not fit goes to `queue` (the caller queues the rest after it).
fn send_now(
    nats: &mut async_nats::Client,
    messages: &mut impl Iterator<Item = OutboundMessage>,
    queue: &mut VecDeque<OutboundMessage>,
) {
    // Nothing waits on this context: a full connection queue sends the rest
    // through the pump, which does wait.
    let mut cx = Context::from_waker(Waker::noop());
    for message in messages.by_ref() {
        match Pin::new(&mut *nats).poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {
                if let Err(error) = Pin::new(&mut *nats).start_send(message) {
                    tracing::debug!(%error, "failed to publish a wRPC message");
                }
            }
            Poll::Ready(Err(error)) => {
                tracing::debug!(%error, "failed to publish a wRPC message");
            }
            Poll::Pending => {
                queue.push_back(message);
                return;
            }
        }
    }
}

/// Publishes every queued message until the outbox is closed and empty.
pub(crate) async fn pump(outbox: Arc<Outbox>, mut nats: async_nats::Client) {
    // Whether the last batch had company: only then is waiting for more
    // worth a round through the scheduler (a lone caller keeps its latency).
    let mut busy = false;
    loop {
        let closed = poll_fn(|cx| {
            let mut state = outbox.lock();
            if !state.queue.is_empty() {
                Poll::Ready(false)
            } else if state.closed {
                Poll::Ready(true)
            } else {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        if closed {
            return;
        }
        if busy {
            // Let the tasks that are ready now add their messages too.
            tokio::task::yield_now().await;
        }
        let batch = std::mem::take(&mut outbox.lock().queue);
        busy = batch.len() > 1;
        for message in batch {
            // `feed`: waits for room in the connection's queue, no flush
            // (the connection task writes as soon as it runs).
            if let Err(error) = nats.feed(message).await {
                tracing::debug!(%error, "failed to publish a wRPC message");
            }
        }
    }
}
