//! The host's two pulses: the wasmCloud-compatible `host_heartbeat` event with
//! the full inventory (on change, debounced, and every heartbeat interval), and
//! Trellis's small liveness beat every second on
//! `trellis.liveness.{lattice}.{host_id}`, which lets a scheduler tell a dead
//! host within seconds without parsing inventories.

use std::sync::Arc;
use std::time::Duration;

use trellis_interfaces::event::LatticeEvent;
use trellis_interfaces::liveness::LivenessBeat;
use trellis_interfaces::subject;

use crate::host::HostInner;

/// Coalesces bursts of inventory changes (a scale of 50 components) into one
/// heartbeat.
pub const HEARTBEAT_DEBOUNCE: Duration = Duration::from_millis(100);

pub(crate) fn spawn(host: Arc<HostInner>) {
    tokio::spawn(heartbeat_loop(host.clone()));
    tokio::spawn(liveness_loop(host));
}

async fn heartbeat_loop(host: Arc<HostInner>) {
    let mut stop = host.stop_tx.subscribe();
    let mut ticker = tokio::time::interval(host.config.heartbeat_interval);
    // The first tick of `interval` is immediate; wasmCloud's first heartbeat
    // comes one interval after start, `host_started` covers the start.
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticker.tick() => {}
            _ = host.reconnected.notified() => {}
            _ = host.inventory_changed.notified() => {
                tokio::time::sleep(HEARTBEAT_DEBOUNCE).await;
                ticker.reset();
            }
        }
        if *host.stop_tx.borrow() {
            return;
        }
        let inventory = host.inventory();
        host.events
            .publish(LatticeEvent::HostHeartbeat(inventory.into()))
            .await;
    }
}

/// Tears down reused instances and spares that waited too long for a call
/// (`runtime::reuse`, `runtime::spares`), outside the components lock.
fn reap_idle_instances(host: &HostInner) {
    let spares = host.runtime.spares().reap();
    if spares > 0 {
        tracing::debug!(spares, "idle spares torn down");
    }
    let current: Vec<_> = match host.components.read() {
        Ok(components) => components.values().map(|s| s.current.clone()).collect(),
        Err(_) => return,
    };
    for component in current {
        let reaped = component.reap_idle_instances();
        if reaped > 0 {
            tracing::debug!(component_id = %component.id(), reaped, "idle instances torn down");
        }
    }
}

async fn liveness_loop(host: Arc<HostInner>) {
    let mut stop = host.stop_tx.subscribe();
    let mut ticker = tokio::time::interval(host.config.liveness_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let subject = subject::liveness_subject(&host.config.lattice, &host.id);
    let mut seq: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticker.tick() => {}
        }
        seq += 1;
        reap_idle_instances(&host);
        let (components, providers) = (
            host.components.read().map(|c| c.len()).unwrap_or(0),
            host.providers.read().map(|p| p.len()).unwrap_or(0),
        );
        let beat = LivenessBeat {
            host_id: host.id.clone(),
            seq,
            uptime_ms: u64::try_from(host.uptime().as_millis()).unwrap_or(u64::MAX),
            components: u32::try_from(components).unwrap_or(u32::MAX),
            providers: u32::try_from(providers).unwrap_or(u32::MAX),
            ready: !*host.stop_tx.borrow(),
            calls: Some(host.dataplane.counts()),
            instances: Some(host.runtime.slot_usage()),
        };
        if let Ok(payload) = serde_json::to_vec(&beat)
            && let Err(e) = host.nats.publish(subject.clone(), payload.into()).await
        {
            tracing::debug!(error = %e, "cannot publish liveness beat");
        }
    }
}
