//! Fault injection, stabilization, and the invariants checked every tick.

use std::collections::BTreeMap;

use super::invariants::{self, Violation};
use super::{SimError, Simulation, TICK_MS, describe, event_observation};
use crate::annotations::managing_app;
use crate::observed::{ConfigValue, LatticeState, Observation};
use crate::pending::PendingCommands;
use crate::reconcile::Reconciliation;
use crate::status::StatusType;

impl Simulation {
    /// Rolls every fault once for this tick.
    pub(super) fn inject_faults(&mut self) {
        let f = self.scenario.faults.clone();
        self.end_blip_if_due();
        if self.rng.chance(f.host_kill)
            && let Some(id) = self.pick_host(false)
        {
            self.world.stop(&id, false);
            self.log(format!("kill -9 {id}"));
        }
        if self.rng.chance(f.host_stop)
            && let Some(id) = self.pick_host(false)
        {
            for (source, event) in self.world.stop(&id, true) {
                self.publish(&source, event_observation(&source, event), 0);
            }
            self.log(format!("stop {id}"));
        }
        if self.rng.chance(f.host_join) {
            let zone = self.rng.pick(&self.scenario.zones).cloned();
            self.join_host(zone);
        }
        if self.rng.chance(f.host_flap)
            && let Some(id) = self.pick_host(true)
        {
            let until = self.now_ms + self.rng.between(2, 24) * TICK_MS;
            if let Some(h) = self.world.hosts.get_mut(&id) {
                h.unreachable_until_ms = until;
            }
            self.log(format!("flap {id} until t={until}"));
        }
        if self.rng.chance(f.nats_blip) && self.blip_until_ms.is_none() {
            let until = self.now_ms + self.rng.between(2, 16) * TICK_MS;
            self.blip_until_ms = Some(until);
            self.observed
                .apply(Observation::ObserverDisconnected { at_ms: self.now_ms });
            self.log(format!("NATS blip until t={until}"));
        }
        if self.rng.chance(f.partition) {
            let until = self.now_ms + self.rng.between(8, 40) * TICK_MS;
            for h in self.world.hosts.values_mut().filter(|h| h.alive) {
                h.unreachable_until_ms = h.unreachable_until_ms.max(until);
            }
            self.log(format!("partition: every host cut off until t={until}"));
        }
        if self.rng.chance(f.beat_delay)
            && let Some(id) = self.pick_host(true)
        {
            let until = self.now_ms + self.rng.between(4, 20) * TICK_MS;
            let delay = self.rng.between(1, 12) * TICK_MS;
            if let Some(h) = self.world.hosts.get_mut(&id) {
                h.beat_delay = Some((until, delay));
            }
            self.log(format!("beats of {id} delayed {delay} ms until t={until}"));
        }
        if self.rng.chance(f.wadm_restart) && self.blip_until_ms.is_none() {
            self.restart_wadm();
        }
    }

    /// The world becomes stable: partitions heal, wadm reconnects, every zone gets
    /// enough hosts.
    pub(super) fn stabilize(&mut self) {
        self.log("world stable".to_string());
        for host in self.world.hosts.values_mut() {
            host.unreachable_until_ms = 0;
            host.beat_delay = None;
        }
        if let Some(until) = self.blip_until_ms.as_mut() {
            *until = self.now_ms;
        }
        self.end_blip_if_due();
        for zone in self.scenario.zones.clone() {
            let alive = self
                .world
                .hosts
                .values()
                .filter(|h| h.alive && h.labels.get("zone") == Some(&zone))
                .count();
            for _ in alive..self.scenario.min_hosts_per_zone {
                self.join_host(Some(zone.clone()));
            }
        }
    }

    /// A new host with the given zone label joins.
    pub(super) fn join_host(&mut self, zone: Option<String>) {
        let id = format!("N{:04}", self.next_host);
        self.next_host += 1;
        let labels: BTreeMap<String, String> =
            zone.map(|z| ("zone".to_string(), z)).into_iter().collect();
        for (source, event) in self.world.join(&id, labels, self.now_ms) {
            self.publish(&source, event_observation(&source, event), 0);
        }
        self.log(format!("join {id}"));
    }

    /// wadm restarts: it forgets everything, including commands in flight, and
    /// rebuilds its view from inventories, links and config.
    pub(super) fn restart_wadm(&mut self) {
        self.observed = LatticeState::new(self.now_ms);
        self.pending = PendingCommands::new();
        self.resync();
        self.log("wadm restarted".to_string());
    }

    fn end_blip_if_due(&mut self) {
        if self.blip_until_ms.is_some_and(|until| until <= self.now_ms) {
            self.blip_until_ms = None;
            self.observed
                .apply(Observation::ObserverConnected { at_ms: self.now_ms });
            self.resync();
            self.log("NATS back".to_string());
        }
    }

    fn pick_host(&mut self, reachable_only: bool) -> Option<String> {
        let now = self.now_ms;
        let ids: Vec<String> = self
            .world
            .hosts
            .values()
            .filter(|h| {
                if reachable_only {
                    h.reachable(now)
                } else {
                    h.alive
                }
            })
            .map(|h| h.id.clone())
            .collect();
        self.rng.pick(&ids).cloned()
    }

    /// Nothing may be issued while wadm is disconnected or hears from no host, and
    /// deployed applications must then say `unhealthy`.
    pub(super) fn check_blind_rule(&mut self, rec: &Reconciliation) -> Result<(), SimError> {
        let o = &self.observed;
        let why = if !o.observer_connected {
            Some("wadm disconnected from NATS")
        } else if !o.hosts.is_empty()
            && o.hosts
                .values()
                .all(|h| o.is_stale(h, self.now_ms, &self.scenario.policy))
        {
            Some("every known host silent")
        } else {
            None
        };
        let Some(why) = why else {
            return Ok(());
        };
        self.stats.blind_ticks += 1;
        if !rec.commands.is_empty() {
            return Err(self.violation(Violation::ActedWhileBlind {
                why: why.to_string(),
                commands: describe(&rec.commands),
            }));
        }
        for app in self.apps.iter().filter(|a| a.deployed) {
            let status = rec.status.get(app.name()).map(|s| s.info.status_type);
            if status != Some(StatusType::Unhealthy) {
                return Err(self.violation(Violation::DeployedButWrong {
                    app: app.name().to_string(),
                    reason: format!("{why}, yet status is {status:?}, not unhealthy"),
                }));
            }
        }
        Ok(())
    }

    /// The per-tick invariants on the world.
    pub(super) fn check_world(&mut self) -> Result<(), SimError> {
        self.check_per_host_targets()?;
        let policy = &self.scenario.policy;
        let fenced = self
            .observed
            .hosts
            .values()
            .any(|h| self.observed.is_stale(h, self.now_ms, policy));
        self.stats.fenced_ticks += u64::from(fenced);
        if self.view_complete() {
            self.stats.truth_checks += 1;
            for app in &self.apps {
                let deployed = self
                    .last
                    .status
                    .get(app.name())
                    .is_some_and(|s| s.info.status_type == StatusType::Deployed);
                if !deployed {
                    continue;
                }
                if let Err(reason) =
                    invariants::satisfied(&self.world, &app.manifest, app.deployed, self.now_ms)
                {
                    return Err(self.violation(Violation::DeployedButWrong {
                        app: app.name().to_string(),
                        reason,
                    }));
                }
            }
        }
        if self.scenario.check_capacity {
            self.check_capacity()?;
        }
        Ok(())
    }

    fn check_per_host_targets(&self) -> Result<(), SimError> {
        for host in self.world.hosts.values().filter(|h| h.alive) {
            for (id, c) in &host.components {
                let Some(app) = managing_app(&c.annotations) else {
                    continue;
                };
                let Some(target) = self.per_host_targets.get(&(app.to_string(), id.clone())) else {
                    continue;
                };
                if c.max_instances > *target {
                    return Err(self.violation(Violation::HostOverTarget {
                        host: host.id.clone(),
                        app: app.to_string(),
                        id: id.clone(),
                        max_instances: c.max_instances,
                        target: *target,
                    }));
                }
            }
        }
        Ok(())
    }

    /// Whether wadm's view equals the world: connected, exactly the live hosts placeable,
    /// same instances on each, same links and config.
    fn view_complete(&self) -> bool {
        let o = &self.observed;
        let now = self.now_ms;
        if !o.observer_connected || !self.inbox.is_empty() {
            return false;
        }
        let live: Vec<_> = self.world.reachable_hosts(now).collect();
        let placeable = o
            .hosts
            .values()
            .filter(|h| h.ready && h.inventory_known && !o.is_stale(h, now, &self.scenario.policy))
            .count();
        if placeable != live.len() || o.hosts.len() != live.len() {
            return false;
        }
        let hosts_match = live.iter().all(|w| {
            o.hosts.get(&w.id).is_some_and(|h| {
                h.components.len() == w.components.len()
                    && h.providers.len() == w.providers.len()
                    && w.components.iter().all(|(id, c)| {
                        h.components.get(id).is_some_and(|oc| {
                            oc.image_ref == c.image_ref
                                && oc.max_instances == c.max_instances
                                && oc.annotations == c.annotations
                        })
                    })
                    && w.providers.iter().all(|(id, p)| {
                        h.providers.get(id).is_some_and(|op| {
                            op.image_ref == p.image_ref && op.annotations == p.annotations
                        })
                    })
            })
        });
        let mut world_links = self.world.links();
        let mut seen_links = o.links.clone();
        world_links.sort_by_key(|l| format!("{l:?}"));
        seen_links.sort_by_key(|l| format!("{l:?}"));
        let configs_match = o.configs.len() == self.world.configs.len()
            && self.world.configs.iter().all(|(name, values)| {
                matches!(o.configs.get(name), Some(ConfigValue::Known(v)) if v == values)
            });
        hosts_match && world_links == seen_links && configs_match
    }

    /// During a calm upgrade, no component runs fewer instances (of any version) than
    /// the smaller of the old and new counts, and no provider more than one short.
    fn check_capacity(&mut self) -> Result<(), SimError> {
        for (app, status) in &self.last.status {
            if status.info.status_type == StatusType::Deployed {
                self.deployed_once.insert(app.clone());
            }
        }
        for app in &self.apps {
            if !app.deployed || !self.deployed_once.contains(app.name()) {
                continue;
            }
            let versions = std::iter::once(&app.manifest).chain(app.previous.iter());
            let mut floors: BTreeMap<String, (u32, bool)> = BTreeMap::new();
            for manifest in versions {
                for e in invariants::expectations(manifest) {
                    let n = u32::try_from(e.property.instances).unwrap_or(u32::MAX);
                    let entry = floors.entry(e.id).or_insert((n, e.provider));
                    entry.0 = entry.0.min(n);
                }
            }
            for (id, (floor, provider)) in floors {
                let floor = if provider {
                    floor.saturating_sub(1)
                } else {
                    floor
                };
                let running: u32 = self
                    .world
                    .reachable_hosts(self.now_ms)
                    .map(|h| {
                        if provider {
                            u32::from(h.providers.contains_key(&id))
                        } else {
                            h.components.get(&id).map_or(0, |c| c.max_instances)
                        }
                    })
                    .sum();
                if running < floor {
                    return Err(self.violation(Violation::CapacityDropped { id, running, floor }));
                }
            }
        }
        Ok(())
    }
}
