//! The export: `wasmcloud:messaging/consumer@0.2.0`, each call on the NATS
//! connection of the link it comes over.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use trellis_provider_sdk::trellis_wrpc::ServeContext;
use trellis_provider_sdk::{Connection, Context};

use crate::MessagingNats;
use crate::bindings::exports::wasmcloud::messaging::consumer;
use crate::bindings::wasmcloud::messaging::types::BrokerMessage;
use trellis_interfaces::messaging::check_publish_subject;

/// Serves the consumer interface; one clone per call.
#[derive(Clone)]
pub struct Handler {
    conn: Connection,
    provider: Arc<MessagingNats>,
}

impl Handler {
    /// Serves calls over `conn`.
    pub fn new(conn: Connection, provider: Arc<MessagingNats>) -> Self {
        Self { conn, provider }
    }

    /// The NATS connection of the caller's link to this provider.
    async fn nats(&self, cx: &ServeContext) -> Result<async_nats::Client, String> {
        let caller = Context::from(cx);
        let Some(source) = caller.source_id() else {
            return Err(
                "the call carries no source-id header: the messaging-nats provider serves linked components only".into(),
            );
        };
        let links = self.conn.links();
        let link = links.as_target().find(|l| {
            l.source_id == source
                && l.link_name == caller.link_name()
                && l.covers("wasmcloud", "messaging", "consumer")
        });
        let Some(link) = link else {
            return Err(format!(
                "component `{source}` has no link named `{}` to this messaging-nats provider: link it (wash link put {source} <provider-id> wasmcloud messaging --interface consumer)",
                caller.link_name()
            ));
        };
        self.provider
            .connections
            .for_config(&self.conn, &link.config, &self.conn.config())
            .await
    }
}

type Reply<T> = anyhow::Result<Result<T, String>>;

impl consumer::Handler<ServeContext> for Handler {
    async fn request(
        &self,
        cx: ServeContext,
        subject: String,
        body: Bytes,
        timeout_ms: u32,
    ) -> Reply<BrokerMessage> {
        if let Err(e) = check_publish_subject(&subject) {
            return Ok(Err(e.to_string()));
        }
        let nats = match self.nats(&cx).await {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        let request = async_nats::Request::new()
            .payload(body)
            .timeout(Some(Duration::from_millis(u64::from(timeout_ms))));
        Ok(nats
            .send_request(subject.clone(), request)
            .await
            .map(|reply| BrokerMessage {
                subject: reply.subject.to_string(),
                body: reply.payload,
                reply_to: reply.reply.map(|r| r.to_string()),
            })
            .map_err(|e| format!("request on `{subject}` failed: {e}")))
    }

    async fn publish(&self, cx: ServeContext, msg: BrokerMessage) -> Reply<()> {
        if let Err(e) = check_publish_subject(&msg.subject) {
            return Ok(Err(e.to_string()));
        }
        if let Some(reply) = &msg.reply_to
            && let Err(e) = check_publish_subject(reply)
        {
            return Ok(Err(format!("reply-to: {e}")));
        }
        let nats = match self.nats(&cx).await {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        let subject = msg.subject.clone();
        let published = match msg.reply_to {
            Some(reply) => nats.publish_with_reply(msg.subject, reply, msg.body).await,
            None => nats.publish(msg.subject, msg.body).await,
        };
        Ok(published.map_err(|e| format!("publish on `{subject}` failed: {e}")))
    }
}
