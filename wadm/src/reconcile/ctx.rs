//! What every scaler of a pass looks at: the placeable hosts, the commands in flight,
//! and indexes built once per pass so that a pass over many applications stays linear.

use std::collections::HashMap;

use trellis_interfaces::ctl::Annotations;
use trellis_interfaces::link::Link;

use crate::annotations::{managing_app, scaler_of};
use crate::command::Command;
use crate::observed::{Failure, FailureKey, HostState, LatticeState};
use crate::pending::PendingCommands;
use crate::policy::FailurePolicy;

/// Everything a scaler may look at.
pub(crate) struct Ctx<'a> {
    pub observed: &'a LatticeState,
    pub pending: &'a PendingCommands,
    pub now_ms: u64,
    pub policy: &'a FailurePolicy,
    /// Hosts that may be placed on and whose instances count: heard from recently,
    /// ready, with a known inventory. Sorted by id.
    pub placeable: Vec<&'a HostState>,
    /// What the commands in flight will leave, by workload id then host: placement
    /// prefers hosts by what they will run, not by what they ran before the last
    /// command, so a plan does not flip while its own commands are in flight.
    intents: HashMap<String, HashMap<String, Intent>>,
    /// Instances wadm started on placeable hosts, by application.
    by_app: HashMap<&'a str, Vec<AppInstance<'a>>>,
    /// Observed links by source id.
    links_by_source: HashMap<&'a str, Vec<&'a Link>>,
}

/// What an unanswered workload command will leave on its host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Intent {
    /// Instances (providers: 0 or 1).
    pub count: u32,
    /// Image.
    pub image: String,
    /// Scaler annotation.
    pub scaler: Option<String>,
    /// An in-place image update (`allow_update`).
    pub update: bool,
}

/// One instance an application started, on a placeable host.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AppInstance<'a> {
    pub host_id: &'a str,
    pub id: &'a str,
    pub provider: bool,
    pub image_ref: &'a str,
    pub annotations: &'a Annotations,
}

impl<'a> Ctx<'a> {
    /// The context of one pass. While `blind`, stale hosts stay placeable: nothing is
    /// issued then, and statuses describe the last known placement.
    pub fn new(
        observed: &'a LatticeState,
        pending: &'a PendingCommands,
        now_ms: u64,
        policy: &'a FailurePolicy,
        blind: bool,
    ) -> Self {
        let placeable: Vec<&HostState> = observed
            .hosts
            .values()
            .filter(|h| h.ready && h.inventory_known)
            .filter(|h| blind || !observed.is_stale(h, now_ms, policy))
            .collect();
        let mut by_app: HashMap<&str, Vec<AppInstance<'_>>> = HashMap::new();
        for host in &placeable {
            let components = host
                .components
                .iter()
                .map(|(id, c)| (id, false, &c.image_ref, &c.annotations));
            let providers = host
                .providers
                .iter()
                .map(|(id, p)| (id, true, &p.image_ref, &p.annotations));
            for (id, provider, image_ref, annotations) in components.chain(providers) {
                if let Some(app) = managing_app(annotations) {
                    by_app.entry(app).or_default().push(AppInstance {
                        host_id: &host.id,
                        id,
                        provider,
                        image_ref,
                        annotations,
                    });
                }
            }
        }
        let mut links_by_source: HashMap<&str, Vec<&Link>> = HashMap::new();
        for link in &observed.links {
            links_by_source
                .entry(link.source_id.as_str())
                .or_default()
                .push(link);
        }
        let mut ctx = Self {
            observed,
            pending,
            now_ms,
            policy,
            placeable,
            intents: HashMap::new(),
            by_app,
            links_by_source,
        };
        ctx.intents = ctx.collect_intents();
        ctx
    }

    /// Commands in flight that the lattice has not answered yet, except those addressed
    /// to hosts that are not placeable (fenced or gone): whatever they do there is not
    /// counted, so it must not hold anything back either.
    fn collect_intents(&self) -> HashMap<String, HashMap<String, Intent>> {
        let mut out: HashMap<String, HashMap<String, Intent>> = HashMap::new();
        let unsettled = self
            .pending
            .unanswered(self.observed, self.now_ms, self.policy)
            .filter(|c| {
                c.host_id()
                    .is_none_or(|id| self.placeable.iter().any(|h| h.id == id))
            });
        for command in unsettled {
            let (host, id, intent) = match command {
                Command::ScaleComponent(c) => (
                    &c.host_id,
                    &c.component_id,
                    Intent {
                        count: c.count,
                        image: c.image_ref.clone(),
                        scaler: scaler_of(&c.annotations).map(str::to_string),
                        update: c.allow_update,
                    },
                ),
                Command::StartProvider(c) => (
                    &c.host_id,
                    &c.provider_id,
                    Intent {
                        count: 1,
                        image: c.image_ref.clone(),
                        scaler: scaler_of(&c.annotations).map(str::to_string),
                        update: false,
                    },
                ),
                Command::StopProvider(c) => (
                    &c.host_id,
                    &c.provider_id,
                    Intent {
                        count: 0,
                        image: String::new(),
                        scaler: None,
                        update: false,
                    },
                ),
                _ => continue,
            };
            out.entry(id.clone())
                .or_default()
                .insert(host.clone(), intent);
        }
        out
    }

    /// What commands in flight will leave of workload `id` on `host_id`.
    pub fn intent(&self, id: &str, host_id: &str) -> Option<&Intent> {
        self.intents.get(id).and_then(|hosts| hosts.get(host_id))
    }

    /// What commands in flight will leave of workload `id`, host by host.
    pub fn intents_for(&self, id: &str) -> impl Iterator<Item = &Intent> {
        self.intents.get(id).into_iter().flat_map(HashMap::values)
    }

    /// How many unanswered commands act on workload `id`.
    pub fn in_flight_for(&self, id: &str) -> usize {
        self.intents.get(id).map_or(0, HashMap::len)
    }

    /// The instances `app` started on placeable hosts.
    pub fn instances_of(&self, app: &str) -> &[AppInstance<'a>] {
        self.by_app.get(app).map_or(&[], Vec::as_slice)
    }

    /// Observed links whose source is `source_id`.
    pub fn links_from(&self, source_id: &str) -> &[&'a Link] {
        self.links_by_source
            .get(source_id)
            .map_or(&[], Vec::as_slice)
    }

    /// The failure recorded for workload `id` on `host_id`, if any.
    pub fn workload_failure(&self, provider: bool, host_id: &str, id: &str) -> Option<&Failure> {
        if self.observed.failures.is_empty() {
            return None;
        }
        let (host_id, id) = (host_id.to_string(), id.to_string());
        let key = if provider {
            FailureKey::Provider { host_id, id }
        } else {
            FailureKey::Component { host_id, id }
        };
        self.observed.failures.get(&key)
    }

    /// Whether `failure` is of `reference` and recent (within the failure backoff): the
    /// same thing is not retried there yet.
    pub fn backing_off(&self, failure: Option<&Failure>, reference: &str) -> bool {
        failure.is_some_and(|f| {
            f.reference == reference
                && self.now_ms.saturating_sub(f.at_ms) < self.policy.failure_backoff_ms
        })
    }
}
