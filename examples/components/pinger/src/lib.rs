//! `pinger`: the HTTP front of the ping/pong example. Each request calls the
//! imported `example:pong/pingpong` — wherever the link points.
//!
//! | route                         | calls                               | answers                      |
//! |-------------------------------|-------------------------------------|------------------------------|
//! | `/`                           | `ping()`                            | `ping -> pong`               |
//! | `/echo?msg=M&times=N&tags=a,b`| `echo({M, N, [a, b]})`              | one line per echoed item     |
//! | `/work?ms=N`                  | `work(N)`                           | `worked N ms`                |
//! | `/answered`                   | `answered()`                        | `answered N` (N > 1: a reused instance) |
//! | `/link/NAME`                  | `set-link-name(NAME)`, then `ping()`| `ping via NAME -> pong`      |
//! | `/bench?n=N`                  | `ping()` N times, each timed        | `n=N p50_ns=… p99_ns=… total_ns=…` |
//!
//! A failed call traps the invocation; the host answers 500 with the reason.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod bindings {
    wit_bindgen::generate!({
        path: "../wit/pong",
        world: "pinger",
        generate_all,
    });
}

use bindings::example::pong::pingpong;
use bindings::wasmcloud::bus::lattice;

wasi::http::proxy::export!(Pinger);

struct Pinger;

impl wasi::exports::http::incoming_handler::Guest for Pinger {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let (path, query) = match path_with_query.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (path_with_query.clone(), String::new()),
        };
        let (status, body) = route(&path, &query);
        respond(response_out, status, &body);
    }
}

fn route(path: &str, query: &str) -> (u16, String) {
    if path == "/" {
        return (200, format!("ping -> {}\n", pingpong::ping()));
    }
    if path == "/echo" {
        let req = pingpong::EchoRequest {
            message: param(query, "msg").unwrap_or_else(|| "hi".into()),
            times: param(query, "times").and_then(|t| t.parse().ok()).unwrap_or(1),
            tags: param(query, "tags")
                .map(|t| t.split(',').filter(|s| !s.is_empty()).map(String::from).collect())
                .unwrap_or_default(),
        };
        return match pingpong::echo(&req) {
            Ok(lines) => (200, lines.join("\n") + "\n"),
            Err(e) => (400, format!("echo refused: {e}\n")),
        };
    }
    if path == "/work" {
        let ms = param(query, "ms").and_then(|t| t.parse().ok()).unwrap_or(0);
        return (200, format!("worked {} ms\n", pingpong::work(ms)));
    }
    if path == "/answered" {
        return (200, format!("answered {}\n", pingpong::answered()));
    }
    if path == "/bench" {
        let n: usize = param(query, "n").and_then(|t| t.parse().ok()).unwrap_or(1000).clamp(1, 1_000_000);
        return (200, bench(n));
    }
    if let Some(name) = path.strip_prefix("/link/") {
        let target = lattice::CallTargetInterface::new("example", "pong", "pingpong");
        return match lattice::set_link_name(name, vec![target]) {
            Ok(()) => (200, format!("ping via {name} -> {}\n", pingpong::ping())),
            Err(e) => (400, format!("set-link-name refused: {e}\n")),
        };
    }
    (404, format!("no route for {path}\n"))
}

/// Times `n` sequential `ping()` calls from inside the component, so the
/// figure is the call itself (host dispatch, link resolution, the callee's
/// instantiation and run, and on the lattice path the NATS round trip),
/// without HTTP.
fn bench(n: usize) -> String {
    use wasi::clocks::monotonic_clock::now;
    let mut samples = Vec::with_capacity(n);
    let start = now();
    for _ in 0..n {
        let t = now();
        let reply = pingpong::ping();
        samples.push(now() - t);
        if reply != "pong" {
            return format!("unexpected reply {reply:?}\n");
        }
    }
    let total = now() - start;
    samples.sort_unstable();
    let at = |q: f64| samples.get(((n as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
    format!("n={n} p50_ns={} p99_ns={} total_ns={total}\n", at(0.5), at(0.99))
}

fn param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

fn respond(out: ResponseOutparam, status: u16, body: &str) {
    let headers = Fields::new();
    let _ = headers.set("content-type", &[b"text/plain".to_vec()]);
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        let mut stream = stream;
        let _ = stream.write_all(body.as_bytes());
        let _ = stream.flush();
        drop(stream);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
