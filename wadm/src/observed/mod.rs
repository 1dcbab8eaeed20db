//! The observed lattice: what wadm knows about hosts, what runs on them, links and
//! config, built only by applying [`Observation`]s (`apply.rs`). Nothing here reads a
//! clock or the network; every observation carries the time it was received.
//!
//! Host freshness is judged against `max(last_seen, observer_since)`: while wadm
//! itself was disconnected it heard from nobody, and that silence is not the hosts'
//! fault, so after a reconnect every host gets a full timeout to be heard from again.

mod apply;

pub(crate) use apply::link_failure_key;

use std::collections::BTreeMap;

use trellis_interfaces::ctl::Annotations;
use trellis_interfaces::event::{CloudEvent, EventError, LatticeEvent};
use trellis_interfaces::inventory::HostInventory;
use trellis_interfaces::link::Link;
use trellis_interfaces::liveness::LivenessBeat;

use crate::policy::FailurePolicy;

/// One thing wadm learned, with the time (ms) it learned it.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// A `host.get` reply: everything on one host (replaces what was known of it).
    Inventory {
        /// The inventory.
        inventory: HostInventory,
        /// When it was received.
        at_ms: u64,
    },
    /// A lattice event. `source` is the CloudEvent's `source`, the publishing host's
    /// id (needed for `host_started` / `host_stopped`, whose data has no host id).
    Event {
        /// The publishing host (or `wadm`).
        source: String,
        /// The event.
        event: LatticeEvent,
        /// When it was received.
        at_ms: u64,
    },
    /// A Trellis liveness beat.
    Liveness {
        /// The beat.
        beat: LivenessBeat,
        /// When it was received.
        at_ms: u64,
    },
    /// A `host.get` probe of a host that sends no liveness beats got no answer (no
    /// responders, or the 2 s timeout): the host is fenced until heard from again. A
    /// successful probe is an [`Observation::Inventory`].
    ProbeFailed {
        /// The host.
        host_id: String,
        /// When the probe failed.
        at_ms: u64,
    },
    /// A host is known to be gone for good (forgotten after long silence, or removed by
    /// an operator).
    HostGone {
        /// The host.
        host_id: String,
    },
    /// A `link.get` reply: every link in the lattice (replaces what was known).
    Links {
        /// The links.
        links: Vec<Link>,
    },
    /// The value of a named config read from `CONFIGDATA_{lattice}`; `None` if absent.
    Config {
        /// Config name.
        name: String,
        /// Its values, or `None` if there is no such config.
        values: Option<BTreeMap<String, String>>,
    },
    /// wadm's own NATS connection is up (again) since `at_ms`. Every host's inventory
    /// is then marked outdated (events were missed): the observer should fetch them all
    /// (`hosts_needing_inventory`) before acting on the next pass.
    ObserverConnected {
        /// When it (re)connected.
        at_ms: u64,
    },
    /// wadm lost its NATS connection at `at_ms`: from now on it must not act.
    ObserverDisconnected {
        /// When it was lost.
        at_ms: u64,
    },
}

impl Observation {
    /// An [`Observation::Event`] from a received CloudEvent.
    pub fn from_cloud_event(event: &CloudEvent, at_ms: u64) -> Result<Self, EventError> {
        Ok(Self::Event {
            source: event.source.clone(),
            event: event.decode()?,
            at_ms,
        })
    }
}

/// One component running on a host (a host runs at most one per component id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComponentInstance {
    /// The image it runs.
    pub image_ref: String,
    /// Its maximum concurrency: the "instances" a spread counts.
    pub max_instances: u32,
    /// Its annotations (who started it, for which app and scaler).
    pub annotations: Annotations,
}

/// One provider running on a host (at most one per provider id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderInstance {
    /// The image it runs.
    pub image_ref: String,
    /// Its annotations.
    pub annotations: Annotations,
}

/// What wadm knows of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostState {
    /// Host id (`N…`).
    pub id: String,
    /// Friendly name, if known.
    pub friendly_name: String,
    /// Labels, matched against spread requirements.
    pub labels: BTreeMap<String, String>,
    /// Components by id.
    pub components: BTreeMap<String, ComponentInstance>,
    /// Providers by id.
    pub providers: BTreeMap<String, ProviderInstance>,
    /// When wadm last heard from the host (beat, heartbeat, inventory or event).
    pub last_seen_ms: u64,
    /// Whether the host accepts work (its last liveness beat said so).
    pub ready: bool,
    /// Whether the host sends Trellis liveness beats (else the legacy timeout applies).
    pub sends_liveness: bool,
    /// Whether `components`/`providers` come from an inventory or heartbeat (else the
    /// host is known only from beats or single events, and is not placed on).
    pub inventory_known: bool,
    /// `(seq, uptime_ms)` of the last beat, to notice restarts.
    pub last_beat: Option<(u64, u64)>,
    /// `(components, providers)` counts of the last beat, to notice a stale inventory.
    pub beat_counts: Option<(u32, u32)>,
    /// When a probe of the host last failed (see [`Observation::ProbeFailed`]).
    pub probe_failed_ms: Option<u64>,
    /// Events may have been missed (wadm was disconnected since the inventory was
    /// taken): the inventory is still used, but should be fetched again.
    pub inventory_outdated: bool,
}

/// A named config as far as wadm knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigValue {
    /// Present with these values.
    Known(BTreeMap<String, String>),
    /// Present (a `config_set` was seen) but the values were not read yet.
    Unknown,
}

/// What a recorded failure is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKey {
    /// A component on a host.
    Component {
        /// The host.
        host_id: String,
        /// The component id.
        id: String,
    },
    /// A provider on a host.
    Provider {
        /// The host.
        host_id: String,
        /// The provider id.
        id: String,
    },
    /// A link, by `link.del` key.
    Link {
        /// Link source.
        source_id: String,
        /// WIT namespace.
        wit_namespace: String,
        /// WIT package.
        wit_package: String,
        /// Link name.
        name: String,
    },
}

/// A failure a host reported (`*_failed` events), kept until the same thing succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The image (or, for links, the target) that failed.
    pub reference: String,
    /// The host's reason.
    pub error: String,
    /// When it was observed.
    pub at_ms: u64,
}

/// The observed lattice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatticeState {
    /// Hosts by id.
    pub hosts: BTreeMap<String, HostState>,
    /// Every link.
    pub links: Vec<Link>,
    /// Named configs present in `CONFIGDATA`.
    pub configs: BTreeMap<String, ConfigValue>,
    /// Failures reported by hosts and not yet superseded by a success.
    pub failures: BTreeMap<FailureKey, Failure>,
    /// Whether wadm's own NATS connection is up.
    pub observer_connected: bool,
    /// When it last connected or disconnected.
    pub observer_since_ms: u64,
}

impl Default for LatticeState {
    fn default() -> Self {
        Self::new(0)
    }
}

impl LatticeState {
    /// An empty lattice seen by an observer connected since `connected_at_ms`.
    #[must_use]
    pub fn new(connected_at_ms: u64) -> Self {
        Self {
            hosts: BTreeMap::new(),
            links: Vec::new(),
            configs: BTreeMap::new(),
            failures: BTreeMap::new(),
            observer_connected: true,
            observer_since_ms: connected_at_ms,
        }
    }

    /// How long `host` has been silent at `now_ms`, not counting time wadm itself was
    /// disconnected (see the module docs).
    #[must_use]
    pub fn silence_ms(&self, host: &HostState, now_ms: u64) -> u64 {
        let heard = host.last_seen_ms.max(self.observer_since_ms);
        now_ms.saturating_sub(heard)
    }

    /// Whether `host` is fenced at `now_ms`: silent for longer than its timeout, or a
    /// probe failed since it was last heard from. A host that sends no liveness beats
    /// (a wasmCloud 1.x host, or a host wadm has only seen in an inventory so far) gets
    /// the legacy timeout, unless it fails a probe (see [`Self::hosts_to_probe`]).
    #[must_use]
    pub fn is_stale(&self, host: &HostState, now_ms: u64, policy: &FailurePolicy) -> bool {
        let probe_failed = host
            .probe_failed_ms
            .is_some_and(|at| at >= host.last_seen_ms);
        let timeout = if host.sends_liveness {
            policy.host_timeout_ms
        } else {
            policy.legacy_host_timeout_ms
        };
        probe_failed || self.silence_ms(host, now_ms) > timeout
    }

    /// Hosts wadm should probe with `host.get` now: those that send no liveness beats
    /// and have been silent for longer than the (fast) host timeout, and whose last
    /// probe did not already fail. A probe that answers refreshes the host
    /// ([`Observation::Inventory`]); one that fails fences it
    /// ([`Observation::ProbeFailed`]). So a dead host is fenced within seconds even
    /// when it never sent a beat (wadm restarted and learned it from an inventory just
    /// before it died, or it is a wasmCloud 1.x host), while a live wasmCloud host is
    /// simply asked every few seconds.
    #[must_use]
    pub fn hosts_to_probe(&self, now_ms: u64, policy: &FailurePolicy) -> Vec<&str> {
        self.hosts
            .values()
            .filter(|h| {
                !h.sends_liveness
                    && self.silence_ms(h, now_ms) > policy.host_timeout_ms
                    && h.probe_failed_ms.is_none_or(|at| at < h.last_seen_ms)
            })
            .map(|h| h.id.as_str())
            .collect()
    }

    /// Hosts whose inventory wadm should fetch with `host.get`: known only from beats or
    /// events, possibly changed while wadm was disconnected, or whose last beat counts
    /// disagree with the inventory wadm holds.
    #[must_use]
    pub fn hosts_needing_inventory(&self) -> Vec<&str> {
        self.hosts
            .values()
            .filter(|h| {
                !h.inventory_known
                    || h.inventory_outdated
                    || h.beat_counts.is_some_and(|(c, p)| {
                        usize::try_from(c).ok() != Some(h.components.len())
                            || usize::try_from(p).ok() != Some(h.providers.len())
                    })
            })
            .map(|h| h.id.as_str())
            .collect()
    }

    /// Hosts silent for longer than `older_than_ms` at `now_ms`: candidates to forget
    /// with [`Observation::HostGone`] (wadm 0.21's reaper forgets after 70 s).
    #[must_use]
    pub fn silent_hosts(&self, now_ms: u64, older_than_ms: u64) -> Vec<String> {
        self.hosts
            .values()
            .filter(|h| self.silence_ms(h, now_ms) > older_than_ms)
            .map(|h| h.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
