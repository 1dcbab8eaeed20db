//! `http` requests and responses to and from the `wrpc:http` records.

use bytes::Bytes;
use http_body::Body;

use crate::body::{WireBody, split_body};
use crate::{Fields, Method, Request, Response, Scheme};

/// A request or response that cannot be carried across: the message says
/// which part is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// A header name received on the wire is not a valid HTTP header name.
    #[error("invalid header name `{0}`")]
    HeaderName(String),
    /// A header value received on the wire is not a valid HTTP header value.
    #[error("invalid value of header `{0}`")]
    HeaderValue(String),
    /// The method is not a valid HTTP method.
    #[error("invalid HTTP method `{0}`")]
    Method(String),
    /// Scheme, authority or path do not make a URI.
    #[error("invalid request URI: {0}")]
    Uri(String),
    /// The status code is not in 100..=999.
    #[error("invalid HTTP status {0}")]
    Status(u16),
    /// The sender's body failed after some of it was sent (its trailers
    /// carry [`BODY_ERROR_TRAILER`](crate::BODY_ERROR_TRAILER)).
    #[error("the sender's body failed: {0}")]
    BodyFailed(String),
}

/// Wire fields to a header map (repeated names keep every value).
pub fn fields_to_headers(fields: Fields) -> Result<http::HeaderMap, ConvertError> {
    let mut headers = http::HeaderMap::with_capacity(fields.len());
    for (name, values) in fields {
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConvertError::HeaderName(name.clone()))?;
        for value in values {
            let value = http::HeaderValue::from_maybe_shared(value)
                .map_err(|_| ConvertError::HeaderValue(name.clone()))?;
            headers.append(header.clone(), value);
        }
    }
    Ok(headers)
}

/// A header map to wire fields: one entry per name, its values in order.
pub fn headers_to_fields(headers: &http::HeaderMap) -> Fields {
    headers
        .keys()
        .map(|name| {
            let values = headers
                .get_all(name)
                .iter()
                .map(|v| Bytes::copy_from_slice(v.as_bytes()))
                .collect();
            (name.as_str().to_string(), values)
        })
        .collect()
}

fn method_to_wire(method: &http::Method) -> Method {
    match *method {
        http::Method::GET => Method::Get,
        http::Method::HEAD => Method::Head,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::DELETE => Method::Delete,
        http::Method::CONNECT => Method::Connect,
        http::Method::OPTIONS => Method::Options,
        http::Method::TRACE => Method::Trace,
        http::Method::PATCH => Method::Patch,
        _ => Method::Other(method.as_str().to_string()),
    }
}

fn method_from_wire(method: Method) -> Result<http::Method, ConvertError> {
    Ok(match method {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Connect => http::Method::CONNECT,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Patch => http::Method::PATCH,
        Method::Other(other) => {
            http::Method::from_bytes(other.as_bytes()).map_err(|_| ConvertError::Method(other))?
        }
    })
}

fn scheme_to_wire(scheme: &http::uri::Scheme) -> Scheme {
    if *scheme == http::uri::Scheme::HTTP {
        Scheme::Http
    } else if *scheme == http::uri::Scheme::HTTPS {
        Scheme::Https
    } else {
        Scheme::Other(scheme.as_str().to_string())
    }
}

fn scheme_from_wire(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
        // Only http and https make sense to a handler; keep the URI valid.
        Scheme::Other(_) => "http",
    }
}

/// An `http` request to the wire record. The body streams: it is read as the
/// receiver reads the record's `body` stream. `authority` is the URI's, else
/// the `host` header.
pub fn request_to_wire<B>(req: http::Request<B>) -> Request
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    let (parts, body) = req.into_parts();
    let (body, trailers) = split_body(body, "request");
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        });
    Request {
        body,
        trailers,
        method: method_to_wire(&parts.method),
        path_with_query: parts.uri.path_and_query().map(|p| p.as_str().to_string()),
        scheme: parts.uri.scheme().map(scheme_to_wire),
        authority,
        headers: headers_to_fields(&parts.headers),
    }
}

/// The wire record to an `http` request whose body streams from the wire.
/// Without a scheme the URI has none (origin form, as a server receives it).
pub fn request_from_wire(req: Request) -> Result<http::Request<WireBody>, ConvertError> {
    let Request {
        body,
        trailers,
        method,
        path_with_query,
        scheme,
        authority,
        headers,
    } = req;
    let path = path_with_query.unwrap_or_else(|| "/".to_string());
    let mut uri = http::Uri::builder().path_and_query(path.as_str());
    if let Some(authority) = &authority {
        uri = uri
            .scheme(scheme.map_or("http", scheme_from_wire))
            .authority(authority.as_str());
    }
    let uri = uri
        .build()
        .map_err(|e| ConvertError::Uri(format!("{e} (authority {authority:?}, path `{path}`)")))?;
    let mut out = http::Request::new(WireBody::new(body, trailers));
    *out.method_mut() = method_from_wire(method)?;
    *out.uri_mut() = uri;
    *out.headers_mut() = fields_to_headers(headers)?;
    Ok(out)
}

/// An `http` response to the wire record; the body streams.
pub fn response_to_wire<B>(resp: http::Response<B>) -> Response
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    let (parts, body) = resp.into_parts();
    let (body, trailers) = split_body(body, "response");
    Response {
        body,
        trailers,
        status: parts.status.as_u16(),
        headers: headers_to_fields(&parts.headers),
    }
}

/// The wire record to an `http` response whose body streams from the wire.
pub fn response_from_wire(resp: Response) -> Result<http::Response<WireBody>, ConvertError> {
    let Response {
        body,
        trailers,
        status,
        headers,
    } = resp;
    let mut out = http::Response::new(WireBody::new(body, trailers));
    *out.status_mut() =
        http::StatusCode::from_u16(status).map_err(|_| ConvertError::Status(status))?;
    *out.headers_mut() = fields_to_headers(headers)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn a_request_survives_the_round_trip() {
        let req = http::Request::builder()
            .method("PATCH")
            .uri("http://example.test:8080/a/b?c=d")
            .header("x-one", "1")
            .header("x-many", "a")
            .header("x-many", "b")
            .body(http_body_util::Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        let wire = request_to_wire(req);
        assert_eq!(wire.authority.as_deref(), Some("example.test:8080"));
        let back = request_from_wire(wire).unwrap();
        assert_eq!(back.method(), http::Method::PATCH);
        assert_eq!(back.uri().to_string(), "http://example.test:8080/a/b?c=d");
        let many: Vec<_> = back.headers().get_all("x-many").iter().collect();
        assert_eq!(many, ["a", "b"]);
        let body = back.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, Bytes::from_static(b"payload"));
    }

    #[tokio::test]
    async fn an_origin_form_request_keeps_its_host_as_authority() {
        let req = http::Request::builder()
            .uri("/x")
            .header("host", "h.test")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let wire = request_to_wire(req);
        assert_eq!(wire.authority.as_deref(), Some("h.test"));
        assert!(wire.scheme.is_none());
        let back = request_from_wire(wire).unwrap();
        assert_eq!(back.uri().path(), "/x");
        assert_eq!(back.uri().host(), Some("h.test"));
    }

    #[test]
    fn bad_fields_are_refused_with_the_header_name() {
        let err = fields_to_headers(vec![("bad name".into(), vec![])]).unwrap_err();
        assert!(err.to_string().contains("bad name"), "{err}");
        let err =
            fields_to_headers(vec![("x".into(), vec![Bytes::from_static(b"a\nb")])]).unwrap_err();
        assert!(err.to_string().contains("`x`"), "{err}");
    }

    #[test]
    fn statuses_out_of_range_are_refused() {
        let resp = Response {
            body: Box::pin(futures::stream::empty()),
            trailers: Box::pin(async { None }),
            status: 42,
            headers: vec![],
        };
        assert!(matches!(
            response_from_wire(resp),
            Err(ConvertError::Status(42))
        ));
    }
}
