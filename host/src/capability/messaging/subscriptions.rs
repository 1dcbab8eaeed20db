//! Subscriptions of `builtin://messaging-nats` providers: recomputed from
//! the providers' `wasmcloud:messaging` handler links whenever links, config
//! or providers change (the same moments HTTP routes are), each one a task
//! reading a NATS subscription on the host's connection and delivering every
//! message to the linked component's `handle-message`: in-process when the
//! component runs here, over the lattice otherwise.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};

use futures::StreamExt as _;
use tokio::sync::Semaphore;
use wasmtime::component::Val;

use super::{HANDLER_FUNC, HANDLER_INSTANCE, OTHER_CLUSTER_KEYS, is_builtin_messaging};
use crate::host::HostInner;
use crate::runtime::CallScope;
use trellis_interfaces::messaging::{Subscription, parse_subscriptions};

/// Messages of one subscription being handled at once. The component's own
/// `max_instances` bounds how many run; this bounds how many wait, so a
/// flood backs up into NATS (which drops for slow consumers) instead of
/// into the host's memory.
pub const MAX_IN_FLIGHT_PER_SUBSCRIPTION: usize = 256;

/// Link config keys holding the subscription list (wasmCloud's provider
/// reads `SUBSCRIPTIONS`, case-insensitively).
const SUBSCRIPTION_KEYS: [&str; 2] = ["subscriptions", "SUBSCRIPTIONS"];

/// One wanted subscription: which provider, for which component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SubKey {
    provider: String,
    target: String,
    link_name: String,
    sub: Subscription,
}

/// The running subscription tasks of this host.
#[derive(Default)]
pub(crate) struct Subscriptions {
    active: Mutex<HashMap<SubKey, tokio::task::JoinHandle<()>>>,
}

impl Subscriptions {
    /// Starts and stops subscription tasks to match the lattice.
    pub fn reconcile(&self, host: &Arc<HostInner>, nats: &async_nats::Client) {
        let desired = desired(host);
        let Ok(mut active) = self.active.lock() else {
            return;
        };
        active.retain(|key, task| {
            let keep = desired.contains(key) && !task.is_finished();
            if !keep {
                task.abort();
                tracing::info!(provider_id = %key.provider, component_id = %key.target, subject = %key.sub.subject, "messaging subscription stopped");
            }
            keep
        });
        for key in desired {
            if active.contains_key(&key) {
                continue;
            }
            tracing::info!(provider_id = %key.provider, component_id = %key.target, subject = %key.sub.subject, queue = ?key.sub.queue, "messaging subscription started");
            let task = tokio::spawn(run(key.clone(), nats.clone(), Arc::downgrade(host)));
            active.insert(key, task);
        }
    }
}

/// Every subscription the built-in providers' links ask for. Bad entries
/// are logged and skipped; the good ones still run.
fn desired(host: &HostInner) -> BTreeSet<SubKey> {
    let providers: Vec<String> = host
        .providers
        .read()
        .map(|p| {
            p.iter()
                .filter(|(_, s)| is_builtin_messaging(&s.image_ref))
                .map(|(id, _)| id.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut out = BTreeSet::new();
    let Ok(view) = host.view.read() else {
        return out;
    };
    for provider in providers {
        for link in view.links_from(&provider) {
            if link.wit_namespace != "wasmcloud"
                || link.wit_package != "messaging"
                || !link.interfaces.iter().any(|i| i == "handler")
            {
                continue;
            }
            let config = view.merged_config(&link.source_config);
            if let Some(key) = OTHER_CLUSTER_KEYS.iter().find(|k| config.contains_key(**k)) {
                tracing::error!(provider_id = %provider, component_id = %link.target, "the built-in messaging-nats uses the host's own NATS connection; remove `{key}` from the link's source config, or use a messaging-nats provider process for another NATS");
                continue;
            }
            let Some(value) = SUBSCRIPTION_KEYS.iter().find_map(|k| config.get(*k)) else {
                tracing::warn!(provider_id = %provider, component_id = %link.target, "messaging handler link without `subscriptions` in its source config: nothing to subscribe to");
                continue;
            };
            let (good, bad) = parse_subscriptions(value);
            for e in bad {
                tracing::error!(provider_id = %provider, component_id = %link.target, "skipping subscription: {e}");
            }
            for sub in good {
                out.insert(SubKey {
                    provider: provider.clone(),
                    target: link.target.clone(),
                    link_name: link.name.clone(),
                    sub,
                });
            }
        }
    }
    out
}

async fn run(key: SubKey, nats: async_nats::Client, host: Weak<HostInner>) {
    let subject = key.sub.subject.clone();
    let subscribed = match &key.sub.queue {
        Some(queue) => nats.queue_subscribe(subject, queue.clone()).await,
        None => nats.subscribe(subject).await,
    };
    let mut messages = match subscribed {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(provider_id = %key.provider, subject = %key.sub.subject, error = %e, "cannot subscribe");
            return;
        }
    };
    let key = Arc::new(key);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_SUBSCRIPTION));
    while let Some(msg) = messages.next().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let key = key.clone();
        let host = host.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(host) = host.upgrade() else {
                return;
            };
            if let Err(e) = deliver(&host, &key, &msg).await {
                tracing::warn!(provider_id = %key.provider, component_id = %key.target, subject = %msg.subject, "message not handled: {e}");
            }
        });
    }
}

/// Calls the component's `handle-message` with `msg`.
async fn deliver(host: &HostInner, key: &SubKey, msg: &async_nats::Message) -> Result<(), String> {
    let budget = host.dataplane.rpc_timeout();
    let Some(component) = host.component(&key.target) else {
        let target: Arc<str> = Arc::from(key.target.as_str());
        let call = super::remote::Call::new(
            &Some(host.dataplane.clone()),
            &key.provider,
            &key.link_name,
            &target,
        )?;
        return call.handle_message(msg, budget).await;
    };
    let mut scope = CallScope::root(budget);
    scope.source_id = Some(Arc::from(key.provider.as_str()));
    scope.link_name = Some(Arc::from(key.link_name.as_str()));
    let params = [broker_message(msg)];
    let mut results = [Val::Bool(false)];
    component
        .call_local(scope, HANDLER_INSTANCE, HANDLER_FUNC, &params, &mut results)
        .await
        .map_err(|e| e.to_string())?;
    match results {
        [Val::Result(Err(Some(e)))] => match *e {
            Val::String(message) => Err(format!("the component returned an error: {message}")),
            other => Err(format!("the component returned an error: {other:?}")),
        },
        [Val::Result(Err(None))] => Err("the component returned an error".into()),
        _ => Ok(()),
    }
}

/// `broker-message` as a component value.
fn broker_message(msg: &async_nats::Message) -> Val {
    Val::Record(vec![
        ("subject".into(), Val::String(msg.subject.to_string())),
        (
            "body".into(),
            Val::List(msg.payload.iter().map(|b| Val::U8(*b)).collect()),
        ),
        (
            "reply-to".into(),
            Val::Option(
                msg.reply
                    .as_ref()
                    .map(|r| Box::new(Val::String(r.to_string()))),
            ),
        ),
    ])
}
