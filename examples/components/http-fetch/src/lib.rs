//! `http-fetch`: outgoing HTTP from a `wasi:http/proxy` component.
//!
//! `GET /fetch?url=URL` fetches `URL` (percent-encoded in the query) with
//! `wasi:http/outgoing-handler` and answers `200` with `{status}\n{body}`: the
//! upstream status code, a newline, then the upstream body (at most 1 MiB).
//! If the request cannot be made (no http-client capability linked, a
//! connection refused, …) it answers `502` with `fetch failed: {error}`.
//!
//! On Trellis the component's `wasi:http/outgoing-handler` link must target
//! `builtin://http-client`; without it the host refuses the request and says
//! what to link.

use std::io::Write as _;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasi::io::streams::StreamError;

wasi::http::proxy::export!(HttpFetch);

/// The most of the upstream body that is read and echoed.
const MAX_BODY: usize = 1024 * 1024;

struct HttpFetch;

impl wasi::exports::http::incoming_handler::Guest for HttpFetch {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((path_with_query.as_str(), ""));
        let (status, body) = match (request.method(), path) {
            (Method::Get, "/fetch") => match query_param(query, "url") {
                Some(url) => match fetch(&url) {
                    Ok((status, body)) => {
                        let mut out = format!("{status}\n").into_bytes();
                        out.extend_from_slice(&body);
                        (200, out)
                    }
                    Err(e) => (502, format!("fetch failed: {e}\n").into_bytes()),
                },
                None => (
                    400,
                    b"missing query parameter url (use /fetch?url=...)\n".to_vec(),
                ),
            },
            (Method::Get, _) => (404, format!("not found: {path}\n").into_bytes()),
            _ => (405, b"method not allowed: only GET is served\n".to_vec()),
        };
        // A client that went away cannot be told anything.
        let _ = respond(response_out, status, &body);
    }
}

/// Fetches `url` with `GET`; the upstream status and body.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(format!(
            "only http:// and https:// URLs are fetched, got {url:?}"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "invalid scheme".to_string())?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("invalid authority {authority:?}"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| format!("invalid path {path:?}"))?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let response = loop {
        match pending.get() {
            Some(Ok(Ok(response))) => break response,
            Some(Ok(Err(e))) => return Err(format!("{e:?}")),
            Some(Err(())) => return Err("the response was already taken".into()),
            None => pending.subscribe().block(),
        }
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| "the response body was already taken".to_string())?;
    let stream = body
        .stream()
        .map_err(|()| "the response body stream was already taken".to_string())?;
    let mut out = Vec::new();
    while out.len() < MAX_BODY {
        match stream.blocking_read((MAX_BODY - out.len()) as u64) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("reading the body: {}", e.to_debug_string()));
            }
        }
    }
    // Children before parents: the stream, then the body, then the response.
    drop(stream);
    drop(body);
    drop(response);
    Ok((status, out))
}

/// The percent-decoded value of `name` in a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                match std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) -> Result<(), ()> {
    let headers = Fields::from_list(&[(
        "content-type".to_string(),
        b"text/plain; charset=utf-8".to_vec(),
    )])
    .map_err(|_| ())?;
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status)?;
    let outgoing = response.body()?;
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write()?;
    stream.write_all(body).map_err(|_| ())?;
    stream.flush().map_err(|_| ())?;
    drop(stream);
    OutgoingBody::finish(outgoing, None).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::{percent_decode, query_param};

    #[test]
    fn decodes_the_url_parameter() {
        assert_eq!(
            query_param("url=http%3A%2F%2F127.0.0.1%3A80%2Fa%3Fb%3Dc", "url").as_deref(),
            Some("http://127.0.0.1:80/a?b=c")
        );
        assert_eq!(query_param("x=1", "url"), None);
        assert_eq!(percent_decode("100%"), "100%");
    }
}
