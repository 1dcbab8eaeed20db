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

/// Which event a result produces after `previous`.
pub(super) fn event_kind(previous: Option<bool>, healthy: bool) -> &'static str {
    match (previous, healthy) {
        (Some(true), true) | (Some(false), false) => "health_check_status",
        (_, true) => "health_check_passed",
        (_, false) => "health_check_failed",
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
        let kind = event_kind(previous, healthy);
        previous = Some(healthy);
        let payload = ProviderHealthCheck {
            host_id: host.id.clone(),
            provider_id: provider_id.clone(),
        };
        let event = match kind {
            "health_check_passed" => {
                tracing::info!(provider_id, "provider is healthy");
                LatticeEvent::HealthCheckPassed(payload)
            }
            "health_check_failed" => {
                if let Health::Unhealthy(reason) = &health {
                    tracing::warn!(provider_id, reason, "provider health check failed");
                }
                LatticeEvent::HealthCheckFailed(payload)
            }
            _ => {
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
        assert_eq!(event_kind(None, true), "health_check_passed");
        assert_eq!(event_kind(None, false), "health_check_failed");
        assert_eq!(event_kind(Some(true), true), "health_check_status");
        assert_eq!(event_kind(Some(true), false), "health_check_failed");
        assert_eq!(event_kind(Some(false), false), "health_check_status");
        assert_eq!(event_kind(Some(false), true), "health_check_passed");
    }
}
