//! Unit tests of the reconciler, on small hand-built lattices. Commands are executed by
//! the simulator's host model (a faithful Trellis host), so a test can step a lattice
//! to convergence and look at the result.

use std::collections::BTreeMap;

use trellis_interfaces::link::Link;
use trellis_interfaces::manifest::Manifest;

use super::*;
use crate::annotations::{
    APPSPEC_KEY, MANAGED_BY_KEY, SCALER_KEY, SPREAD_NAME_KEY, SPREAD_SCALER_KIND,
    workload_scaler_id,
};
use crate::command::{ScaleComponent, StartProvider};
use crate::observed::{ComponentInstance, ConfigValue, Observation};
use crate::sim::world::World;
use crate::status::StatusType;

/// A lattice under test: the world executes commands, `state` is wadm's view.
pub(super) struct Lab {
    pub world: World,
    pub state: LatticeState,
    pub pending: PendingCommands,
    pub now: u64,
    pub policy: FailurePolicy,
}

impl Lab {
    pub fn new() -> Self {
        Self {
            world: World::default(),
            state: LatticeState::new(0),
            pending: PendingCommands::new(),
            now: 1_000,
            policy: FailurePolicy::default(),
        }
    }

    pub fn host(&mut self, id: &str, zone: &str) -> &mut Self {
        let labels = BTreeMap::from([("zone".to_string(), zone.to_string())]);
        for (source, event) in self.world.join(id, labels, self.now) {
            self.state.apply(Observation::Event {
                source,
                event,
                at_ms: self.now,
            });
        }
        self.beat(id);
        self
    }

    pub fn beat(&mut self, id: &str) {
        let now = self.now;
        if let Some(h) = self.world.hosts.get_mut(id) {
            let beat = h.beat(now);
            self.state.apply(Observation::Liveness { beat, at_ms: now });
        }
    }

    pub fn beat_all(&mut self) {
        let ids: Vec<String> = self.world.hosts.keys().cloned().collect();
        for id in ids {
            self.beat(&id);
        }
    }

    pub fn reconcile(&self, apps: &[DeployedApp]) -> Reconciliation {
        reconcile(apps, &self.state, &self.pending, self.now, &self.policy)
    }

    pub fn execute(&mut self, commands: &[Command]) {
        let executor = self.world.hosts.keys().next().cloned();
        for command in commands {
            let events = self
                .world
                .execute(command, executor.as_deref(), self.now)
                .unwrap_or_default();
            for (source, event) in events {
                let config = match &event {
                    trellis_interfaces::event::LatticeEvent::ConfigSet(c) => {
                        Some(c.config_name.clone())
                    }
                    _ => None,
                };
                self.state.apply(Observation::Event {
                    source,
                    event,
                    at_ms: self.now,
                });
                if let Some(name) = config {
                    let values = self.world.configs.get(&name).cloned();
                    self.state.apply(Observation::Config { name, values });
                }
            }
        }
    }

    /// Reconcile and execute until nothing is left to do.
    pub fn converge(&mut self, apps: &[DeployedApp]) -> Reconciliation {
        for _ in 0..40 {
            let rec = self.reconcile(apps);
            if rec.commands.is_empty() {
                return rec;
            }
            self.execute(&rec.commands);
            self.now += 250;
            self.beat_all();
        }
        panic!("did not converge: {:?}", self.reconcile(apps));
    }

    pub fn count(&self, host: &str, id: &str) -> u32 {
        self.world.hosts[host]
            .components
            .get(id)
            .map_or(0, |c| c.max_instances)
    }
}

pub(super) fn app(yaml: &str) -> DeployedApp {
    DeployedApp::deployed(Manifest::from_yaml(yaml).unwrap())
}

pub(super) fn component_app(name: &str, image: &str, scaler: &str) -> DeployedApp {
    app(&format!(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata: {{name: {name}, annotations: {{}}}}\n\
         spec:\n  components:\n    - name: api\n      type: component\n      properties: {{image: \"{image}\"}}\n      \
         traits:\n        - type: {scaler}\n"
    ))
}

pub(super) fn scales(rec: &Reconciliation) -> Vec<&ScaleComponent> {
    rec.commands
        .iter()
        .filter_map(|c| match c {
            Command::ScaleComponent(s) => Some(s),
            _ => None,
        })
        .collect()
}

pub(super) fn status(rec: &Reconciliation, app: &str) -> (StatusType, String) {
    let s = &rec.status[app];
    (s.info.status_type, s.info.message.clone())
}

pub(super) const SPREAD4: &str = "spreadscaler\n          properties: {instances: 4}";

#[test]
fn spreads_instances_over_hosts_for_real() {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "eu");
    let apps = [component_app("shop", "img:1", SPREAD4)];
    let rec = lab.reconcile(&apps);
    let s = scales(&rec);
    assert_eq!(s.len(), 2, "{rec:?}");
    assert!(
        s.iter().all(|c| c.count == 2),
        "4 over 2 hosts is 2+2: {s:?}"
    );
    let scaler = workload_scaler_id(
        SPREAD_SCALER_KIND,
        "shop",
        "api",
        "shop-api",
        "img:1",
        &[],
        None,
    );
    let a = &s[0].annotations;
    assert_eq!(a[MANAGED_BY_KEY], "wadm");
    assert_eq!(a[APPSPEC_KEY], "shop");
    assert_eq!(a[SCALER_KEY], scaler);
    assert_eq!(a[SPREAD_NAME_KEY], "default");
    assert_eq!(status(&rec, "shop").0, StatusType::Reconciling);
    assert_eq!(rec.status["shop"].scalers[0].id, scaler);
    assert_eq!(rec.status["shop"].scalers[0].name, "shop-api");

    let done = lab.converge(&apps);
    assert_eq!(status(&done, "shop"), (StatusType::Deployed, String::new()));
    assert_eq!(
        (lab.count("A", "shop-api"), lab.count("B", "shop-api")),
        (2, 2)
    );
    // A third host: rebalanced as evenly as possible, moving as little as possible.
    lab.host("C", "eu");
    lab.converge(&apps);
    let counts = [
        lab.count("A", "shop-api"),
        lab.count("B", "shop-api"),
        lab.count("C", "shop-api"),
    ];
    assert_eq!(counts.iter().sum::<u32>(), 4);
    // The newcomer gets one; of A and B, one keeps 2 and the other gives one up.
    assert_eq!(counts[2], 1, "{counts:?}");
    let mut sorted = counts;
    sorted.sort_unstable();
    assert_eq!(sorted, [1, 1, 2]);
}

#[test]
fn converged_lattice_is_a_fixed_point() {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "us");
    let apps = [component_app("shop", "img:1", SPREAD4)];
    lab.converge(&apps);
    for _ in 0..5 {
        lab.now += 500;
        lab.beat_all();
        let rec = lab.reconcile(&apps);
        assert!(rec.commands.is_empty(), "{:?}", rec.commands);
        assert_eq!(status(&rec, "shop").0, StatusType::Deployed);
    }
}

#[test]
fn weighted_spreads_follow_labels() {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "eu").host("C", "us");
    let apps = [component_app(
        "shop",
        "img:1",
        "spreadscaler\n          properties:\n            instances: 4\n            spread:\n              \
         - {name: eu, requirements: {zone: eu}, weight: 75}\n              \
         - {name: us, requirements: {zone: us}, weight: 25}",
    )];
    lab.converge(&apps);
    assert_eq!(lab.count("A", "shop-api") + lab.count("B", "shop-api"), 3);
    assert_eq!(lab.count("C", "shop-api"), 1);
    let c = &lab.world.hosts["C"].components["shop-api"];
    assert_eq!(c.annotations[SPREAD_NAME_KEY], "us");
}

#[test]
fn unsatisfiable_spread_fails_naming_it_and_no_host_waits() {
    let apps = [component_app(
        "shop",
        "img:1",
        "spreadscaler\n          properties:\n            instances: 2\n            spread:\n              \
         - {name: asia, requirements: {zone: ap}}",
    )];
    let mut lab = Lab::new();
    let (t, m) = status(&lab.reconcile(&apps), "shop");
    assert_eq!(t, StatusType::Waiting, "{m}");
    lab.host("A", "eu");
    let rec = lab.reconcile(&apps);
    assert!(rec.commands.is_empty());
    let (t, m) = status(&rec, "shop");
    assert_eq!(t, StatusType::Failed);
    assert!(m.contains("spread asia") && m.contains("{zone=ap}"), "{m}");
}

#[test]
fn daemon_runs_on_every_matching_host() {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "us").host("C", "us");
    let apps = [component_app(
        "edge",
        "img:1",
        "daemonscaler\n          properties:\n            instances: 3\n            spread:\n              \
         - {name: us, requirements: {zone: us}}",
    )];
    lab.converge(&apps);
    assert_eq!(lab.count("A", "edge-api"), 0);
    assert_eq!(lab.count("B", "edge-api"), 3);
    assert_eq!(lab.count("C", "edge-api"), 3);
    lab.host("D", "us");
    lab.converge(&apps);
    assert_eq!(lab.count("D", "edge-api"), 3);
}

const PROVIDER_APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {name: kv, annotations: {}}
spec:
  components:
    - name: store
      type: capability
      properties: {image: "builtin://keyvalue"}
      traits:
        - type: spreadscaler
          properties: {instances: INSTANCES}
    - name: lonely
      type: capability
      properties: {image: "registry.example/example/other:1"}
    - name: idle
      type: component
      properties: {image: "registry.example/example/idle:1"}
"#;

#[test]
fn providers_one_per_host_implicit_spread_and_idle_components() {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "eu").host("C", "eu");
    let apps = [app(&PROVIDER_APP.replace("INSTANCES", "2"))];
    let rec = lab.reconcile(&apps);
    let starts: Vec<&StartProvider> = rec
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::StartProvider(s) if s.provider_id == "kv-store" => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 2);
    assert_ne!(starts[0].host_id, starts[1].host_id);
    // A provider without scaler trait runs once; a component without one never.
    assert!(
        rec.commands
            .iter()
            .any(|c| matches!(c, Command::StartProvider(s) if s.provider_id == "kv-lonely"))
    );
    assert!(
        !rec.commands
            .iter()
            .any(|c| c.workload_id() == Some("kv-idle"))
    );
    lab.converge(&apps);
    let running = lab
        .world
        .hosts
        .values()
        .filter(|h| h.providers.contains_key("kv-store"))
        .count();
    assert_eq!(running, 2);

    let too_many = [app(&PROVIDER_APP.replace("INSTANCES", "4"))];
    let rec = lab.converge(&too_many);
    let (t, m) = status(&rec, "kv");
    assert_eq!(t, StatusType::Failed);
    assert!(m.contains("3/4 eligible hosts"), "{m}");
}

const LINKED: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {name: Rust-Hello, annotations: {}}
spec:
  components:
    - name: http
      type: component
      properties:
        image: img:1
        config:
          - {name: custom, properties: {lang: en}}
          - {name: external}
      traits:
        - type: spreadscaler
          properties: {instances: 1}
    - name: httpserver
      type: capability
      properties: {image: "builtin://http-server"}
      traits:
        - type: link
          properties:
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            target: {name: http}
            source:
              config: [{name: listen, properties: {address: "0.0.0.0:8080"}}]
"#;

#[test]
fn configs_are_named_like_wadm_and_hold_back_what_needs_them() {
    let mut lab = Lab::new();
    lab.host("A", "eu");
    let apps = [app(LINKED)];
    let rec = lab.reconcile(&apps);
    let puts: Vec<&str> = rec
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::PutConfig(p) => Some(p.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(puts, vec!["rust_hello-custom", "rust_hello-listen"]);
    assert!(
        matches!(rec.commands[0], Command::PutConfig(_)),
        "configs first"
    );
    // The component needs `external`, which nobody manages: failed, nothing started.
    let rec = lab.converge(&apps);
    let api = &rec.status["Rust-Hello"].scalers[0];
    assert_eq!(api.info.status_type, StatusType::Failed);
    assert_eq!(
        api.info.message,
        "Specified configuration `external` does not exist"
    );
    assert_eq!(lab.count("A", "rust_hello-http"), 0);
    // Once it exists, the component starts with both names, in order.
    lab.world.configs.insert("external".into(), BTreeMap::new());
    lab.state
        .configs
        .insert("external".into(), ConfigValue::Unknown);
    let rec = lab.reconcile(&apps);
    let s = scales(&rec);
    assert_eq!(
        s[0].config,
        vec!["rust_hello-custom".to_string(), "external".to_string()]
    );
    let done = lab.converge(&apps);
    assert_eq!(status(&done, "Rust-Hello").0, StatusType::Deployed);
    let link = &lab.world.links()[0];
    assert_eq!(link.source_id, "rust_hello-httpserver");
    assert_eq!(link.target, "rust_hello-http");
    assert_eq!(link.source_config, vec!["rust_hello-listen".to_string()]);
    // Drifted values are put back.
    lab.state.apply(Observation::Config {
        name: "rust_hello-custom".into(),
        values: Some(BTreeMap::from([("lang".to_string(), "fr".to_string())])),
    });
    let rec = lab.reconcile(&apps);
    assert!(matches!(&rec.commands[..], [Command::PutConfig(p)] if p.name == "rust_hello-custom"));
}

fn http_link(target: &str, interfaces: &[&str]) -> Link {
    Link {
        source_id: "rust_hello-httpserver".into(),
        target: target.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
        source_config: vec!["rust_hello-listen".into()],
        target_config: vec![],
    }
}

#[test]
fn links_are_put_replaced_and_conflicts_respected() {
    let manifest =
        Manifest::from_yaml(&LINKED.replace("          - {name: external}\n", "")).unwrap();
    let mut lab = Lab::new();
    lab.host("A", "eu");
    let apps = [DeployedApp::deployed(manifest.clone())];
    lab.converge(&apps);
    // Same key, different interfaces: put again (replaced in place).
    lab.state.links = vec![http_link("rust_hello-http", &["incoming-handler", "x"])];
    let rec = lab.reconcile(&apps);
    assert!(
        matches!(&rec.commands[..], [Command::PutLink(p)] if p.link.interfaces == ["incoming-handler"])
    );
    // A conflicting link this app never put: failed, not overwritten.
    lab.state.links = vec![http_link("someone-else", &["incoming-handler"])];
    let rec = lab.reconcile(&apps);
    assert!(rec.commands.is_empty(), "{:?}", rec.commands);
    let (t, m) = status(&rec, "Rust-Hello");
    assert_eq!(t, StatusType::Failed);
    assert!(m.contains("conflicts with existing link"), "{m}");
    // ... unless an earlier version of this app put it: deleted first.
    let old = Manifest::from_yaml(
        &LINKED
            .replace("          - {name: external}\n", "")
            .replace("    - name: http\n", "    - name: old-http\n")
            .replace("target: {name: http}", "target: {name: old-http}"),
    )
    .unwrap();
    let with_history = [DeployedApp::deployed(manifest).with_previous(vec![old])];
    lab.state.links = vec![http_link("rust_hello-old_http", &["incoming-handler"])];
    let rec = lab.reconcile(&with_history);
    assert!(
        matches!(&rec.commands[..], [Command::DeleteLink(d)] if d.source_id == "rust_hello-httpserver")
    );
}

#[test]
fn never_touches_what_it_did_not_start() {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "eu");
    // `shop-api` started by hand on A, and another app's instance of it on B.
    for (host, annotations) in [
        ("A", BTreeMap::new()),
        (
            "B",
            crate::annotations::managed_annotations("other", "x", "default"),
        ),
    ] {
        let instance = ComponentInstance {
            image_ref: "img:0".into(),
            max_instances: 9,
            annotations,
        };
        lab.state
            .hosts
            .get_mut(host)
            .unwrap()
            .components
            .insert("shop-api".into(), instance);
    }
    let apps = [component_app("shop", "img:1", SPREAD4)];
    let rec = lab.reconcile(&apps);
    assert!(rec.commands.is_empty(), "{:?}", rec.commands);
    let (t, m) = status(&rec, "shop");
    assert_eq!(t, StatusType::Failed);
    assert!(m.contains("already run `shop-api` for someone else"), "{m}");
    // Undeploying touches nothing either.
    let rec = lab.reconcile(&[DeployedApp::undeployed(apps[0].manifest.clone())]);
    assert!(rec.commands.is_empty());
    assert_eq!(status(&rec, "shop").0, StatusType::Undeployed);
}

#[test]
fn undeploy_removes_everything_of_the_app() {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "us");
    let apps = [app(LINKED
        .replace("          - {name: external}\n", "")
        .as_str())];
    lab.converge(&apps);
    let gone = [DeployedApp::undeployed(apps[0].manifest.clone())];
    let rec = lab.converge(&gone);
    assert_eq!(status(&rec, "Rust-Hello").0, StatusType::Undeployed);
    assert!(
        lab.world
            .hosts
            .values()
            .all(|h| h.components.is_empty() && h.providers.is_empty())
    );
    assert!(lab.world.links().is_empty());
    assert!(lab.world.configs.is_empty());
}

fn reusing_app(reuse: Option<u32>) -> DeployedApp {
    let reuse = reuse.map_or(String::new(), |n| format!(", max_instance_reuse: {n}"));
    app(&format!(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata: {{name: shop, annotations: {{}}}}\n\
         spec:\n  components:\n    - name: api\n      type: component\n      properties: {{image: \"img:1\"{reuse}}}\n      \
         traits:\n        - type: {SPREAD4}\n"
    ))
}

#[test]
fn max_instance_reuse_reaches_the_hosts_and_a_change_replaces_in_place() {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "eu");
    // Without the field: no limits on the wire, wadm 0.21's scaler id.
    let plain = [reusing_app(None)];
    let rec = lab.reconcile(&plain);
    assert!(scales(&rec).iter().all(|s| s.max_instance_reuse.is_none()));
    assert!(
        scales(&rec)
            .iter()
            .all(|s| s.to_ctl().component_limits.is_none())
    );
    lab.converge(&plain);
    // With it: every host is re-scaled in place (same image, same count), and
    // the request carries `component_limits.max_instance_reuse`.
    let reusing = [reusing_app(Some(64))];
    let rec = lab.reconcile(&reusing);
    let s = scales(&rec);
    assert!(!s.is_empty(), "{rec:?}");
    for scale in &s {
        assert_eq!(scale.max_instance_reuse, Some(64), "{scale:?}");
        assert_eq!(scale.image_ref, "img:1");
        assert_eq!(scale.count, 2);
        assert!(scale.allow_update, "{scale:?}");
        let limits = scale.to_ctl().component_limits.unwrap_or_default();
        assert_eq!(limits["max_instance_reuse"], "64");
    }
    let done = lab.converge(&reusing);
    assert_eq!(status(&done, "shop"), (StatusType::Deployed, String::new()));
    assert_eq!(
        (lab.count("A", "shop-api"), lab.count("B", "shop-api")),
        (2, 2)
    );
    let rec = lab.reconcile(&reusing);
    assert!(rec.commands.is_empty(), "a fixed point: {:?}", rec.commands);
    // Another value is another change.
    let rec = lab.reconcile(&[reusing_app(Some(8))]);
    assert!(
        scales(&rec)
            .iter()
            .any(|s| s.max_instance_reuse == Some(8) && s.allow_update),
        "{rec:?}"
    );
    // Dropping the field is one too: the replacements carry empty limits,
    // which return the hosts to their default, and then nothing is left to do.
    let rec = lab.reconcile(&plain);
    let s = scales(&rec);
    assert!(!s.is_empty(), "{rec:?}");
    for scale in &s {
        assert!(scale.allow_update, "{scale:?}");
        assert_eq!(scale.to_ctl().component_limits, Some(BTreeMap::new()));
    }
    lab.converge(&plain);
    let rec = lab.reconcile(&plain);
    assert!(rec.commands.is_empty(), "a fixed point: {:?}", rec.commands);
}
