#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod declared;
mod demux;
mod error;
pub mod headers;
mod hold;
mod nested;
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

/// Default window a request with async params is held for its nested
/// params to complete (see [`TransportOptions::nested_inline_wait`]): 5 ms,
/// the same wait `trellis-wrpc-http` gives a response body. Long enough for
/// the encoder task `invoke_values` spawns to write an empty or small ready
/// body and trailers even on a loaded machine, short enough to be noise for
/// a streaming upload (which it delays by at most that much).
pub const DEFAULT_NESTED_INLINE_WAIT: Duration = Duration::from_millis(5);

/// Default limit of the nested param bytes sent inline: 32 KiB (about 43 KiB
/// of base64 header), well below NATS's 1 MiB `max_payload`; bigger bodies
/// are streams worth the standard protocol.
pub const DEFAULT_MAX_INLINE_NESTED_BYTES: usize = 32 * 1024;

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
    /// How long a call with async params may hold its request back for the
    /// nested params to complete, so they travel inline (2-message compact
    /// exchange with a Trellis server). Zero disables holding. See
    /// [`DEFAULT_NESTED_INLINE_WAIT`].
    pub nested_inline_wait: Duration,
    /// Most nested param bytes held for sending inline; beyond, the request
    /// goes out at once and the rest streams. See
    /// [`DEFAULT_MAX_INLINE_NESTED_BYTES`].
    pub max_inline_nested_bytes: usize,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            default_timeout: DEFAULT_TIMEOUT,
            max_call_buffer_bytes: DEFAULT_MAX_CALL_BUFFER_BYTES,
            nested_inline_wait: DEFAULT_NESTED_INLINE_WAIT,
            max_inline_nested_bytes: DEFAULT_MAX_INLINE_NESTED_BYTES,
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
    /// Requests sent with their nested (async) params inline
    /// (`trellis-framing: 2`).
    pub inline_nested_calls: u64,
    /// Held requests that went out without their nested params (window
    /// elapsed, too many bytes, too big a message): the params followed on
    /// the standard subjects.
    pub held_fallbacks: u64,
    /// Calls served compactly from a request with inline nested params.
    pub served_inline_nested: u64,
    /// Publishes (replies, or requests after a lone delivery) handed to the
    /// connection directly rather than through the outbox's pump task.
    pub direct_publishes: u64,
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
    /// Functions whose complete async params may go inline.
    async_params: declared::DeclaredParams,
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
        let outbox = Arc::new(outbox::Outbox::new(nats.clone(), Arc::clone(&counters)));
        let demux = tokio::spawn(demux::run(
            subscription,
            inbox_prefix.clone(),
            Arc::clone(&table),
            Arc::clone(&counters),
            Arc::clone(&outbox),
        ))
        .abort_handle();
        tokio::spawn(outbox::pump(Arc::clone(&outbox), nats.clone()));
        Ok(Transport {
            inner: Arc::new(Inner {
                nats,
                inbox_prefix,
                options,
                table,
                counters,
                outbox,
                async_params: declared::DeclaredParams::default(),
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

    /// Declares the nested (async) param paths of `instance`'s `func` (the
    /// paths its server passes to `serve`, e.g. `[[Some(0), Some(0)],
    /// [Some(0), Some(1)]]` for `wrpc:http`'s `handle`), so this transport's
    /// calls to it hold the request until those params are complete and
    /// send them inline: a 2-message exchange with a Trellis server when
    /// they are small and ready (see the crate docs, "Inline nested
    /// params"). Generated bindings pass `invoke` only the *result* paths,
    /// hence the declaration. No paths forget a declaration. Returns
    /// `false` (and holds nothing) when a path has a wildcard.
    pub fn declare_async_params<P: AsRef<[Option<usize>]>>(
        &self,
        instance: &str,
        func: &str,
        paths: impl IntoIterator<Item = P>,
    ) -> bool {
        self.inner.async_params.declare(instance, func, paths)
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
            inline_nested_calls: get(&c.inline_nested_calls),
            held_fallbacks: get(&c.held_fallbacks),
            served_inline_nested: get(&c.served_inline_nested),
            direct_publishes: get(&c.direct_publishes),
        }
    }
}
