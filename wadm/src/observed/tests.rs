use std::collections::BTreeMap;

use trellis_interfaces::event::{
    ComponentScaleFailed, ComponentScaled, ConfigEvent, HostStarted, HostStopped, LabelsChanged,
    LatticeEvent, LinkdefDeleted, ProviderStarted, ProviderStopped,
};
use trellis_interfaces::inventory::{ComponentDescription, HostInventory};
use trellis_interfaces::link::Link;
use trellis_interfaces::liveness::LivenessBeat;

use super::*;

fn event(state: &mut LatticeState, source: &str, event: LatticeEvent, at_ms: u64) {
    state.apply(Observation::Event {
        source: source.into(),
        event,
        at_ms,
    });
}

fn beat(state: &mut LatticeState, host: &str, seq: u64, components: u32, at_ms: u64) {
    state.apply(Observation::Liveness {
        beat: LivenessBeat {
            host_id: host.into(),
            seq,
            uptime_ms: seq * 1000,
            components,
            providers: 0,
            ready: true,
            calls: None,
            instances: None,
        },
        at_ms,
    });
}

fn scaled(host: &str, id: &str, max: u32) -> LatticeEvent {
    LatticeEvent::ComponentScaled(ComponentScaled {
        host_id: host.into(),
        image_ref: "img".into(),
        max_instances: max,
        component_id: id.into(),
        ..ComponentScaled::default()
    })
}

#[test]
fn host_lifecycle_from_events() {
    let mut s = LatticeState::new(0);
    let labels = BTreeMap::from([("zone".to_string(), "eu".to_string())]);
    event(
        &mut s,
        "N1",
        LatticeEvent::HostStarted(HostStarted {
            friendly_name: "n1".into(),
            labels: labels.clone(),
            ..HostStarted::default()
        }),
        100,
    );
    let h = &s.hosts["N1"];
    assert!(h.inventory_known && h.ready);
    assert_eq!(h.labels, labels);
    event(&mut s, "N1", scaled("N1", "c", 3), 200);
    assert_eq!(s.hosts["N1"].components["c"].max_instances, 3);
    assert_eq!(s.hosts["N1"].last_seen_ms, 200);
    event(&mut s, "N1", scaled("N1", "c", 0), 300);
    assert!(s.hosts["N1"].components.is_empty());
    event(
        &mut s,
        "N1",
        LatticeEvent::ProviderStarted(ProviderStarted {
            host_id: "N1".into(),
            image_ref: "p".into(),
            provider_id: "p1".into(),
            ..ProviderStarted::default()
        }),
        400,
    );
    assert!(s.hosts["N1"].providers.contains_key("p1"));
    event(
        &mut s,
        "N1",
        LatticeEvent::ProviderStopped(ProviderStopped {
            host_id: "N1".into(),
            provider_id: "p1".into(),
            ..ProviderStopped::default()
        }),
        500,
    );
    assert!(s.hosts["N1"].providers.is_empty());
    event(
        &mut s,
        "N1",
        LatticeEvent::LabelsChanged(LabelsChanged {
            host_id: "N1".into(),
            labels: BTreeMap::new(),
        }),
        600,
    );
    assert!(s.hosts["N1"].labels.is_empty());
    event(
        &mut s,
        "N1",
        LatticeEvent::HostStopped(HostStopped::default()),
        700,
    );
    assert!(s.hosts.is_empty());
}

#[test]
fn inventory_replaces_what_was_known() {
    let mut s = LatticeState::new(0);
    event(&mut s, "N1", scaled("N1", "old", 1), 10);
    assert!(!s.hosts["N1"].inventory_known, "known only from an event");
    assert_eq!(s.hosts_needing_inventory(), vec!["N1"]);
    s.apply(Observation::Inventory {
        inventory: HostInventory {
            host_id: "N1".into(),
            components: vec![ComponentDescription {
                id: "new".into(),
                image_ref: "img".into(),
                max_instances: 2,
                ..ComponentDescription::default()
            }],
            ..HostInventory::default()
        },
        at_ms: 20,
    });
    let h = &s.hosts["N1"];
    assert!(h.inventory_known);
    assert_eq!(h.components.keys().collect::<Vec<_>>(), vec!["new"]);
    assert!(s.hosts_needing_inventory().is_empty());
    // A beat whose counts disagree asks for a fresh inventory.
    beat(&mut s, "N1", 1, 5, 30);
    assert_eq!(s.hosts_needing_inventory(), vec!["N1"]);
}

#[test]
fn restarted_host_is_emptied_and_refetched() {
    let mut s = LatticeState::new(0);
    event(&mut s, "N1", scaled("N1", "c", 1), 10);
    s.hosts.get_mut("N1").unwrap().inventory_known = true;
    beat(&mut s, "N1", 5, 1, 20);
    beat(&mut s, "N1", 0, 0, 30);
    let h = &s.hosts["N1"];
    assert!(h.components.is_empty());
    assert!(!h.inventory_known);
}

#[test]
fn staleness_counts_from_the_later_of_last_seen_and_reconnect() {
    let policy = FailurePolicy::default();
    let mut s = LatticeState::new(0);
    beat(&mut s, "N1", 0, 0, 1_000);
    let stale_at = |s: &LatticeState, now| s.is_stale(&s.hosts["N1"], now, &policy);
    assert!(!stale_at(&s, 4_000));
    assert!(stale_at(&s, 4_001));
    s.apply(Observation::ObserverDisconnected { at_ms: 2_000 });
    s.apply(Observation::ObserverConnected { at_ms: 10_000 });
    assert!(!stale_at(&s, 12_000), "wadm's outage is not the host's");
    assert!(stale_at(&s, 13_001));
    assert_eq!(s.silent_hosts(13_001, 3_000), vec!["N1".to_string()]);
}

#[test]
fn hosts_without_beats_are_probed_then_fenced() {
    let policy = FailurePolicy::default();
    let mut s = LatticeState::new(0);
    s.apply(Observation::Inventory {
        inventory: HostInventory {
            host_id: "N1".into(),
            ..HostInventory::default()
        },
        at_ms: 1_000,
    });
    assert!(s.hosts_to_probe(3_000, &policy).is_empty());
    assert_eq!(s.hosts_to_probe(5_000, &policy), vec!["N1"]);
    assert!(
        !s.is_stale(&s.hosts["N1"], 5_000, &policy),
        "legacy timeout"
    );
    s.apply(Observation::ProbeFailed {
        host_id: "N1".into(),
        at_ms: 5_000,
    });
    assert!(s.is_stale(&s.hosts["N1"], 5_000, &policy));
    assert!(s.hosts_to_probe(6_000, &policy).is_empty(), "probed once");
    // Heard from again: no longer fenced.
    event(&mut s, "N1", scaled("N1", "c", 1), 7_000);
    assert!(!s.is_stale(&s.hosts["N1"], 7_000, &policy));
}

#[test]
fn links_configs_and_failures() {
    let mut s = LatticeState::new(0);
    let link = Link {
        source_id: "s".into(),
        target: "t".into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        interfaces: vec!["incoming-handler".into()],
        ..Link::default()
    };
    event(&mut s, "N1", LatticeEvent::LinkdefSet(link.clone()), 1);
    let mut wider = link.clone();
    wider.interfaces.push("x".into());
    event(&mut s, "N1", LatticeEvent::LinkdefSet(wider.clone()), 2);
    assert_eq!(s.links, vec![wider], "same key replaced in place");
    event(
        &mut s,
        "N1",
        LatticeEvent::LinkdefDeleted(LinkdefDeleted {
            source_id: "s".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            ..LinkdefDeleted::default()
        }),
        3,
    );
    assert!(s.links.is_empty());

    let set = LatticeEvent::ConfigSet(ConfigEvent {
        config_name: "c".into(),
    });
    event(&mut s, "N1", set, 4);
    assert_eq!(s.configs["c"], ConfigValue::Unknown);
    s.apply(Observation::Config {
        name: "c".into(),
        values: Some(BTreeMap::new()),
    });
    assert_eq!(s.configs["c"], ConfigValue::Known(BTreeMap::new()));
    let deleted = LatticeEvent::ConfigDeleted(ConfigEvent {
        config_name: "c".into(),
    });
    event(&mut s, "N1", deleted, 5);
    assert!(s.configs.is_empty());

    let failed = LatticeEvent::ComponentScaleFailed(ComponentScaleFailed {
        host_id: "N1".into(),
        image_ref: "img".into(),
        component_id: "c".into(),
        error: "boom".into(),
        ..ComponentScaleFailed::default()
    });
    event(&mut s, "N1", failed, 6);
    let key = FailureKey::Component {
        host_id: "N1".into(),
        id: "c".into(),
    };
    assert_eq!(s.failures[&key].error, "boom");
    event(&mut s, "N1", scaled("N1", "c", 1), 7);
    assert!(s.failures.is_empty(), "a success clears the failure");
}

#[test]
fn cloud_events_become_observations() {
    let ev = LatticeEvent::ConfigSet(ConfigEvent {
        config_name: "c".into(),
    });
    let ce = trellis_interfaces::event::CloudEvent::new("NHOST", &ev);
    let obs = Observation::from_cloud_event(&ce, 42).unwrap();
    assert_eq!(
        obs,
        Observation::Event {
            source: "NHOST".into(),
            event: ev,
            at_ms: 42
        }
    );
}

#[test]
fn workload_events_without_host_id_are_about_their_publisher() {
    let mut s = LatticeState::new(0);
    event(&mut s, "N9", scaled("", "c", 2), 5);
    assert_eq!(s.hosts["N9"].components["c"].max_instances, 2);
    assert!(!s.hosts.contains_key(""));
}

#[test]
fn reconnect_marks_inventories_outdated_until_fetched() {
    let mut s = LatticeState::new(0);
    s.apply(Observation::Inventory {
        inventory: HostInventory {
            host_id: "N1".into(),
            ..HostInventory::default()
        },
        at_ms: 1,
    });
    assert!(s.hosts_needing_inventory().is_empty());
    s.apply(Observation::ObserverDisconnected { at_ms: 2 });
    s.apply(Observation::ObserverConnected { at_ms: 3 });
    assert_eq!(s.hosts_needing_inventory(), vec!["N1"]);
    assert!(s.hosts["N1"].inventory_known, "still used meanwhile");
    s.apply(Observation::Inventory {
        inventory: HostInventory {
            host_id: "N1".into(),
            ..HostInventory::default()
        },
        at_ms: 4,
    });
    assert!(s.hosts_needing_inventory().is_empty());
}
