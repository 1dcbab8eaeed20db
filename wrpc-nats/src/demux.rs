//! The call table and the demux task.
//!
//! One `{inbox}.>` subscription per transport; every message is routed to
//! the [`CallSlot`] of its call id by a task that never awaits anything but
//! the subscription: a slot is a mutex-protected set of queues plus wakers,
//! so one slow caller cannot stall the others. Slots are removed
//! synchronously when the last handle of a call drops ([`CallGuard`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_nats::message::OutboundMessage;
use async_nats::{StatusCode, Subject};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use tokio::time::Instant;

use crate::error::{RemoteErrorKind, WrpcError};
use crate::headers;
use crate::outbox::Outbox;
use crate::subject::{decode_id, indexed, parse_stream_path};
use crate::writer::outbound;

/// Number of independently locked shards of the call table.
const SHARDS: usize = 16;

/// Counters shared by the demux task, clients and servers.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub compact_calls: AtomicU64,
    pub standard_calls: AtomicU64,
    pub late_messages: AtomicU64,
    pub served_compact: AtomicU64,
    pub served_standard: AtomicU64,
    pub dropped_requests: AtomicU64,
    pub error_replies: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub inline_nested_calls: AtomicU64,
    pub held_fallbacks: AtomicU64,
    pub served_inline_nested: AtomicU64,
    pub direct_publishes: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Which side of a call a slot belongs to, i.e. which stream word it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Caller: `R_c` (handshake or compact reply) and `R_c.results…`.
    Client,
    /// Standard server: `R_s.params…`.
    Server,
}

impl Role {
    fn word(self) -> &'static str {
        match self {
            Role::Client => "results",
            Role::Server => "params",
        }
    }
}

/// How the server answered the request (client slots only).
#[derive(Clone, Debug)]
pub(crate) enum Resolution {
    /// Nothing yet.
    Pending,
    /// Compact reply: results in one message (or continued), no params to send.
    Compact,
    /// Standard handshake: params go to `{R_s}.params…`.
    Standard(Subject),
}

/// A param stream a held request had sent inline (see [`crate::hold`]), to
/// send on `{R_s}.params.{path}` if the server answers with the standard
/// handshake anyway: its bytes, then the end message.
pub(crate) struct Replay {
    pub path: Vec<usize>,
    /// The bytes, cut at `max_payload`.
    pub chunks: Vec<Bytes>,
}

/// What the demux did with a message.
enum Delivery {
    Routed,
    Compact,
    Standard,
    Rejected,
}

/// One item of a stream queue.
enum Item {
    Data(Bytes),
    End,
    Error(WrpcError),
}

#[derive(Default)]
struct StreamQueue {
    items: VecDeque<Item>,
    waker: Option<Waker>,
}

struct SlotState {
    resolution: Resolution,
    failure: Option<WrpcError>,
    /// The root stream (path `[]`): every call has one, so it is not hashed.
    root: StreamQueue,
    /// Nested streams, created as they are read or arrive.
    nested: HashMap<Vec<usize>, StreamQueue>,
    waiters: Vec<Waker>,
    buffered: usize,
    /// Streams to send if the answer is a standard handshake.
    replay: Vec<Replay>,
}

impl SlotState {
    fn queue(&mut self, path: &[usize]) -> &mut StreamQueue {
        if path.is_empty() {
            return &mut self.root;
        }
        // Nested streams are rare: the key is allocated per read.
        self.nested.entry(path.to_vec()).or_default()
    }
}

/// Per-call routing state.
pub(crate) struct CallSlot {
    role: Role,
    /// The invocation subject, for error messages.
    pub subject: Subject,
    pub deadline: Instant,
    pub timeout: Duration,
    budget: usize,
    state: Mutex<SlotState>,
}

/// Result of reading a stream.
pub(crate) enum Read {
    /// Bytes copied into the buffer.
    Copied,
    /// End of stream.
    Eof,
}

impl CallSlot {
    pub(crate) fn new(
        role: Role,
        subject: Subject,
        deadline: Instant,
        timeout: Duration,
        budget: usize,
    ) -> CallSlot {
        CallSlot {
            role,
            subject,
            deadline,
            timeout,
            budget,
            state: Mutex::new(SlotState {
                resolution: Resolution::Pending,
                failure: None,
                root: StreamQueue::default(),
                nested: HashMap::new(),
                waiters: Vec::new(),
                buffered: 0,
                replay: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // A poisoned lock only means another thread panicked while holding
        // it; the queues themselves are still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The timeout error of this call.
    pub(crate) fn timeout_error(&self) -> WrpcError {
        WrpcError::Timeout {
            subject: self.subject.to_string(),
            after: self.timeout,
        }
    }

    /// Fails every reader and writer of the call.
    pub(crate) fn fail(&self, error: WrpcError) {
        let wakers = {
            let mut state = self.lock();
            if state.failure.is_none() {
                state.failure = Some(error);
            }
            take_all_wakers(&mut state)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Sets the streams to send after a standard handshake.
    pub(crate) fn set_replay(&self, replay: Vec<Replay>) {
        self.lock().replay = replay;
    }

    /// The server's first answer so far (client slots).
    pub(crate) fn resolved(&self) -> Resolution {
        self.lock().resolution.clone()
    }

    /// Waits for the server's first answer (client slots).
    pub(crate) fn poll_resolution(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Resolution, WrpcError>> {
        let mut state = self.lock();
        if let Some(failure) = &state.failure {
            return Poll::Ready(Err(failure.clone()));
        }
        match &state.resolution {
            Resolution::Pending => {
                if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    state.waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
            other => Poll::Ready(Ok(other.clone())),
        }
    }

    /// Reads from the stream at `path` into `buf`.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        path: &[usize],
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<Result<Read, WrpcError>> {
        let mut state = self.lock();
        if let Some(failure) = &state.failure {
            return Poll::Ready(Err(failure.clone()));
        }
        let state = &mut *state;
        let queue = state.queue(path);
        match queue.items.front_mut() {
            None => {
                queue.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Some(Item::End) => Poll::Ready(Ok(Read::Eof)),
            Some(Item::Error(error)) => Poll::Ready(Err(error.clone())),
            Some(Item::Data(data)) => {
                let n = data.len().min(buf.remaining());
                let chunk = data.split_to(n);
                buf.put_slice(&chunk);
                if data.is_empty() {
                    queue.items.pop_front();
                }
                state.buffered = state.buffered.saturating_sub(n);
                Poll::Ready(Ok(Read::Copied))
            }
        }
    }

    /// Routes one message whose subject continued with `rest` after the call
    /// id.
    fn deliver(
        &self,
        rest: &str,
        message: async_nats::Message,
        counters: &Counters,
        outbox: &Outbox,
    ) -> Delivery {
        if rest.is_empty() {
            return match self.role {
                Role::Client => self.deliver_control(message, counters, outbox),
                Role::Server => Delivery::Rejected,
            };
        }
        let Some(path) = parse_stream_path(rest, self.role.word()) else {
            return Delivery::Rejected;
        };
        let item = if message.payload.is_empty() {
            match headers::get(message.headers.as_ref(), headers::ERROR) {
                Some(kind) => Item::Error(remote_error(
                    kind,
                    headers::get(message.headers.as_ref(), headers::ERROR_MESSAGE)
                        .unwrap_or("the target failed the call"),
                )),
                None => Item::End,
            }
        } else {
            Item::Data(message.payload)
        };
        self.push(path, [Some(item), None]);
        Delivery::Routed
    }

    /// Handles the first message on `R_c`: status, compact reply or handshake.
    fn deliver_control(
        &self,
        message: async_nats::Message,
        counters: &Counters,
        outbox: &Outbox,
    ) -> Delivery {
        {
            let state = self.lock();
            if !matches!(state.resolution, Resolution::Pending) || state.failure.is_some() {
                // A second answer: another server of the queue group or a
                // confused peer. The first one wins.
                return Delivery::Rejected;
            }
        }
        if let Some(status) = message.status
            && !status.is_success()
        {
            let error = if status == StatusCode::NO_RESPONDERS {
                WrpcError::NoResponders {
                    subject: self.subject.to_string(),
                }
            } else if status == StatusCode::TIMEOUT {
                self.timeout_error()
            } else {
                WrpcError::Connection(format!(
                    "NATS answered `{}` with status {status}{}",
                    self.subject,
                    message
                        .description
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ))
            };
            self.fail(error);
            return Delivery::Routed;
        }
        let hdrs = message.headers.as_ref();
        if let Some(kind) = headers::get(hdrs, headers::ERROR) {
            let text = String::from_utf8_lossy(&message.payload);
            let text = if text.is_empty() {
                headers::get(hdrs, headers::ERROR_MESSAGE).unwrap_or("the target failed the call")
            } else {
                &text
            };
            let error = remote_error(kind, text);
            // Counted before waking the caller, so it sees its own call.
            Counters::bump(&counters.compact_calls);
            self.resolve(Resolution::Compact);
            self.fail(error);
            return Delivery::Compact;
        }
        if headers::get(hdrs, headers::FRAMING) == Some(headers::ON) {
            let continued = headers::get(hdrs, headers::CONTINUED) == Some(headers::ON);
            let data = (!message.payload.is_empty()).then(|| Item::Data(message.payload));
            let end = (!continued).then_some(Item::End);
            Counters::bump(&counters.compact_calls);
            self.push(Vec::new(), [data, end]);
            self.resolve(Resolution::Compact);
            return Delivery::Compact;
        }
        match message.reply {
            Some(reply) => {
                Counters::bump(&counters.standard_calls);
                let replay = std::mem::take(&mut self.lock().replay);
                if !replay.is_empty() {
                    let messages = replay_messages(&reply, replay);
                    if let Err(error) = outbox.push(messages) {
                        self.fail(error);
                        return Delivery::Routed;
                    }
                }
                self.resolve(Resolution::Standard(reply));
                Delivery::Standard
            }
            None => {
                self.fail(WrpcError::Protocol(format!(
                    "the server of `{}` answered without a reply subject nor `{}`; is it a wRPC 0.0.1 server?",
                    self.subject,
                    headers::FRAMING
                )));
                Delivery::Rejected
            }
        }
    }

    fn resolve(&self, resolution: Resolution) {
        let waiters = {
            let mut state = self.lock();
            state.resolution = resolution;
            std::mem::take(&mut state.waiters)
        };
        waiters.into_iter().for_each(Waker::wake);
    }

    fn push(&self, path: Vec<usize>, items: [Option<Item>; 2]) {
        let over_budget;
        let waker = {
            let mut state = self.lock();
            if state.failure.is_some() {
                return;
            }
            let state = &mut *state;
            let mut added = 0usize;
            let queue = if path.is_empty() {
                &mut state.root
            } else {
                state.nested.entry(path).or_default()
            };
            for item in items.into_iter().flatten() {
                if let Item::Data(data) = &item {
                    added = added.saturating_add(data.len());
                }
                queue.items.push_back(item);
            }
            let waker = queue.waker.take();
            state.buffered = state.buffered.saturating_add(added);
            over_budget = state.buffered > self.budget;
            waker
        };
        if over_budget {
            self.fail(WrpcError::SlowConsumer {
                subject: self.subject.to_string(),
            });
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The messages of `replay` on `{server}.params.{path}`, each stream ended.
fn replay_messages(server: &Subject, replay: Vec<Replay>) -> Vec<OutboundMessage> {
    let base = format!("{server}.params");
    let mut out = Vec::new();
    for stream in replay {
        let subject = Subject::from(indexed(&base, &stream.path));
        for chunk in stream.chunks {
            out.push(outbound(&subject, chunk));
        }
        out.push(outbound(&subject, Bytes::new()));
    }
    out
}

fn take_all_wakers(state: &mut SlotState) -> Vec<Waker> {
    let mut wakers = std::mem::take(&mut state.waiters);
    wakers.extend(state.root.waker.take());
    wakers.extend(state.nested.values_mut().filter_map(|q| q.waker.take()));
    wakers
}

fn remote_error(kind: &str, message: &str) -> WrpcError {
    WrpcError::Remote {
        kind: RemoteErrorKind::from_wire(kind),
        message: message.to_string(),
    }
}

/// Every open call of a transport, by id.
pub(crate) struct CallTable {
    shards: Vec<Mutex<HashMap<u64, Arc<CallSlot>>>>,
    next_id: AtomicU64,
}

impl CallTable {
    pub(crate) fn new() -> CallTable {
        CallTable {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_id: AtomicU64::new(1),
        }
    }

    fn shard(&self, id: u64) -> Option<MutexGuard<'_, HashMap<u64, Arc<CallSlot>>>> {
        let shard = self.shards.get((id % SHARDS as u64) as usize)?;
        Some(shard.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Registers a slot under a fresh id.
    pub(crate) fn register(&self, slot: Arc<CallSlot>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(mut shard) = self.shard(id) {
            shard.insert(id, slot);
        }
        id
    }

    pub(crate) fn remove(&self, id: u64) {
        if let Some(mut shard) = self.shard(id) {
            shard.remove(&id);
        }
    }

    fn get(&self, id: u64) -> Option<Arc<CallSlot>> {
        self.shard(id)?.get(&id).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// Removes a call from the table when the last handle drops.
pub(crate) struct CallGuard {
    pub table: Arc<CallTable>,
    pub id: u64,
    pub slot: Arc<CallSlot>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.table.remove(self.id);
    }
}

/// Routes every message of the inbox subscription until it ends.
pub(crate) async fn run(
    mut subscription: async_nats::Subscriber,
    inbox_prefix: String,
    table: Arc<CallTable>,
    counters: Arc<Counters>,
    outbox: Arc<Outbox>,
) {
    // One round = every message ready now; the outbox learns how many
    // (a lone delivery lets the next request skip its pump).
    loop {
        let Some(first) = subscription.next().await else {
            break;
        };
        route(&inbox_prefix, &table, &counters, &outbox, first);
        let mut count = 1;
        while let Some(Some(message)) = subscription.next().now_or_never() {
            route(&inbox_prefix, &table, &counters, &outbox, message);
            count += 1;
        }
        outbox.delivered(count);
    }
    tracing::debug!(inbox = %inbox_prefix, "wRPC inbox subscription ended");
}

fn route(
    inbox_prefix: &str,
    table: &CallTable,
    counters: &Counters,
    outbox: &Outbox,
    message: async_nats::Message,
) {
    let subject = message.subject.clone();
    let Some(tail) = subject.as_str().strip_prefix(inbox_prefix) else {
        Counters::bump(&counters.protocol_errors);
        return;
    };
    let (token, rest) = tail.split_once('.').unwrap_or((tail, ""));
    let Some(slot) = decode_id(token).and_then(|id| table.get(id)) else {
        Counters::bump(&counters.late_messages);
        return;
    };
    match slot.deliver(rest, message, counters, outbox) {
        Delivery::Routed | Delivery::Compact | Delivery::Standard => {}
        Delivery::Rejected => Counters::bump(&counters.protocol_errors),
    }
}
