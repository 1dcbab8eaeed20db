//! Time per reconcile pass of the pure reconciler with many applications and hosts
//! (issue 6: 1,000 apps over 100 hosts).
//!
//! Builds `BENCH_APPS` applications (one component, `spreadscaler` with 3 instances
//! over two zones, weights 2:1) and `BENCH_HOSTS` hosts (half `zone=east`, half
//! `zone=west`), then measures:
//!
//! - **cold**: the first pass on an empty lattice (every app places its instances);
//! - **steady**: a pass on the converged lattice (the pass wadm runs every tick);
//! - **one host dead**: a pass right after one host went silent (its work re-placed).
//!
//! Each figure is the median (and min/max) over `BENCH_ROUNDS` passes.
//!
//! Usage: `cargo run --release -p trellis-bench --bin wadm-reconcile`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use trellis_interfaces::inventory::{ComponentDescription, HostInventory};
use trellis_interfaces::liveness::LivenessBeat;
use trellis_interfaces::manifest::Manifest;
use trellis_wadm::{
    Command, DeployedApp, FailurePolicy, LatticeState, Observation, PendingCommands, reconcile,
};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn manifest(i: usize) -> anyhow::Result<Manifest> {
    let yaml = format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: app-{i}
  annotations:
    version: v1
spec:
  components:
    - name: c
      type: component
      properties:
        image: registry.example/app-{i}:1
      traits:
        - type: spreadscaler
          properties:
            instances: 3
            spread:
              - name: east
                requirements: {{zone: east}}
                weight: 2
              - name: west
                requirements: {{zone: west}}
                weight: 1
"#
    );
    Manifest::from_yaml(&yaml).context("bench manifest")
}

fn host_id(h: usize) -> String {
    format!("NHOST{h:05}")
}

/// Hosts as inventories, from what each host runs.
struct Lattice {
    running: BTreeMap<String, Vec<ComponentDescription>>,
    zones: BTreeMap<String, String>,
}

impl Lattice {
    fn new(hosts: usize) -> Self {
        let mut running = BTreeMap::new();
        let mut zones = BTreeMap::new();
        for h in 0..hosts {
            running.insert(host_id(h), Vec::new());
            zones.insert(host_id(h), if h % 2 == 0 { "east" } else { "west" }.into());
        }
        Self { running, zones }
    }

    /// Carries out component scale commands as a host would.
    fn execute(&mut self, commands: &[Command]) {
        for command in commands {
            if let Command::ScaleComponent(c) = command
                && let Some(list) = self.running.get_mut(&c.host_id)
            {
                list.retain(|d| d.id != c.component_id);
                if c.count > 0 {
                    list.push(ComponentDescription {
                        id: c.component_id.clone(),
                        image_ref: c.image_ref.clone(),
                        annotations: Some(c.annotations.clone()),
                        max_instances: c.count,
                        ..Default::default()
                    });
                }
            }
        }
    }

    fn observe(&self, state: &mut LatticeState, now_ms: u64, skip: Option<&str>) {
        for (id, components) in &self.running {
            if Some(id.as_str()) == skip {
                continue;
            }
            let mut labels = BTreeMap::new();
            if let Some(zone) = self.zones.get(id) {
                labels.insert("zone".to_string(), zone.clone());
            }
            state.apply(Observation::Inventory {
                inventory: HostInventory {
                    components: components.clone(),
                    host_id: id.clone(),
                    labels,
                    ..Default::default()
                },
                at_ms: now_ms,
            });
            state.apply(Observation::Liveness {
                beat: LivenessBeat {
                    host_id: id.clone(),
                    seq: now_ms / 1000,
                    uptime_ms: now_ms,
                    components: u32::try_from(components.len()).unwrap_or(u32::MAX),
                    providers: 0,
                    ready: true,
                    calls: None,
                    instances: None,
                },
                at_ms: now_ms,
            });
        }
    }
}

fn summarize(name: &str, mut samples: Vec<Duration>, commands: usize) {
    samples.sort();
    let at = |i: usize| samples.get(i).copied().unwrap_or_default();
    let median = at(samples.len() / 2);
    let min = at(0);
    let max = at(samples.len().saturating_sub(1));
    println!(
        "{name:<14} median {:>9.3} ms  min {:>9.3} ms  max {:>9.3} ms  ({commands} commands)",
        median.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
    );
}

fn main() -> anyhow::Result<()> {
    let apps_n = env_num("BENCH_APPS", 1000);
    let hosts_n = env_num("BENCH_HOSTS", 100);
    let rounds = env_num("BENCH_ROUNDS", 20).max(1);
    let policy = FailurePolicy::default();
    let apps: Vec<DeployedApp> = (0..apps_n)
        .map(|i| manifest(i).map(DeployedApp::deployed))
        .collect::<anyhow::Result<_>>()?;
    println!("wadm-reconcile: {apps_n} apps × 3 instances over {hosts_n} hosts, {rounds} rounds");

    // Cold: empty lattice.
    let mut lattice = Lattice::new(hosts_n);
    let mut state = LatticeState::new(1);
    lattice.observe(&mut state, 1_000, None);
    let pending = PendingCommands::new();
    let mut cold = Vec::new();
    let mut first = None;
    for _ in 0..rounds {
        let t = Instant::now();
        let rec = reconcile(&apps, &state, &pending, 1_000, &policy);
        cold.push(t.elapsed());
        first.get_or_insert(rec);
    }
    let first = first.context("no round ran")?;
    summarize("cold", cold, first.commands.len());

    // Converge, then time the steady pass.
    lattice.execute(&first.commands);
    let mut now = 2_000;
    for _ in 0..5 {
        lattice.observe(&mut state, now, None);
        let rec = reconcile(&apps, &state, &pending, now, &policy);
        if rec.commands.is_empty() {
            break;
        }
        lattice.execute(&rec.commands);
        now += 1_000;
    }
    lattice.observe(&mut state, now, None);
    let mut steady = Vec::new();
    let mut steady_commands = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let rec = reconcile(&apps, &state, &pending, now, &policy);
        steady.push(t.elapsed());
        steady_commands = rec.commands.len();
    }
    summarize("steady", steady, steady_commands);
    anyhow::ensure!(steady_commands == 0, "the lattice did not converge");

    // One host goes silent: it is fenced after the host timeout.
    let dead = host_id(0);
    let later = now + policy.host_timeout_ms + 500;
    lattice.observe(&mut state, later, Some(&dead));
    let mut failover = Vec::new();
    let mut failover_commands = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let rec = reconcile(&apps, &state, &pending, later, &policy);
        failover.push(t.elapsed());
        failover_commands = rec.commands.len();
    }
    summarize("one host dead", failover, failover_commands);
    Ok(())
}
