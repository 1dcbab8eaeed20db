#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod demux;
mod error;
pub mod headers;
mod outbox;
mod server;
mod subject;
mod timer;
mod writer;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use client::{CallContext, Client, ParamWriter, ResultReader, TargetClient};
pub use error::{RemoteErrorKind, UnknownErrorKind, WrpcError, find_wrpc_error};
pub use server::{ErrorReporter, ParamReader, ResultWriter, ServeContext, Server};
pub use subject::{PROTOCOL, invocation_subject};

use demux::{CallTable, Counters};

/// Default budget of a call: 10 s, wasmCloud's hard-coded invocation
/// timeout, so callers that migrate keep the behaviour they know; long
/// enough for a cold start of the target, short enough that a lost server
/// does not hold a caller for long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default limit of unread bytes buffered for one call: 64 MiB, far above
/// any sync value NATS carries (1 MiB `max_payload` by default) yet small
/// enough that a handful of stuck calls cannot exhaust memory.
pub const DEFAULT_MAX_CALL_BUFFER_BYTES: usize = 64 * 1024 * 1024;

/// Transport settings.
#[derive(Clone, Debug)]
pub struct TransportOptions {
    /// Budget of a call whose context sets none; every reader and writer of
    /// the call fails with [`WrpcError::Timeout`] when it runs out. See
    /// [`DEFAULT_TIMEOUT`].
    pub default_timeout: Duration,
    /// Most unread bytes one call may buffer before it fails with
    /// [`WrpcError::SlowConsumer`]. See [`DEFAULT_MAX_CALL_BUFFER_BYTES`].
    pub max_call_buffer_bytes: usize,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            default_timeout: DEFAULT_TIMEOUT,
            max_call_buffer_bytes: DEFAULT_MAX_CALL_BUFFER_BYTES,
        }
    }
}

/// Counters of a [`Transport`] since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStats {
    /// Calls answered with a compact reply.
    pub compact_calls: u64,
    /// Calls answered with a standard handshake.
    pub standard_calls: u64,
    /// Messages for calls that were already finished (or never existed).
    pub late_messages: u64,
    /// Calls served with the compact framing.
    pub served_compact: u64,
    /// Calls served with the standard handshake.
    pub served_standard: u64,
    /// Requests dropped unanswered (no reply subject).
    pub dropped_requests: u64,
    /// Error replies sent (refused requests and failed calls).
    pub error_replies: u64,
    /// Messages that broke the protocol (unknown stream word, duplicate
    /// answers, bad paths).
    pub protocol_errors: u64,
}

pub(crate) struct Inner {
    nats: async_nats::Client,
    /// `{inbox}.`: every call subject starts with it.
    inbox_prefix: String,
    options: TransportOptions,
    table: Arc<CallTable>,
    counters: Arc<Counters>,
    /// Coalesced publishing (see [`outbox`]).
    outbox: Arc<outbox::Outbox>,
    demux: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Ends the demux task, which drops (unsubscribes) the inbox.
        self.demux.abort();
        // The pump publishes what is still queued, then ends.
        self.outbox.close();
    }
}

/// wRPC over one NATS connection: one inbox subscription shared by every
/// call made ([`Transport::client`]) and served ([`Transport::server`]).
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl Transport {
    /// Subscribes to a fresh inbox (`{inbox}.>`) and starts the demux task.
    pub async fn new(
        nats: async_nats::Client,
        options: TransportOptions,
    ) -> Result<Transport, WrpcError> {
        let inbox = nats.new_inbox();
        let subscription = nats.subscribe(format!("{inbox}.>")).await.map_err(|e| {
            WrpcError::Connection(format!("failed to subscribe to `{inbox}.>`: {e}"))
        })?;
        nats.flush().await.map_err(|e| {
            WrpcError::Connection(format!("failed to flush the inbox subscription: {e}"))
        })?;
        let inbox_prefix = format!("{inbox}.");
        let table = Arc::new(CallTable::new());
        let counters = Arc::new(Counters::default());
        let demux = tokio::spawn(demux::run(
            subscription,
            inbox_prefix.clone(),
            Arc::clone(&table),
            Arc::clone(&counters),
        ))
        .abort_handle();
        let outbox = Arc::new(outbox::Outbox::default());
        tokio::spawn(outbox::pump(Arc::clone(&outbox), nats.clone()));
        Ok(Transport {
            inner: Arc::new(Inner {
                nats,
                inbox_prefix,
                options,
                table,
                counters,
                outbox,
                demux,
            }),
        })
    }

    /// A handle for making calls.
    pub fn client(&self) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
        }
    }

    /// A handle for serving functions under `prefix` (`{lattice}.{id}`),
    /// queue-subscribed with `queue_group` (normally the same string).
    pub fn server(&self, prefix: impl Into<String>, queue_group: Option<String>) -> Server {
        Server {
            inner: Arc::clone(&self.inner),
            prefix: Arc::from(prefix.into()),
            queue_group: queue_group.map(Arc::from),
        }
    }

    /// The NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }

    /// The options the transport was created with.
    pub fn options(&self) -> &TransportOptions {
        &self.inner.options
    }

    /// Calls (made or served in standard mode) still registered.
    pub fn open_calls(&self) -> usize {
        self.inner.table.len()
    }

    /// Counters since creation.
    pub fn stats(&self) -> TransportStats {
        let c = &self.inner.counters;
        let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        TransportStats {
            compact_calls: get(&c.compact_calls),
            standard_calls: get(&c.standard_calls),
            late_messages: get(&c.late_messages),
            served_compact: get(&c.served_compact),
            served_standard: get(&c.served_standard),
            dropped_requests: get(&c.dropped_requests),
            error_replies: get(&c.error_replies),
            protocol_errors: get(&c.protocol_errors),
        }
    }
}
