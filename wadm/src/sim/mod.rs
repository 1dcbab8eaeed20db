//! A deterministic simulator for the reconciler.
//!
//! A seeded [`Simulation`] runs a [`Scenario`] in virtual time (250 ms ticks): a
//! [`World`] of simulated hosts executes wadm's commands the way a Trellis host does
//! and publishes the events it would; the observer side feeds those events, the
//! hosts' one-second liveness beats and `host.get` inventories into a
//! [`LatticeState`], and every tick calls [`reconcile`]. While the world is unstable,
//! faults are injected (`faults.rs`): commands lost, hosts killed, stopped, joining and
//! flapping, NATS blips that cut wadm off, delayed beats, wadm restarts. Then the
//! world becomes stable and wadm must converge within a bound.
//!
//! Every tick the invariants of `invariants.rs` are checked against the world (the
//! truth): no host runs more instances than asked, nothing is issued while wadm is
//! blind (disconnected, or every host silent), a `deployed` status is true whenever
//! wadm's view is complete; after stability: convergence within the bound, exact
//! placement (no over-placement), and no further command (also across a restart).

mod faults;
pub mod invariants;
pub mod rng;
pub mod scenario;
pub mod world;

use std::collections::{BTreeMap, VecDeque};

use trellis_interfaces::manifest::Manifest;

use crate::command::Command;
use crate::observed::{LatticeState, Observation};
use crate::pending::PendingCommands;
use crate::reconcile::{DeployedApp, Reconciliation, reconcile};
use crate::status::{AppStatus, StatusType};
pub use invariants::Violation;
use rng::SplitMix64;
pub use scenario::{Faults, Scenario, TICK_MS};
use world::World;

/// Why a simulation stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// An invariant did not hold.
    #[error("{0}")]
    Violation(Box<ViolationReport>),
    /// A scenario manifest could not be built.
    #[error("invalid scenario manifest: {0}")]
    Manifest(#[source] serde_json::Error),
}

/// An invariant that did not hold, where and after what.
#[derive(Debug, thiserror::Error)]
#[error("seed {seed}, tick {tick} (t={now_ms} ms): {violation}\n--- last events ---\n{trace}")]
pub struct ViolationReport {
    /// The seed.
    pub seed: u64,
    /// The tick.
    pub tick: u64,
    /// Virtual time.
    pub now_ms: u64,
    /// What did not hold.
    pub violation: Violation,
    /// The last lines of the simulation log.
    pub trace: String,
}

/// What a finished simulation reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimReport {
    /// Ticks run.
    pub ticks: u64,
    /// Tick at which the stable world converged.
    pub converged_at: u64,
    /// Commands issued in total.
    pub commands: usize,
    /// Hosts that ever existed.
    pub hosts: usize,
    /// Ticks at which wadm was blind (disconnected or hearing from no host) and
    /// therefore checked to issue nothing.
    pub blind_ticks: u64,
    /// Ticks at which wadm's view was complete and `deployed` statuses were checked
    /// against the world.
    pub truth_checks: u64,
    /// Ticks at which a host was fenced (silent, yet alive or not).
    pub fenced_ticks: u64,
    /// Final statuses.
    pub status: BTreeMap<String, AppStatus>,
}

/// How many log lines a violation report carries.
const TRACE_LINES: usize = 80;
/// Liveness beat interval, in ticks (1 s).
const BEAT_TICKS: u64 = 4;
/// Heartbeat (full inventory) interval, in ticks (30 s).
const HEARTBEAT_TICKS: u64 = 120;
/// The observer forgets a host silent this long (wadm 0.21's reaper uses 70 s).
const FORGET_AFTER_MS: u64 = 30_000;
/// A control request without reply fails after this long (wasmCloud's client default).
const CTL_TIMEOUT_MS: u64 = 2_000;

/// One running simulation.
pub struct Simulation {
    scenario: Scenario,
    rng: SplitMix64,
    world: World,
    observed: LatticeState,
    pending: PendingCommands,
    apps: Vec<DeployedApp>,
    per_host_targets: BTreeMap<(String, String), u32>,
    tick: u64,
    now_ms: u64,
    /// Observations on their way to wadm: (deliver at ms, observation).
    inbox: VecDeque<(u64, Observation)>,
    /// Commands on their way to hosts: (deliver at ms, command).
    outbox: VecDeque<(u64, Command)>,
    /// Lost commands whose request times out: (when the sender learns it, command).
    nacks: VecDeque<(u64, Command)>,
    /// Per-source delivery clocks, so one publisher's messages stay in order.
    clocks: BTreeMap<String, u64>,
    blip_until_ms: Option<u64>,
    next_host: u32,
    commands_issued: usize,
    last: Reconciliation,
    trace: VecDeque<String>,
    deployed_once: std::collections::BTreeSet<String>,
    stats: Stats,
}

/// Counters of how much each check was exercised.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    blind_ticks: u64,
    truth_checks: u64,
    fenced_ticks: u64,
}

impl Simulation {
    /// A simulation of `scenario`, with its initial hosts joined and apps deployed.
    #[must_use]
    pub fn new(scenario: Scenario) -> Self {
        let mut sim = Self {
            rng: SplitMix64::new(scenario.seed),
            world: World {
                broken_images: scenario.broken_images.clone(),
                ..World::default()
            },
            observed: LatticeState::new(0),
            pending: PendingCommands::new(),
            apps: scenario
                .apps
                .iter()
                .cloned()
                .map(DeployedApp::deployed)
                .collect(),
            per_host_targets: BTreeMap::new(),
            tick: 0,
            now_ms: 0,
            inbox: VecDeque::new(),
            outbox: VecDeque::new(),
            nacks: VecDeque::new(),
            clocks: BTreeMap::new(),
            blip_until_ms: None,
            next_host: 0,
            commands_issued: 0,
            last: Reconciliation::default(),
            trace: VecDeque::new(),
            deployed_once: std::collections::BTreeSet::new(),
            stats: Stats::default(),
            scenario,
        };
        for manifest in sim.scenario.apps.clone() {
            sim.note_targets(&manifest);
        }
        for i in 0..sim.scenario.initial_hosts {
            let zone = sim
                .scenario
                .zones
                .get(i % sim.scenario.zones.len().max(1))
                .cloned();
            sim.join_host(zone);
        }
        sim
    }

    /// Runs the scenario to the end: chaos, stability, convergence, idle checks.
    pub fn run(mut self) -> Result<SimReport, SimError> {
        let last_change = self
            .scenario
            .upgrades
            .iter()
            .map(|(at, _)| *at)
            .chain(self.scenario.undeploys.iter().map(|(at, _)| *at))
            .max()
            .unwrap_or(0);
        let stable_at = self.scenario.chaos_ticks.max(last_change);
        let deadline = stable_at + self.scenario.converge_within_ticks;
        let mut converged_at = None;
        loop {
            self.step()?;
            match converged_at {
                None if self.tick > stable_at && self.converged() => {
                    converged_at = Some(self.tick);
                    self.log("converged".to_string());
                    // A restarted wadm must find nothing to do.
                    self.restart_wadm();
                }
                None if self.tick > deadline => {
                    let details = self.describe_divergence();
                    return Err(self.violation(Violation::DidNotConverge {
                        ticks: self.scenario.converge_within_ticks,
                        details,
                    }));
                }
                Some(at) if self.tick > at + self.scenario.idle_ticks => {
                    return Ok(SimReport {
                        ticks: self.tick,
                        converged_at: at,
                        commands: self.commands_issued,
                        hosts: self.world.hosts.len(),
                        blind_ticks: self.stats.blind_ticks,
                        truth_checks: self.stats.truth_checks,
                        fenced_ticks: self.stats.fenced_ticks,
                        status: self.last.status.clone(),
                    });
                }
                Some(_) if !self.last.commands.is_empty() => {
                    let commands = describe(&self.last.commands);
                    return Err(self.violation(Violation::NotIdempotent { commands }));
                }
                _ => {}
            }
        }
    }

    /// One tick: faults (or stabilization), scheduled changes, host activity, command
    /// delivery, observation, reconcile, invariants.
    pub fn step(&mut self) -> Result<(), SimError> {
        self.tick += 1;
        self.now_ms = self.tick * TICK_MS;
        if self.tick < self.scenario.chaos_ticks {
            self.inject_faults();
        } else if self.tick == self.scenario.chaos_ticks {
            self.stabilize();
        }
        self.apply_schedule();
        self.host_activity();
        self.deliver_commands();
        self.observe();
        let rec = reconcile(
            &self.apps,
            &self.observed,
            &self.pending,
            self.now_ms,
            &self.scenario.policy,
        );
        self.check_blind_rule(&rec)?;
        self.log_reconciliation(&rec);
        self.pending.record(&rec.commands, self.now_ms);
        self.send(&rec.commands);
        self.last = rec;
        self.check_world()
    }

    /// The observed state wadm holds now.
    #[must_use]
    pub fn observed(&self) -> &LatticeState {
        &self.observed
    }

    /// The simulated world.
    #[must_use]
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The last reconcile pass.
    #[must_use]
    pub fn last(&self) -> &Reconciliation {
        &self.last
    }

    /// Virtual time now.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn note_targets(&mut self, manifest: &Manifest) {
        for (id, target) in invariants::per_host_targets(manifest) {
            let key = (manifest.name().to_string(), id);
            let entry = self.per_host_targets.entry(key).or_insert(0);
            *entry = (*entry).max(target);
        }
    }

    fn apply_schedule(&mut self) {
        let upgrades: Vec<Manifest> = self
            .scenario
            .upgrades
            .iter()
            .filter(|(at, _)| *at == self.tick)
            .map(|(_, m)| m.clone())
            .collect();
        for manifest in upgrades {
            self.log(format!(
                "deploy {} {}",
                manifest.name(),
                manifest.version().unwrap_or("")
            ));
            self.note_targets(&manifest);
            if let Some(app) = self.apps.iter_mut().find(|a| a.name() == manifest.name()) {
                let old = std::mem::replace(&mut app.manifest, manifest);
                app.previous.push(old);
                app.deployed = true;
            }
        }
        let undeploys: Vec<String> = self
            .scenario
            .undeploys
            .iter()
            .filter(|(at, _)| *at == self.tick)
            .map(|(_, n)| n.clone())
            .collect();
        for name in undeploys {
            self.log(format!("undeploy {name}"));
            if let Some(app) = self.apps.iter_mut().find(|a| a.name() == name) {
                app.deployed = false;
            }
        }
    }

    /// Queues an observation from `source`, delivered after `delay_ms` but never before
    /// an earlier message of the same source.
    fn publish(&mut self, source: &str, observation: Observation, delay_ms: u64) {
        let clock = self.clocks.entry(source.to_string()).or_insert(0);
        let at = (*clock).max(self.now_ms + delay_ms);
        *clock = at;
        let index = self.inbox.partition_point(|(t, _)| *t <= at);
        self.inbox.insert(index, (at, observation));
    }

    fn host_activity(&mut self) {
        let now = self.now_ms;
        let ids: Vec<String> = self
            .world
            .reachable_hosts(now)
            .map(|h| h.id.clone())
            .collect();
        for (index, id) in ids.iter().enumerate() {
            let phase = self.tick + index as u64;
            let Some(host) = self.world.hosts.get_mut(id) else {
                continue;
            };
            let delay = host
                .beat_delay
                .filter(|(until, _)| *until > now)
                .map_or(0, |(_, d)| d);
            let beat = phase.is_multiple_of(BEAT_TICKS).then(|| host.beat(now));
            let heartbeat = phase
                .is_multiple_of(HEARTBEAT_TICKS)
                .then(|| host.inventory(now));
            if let Some(beat) = beat {
                self.publish(id, Observation::Liveness { beat, at_ms: 0 }, delay);
            }
            if let Some(inventory) = heartbeat {
                let event =
                    trellis_interfaces::event::LatticeEvent::HostHeartbeat(inventory.into());
                self.publish(id, event_observation(id, event), delay);
            }
        }
    }

    fn send(&mut self, commands: &[Command]) {
        for command in commands {
            self.commands_issued += 1;
            let lossy = self.tick < self.scenario.chaos_ticks;
            if lossy && self.rng.chance(self.scenario.faults.command_loss) {
                // The request times out: the sender learns it after the 2 s ctl timeout.
                self.log(format!("lost: {command}"));
                self.nacks
                    .push_back((self.now_ms + CTL_TIMEOUT_MS, command.clone()));
                continue;
            }
            let key = command.host_id().unwrap_or("*").to_string();
            let delay = self.rng.below(3) * TICK_MS;
            let clock = self.clocks.entry(format!("cmd:{key}")).or_insert(0);
            let at = (*clock).max(self.now_ms + delay);
            *clock = at;
            let index = self.outbox.partition_point(|(t, _)| *t <= at);
            self.outbox.insert(index, (at, command.clone()));
        }
    }

    fn deliver_commands(&mut self) {
        while self
            .outbox
            .front()
            .is_some_and(|(at, _)| *at <= self.now_ms)
        {
            let Some((_, command)) = self.outbox.pop_front() else {
                break;
            };
            let executor = self
                .world
                .reachable_hosts(self.now_ms)
                .next()
                .map(|h| h.id.clone());
            let Some(events) = self
                .world
                .execute(&command, executor.as_deref(), self.now_ms)
            else {
                // No responder or an error reply: the sender knows at once.
                self.pending.forget(&command);
                continue;
            };
            for (source, event) in events {
                let delay = self.rng.below(2) * TICK_MS;
                let config = match &event {
                    trellis_interfaces::event::LatticeEvent::ConfigSet(c) => {
                        Some(c.config_name.clone())
                    }
                    _ => None,
                };
                self.publish(&source, event_observation(&source, event), delay);
                if let Some(name) = config {
                    // The observer reads the value it was told changed.
                    let values = self.world.configs.get(&name).cloned();
                    self.publish(&source, Observation::Config { name, values }, delay);
                }
            }
        }
        while self.nacks.front().is_some_and(|(at, _)| *at <= self.now_ms) {
            if let Some((_, command)) = self.nacks.pop_front() {
                self.pending.forget(&command);
            }
        }
    }

    /// Delivers due observations (dropped while wadm is cut off), forgets long-silent
    /// hosts, fetches missing inventories, settles and expires pending commands.
    fn observe(&mut self) {
        while self.inbox.front().is_some_and(|(at, _)| *at <= self.now_ms) {
            let Some((_, observation)) = self.inbox.pop_front() else {
                break;
            };
            if self.observed.observer_connected {
                self.observed.apply(stamp(observation, self.now_ms));
            }
        }
        if self.observed.observer_connected {
            for host_id in self.observed.silent_hosts(self.now_ms, FORGET_AFTER_MS) {
                self.observed.apply(Observation::HostGone { host_id });
            }
            let missing: Vec<String> = self
                .observed
                .hosts_needing_inventory()
                .into_iter()
                .map(str::to_string)
                .collect();
            let probes: Vec<String> = self
                .observed
                .hosts_to_probe(self.now_ms, &self.scenario.policy)
                .into_iter()
                .map(str::to_string)
                .collect();
            for host_id in probes {
                let answer = self
                    .world
                    .hosts
                    .get(&host_id)
                    .filter(|h| h.reachable(self.now_ms))
                    .map(|h| h.inventory(self.now_ms));
                self.observed.apply(match answer {
                    Some(inventory) => Observation::Inventory {
                        inventory,
                        at_ms: self.now_ms,
                    },
                    None => Observation::ProbeFailed {
                        host_id,
                        at_ms: self.now_ms,
                    },
                });
            }
            for id in missing {
                if let Some(host) = self
                    .world
                    .hosts
                    .get(&id)
                    .filter(|h| h.reachable(self.now_ms))
                {
                    let inventory = host.inventory(self.now_ms);
                    self.observed.apply(Observation::Inventory {
                        inventory,
                        at_ms: self.now_ms,
                    });
                }
            }
        }
        self.pending.settle(&self.observed);
        self.pending.expire(self.now_ms, &self.scenario.policy);
    }

    /// Everything wadm learns when it (re)connects: inventories of reachable hosts,
    /// every link, every config.
    fn resync(&mut self) {
        let now = self.now_ms;
        let inventories: Vec<_> = self
            .world
            .reachable_hosts(now)
            .map(|h| h.inventory(now))
            .collect();
        for inventory in inventories {
            self.observed.apply(Observation::Inventory {
                inventory,
                at_ms: now,
            });
        }
        self.observed.apply(Observation::Links {
            links: self.world.links(),
        });
        let mut names: Vec<String> = self.world.configs.keys().cloned().collect();
        names.extend(self.observed.configs.keys().cloned());
        for name in names {
            let values = self.world.configs.get(&name).cloned();
            self.observed.apply(Observation::Config { name, values });
        }
    }

    fn converged(&self) -> bool {
        self.last.commands.is_empty()
            && self.outbox.is_empty()
            && self.inbox.is_empty()
            && self.apps.iter().all(|app| {
                let want = if app.deployed {
                    StatusType::Deployed
                } else {
                    StatusType::Undeployed
                };
                let status_ok = self
                    .last
                    .status
                    .get(app.name())
                    .is_some_and(|s| s.info.status_type == want);
                status_ok
                    && invariants::satisfied(&self.world, &app.manifest, app.deployed, self.now_ms)
                        .is_ok()
            })
    }

    fn describe_divergence(&self) -> String {
        let mut out = Vec::new();
        for app in &self.apps {
            let status = self
                .last
                .status
                .get(app.name())
                .map(|s| serde_json::to_string(s).unwrap_or_default())
                .unwrap_or_default();
            let truth =
                invariants::satisfied(&self.world, &app.manifest, app.deployed, self.now_ms);
            out.push(format!("{}: status {status}; world: {truth:?}", app.name()));
        }
        out.push(format!("last commands: {}", describe(&self.last.commands)));
        out.join("\n")
    }

    fn violation(&self, violation: Violation) -> SimError {
        SimError::Violation(Box::new(ViolationReport {
            seed: self.scenario.seed,
            tick: self.tick,
            now_ms: self.now_ms,
            violation,
            trace: self.trace.iter().cloned().collect::<Vec<_>>().join("\n"),
        }))
    }

    fn log(&mut self, line: String) {
        if self.trace.len() == TRACE_LINES {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("[{:>5}] {line}", self.tick));
    }

    fn log_reconciliation(&mut self, rec: &Reconciliation) {
        if !rec.commands.is_empty() {
            self.log(format!("issue: {}", describe(&rec.commands)));
        }
        let changed: Vec<String> = rec
            .status
            .iter()
            .filter(|(app, s)| self.last.status.get(*app) != Some(s))
            .map(|(app, s)| format!("{app}={:?} {}", s.info.status_type, s.info.message))
            .collect();
        if !changed.is_empty() {
            self.log(format!("status: {}", changed.join(" | ")));
        }
    }
}

fn describe(commands: &[Command]) -> String {
    commands
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn event_observation(source: &str, event: trellis_interfaces::event::LatticeEvent) -> Observation {
    Observation::Event {
        source: source.to_string(),
        event,
        at_ms: 0,
    }
}

/// Sets the receive time of a delivered observation.
fn stamp(observation: Observation, now_ms: u64) -> Observation {
    match observation {
        Observation::Event { source, event, .. } => Observation::Event {
            source,
            event,
            at_ms: now_ms,
        },
        Observation::Liveness { beat, .. } => Observation::Liveness {
            beat,
            at_ms: now_ms,
        },
        Observation::Inventory { inventory, .. } => Observation::Inventory {
            inventory,
            at_ms: now_ms,
        },
        other => other,
    }
}
