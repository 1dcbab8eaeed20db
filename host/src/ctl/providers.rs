//! Provider auctions, `provider.start` and `provider.stop`.
//!
//! This host runs built-in providers in-process (`builtin://http-server`).
//! External provider processes (PAR archives) arrive with the provider SDK;
//! until then a start of one fails with `provider_start_failed` saying so, and
//! the host does not bid in auctions for them.

use std::sync::Arc;

use trellis_interfaces::ctl::{
    ProviderAuctionAck, ProviderAuctionRequest, StartProviderCommand, StopProviderCommand,
};
use trellis_interfaces::event::{
    LatticeEvent, ProviderStartFailed, ProviderStarted, ProviderStopped,
};

use super::{CtlError, Reply, check_host, parse};
use crate::capability::http_server::is_builtin_http_server;
use crate::host::{HostInner, ProviderSlot};

fn supported(provider_ref: &str) -> bool {
    is_builtin_http_server(provider_ref)
}

pub(super) fn auction(host: &HostInner, payload: &[u8]) -> Result<Reply, CtlError> {
    let req: ProviderAuctionRequest = parse("provider auction", payload)?;
    let labels = host.labels_snapshot();
    let satisfied = req
        .constraints
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let running = host
        .providers
        .read()
        .map(|p| p.contains_key(&req.provider_id))
        .unwrap_or(false);
    if !satisfied || running || !supported(&req.provider_ref) {
        return Ok(Reply::Silent);
    }
    Ok(Reply::with(&ProviderAuctionAck {
        host_id: host.id.clone(),
        provider_ref: req.provider_ref,
        provider_id: req.provider_id,
        constraints: req.constraints,
    }))
}

pub(super) fn start(
    host: &Arc<HostInner>,
    _host_id: &str,
    payload: &[u8],
) -> Result<Reply, CtlError> {
    let cmd: StartProviderCommand = parse("provider start", payload)?;
    check_host(host, &cmd.host_id)?;
    if cmd.provider_id.is_empty() {
        return Err(CtlError::Rejected("provider_id must not be empty".into()));
    }
    if host
        .providers
        .read()
        .map(|p| p.contains_key(&cmd.provider_id))
        .unwrap_or(false)
    {
        return Err(CtlError::Rejected(
            "provider with that ID is already running".into(),
        ));
    }
    let task_host = host.clone();
    tokio::spawn(async move {
        if !supported(&cmd.provider_ref) {
            let error = format!(
                "provider `{}` cannot start here: this host runs built-in providers (`builtin://http-server`); external provider archives are not supported yet",
                cmd.provider_ref
            );
            task_host
                .events
                .publish(LatticeEvent::ProviderStartFailed(ProviderStartFailed {
                    provider_ref: cmd.provider_ref.clone(),
                    provider_id: cmd.provider_id.clone(),
                    host_id: task_host.id.clone(),
                    error,
                    link_name: Some("default".into()),
                }))
                .await;
            return;
        }
        let annotations = cmd.annotations.clone().unwrap_or_default();
        if let Ok(mut providers) = task_host.providers.write() {
            providers.insert(
                cmd.provider_id.clone(),
                ProviderSlot {
                    image_ref: cmd.provider_ref.clone(),
                    annotations: annotations.clone(),
                    config_names: cmd.config.clone(),
                },
            );
        }
        task_host.reconcile_http();
        task_host.inventory_changed.notify_one();
        tracing::info!(provider_id = %cmd.provider_id, provider_ref = %cmd.provider_ref, "provider started");
        task_host
            .events
            .publish(LatticeEvent::ProviderStarted(ProviderStarted {
                host_id: task_host.id.clone(),
                image_ref: cmd.provider_ref.clone(),
                provider_id: cmd.provider_id.clone(),
                annotations,
                claims: None,
                ..Default::default()
            }))
            .await;
    });
    Ok(Reply::ok())
}

pub(super) async fn stop(
    host: &Arc<HostInner>,
    _host_id: &str,
    payload: &[u8],
) -> Result<Reply, CtlError> {
    let cmd: StopProviderCommand = parse("provider stop", payload)?;
    check_host(host, &cmd.host_id)?;
    let removed = host
        .providers
        .write()
        .ok()
        .and_then(|mut p| p.remove(&cmd.provider_id));
    let Some(slot) = removed else {
        return Err(CtlError::Rejected(format!(
            "provider `{}` is not running on host `{}`",
            cmd.provider_id, host.id
        )));
    };
    host.reconcile_http();
    host.inventory_changed.notify_one();
    host.events
        .publish(LatticeEvent::ProviderStopped(ProviderStopped {
            host_id: host.id.clone(),
            provider_id: cmd.provider_id.clone(),
            annotations: slot.annotations,
            reason: "stop".into(),
            ..Default::default()
        }))
        .await;
    Ok(Reply::ok())
}
