//! Host-level operations: ping, stop, labels, claims, registry credentials.

use std::sync::Arc;

use trellis_interfaces::ctl::{
    HostLabel, HostLabelIdentifier, RegistryCredentialMap, StopHostCommand,
};
use trellis_interfaces::event::{LabelsChanged, LatticeEvent};
use trellis_interfaces::inventory::Host;

use super::{CtlError, Reply, check_host, parse, parse_or_default};
use crate::host::{HOST_VERSION, HostInner, human_duration};

/// Label keys under this prefix are set by the host and cannot be changed.
pub const RESERVED_LABEL_PREFIX: &str = "hostcore.";

pub(super) fn ping(host: &HostInner) -> Host {
    let uptime = host.uptime();
    Host {
        id: host.id.clone(),
        friendly_name: host.friendly_name.clone(),
        labels: host.labels_snapshot(),
        lattice: host.config.lattice.clone(),
        uptime_seconds: uptime.as_secs(),
        uptime_human: Some(human_duration(uptime)),
        version: Some(HOST_VERSION.to_string()),
        ctl_host: Some(host.config.nats_url.clone()),
        rpc_host: Some(host.config.nats_url.clone()),
        js_domain: host.config.js_domain.clone(),
    }
}

pub(super) fn stop(
    host: &Arc<HostInner>,
    _host_id: &str,
    payload: &[u8],
) -> Result<Reply, CtlError> {
    let cmd: StopHostCommand = parse_or_default("host stop", payload)?;
    check_host(host, &cmd.host_id)?;
    let host = host.clone();
    let drain = cmd.timeout.map(std::time::Duration::from_millis);
    tokio::spawn(async move { host.shutdown(drain).await });
    Ok(Reply::ok())
}

pub(super) fn claims(host: &HostInner) -> Result<Reply, CtlError> {
    let claims = host
        .view
        .read()
        .map(|v| v.claims())
        .map_err(|_| CtlError::Store("lattice view unavailable".into()))?;
    Ok(Reply::with(&claims))
}

fn check_label_key(key: &str) -> Result<(), CtlError> {
    if key.is_empty() {
        return Err(CtlError::Rejected("label key must not be empty".into()));
    }
    if key.starts_with(RESERVED_LABEL_PREFIX) {
        return Err(CtlError::Rejected(format!(
            "label `{key}` is reserved: `{RESERVED_LABEL_PREFIX}*` labels are set by the host"
        )));
    }
    Ok(())
}

pub(super) async fn put_label(
    host: &HostInner,
    _host_id: &str,
    payload: &[u8],
) -> Result<Reply, CtlError> {
    let label: HostLabel = parse("label put", payload)?;
    check_label_key(&label.key)?;
    if let Ok(mut labels) = host.labels.write() {
        labels.insert(label.key, label.value);
    }
    labels_changed(host).await;
    Ok(Reply::ok())
}

pub(super) async fn delete_label(
    host: &HostInner,
    _host_id: &str,
    payload: &[u8],
) -> Result<Reply, CtlError> {
    let label: HostLabelIdentifier = parse("label delete", payload)?;
    check_label_key(&label.key)?;
    let removed = host
        .labels
        .write()
        .map(|mut l| l.remove(&label.key).is_some())
        .unwrap_or(false);
    if !removed {
        return Err(CtlError::Rejected(format!(
            "host `{}` has no label `{}`",
            host.id, label.key
        )));
    }
    labels_changed(host).await;
    Ok(Reply::ok())
}

async fn labels_changed(host: &HostInner) {
    host.inventory_changed.notify_one();
    host.events
        .publish(LatticeEvent::LabelsChanged(LabelsChanged {
            host_id: host.id.clone(),
            labels: host.labels_snapshot(),
        }))
        .await;
}

pub(super) fn registry_put(host: &HostInner, payload: &[u8]) -> Result<Reply, CtlError> {
    let creds: RegistryCredentialMap = parse("registry put", payload)?;
    let registries: Vec<&String> = creds.keys().collect();
    tracing::info!(?registries, "registry credentials updated");
    host.fetcher.merge_credentials(creds);
    Ok(Reply::ok())
}
