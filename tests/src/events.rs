//! Waiting for lattice events (`wasmbus.evt.{lattice}.>`).
//!
//! Events are handled as plain [`serde_json::Value`] CloudEvents so the
//! harness checks the wire shape tests see, independently of the typed
//! events in `trellis-interfaces`.
//!
//! An [`EventWatcher`] subscribes when it is created, so an event published
//! after `EventWatcher::new` returns is never missed. Events that arrive while
//! waiting for something else are kept, and a later wait looks at them first:
//! waiting for A and then B works whichever of the two was published first.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use serde_json::Value;

/// The CloudEvents `type` prefix of every lattice event.
pub const EVENT_TYPE_PREFIX: &str = "com.wasmcloud.lattice.";

/// Events kept for later waits; beyond this the oldest are dropped, so a
/// long test with a chatty lattice (heartbeats) cannot grow without bound.
const MAX_BACKLOG: usize = 10_000;

/// Event types quoted in a timeout message, most recent last.
const MAX_TYPES_IN_ERROR: usize = 50;

/// A subscription to every event of one lattice.
#[derive(Debug)]
pub struct EventWatcher {
    lattice: String,
    subscriber: async_nats::Subscriber,
    /// Events received but not yet returned by a wait, oldest first.
    backlog: VecDeque<Value>,
    /// Types of every event received, in arrival order, for error messages.
    seen_types: Vec<String>,
    /// Messages on the event subjects that were not JSON.
    undecodable: usize,
}

impl EventWatcher {
    /// Subscribes to `wasmbus.evt.{lattice}.>` and waits until the server
    /// has registered the subscription.
    pub async fn new(client: &async_nats::Client, lattice: &str) -> anyhow::Result<EventWatcher> {
        let subject = format!("wasmbus.evt.{lattice}.>");
        let subscriber = client
            .subscribe(subject.clone())
            .await
            .with_context(|| format!("failed to subscribe to {subject}"))?;
        // Events any host publishes from now on reach this watcher.
        crate::nats::synced(client).await?;
        Ok(EventWatcher {
            lattice: lattice.to_string(),
            subscriber,
            backlog: VecDeque::new(),
            seen_types: Vec::new(),
            undecodable: 0,
        })
    }

    /// Returns the first event not returned before for which `pred` is true,
    /// waiting up to `deadline` for it to arrive.
    ///
    /// On timeout the error lists the types of the events that did arrive.
    pub async fn wait_for<P>(&mut self, mut pred: P, deadline: Duration) -> anyhow::Result<Value>
    where
        P: FnMut(&Value) -> bool,
    {
        if let Some(index) = self.backlog.iter().position(&mut pred)
            && let Some(event) = self.backlog.remove(index)
        {
            return Ok(event);
        }
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let message = match tokio::time::timeout_at(end, self.subscriber.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => anyhow::bail!(
                    "the event subscription for lattice {} ended (connection closed?); {}",
                    self.lattice,
                    self.seen_summary()
                ),
                Err(_elapsed) => anyhow::bail!(
                    "no matching event on lattice {} within {deadline:?}; {}",
                    self.lattice,
                    self.seen_summary()
                ),
            };
            let Ok(event) = serde_json::from_slice::<Value>(&message.payload) else {
                self.undecodable = self.undecodable.saturating_add(1);
                continue;
            };
            self.seen_types
                .push(event_type(&event).unwrap_or("<no type>").to_string());
            if pred(&event) {
                return Ok(event);
            }
            if self.backlog.len() >= MAX_BACKLOG {
                self.backlog.pop_front();
            }
            self.backlog.push_back(event);
        }
    }

    /// Like [`EventWatcher::wait_for`], for an event whose `type` is
    /// `com.wasmcloud.lattice.{ty}` (for example `ty = "component_scaled"`).
    pub async fn wait_for_type<P>(
        &mut self,
        ty: &str,
        mut pred: P,
        deadline: Duration,
    ) -> anyhow::Result<Value>
    where
        P: FnMut(&Value) -> bool,
    {
        let wanted = format!("{EVENT_TYPE_PREFIX}{ty}");
        self.wait_for(
            |event| event_type(event) == Some(wanted.as_str()) && pred(event),
            deadline,
        )
        .await
        .with_context(|| format!("waiting for a {ty} event"))
    }

    /// Events received but not returned by any wait yet, oldest first.
    pub fn backlog(&self) -> impl Iterator<Item = &Value> {
        self.backlog.iter()
    }

    fn seen_summary(&self) -> String {
        let skip = self.seen_types.len().saturating_sub(MAX_TYPES_IN_ERROR);
        let recent: Vec<&str> = self
            .seen_types
            .iter()
            .skip(skip)
            .map(|ty| short_type(ty))
            .collect();
        let mut summary = if self.seen_types.is_empty() {
            "no events were received at all".to_string()
        } else if skip > 0 {
            format!(
                "saw {} events, the last {MAX_TYPES_IN_ERROR}: {}",
                self.seen_types.len(),
                recent.join(", ")
            )
        } else {
            format!(
                "saw {} events: {}",
                self.seen_types.len(),
                recent.join(", ")
            )
        };
        if self.undecodable > 0 {
            summary.push_str(&format!(
                " (and {} messages that were not JSON)",
                self.undecodable
            ));
        }
        summary
    }
}

/// The CloudEvents `type` of an event.
pub fn event_type(event: &Value) -> Option<&str> {
    event.get("type").and_then(Value::as_str)
}

/// The CloudEvents `source` of an event: the id of the host that sent it.
pub fn event_source(event: &Value) -> Option<&str> {
    event.get("source").and_then(Value::as_str)
}

/// `host_started` for `com.wasmcloud.lattice.host_started`; other types whole.
fn short_type(ty: &str) -> &str {
    ty.strip_prefix(EVENT_TYPE_PREFIX).unwrap_or(ty)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::NatsServer;

    fn event(ty: &str, n: u64) -> Value {
        json!({
            "specversion": "1.0",
            "type": format!("{EVENT_TYPE_PREFIX}{ty}"),
            "source": "NHOST",
            "data": {"n": n},
        })
    }

    async fn publish(client: &async_nats::Client, ty: &str, n: u64) {
        let payload = serde_json::to_vec(&event(ty, n)).unwrap();
        client
            .publish(format!("wasmbus.evt.harness.{ty}"), payload.into())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn waits_match_in_any_order_and_time_out_with_what_was_seen() {
        let server = NatsServer::start().await.unwrap();
        let client = server.connect().await.unwrap();
        let mut watcher = EventWatcher::new(&client, "harness").await.unwrap();

        publish(&client, "component_scaled", 1).await;
        publish(&client, "linkdef_set", 2).await;
        client
            .publish("wasmbus.evt.harness.junk", "not json".into())
            .await
            .unwrap();
        publish(&client, "component_scaled", 3).await;
        // Another lattice: never seen.
        client
            .publish(
                "wasmbus.evt.other.host_started",
                serde_json::to_vec(&event("host_started", 9))
                    .unwrap()
                    .into(),
            )
            .await
            .unwrap();
        client.flush().await.unwrap();

        let second = Duration::from_secs(5);
        let link = watcher
            .wait_for_type("linkdef_set", |_| true, second)
            .await
            .unwrap();
        assert_eq!(link["data"]["n"], 2);
        let scaled = watcher
            .wait_for_type("component_scaled", |e| e["data"]["n"] == 3, second)
            .await
            .unwrap();
        assert_eq!(scaled["data"]["n"], 3);
        // The first component_scaled was kept in the backlog.
        let scaled = watcher
            .wait_for_type("component_scaled", |_| true, second)
            .await
            .unwrap();
        assert_eq!(scaled["data"]["n"], 1);
        assert_eq!(event_source(&scaled), Some("NHOST"));

        let error = watcher
            .wait_for_type("host_started", |_| true, Duration::from_millis(200))
            .await
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("waiting for a host_started event"),
            "{message}"
        );
        assert!(
            message.contains("saw 3 events: component_scaled, linkdef_set, component_scaled"),
            "{message}"
        );
        assert!(
            message.contains("1 messages that were not JSON"),
            "{message}"
        );
    }
}
