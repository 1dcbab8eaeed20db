//! Errors a caller can act on: [`WrpcError`] and the wire error kinds of the
//! `trellis-error` header ([`RemoteErrorKind`]).

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

/// Why a remote peer refused or failed a call; sent in the `trellis-error`
/// header. Upstream wRPC 0.0.1 peers have no error message: for them a failed
/// call is a results stream that ends early.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemoteErrorKind {
    /// The target does not export the function (`not-exported`).
    NotExported,
    /// The target is stopping and takes no new calls (`stopping`).
    Stopping,
    /// The target has no free capacity within the call's deadline (`busy`).
    Busy,
    /// The parameters could not be decoded (`decode`).
    Decode,
    /// The handler trapped or returned an error (`trap`).
    Trap,
    /// The call's deadline passed before it completed (`deadline`).
    Deadline,
    /// Anything else, including unknown kinds from newer peers (`internal`).
    Internal,
}

impl RemoteErrorKind {
    /// The wire name, as sent in the `trellis-error` header.
    pub fn as_str(&self) -> &'static str {
        match self {
            RemoteErrorKind::NotExported => "not-exported",
            RemoteErrorKind::Stopping => "stopping",
            RemoteErrorKind::Busy => "busy",
            RemoteErrorKind::Decode => "decode",
            RemoteErrorKind::Trap => "trap",
            RemoteErrorKind::Deadline => "deadline",
            RemoteErrorKind::Internal => "internal",
        }
    }

    /// Parses a wire name; unknown names (a newer peer) become
    /// [`RemoteErrorKind::Internal`] so the call still fails with the peer's
    /// message.
    pub(crate) fn from_wire(name: &str) -> RemoteErrorKind {
        name.parse().unwrap_or(RemoteErrorKind::Internal)
    }
}

impl fmt::Display for RemoteErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `trellis-error` value that is not one of the known kinds.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "unknown trellis-error kind `{0}`: expected one of not-exported, stopping, busy, decode, trap, deadline, internal"
)]
pub struct UnknownErrorKind(pub String);

impl FromStr for RemoteErrorKind {
    type Err = UnknownErrorKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "not-exported" => RemoteErrorKind::NotExported,
            "stopping" => RemoteErrorKind::Stopping,
            "busy" => RemoteErrorKind::Busy,
            "decode" => RemoteErrorKind::Decode,
            "trap" => RemoteErrorKind::Trap,
            "deadline" => RemoteErrorKind::Deadline,
            "internal" => RemoteErrorKind::Internal,
            other => return Err(UnknownErrorKind(other.to_string())),
        })
    }
}

/// What went wrong with a call. Readers and writers of this crate return
/// `io::Error`s wrapping one of these; [`find_wrpc_error`] digs it out of any
/// error chain.
#[non_exhaustive]
#[derive(Clone, Debug, thiserror::Error)]
pub enum WrpcError {
    /// NATS answered "no responders": no server subscribes to the subject.
    #[error("nothing serves `{subject}`: is the target running and linked?")]
    NoResponders {
        /// The invocation subject.
        subject: String,
    },
    /// The call's deadline passed.
    #[error(
        "call on `{subject}` got no complete answer within {after:?}: the target is slow, overloaded or gone; raise the call timeout if the work is legitimately slow"
    )]
    Timeout {
        /// The invocation subject.
        subject: String,
        /// The call's whole budget.
        after: Duration,
    },
    /// The peer failed the call and said why (`trellis-error`).
    #[error("the target failed the call ({kind}): {message}")]
    Remote {
        /// The peer's error kind.
        kind: RemoteErrorKind,
        /// The peer's message.
        message: String,
    },
    /// The peer broke the wRPC 0.0.1 protocol.
    #[error("wRPC protocol violation: {0}")]
    Protocol(String),
    /// NATS refused a publish or subscribe, or the connection is gone.
    #[error("NATS connection problem: {0}; check that the NATS server is reachable")]
    Connection(String),
    /// More bytes arrived for one call than its buffer allows.
    #[error(
        "call on `{subject}` buffered more unread data than allowed: read the results faster or raise `TransportOptions::max_call_buffer_bytes`"
    )]
    SlowConsumer {
        /// The invocation subject.
        subject: String,
    },
}

impl WrpcError {
    /// The `io::ErrorKind` this error travels under.
    fn io_kind(&self) -> io::ErrorKind {
        match self {
            WrpcError::NoResponders { .. } => io::ErrorKind::NotConnected,
            WrpcError::Timeout { .. } => io::ErrorKind::TimedOut,
            WrpcError::Remote { .. } => io::ErrorKind::Other,
            WrpcError::Protocol(_) => io::ErrorKind::InvalidData,
            WrpcError::Connection(_) => io::ErrorKind::BrokenPipe,
            WrpcError::SlowConsumer { .. } => io::ErrorKind::OutOfMemory,
        }
    }

    /// Wraps this error in an `io::Error` (what `AsyncRead`/`AsyncWrite`
    /// return), keeping it reachable through [`find_wrpc_error`].
    pub fn into_io(self) -> io::Error {
        io::Error::new(self.io_kind(), self)
    }
}

impl From<WrpcError> for io::Error {
    fn from(error: WrpcError) -> io::Error {
        error.into_io()
    }
}

/// Finds the [`WrpcError`] in an error chain: the error itself, its
/// `source()`s, and the payload of any `io::Error` in between (which
/// `source()` skips). For an `anyhow::Error`, pass `err.as_ref()` or iterate
/// `err.chain()`.
pub fn find_wrpc_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a WrpcError> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<WrpcError>() {
            return Some(found);
        }
        if let Some(io) = error.downcast_ref::<io::Error>()
            && let Some(inner) = io.get_ref()
        {
            let inner: &(dyn std::error::Error + 'static) = inner;
            if let Some(found) = find_wrpc_error(inner) {
                return Some(found);
            }
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [
            RemoteErrorKind::NotExported,
            RemoteErrorKind::Stopping,
            RemoteErrorKind::Busy,
            RemoteErrorKind::Decode,
            RemoteErrorKind::Trap,
            RemoteErrorKind::Deadline,
            RemoteErrorKind::Internal,
        ] {
            assert_eq!(kind.as_str().parse::<RemoteErrorKind>().unwrap(), kind);
        }
        assert!("nope".parse::<RemoteErrorKind>().is_err());
        assert_eq!(
            RemoteErrorKind::from_wire("nope"),
            RemoteErrorKind::Internal
        );
    }

    #[test]
    fn found_through_io_and_anyhow() {
        let io = WrpcError::NoResponders {
            subject: "a.b".into(),
        }
        .into_io();
        let any = anyhow::Error::new(io).context("failed to call");
        let found = any.chain().find_map(find_wrpc_error);
        assert!(matches!(found, Some(WrpcError::NoResponders { .. })));
        assert!(find_wrpc_error(any.as_ref()).is_some());
        assert!(any.to_string().contains("failed to call"), "{any:#}");
        assert!(format!("{any:#}").contains("is the target running and linked?"));
    }
}
