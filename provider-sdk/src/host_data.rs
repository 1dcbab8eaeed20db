//! Reading [`HostData`] from stdin, as a host writes it (PROTOCOL.md §4.1):
//! one line of base64 (standard alphabet) JSON, then `\r\n`, then stdin is
//! closed.

use std::io::{BufRead as _, IsTerminal as _};

use trellis_interfaces::provider::{HostData, HostDataError};

/// Upper bound on the host data line. Real host data is a few KiB (it holds
/// the provider's links and config); the bound stops a misrouted stream from
/// being read into memory without end.
pub const MAX_HOST_DATA_BYTES: u64 = 16 * 1024 * 1024;

/// Reads host data from this process's stdin.
///
/// Fails at once (instead of waiting for input) when stdin is a terminal:
/// a provider started by hand has no host to talk to.
pub fn read_host_data() -> Result<HostData, HostDataError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(HostDataError(
            "stdin is a terminal: a provider is started by a Trellis or wasmCloud host \
             (`wash start provider file://…`), which writes base64 JSON HostData to its stdin; \
             to run it by hand, pipe HostData in"
                .into(),
        ));
    }
    read_host_data_from(stdin.lock())
}

/// Reads host data from `reader` (one line, at most [`MAX_HOST_DATA_BYTES`]).
pub fn read_host_data_from(reader: impl std::io::BufRead) -> Result<HostData, HostDataError> {
    let mut line = Vec::new();
    reader
        .take(MAX_HOST_DATA_BYTES)
        .read_until(b'\n', &mut line)
        .map_err(|e| HostDataError(format!("failed to read host data from stdin: {e}")))?;
    HostData::from_stdin(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_line_only() {
        let hd = HostData {
            provider_key: "p".into(),
            ..Default::default()
        };
        let mut input = hd.to_stdin().unwrap();
        input.extend_from_slice(b"trailing garbage\n");
        let read = read_host_data_from(std::io::Cursor::new(input)).unwrap();
        assert_eq!(read, hd);
    }

    #[test]
    fn closed_stdin_says_who_starts_providers() {
        let err = read_host_data_from(std::io::Cursor::new(Vec::new())).unwrap_err();
        assert!(
            err.0.contains("started by a Trellis or wasmCloud host"),
            "{err}"
        );
    }
}
