//! wRPC 0.0.1 subjects and the short call ids under a transport's inbox.

/// The protocol token of wRPC 0.0.1 subjects.
pub const PROTOCOL: &str = "wrpc.0.0.1";

/// `[{prefix}.]wrpc.0.0.1.[{instance}.]{func}`, as upstream builds it.
pub fn invocation_subject(prefix: &str, instance: &str, func: &str) -> String {
    let mut s =
        String::with_capacity(prefix.len() + PROTOCOL.len() + instance.len() + func.len() + 3);
    if !prefix.is_empty() {
        s.push_str(prefix);
        s.push('.');
    }
    s.push_str(PROTOCOL);
    s.push('.');
    if !instance.is_empty() {
        s.push_str(instance);
        s.push('.');
    }
    s.push_str(func);
    s
}

/// `{base}.{p0}.{p1}…` for a nested stream.
pub(crate) fn indexed(base: &str, path: &[usize]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(base.len() + path.len() * 3);
    s.push_str(base);
    for p in path {
        // Writing to a String cannot fail.
        let _ = write!(s, ".{p}");
    }
    s
}

/// Letters of the call id encoding (base 32, lower case: short subjects).
const ID_DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// Encodes a call id as a subject token.
pub(crate) fn encode_id(mut id: u64, out: &mut String) {
    let mut buf = [0u8; 13];
    let mut n = 0;
    loop {
        let digit = ID_DIGITS.get((id & 31) as usize).copied().unwrap_or(b'0');
        if let Some(slot) = buf.get_mut(n) {
            *slot = digit;
        }
        n += 1;
        id >>= 5;
        if id == 0 || n == buf.len() {
            break;
        }
    }
    for digit in buf.iter().take(n).rev() {
        out.push(char::from(*digit));
    }
}

/// Decodes a call id token; `None` for anything we did not produce.
pub(crate) fn decode_id(token: &str) -> Option<u64> {
    if token.is_empty() || token.len() > 13 {
        return None;
    }
    let mut id: u64 = 0;
    for b in token.bytes() {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'v' => b - b'a' + 10,
            _ => return None,
        };
        id = id.checked_mul(32)?.checked_add(u64::from(digit))?;
    }
    Some(id)
}

/// Deepest nested path accepted from the network.
pub(crate) const MAX_PATH_DEPTH: usize = 32;

/// Parses `{word}[.{i}.{j}…]` into the path after `word`.
pub(crate) fn parse_stream_path(rest: &str, word: &str) -> Option<Vec<usize>> {
    let mut tokens = rest.split('.');
    if tokens.next()? != word {
        return None;
    }
    parse_indices(tokens)
}

/// Decimal indices (`0`, `1`, `2`, …) into a value path; `None` for a token
/// that is not plain digits or a path deeper than [`MAX_PATH_DEPTH`].
pub(crate) fn parse_indices<'a>(tokens: impl Iterator<Item = &'a str>) -> Option<Vec<usize>> {
    let mut path = Vec::new();
    for token in tokens {
        if path.len() >= MAX_PATH_DEPTH
            || token.is_empty()
            || !token.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        path.push(token.parse().ok()?);
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_plain_digits_and_bounded() {
        assert_eq!(
            parse_stream_path("results.0.12", "results"),
            Some(vec![0, 12])
        );
        assert_eq!(parse_stream_path("results", "results"), Some(vec![]));
        assert_eq!(parse_stream_path("params.0", "results"), None);
        for bad in ["results.+1", "results.", "results.0..1", "results.x"] {
            assert_eq!(parse_stream_path(bad, "results"), None, "{bad}");
        }
        let deep = vec!["1"; MAX_PATH_DEPTH + 1];
        assert_eq!(parse_indices(deep.iter().copied()), None);
        assert_eq!(
            parse_indices(deep[1..].iter().copied()).map(|p| p.len()),
            Some(MAX_PATH_DEPTH)
        );
    }

    #[test]
    fn subjects() {
        assert_eq!(
            invocation_subject("default.pong", "example:pong/pingpong@0.1.0", "ping"),
            "default.pong.wrpc.0.0.1.example:pong/pingpong@0.1.0.ping"
        );
        assert_eq!(invocation_subject("", "", "f"), "wrpc.0.0.1.f");
        assert_eq!(indexed("a.results", &[1, 20]), "a.results.1.20");
    }

    #[test]
    fn ids_round_trip() {
        for id in [0, 1, 31, 32, 1000, u64::MAX] {
            let mut s = String::new();
            encode_id(id, &mut s);
            assert_eq!(decode_id(&s), Some(id), "{s}");
        }
        assert_eq!(decode_id("zz"), None);
        assert_eq!(decode_id(""), None);
        assert_eq!(decode_id("vvvvvvvvvvvvv"), None);
    }

    #[test]
    fn stream_paths() {
        assert_eq!(parse_stream_path("results", "results"), Some(vec![]));
        assert_eq!(
            parse_stream_path("results.1.2", "results"),
            Some(vec![1, 2])
        );
        assert_eq!(parse_stream_path("params.1", "results"), None);
        assert_eq!(parse_stream_path("results.x", "results"), None);
        assert_eq!(parse_stream_path("results.", "results"), None);
    }
}
