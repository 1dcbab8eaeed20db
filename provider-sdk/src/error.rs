//! Errors of [`run`](crate::run) and the helpers around it.

use trellis_interfaces::provider::HostDataError;

/// Why a provider could not start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Host data on stdin was missing or malformed.
    #[error("{0}")]
    HostData(#[from] HostDataError),
    /// Host data names NATS credentials that cannot be used.
    #[error(
        "the NATS credentials in host data are invalid ({0}); \
         the host must pass a user JWT with its matching nkey seed, or neither"
    )]
    Credentials(String),
    /// The lattice's NATS server could not be reached.
    #[error(
        "could not connect to NATS at {url:?} ({message}); \
         check that the host's lattice_rpc_url is reachable from this process"
    )]
    Connect {
        /// `lattice_rpc_url` from host data.
        url: String,
        /// What the client reported.
        message: String,
    },
    /// A control subscription could not be made.
    #[error(
        "failed to subscribe to {subject} ({message}); check the NATS user's subscribe permissions"
    )]
    Subscribe {
        /// The subject.
        subject: String,
        /// What the client reported.
        message: String,
    },
    /// The NATS connection failed while running.
    #[error("NATS failure: {0}")]
    Nats(String),
    /// The wRPC transport could not be set up.
    #[error("failed to set up the wRPC transport: {0}")]
    Transport(String),
    /// [`Provider::init`](crate::Provider::init) returned an error.
    #[error("provider init failed: {0:#}")]
    Init(anyhow::Error),
    /// The serve closure passed to [`run`](crate::run) returned an error.
    #[error("serving the provider's exports failed: {0:#}")]
    Serve(anyhow::Error),
}
