//! How each observation changes the observed lattice.

use trellis_interfaces::event::LatticeEvent;
use trellis_interfaces::inventory::HostInventory;
use trellis_interfaces::link::Link;
use trellis_interfaces::liveness::LivenessBeat;

use super::{
    ComponentInstance, ConfigValue, Failure, FailureKey, HostState, LatticeState, Observation,
    ProviderInstance,
};

impl LatticeState {
    /// Applies one observation. Pure: the same observations in the same order always
    /// give the same state.
    pub fn apply(&mut self, observation: Observation) {
        match observation {
            Observation::Inventory { inventory, at_ms } => self.apply_inventory(inventory, at_ms),
            Observation::Event {
                source,
                event,
                at_ms,
            } => self.apply_event(&source, event, at_ms),
            Observation::Liveness { beat, at_ms } => self.apply_beat(&beat, at_ms),
            Observation::ProbeFailed { host_id, at_ms } => {
                if let Some(host) = self.hosts.get_mut(&host_id) {
                    host.probe_failed_ms = Some(at_ms);
                }
            }
            Observation::HostGone { host_id } => self.remove_host(&host_id),
            Observation::Links { links } => self.links = links,
            Observation::Config { name, values } => match values {
                Some(values) => {
                    self.configs.insert(name, ConfigValue::Known(values));
                }
                None => {
                    self.configs.remove(&name);
                }
            },
            Observation::ObserverConnected { at_ms } => {
                self.observer_connected = true;
                self.observer_since_ms = at_ms;
                for host in self.hosts.values_mut() {
                    host.inventory_outdated = true;
                }
            }
            Observation::ObserverDisconnected { at_ms } => {
                self.observer_connected = false;
                self.observer_since_ms = at_ms;
            }
        }
    }

    /// The host, created (with unknown inventory) if wadm had not heard of it, and
    /// marked as heard from at `at_ms`.
    fn touch(&mut self, host_id: &str, at_ms: u64) -> &mut HostState {
        let host = self
            .hosts
            .entry(host_id.to_string())
            .or_insert_with(|| HostState {
                id: host_id.to_string(),
                ready: true,
                ..HostState::default()
            });
        host.last_seen_ms = host.last_seen_ms.max(at_ms);
        host
    }

    fn remove_host(&mut self, host_id: &str) {
        self.hosts.remove(host_id);
        self.failures.retain(|key, _| match key {
            FailureKey::Component { host_id: h, .. } | FailureKey::Provider { host_id: h, .. } => {
                h != host_id
            }
            FailureKey::Link { .. } => true,
        });
    }

    fn apply_inventory(&mut self, inventory: HostInventory, at_ms: u64) {
        let host = self.touch(&inventory.host_id, at_ms);
        if !inventory.friendly_name.is_empty() {
            host.friendly_name = inventory.friendly_name;
        }
        host.labels = inventory.labels;
        host.components = inventory
            .components
            .into_iter()
            .map(|c| {
                (
                    c.id,
                    ComponentInstance {
                        image_ref: c.image_ref,
                        max_instances: c.max_instances,
                        annotations: c.annotations.unwrap_or_default(),
                    },
                )
            })
            .collect();
        host.providers = inventory
            .providers
            .into_iter()
            .map(|p| {
                (
                    p.id,
                    ProviderInstance {
                        image_ref: p.image_ref.unwrap_or_default(),
                        annotations: p.annotations.unwrap_or_default(),
                    },
                )
            })
            .collect();
        host.inventory_known = true;
        host.inventory_outdated = false;
        host.beat_counts = None;
    }

    fn apply_beat(&mut self, beat: &LivenessBeat, at_ms: u64) {
        let host = self.touch(&beat.host_id, at_ms);
        let restarted = host
            .last_beat
            .is_some_and(|(seq, uptime)| beat.seq < seq || beat.uptime_ms < uptime);
        if restarted {
            // A restarted host runs nothing it ran before; what it runs now must be
            // fetched before it is placed on again.
            host.components.clear();
            host.providers.clear();
            host.inventory_known = false;
        }
        host.sends_liveness = true;
        host.ready = beat.ready;
        host.last_beat = Some((beat.seq, beat.uptime_ms));
        host.beat_counts = Some((beat.components, beat.providers));
    }

    fn apply_event(&mut self, source: &str, event: LatticeEvent, at_ms: u64) {
        match event {
            LatticeEvent::HostStarted(started) => {
                let host = self.touch(source, at_ms);
                host.friendly_name = started.friendly_name;
                host.labels = started.labels;
                host.components.clear();
                host.providers.clear();
                host.inventory_known = true;
                host.ready = true;
                host.last_beat = None;
                host.beat_counts = None;
            }
            LatticeEvent::HostStopped(_) => self.remove_host(source),
            LatticeEvent::HostHeartbeat(heartbeat) => {
                let mut inventory = heartbeat.inventory;
                if inventory.host_id.is_empty() {
                    inventory.host_id = source.to_string();
                }
                self.apply_inventory(inventory, at_ms);
            }
            LatticeEvent::LabelsChanged(changed) => {
                self.touch(&changed.host_id, at_ms).labels = changed.labels;
            }
            LatticeEvent::HealthCheckPassed(p)
            | LatticeEvent::HealthCheckFailed(p)
            | LatticeEvent::HealthCheckStatus(p) => {
                let host_id = if p.host_id.is_empty() {
                    source
                } else {
                    &p.host_id
                };
                self.touch(host_id, at_ms);
            }
            other => {
                self.apply_workload_event(with_host_id(other, source), at_ms);
                self.note_heard_from(source, at_ms);
            }
        }
    }

    fn apply_workload_event(&mut self, event: LatticeEvent, at_ms: u64) {
        match event {
            LatticeEvent::ComponentScaled(e) => {
                let host = self.touch(&e.host_id, at_ms);
                if e.max_instances == 0 {
                    host.components.remove(&e.component_id);
                } else {
                    host.components.insert(
                        e.component_id.clone(),
                        ComponentInstance {
                            image_ref: e.image_ref,
                            max_instances: e.max_instances,
                            annotations: e.annotations,
                        },
                    );
                }
                self.failures.remove(&FailureKey::Component {
                    host_id: e.host_id,
                    id: e.component_id,
                });
            }
            LatticeEvent::ComponentScaleFailed(e) => {
                self.touch(&e.host_id, at_ms);
                self.record_failure(
                    FailureKey::Component {
                        host_id: e.host_id,
                        id: e.component_id,
                    },
                    e.image_ref,
                    e.error,
                    at_ms,
                );
            }
            LatticeEvent::ProviderStarted(e) => {
                self.touch(&e.host_id, at_ms).providers.insert(
                    e.provider_id.clone(),
                    ProviderInstance {
                        image_ref: e.image_ref,
                        annotations: e.annotations,
                    },
                );
                self.failures.remove(&FailureKey::Provider {
                    host_id: e.host_id,
                    id: e.provider_id,
                });
            }
            LatticeEvent::ProviderStartFailed(e) => {
                self.touch(&e.host_id, at_ms);
                self.record_failure(
                    FailureKey::Provider {
                        host_id: e.host_id,
                        id: e.provider_id,
                    },
                    e.provider_ref,
                    e.error,
                    at_ms,
                );
            }
            LatticeEvent::ProviderStopped(e) => {
                self.touch(&e.host_id, at_ms)
                    .providers
                    .remove(&e.provider_id);
            }
            other => self.apply_lattice_data_event(other, at_ms),
        }
    }

    fn apply_lattice_data_event(&mut self, event: LatticeEvent, at_ms: u64) {
        match event {
            LatticeEvent::LinkdefSet(link) => {
                self.failures.remove(&link_failure_key(&link));
                put_link(&mut self.links, link);
            }
            LatticeEvent::LinkdefSetFailed(failed) => {
                let key = link_failure_key(&failed.link);
                self.record_failure(key, failed.link.target, failed.error, at_ms);
            }
            LatticeEvent::LinkdefDeleted(deleted) => {
                let position = self.links.iter().position(|l| {
                    l.source_id == deleted.source_id
                        && l.wit_namespace == deleted.wit_namespace
                        && l.wit_package == deleted.wit_package
                        && l.name == deleted.name
                });
                if let Some(index) = position {
                    self.links.remove(index);
                }
            }
            LatticeEvent::ConfigSet(config) => {
                // The values are read from CONFIGDATA by the observer and arrive as an
                // `Observation::Config`; until then the config is known to exist.
                self.configs
                    .insert(config.config_name, ConfigValue::Unknown);
            }
            LatticeEvent::ConfigDeleted(config) => {
                self.configs.remove(&config.config_name);
            }
            _ => {}
        }
    }

    /// Events published by a host also prove it is alive.
    fn note_heard_from(&mut self, source: &str, at_ms: u64) {
        if let Some(host) = self.hosts.get_mut(source) {
            host.last_seen_ms = host.last_seen_ms.max(at_ms);
        }
    }

    fn record_failure(&mut self, key: FailureKey, reference: String, error: String, at_ms: u64) {
        self.failures.insert(
            key,
            Failure {
                reference,
                error,
                at_ms,
            },
        );
    }
}

/// Workload events from hosts that leave `host_id` empty are about their publisher.
fn with_host_id(mut event: LatticeEvent, source: &str) -> LatticeEvent {
    let host_id = match &mut event {
        LatticeEvent::ComponentScaled(e) => &mut e.host_id,
        LatticeEvent::ComponentScaleFailed(e) => &mut e.host_id,
        LatticeEvent::ProviderStarted(e) => &mut e.host_id,
        LatticeEvent::ProviderStartFailed(e) => &mut e.host_id,
        LatticeEvent::ProviderStopped(e) => &mut e.host_id,
        _ => return event,
    };
    if host_id.is_empty() {
        *host_id = source.to_string();
    }
    event
}

/// The failure key of a link: `link.del`'s key.
#[must_use]
pub(crate) fn link_failure_key(link: &Link) -> FailureKey {
    FailureKey::Link {
        source_id: link.source_id.clone(),
        wit_namespace: link.wit_namespace.clone(),
        wit_package: link.wit_package.clone(),
        name: link.name.clone(),
    }
}

/// Records a put link the way a host's `link.put` stores it: replacing the link with the
/// same key, else appending.
fn put_link(links: &mut Vec<Link>, link: Link) {
    match links.iter_mut().find(|l| l.same_key(&link)) {
        Some(slot) => *slot = link,
        None => links.push(link),
    }
}
