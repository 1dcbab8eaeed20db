//! Header names Trellis reads and writes on wRPC messages.
//!
//! The first four are wasmCloud's (PROTOCOL §3.1); the `trellis-*` ones are
//! ours and ignored by upstream wRPC 0.0.1 peers.

/// Id of the calling component or provider.
pub const SOURCE_ID: &str = "source-id";
/// Link name the caller resolved the target with (`default` when absent).
pub const LINK_NAME: &str = "link-name";
/// Id of the target, set by provider clients.
pub const TARGET_ID: &str = "target-id";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// W3C trace state.
pub const TRACESTATE: &str = "tracestate";
/// Remaining call budget in milliseconds when the request was sent
/// (relative, because hosts' clocks are not synchronised).
pub const TIMEOUT_MS: &str = "trellis-timeout-ms";
/// `1` on a request: the caller accepts a compact reply (all params are in
/// the first message). `2` on a request: the same, and the nested (async)
/// params are complete and inline in [`NESTED`] headers. `1` on a reply: this
/// is a compact reply.
pub const FRAMING: &str = "trellis-framing";
/// One value per nested param stream of a `trellis-framing: 2` request:
/// `{path}:{base64 of the stream's bytes}`, e.g. `0.0:AA==`.
pub const NESTED: &str = "trellis-nested";
/// `1` on a compact reply whose results did not fit: the rest follows on
/// `{reply}.results`, ended by an empty message.
pub const CONTINUED: &str = "trellis-continued";
/// Error kind on a compact reply or on the end-of-results message.
pub const ERROR: &str = "trellis-error";
/// Human-readable error text on a standard end-of-results message.
pub const ERROR_MESSAGE: &str = "trellis-error-message";

/// The value of [`FRAMING`] and [`CONTINUED`] when set.
pub(crate) const ON: &str = "1";
/// The value of [`FRAMING`] on a request whose nested params are inline.
pub(crate) const WITH_NESTED: &str = "2";

/// Longest error message put in a header; longer ones are cut.
pub(crate) const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

/// Serialized size of a header block, as async-nats writes it
/// (`NATS/1.0\r\n`, `name: value\r\n` each, `\r\n`).
pub(crate) fn wire_len(headers: &async_nats::HeaderMap) -> usize {
    let mut len = b"NATS/1.0\r\n".len() + b"\r\n".len();
    for (name, values) in headers.iter() {
        let name: &str = name.as_ref();
        for value in values {
            len += name.len() + b": ".len() + value.as_str().len() + b"\r\n".len();
        }
    }
    len
}

/// Makes text safe for a header value: no CR/LF, at most
/// [`MAX_ERROR_MESSAGE_BYTES`] bytes (cut on a char boundary).
pub(crate) fn header_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_ERROR_MESSAGE_BYTES));
    for c in text.chars() {
        if out.len() + c.len_utf8() > MAX_ERROR_MESSAGE_BYTES {
            break;
        }
        out.push(if c == '\r' || c == '\n' { ' ' } else { c });
    }
    out
}

/// One of the names above as a `HeaderName`, without the allocation and
/// validation a `&str` costs on every `get`/`insert` (async-nats turns a
/// `&str` key into an owned, checked name each time).
pub fn name(name: &'static str) -> async_nats::header::HeaderName {
    async_nats::header::HeaderName::from_static(name)
}

/// The headers of a call a host makes for a component: `source-id` (the
/// calling component) and `link-name` (the link it goes through), with
/// static names (no allocation or validation of the names per call).
pub fn call_headers(source_id: &str, link_name: &str) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(name(SOURCE_ID), source_id);
    headers.insert(name(LINK_NAME), link_name);
    headers
}

/// `n` in decimal (what `to_string` gives, without the formatting machinery).
pub(crate) fn decimal(mut n: u128) -> String {
    let mut digits = [0u8; 40];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(d) = digits.get_mut(start) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    digits
        .get(start..)
        .map(|d| d.iter().map(|&b| char::from(b)).collect())
        .unwrap_or_default()
}

/// The static name of `name` when it is one of the names above, so looking it
/// up allocates nothing.
pub(crate) fn known(name: &str) -> Option<async_nats::header::HeaderName> {
    [
        SOURCE_ID,
        LINK_NAME,
        TARGET_ID,
        TRACEPARENT,
        TRACESTATE,
        TIMEOUT_MS,
        FRAMING,
        NESTED,
        CONTINUED,
        ERROR,
        ERROR_MESSAGE,
    ]
    .into_iter()
    .find(|known| *known == name)
    .map(self::name)
}

/// Reads a header as text.
pub(crate) fn get<'a>(
    headers: Option<&'a async_nats::HeaderMap>,
    key: &'static str,
) -> Option<&'a str> {
    headers.and_then(|h| h.get(name(key))).map(|v| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_headers_carry_source_and_link() {
        let h = call_headers("comp-a", "backup");
        assert_eq!(get(Some(&h), SOURCE_ID), Some("comp-a"));
        assert_eq!(get(Some(&h), LINK_NAME), Some("backup"));
        // Looked up by a `&str` name, as a receiver of any kind would.
        assert_eq!(h.get("source-id").map(|v| v.as_str()), Some("comp-a"));
        assert_eq!(h.iter().count(), 2);
    }

    #[test]
    fn wire_len_matches_async_nats() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(SOURCE_ID, "a");
        headers.insert(TIMEOUT_MS, "1000");
        let reference = 10 + 2 + "source-id: a\r\n".len() + "trellis-timeout-ms: 1000\r\n".len();
        assert_eq!(wire_len(&headers), reference);
    }

    #[test]
    fn decimal_matches_to_string() {
        for n in [0u128, 7, 10, 999, 10_000, u128::from(u64::MAX), u128::MAX] {
            assert_eq!(decimal(n), n.to_string());
        }
    }

    #[test]
    fn header_safe_strips_newlines_and_cuts() {
        assert_eq!(header_safe("a\r\nb"), "a  b");
        assert_eq!(header_safe(&"é".repeat(2000)).len(), 1024);
    }
}
