//! [`Deadline`]: a lazily armed timer every reader and writer polls when it
//! would otherwise wait, so no call outlives its budget.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// The deadline of one stream half.
pub(crate) struct Deadline {
    at: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    pub(crate) fn new(at: Instant) -> Deadline {
        Deadline { at, sleep: None }
    }

    /// `true` once the deadline has passed; otherwise registers the waker.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let at = self.at;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        matches!(sleep.as_mut().poll(cx), Poll::Ready(()))
    }
}
