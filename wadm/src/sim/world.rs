//! The simulated lattice: hosts that execute commands the way a Trellis host does and
//! publish the events it would, plus the lattice-wide links and config.

use std::collections::{BTreeMap, BTreeSet};

use trellis_interfaces::ctl::Annotations;
use trellis_interfaces::event::{
    ComponentScaleFailed, ComponentScaled, ConfigEvent, HostHeartbeat, HostStarted, HostStopped,
    LatticeEvent, LinkdefDeleted, LinkdefSetFailed, ProviderStartFailed, ProviderStarted,
    ProviderStopped,
};
use trellis_interfaces::inventory::{ComponentDescription, HostInventory, ProviderDescription};
use trellis_interfaces::link::{ComponentSpecification, Link};
use trellis_interfaces::liveness::LivenessBeat;

use crate::command::{Command, ScaleComponent};

/// A component running on a simulated host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimComponent {
    /// Image.
    pub image_ref: String,
    /// Concurrency.
    pub max_instances: u32,
    /// Annotations.
    pub annotations: Annotations,
}

/// A provider running on a simulated host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimProvider {
    /// Image.
    pub image_ref: String,
    /// Annotations.
    pub annotations: Annotations,
}

/// One simulated host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimHost {
    /// Host id.
    pub id: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Whether the process runs (a dead host never comes back; a new one joins).
    pub alive: bool,
    /// Until when (ms) the host is cut off from NATS: no beats, no events, commands lost.
    pub unreachable_until_ms: u64,
    /// Until when (ms) its beats are delayed, and by how much.
    pub beat_delay: Option<(u64, u64)>,
    /// When it started (ms).
    pub started_ms: u64,
    /// Beats sent.
    pub beat_seq: u64,
    /// Components by id.
    pub components: BTreeMap<String, SimComponent>,
    /// Providers by id.
    pub providers: BTreeMap<String, SimProvider>,
}

impl SimHost {
    /// Whether the host is alive and connected at `now_ms`.
    #[must_use]
    pub fn reachable(&self, now_ms: u64) -> bool {
        self.alive && now_ms >= self.unreachable_until_ms
    }

    /// Its `host.get` reply.
    #[must_use]
    pub fn inventory(&self, now_ms: u64) -> HostInventory {
        HostInventory {
            components: self
                .components
                .iter()
                .map(|(id, c)| ComponentDescription {
                    id: id.clone(),
                    image_ref: c.image_ref.clone(),
                    annotations: Some(c.annotations.clone()),
                    max_instances: c.max_instances,
                    ..ComponentDescription::default()
                })
                .collect(),
            providers: self
                .providers
                .iter()
                .map(|(id, p)| ProviderDescription {
                    id: id.clone(),
                    image_ref: Some(p.image_ref.clone()),
                    annotations: Some(p.annotations.clone()),
                    ..ProviderDescription::default()
                })
                .collect(),
            host_id: self.id.clone(),
            friendly_name: self.id.to_lowercase(),
            labels: self.labels.clone(),
            version: "0.1.0".to_string(),
            uptime_human: String::new(),
            uptime_seconds: now_ms.saturating_sub(self.started_ms) / 1000,
        }
    }

    /// Its next liveness beat.
    pub fn beat(&mut self, now_ms: u64) -> LivenessBeat {
        let beat = LivenessBeat {
            host_id: self.id.clone(),
            seq: self.beat_seq,
            uptime_ms: now_ms.saturating_sub(self.started_ms),
            components: u32::try_from(self.components.len()).unwrap_or(u32::MAX),
            providers: u32::try_from(self.providers.len()).unwrap_or(u32::MAX),
            ready: true,
            calls: None,
            instances: None,
        };
        self.beat_seq += 1;
        beat
    }
}

/// An event as published: by which host.
pub type Published = (String, LatticeEvent);

/// The simulated lattice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct World {
    /// Hosts by id (dead ones stay, with `alive: false`).
    pub hosts: BTreeMap<String, SimHost>,
    /// Links by source, as in `LATTICEDATA`.
    pub specs: BTreeMap<String, ComponentSpecification>,
    /// Named config, as in `CONFIGDATA`.
    pub configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Images no host can fetch.
    pub broken_images: BTreeSet<String>,
}

impl World {
    /// Every link in the lattice.
    #[must_use]
    pub fn links(&self) -> Vec<Link> {
        self.specs.values().flat_map(|s| s.links.clone()).collect()
    }

    /// Hosts alive and connected at `now_ms`.
    pub fn reachable_hosts(&self, now_ms: u64) -> impl Iterator<Item = &SimHost> {
        self.hosts.values().filter(move |h| h.reachable(now_ms))
    }

    /// A new host joins: returns its `host_started` and heartbeat events.
    pub fn join(
        &mut self,
        id: &str,
        labels: BTreeMap<String, String>,
        now_ms: u64,
    ) -> Vec<Published> {
        let host = SimHost {
            id: id.to_string(),
            labels: labels.clone(),
            alive: true,
            unreachable_until_ms: 0,
            beat_delay: None,
            started_ms: now_ms,
            beat_seq: 0,
            components: BTreeMap::new(),
            providers: BTreeMap::new(),
        };
        let heartbeat = HostHeartbeat::from(host.inventory(now_ms));
        self.hosts.insert(id.to_string(), host);
        vec![
            (
                id.to_string(),
                LatticeEvent::HostStarted(HostStarted {
                    friendly_name: id.to_lowercase(),
                    labels,
                    uptime_seconds: Some(0),
                    version: Some("0.1.0".into()),
                }),
            ),
            (id.to_string(), LatticeEvent::HostHeartbeat(heartbeat)),
        ]
    }

    /// A host stops: killed (`graceful == false`: silently) or stopped (`host_stopped`).
    pub fn stop(&mut self, id: &str, graceful: bool) -> Vec<Published> {
        let Some(host) = self.hosts.get_mut(id) else {
            return Vec::new();
        };
        host.alive = false;
        host.components.clear();
        host.providers.clear();
        if graceful {
            vec![(
                id.to_string(),
                LatticeEvent::HostStopped(HostStopped {
                    labels: host.labels.clone(),
                }),
            )]
        } else {
            Vec::new()
        }
    }

    /// Executes `command` at `now_ms` as a Trellis host would; `executor` is the host
    /// that takes lattice-wide commands (links, config), if any is reachable. Returns
    /// the events published, or `None` when the control request fails (no responder,
    /// or an error reply such as "provider with that ID is already running").
    pub fn execute(
        &mut self,
        command: &Command,
        executor: Option<&str>,
        now_ms: u64,
    ) -> Option<Vec<Published>> {
        Some(match command {
            Command::ScaleComponent(c) => self.scale(c, now_ms)?,
            Command::StartProvider(c) => {
                let broken = self.broken_images.contains(&c.image_ref);
                let host = self.host_mut(&c.host_id, now_ms)?;
                if host.providers.contains_key(&c.provider_id) {
                    // "provider with that ID is already running": an error reply only.
                    return None;
                }
                let event = if broken {
                    LatticeEvent::ProviderStartFailed(ProviderStartFailed {
                        provider_ref: c.image_ref.clone(),
                        provider_id: c.provider_id.clone(),
                        host_id: c.host_id.clone(),
                        error: format!("failed to fetch `{}`: not found", c.image_ref),
                        link_name: None,
                    })
                } else {
                    host.providers.insert(
                        c.provider_id.clone(),
                        SimProvider {
                            image_ref: c.image_ref.clone(),
                            annotations: c.annotations.clone(),
                        },
                    );
                    LatticeEvent::ProviderStarted(ProviderStarted {
                        host_id: c.host_id.clone(),
                        image_ref: c.image_ref.clone(),
                        provider_id: c.provider_id.clone(),
                        annotations: c.annotations.clone(),
                        ..ProviderStarted::default()
                    })
                };
                vec![(c.host_id.clone(), event)]
            }
            Command::StopProvider(c) => {
                let host = self.host_mut(&c.host_id, now_ms)?;
                match host.providers.remove(&c.provider_id) {
                    None => Vec::new(),
                    Some(p) => vec![(
                        c.host_id.clone(),
                        LatticeEvent::ProviderStopped(ProviderStopped {
                            host_id: c.host_id.clone(),
                            provider_id: c.provider_id.clone(),
                            annotations: p.annotations,
                            reason: "stop".into(),
                            ..ProviderStopped::default()
                        }),
                    )],
                }
            }
            other => self.execute_lattice_wide(other, executor?),
        })
    }

    fn host_mut(&mut self, id: &str, now_ms: u64) -> Option<&mut SimHost> {
        self.hosts.get_mut(id).filter(|h| h.reachable(now_ms))
    }

    fn scale(&mut self, c: &ScaleComponent, now_ms: u64) -> Option<Vec<Published>> {
        let broken = self.broken_images.contains(&c.image_ref);
        let host = self.host_mut(&c.host_id, now_ms)?;
        let scaled = |image: &str, max: u32| {
            (
                c.host_id.clone(),
                LatticeEvent::ComponentScaled(ComponentScaled {
                    annotations: c.annotations.clone(),
                    host_id: c.host_id.clone(),
                    image_ref: image.to_string(),
                    max_instances: max,
                    component_id: c.component_id.clone(),
                    ..ComponentScaled::default()
                }),
            )
        };
        let failed = || {
            (
                c.host_id.clone(),
                LatticeEvent::ComponentScaleFailed(ComponentScaleFailed {
                    annotations: c.annotations.clone(),
                    host_id: c.host_id.clone(),
                    image_ref: c.image_ref.clone(),
                    max_instances: c.count,
                    component_id: c.component_id.clone(),
                    error: format!("failed to fetch `{}`: not found", c.image_ref),
                    ..ComponentScaleFailed::default()
                }),
            )
        };
        if c.count == 0 {
            host.components.remove(&c.component_id);
            return Some(vec![scaled(&c.image_ref, 0)]);
        }
        let Some(existing) = host.components.get_mut(&c.component_id) else {
            if broken {
                return Some(vec![failed()]);
            }
            host.components.insert(
                c.component_id.clone(),
                SimComponent {
                    image_ref: c.image_ref.clone(),
                    max_instances: c.count,
                    annotations: c.annotations.clone(),
                },
            );
            return Some(vec![scaled(&c.image_ref, c.count)]);
        };
        // Rescale in place (keeping the image), then swap the image if allowed.
        existing.max_instances = c.count;
        existing.annotations = c.annotations.clone();
        let mut events = vec![scaled(&existing.image_ref, c.count)];
        if c.allow_update && existing.image_ref != c.image_ref {
            if broken {
                events.push(failed());
            } else {
                existing.image_ref = c.image_ref.clone();
                events.push(scaled(&c.image_ref, c.count));
            }
        }
        Some(events)
    }

    fn execute_lattice_wide(&mut self, command: &Command, executor: &str) -> Vec<Published> {
        let event = match command {
            Command::PutLink(c) => {
                let missing = c
                    .link
                    .source_config
                    .iter()
                    .chain(c.link.target_config.iter())
                    .find(|n| !self.configs.contains_key(*n));
                let spec = self.specs.entry(c.link.source_id.clone()).or_default();
                let result = match missing {
                    Some(name) => Err(format!("configuration `{name}` not found")),
                    None => spec.put_link(c.link.clone()).map_err(|e| e.to_string()),
                };
                match result {
                    Ok(()) => LatticeEvent::LinkdefSet(c.link.clone()),
                    Err(error) => LatticeEvent::LinkdefSetFailed(LinkdefSetFailed {
                        link: c.link.clone(),
                        error,
                    }),
                }
            }
            Command::DeleteLink(c) => {
                let removed = self.specs.get_mut(&c.source_id).and_then(|s| {
                    s.remove_link(
                        Some(&c.source_id),
                        &c.wit_namespace,
                        &c.wit_package,
                        &c.link_name,
                    )
                });
                LatticeEvent::LinkdefDeleted(LinkdefDeleted {
                    source_id: c.source_id.clone(),
                    name: c.link_name.clone(),
                    wit_namespace: c.wit_namespace.clone(),
                    wit_package: c.wit_package.clone(),
                    target: removed.as_ref().map(|l| l.target.clone()),
                    interfaces: removed.map(|l| l.interfaces),
                })
            }
            Command::PutConfig(c) => {
                self.configs.insert(c.name.clone(), c.values.clone());
                LatticeEvent::ConfigSet(ConfigEvent {
                    config_name: c.name.clone(),
                })
            }
            Command::DeleteConfig(c) => {
                self.configs.remove(&c.name);
                LatticeEvent::ConfigDeleted(ConfigEvent {
                    config_name: c.name.clone(),
                })
            }
            Command::ScaleComponent(_) | Command::StartProvider(_) | Command::StopProvider(_) => {
                return Vec::new();
            }
        };
        vec![(executor.to_string(), event)]
    }
}
