//! The lattice side of messaging, over wRPC on the instance names wasmCloud
//! uses (PROTOCOL.md §3.2): `wasmcloud:messaging/consumer@0.2.0` on a
//! provider process (a component's `request`/`publish` linked to one), and
//! `wasmcloud:messaging/handler@0.2.0` on a component running on another
//! host (a built-in subscription delivering to it).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::bindings::wasmcloud::messaging::types::BrokerMessage;
use crate::dataplane::DataPlane;

mod wire {
    wit_bindgen_wrpc::generate!({
        path: "../interfaces/wit/deps/messaging",
        inline: "
            package trellis:messaging-wire@0.1.0;
            world wire {
                import wasmcloud:messaging/consumer@0.2.0;
                import wasmcloud:messaging/handler@0.2.0;
            }
        ",
        world: "trellis:messaging-wire/wire",
        generate_all,
    });
}

use wire::wasmcloud::messaging::{consumer, handler, types};

/// One call's client and context.
pub(super) struct Call {
    client: trellis_wrpc::Client,
    prefix: String,
    headers: async_nats::HeaderMap,
    target: Arc<str>,
    rpc_timeout: Duration,
}

impl Call {
    /// A call from `source` (a component, or a provider id for deliveries)
    /// under `link` to `target`.
    pub fn new(
        dataplane: &Option<Arc<DataPlane>>,
        source: &str,
        link: &str,
        target: &Arc<str>,
    ) -> Result<Self, String> {
        let Some(dp) = dataplane.as_ref() else {
            return Err("the lattice is not available in this store".into());
        };
        let Some(transport) = dp.transport() else {
            return Err("the lattice transport is not connected yet; retry".into());
        };
        let headers = trellis_wrpc::headers::call_headers(source, link);
        Ok(Self {
            client: transport.client(),
            prefix: format!("{}.{target}", dp.lattice()),
            headers,
            target: target.clone(),
            rpc_timeout: dp.rpc_timeout(),
        })
    }

    fn cx(&self, budget: Duration) -> trellis_wrpc::CallContext {
        trellis_wrpc::CallContext {
            prefix: self.prefix.clone(),
            headers: Some(self.headers.clone()),
            timeout: Some(budget.min(self.rpc_timeout)),
        }
    }

    fn failed(&self, op: &str, err: anyhow::Error) -> String {
        let detail = err
            .chain()
            .find_map(trellis_wrpc::find_wrpc_error)
            .map_or_else(|| format!("{err:#}"), ToString::to_string);
        format!(
            "wasmcloud:messaging/{op} on `{}` failed: {detail}",
            self.target
        )
    }

    /// `consumer.request` on a provider process.
    pub async fn request(
        &self,
        subject: &str,
        body: Vec<u8>,
        timeout_ms: u32,
        budget: Duration,
    ) -> Result<BrokerMessage, String> {
        let reply = consumer::request(
            &self.client,
            self.cx(budget),
            subject,
            &Bytes::from(body),
            timeout_ms,
        )
        .await
        .map_err(|e| self.failed("consumer.request", e))??;
        Ok(BrokerMessage {
            subject: reply.subject,
            body: reply.body.to_vec(),
            reply_to: reply.reply_to,
        })
    }

    /// `consumer.publish` on a provider process.
    pub async fn publish(&self, msg: BrokerMessage, budget: Duration) -> Result<(), String> {
        let msg = types::BrokerMessage {
            subject: msg.subject,
            body: Bytes::from(msg.body),
            reply_to: msg.reply_to,
        };
        consumer::publish(&self.client, self.cx(budget), &msg)
            .await
            .map_err(|e| self.failed("consumer.publish", e))?
    }

    /// `handler.handle-message` on a component somewhere in the lattice.
    pub async fn handle_message(
        &self,
        msg: &async_nats::Message,
        budget: Duration,
    ) -> Result<(), String> {
        let msg = types::BrokerMessage {
            subject: msg.subject.to_string(),
            body: msg.payload.clone(),
            reply_to: msg.reply.as_ref().map(ToString::to_string),
        };
        handler::handle_message(&self.client, self.cx(budget), &msg)
            .await
            .map_err(|e| self.failed("handler.handle-message", e))?
    }
}
