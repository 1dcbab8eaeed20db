//! Waiting until each started process is ready: NATS accepts connections,
//! wadm answers its API, the host answers `host.ping`. Every wait is bounded
//! and, when the process exits or the deadline passes, fails with the tail of
//! its log.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use trellis_interfaces::client::CtlClient;

use super::process::{LOG_TAIL_LINES, Service, log_tail};

/// Pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How long one wadm or host probe waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A started process being waited on.
pub struct Starting<'a> {
    /// Which one.
    pub service: Service,
    /// Its child handle, to notice an early exit.
    pub child: &'a mut tokio::process::Child,
    /// Its log file, quoted on failure.
    pub log: &'a Path,
}

impl Starting<'_> {
    /// Calls `probe` until it says ready, the process exits, or `deadline`
    /// passes; the two failures quote the log.
    pub async fn wait<F, Fut>(
        &mut self,
        deadline: Duration,
        what: &str,
        mut probe: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            if probe().await {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failure(&format!("exited ({status}) before {what}")));
            }
            if tokio::time::Instant::now() >= end {
                return Err(self.failure(&format!(
                    "did not get to {what} within {} ms (raise --startup-timeout-ms if the machine is slow)",
                    deadline.as_millis()
                )));
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    fn failure(&self, what: &str) -> anyhow::Error {
        let tail = log_tail(self.log, LOG_TAIL_LINES);
        let tail = if tail.trim().is_empty() {
            "(the log is empty)".to_string()
        } else {
            tail
        };
        anyhow!(
            "{} {what}; see its log {}:\n{tail}",
            self.service.binary_name(),
            self.log.display()
        )
    }
}

/// Whether a wadm answers `wadm.api.{lattice}.model.get`.
pub async fn wadm_answers(nats: &async_nats::Client, lattice: &str) -> bool {
    let subject = format!("wadm.api.{lattice}.model.get");
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, nats.request(subject, "".into())).await,
        Ok(Ok(_))
    )
}

/// Whether host `host_id` answers a `host.ping` on the lattice.
pub async fn host_answers(ctl: &CtlClient, host_id: &str) -> bool {
    let ctl = ctl.clone().with_auction_timeout(PROBE_TIMEOUT);
    ctl.ping_hosts()
        .await
        .is_ok_and(|hosts| hosts.iter().any(|h| h.id == host_id))
}
