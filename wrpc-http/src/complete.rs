//! Responses sent whole when they are already complete.
//!
//! wRPC 0.0.1 sends a `stream<u8>` the sender has not finished as *pending*
//! plus nested messages (chunks, terminator, end), and a `future` likewise.
//! But every wRPC decoder also accepts a **non-empty inline list** as a
//! complete stream and `0x01 value` as a ready future. So a response whose
//! body is already fully written when the handler returns — the common case
//! for small responses — can go out in the results' first message, saving the
//! body's and the trailers' nested messages (about five NATS messages per
//! call), wire-compatible with every peer. Bodies that are empty (an empty
//! inline list means *pending*), larger than the limit, or not finished within
//! the wait stream as before.

use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use futures::StreamExt as _;
use http_body::{Body, Frame};
use wit_bindgen_wrpc::tokio_util::codec::Encoder;
use wit_bindgen_wrpc::wrpc_transport::{Deferred, DeferredFn, Encode, Index};

use crate::{ErrorCode, Fields, Response, headers_to_fields};

/// Largest body sent inline: 64 KiB, far below NATS's 1 MiB `max_payload`
/// (the headers and the rest of the record share the message), big enough
/// for typical API responses.
pub const MAX_INLINE_BODY_BYTES: usize = 64 * 1024;

/// How long to wait for a handler's body to finish before streaming it:
/// 5 ms, so a body the guest writes right after setting the response is
/// caught, while a trickling body is delayed by no more than that.
pub const INLINE_WAIT: Duration = Duration::from_millis(5);

/// What `wrpc:http/incoming-handler.handle` answers.
pub enum HandleResult {
    /// The record as generated: body and trailers stream (or the error code).
    Streamed(Result<Response, ErrorCode>),
    /// The whole response in the first message.
    Complete {
        /// Status code.
        status: u16,
        /// Headers.
        headers: Fields,
        /// The whole body (not empty).
        body: Bytes,
        /// Trailers, if any.
        trailers: Option<Fields>,
    },
}

/// Waits up to `wait` for `resp`'s body to finish (at most `max_bytes`):
/// a finished non-empty body makes a [`HandleResult::Complete`], anything
/// else streams (what was read already goes first).
pub async fn complete_or_stream<B>(
    resp: http::Response<B>,
    max_bytes: usize,
    wait: Duration,
) -> HandleResult
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display + Send,
{
    use http_body_util::BodyExt as _;
    let (parts, mut body) = resp.into_parts();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    let mut trailers = None;
    let deadline = tokio::time::Instant::now() + wait;
    let finished = loop {
        if size > max_bytes {
            break false;
        }
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_elapsed) => break false,
            Ok(None) => break true,
            // Read again by the streaming path, which logs and ends there.
            Ok(Some(Err(_))) => break false,
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    size = size.saturating_add(data.len());
                    if !data.is_empty() {
                        chunks.push(data);
                    }
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                    }
                    break true;
                }
            },
        }
    };
    if finished && size > 0 {
        let body = match chunks.len() {
            1 => chunks.pop().unwrap_or_default(),
            _ => {
                let mut all = BytesMut::with_capacity(size);
                for c in &chunks {
                    all.extend_from_slice(c);
                }
                all.freeze()
            }
        };
        return HandleResult::Complete {
            status: parts.status.as_u16(),
            headers: headers_to_fields(&parts.headers),
            body,
            trailers: trailers.as_ref().map(headers_to_fields),
        };
    }
    // Stream: what was read first, then the rest of the body.
    let read: Vec<Result<Frame<Bytes>, B::Error>> = chunks
        .into_iter()
        .map(|c| Ok(Frame::data(c)))
        .chain(trailers.map(|t| Ok(Frame::trailers(t))))
        .collect();
    let rest = if finished {
        None
    } else {
        Some(http_body_util::BodyStream::new(body))
    };
    let frames = futures::stream::iter(read).chain(futures::stream::iter(rest).flatten());
    let resp = http::Response::from_parts(parts, http_body_util::StreamBody::new(frames));
    HandleResult::Streamed(Ok(crate::response_to_wire(resp)))
}

/// Encoder of [`HandleResult`]: the generated encoding, or the inline one.
pub struct HandleResultEncoder<W>
where
    Result<Response, ErrorCode>: Encode<W>,
{
    streamed: <Result<Response, ErrorCode> as Encode<W>>::Encoder,
}

impl<W> Default for HandleResultEncoder<W>
where
    Result<Response, ErrorCode>: Encode<W>,
{
    fn default() -> Self {
        Self {
            streamed: Default::default(),
        }
    }
}

impl<W> Deferred<W> for HandleResultEncoder<W>
where
    Result<Response, ErrorCode>: Encode<W>,
{
    fn take_deferred(&mut self) -> Option<DeferredFn<W>> {
        self.streamed.take_deferred()
    }
}

impl<W> Encoder<HandleResult> for HandleResultEncoder<W>
where
    W: tokio::io::AsyncWrite + Index<W> + Send + Sync + Unpin + 'static,
    Result<Response, ErrorCode>: Encode<W>,
    std::io::Error: From<
        <<Result<Response, ErrorCode> as Encode<W>>::Encoder as Encoder<
            Result<Response, ErrorCode>,
        >>::Error,
    >,
{
    type Error = std::io::Error;

    fn encode(&mut self, item: HandleResult, dst: &mut BytesMut) -> std::io::Result<()> {
        match item {
            HandleResult::Streamed(result) => Ok(self.streamed.encode(result, dst)?),
            HandleResult::Complete {
                status,
                headers,
                body,
                trailers,
            } => {
                // result::ok, then the record's fields in order.
                dst.put_u8(0x00);
                encode_plain::<W, _>(body, dst)?;
                // future<option<fields>>: ready.
                dst.put_u8(0x01);
                encode_plain::<W, _>(trailers, dst)?;
                encode_plain::<W, _>(status, dst)?;
                encode_plain::<W, _>(headers, dst)
            }
        }
    }
}

/// Encodes a value without async parts with its standard encoder.
fn encode_plain<W, T: Encode<W>>(value: T, dst: &mut BytesMut) -> std::io::Result<()>
where
    <T::Encoder as Encoder<T>>::Error: Into<std::io::Error>,
{
    let mut enc = T::Encoder::default();
    enc.encode(value, dst).map_err(Into::into)?;
    if enc.take_deferred().is_some() {
        return Err(std::io::Error::other("an inline value had async parts"));
    }
    Ok(())
}

impl<W> Encode<W> for HandleResult
where
    W: tokio::io::AsyncWrite + Index<W> + Send + Sync + Unpin + 'static,
    Result<Response, ErrorCode>: Encode<W>,
    std::io::Error: From<
        <<Result<Response, ErrorCode> as Encode<W>>::Encoder as Encoder<
            Result<Response, ErrorCode>,
        >>::Error,
    >,
{
    type Encoder = HandleResultEncoder<W>;
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::StreamExt as _;
    use wit_bindgen_wrpc::tokio_util::codec::Decoder as _;
    use wit_bindgen_wrpc::wrpc_transport::Decode;

    use super::*;

    /// A transport stream that is never used: inline values need none.
    struct Unused;

    impl Index<Self> for Unused {
        fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
            anyhow::bail!("no nested stream expected, got path {path:?}")
        }
    }

    impl tokio::io::AsyncWrite for Unused {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl tokio::io::AsyncRead for Unused {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// The inline form decodes, with the standard (generated) decoder every
    /// wRPC peer uses, to the same response with nothing left pending.
    #[tokio::test]
    async fn an_inline_answer_is_a_complete_standard_response() {
        let mut buf = BytesMut::new();
        let mut enc = <HandleResult as Encode<Unused>>::Encoder::default();
        enc.encode(
            HandleResult::Complete {
                status: 201,
                headers: vec![("x-a".into(), vec![Bytes::from_static(b"1")])],
                body: Bytes::from_static(b"a: 1"),
                trailers: Some(vec![("x-t".into(), vec![Bytes::from_static(b"2")])]),
            },
            &mut buf,
        )
        .unwrap();
        assert!(Deferred::<Unused>::take_deferred(&mut enc).is_none());
        let mut dec = <Result<Response, ErrorCode> as Decode<Unused>>::Decoder::default();
        let decoded = dec.decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty(), "{buf:?} left over");
        let resp = decoded.unwrap();
        assert_eq!(resp.status, 201);
        assert_eq!(resp.headers[0].0, "x-a");
        let body: Vec<Bytes> = resp.body.collect().await;
        assert_eq!(body, vec![Bytes::from_static(b"a: 1")]);
        let trailers = resp.trailers.await.unwrap();
        assert_eq!(trailers[0].0, "x-t");
    }

    #[tokio::test]
    async fn empty_slow_or_large_bodies_stream() {
        let empty = http::Response::new(http_body_util::Empty::<Bytes>::new());
        assert!(matches!(
            complete_or_stream(empty, 16, INLINE_WAIT).await,
            HandleResult::Streamed(Ok(_))
        ));
        let large = http::Response::new(http_body_util::Full::new(Bytes::from(vec![1u8; 32])));
        assert!(matches!(
            complete_or_stream(large, 16, INLINE_WAIT).await,
            HandleResult::Streamed(Ok(_))
        ));
        let small = http::Response::new(http_body_util::Full::new(Bytes::from_static(b"hi")));
        match complete_or_stream(small, 16, INLINE_WAIT).await {
            HandleResult::Complete { body, .. } => assert_eq!(body, Bytes::from_static(b"hi")),
            HandleResult::Streamed(_) => panic!("a finished small body should go inline"),
        }
    }
}
