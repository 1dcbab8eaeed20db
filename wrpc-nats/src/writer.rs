//! [`SubjectWriter`]: an `AsyncWrite` that publishes each write as one NATS
//! message (cut at `max_payload`) and ends the stream with an empty message.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use async_nats::Subject;
use async_nats::message::OutboundMessage;
use bytes::Bytes;
use futures::Sink as _;
use tokio::io::AsyncWrite;

use crate::error::WrpcError;

/// Publishes one outbound message through the client's sink interface
/// (no await, so usable from `poll_*`); the message is built only once the
/// connection has room for it.
pub(crate) fn poll_send(
    nats: &mut async_nats::Client,
    cx: &mut Context<'_>,
    message: impl FnOnce() -> OutboundMessage,
) -> Poll<Result<(), WrpcError>> {
    ready!(Pin::new(&mut *nats).poll_ready(cx)).map_err(connection_error)?;
    Pin::new(&mut *nats)
        .start_send(message())
        .map_err(connection_error)?;
    Poll::Ready(Ok(()))
}

pub(crate) fn connection_error(error: impl std::fmt::Display) -> WrpcError {
    WrpcError::Connection(format!("failed to publish: {error}"))
}

/// Publishes a message from a `Drop` impl: spawned on the current runtime
/// (best effort; without a runtime there is nobody to publish it).
pub(crate) fn publish_detached(nats: &async_nats::Client, message: OutboundMessage) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::debug!(subject = %message.subject, "no runtime to publish a stream end from drop");
        return;
    };
    let nats = nats.clone();
    runtime.spawn(async move {
        let result = match (message.reply, message.headers) {
            (None, None) => nats.publish(message.subject, message.payload).await,
            (None, Some(headers)) => {
                nats.publish_with_headers(message.subject, headers, message.payload)
                    .await
            }
            (Some(reply), None) => {
                nats.publish_with_reply(message.subject, reply, message.payload)
                    .await
            }
            (Some(reply), Some(headers)) => {
                nats.publish_with_reply_and_headers(
                    message.subject,
                    reply,
                    headers,
                    message.payload,
                )
                .await
            }
        };
        if let Err(error) = result {
            tracing::debug!(%error, "failed to publish from drop");
        }
    });
}

/// Writes a byte stream to one subject.
pub(crate) struct SubjectWriter {
    nats: async_nats::Client,
    subject: Subject,
    shutdown: bool,
    end_on_drop: bool,
}

impl SubjectWriter {
    pub(crate) fn new(nats: async_nats::Client, subject: Subject) -> SubjectWriter {
        SubjectWriter {
            nats,
            subject,
            shutdown: false,
            end_on_drop: true,
        }
    }

    /// A writer whose owner sends the end message itself when dropped
    /// unshut (the root result writer, whose end may carry an error).
    pub(crate) fn without_end_on_drop(mut self) -> SubjectWriter {
        self.end_on_drop = false;
        self
    }

    /// Whether the end message was sent.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown
    }

    pub(crate) fn subject(&self) -> &Subject {
        &self.subject
    }
}

/// A message without reply subject and headers.
pub(crate) fn outbound(subject: &Subject, payload: Bytes) -> OutboundMessage {
    OutboundMessage {
        subject: subject.clone(),
        payload,
        reply: None,
        headers: None,
    }
}

impl AsyncWrite for SubjectWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            // An empty message would end the stream.
            return Poll::Ready(Ok(0));
        }
        if self.shutdown {
            return Poll::Ready(Err(WrpcError::Protocol(format!(
                "write to `{}` after the stream was shut down",
                self.subject
            ))
            .into_io()));
        }
        let max = self.nats.max_payload();
        if max == 0 {
            return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
        }
        let n = buf.len().min(max);
        let chunk = buf.get(..n).unwrap_or(buf);
        let this = &mut *self;
        let subject = &this.subject;
        ready!(poll_send(&mut this.nats, cx, || outbound(
            subject,
            Bytes::copy_from_slice(chunk)
        )))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // async-nats's connection task flushes its buffer itself as soon as
        // it has nothing more to write; an explicit flush per call costs a
        // round trip to the connection task.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.shutdown {
            return Poll::Ready(Ok(()));
        }
        let this = &mut *self;
        let subject = &this.subject;
        ready!(poll_send(&mut this.nats, cx, || outbound(
            subject,
            Bytes::new()
        )))?;
        self.shutdown = true;
        Poll::Ready(Ok(()))
    }
}

impl Drop for SubjectWriter {
    fn drop(&mut self) {
        if !self.shutdown && self.end_on_drop {
            publish_detached(&self.nats, outbound(&self.subject, Bytes::new()));
        }
    }
}
