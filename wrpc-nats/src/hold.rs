//! [`Hold`]: a request whose function has async params, held back briefly
//! so that nested params that are already complete (an empty request body,
//! ready trailers) travel inline in the request and the call takes the
//! 2-message compact framing.
//!
//! wRPC 0.0.1 encoders always send a `stream` or `future` param as
//! *pending* and write its bytes afterwards through `index(path)` of the
//! params writer — even when the value is already complete. While the hold
//! lasts, those writes are buffered per path. The request goes out:
//!
//! - **inline** (`trellis-framing: 2`, one `trellis-nested` header per
//!   stream, see [`crate::nested`]) once the root writer was shut down and
//!   every declared nested path was closed (shut down or dropped), or every
//!   writer of the call dropped;
//! - **standard** (no Trellis framing) when the window
//!   ([`crate::TransportOptions::nested_inline_wait`]) elapses, the buffered
//!   bytes exceed [`crate::TransportOptions::max_inline_nested_bytes`], the
//!   root is written to, or the inline request would not fit `max_payload`.
//!   A replay task then sends what was buffered on `{R_s}.params.{path}`
//!   once the handshake arrives, and only then lets the writers go on
//!   (so the bytes of a path stay in order).
//!
//! A server that answers an inline request with the standard handshake (an
//! upstream server ignores `trellis-*` headers) gets the same bytes on the
//! standard subjects: the demux sends them when the handshake arrives
//! ([`crate::demux::Replay`]).
//!
//! The window is enforced by the result reader while it waits (as
//! `invoke_values` does, concurrently with the param writers) and by every
//! write, so a slow upload is delayed by at most the window.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use async_nats::Subject;
use async_nats::message::OutboundMessage;
use bytes::{Bytes, BytesMut};
use tokio::time::{Instant, Sleep};

use crate::demux::{CallGuard, Counters, Replay, Resolution};
use crate::error::WrpcError;
use crate::subject::indexed;
use crate::writer::{outbound, publish_detached};
use crate::{Inner, headers, nested};

/// Where a held call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The request is held; param writes are buffered.
    Holding,
    /// Published with every nested param inline.
    Inline,
    /// Published without them; the replay task sends the buffered bytes once
    /// the handshake arrives. Writers wait.
    Replaying,
    /// Replay done (or not needed): writers go on by themselves.
    Standard,
}

/// The bytes written to one path while held.
struct HeldStream {
    path: Vec<usize>,
    data: BytesMut,
    /// Shut down or dropped: the stream is complete.
    closed: bool,
    /// Its end message went out (replay).
    end_sent: bool,
}

struct HoldState {
    phase: Phase,
    /// The request, until published.
    request: Option<OutboundMessage>,
    /// Nested paths the function declares, and whether each was closed.
    declared: Vec<(Vec<usize>, bool)>,
    root_shut: bool,
    /// Writer handles of the call still alive while holding.
    live: usize,
    streams: Vec<HeldStream>,
    bytes: usize,
    /// Writers waiting for the replay.
    waiters: Vec<Waker>,
}

impl HoldState {
    /// The buffer of `path`, created on first use.
    fn stream(&mut self, path: &[usize]) -> Option<&mut HeldStream> {
        if !self.streams.iter().any(|s| s.path == path) {
            self.streams.push(HeldStream {
                path: path.to_vec(),
                data: BytesMut::new(),
                closed: false,
                end_sent: false,
            });
        }
        self.streams.iter_mut().find(|s| s.path == path)
    }

    fn close_declared(&mut self, path: &[usize]) {
        for (declared, closed) in &mut self.declared {
            if declared == path {
                *closed = true;
            }
        }
    }

    fn inline_ready(&self) -> bool {
        self.live == 0
            || (self.root_shut
                && self.declared.iter().all(|(_, closed)| *closed)
                && self.streams.iter().all(|s| s.closed || s.data.is_empty()))
    }
}

/// What a held writer's operation came to.
pub(crate) enum Held {
    /// The bytes were buffered.
    Buffered(usize),
    /// The stream was shut down while held.
    Closed,
    /// The request went out: the writer goes on as a standard one.
    Released,
}

/// One held call, shared by its param writers and its result reader.
pub(crate) struct Hold {
    call: Arc<CallGuard>,
    inner: Arc<Inner>,
    window_end: Instant,
    limit: usize,
    state: Mutex<HoldState>,
}

impl Hold {
    /// Holds `request` of `call`, whose function declares the nested
    /// `declared` paths. The root writer counts as the first live writer.
    pub(crate) fn new(
        call: Arc<CallGuard>,
        inner: Arc<Inner>,
        request: OutboundMessage,
        declared: &[Vec<usize>],
    ) -> Arc<Hold> {
        let window_end = Instant::now() + inner.options.nested_inline_wait;
        let limit = inner.options.max_inline_nested_bytes;
        Arc::new(Hold {
            call,
            inner,
            window_end,
            limit,
            state: Mutex::new(HoldState {
                phase: Phase::Holding,
                request: Some(request),
                declared: declared.iter().map(|p| (p.clone(), false)).collect(),
                root_shut: false,
                live: 1,
                streams: Vec::new(),
                bytes: 0,
                waiters: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HoldState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new writer (from `index`) if the call is still held.
    pub(crate) fn add_writer(&self) -> bool {
        let mut state = self.lock();
        if state.phase == Phase::Holding {
            state.live += 1;
            true
        } else {
            false
        }
    }

    /// `Ready(Held::Released)` once writers may go on, `Pending` during the
    /// replay.
    fn released(state: &mut HoldState, cx: &mut Context<'_>) -> Poll<Held> {
        if state.phase == Phase::Replaying {
            if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                state.waiters.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        Poll::Ready(Held::Released)
    }

    /// Whether the writer may go on (`Ready(true)`), is still held
    /// (`Ready(false)`) or waits for the replay (`Pending`).
    pub(crate) fn poll_released(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut state = self.lock();
        if state.phase == Phase::Holding {
            return Poll::Ready(false);
        }
        Self::released(&mut state, cx).map(|_| true)
    }

    /// Buffers `buf` for `path`, or releases the request when the window or
    /// the limit is exceeded.
    pub(crate) fn poll_write(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        path: &[usize],
        buf: &[u8],
    ) -> Poll<Held> {
        let mut state = self.lock();
        if state.phase == Phase::Holding {
            let over = state.bytes.saturating_add(buf.len()) > self.limit;
            let root = path.is_empty() && !buf.is_empty();
            if over || root || Instant::now() >= self.window_end {
                self.release_standard(&mut state);
            } else {
                state.bytes += buf.len();
                if let Some(stream) = state.stream(path) {
                    stream.data.extend_from_slice(buf);
                }
                return Poll::Ready(Held::Buffered(buf.len()));
            }
        }
        Self::released(&mut state, cx)
    }

    /// Closes `path` while held (and publishes inline if that completes
    /// the call).
    pub(crate) fn poll_shutdown(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        path: &[usize],
    ) -> Poll<Held> {
        let mut state = self.lock();
        if state.phase != Phase::Holding {
            return Self::released(&mut state, cx);
        }
        if path.is_empty() {
            state.root_shut = true;
        } else {
            state.close_declared(path);
        }
        if let Some(stream) = state.stream(path) {
            stream.closed = true;
        }
        self.maybe_release_inline(&mut state);
        Poll::Ready(Held::Closed)
    }

    /// A held writer of `path` dropped (`shut`: after its shutdown).
    pub(crate) fn drop_writer(self: &Arc<Self>, path: &[usize], shut: bool) {
        let mut state = self.lock();
        match state.phase {
            Phase::Holding => {
                state.live = state.live.saturating_sub(1);
                if !shut && !path.is_empty() {
                    state.close_declared(path);
                    if let Some(stream) = state.streams.iter_mut().find(|s| s.path == path) {
                        stream.closed = true;
                    }
                }
                self.maybe_release_inline(&mut state);
            }
            Phase::Replaying => {
                if let Some(stream) = state.streams.iter_mut().find(|s| s.path == path) {
                    stream.closed = true;
                }
            }
            Phase::Standard => {
                // Replayed but never written again: its end is still due.
                let Some(stream) = state
                    .streams
                    .iter_mut()
                    .find(|s| s.path == path && !s.end_sent)
                else {
                    return;
                };
                stream.end_sent = true;
                drop(state);
                if let Resolution::Standard(server) = self.call.slot.resolved() {
                    let subject = params_subject(&server, path);
                    publish_detached(&self.inner.nats, outbound(&subject, Bytes::new()));
                }
            }
            Phase::Inline => {}
        }
    }

    /// For the result reader: releases the request (standard) once the
    /// window elapsed. `true` when the call is no longer held.
    pub(crate) fn poll_window(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        sleep: &mut Option<Pin<Box<Sleep>>>,
    ) -> bool {
        if self.lock().phase != Phase::Holding {
            return true;
        }
        let at = self.window_end;
        let sleep = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if sleep.as_mut().poll(cx).is_pending() {
            return false;
        }
        let mut state = self.lock();
        if state.phase == Phase::Holding {
            self.release_standard(&mut state);
        }
        true
    }

    fn maybe_release_inline(self: &Arc<Self>, state: &mut HoldState) {
        if state.phase == Phase::Holding && state.inline_ready() {
            self.release_inline(state);
        }
    }

    /// Publishes the request with every nested stream in headers, or
    /// standard if it would not fit.
    fn release_inline(self: &Arc<Self>, state: &mut HoldState) {
        let Some(mut request) = state.request.take() else {
            return;
        };
        let max_payload = self.inner.nats.max_payload();
        let mut hdrs = request.headers.take().unwrap_or_default();
        let framing_len = headers::FRAMING.len() + b": 2\r\n".len();
        let mut entries: Vec<(&[usize], &[u8])> = state
            .streams
            .iter()
            .filter(|s| !s.path.is_empty())
            .map(|s| (s.path.as_slice(), &s.data[..]))
            .collect();
        for (path, _) in &state.declared {
            if !entries.iter().any(|(p, _)| p == path) {
                entries.push((path.as_slice(), &[]));
            }
        }
        let size = request.payload.len()
            + headers::wire_len(&hdrs)
            + framing_len
            + entries
                .iter()
                .map(|(p, d)| nested::wire_len(p, d.len()))
                .sum::<usize>();
        if size > max_payload {
            request.headers = Some(hdrs);
            state.request = Some(request);
            self.release_standard(state);
            return;
        }
        hdrs.insert(headers::name(headers::FRAMING), headers::WITH_NESTED);
        for (path, data) in entries {
            hdrs.append(headers::name(headers::NESTED), nested::encode(path, data));
        }
        request.headers = Some(hdrs);
        // In case the server answers with the standard handshake.
        let chunk = max_payload.max(1);
        let replay = state
            .streams
            .iter_mut()
            .filter(|s| s.closed)
            .map(|s| Replay {
                path: s.path.clone(),
                chunks: split(s.data.split().freeze(), chunk),
            })
            .collect();
        self.call.slot.set_replay(replay);
        state.phase = Phase::Inline;
        Counters::bump(&self.inner.counters.inline_nested_calls);
        if let Err(error) = self.inner.outbox.push([request]) {
            self.call.slot.fail(error);
        }
    }

    /// Publishes the request without the nested params; a replay task sends
    /// what was buffered once the handshake arrives.
    fn release_standard(self: &Arc<Self>, state: &mut HoldState) {
        let Some(request) = state.request.take() else {
            return;
        };
        Counters::bump(&self.inner.counters.held_fallbacks);
        if let Err(error) = self.inner.outbox.push([request]) {
            state.phase = Phase::Standard;
            self.call.slot.fail(error);
            return;
        }
        if state.streams.is_empty() {
            state.phase = Phase::Standard;
            return;
        }
        state.phase = Phase::Replaying;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(replay(Arc::clone(self)));
            }
            Err(_) => {
                state.phase = Phase::Standard;
                self.call.slot.fail(WrpcError::Connection(
                    "no tokio runtime to send the buffered params on".to_string(),
                ));
            }
        }
    }
}

/// `{R_s}.params[.{path}]`.
fn params_subject(server: &Subject, path: &[usize]) -> Subject {
    Subject::from(indexed(&format!("{server}.params"), path))
}

/// `data` cut into messages of at most `chunk` bytes (none when empty).
pub(crate) fn split(mut data: Bytes, chunk: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    while !data.is_empty() {
        out.push(data.split_to(chunk.min(data.len())));
    }
    out
}

/// Sends the bytes buffered while held once the standard handshake
/// arrives, then lets the writers go on.
async fn replay(hold: Arc<Hold>) {
    let slot = &hold.call.slot;
    let resolution =
        tokio::time::timeout_at(slot.deadline, poll_fn(|cx| slot.poll_resolution(cx))).await;
    if let Ok(Ok(Resolution::Standard(server))) = resolution {
        let buffered: Vec<(Vec<usize>, Bytes, bool)> = {
            let mut state = hold.lock();
            state
                .streams
                .iter_mut()
                .map(|s| {
                    s.end_sent = s.closed;
                    (s.path.clone(), s.data.split().freeze(), s.closed)
                })
                .collect()
        };
        let chunk = hold.inner.nats.max_payload().max(1);
        for (path, data, end) in buffered {
            let subject = params_subject(&server, &path);
            let mut messages = split(data, chunk);
            if end {
                messages.push(Bytes::new());
            }
            for payload in messages {
                if let Err(error) = hold.inner.nats.publish(subject.clone(), payload).await {
                    slot.fail(crate::writer::connection_error(error));
                }
            }
        }
        // Writers dropped during the replay: their ends.
        let (ends, waiters) = {
            let mut state = hold.lock();
            let ends: Vec<Vec<usize>> = state
                .streams
                .iter_mut()
                .filter(|s| s.closed && !s.end_sent)
                .map(|s| {
                    s.end_sent = true;
                    s.path.clone()
                })
                .collect();
            state.phase = Phase::Standard;
            (ends, std::mem::take(&mut state.waiters))
        };
        for path in ends {
            let subject = params_subject(&server, &path);
            if let Err(error) = hold.inner.nats.publish(subject, Bytes::new()).await {
                slot.fail(crate::writer::connection_error(error));
            }
        }
        waiters.into_iter().for_each(Waker::wake);
        return;
    }
    // Compact answer, failure or timeout: the writers see it themselves.
    let waiters = {
        let mut state = hold.lock();
        state.phase = Phase::Standard;
        std::mem::take(&mut state.waiters)
    };
    waiters.into_iter().for_each(Waker::wake);
}
