//! Unit tests of failure handling (fencing, partitions, a disconnected observer,
//! commands in flight, failed starts) and rolling upgrades.

use super::tests::{Lab, SPREAD4, app, component_app, scales, status};
use super::*;
use crate::command::ScaleComponent;
use crate::observed::Observation;
use crate::status::StatusType;

fn two_hosts_converged() -> (Lab, [DeployedApp; 1]) {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "eu");
    let apps = [component_app("shop", "img:1", SPREAD4)];
    lab.converge(&apps);
    (lab, apps)
}

#[test]
fn dead_host_work_moves_within_the_timeout() {
    let (mut lab, apps) = two_hosts_converged();
    let a_last_seen = lab.state.hosts["A"].last_seen_ms;
    // A goes silent (kill -9); B keeps beating every 250 ms.
    let mut moved_at = None;
    while lab.now < a_last_seen + 10_000 {
        lab.now += 250;
        lab.beat("B");
        let rec = lab.reconcile(&apps);
        assert!(
            rec.commands.iter().all(|c| c.host_id() != Some("A")),
            "nothing is sent to a fenced host: {:?}",
            rec.commands
        );
        if !rec.commands.is_empty() {
            let s = scales(&rec);
            assert_eq!((s[0].host_id.as_str(), s[0].count), ("B", 4), "{s:?}");
            moved_at = Some(lab.now);
            break;
        }
    }
    let moved_at = moved_at.expect("work moved");
    assert!(moved_at - a_last_seen > lab.policy.host_timeout_ms);
    assert!(moved_at - a_last_seen <= lab.policy.host_timeout_ms + 250);
}

#[test]
fn every_host_silent_is_a_partition_not_an_eviction() {
    let (mut lab, apps) = two_hosts_converged();
    lab.now += 60_000;
    let rec = lab.reconcile(&apps);
    assert!(rec.commands.is_empty());
    let (t, m) = status(&rec, "shop");
    assert_eq!(t, StatusType::Unhealthy);
    assert!(m.contains("likely a partition; not evicting"), "{m}");
    assert!(
        rec.status["shop"]
            .scalers
            .iter()
            .all(|s| s.info.status_type == StatusType::Unhealthy)
    );
    // One host heard from again: the other is fenced and its work moves.
    lab.beat("B");
    let rec = lab.reconcile(&apps);
    assert_eq!(scales(&rec)[0].host_id, "B");
}

#[test]
fn disconnected_observer_issues_nothing_and_reconnect_grants_a_full_timeout() {
    let (mut lab, apps) = two_hosts_converged();
    lab.host("C", "eu");
    lab.state
        .apply(Observation::ObserverDisconnected { at_ms: lab.now });
    let rec = lab.reconcile(&apps);
    assert!(
        rec.commands.is_empty(),
        "C would get work, but wadm is blind"
    );
    let (t, m) = status(&rec, "shop");
    assert_eq!(t, StatusType::Unhealthy);
    assert!(m.contains("disconnected from NATS"), "{m}");
    // Ten seconds later wadm reconnects: hosts are not blamed for its own outage.
    lab.now += 10_000;
    lab.state
        .apply(Observation::ObserverConnected { at_ms: lab.now });
    lab.now += 2_000;
    let rec = lab.reconcile(&apps);
    assert!(
        scales(&rec).iter().all(|s| s.count > 0),
        "no host fenced after a reconnect: {:?}",
        rec.commands
    );
}

#[test]
fn commands_in_flight_are_not_reissued_until_answered_or_timed_out() {
    let mut lab = Lab::new();
    lab.host("A", "eu");
    let apps = [component_app("shop", "img:1", SPREAD4)];
    let first = lab.reconcile(&apps);
    assert_eq!(first.commands.len(), 1);
    lab.pending.record(&first.commands, lab.now);
    lab.now += 1_000;
    lab.beat("A");
    let rec = lab.reconcile(&apps);
    assert!(rec.commands.is_empty(), "in flight: {:?}", rec.commands);
    assert_eq!(status(&rec, "shop").0, StatusType::Reconciling);
    // The request failed: forgotten, re-issued at once.
    lab.pending.forget(&first.commands[0]);
    assert_eq!(lab.reconcile(&apps).commands, first.commands);
    // Or it timed out.
    lab.pending.record(&first.commands, lab.now);
    lab.now += lab.policy.command_timeout_ms;
    lab.beat("A");
    assert_eq!(lab.reconcile(&apps).commands, first.commands);
}

#[test]
fn failed_start_reports_the_reason_and_backs_off() {
    let mut lab = Lab::new();
    lab.host("A", "eu");
    lab.world.broken_images.insert("img:bad".into());
    let apps = [component_app("shop", "img:bad", SPREAD4)];
    let rec = lab.reconcile(&apps);
    lab.execute(&rec.commands);
    lab.now += 1_000;
    lab.beat("A");
    let rec = lab.reconcile(&apps);
    assert!(rec.commands.is_empty(), "backing off: {:?}", rec.commands);
    let (t, m) = status(&rec, "shop");
    assert_eq!(t, StatusType::Failed);
    assert!(m.contains("failed to fetch `img:bad`"), "{m}");
    lab.now += lab.policy.failure_backoff_ms;
    lab.beat("A");
    let rec = lab.reconcile(&apps);
    assert_eq!(rec.commands.len(), 1, "retried after the backoff");
    assert_eq!(status(&rec, "shop").0, StatusType::Failed);
}

fn version(image: &str, instances: u32) -> [DeployedApp; 1] {
    [component_app(
        "shop",
        image,
        &format!("spreadscaler\n          properties: {{instances: {instances}}}"),
    )]
}

/// Executes one pass and returns its commands and status message.
fn pass(lab: &mut Lab, apps: &[DeployedApp]) -> (Vec<ScaleComponent>, String) {
    let rec = lab.reconcile(apps);
    let s: Vec<ScaleComponent> = scales(&rec).into_iter().cloned().collect();
    let (_, message) = status(&rec, "shop");
    lab.execute(&rec.commands);
    lab.now += 250;
    lab.beat_all();
    (s, message)
}

#[test]
fn upgrade_starts_alongside_then_replaces_in_place() {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "eu");
    lab.converge(&version("img:1", 1));
    // Which host runs v1 is up to placement; the other one is free.
    let (old, free) = if lab.count("A", "shop-api") == 1 {
        ("A", "B")
    } else {
        ("B", "A")
    };
    assert_eq!(lab.count(old, "shop-api"), 1);
    let v2 = version("img:2", 2);
    // Phase 1: the new version starts on the free host; the old one keeps serving v1.
    let (s, m) = pass(&mut lab, &v2);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(
        (s[0].host_id.as_str(), s[0].image_ref.as_str()),
        (free, "img:2")
    );
    assert!(!s[0].allow_update);
    assert!(m.contains("phase 1/3"), "{m}");
    // Phase 2: a new instance runs, so the old host is replaced in place.
    let (s, m) = pass(&mut lab, &v2);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!((s[0].host_id.as_str(), s[0].count), (old, 1));
    assert!(s[0].allow_update);
    assert!(m.contains("phase 2/3"), "{m}");
    let done = lab.converge(&v2);
    assert_eq!(status(&done, "shop").0, StatusType::Deployed);
    let images: Vec<&str> = lab
        .world
        .hosts
        .values()
        .map(|h| h.components["shop-api"].image_ref.as_str())
        .collect();
    assert_eq!(images, ["img:2", "img:2"]);
}

#[test]
fn upgrade_without_free_hosts_replaces_one_host_at_a_time_then_drains() {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "eu").host("C", "eu");
    lab.converge(&version("img:1", 3));
    let v2 = version("img:2", 1);
    // The canary: one in-place replacement, nothing else.
    let (s, m) = pass(&mut lab, &v2);
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(s[0].allow_update, "{s:?}");
    assert!(m.contains("phase 1/3"), "{m}");
    // The plan (1 instance) is met: what is left of v1 is drained.
    let (s, m) = pass(&mut lab, &v2);
    assert!(
        m.contains("phase 3/3") && m.contains("draining img:1"),
        "{m}"
    );
    assert_eq!(s.len(), 2);
    assert!(s.iter().all(|c| c.count == 0 && c.image_ref == "img:1"));
    assert_eq!(status(&lab.converge(&v2), "shop").0, StatusType::Deployed);
}

#[test]
fn broken_upgrade_keeps_the_old_version() {
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "eu");
    lab.converge(&version("img:1", 2));
    lab.world.broken_images.insert("img:2".into());
    let v2 = version("img:2", 2);
    for _ in 0..20 {
        pass(&mut lab, &v2);
    }
    let (t, m) = status(&lab.reconcile(&v2), "shop");
    assert_eq!(t, StatusType::Failed);
    assert!(m.contains("failed to fetch `img:2`"), "{m}");
    let old: u32 = lab
        .world
        .hosts
        .values()
        .filter_map(|h| h.components.get("shop-api"))
        .filter(|c| c.image_ref == "img:1")
        .map(|c| c.max_instances)
        .sum();
    assert_eq!(old, 2, "v1 still runs at full capacity");
}

#[test]
fn provider_upgrade_starts_the_new_one_before_stopping_the_old() {
    let yaml = |image: &str| {
        format!(
            "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata: {{name: shop, annotations: {{}}}}\n\
             spec:\n  components:\n    - name: kv\n      type: capability\n      properties: {{image: \"{image}\"}}\n"
        )
    };
    let mut lab = Lab::new();
    lab.host("A", "eu").host("B", "eu");
    lab.converge(&[app(&yaml("prov:1"))]);
    assert!(lab.world.hosts["A"].providers.contains_key("shop-kv"));
    let v2 = [app(&yaml("prov:2"))];
    let rec = lab.reconcile(&v2);
    assert!(
        matches!(&rec.commands[..], [Command::StartProvider(s)] if s.host_id == "B"),
        "{:?}",
        rec.commands
    );
    lab.execute(&rec.commands);
    let rec = lab.reconcile(&v2);
    assert!(
        matches!(&rec.commands[..], [Command::StopProvider(s)] if s.host_id == "A"),
        "{:?}",
        rec.commands
    );
}

#[test]
fn a_draining_host_gets_no_new_work_and_its_work_moves() {
    let (mut lab, apps) = two_hosts_converged();
    lab.now += 250;
    let beat = trellis_interfaces::liveness::LivenessBeat {
        host_id: "A".into(),
        seq: 99,
        uptime_ms: 99_000,
        components: 1,
        providers: 0,
        ready: false,
        calls: None,
        instances: None,
    };
    lab.state.apply(Observation::Liveness {
        beat,
        at_ms: lab.now,
    });
    lab.beat("B");
    let rec = lab.reconcile(&apps);
    let s = scales(&rec);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!((s[0].host_id.as_str(), s[0].count), ("B", 4));
}
