//! The serving side: [`Server`] (`Serve<Context = ServeContext>`), the
//! per-call [`ServeContext`], [`ParamReader`], [`ResultWriter`] and the
//! [`ErrorReporter`] that guarantees exactly one reply per call.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::message::OutboundMessage;
use async_nats::{HeaderMap, Subject};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::demux::{CallGuard, CallSlot, Counters, Read, Role};
use crate::error::{RemoteErrorKind, WrpcError};
use crate::nested::NestedParam;
use crate::subject::{encode_id, indexed, invocation_subject};
use crate::timer::Deadline;
use crate::writer::{SubjectWriter, publish_detached};
use crate::{Inner, headers, nested};

/// Message of the error reply sent when a handler drops its call.
const DROPPED_MESSAGE: &str = "handler dropped the call without results";

/// Serves functions under one prefix, `{lattice}.{id}`.
#[derive(Clone)]
pub struct Server {
    pub(crate) inner: Arc<Inner>,
    pub(crate) prefix: Arc<str>,
    pub(crate) queue_group: Option<Arc<str>>,
}

/// What a handler knows about one incoming call.
#[derive(Clone, Debug)]
pub struct ServeContext {
    /// The invocation subject.
    pub subject: String,
    /// The request headers (empty if none).
    pub headers: HeaderMap,
    /// When the caller stops waiting (from `trellis-timeout-ms`, else the
    /// transport's default timeout).
    pub deadline: Instant,
    /// Whether the call uses the compact framing.
    pub compact: bool,
}

impl ServeContext {
    /// The caller's id (`source-id`).
    pub fn source_id(&self) -> Option<&str> {
        headers::get(Some(&self.headers), headers::SOURCE_ID)
    }

    /// The link name the caller used (`default` when absent).
    pub fn link_name(&self) -> &str {
        headers::get(Some(&self.headers), headers::LINK_NAME).unwrap_or("default")
    }

    /// A request header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        match headers::known(name) {
            Some(known) => self.headers.get(known),
            None => self.headers.get(name),
        }
        .map(|v| v.as_str())
    }

    /// Budget left before the caller gives up.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

impl wrpc_transport::Serve for Server {
    type Context = ServeContext;
    type Outgoing = ResultWriter;
    type Incoming = ParamReader;

    async fn serve(
        &self,
        instance: &str,
        func: &str,
        paths: impl Into<Arc<[Box<[Option<usize>]>]>> + Send,
    ) -> anyhow::Result<
        impl Stream<Item = anyhow::Result<(Self::Context, Self::Outgoing, Self::Incoming)>>
        + Send
        + 'static,
    > {
        let subject = invocation_subject(&self.prefix, instance, func);
        let nats = &self.inner.nats;
        let subscription = match &self.queue_group {
            Some(group) => {
                nats.queue_subscribe(subject.clone(), group.to_string())
                    .await
            }
            None => nats.subscribe(subject.clone()).await,
        }
        .map_err(|e| WrpcError::Connection(format!("failed to subscribe to `{subject}`: {e}")))?;
        nats.flush()
            .await
            .with_context(|| format!("failed to flush the subscription to `{subject}`"))?;
        let paths: Arc<[Box<[Option<usize>]>]> = paths.into();
        let inner = Arc::clone(&self.inner);
        Ok(subscription.filter_map(move |message| {
            let inner = Arc::clone(&inner);
            let paths = Arc::clone(&paths);
            async move { accept(&inner, message, &paths).await.map(Ok) }
        }))
    }
}

/// How a request asks to be served.
enum Framing {
    Standard,
    /// All params in the request (`trellis-framing: 1`).
    Compact,
    /// All params in the request, nested ones inline (`trellis-framing: 2`).
    CompactNested(Arc<[NestedParam]>),
}

/// The framing of a request to a function declaring the nested param
/// `paths`; `Err` = the inline nested params are malformed or incomplete.
fn framing(headers: &HeaderMap, paths: &[Box<[Option<usize>]>]) -> Result<Framing, String> {
    let requested = headers::get(Some(headers), headers::FRAMING);
    let nested = requested == Some(headers::WITH_NESTED);
    if !nested && requested != Some(headers::ON) {
        return Ok(Framing::Standard);
    }
    if paths.is_empty() {
        return Ok(Framing::Compact);
    }
    if !nested {
        return Ok(Framing::Standard);
    }
    let values = headers
        .get_all(headers::name(headers::NESTED))
        .map(|v| v.as_str());
    let params = nested::parse(values)?;
    for path in paths.iter() {
        // A wildcard path is checked when it is read.
        let Some(exact) = path.iter().copied().collect::<Option<Vec<usize>>>() else {
            continue;
        };
        if !params.iter().any(|p| p.path == exact) {
            return Err(format!(
                "the request lacks the inline nested parameter `{}`",
                join_path(&exact)
            ));
        }
    }
    Ok(Framing::CompactNested(params.into()))
}

fn join_path(path: &[usize]) -> String {
    let mut text = indexed("", path);
    if !text.is_empty() {
        text.remove(0);
    }
    text
}

/// Turns one request into a call, or answers/drops it.
async fn accept(
    inner: &Arc<Inner>,
    message: async_nats::Message,
    paths: &[Box<[Option<usize>]>],
) -> Option<(ServeContext, ResultWriter, ParamReader)> {
    let counters = &inner.counters;
    let Some(reply) = message.reply else {
        tracing::debug!(subject = %message.subject, "dropping a wRPC request without reply subject");
        Counters::bump(&counters.dropped_requests);
        return None;
    };
    let request_headers = message.headers.unwrap_or_default();
    let budget = match headers::get(Some(&request_headers), headers::TIMEOUT_MS) {
        None => inner.options.default_timeout,
        Some(text) => match text.parse::<u64>() {
            Ok(0) => {
                refuse(
                    inner,
                    reply,
                    RemoteErrorKind::Deadline,
                    "the call arrived after its deadline".to_string(),
                )
                .await;
                return None;
            }
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                let text = format!(
                    "bogus `{}` header `{}`: expected milliseconds",
                    headers::TIMEOUT_MS,
                    headers::header_safe(text)
                );
                refuse(inner, reply, RemoteErrorKind::Internal, text).await;
                return None;
            }
        },
    };
    let deadline = Instant::now() + budget;
    let framing = match framing(&request_headers, paths) {
        Ok(framing) => framing,
        Err(text) => {
            refuse(inner, reply, RemoteErrorKind::Decode, text).await;
            return None;
        }
    };
    let (compact, nested) = match framing {
        Framing::Standard => (false, None),
        Framing::Compact => (true, None),
        Framing::CompactNested(nested) => (true, Some(nested)),
    };
    let context = ServeContext {
        subject: message.subject.to_string(),
        headers: request_headers,
        deadline,
        compact,
    };
    if compact {
        Counters::bump(&counters.served_compact);
        if nested.is_some() {
            Counters::bump(&counters.served_inline_nested);
        }
        let shared = ReplyShared::new(inner, reply, true);
        let writer = ResultWriter {
            kind: WriterKind::Compact {
                buffer: BytesMut::new(),
                sent: false,
                limit: inner.options.max_call_buffer_bytes,
            },
            shared,
        };
        let reader = ParamReader(ReaderKind::Compact {
            data: message.payload,
            nested,
            path: Vec::new(),
            missing: false,
        });
        return Some((context, writer, reader));
    }
    let slot = Arc::new(CallSlot::new(
        Role::Server,
        message.subject.clone(),
        deadline,
        budget,
        inner.options.max_call_buffer_bytes,
    ));
    let id = inner.table.register(Arc::clone(&slot));
    let call = Arc::new(CallGuard {
        table: Arc::clone(&inner.table),
        id,
        slot,
    });
    let mut server_inbox = String::with_capacity(inner.inbox_prefix.len() + 13);
    server_inbox.push_str(&inner.inbox_prefix);
    encode_id(id, &mut server_inbox);
    let handshake =
        inner
            .nats
            .publish_with_reply(reply.clone(), Subject::from(server_inbox), Bytes::new());
    if let Err(error) = handshake.await {
        tracing::warn!(%error, subject = %context.subject, "failed to publish a wRPC handshake");
        return None;
    }
    Counters::bump(&counters.served_standard);
    let results = Subject::from(format!("{reply}.results"));
    let shared = ReplyShared::new(inner, reply, false);
    let writer = ResultWriter {
        kind: WriterKind::Standard(
            SubjectWriter::new(inner.nats.clone(), results).without_end_on_drop(),
        ),
        shared,
    };
    let reader = ParamReader(ReaderKind::Standard {
        first: message.payload,
        deadline: Deadline::new(call.slot.deadline),
        call,
        path: Vec::new(),
    });
    Some((context, writer, reader))
}

/// Answers a request with a compact error reply without serving it.
async fn refuse(inner: &Inner, reply: Subject, kind: RemoteErrorKind, message: String) {
    Counters::bump(&inner.counters.error_replies);
    let mut hdrs = HeaderMap::new();
    hdrs.insert(headers::name(headers::FRAMING), headers::ON);
    hdrs.insert(headers::name(headers::ERROR), kind.as_str());
    if let Err(error) = inner
        .nats
        .publish_with_headers(reply, hdrs, Bytes::from(message))
        .await
    {
        tracing::debug!(%error, "failed to publish a wRPC error reply");
    }
}

#[derive(Default)]
struct ReplyStatus {
    done: bool,
    failure: Option<(RemoteErrorKind, String)>,
}

/// Shared by the root [`ResultWriter`] and its [`ErrorReporter`]s: when the
/// last of them drops without a completed reply, the error reply goes out.
struct ReplyShared {
    /// The transport (connection, outbox, counters): one `Arc` clone per
    /// call instead of an `async_nats::Client` clone and two more `Arc`s.
    inner: Arc<Inner>,
    reply: Subject,
    compact: bool,
    status: Mutex<ReplyStatus>,
}

impl ReplyShared {
    fn new(inner: &Arc<Inner>, reply: Subject, compact: bool) -> Arc<ReplyShared> {
        Arc::new(ReplyShared {
            inner: Arc::clone(inner),
            reply,
            compact,
            status: Mutex::new(ReplyStatus::default()),
        })
    }

    fn with_status<T>(&self, f: impl FnOnce(&mut ReplyStatus) -> T) -> T {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut status)
    }

    fn results_subject(&self) -> Subject {
        Subject::from(format!("{}.results", self.reply))
    }
}

impl Drop for ReplyShared {
    fn drop(&mut self) {
        let (done, failure) = self.with_status(|s| (s.done, s.failure.take()));
        if done {
            return;
        }
        let (kind, text) =
            failure.unwrap_or_else(|| (RemoteErrorKind::Internal, DROPPED_MESSAGE.to_string()));
        Counters::bump(&self.inner.counters.error_replies);
        let mut hdrs = HeaderMap::new();
        hdrs.insert(headers::name(headers::ERROR), kind.as_str());
        let message = if self.compact {
            hdrs.insert(headers::name(headers::FRAMING), headers::ON);
            OutboundMessage {
                subject: self.reply.clone(),
                payload: Bytes::from(text),
                reply: None,
                headers: Some(hdrs),
            }
        } else {
            hdrs.insert(
                headers::name(headers::ERROR_MESSAGE),
                headers::header_safe(&text),
            );
            OutboundMessage {
                subject: self.results_subject(),
                payload: Bytes::new(),
                reply: None,
                headers: Some(hdrs),
            }
        };
        publish_detached(&self.inner.nats, message);
    }
}

/// Records why a call failed; the error reply is sent when the last of the
/// call's [`ResultWriter`] and reporters drops without a completed reply.
#[derive(Clone)]
pub struct ErrorReporter {
    shared: Arc<ReplyShared>,
}

impl ErrorReporter {
    /// Sets the error kind and message of the reply (the last call wins). It
    /// has no effect once the results were sent.
    pub fn fail(&self, kind: RemoteErrorKind, message: impl Into<String>) {
        let message = message.into();
        self.shared
            .with_status(|s| s.failure = Some((kind, message)));
    }
}

enum WriterKind {
    /// Buffers the sync results, sends them on shutdown in one message
    /// (several with `trellis-continued` when they exceed `max_payload`).
    Compact {
        buffer: BytesMut,
        /// The reply was queued: later writes are errors.
        sent: bool,
        limit: usize,
    },
    /// Writes through to `{R_c}.results`.
    Standard(SubjectWriter),
    /// A nested result stream, `{R_c}.results.{path}`.
    Nested(SubjectWriter),
}

/// Results of one served call (root or nested).
pub struct ResultWriter {
    shared: Arc<ReplyShared>,
    kind: WriterKind,
}

impl ResultWriter {
    /// A handle that can set the error of the reply, and keeps the call
    /// open until it drops.
    pub fn reporter(&self) -> ErrorReporter {
        ErrorReporter {
            shared: Arc::clone(&self.shared),
        }
    }

    fn mark_done(&self) {
        self.shared.with_status(|s| s.done = true);
    }
}

/// Splits compact results into the messages that carry them.
fn compact_messages(
    shared: &ReplyShared,
    nats: &async_nats::Client,
    payload: Bytes,
) -> VecDeque<OutboundMessage> {
    let mut hdrs = HeaderMap::new();
    hdrs.insert(headers::name(headers::FRAMING), headers::ON);
    let max_payload = nats.max_payload();
    let mut out = VecDeque::new();
    if payload.len() + headers::wire_len(&hdrs) <= max_payload {
        out.push_back(OutboundMessage {
            subject: shared.reply.clone(),
            payload,
            reply: None,
            headers: Some(hdrs),
        });
        return out;
    }
    hdrs.insert(headers::name(headers::CONTINUED), headers::ON);
    let room = max_payload.saturating_sub(headers::wire_len(&hdrs)).max(1);
    let mut rest = payload;
    let first = rest.split_to(room.min(rest.len()));
    out.push_back(OutboundMessage {
        subject: shared.reply.clone(),
        payload: first,
        reply: None,
        headers: Some(hdrs),
    });
    let results = shared.results_subject();
    let chunk = max_payload.max(1);
    while !rest.is_empty() {
        let part = rest.split_to(chunk.min(rest.len()));
        out.push_back(crate::writer::outbound(&results, part));
    }
    out.push_back(crate::writer::outbound(&results, Bytes::new()));
    out
}

impl wrpc_transport::Index<ResultWriter> for ResultWriter {
    fn index(&self, path: &[usize]) -> anyhow::Result<ResultWriter> {
        let subject = match &self.kind {
            WriterKind::Nested(tx) => indexed(tx.subject(), path),
            _ => indexed(&format!("{}.results", self.shared.reply), path),
        };
        Ok(ResultWriter {
            shared: Arc::clone(&self.shared),
            kind: WriterKind::Nested(SubjectWriter::new(
                self.shared.inner.nats.clone(),
                Subject::from(subject),
            )),
        })
    }
}

impl AsyncWrite for ResultWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.kind {
            WriterKind::Compact {
                buffer,
                limit,
                sent,
            } => {
                if *sent || buffer.len() + buf.len() > *limit {
                    return Poll::Ready(Err(WrpcError::Protocol(format!(
                        "results exceed the per-call limit of {limit} bytes (or were written after shutdown)"
                    ))
                    .into_io()));
                }
                buffer.extend_from_slice(buf);
                Poll::Ready(Ok(buf.len()))
            }
            WriterKind::Standard(tx) | WriterKind::Nested(tx) => Pin::new(tx).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match &mut this.kind {
            WriterKind::Compact { buffer, sent, .. } => {
                if !*sent {
                    let payload = buffer.split().freeze();
                    let messages = compact_messages(&this.shared, &this.shared.inner.nats, payload);
                    this.shared
                        .inner
                        .outbox
                        .push_reply(messages)
                        .map_err(WrpcError::into_io)?;
                    *sent = true;
                }
                this.mark_done();
                Poll::Ready(Ok(()))
            }
            WriterKind::Standard(tx) => {
                ready!(Pin::new(&mut *tx).poll_shutdown(cx))?;
                if tx.is_shut_down() {
                    this.mark_done();
                }
                Poll::Ready(Ok(()))
            }
            WriterKind::Nested(tx) => Pin::new(tx).poll_shutdown(cx),
        }
    }
}

/// Parameters of one served call (root or nested).
pub struct ParamReader(ReaderKind);

enum ReaderKind {
    /// Compact call: the request payload is all there is (`path` empty), or
    /// the inline bytes of nested param `path`.
    Compact {
        data: Bytes,
        /// The inline nested params (`trellis-framing: 2`).
        nested: Option<Arc<[NestedParam]>>,
        path: Vec<usize>,
        /// A nested path the request did not carry: reading it fails (an
        /// intermediate path is indexed further, never read).
        missing: bool,
    },
    /// Standard call: the request payload, then `{R_s}.params…`.
    Standard {
        first: Bytes,
        call: Arc<CallGuard>,
        path: Vec<usize>,
        deadline: Deadline,
    },
}

impl wrpc_transport::Index<ParamReader> for ParamReader {
    fn index(&self, path: &[usize]) -> anyhow::Result<ParamReader> {
        match &self.0 {
            ReaderKind::Compact { nested: None, .. } => {
                anyhow::bail!("a compact call carries no async parameters (nested path {path:?})")
            }
            ReaderKind::Compact {
                nested: Some(nested),
                path: own,
                ..
            } => {
                let mut full = own.clone();
                full.extend_from_slice(path);
                let data = nested
                    .iter()
                    .find(|p| p.path == full)
                    .map(|p| p.data.clone());
                Ok(ParamReader(ReaderKind::Compact {
                    missing: data.is_none(),
                    data: data.unwrap_or_default(),
                    nested: Some(Arc::clone(nested)),
                    path: full,
                }))
            }
            ReaderKind::Standard {
                call, path: own, ..
            } => {
                let mut full = own.clone();
                full.extend_from_slice(path);
                Ok(ParamReader(ReaderKind::Standard {
                    first: Bytes::new(),
                    deadline: Deadline::new(call.slot.deadline),
                    call: Arc::clone(call),
                    path: full,
                }))
            }
        }
    }
}

fn take_into(data: &mut Bytes, buf: &mut ReadBuf<'_>) {
    let n = data.len().min(buf.remaining());
    buf.put_slice(&data.split_to(n));
}

impl AsyncRead for ParamReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.0 {
            ReaderKind::Compact {
                missing: true,
                path,
                ..
            } => Poll::Ready(Err(WrpcError::Protocol(format!(
                "the request carried no inline data for nested parameter `{}`",
                join_path(path)
            ))
            .into_io())),
            ReaderKind::Compact { data, .. } => {
                take_into(data, buf);
                Poll::Ready(Ok(()))
            }
            ReaderKind::Standard {
                first,
                call,
                path,
                deadline,
            } => {
                if !first.is_empty() {
                    take_into(first, buf);
                    return Poll::Ready(Ok(()));
                }
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
                match call.slot.poll_read(cx, path, buf) {
                    Poll::Ready(Ok(Read::Copied | Read::Eof)) => Poll::Ready(Ok(())),
                    Poll::Ready(Err(error)) => Poll::Ready(Err(error.into_io())),
                    Poll::Pending if deadline.poll_expired(cx) => {
                        Poll::Ready(Err(call.slot.timeout_error().into_io()))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}
