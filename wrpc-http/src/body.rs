//! Bodies on the wire: `stream<u8>` plus `future<option<fields>>`, to and from
//! an [`http_body::Body`], chunk by chunk.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use http_body::{Body, Frame};

use crate::Fields;
use crate::convert::fields_to_headers;

/// A trailer a Trellis sender adds when its body failed part-way (a client
/// that went away, a body over the server's limit): `wrpc:http`'s
/// `stream<u8>` cannot carry an error, so without it the receiver would take
/// the part that arrived for the whole body. A Trellis receiver turns it
/// into a body error; other receivers see an ordinary trailer.
pub const BODY_ERROR_TRAILER: &str = "trellis-body-error";

/// The wire form of a body stream.
pub type WireStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;
/// The wire form of a body's trailers.
pub type WireTrailers = Pin<Box<dyn Future<Output = Option<Fields>> + Send>>;

/// A body received on the wire, as an [`http_body::Body`]: data frames as the
/// chunks arrive, then the trailers (if the sender had any).
pub struct WireBody {
    body: Option<WireStream>,
    trailers: Option<WireTrailers>,
}

impl WireBody {
    /// A body from its wire parts.
    pub fn new(body: WireStream, trailers: WireTrailers) -> Self {
        Self {
            body: Some(body),
            trailers: Some(trailers),
        }
    }
}

/// The body received on the wire failed: its sender's body failed, or the
/// trailers are not valid HTTP fields.
#[derive(Debug, thiserror::Error)]
#[error("body received on the wire: {0}")]
pub struct WireBodyError(#[source] crate::ConvertError);

impl Body for WireBody {
    type Data = Bytes;
    type Error = WireBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, WireBodyError>>> {
        if let Some(body) = self.body.as_mut() {
            match body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(chunk)) => return Poll::Ready(Some(Ok(Frame::data(chunk)))),
                Poll::Ready(None) => self.body = None,
            }
        }
        let Some(trailers) = self.trailers.as_mut() else {
            return Poll::Ready(None);
        };
        match trailers.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(fields) => {
                self.trailers = None;
                if let Some(message) = fields.as_ref().and_then(body_error) {
                    return Poll::Ready(Some(Err(WireBodyError(crate::ConvertError::BodyFailed(
                        message,
                    )))));
                }
                match fields.map(fields_to_headers) {
                    None => Poll::Ready(None),
                    Some(Ok(headers)) => Poll::Ready(Some(Ok(Frame::trailers(headers)))),
                    Some(Err(e)) => Poll::Ready(Some(Err(WireBodyError(e)))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_none() && self.trailers.is_none()
    }
}

/// The message of a [`BODY_ERROR_TRAILER`] among `fields`.
fn body_error(fields: &Fields) -> Option<String> {
    fields
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(BODY_ERROR_TRAILER))
        .map(|(_, values)| {
            values
                .first()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        })
}

/// Splits `body` into its wire parts. The stream yields the data frames as
/// the body produces them (empty frames are skipped: an empty chunk ends a
/// stream on the wire); the trailers future resolves once the stream has
/// ended. A body error ends the stream early with a [`BODY_ERROR_TRAILER`]
/// trailer (`wrpc:http` has no other way to carry it) and is logged with
/// `what`.
pub fn split_body<B>(body: B, what: &'static str) -> (WireStream, WireTrailers)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let stream = SplitStream {
        body: Box::pin(body),
        trailers: Some(tx),
        what,
    };
    let trailers = async move { rx.await.ok().flatten() };
    (Box::pin(stream), Box::pin(trailers))
}

struct SplitStream<B> {
    body: Pin<Box<B>>,
    trailers: Option<tokio::sync::oneshot::Sender<Option<Fields>>>,
    what: &'static str,
}

impl<B> SplitStream<B> {
    fn finish(&mut self, trailers: Option<Fields>) {
        if let Some(tx) = self.trailers.take() {
            let _ = tx.send(trailers);
        }
    }
}

impl<B> Stream for SplitStream<B>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            if self.trailers.is_none() {
                return Poll::Ready(None);
            }
            let frame = match self.body.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.finish(None);
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    let message = e.to_string();
                    tracing::warn!(error = %message, "{} body failed; the body ends here on the wire, with a `{BODY_ERROR_TRAILER}` trailer", self.what);
                    self.finish(Some(vec![(
                        BODY_ERROR_TRAILER.to_string(),
                        vec![Bytes::from(message)],
                    )]));
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => return Poll::Ready(Some(data)),
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let fields = crate::headers_to_fields(&trailers);
                        self.finish(Some(fields));
                        return Poll::Ready(None);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn a_body_and_its_trailers_survive_the_round_trip() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", http::HeaderValue::from_static("42"));
        let frames = vec![
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"hello "))),
            Ok(Frame::data(Bytes::new())),
            Ok(Frame::data(Bytes::from_static(b"world"))),
            Ok(Frame::trailers(trailers.clone())),
        ];
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
        let (stream, fut) = split_body(body, "test");
        let chunks: Vec<Bytes> = stream.collect().await;
        assert_eq!(
            chunks,
            vec![Bytes::from_static(b"hello "), Bytes::from_static(b"world")]
        );
        let fields = fut.await.unwrap();
        let (again, fut) = (
            Box::pin(futures::stream::iter(chunks)) as WireStream,
            Box::pin(async move { Some(fields) }) as WireTrailers,
        );
        let collected = WireBody::new(again, fut).collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"hello world"));
    }

    #[tokio::test]
    async fn a_failed_body_fails_on_the_other_side_instead_of_ending() {
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"half"))),
            Err("the client went away"),
        ];
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
        let (stream, trailers) = split_body(body, "test");
        let chunks: Vec<Bytes> = stream.collect().await;
        assert_eq!(chunks, vec![Bytes::from_static(b"half")]);
        let trailers = trailers.await;
        let received = WireBody::new(
            Box::pin(futures::stream::iter(chunks)),
            Box::pin(async move { trailers }),
        );
        let error = received.collect().await.unwrap_err().to_string();
        assert!(error.contains("the client went away"), "{error}");
    }
}
