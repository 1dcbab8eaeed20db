//! `http-hello`: the smallest useful `wasi:http/proxy` component.
//!
//! `GET /` answers `Hello from Trellis!`. The other routes exist so the host's
//! whole-system tests can provoke, from the outside, the situations a host
//! must survive:
//!
//! | route          | behaviour                                   | what it tests                 |
//! |----------------|---------------------------------------------|-------------------------------|
//! | `/`            | `200 text/plain` `Hello from Trellis!\n`    | the happy path                |
//! | `/trap`        | panics, which traps the instance            | trap isolation, 500 reply     |
//! | `/loop`        | spins forever                               | the per-invocation deadline   |
//! | `/sleep?ms=N`  | blocks N ms on a monotonic-clock pollable, then `slept N` | drain on scale-down |
//! | `/env`         | `env=N fs=ok\|denied`                        | nothing is granted by default |
//!
//! Every response carries the request path in an `x-path` header, so a test
//! can tell which request a response belongs to.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasi::http::proxy::export!(HttpHello);

/// Upper bound for `/sleep?ms=N`, so a typo in a test cannot park an instance
/// for hours.
const MAX_SLEEP_MS: u64 = 10 * 60 * 1000;

struct HttpHello;

/// What to send back.
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }
}

impl wasi::exports::http::incoming_handler::Guest for HttpHello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let (path, query) = match path_with_query.split_once('?') {
            Some((path, query)) => (path.to_string(), query.to_string()),
            None => (path_with_query, String::new()),
        };
        let reply = route(&request.method(), &path, &query);
        // If writing the response fails the client has gone away; there is
        // nobody left to tell, so the error is dropped on purpose.
        let _ = respond(response_out, &path, reply);
    }
}

fn route(method: &Method, path: &str, query: &str) -> Reply {
    if !matches!(method, Method::Get) {
        return Reply::new(405, "method not allowed: only GET is served\n");
    }
    match path {
        "/" => Reply::new(200, "Hello from Trellis!\n"),
        "/trap" => panic!("trap requested by GET /trap"),
        "/loop" => busy_loop(),
        "/sleep" => match sleep_millis(query) {
            Ok(ms) => {
                wasi::clocks::monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000))
                    .block();
                Reply::new(200, format!("slept {ms}"))
            }
            Err(message) => Reply::new(400, message),
        },
        "/env" => {
            let vars = std::env::vars().count();
            let fs = if std::fs::read_dir("/").is_ok() {
                "ok"
            } else {
                "denied"
            };
            Reply::new(200, format!("env={vars} fs={fs}"))
        }
        _ => Reply::new(404, format!("not found: {path}\n")),
    }
}

/// Spins without ever yielding, so only the host's execution deadline (epoch
/// interruption) can stop it.
fn busy_loop() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Parses `ms=N` out of a query string.
fn sleep_millis(query: &str) -> Result<u64, String> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .ok_or_else(|| "missing query parameter ms (use /sleep?ms=N)\n".to_string())?;
    let ms: u64 = value
        .parse()
        .map_err(|_| format!("ms must be a non-negative integer, got {value:?}\n"))?;
    if ms > MAX_SLEEP_MS {
        return Err(format!("ms must be at most {MAX_SLEEP_MS}, got {ms}\n"));
    }
    Ok(ms)
}

/// Why a response could not be written.
#[derive(Debug)]
enum RespondError {
    Header,
    Body,
}

fn respond(out: ResponseOutparam, path: &str, reply: Reply) -> Result<(), RespondError> {
    let content_type = (
        "content-type".to_string(),
        b"text/plain; charset=utf-8".to_vec(),
    );
    let x_path = ("x-path".to_string(), path.as_bytes().to_vec());
    // A path that is not a valid header value still gets its response, just
    // without the echo.
    let headers = Fields::from_list(&[content_type.clone(), x_path])
        .or_else(|_| Fields::from_list(&[content_type]))
        .map_err(|_| RespondError::Header)?;
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(reply.status)
        .map_err(|()| RespondError::Header)?;
    let body = response.body().map_err(|()| RespondError::Body)?;
    ResponseOutparam::set(out, Ok(response));

    let mut stream = body.write().map_err(|()| RespondError::Body)?;
    stream
        .write_all(reply.body.as_bytes())
        .map_err(|_| RespondError::Body)?;
    stream.flush().map_err(|_| RespondError::Body)?;
    // The stream is a child of the body resource and must be dropped first.
    drop(stream);
    OutgoingBody::finish(body, None).map_err(|_| RespondError::Body)
}

#[cfg(test)]
mod tests {
    use super::sleep_millis;

    #[test]
    fn sleep_query_parses() {
        assert_eq!(sleep_millis("ms=250"), Ok(250));
        assert_eq!(sleep_millis("a=b&ms=7"), Ok(7));
        assert!(sleep_millis("").is_err());
        assert!(sleep_millis("ms=-1").is_err());
        assert!(sleep_millis("ms=999999999999").is_err());
    }
}
