//! Health checks: `wasmbus.rpc.{lattice}.{id}.health` on an interval, with a
//! deadline. `health_check_passed` / `health_check_failed` on transitions
//! (the first answer is a transition from "unknown"), `health_check_status`
//! otherwise, as wasmCloud. Unlike wasmCloud, no reply counts as failed, so a
//! hung provider is visible to schedulers.

use std::sync::Arc;
use std::time::Duration;

use trellis_interfaces::event::{LatticeEvent, ProviderHealthCheck};
use trellis_interfaces::provider::{HealthCheckResponse, ProviderSubjects};

use super::ProviderSettings;
use crate::host::HostInner;

/// Result of one health request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Health {
    Healthy,
    Unhealthy(String),
}

/// Which event a result produces after the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    /// Became healthy (or the first answer is healthy).
    Passed,
    /// Became unhealthy (or the first answer is unhealthy).
    Failed,
    /// No change.
    Status,
}

/// The transition from `previous` (`None` before the first check).
pub(super) fn transition(previous: Option<bool>, healthy: bool) -> Transition {
    match (previous, healthy) {
        (Some(true), true) | (Some(false), false) => Transition::Status,
        (_, true) => Transition::Passed,
        (_, false) => Transition::Failed,
    }
}

/// Asks once.
pub(super) async fn check(nats: &async_nats::Client, subject: String, timeout: Duration) -> Health {
    let request = nats.request(subject.clone(), bytes::Bytes::new());
    match tokio::time::timeout(timeout, request).await {
        Err(_) => Health::Unhealthy(format!("no reply within {} ms", timeout.as_millis())),
        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
            Health::Unhealthy(format!(
                "nothing answers on {subject} (the provider is not connected to NATS, or not subscribed)"
            ))
        }
        Ok(Err(e)) => Health::Unhealthy(format!("health request failed: {e}")),
        Ok(Ok(msg)) => match serde_json::from_slice::<HealthCheckResponse>(&msg.payload) {
            Ok(r) if r.healthy => Health::Healthy,
            Ok(r) => Health::Unhealthy(
                r.message
                    .unwrap_or_else(|| "the provider reports itself unhealthy".into()),
            ),
            Err(e) => Health::Unhealthy(format!("unreadable health reply: {e}")),
        },
    }
}

/// How often a new provider process is asked whether it listens yet.
pub(super) const LISTEN_PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// Resolves once the provider answers on its health subject at all (healthy
/// or not): from then on its control subscriptions are live, so what is
/// published to it is received. Asks every [`LISTEN_PROBE_INTERVAL`].
pub(super) async fn listening(nats: &async_nats::Client, subject: &str) {
    let mut ticker = tokio::time::interval(LISTEN_PROBE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let request = nats.request(subject.to_string(), bytes::Bytes::new());
        if let Ok(Ok(_)) = tokio::time::timeout(LISTEN_PROBE_INTERVAL * 4, request).await {
            return;
        }
    }
}

/// Checks `provider_id` forever (the caller aborts the task when the process
/// ends), publishing events.
pub(super) async fn run(host: Arc<HostInner>, provider_id: String, settings: ProviderSettings) {
    let subject = ProviderSubjects::new(&host.config.lattice).health(&provider_id);
    tokio::time::sleep(settings.health_initial_delay).await;
    let mut ticker = tokio::time::interval(settings.health_interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: Option<bool> = None;
    loop {
        ticker.tick().await;
        let health = check(&host.nats, subject.clone(), settings.health_timeout).await;
        let healthy = health == Health::Healthy;
        let kind = transition(previous, healthy);
        previous = Some(healthy);
        let payload = ProviderHealthCheck {
            host_id: host.id.clone(),
            provider_id: provider_id.clone(),
        };
        let event = match kind {
            Transition::Passed => {
                tracing::info!(provider_id, "provider is healthy");
                LatticeEvent::HealthCheckPassed(payload)
            }
            Transition::Failed => {
                if let Health::Unhealthy(reason) = &health {
                    tracing::warn!(provider_id, reason, "provider health check failed");
                }
                LatticeEvent::HealthCheckFailed(payload)
            }
            Transition::Status => {
                if let Health::Unhealthy(reason) = &health {
                    tracing::debug!(provider_id, reason, "provider still unhealthy");
                }
                LatticeEvent::HealthCheckStatus(payload)
            }
        };
        host.events.publish(event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transitions_pass_or_fail() {
        use Transition::*;
        assert_eq!(transition(None, true), Passed);
        assert_eq!(transition(None, false), Failed);
        assert_eq!(transition(Some(true), true), Status);
        assert_eq!(transition(Some(true), false), Failed);
        assert_eq!(transition(Some(false), false), Status);
        assert_eq!(transition(Some(false), true), Passed);
    }
}
