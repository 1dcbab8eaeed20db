//! Subscriptions for the links on which this provider is the source: woken
//! on every link or config change, recomputed from the SDK's link table,
//! each one a task that calls the linked component's `handle-message`.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt as _;
use tokio::sync::Semaphore;
use trellis_provider_sdk::Connection;

use crate::MessagingNats;
use crate::bindings::wasmcloud::messaging::handler;
use crate::bindings::wasmcloud::messaging::types::BrokerMessage;
use trellis_interfaces::messaging::{Subscription, parse_subscriptions};

/// Messages of one subscription being handled at once; beyond this the
/// subscription stops reading and NATS's slow-consumer handling applies.
pub const MAX_IN_FLIGHT_PER_SUBSCRIPTION: usize = 256;

/// Link source config keys holding the list (wasmCloud: `SUBSCRIPTIONS`).
const SUBSCRIPTION_KEYS: [&str; 2] = ["subscriptions", "SUBSCRIPTIONS"];

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SubKey {
    target: String,
    link_name: String,
    /// The link config that chose the connection, flattened and sorted.
    connection: Vec<(String, String)>,
    sub: Subscription,
}

/// Keeps the subscriptions in line with the links until the process ends.
pub async fn manage(conn: Connection, provider: Arc<MessagingNats>) {
    let mut active: HashMap<SubKey, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let desired = desired(&conn);
        active.retain(|key, task| {
            let keep = desired.contains_key(key) && !task.is_finished();
            if !keep {
                task.abort();
                tracing::info!(component_id = %key.target, subject = %key.sub.subject, "subscription stopped");
            }
            keep
        });
        for (key, link_config) in desired {
            if active.contains_key(&key) {
                continue;
            }
            let nats = match provider
                .connections
                .for_config(&conn, &link_config, &conn.config())
                .await
            {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(component_id = %key.target, subject = %key.sub.subject, "cannot subscribe: {e}");
                    continue;
                }
            };
            tracing::info!(component_id = %key.target, subject = %key.sub.subject, queue = ?key.sub.queue, "subscription started");
            let task = tokio::spawn(run(conn.clone(), nats, key.clone()));
            active.insert(key, task);
        }
        provider.links_changed.notified().await;
    }
}

/// The subscriptions the current links ask for, with each link's config.
fn desired(conn: &Connection) -> HashMap<SubKey, HashMap<String, String>> {
    let mut out = HashMap::new();
    for link in conn.links().as_source() {
        if !link.covers("wasmcloud", "messaging", "handler") {
            continue;
        }
        let Some(value) = SUBSCRIPTION_KEYS.iter().find_map(|k| link.config.get(*k)) else {
            tracing::warn!(component_id = %link.target_id, "handler link without `subscriptions` in its source config: nothing to subscribe to");
            continue;
        };
        let (good, bad) = parse_subscriptions(value);
        for e in bad {
            tracing::error!(component_id = %link.target_id, "skipping subscription: {e}");
        }
        let mut connection: Vec<(String, String)> = link
            .config
            .iter()
            .filter(|(k, _)| !SUBSCRIPTION_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        connection.sort();
        for sub in good {
            out.insert(
                SubKey {
                    target: link.target_id.clone(),
                    link_name: link.link_name.clone(),
                    connection: connection.clone(),
                    sub,
                },
                link.config.clone(),
            );
        }
    }
    out
}

async fn run(conn: Connection, nats: async_nats::Client, key: SubKey) {
    let subject = key.sub.subject.clone();
    let subscribed = match &key.sub.queue {
        Some(queue) => nats.queue_subscribe(subject, queue.clone()).await,
        None => nats.subscribe(subject).await,
    };
    let mut messages = match subscribed {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(subject = %key.sub.subject, error = %e, "cannot subscribe");
            return;
        }
    };
    let client = conn.client_for(&key.target);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_SUBSCRIPTION));
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        trellis_provider_sdk::trellis_wrpc::headers::LINK_NAME,
        key.link_name.as_str(),
    );
    while let Some(msg) = messages.next().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let client = client.clone();
        let headers = headers.clone();
        let target = key.target.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let message = BrokerMessage {
                subject: msg.subject.to_string(),
                body: msg.payload,
                reply_to: msg.reply.map(|r| r.to_string()),
            };
            match handler::handle_message(&client, Some(headers), &message).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(component_id = %target, subject = %message.subject, "the component returned an error: {e}");
                }
                Err(e) => {
                    tracing::warn!(component_id = %target, subject = %message.subject, "handle-message failed: {e:#}");
                }
            }
        });
    }
}
