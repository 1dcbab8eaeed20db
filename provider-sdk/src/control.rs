//! The provider's side of the host ↔ provider control subjects
//! (PROTOCOL.md §4.2): health, shutdown, link put/delete, config update.
//!
//! Two subscriptions carry everything: `wasmbus.rpc.{lattice}.{id}.>` (health,
//! shutdown, 1.0-era link puts, link deletes, config updates, in the order the
//! host sent them) and `wasmbus.rpc.{lattice}.{xkey}.linkdefs.put` (puts with
//! sealed secrets). The xkey subscription is polled first: a host publishes a
//! put there before its 1.0-era duplicate and before any later delete, so
//! draining it first never applies a put after the delete that followed it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_nats::{Message, Subscriber};
use futures::StreamExt as _;
use serde::Deserialize;
use trellis_interfaces::provider::{
    HealthCheckResponse, HostData, InterfaceLinkDefinition, ProviderSubjects, ShutdownRequest,
};

use crate::error::RunError;
use crate::links::{LinkKey, LinkRole, LinkSnapshot, LinkTable, PutOutcome};
use crate::provider::Provider;
use crate::secrets::SecretKeys;

/// Reply to an accepted shutdown request (wasmCloud's, raw bytes).
const SHUTDOWN_REPLY: &[u8] = b"shutting down";

/// State shared between the control loop and [`Connection`](crate::Connection).
#[derive(Debug)]
pub(crate) struct SharedState {
    links: RwLock<LinkTable>,
    config: RwLock<HashMap<String, String>>,
}

impl SharedState {
    pub fn new(provider_id: &str, config: HashMap<String, String>) -> Self {
        Self {
            links: RwLock::new(LinkTable::new(provider_id)),
            config: RwLock::new(config),
        }
    }

    pub fn links(&self) -> LinkSnapshot {
        match self.links.read() {
            Ok(table) => table.snapshot(),
            Err(poisoned) => poisoned.into_inner().snapshot(),
        }
    }

    pub fn config(&self) -> HashMap<String, String> {
        match self.config.read() {
            Ok(config) => config.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn with_links<T>(&self, f: impl FnOnce(&mut LinkTable) -> T) -> T {
        match self.links.write() {
            Ok(mut table) => f(&mut table),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn set_config(&self, config: HashMap<String, String>) {
        match self.config.write() {
            Ok(mut current) => *current = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }
}

/// Why the control loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlEnd {
    /// Our host asked us to stop; `shutdown` ran and the reply was sent.
    ShutdownRequested,
    /// SIGTERM or SIGINT; `shutdown` ran.
    Signal,
}

/// The control subscriptions, made before `init` so nothing the host sends
/// meanwhile is lost.
pub(crate) struct ControlSubscriptions {
    by_id: Subscriber,
    by_xkey: Option<Subscriber>,
}

/// The control loop of one provider process.
pub(crate) struct ControlPlane<P> {
    provider: Arc<P>,
    nats: async_nats::Client,
    lattice: String,
    provider_id: String,
    host_id: String,
    keys: SecretKeys,
    state: Arc<SharedState>,
}

impl<P: Provider> ControlPlane<P> {
    pub fn new(
        provider: Arc<P>,
        nats: async_nats::Client,
        host_data: &HostData,
        state: Arc<SharedState>,
    ) -> Self {
        Self {
            provider,
            nats,
            lattice: host_data.lattice_rpc_prefix.clone(),
            provider_id: host_data.provider_key.clone(),
            host_id: host_data.host_id.clone(),
            keys: SecretKeys::from_host_data(host_data),
            state,
        }
    }

    fn id_prefix(&self) -> String {
        format!("wasmbus.rpc.{}.{}.", self.lattice, self.provider_id)
    }

    /// Subscribes to the control subjects and writes the subscriptions out.
    ///
    /// `flush` does not wait for the server to register them; it does not
    /// need to: the host delivers links and config only after a health
    /// request on these subjects was answered, and by then they are in place.
    pub async fn subscribe(&self) -> Result<ControlSubscriptions, RunError> {
        let by_id_subject = format!("{}>", self.id_prefix());
        let by_id = self.subscribe_one(by_id_subject).await?;
        let by_xkey = match self.keys.provider_public_key() {
            Some(xkey) if xkey != self.provider_id => {
                let subject = ProviderSubjects::new(&self.lattice).link_put(&xkey);
                Some(self.subscribe_one(subject).await?)
            }
            _ => None,
        };
        self.nats
            .flush()
            .await
            .map_err(|e| RunError::Nats(format!("flushing control subscriptions: {e}")))?;
        Ok(ControlSubscriptions { by_id, by_xkey })
    }

    async fn subscribe_one(&self, subject: String) -> Result<Subscriber, RunError> {
        self.nats
            .subscribe(subject.clone())
            .await
            .map_err(|e| RunError::Subscribe {
                subject,
                message: e.to_string(),
            })
    }

    /// Delivers the links host data carried at start, through the same path
    /// as later puts.
    pub async fn deliver_startup_links(&self, links: &[InterfaceLinkDefinition]) {
        for def in links {
            self.apply_link_put(def.clone()).await;
        }
    }

    /// Runs until a shutdown request from our host, a termination signal, or
    /// the loss of the subscriptions.
    pub async fn run(self, subs: ControlSubscriptions) -> Result<ControlEnd, RunError> {
        let ControlSubscriptions {
            mut by_id,
            mut by_xkey,
        } = subs;
        let mut signals = Signals::new();
        loop {
            let message = tokio::select! {
                biased;
                Some(message) = next_optional(&mut by_xkey) => message,
                message = by_id.next() => match message {
                    Some(message) => message,
                    None => return Err(RunError::Nats(
                        "the control subscription ended: the NATS connection was closed".into(),
                    )),
                },
                signal = signals.recv() => {
                    tracing::info!(signal, "termination signal, shutting down");
                    self.call_shutdown().await;
                    return Ok(ControlEnd::Signal);
                }
            };
            if self.handle(message).await == Flow::Stop {
                return Ok(ControlEnd::ShutdownRequested);
            }
        }
    }

    async fn handle(&self, message: Message) -> Flow {
        let subject = message.subject.as_str();
        let suffix = subject.strip_prefix(&self.id_prefix());
        match suffix {
            Some("health") => self.spawn_health_reply(message),
            Some("default.shutdown") => return self.handle_shutdown(message).await,
            Some("linkdefs.put") => self.handle_link_put(&message).await,
            Some("linkdefs.del") => self.handle_link_del(&message).await,
            Some("config.update") => self.handle_config_update(&message).await,
            // The xkey subscription carries only puts.
            None if subject.ends_with(".linkdefs.put") => self.handle_link_put(&message).await,
            _ => tracing::debug!(subject, "ignoring message on an unknown control subject"),
        }
        Flow::Continue
    }

    /// Answers a health request from its own task: a slow link callback must
    /// not make the provider look dead.
    fn spawn_health_reply(&self, message: Message) {
        let Some(reply) = message.reply else {
            tracing::debug!("health request without a reply subject");
            return;
        };
        let provider = Arc::clone(&self.provider);
        let nats = self.nats.clone();
        tokio::spawn(async move {
            let response: HealthCheckResponse = provider.health().await;
            let body = match serde_json::to_vec(&response) {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(%error, "health response did not serialize");
                    return;
                }
            };
            if let Err(error) = nats.publish(reply, body.into()).await {
                tracing::warn!(%error, "failed to answer a health request");
            }
        });
    }

    async fn handle_shutdown(&self, message: Message) -> Flow {
        let request: ShutdownRequest = match serde_json::from_slice(&message.payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, "ignoring a shutdown request that is not {{\"host_id\": …}}");
                return Flow::Continue;
            }
        };
        if request.host_id != self.host_id {
            tracing::debug!(
                from = %request.host_id,
                host_id = %self.host_id,
                "ignoring a shutdown request from another host"
            );
            return Flow::Continue;
        }
        tracing::info!(host_id = %self.host_id, "shutdown requested by the host");
        self.call_shutdown().await;
        if let Some(reply) = message.reply {
            if let Err(error) = self.nats.publish(reply, SHUTDOWN_REPLY.into()).await {
                tracing::warn!(%error, "failed to answer the shutdown request");
            }
            if let Err(error) = self.nats.flush().await {
                tracing::warn!(%error, "failed to flush the shutdown reply");
            }
        }
        Flow::Stop
    }

    async fn call_shutdown(&self) {
        if let Err(error) = self.provider.shutdown().await {
            tracing::error!(error = format!("{error:#}"), "provider shutdown failed");
        }
    }

    async fn handle_link_put(&self, message: &Message) {
        match serde_json::from_slice::<InterfaceLinkDefinition>(&message.payload) {
            Ok(def) => self.apply_link_put(def).await,
            Err(error) => tracing::warn!(
                subject = %message.subject,
                %error,
                "ignoring a link put that is not an InterfaceLinkDefinition"
            ),
        }
    }

    async fn apply_link_put(&self, def: InterfaceLinkDefinition) {
        let record = self.keys.record(def);
        let key = LinkKey::of(&record.def);
        let (outcome, stored, roles) = self.state.with_links(|table| {
            let roles = table.roles(&record.def);
            let outcome = table.put(record);
            (outcome, table.get(&key).cloned(), roles)
        });
        match outcome {
            PutOutcome::NotOurs => {
                tracing::warn!(link = %key, provider_id = %self.provider_id, "ignoring a link that does not involve this provider");
                return;
            }
            PutOutcome::Duplicate => {
                tracing::debug!(link = %key, "duplicate link put ignored");
                return;
            }
            PutOutcome::New | PutOutcome::Changed => {}
        }
        let Some(stored) = stored else { return };
        tracing::info!(link = %key, ?outcome, "link received");
        for role in roles {
            let config = stored.config_for(role);
            let result = match role {
                LinkRole::Source => self.provider.on_link_as_source(&config).await,
                LinkRole::Target => self.provider.on_link_as_target(&config).await,
            };
            if let Err(error) = result {
                tracing::error!(link = %key, ?role, error = format!("{error:#}"), "link callback failed");
            }
        }
    }

    async fn handle_link_del(&self, message: &Message) {
        let deletion: LinkDeletion = match serde_json::from_slice(&message.payload) {
            Ok(deletion) => deletion,
            Err(error) => {
                tracing::warn!(%error, "ignoring a link delete that is not a link definition");
                return;
            }
        };
        let removed = self
            .state
            .with_links(|table| table.delete_matching(&deletion.matcher()));
        if removed.is_empty() {
            tracing::debug!(source_id = %deletion.source_id, target = %deletion.target, "delete for an unknown link ignored");
        }
        for record in removed {
            let key = LinkKey::of(&record.def);
            tracing::info!(link = %key, "link deleted");
            for role in crate::links::roles_of(&self.provider_id, &record.def) {
                let result = match role {
                    LinkRole::Source => self.provider.on_link_deleted_as_source(&key).await,
                    LinkRole::Target => self.provider.on_link_deleted_as_target(&key).await,
                };
                if let Err(error) = result {
                    tracing::error!(link = %key, ?role, error = format!("{error:#}"), "link delete callback failed");
                }
            }
        }
    }

    async fn handle_config_update(&self, message: &Message) {
        let config: HashMap<String, String> = match serde_json::from_slice(&message.payload) {
            Ok(config) => config,
            Err(error) => {
                tracing::warn!(%error, "ignoring a config update that is not a JSON map of strings");
                return;
            }
        };
        self.state.set_config(config.clone());
        tracing::info!(keys = config.len(), "config updated");
        if let Err(error) = self.provider.on_config_update(&config).await {
            tracing::error!(
                error = format!("{error:#}"),
                "config update callback failed"
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// A delete as hosts send it: a link definition without config. Namespace
/// and package are optional so a delete that leaves them out removes every
/// link between the pair with that name.
#[derive(Debug, Deserialize)]
struct LinkDeletion {
    source_id: String,
    target: String,
    #[serde(default = "default_link_name")]
    name: String,
    #[serde(default)]
    wit_namespace: Option<String>,
    #[serde(default)]
    wit_package: Option<String>,
}

fn default_link_name() -> String {
    "default".into()
}

impl LinkDeletion {
    fn matcher(&self) -> crate::links::LinkMatcher<'_> {
        crate::links::LinkMatcher {
            source_id: &self.source_id,
            target_id: &self.target,
            link_name: &self.name,
            wit_namespace: self.wit_namespace.as_deref().filter(|s| !s.is_empty()),
            wit_package: self.wit_package.as_deref().filter(|s| !s.is_empty()),
        }
    }
}

async fn next_optional(sub: &mut Option<Subscriber>) -> Option<Message> {
    match sub {
        Some(sub) => sub.next().await,
        None => std::future::pending().await,
    }
}

/// SIGTERM and SIGINT, when they can be listened to.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    /// The process that started this one (the host) and a ticker to check
    /// that it still is the parent.
    #[cfg(unix)]
    parent: (u32, tokio::time::Interval),
}

/// How often a provider checks that the host that started it is alive. A
/// host killed with SIGKILL cannot stop its providers; without this check
/// they would run on, orphaned, forever.
pub(crate) const PARENT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate())
                .map_err(|error| tracing::warn!(%error, "cannot listen for SIGTERM"))
                .ok();
            let mut ticks = tokio::time::interval(PARENT_CHECK_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            Self {
                term,
                parent: (std::os::unix::process::parent_id(), ticks),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves with the signal's name when one arrives, or when the host
    /// process that started this provider has exited (the provider was
    /// re-parented). Cancel-safe: the parent check's ticker is kept across
    /// calls.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        let Self {
            term: term_signal,
            parent: (parent, ticks),
        } = self;
        #[cfg(unix)]
        let term = async {
            match term_signal.as_mut() {
                Some(term) => {
                    term.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(unix)]
        let orphaned = async {
            loop {
                ticks.tick().await;
                if std::os::unix::process::parent_id() != *parent {
                    break;
                }
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        #[cfg(not(unix))]
        let orphaned = std::future::pending::<()>();
        tokio::select! {
            () = term => "SIGTERM",
            () = orphaned => "host process exited",
            result = tokio::signal::ctrl_c() => match result {
                Ok(()) => "SIGINT",
                Err(_) => std::future::pending().await,
            },
        }
    }
}
