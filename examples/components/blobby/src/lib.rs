//! `blobby`: a little file server on `wasi:blobstore@0.2.0-draft`, written
//! like wasmCloud's blobby example with the `wasmcloud-component` crate.
//!
//! - `PUT /{name}` or `POST /{name}`: stores the request body as object
//!   `name` (streamed: the body goes to the blobstore's output-stream in
//!   chunks, never whole into memory). Answers `201` with `stored {name}`.
//! - `GET /{name}`: the object, streamed from the blobstore's input-stream.
//! - `GET /`: the object names, one a line, sorted.
//! - `DELETE /{name}`: deletes the object.
//!
//! Objects live in the container `blobby`, created on first use. A query
//! `?container=NAME` picks another container, which must already exist (so
//! a missing container is an error the caller sees). Names are the path
//! after the first `/`, percent-decoded; the blobstore decides what is a
//! valid name (`../x` is refused there, not here).
//!
//! Errors: `400` for a name the blobstore refuses, `404` for a missing object
//! or container, `500` for anything else, each with the blobstore's message.

use std::io::Write as _;

use wasmcloud_component::http;
use wasmcloud_component::wasi::blobstore::{blobstore, container, types};
use wasmcloud_component::wasi::io::streams::InputStream;

struct Blobby;

http::export!(Blobby);

/// The container used when the request names none (as wasmCloud's blobby).
const DEFAULT_CONTAINER: &str = "blobby";

enum Body {
    Text(String),
    Stream(InputStream),
}

impl http::OutgoingBody for Body {
    fn write(
        self,
        body: wasmcloud_component::wasi::http::types::OutgoingBody,
        stream: wasmcloud_component::wasi::io::streams::OutputStream,
    ) -> std::io::Result<()> {
        match self {
            Body::Text(text) => text.write(body, stream),
            Body::Stream(input) => input.write(body, stream),
        }
    }
}

impl http::Server for Blobby {
    fn handle(
        request: http::IncomingRequest,
    ) -> http::Result<http::Response<impl http::OutgoingBody>> {
        let (parts, body) = request.into_parts();
        let query = parts.uri.query().unwrap_or("");
        let chosen = query
            .split('&')
            .find_map(|p| p.strip_prefix("container="))
            .map(percent_decode);
        let name = percent_decode(parts.uri.path().strip_prefix('/').unwrap_or(""));
        let result = open_container(chosen).and_then(|c| match (&parts.method, name.as_str()) {
            (&http::Method::GET, "") => list(&c),
            (&http::Method::GET, _) => download(&c, &name),
            (&http::Method::PUT | &http::Method::POST, _) => upload(&c, &name, body),
            (&http::Method::DELETE, _) => delete(&c, &name),
            (method, _) => Err((405, format!("method {method} is not supported"))),
        });
        let (status, body) = match result {
            Ok(r) => r,
            Err((status, message)) => (status, Body::Text(format!("{message}\n"))),
        };
        let mut response = http::Response::new(body);
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
        Ok(response)
    }
}

type Reply = Result<(u16, Body), (u16, String)>;

/// Maps a blobstore error to a status by what it says.
fn failed(e: String) -> (u16, String) {
    let status = if e.contains("invalid") || e.contains("outside the blobstore root") {
        400
    } else if e.contains("does not exist") || e.contains("No such file") {
        404
    } else {
        500
    };
    (status, format!("blobstore error: {e}"))
}

fn open_container(chosen: Option<String>) -> Result<container::Container, (u16, String)> {
    match chosen {
        Some(name) => blobstore::get_container(&name).map_err(failed),
        None => {
            let name = DEFAULT_CONTAINER.to_string();
            if blobstore::container_exists(&name).map_err(failed)? {
                blobstore::get_container(&name).map_err(failed)
            } else {
                blobstore::create_container(&name).map_err(failed)
            }
        }
    }
}

fn list(c: &container::Container) -> Reply {
    let names = c.list_objects().map_err(failed)?;
    let mut all = Vec::new();
    loop {
        let (batch, done) = names.read_stream_object_names(1000).map_err(failed)?;
        all.extend(batch);
        if done {
            break;
        }
    }
    all.sort();
    let mut text = all.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    Ok((200, Body::Text(text)))
}

fn download(c: &container::Container, name: &String) -> Reply {
    if !c.has_object(name).map_err(failed)? {
        return Err((404, format!("no object `{name}`")));
    }
    let value = c.get_data(name, 0, u64::MAX).map_err(failed)?;
    let stream = types::IncomingValue::incoming_value_consume_async(value).map_err(failed)?;
    Ok((200, Body::Stream(stream)))
}

fn upload(c: &container::Container, name: &String, mut body: http::IncomingBody) -> Reply {
    let value = types::OutgoingValue::new_outgoing_value();
    let mut out = value
        .outgoing_value_write_body()
        .map_err(|()| (500, "the outgoing value has no body stream".to_string()))?;
    // `write-data` first: the host starts storing while the body streams in.
    c.write_data(name, &value).map_err(failed)?;
    let copied = {
        let mut writer = wasmcloud_component::OutputStreamWriter::from(&mut out);
        std::io::copy(&mut body, &mut writer).and_then(|n| writer.flush().map(|()| n))
    };
    drop(out);
    let bytes = copied.map_err(|e| (500, format!("upload of `{name}` failed: {e}")))?;
    types::OutgoingValue::finish(value).map_err(failed)?;
    Ok((201, Body::Text(format!("stored {name} ({bytes} bytes)\n"))))
}

fn delete(c: &container::Container, name: &String) -> Reply {
    c.delete_object(name).map_err(failed)?;
    Ok((200, Body::Text(format!("deleted {name}\n"))))
}

/// `%XX` escapes decoded (invalid ones kept as they are), `+` kept.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
