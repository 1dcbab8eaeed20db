//! `system-info-caller`: the component half of the system-info provider
//! example (`provider-sdk/README.md`). The WIT lives with the provider, in
//! `examples/providers/system-info/wit`.
//!
//! | route          | does                                                 | answers                     |
//! |----------------|------------------------------------------------------|-----------------------------|
//! | `/info/{kind}` | `request-info(kind)` on the linked provider          | `{kind}: {value}`           |
//! | `/info`        | `request-info` for every kind                        | one `{kind}: {value}` line each |
//! | `/callback`    | `call-back()`: the provider calls our `invoker.call` | `callback: {answer}`        |
//!
//! `kind` is `os`, `arch`, `family`, `hostname`, `uptime` or `cpus`. A failed
//! import call traps the invocation; the host answers 500 with the reason.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod bindings {
    wit_bindgen::generate!({
        path: "../../providers/system-info/wit",
        world: "caller",
    });
}

use bindings::exports::trellis::system_info::invoker;
use bindings::trellis::system_info::info::{self, Kind};

/// What `invoker.call` answers, so a test can recognise it.
pub const INVOKER_ANSWER: &str = "hello from system-info-caller";

/// Every kind, with its name in URLs and WIT.
const KINDS: [(&str, Kind); 6] = [
    ("os", Kind::Os),
    ("arch", Kind::Arch),
    ("family", Kind::Family),
    ("hostname", Kind::Hostname),
    ("uptime", Kind::Uptime),
    ("cpus", Kind::Cpus),
];

struct Caller;

wasi::http::proxy::export!(Caller);
bindings::export!(Caller with_types_in bindings);

impl invoker::Guest for Caller {
    fn call() -> String {
        INVOKER_ANSWER.to_string()
    }
}

impl wasi::exports::http::incoming_handler::Guest for Caller {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let path = path.split('?').next().unwrap_or("/").to_string();
        let (status, body) = route(&request.method(), &path);
        respond(response_out, status, &body);
    }
}

fn route(method: &Method, path: &str) -> (u16, String) {
    if !matches!(method, Method::Get) {
        return (405, "method not allowed: only GET is served\n".to_string());
    }
    match path {
        "/info" | "/info/" => {
            let lines: Vec<String> = KINDS
                .iter()
                .map(|(name, kind)| format!("{name}: {}", info::request_info(*kind)))
                .collect();
            (200, lines.join("\n") + "\n")
        }
        "/callback" => match info::call_back() {
            Ok(answer) => (200, format!("callback: {answer}\n")),
            Err(reason) => (502, format!("callback failed: {reason}\n")),
        },
        _ => match path.strip_prefix("/info/") {
            Some(name) => match KINDS.iter().find(|(n, _)| *n == name) {
                Some((name, kind)) => (200, format!("{name}: {}\n", info::request_info(*kind))),
                None => (
                    404,
                    format!(
                        "unknown kind {name:?}; use one of: {}\n",
                        KINDS.map(|(n, _)| n).join(", ")
                    ),
                ),
            },
            None => (
                404,
                format!("no route for {path}; try /info, /info/os or /callback\n"),
            ),
        },
    }
}

fn respond(out: ResponseOutparam, status: u16, body: &str) {
    let headers = Fields::new();
    // A response without the header is still a response.
    let _ = headers.set("content-type", &[b"text/plain; charset=utf-8".to_vec()]);
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    // If writing fails the client has gone away; nobody is left to tell.
    if let Ok(mut stream) = outgoing.write() {
        let _ = stream.write_all(body.as_bytes());
        let _ = stream.flush();
        drop(stream);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
