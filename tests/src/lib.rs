//! The shared harness for Trellis's whole-system tests.
//!
//! Every test that needs a real piece of the system gets it from here, so
//! there is one way to do each thing (CONVENTIONS.md rule 9):
//!
//! - [`NatsServer`] runs a real `nats-server` with JetStream on a free port
//!   (or a three-node cluster), and can kill and restart it.
//! - [`component_path`] builds the guest components under
//!   `examples/components` once per process and returns a `.wasm` path.
//! - [`HostProcess`] runs the real `trellis` binary with a known host id and
//!   waits for its `host_started` event.
//! - [`EventWatcher`] waits for a lattice event matching a predicate, with a
//!   deadline and a useful failure message.
//! - [`eventually`] polls a condition with a deadline instead of sleeping.
//!
//! Nothing here sleeps "to let things settle": every wait is on an event or a
//! polled condition, bounded by a deadline.

#![warn(missing_docs)]

pub mod events;
pub mod guests;
pub mod host;
pub mod nats;
pub mod oci;
pub mod procs;
pub mod redis;
pub mod wadm;
pub mod wash;

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;

pub use events::EventWatcher;
pub use guests::component_path;
pub use host::{HostOptions, HostProcess};
pub use nats::{NatsOptions, NatsServer};
pub use oci::OciRegistry;
pub use wadm::WadmProcess;

/// First pause between two attempts of [`eventually`]: short, because most
/// conditions in a test become true within a few milliseconds.
const EVENTUALLY_FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// Longest pause between two attempts of [`eventually`]: long enough not to
/// hammer NATS or a host, short enough not to add noticeable latency.
const EVENTUALLY_MAX_BACKOFF: Duration = Duration::from_millis(250);

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding port 0 and dropping the listener, so another
/// process may take it before the caller binds it; callers that start a
/// server should treat "address in use" as a reason to retry with a new port.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("failed to bind 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Calls `f` until it returns `Ok`, and returns that value.
///
/// Between attempts it waits with an exponential backoff (10 ms doubling up
/// to 250 ms). Each attempt is itself bounded by what is left of `deadline`,
/// so a hanging attempt cannot outlive it. On timeout the error is the last
/// error `f` returned, with the deadline added as context.
pub async fn eventually<F, Fut, T>(deadline: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    let mut backoff = EVENTUALLY_FIRST_BACKOFF;
    let mut attempts: u32 = 0;
    loop {
        attempts = attempts.saturating_add(1);
        let last_error = match tokio::time::timeout_at(end, f()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_elapsed) => anyhow::anyhow!("the attempt was still running at the deadline"),
        };
        let now = tokio::time::Instant::now();
        if now >= end {
            return Err(last_error.context(format!(
                "condition not met within {deadline:?} ({attempts} attempts)"
            )));
        }
        tokio::time::sleep_until(end.min(now + backoff)).await;
        backoff = backoff.saturating_mul(2).min(EVENTUALLY_MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    }

    #[tokio::test]
    async fn eventually_returns_first_success() {
        let calls = AtomicU32::new(0);
        let value = eventually(Duration::from_secs(5), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 3 {
                anyhow::bail!("not yet ({n})")
            } else {
                Ok(n)
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn eventually_returns_last_error_on_timeout() {
        let calls = AtomicU32::new(0);
        let error = eventually(Duration::from_millis(100), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("still failing ({n})") as anyhow::Result<()>
        })
        .await
        .unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("condition not met within 100ms"),
            "{message}"
        );
        assert!(message.contains("still failing"), "{message}");
    }

    #[tokio::test]
    async fn eventually_bounds_a_hanging_attempt() {
        let started = std::time::Instant::now();
        let error = eventually(Duration::from_millis(100), || async {
            std::future::pending::<anyhow::Result<()>>().await
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(format!("{error:#}").contains("still running at the deadline"));
    }
}
