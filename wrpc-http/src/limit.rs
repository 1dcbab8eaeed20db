//! The request body limit of an HTTP server: provider config key
//! `max_request_body_bytes` (the host's `builtin://http-server` and the
//! `http-server-provider` process alike; no limit when unset).
//!
//! A request that declares a larger `content-length` is answered
//! `413 Payload Too Large` before any component sees it. A body without a
//! declared length (chunked) is counted as it streams; once it passes the
//! limit the client gets the 413 whatever the component does, and the
//! component never takes the body for complete: a built-in server fails the
//! guest's read with `HTTP-request-body-size`; over `wrpc:http`, whose
//! `stream<u8>` cannot carry an error, the body ends with the
//! [`BODY_ERROR_TRAILER`](crate::BODY_ERROR_TRAILER) trailer, which a Trellis
//! host turns into a failed read.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The provider config key of the limit, in bytes.
pub const MAX_REQUEST_BODY_KEY: &str = "max_request_body_bytes";

/// The body every server request handler receives: the connection's body,
/// counted against the listener's limit.
pub type RequestBody = CappedBody<hyper::body::Incoming>;

/// A body that fails once more than `limit` bytes went through, and records
/// that it did.
#[derive(Debug)]
pub struct CappedBody<B> {
    inner: B,
    limit: u64,
    seen: u64,
    tripped: Arc<AtomicBool>,
}

/// An error of a [`CappedBody`].
#[derive(Debug, thiserror::Error)]
pub enum CappedError<E> {
    /// More than the limit arrived.
    #[error(
        "the request body is larger than this server's limit of {limit} bytes (`max_request_body_bytes`)"
    )]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The body itself failed.
    #[error(transparent)]
    Body(E),
}

/// Whether a body passed its limit; cheap to clone, readable after the body
/// was handed on.
#[derive(Clone, Debug)]
pub struct Tripped(Arc<AtomicBool>);

impl Tripped {
    /// The body passed its limit.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl<B> CappedBody<B> {
    /// `inner`, failing past `limit` bytes (`None`: no limit).
    pub fn new(inner: B, limit: Option<u64>) -> Self {
        CappedBody {
            inner,
            limit: limit.unwrap_or(u64::MAX),
            seen: 0,
            tripped: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<u64> {
        (self.limit != u64::MAX).then_some(self.limit)
    }

    /// Tells later whether this body passed its limit.
    pub fn tripped(&self) -> Tripped {
        Tripped(Arc::clone(&self.tripped))
    }
}

impl<B> Body for CappedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = CappedError<B::Error>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.tripped.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(CappedError::TooLarge { limit: this.limit })));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.limit {
                        this.tripped.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err(CappedError::TooLarge { limit: this.limit })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(CappedError::Body(e)))),
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a request must be refused before it reaches a component: its
/// declared `content-length` is over `limit`. The text is the 413's body.
pub fn declared_too_large(headers: &http::HeaderMap, limit: Option<u64>) -> Option<String> {
    let limit = limit?;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    (declared > limit).then(|| {
        format!(
            "request body of {declared} bytes is larger than this server's limit of {limit} bytes (`{MAX_REQUEST_BODY_KEY}`)\n"
        )
    })
}

/// The 413 text for a body that passed `limit` while streaming.
pub fn streamed_too_large(limit: Option<u64>) -> String {
    format!(
        "request body is larger than this server's limit of {} bytes (`{MAX_REQUEST_BODY_KEY}`)\n",
        limit.unwrap_or(u64::MAX)
    )
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt as _, Full, StreamBody};

    use super::*;

    #[test]
    fn a_declared_length_over_the_limit_is_refused() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, "11".parse().unwrap());
        assert!(declared_too_large(&headers, None).is_none());
        assert!(declared_too_large(&headers, Some(11)).is_none());
        let text = declared_too_large(&headers, Some(10)).unwrap();
        assert!(
            text.contains("11 bytes") && text.contains("limit of 10 bytes"),
            "{text}"
        );
        assert!(declared_too_large(&http::HeaderMap::new(), Some(1)).is_none());
    }

    #[tokio::test]
    async fn a_streamed_body_fails_past_the_limit_and_says_so() {
        let chunks = futures::stream::iter(
            ["abcd", "efgh", "ijkl"]
                .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c)))),
        );
        let body = CappedBody::new(StreamBody::new(chunks), Some(10));
        let tripped = body.tripped();
        let error = body.collect().await.unwrap_err();
        assert!(matches!(error, CappedError::TooLarge { limit: 10 }));
        assert!(tripped.get());

        let body = CappedBody::new(Full::new(Bytes::from_static(b"0123456789")), Some(10));
        let tripped = body.tripped();
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 10);
        assert!(!tripped.get());
    }
}
