//! The calling side: [`Client`] (`Invoke<Context = CallContext>`),
//! [`TargetClient`] (`Invoke<Context = Option<HeaderMap>>`) and the stream
//! halves of one call, [`ParamWriter`] and [`ResultReader`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_nats::message::OutboundMessage;
use async_nats::{HeaderMap, Subject};
use bytes::{Buf as _, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::demux::{CallGuard, CallSlot, Read, Resolution, Role};
use crate::error::WrpcError;
use crate::hold::{Held, Hold};
use crate::subject::{encode_id, indexed, invocation_subject};
use crate::timer::Deadline;
use crate::writer::SubjectWriter;
use crate::{Inner, headers};

/// Per-call data of [`Client`].
#[derive(Clone, Debug, Default)]
pub struct CallContext {
    /// Subject prefix of the target, `{lattice}.{target_id}`.
    pub prefix: String,
    /// Headers for the request (`source-id`, `link-name`, trace context…);
    /// the transport adds `trellis-timeout-ms` and `trellis-framing`.
    pub headers: Option<HeaderMap>,
    /// The call's whole budget; `None` = `TransportOptions::default_timeout`.
    pub timeout: Option<Duration>,
}

/// Invokes functions on any target; one per process is enough.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl Client {
    /// A client bound to one target prefix, for generated bindings.
    pub fn target(&self, prefix: impl Into<String>) -> TargetClient {
        TargetClient {
            client: self.clone(),
            prefix: Arc::from(prefix.into()),
        }
    }

    /// Starts one call: registers it, publishes the request (or holds it
    /// when the function's async params were declared, see [`crate::hold`])
    /// and returns the two stream halves.
    pub(crate) async fn start(
        &self,
        prefix: &str,
        headers: Option<HeaderMap>,
        timeout: Option<Duration>,
        instance: &str,
        func: &str,
        mut params: Bytes,
    ) -> Result<(ParamWriter, ResultReader), WrpcError> {
        let inner = &self.inner;
        let timeout = timeout.unwrap_or(inner.options.default_timeout);
        let deadline = Instant::now() + timeout;
        let subject = Subject::from(invocation_subject(prefix, instance, func));
        let slot = Arc::new(CallSlot::new(
            Role::Client,
            subject.clone(),
            deadline,
            timeout,
            inner.options.max_call_buffer_bytes,
        ));
        let id = inner.table.register(Arc::clone(&slot));
        let call = Arc::new(CallGuard {
            table: Arc::clone(&inner.table),
            id,
            slot,
        });
        let mut reply = String::with_capacity(inner.inbox_prefix.len() + 13);
        reply.push_str(&inner.inbox_prefix);
        encode_id(id, &mut reply);

        let mut headers = headers.unwrap_or_default();
        headers.insert(
            headers::name(headers::TIMEOUT_MS),
            headers::decimal(timeout.as_millis()),
        );
        let max_payload = inner.nats.max_payload();
        let framing_len = headers::FRAMING.len() + b": 1\r\n".len();
        let mut header_len = headers::wire_len(&headers);
        let fits = params.len() + header_len + framing_len <= max_payload;
        let held = if fits && !inner.options.nested_inline_wait.is_zero() {
            inner.async_params.get(instance, func)
        } else {
            None
        };
        if fits && held.is_none() {
            headers.insert(headers::name(headers::FRAMING), headers::ON);
            header_len += framing_len;
        }
        let room = max_payload.checked_sub(header_len).ok_or_else(|| {
            WrpcError::Protocol(format!(
                "the request headers of `{subject}` ({header_len} bytes) exceed the server's max_payload ({max_payload} bytes): send fewer or shorter headers"
            ))
        })?;
        let first = params.split_to(room.min(params.len()));
        let request = OutboundMessage {
            subject: subject.clone(),
            payload: first,
            reply: Some(Subject::from(reply)),
            headers: Some(headers),
        };
        if let Some(declared) = held {
            let hold = Hold::new(Arc::clone(&call), Arc::clone(inner), request, &declared);
            let mut writer =
                ParamWriter::new(Arc::clone(&call), Arc::clone(inner), Vec::new(), params);
            writer.state = WriterState::Held;
            writer.hold = Some(Arc::clone(&hold));
            let mut reader = ResultReader::new(call, Vec::new());
            reader.hold = Some(hold);
            return Ok((writer, reader));
        }
        // Queued, not awaited: the outbox publishes the requests of every
        // caller that is ready now in one batch (see `outbox`).
        inner.outbox.push([request])?;
        Ok((
            ParamWriter::new(Arc::clone(&call), Arc::clone(inner), Vec::new(), params),
            ResultReader::new(call, Vec::new()),
        ))
    }
}

impl wrpc_transport::Invoke for Client {
    type Context = CallContext;
    type Outgoing = ParamWriter;
    type Incoming = ResultReader;

    async fn invoke<P>(
        &self,
        cx: Self::Context,
        instance: &str,
        func: &str,
        params: Bytes,
        // The nested *result* paths (what generated bindings pass): every
        // nested path is accepted as it arrives (bounded by the call's
        // buffer), so they are not needed up front.
        _paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(Self::Outgoing, Self::Incoming)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        Ok(self
            .start(&cx.prefix, cx.headers, cx.timeout, instance, func, params)
            .await?)
    }
}

/// A [`Client`] bound to one target prefix: what `wit-bindgen-wrpc`
/// generated code calls (`iface::func(&client, None, args)`).
#[derive(Clone)]
pub struct TargetClient {
    client: Client,
    prefix: Arc<str>,
}

impl TargetClient {
    /// The target prefix, `{lattice}.{target_id}`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl wrpc_transport::Invoke for TargetClient {
    type Context = Option<HeaderMap>;
    type Outgoing = ParamWriter;
    type Incoming = ResultReader;

    async fn invoke<P>(
        &self,
        cx: Self::Context,
        instance: &str,
        func: &str,
        params: Bytes,
        _paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(Self::Outgoing, Self::Incoming)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        Ok(self
            .client
            .start(&self.prefix, cx, None, instance, func, params)
            .await?)
    }
}

enum WriterState {
    /// Part of a held request: see `hold`.
    Held,
    /// Shut down while held.
    HeldClosed,
    /// Waiting for the server's first answer; `rest` = params that did not
    /// fit the request.
    Waiting(Bytes),
    /// Standard handshake done, sending `rest` first.
    Draining(SubjectWriter, Bytes),
    Standard(SubjectWriter),
    /// Compact reply: the server has everything it needs.
    Compact,
}

/// Parameters of one call (root or nested).
pub struct ParamWriter {
    call: Arc<CallGuard>,
    /// The transport, for its connection once a standard handshake needs
    /// it (an `async_nats::Client` clone per call cost a clone and a drop of
    /// its channel handles, though compact calls never use it).
    inner: Arc<Inner>,
    path: Vec<usize>,
    state: WriterState,
    deadline: Deadline,
    /// The call's hold, while the request is (or was) held.
    hold: Option<Arc<Hold>>,
}

impl ParamWriter {
    fn new(call: Arc<CallGuard>, inner: Arc<Inner>, path: Vec<usize>, rest: Bytes) -> ParamWriter {
        let deadline = Deadline::new(call.slot.deadline);
        ParamWriter {
            call,
            inner,
            path,
            state: WriterState::Waiting(rest),
            deadline,
            hold: None,
        }
    }

    /// Leaves the held state once the request went out.
    fn unhold(&mut self) {
        if matches!(self.state, WriterState::Held) {
            self.state = WriterState::Waiting(Bytes::new());
        }
    }

    /// Bounds a pending operation by the call's deadline.
    fn bounded<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Pending if self.deadline.poll_expired(cx) => {
                Poll::Ready(Err(self.call.slot.timeout_error().into_io()))
            }
            other => other,
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                WriterState::Held => {
                    let Some(hold) = &self.hold else {
                        self.unhold();
                        continue;
                    };
                    match hold.poll_released(cx) {
                        Poll::Ready(false) => return Poll::Ready(Ok(())),
                        Poll::Ready(true) => self.unhold(),
                        Poll::Pending => return self.bounded(cx, Poll::Pending),
                    }
                }
                WriterState::HeldClosed => return Poll::Ready(Ok(())),
                WriterState::Waiting(_) => {
                    let resolution = self
                        .call
                        .slot
                        .poll_resolution(cx)
                        .map_err(WrpcError::into_io);
                    let resolution = ready!(self.bounded(cx, resolution))?;
                    let WriterState::Waiting(rest) = &mut self.state else {
                        continue;
                    };
                    match resolution {
                        Resolution::Pending => return Poll::Pending,
                        Resolution::Compact if rest.is_empty() => self.state = WriterState::Compact,
                        Resolution::Compact => {
                            return Poll::Ready(Err(WrpcError::Protocol(format!(
                                "the server of `{}` answered before receiving all parameters",
                                self.call.slot.subject
                            ))
                            .into_io()));
                        }
                        Resolution::Standard(server) => {
                            let base = format!("{server}.params");
                            let subject = if self.path.is_empty() {
                                base
                            } else {
                                indexed(&base, &self.path)
                            };
                            let tx =
                                SubjectWriter::new(self.inner.nats.clone(), Subject::from(subject));
                            let rest = std::mem::take(rest);
                            self.state = if rest.is_empty() {
                                WriterState::Standard(tx)
                            } else {
                                WriterState::Draining(tx, rest)
                            };
                        }
                    }
                }
                WriterState::Draining(tx, rest) => {
                    while !rest.is_empty() {
                        let poll = Pin::new(&mut *tx).poll_write(cx, rest);
                        let n = match poll {
                            Poll::Ready(Ok(n)) => n,
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                            Poll::Pending => return self.bounded(cx, Poll::Pending),
                        };
                        rest.advance(n);
                    }
                    let state = std::mem::replace(&mut self.state, WriterState::Compact);
                    if let WriterState::Draining(tx, _) = state {
                        self.state = WriterState::Standard(tx);
                    }
                }
                WriterState::Standard(_) | WriterState::Compact => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl wrpc_transport::Index<ParamWriter> for ParamWriter {
    fn index(&self, path: &[usize]) -> anyhow::Result<ParamWriter> {
        let mut full = self.path.clone();
        full.extend_from_slice(path);
        let mut writer = ParamWriter::new(
            Arc::clone(&self.call),
            Arc::clone(&self.inner),
            full,
            Bytes::new(),
        );
        if let Some(hold) = &self.hold
            && hold.add_writer()
        {
            writer.state = WriterState::Held;
            writer.hold = Some(Arc::clone(hold));
        }
        Ok(writer)
    }
}

impl Drop for ParamWriter {
    fn drop(&mut self) {
        let shut = match self.state {
            WriterState::Held => false,
            WriterState::HeldClosed => true,
            _ => return,
        };
        if let Some(hold) = &self.hold {
            hold.drop_writer(&self.path, shut);
        }
    }
}

impl AsyncWrite for ParamWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match (&this.state, &this.hold) {
            (WriterState::Held, Some(hold)) => {
                let poll = hold.poll_write(cx, &this.path, buf);
                match ready!(this.bounded(cx, poll.map(Ok)))? {
                    Held::Buffered(n) => return Poll::Ready(Ok(n)),
                    Held::Closed | Held::Released => this.unhold(),
                }
            }
            (WriterState::HeldClosed, _) if !buf.is_empty() => {
                return Poll::Ready(Err(WrpcError::Protocol(format!(
                    "write to a nested parameter of `{}` after its shutdown",
                    this.call.slot.subject
                ))
                .into_io()));
            }
            _ => {}
        }
        ready!(this.poll_ready(cx))?;
        match &mut this.state {
            WriterState::Standard(tx) => {
                let poll = Pin::new(tx).poll_write(cx, buf);
                this.bounded(cx, poll)
            }
            _ if buf.is_empty() => Poll::Ready(Ok(0)),
            _ => Poll::Ready(Err(WrpcError::Protocol(format!(
                "the server of `{}` answered compactly, so it takes no more parameters",
                this.call.slot.subject
            ))
            .into_io())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let (WriterState::Held, Some(hold)) = (&this.state, &this.hold) {
            let poll = hold.poll_shutdown(cx, &this.path);
            match ready!(this.bounded(cx, poll.map(Ok)))? {
                Held::Closed => {
                    this.state = WriterState::HeldClosed;
                    return Poll::Ready(Ok(()));
                }
                Held::Buffered(_) | Held::Released => this.unhold(),
            }
        }
        ready!(this.poll_ready(cx))?;
        match &mut this.state {
            WriterState::Standard(tx) => {
                let poll = Pin::new(tx).poll_shutdown(cx);
                this.bounded(cx, poll)
            }
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// Results of one call (root or nested).
pub struct ResultReader {
    call: Arc<CallGuard>,
    path: Vec<usize>,
    deadline: Deadline,
    /// The root reader of a held call enforces the hold's window while it
    /// waits: `hold`'s timer.
    hold: Option<Arc<Hold>>,
    window: Option<Pin<Box<Sleep>>>,
}

impl ResultReader {
    fn new(call: Arc<CallGuard>, path: Vec<usize>) -> ResultReader {
        let deadline = Deadline::new(call.slot.deadline);
        ResultReader {
            call,
            path,
            deadline,
            hold: None,
            window: None,
        }
    }
}

impl wrpc_transport::Index<ResultReader> for ResultReader {
    fn index(&self, path: &[usize]) -> anyhow::Result<ResultReader> {
        let mut full = self.path.clone();
        full.extend_from_slice(path);
        Ok(ResultReader::new(Arc::clone(&self.call), full))
    }
}

impl AsyncRead for ResultReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let this = &mut *self;
        match this.call.slot.poll_read(cx, &this.path, buf) {
            Poll::Ready(Ok(Read::Copied | Read::Eof)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error.into_io())),
            Poll::Pending if this.deadline.poll_expired(cx) => {
                Poll::Ready(Err(this.call.slot.timeout_error().into_io()))
            }
            Poll::Pending => {
                if let Some(hold) = &this.hold
                    && hold.poll_window(cx, &mut this.window)
                {
                    this.hold = None;
                    this.window = None;
                }
                Poll::Pending
            }
        }
    }
}
