//! Seeded simulations of the reconciler against a hostile world (see `sim` in the
//! crate docs). `TRELLIS_SIM_SEEDS=N` runs N random seeds instead of the default; a
//! seed that ever failed is kept below as a named regression test, with what it
//! caught. (The seeds replay the scenario generator of `Scenario::random`; if that
//! generator changes, the histories change and these become ordinary seeds.)
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::collections::BTreeSet;

use trellis_interfaces::manifest::Manifest;
use trellis_wadm::sim::{Faults, Scenario, SimError, Simulation};
use trellis_wadm::status::StatusType;

/// Seeds run by default: two thousand hostile histories, in well under a minute on two
/// cores (the workspace builds this crate optimized even in the dev profile).
const DEFAULT_SEEDS: u64 = 2_000;

fn run_seed(seed: u64) -> Result<(), String> {
    let scenario = Scenario::random(seed).map_err(|e| e.to_string())?;
    Simulation::new(scenario)
        .run()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn random_seeds_hold_every_invariant() {
    let seeds: u64 = std::env::var("TRELLIS_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get() as u64);
    let mut failures: Vec<(u64, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (0..seeds)
                        .filter(|s| s % threads == t)
                        .filter_map(|s| run_seed(s).err().map(|e| (s, e)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    failures.sort();
    if let Some((_, first)) = failures.first() {
        let failed: Vec<String> = failures.iter().map(|(s, _)| s.to_string()).collect();
        panic!(
            "{} of {seeds} seeds failed ({}); first:\n{first}",
            failures.len(),
            failed.join(", ")
        );
    }
}

/// Caught a plan that flipped while its own commands were in flight: placement ranked
/// hosts by observed counts, which lag the scale commands just sent, so two passes
/// each scaled a different host down and the component ended one instance short.
/// Fixed by ranking hosts by what in-flight commands will leave on them.
#[test]
fn regression_seed_921_plan_flip_while_scaling() {
    run_seed(921).unwrap();
}

/// Caught `deployed` reported while a provider start was still in flight (it landed
/// next tick on a host the plan no longer wanted). Scalers now stay `reconciling`
/// until their commands take effect.
#[test]
fn regression_seed_139_deployed_with_start_in_flight() {
    run_seed(139).unwrap();
}

/// Caught hosts learned only from an inventory (wadm restarted, then a NATS blip, then
/// they died) getting the 70 s legacy timeout: their work stayed unplaced. Hosts that
/// send no beats are now probed with `host.get` after the fast timeout.
#[test]
fn regression_seed_983_dead_host_known_only_from_inventory() {
    run_seed(983).unwrap();
}

/// Caught commands to a host that died before answering holding a scaler in
/// `reconciling` for the whole 30 s provider timeout. Commands addressed to fenced
/// hosts no longer count as in flight.
#[test]
fn regression_seed_732_in_flight_to_a_fenced_host() {
    run_seed(732).unwrap();
}

/// Caught an undeploy declared finished while its `DeleteLink` had been lost: the
/// status said `undeployed` with cleanup outstanding and the oracle ignored links of
/// undeployed apps. The status now says what is still being removed, and the oracle
/// checks the links and configs are gone.
#[test]
fn regression_seed_9684_undeploy_with_lost_link_delete() {
    run_seed(9684).unwrap();
}

/// Caught a host whose events were missed during a NATS blip and which was cut off
/// when wadm resynced: its stale inventory was never fetched again (its beats'
/// record counts matched), so wadm said `deployed` with one instance too many. A
/// reconnect now marks every inventory outdated until fetched again.
#[test]
fn regression_seed_12837_inventory_missed_during_blip() {
    run_seed(12837).unwrap();
}

fn manifest(yaml: &str) -> Manifest {
    Manifest::from_yaml(yaml).unwrap()
}

fn web(version: &str, instances: u32, provider_instances: u32) -> Manifest {
    manifest(&format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: web
  annotations:
    version: {version}
spec:
  components:
    - name: api
      type: component
      properties:
        image: registry.example/example/api:{version}
      traits:
        - type: spreadscaler
          properties:
            instances: {instances}
            spread:
              - name: eu
                requirements: {{zone: eu}}
                weight: 50
              - name: us
                requirements: {{zone: us}}
                weight: 50
    - name: httpserver
      type: capability
      properties:
        image: registry.example/example/http-server:{version}
      traits:
        - type: spreadscaler
          properties:
            instances: {provider_instances}
        - type: link
          properties:
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            target: {{name: api}}
"#
    ))
}

/// Rolling upgrades in a calm world (lost commands only): at no tick does the
/// component run fewer instances than asked, nor the provider more than one fewer,
/// and the new version converges.
#[test]
fn calm_upgrades_keep_capacity() {
    for seed in 0..40u64 {
        let hosts = 2 + (seed % 4) as usize;
        let instances = 1 + (seed % 6) as u32;
        let provider_instances = 1 + (seed % 2) as u32;
        let mut scenario =
            Scenario::calm(seed, vec![web("v1", instances, provider_instances)], hosts);
        scenario.upgrades = vec![(
            80,
            web("v2", instances + (seed % 3) as u32, provider_instances),
        )];
        scenario.chaos_ticks = 100;
        scenario.faults = Faults {
            command_loss: 100_000,
            ..Faults::none()
        };
        scenario.check_capacity = true;
        if let Err(e) = Simulation::new(scenario).run() {
            panic!("hosts {hosts}, instances {instances}: {e}");
        }
    }
}

/// Deploying with no host: `waiting`, then converges once hosts join.
#[test]
fn waits_for_hosts_then_converges() {
    let mut scenario = Scenario::calm(7, vec![web("v1", 4, 1)], 0);
    scenario.min_hosts_per_zone = 2;
    scenario.chaos_ticks = 20;
    let mut sim = Simulation::new(scenario.clone());
    for _ in 0..10 {
        sim.step().unwrap();
    }
    assert_eq!(
        sim.last().status["web"].info.status_type,
        StatusType::Waiting,
        "{:?}",
        sim.last().status["web"]
    );
    let report = Simulation::new(scenario).run().unwrap();
    assert_eq!(report.status["web"].info.status_type, StatusType::Deployed);
}

/// An image no host can fetch ends `failed` with the host's reason, not `reconciling`
/// forever, and a broken upgrade keeps the old version running.
#[test]
fn unfetchable_image_fails_with_reason_and_keeps_old_version() {
    let mut scenario = Scenario::calm(3, vec![web("v1", 2, 1)], 2);
    scenario.broken_images = BTreeSet::from(["registry.example/example/api:v2".to_string()]);
    scenario.upgrades = vec![(60, web("v2", 2, 1))];
    let mut sim = Simulation::new(scenario);
    for _ in 0..140 {
        sim.step().unwrap();
    }
    let status = &sim.last().status["web"];
    assert_eq!(status.info.status_type, StatusType::Failed, "{status:?}");
    assert!(
        status
            .info
            .message
            .contains("failed to fetch `registry.example/example/api:v2`"),
        "{}",
        status.info.message
    );
    let old_running: u32 = sim
        .world()
        .hosts
        .values()
        .filter_map(|h| h.components.get("web-api"))
        .filter(|c| c.image_ref == "registry.example/example/api:v1")
        .map(|c| c.max_instances)
        .sum();
    assert_eq!(old_running, 2, "the old version keeps serving");
}

/// Undeploy removes everything the application started, and nothing else.
#[test]
fn undeploy_removes_everything() {
    let mut scenario = Scenario::calm(5, vec![web("v1", 3, 2)], 3);
    scenario.undeploys = vec![(60, "web".to_string())];
    let report = Simulation::new(scenario.clone()).run().unwrap();
    assert_eq!(
        report.status["web"].info.status_type,
        StatusType::Undeployed
    );
    let mut sim = Simulation::new(scenario);
    for _ in 0..120 {
        sim.step().unwrap();
    }
    assert!(
        sim.world()
            .hosts
            .values()
            .all(|h| h.components.is_empty() && h.providers.is_empty())
    );
    assert!(sim.world().links().is_empty());
}

#[test]
fn violations_name_seed_and_tick() {
    // A world with no zone hosts for a spread that needs them never converges: the
    // report says so with the seed, the tick and the reason.
    let mut scenario = Scenario::calm(11, vec![web("v1", 2, 1)], 0);
    scenario.converge_within_ticks = 20;
    let err = Simulation::new(scenario).run().unwrap_err();
    let SimError::Violation(report) = &err else {
        panic!("{err}");
    };
    assert_eq!(report.seed, 11);
    let text = err.to_string();
    assert!(text.contains("did not converge"), "{text}");
}
