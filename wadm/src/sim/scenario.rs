//! What a simulation runs: applications, when they change, how hostile the world is.
//! [`Scenario::random`] derives everything from the seed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use trellis_interfaces::manifest::Manifest;

use super::SimError;
use super::rng::SplitMix64;
use crate::policy::FailurePolicy;

/// How often each fault happens, in chances per million per tick (per command for
/// `command_loss`), while the world is unstable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Faults {
    /// A command never reaches its host.
    pub command_loss: u32,
    /// A host is killed (`kill -9`: it just goes silent).
    pub host_kill: u32,
    /// A host stops cleanly (`host_stopped`).
    pub host_stop: u32,
    /// A new host joins.
    pub host_join: u32,
    /// A host is cut off from NATS for a while, keeping what it runs.
    pub host_flap: u32,
    /// wadm loses its NATS connection for a while.
    pub nats_blip: u32,
    /// Every host is cut off from wadm at once for a while (wadm stays connected).
    pub partition: u32,
    /// A host's beats (and events) arrive late for a while.
    pub beat_delay: u32,
    /// wadm restarts: its observed state is rebuilt from inventories.
    pub wadm_restart: u32,
}

impl Faults {
    /// A calm world.
    #[must_use]
    pub fn none() -> Self {
        Self {
            command_loss: 0,
            host_kill: 0,
            host_stop: 0,
            host_join: 0,
            host_flap: 0,
            nats_blip: 0,
            partition: 0,
            beat_delay: 0,
            wadm_restart: 0,
        }
    }

    /// The default hostile world: with 4 ticks a second, roughly a host death every
    /// 12 s, a join every 6 s, a flap every 8 s, a NATS blip every 12 s, a partition of
    /// every host every 30 s, delayed beats every 8 s, a wadm restart every 25 s, and
    /// 5 % of commands lost.
    #[must_use]
    pub fn chaos() -> Self {
        Self {
            command_loss: 50_000,
            host_kill: 15_000,
            host_stop: 5_000,
            host_join: 40_000,
            host_flap: 30_000,
            nats_blip: 20_000,
            partition: 8_000,
            beat_delay: 30_000,
            wadm_restart: 10_000,
        }
    }
}

/// One simulated history.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed of the simulation's randomness.
    pub seed: u64,
    /// Applications deployed at t = 0.
    pub apps: Vec<Manifest>,
    /// New versions deployed later: (tick, manifest).
    pub upgrades: Vec<(u64, Manifest)>,
    /// Undeploys: (tick, application name).
    pub undeploys: Vec<(u64, String)>,
    /// Values of the `zone` label hosts get.
    pub zones: Vec<String>,
    /// Hosts at t = 0.
    pub initial_hosts: usize,
    /// When the world becomes stable, each zone gets at least this many hosts.
    pub min_hosts_per_zone: usize,
    /// Ticks of faults before the world becomes stable.
    pub chaos_ticks: u64,
    /// Ticks allowed to converge once stable.
    pub converge_within_ticks: u64,
    /// Ticks run after convergence, checking nothing more is done.
    pub idle_ticks: u64,
    /// Fault rates while unstable.
    pub faults: Faults,
    /// Images no host can fetch.
    pub broken_images: BTreeSet<String>,
    /// Check that a component never runs fewer instances than asked during upgrades
    /// (only meaningful in a world without host deaths).
    pub check_capacity: bool,
    /// The policy under test.
    pub policy: FailurePolicy,
}

/// Virtual milliseconds per tick.
pub const TICK_MS: u64 = 250;

impl Scenario {
    /// A calm scenario: the given apps, `hosts` hosts alternating zones, no faults.
    #[must_use]
    pub fn calm(seed: u64, apps: Vec<Manifest>, hosts: usize) -> Self {
        Self {
            seed,
            apps,
            upgrades: Vec::new(),
            undeploys: Vec::new(),
            zones: vec!["eu".into(), "us".into()],
            initial_hosts: hosts,
            min_hosts_per_zone: 0,
            chaos_ticks: 0,
            converge_within_ticks: 200,
            idle_ticks: 20,
            faults: Faults::none(),
            broken_images: BTreeSet::new(),
            check_capacity: false,
            policy: FailurePolicy::default(),
        }
    }

    /// The scenario of `seed`: one or two applications drawn from templates, 0–5
    /// initial hosts over two zones, 60–120 s of chaos, possibly an upgrade (new image
    /// and instance count) and an undeploy during it.
    pub fn random(seed: u64) -> Result<Self, SimError> {
        let mut rng = SplitMix64::new(seed ^ 0x5EED_5CE7_A210_0000);
        let chaos_ticks = rng.between(240, 480);
        let mut apps = vec![web_app(&mut rng, "web", "v1")?];
        let mut upgrades = Vec::new();
        let mut undeploys = Vec::new();
        if rng.chance(500_000) {
            let at = rng.between(20, chaos_ticks);
            upgrades.push((at, web_app(&mut rng, "web", "v2")?));
        }
        if rng.chance(600_000) {
            apps.push(daemon_app(&mut rng, "edge")?);
            if rng.chance(150_000) {
                undeploys.push((rng.between(20, chaos_ticks), "edge".to_string()));
            }
        }
        Ok(Self {
            initial_hosts: usize::try_from(rng.below(6)).unwrap_or(0),
            min_hosts_per_zone: 2,
            chaos_ticks,
            converge_within_ticks: 80,
            idle_ticks: 24,
            faults: Faults::chaos(),
            upgrades,
            undeploys,
            ..Self::calm(seed, apps, 0)
        })
    }
}

fn manifest(value: Value) -> Result<Manifest, SimError> {
    serde_json::from_value(value).map_err(SimError::Manifest)
}

fn zone_spreads(rng: &mut SplitMix64) -> Value {
    match rng.below(3) {
        0 => json!([]),
        1 => json!([
            {"name": "eu", "requirements": {"zone": "eu"}, "weight": rng.between(1, 4) * 25},
            {"name": "us", "requirements": {"zone": "us"}, "weight": rng.between(1, 4) * 25},
        ]),
        _ => json!([{"name": "eu-only", "requirements": {"zone": "eu"}}]),
    }
}

/// An HTTP-style application: a component spread over zones, a provider, a link from
/// the provider to the component with wadm-managed config on the link.
fn web_app(rng: &mut SplitMix64, name: &str, version: &str) -> Result<Manifest, SimError> {
    let instances = rng.between(1, 8);
    let spread = zone_spreads(rng);
    let provider_instances = rng.between(1, 2);
    let mut annotations = BTreeMap::new();
    annotations.insert("version".to_string(), version.to_string());
    manifest(json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"components": [
            {"name": "api", "type": "component",
             "properties": {"image": format!("registry.example/example/api:{version}"),
                            "config": [{"name": "api-settings", "properties": {"greeting": version}}]},
             "traits": [{"type": "spreadscaler",
                         "properties": {"instances": instances, "spread": spread}}]},
            {"name": "httpserver", "type": "capability",
             "properties": {"image": "registry.example/example/http-server:0.1.0"},
             "traits": [
                {"type": "spreadscaler", "properties": {"instances": provider_instances}},
                {"type": "link", "properties": {
                    "namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                    "target": {"name": "api"},
                    "source": {"config": [{"name": "listen", "properties": {"address": "0.0.0.0:8080"}}]}}}
             ]}
        ]}
    }))
}

/// A daemon application: a component on every host of a zone and a provider daemon.
fn daemon_app(rng: &mut SplitMix64, name: &str) -> Result<Manifest, SimError> {
    let instances = rng.between(1, 3);
    let spread = if rng.chance(500_000) {
        json!([])
    } else {
        json!([{"name": "us", "requirements": {"zone": "us"}}])
    };
    manifest(json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name, "annotations": {"version": "v1"}},
        "spec": {"components": [
            {"name": "agent", "type": "component",
             "properties": {"image": "registry.example/example/agent:1.0.0"},
             "traits": [
                {"type": "daemonscaler", "properties": {"instances": instances, "spread": spread}},
                {"type": "link", "properties": {
                    "namespace": "wasi", "package": "keyvalue", "interfaces": ["store"],
                    "target": {"name": "kv"}}}
             ]},
            {"name": "kv", "type": "capability",
             "properties": {"image": "builtin://keyvalue"},
             "traits": [{"type": "daemonscaler", "properties": {"instances": 1}}]}
        ]}
    }))
}
