//! Nested (async) parameters sent inline in the request, between Trellis
//! peers: one `trellis-nested: {path}:{base64}` header value per nested
//! stream, e.g. `trellis-nested: 0.0:AA==` for an empty `stream<u8>` at
//! path `0.0`.
//!
//! Headers, not the payload: the payload stays exactly the encoded sync
//! params, so an upstream server that ignores `trellis-*` headers decodes the
//! request as usual and answers with the standard handshake, after which the
//! caller sends the same bytes on `{R_s}.params.{path}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

/// One nested stream's complete bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NestedParam {
    pub path: Vec<usize>,
    pub data: Bytes,
}

/// The header value of one nested stream: `{p0}.{p1}…:{base64}`.
pub(crate) fn encode(path: &[usize], data: &[u8]) -> String {
    let mut out = crate::subject::indexed("", path);
    // `indexed` starts every element with a dot.
    out.remove(0);
    out.push(':');
    STANDARD.encode_string(data, &mut out);
    out
}

/// Bytes [`encode`] adds to a header block for one stream (name, `: `,
/// value, CRLF), to check the request still fits `max_payload`.
pub(crate) fn wire_len(path: &[usize], data_len: usize) -> usize {
    let path_len: usize = path
        .iter()
        .map(|p| crate::headers::decimal(*p as u128).len() + 1)
        .sum();
    crate::headers::NESTED.len() + 2 + path_len + data_len.div_ceil(3) * 4 + 2
}

/// Parses every `trellis-nested` value of a request. Fails on a bad path,
/// bad base64 or a path given twice: the message says which value.
pub(crate) fn parse<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<NestedParam>, String> {
    let mut out: Vec<NestedParam> = Vec::new();
    for value in values {
        let shown = crate::headers::header_safe(value.get(..64).unwrap_or(value));
        let (path, data) = value
            .split_once(':')
            .ok_or_else(|| format!("inline nested parameter `{shown}` lacks `:`"))?;
        let path = parse_path(path)
            .ok_or_else(|| format!("inline nested parameter `{shown}` has a bad path"))?;
        let data = STANDARD
            .decode(data)
            .map_err(|e| format!("inline nested parameter `{shown}` is not base64: {e}"))?;
        if out.iter().any(|n| n.path == path) {
            return Err(format!(
                "inline nested parameter `{shown}`: the path is given twice"
            ));
        }
        out.push(NestedParam {
            path,
            data: Bytes::from(data),
        });
    }
    Ok(out)
}

/// `0.1.2` → `[0, 1, 2]`; the root (empty) and deep paths are refused.
fn parse_path(text: &str) -> Option<Vec<usize>> {
    crate::subject::parse_indices(text.split('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject::MAX_PATH_DEPTH;

    #[test]
    fn round_trip() {
        let a = encode(&[0, 0], &[0]);
        assert_eq!(a, "0.0:AA==");
        let b = encode(&[3], b"hello");
        let parsed = parse([a.as_str(), b.as_str()]).unwrap();
        assert_eq!(parsed[0].path, vec![0, 0]);
        assert_eq!(parsed[0].data, Bytes::from_static(&[0]));
        assert_eq!(parsed[1].path, vec![3]);
        assert_eq!(parsed[1].data, Bytes::from_static(b"hello"));
        assert_eq!(parse(["1.2:"]).unwrap()[0].data, Bytes::new());
    }

    #[test]
    fn wire_len_matches_the_header_line() {
        for (path, data) in [
            (vec![0, 1], vec![0u8; 0]),
            (vec![12], vec![7u8; 5]),
            (vec![1, 2, 3], vec![1u8; 3]),
        ] {
            let line = format!("{}: {}\r\n", crate::headers::NESTED, encode(&path, &data));
            assert_eq!(wire_len(&path, data.len()), line.len());
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "0.0",
            ":AA==",
            "0..1:AA==",
            "x:AA==",
            "-1:AA==",
            "0:not base64!",
            "99999999999999999999999:AA==",
        ] {
            assert!(parse([bad]).is_err(), "{bad}");
        }
        let deep = format!("{}:AA==", vec!["1"; MAX_PATH_DEPTH + 1].join("."));
        assert!(parse([deep.as_str()]).is_err());
        assert!(parse(["0:AA==", "0:AQ=="]).is_err());
    }
}
