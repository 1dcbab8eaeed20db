//! `wasmcloud:messaging@0.2.0` as wasmCloud 1.x components use it: they
//! import `consumer` (`request`, `publish`) and export `handler`
//! (`handle-message`).
//!
//! - `consumer` calls resolve the component's `wasmcloud:messaging/consumer`
//!   link. A link to a `builtin://messaging-nats` provider on this host
//!   publishes on the host's own NATS connection; a link to anything else is
//!   a provider process reached over wRPC on the same instance name
//!   (`wasmcloud:messaging/consumer@0.2.0`, PROTOCOL.md §3.2), as wasmCloud's
//!   host does.
//! - `handler`: a `builtin://messaging-nats` provider linked to a component
//!   (`wasmcloud:messaging`, interface `handler`, the provider as the link's
//!   source) subscribes to the subjects of the link's source config key
//!   `subscriptions` (comma-separated, `subject` or `subject|queue`, as
//!   wasmCloud's messaging-nats provider) and delivers every message to the
//!   component's `handle-message` ([`subscriptions`]).
//!
//! Subjects a component publishes or requests on must be concrete (no `*` or
//! `>`); subscription subjects may use wildcards by NATS's rules.

mod remote;
mod subscriptions;

use std::sync::{Arc, Weak};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use crate::host::HostInner;
use crate::runtime::InvocationState;
use bindings::wasmcloud::messaging::types::BrokerMessage;

pub use subscriptions::MAX_IN_FLIGHT_PER_SUBSCRIPTION;
pub use trellis_interfaces::messaging::{
    SubjectError, Subscription, check_publish_subject, parse_subscriptions,
};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wit/deps/messaging",
        inline: "
            package trellis:messaging-imports@0.1.0;
            world imports {
                import wasmcloud:messaging/consumer@0.2.0;
            }
        ",
        world: "trellis:messaging-imports/imports",
        imports: { default: async | trappable },
    });
}

/// The link key consumer calls resolve.
const CONSUMER_INTERFACE: &str = "wasmcloud:messaging/consumer";
/// The exported instance a subscription delivers to.
pub const HANDLER_INSTANCE: &str = "wasmcloud:messaging/handler@0.2.0";
/// The exported function a subscription delivers to.
pub const HANDLER_FUNC: &str = "handle-message";
/// `builtin://` name of the NATS messaging capability.
pub const BUILTIN_NATS: &str = "messaging-nats";
/// Config keys of a connection to another NATS than the host's, which the
/// built-in does not support (a messaging-nats provider process does).
const OTHER_CLUSTER_KEYS: [&str; 6] = [
    "cluster_uris",
    "CLUSTER_URIS",
    "client_jwt",
    "CLIENT_JWT",
    "client_seed",
    "CLIENT_SEED",
];

/// Whether `image_ref` names the built-in NATS messaging capability
/// (`builtin://messaging-nats` or `wasmcloud+builtin://messaging-nats`).
pub fn is_builtin_messaging(image_ref: &str) -> bool {
    matches!(
        crate::artifact::ArtifactRef::parse(image_ref),
        Ok(crate::artifact::ArtifactRef::Builtin(name)) if name == BUILTIN_NATS
    )
}

/// The host-wide messaging capability: consumer calls and the subscriptions
/// of built-in providers.
pub struct MessagingService {
    host: Weak<HostInner>,
    nats: async_nats::Client,
    subscriptions: subscriptions::Subscriptions,
}

/// Where a consumer call goes.
enum ConsumerTarget {
    /// The host's NATS connection.
    Builtin,
    /// A provider process with this id.
    Remote(Arc<str>),
}

impl MessagingService {
    pub(crate) fn new(host: Weak<HostInner>, nats: async_nats::Client) -> Self {
        Self {
            host,
            nats,
            subscriptions: subscriptions::Subscriptions::default(),
        }
    }

    /// Subscribes and unsubscribes to match the built-in providers' links.
    pub(crate) fn reconcile(&self, host: &Arc<HostInner>) {
        self.subscriptions.reconcile(host, &self.nats);
    }

    fn consumer_target(&self, component: &str, link_name: &str) -> Result<ConsumerTarget, String> {
        let host = self
            .host
            .upgrade()
            .ok_or_else(|| "the host is stopping".to_string())?;
        let target = host
            .dataplane
            .resolve(component, CONSUMER_INTERFACE, link_name)
            .map_err(|_| {
                format!(
                    "component `{component}` has no messaging link named `{link_name}`: link `wasmcloud:messaging` (interface `consumer`) to a provider, e.g. builtin://messaging-nats"
                )
            })?;
        let slot = host
            .providers
            .read()
            .ok()
            .and_then(|p| p.get(&*target).cloned());
        match slot {
            Some(slot) if is_builtin_messaging(&slot.image_ref) => {
                let config = super::link_target_config(
                    &host,
                    component,
                    &target,
                    link_name,
                    ("wasmcloud", "messaging"),
                )?;
                if let Some(key) = OTHER_CLUSTER_KEYS.iter().find(|k| config.contains_key(**k)) {
                    return Err(format!(
                        "component `{component}` links messaging (`{link_name}`) to the built-in `{target}` with `{key}` in its config: the built-in uses the host's own NATS connection; remove `{key}`, or use a messaging-nats provider process for another NATS"
                    ));
                }
                Ok(ConsumerTarget::Builtin)
            }
            Some(slot) => Err(format!(
                "component `{component}` links messaging (`{link_name}`) to `{target}`, which is `{}` and serves no messaging",
                slot.image_ref
            )),
            None => Ok(ConsumerTarget::Remote(target)),
        }
    }
}

impl InvocationState {
    fn consumer_link_name(&self) -> String {
        self.link_names
            .get(CONSUMER_INTERFACE)
            .cloned()
            .unwrap_or_else(|| crate::dataplane::links::default_link_name().to_string())
    }

    fn messaging(&self) -> Result<Arc<MessagingService>, String> {
        self.links
            .as_ref()
            .and_then(|dp| dp.messaging())
            .cloned()
            .ok_or_else(|| "messaging is not available in this host".to_string())
    }

    fn logged<T>(&self, link: &str, r: Result<T, String>) -> Result<T, String> {
        if let Err(message) = &r {
            tracing::warn!(component_id = %self.component_id, link, "{message}");
        }
        r
    }
}

impl bindings::wasmcloud::messaging::consumer::Host for InvocationState {
    async fn request(
        &mut self,
        subject: String,
        body: Vec<u8>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<BrokerMessage, String>> {
        let link = self.consumer_link_name();
        let budget = self
            .scope
            .remaining()
            .min(Duration::from_millis(u64::from(timeout_ms)));
        let service = self.messaging();
        let component = self.component_id.clone();
        let links = self.links.clone();
        let result = async {
            check_publish_subject(&subject).map_err(|e| e.to_string())?;
            let service = service?;
            match service.consumer_target(&component, &link)? {
                ConsumerTarget::Builtin => {
                    let request = async_nats::Request::new()
                        .payload(body.into())
                        .timeout(Some(budget));
                    let reply = service
                        .nats
                        .send_request(subject.clone(), request)
                        .await
                        .map_err(|e| format!("request on `{subject}` failed: {e}"))?;
                    Ok(BrokerMessage {
                        subject: reply.subject.to_string(),
                        body: reply.payload.to_vec(),
                        reply_to: reply.reply.map(|r| r.to_string()),
                    })
                }
                ConsumerTarget::Remote(target) => {
                    let cx = remote::Call::new(&links, &component, &link, &target)?;
                    cx.request(&subject, body, timeout_ms, budget).await
                }
            }
        }
        .await;
        Ok(self.logged(&link, result))
    }

    async fn publish(&mut self, msg: BrokerMessage) -> wasmtime::Result<Result<(), String>> {
        let link = self.consumer_link_name();
        let budget = self.scope.remaining();
        let service = self.messaging();
        let component = self.component_id.clone();
        let links = self.links.clone();
        let result = async {
            check_publish_subject(&msg.subject).map_err(|e| e.to_string())?;
            if let Some(reply_to) = &msg.reply_to {
                check_publish_subject(reply_to).map_err(|e| format!("reply-to: {e}"))?;
            }
            let service = service?;
            match service.consumer_target(&component, &link)? {
                ConsumerTarget::Builtin => {
                    let subject = msg.subject.clone();
                    let published = match msg.reply_to {
                        Some(reply) => {
                            service
                                .nats
                                .publish_with_reply(msg.subject, reply, msg.body.into())
                                .await
                        }
                        None => service.nats.publish(msg.subject, msg.body.into()).await,
                    };
                    published.map_err(|e| format!("publish on `{subject}` failed: {e}"))
                }
                ConsumerTarget::Remote(target) => {
                    let cx = remote::Call::new(&links, &component, &link, &target)?;
                    cx.publish(msg, budget).await
                }
            }
        }
        .await;
        Ok(self.logged(&link, result))
    }
}

/// Adds `wasmcloud:messaging/consumer@0.2.0` to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    bindings::wasmcloud::messaging::consumer::add_to_linker::<_, HasSelf<InvocationState>>(
        linker,
        |s| s,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names() {
        assert!(is_builtin_messaging("builtin://messaging-nats"));
        assert!(is_builtin_messaging("wasmcloud+builtin://messaging-nats"));
        assert!(!is_builtin_messaging("builtin://keyvalue-nats"));
    }
}
