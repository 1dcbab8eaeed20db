//! Publishing lattice events: CloudEvents 1.0 on `wasmbus.evt.{lattice}.{event}`,
//! fire-and-forget on the control connection, as wasmCloud 1.x does.

use trellis_interfaces::event::{CloudEvent, LatticeEvent};
use trellis_interfaces::subject;

/// Publishes this host's events.
#[derive(Clone)]
pub struct EventPublisher {
    nats: async_nats::Client,
    lattice: String,
    source: String,
}

impl EventPublisher {
    /// A publisher for host `source` on `lattice`.
    pub fn new(nats: async_nats::Client, lattice: String, source: String) -> Self {
        Self {
            nats,
            lattice,
            source,
        }
    }

    /// Publishes one event. A failure is logged, never fatal: events are
    /// notifications, and the state they describe is also in inventories.
    pub async fn publish(&self, event: LatticeEvent) {
        let name = event.name();
        let envelope = CloudEvent::new(&self.source, &event);
        let payload = match serde_json::to_vec(&envelope) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(event = name, error = %e, "cannot encode event");
                return;
            }
        };
        let subject = subject::event_subject(&self.lattice, name);
        if let Err(e) = self.nats.publish(subject, payload.into()).await {
            tracing::warn!(event = name, error = %e, "cannot publish event");
        } else {
            tracing::debug!(event = name, "published event");
        }
    }
}
