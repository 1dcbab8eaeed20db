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

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use async_nats::message::OutboundMessage;
use futures::SinkExt as _;

use crate::error::WrpcError;

#[derive(Default)]
struct State {
    queue: VecDeque<OutboundMessage>,
    waker: Option<Waker>,
    closed: bool,
}

/// Messages waiting for the pump task.
#[derive(Default)]
pub(crate) struct Outbox {
    state: Mutex<State>,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues messages for publishing, in order; never waits.
    pub(crate) fn push(
        &self,
        messages: impl IntoIterator<Item = OutboundMessage>,
    ) -> Result<(), WrpcError> {
        let waker = {
            let mut state = self.lock();
            if state.closed {
                return Err(WrpcError::Connection(
                    "the transport was dropped: cannot publish".to_string(),
                ));
            }
            state.queue.extend(messages);
            state.waker.take()
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
