//! Provider auctions, `provider.start` and `provider.stop`.
//!
//! Built-in providers (`builtin://http-server`, `builtin://http-client`,
//! `builtin://keyvalue-memory`, `builtin://keyvalue-nats`, `builtin://blobstore-fs`, `builtin://messaging-nats`) run in-process and are handled
//! here; everything else is a provider process, handed to the host's
//! [`ProviderSupervisor`](crate::provider::ProviderSupervisor) (fetch, spawn,
//! supervise, stop). The host bids in auctions for the references it can run:
//! the built-in providers, OCI references, and `file://` with
//! `--allow-file-load`.

use std::sync::Arc;

use trellis_interfaces::ctl::{
    ProviderAuctionAck, ProviderAuctionRequest, StartProviderCommand, StopProviderCommand,
};
use trellis_interfaces::event::{LatticeEvent, ProviderStarted, ProviderStopped};

use super::{CtlError, Reply, check_host, parse};
use crate::capability::blobstore::is_builtin_blobstore;
use crate::capability::http_client::is_builtin_http_client;
use crate::capability::http_server::is_builtin_http_server;
use crate::capability::keyvalue::builtin_keyvalue;
use crate::capability::messaging::is_builtin_messaging;
use crate::host::{HostInner, ProviderSlot};
use crate::provider::{ProviderRequest, ProviderSupervisor};

fn supported(host: &HostInner, provider_ref: &str) -> bool {
    is_builtin(provider_ref) || ProviderSupervisor::can_run(host, provider_ref)
}

/// The providers that run in-process: `http-server`, `http-client`,
/// `keyvalue-memory`, `keyvalue-nats`, `blobstore-fs`, `messaging-nats`.
fn is_builtin(provider_ref: &str) -> bool {
    is_builtin_http_server(provider_ref)
        || is_builtin_http_client(provider_ref)
        || builtin_keyvalue(provider_ref).is_some()
        || is_builtin_blobstore(provider_ref)
        || is_builtin_messaging(provider_ref)
}

/// Whether `id` runs here, built in or as a process (also while starting or
/// waiting to restart).
fn known(host: &HostInner, id: &str) -> bool {
    host.providers
        .read()
        .map(|p| p.contains_key(id))
        .unwrap_or(false)
        || host.provider_sup.contains(id)
}

pub(super) fn auction(host: &HostInner, payload: &[u8]) -> Result<Reply, CtlError> {
    let req: ProviderAuctionRequest = parse("provider auction", payload)?;
    let labels = host.labels_snapshot();
    let satisfied = req
        .constraints
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let running = known(host, &req.provider_id);
    if !satisfied || running || !supported(host, &req.provider_ref) {
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
    if cmd
        .provider_id
        .chars()
        .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace())
    {
        return Err(CtlError::Rejected(format!(
            "provider_id `{}` must be a single NATS subject token (no `.`, `*`, `>` or spaces)",
            cmd.provider_id
        )));
    }
    let already = || CtlError::Rejected("provider with that ID is already running".into());
    if known(host, &cmd.provider_id) {
        return Err(already());
    }
    if !is_builtin(&cmd.provider_ref) {
        let request = ProviderRequest {
            provider_id: cmd.provider_id.clone(),
            image_ref: cmd.provider_ref.clone(),
            annotations: cmd.annotations.clone().unwrap_or_default(),
            config_names: cmd.config.clone(),
        };
        if !host.provider_sup.start(host, request) {
            return Err(already());
        }
        return Ok(Reply::ok());
    }
    let task_host = host.clone();
    tokio::spawn(async move {
        let annotations = cmd.annotations.clone().unwrap_or_default();
        if let Err(denial) = crate::policy::check_provider_start::<()>(
            &task_host,
            &cmd.provider_id,
            &cmd.provider_ref,
            &annotations,
            None,
        )
        .await
        {
            tracing::warn!(provider_id = %cmd.provider_id, error = %denial, "provider start failed");
            task_host
                .events
                .publish(LatticeEvent::ProviderStartFailed(
                    trellis_interfaces::event::ProviderStartFailed {
                        provider_ref: cmd.provider_ref.clone(),
                        provider_id: cmd.provider_id.clone(),
                        host_id: task_host.id.clone(),
                        error: denial.to_string(),
                        link_name: Some("default".into()),
                    },
                ))
                .await;
            return;
        }
        if let Ok(mut providers) = task_host.providers.write() {
            providers.insert(
                cmd.provider_id.clone(),
                ProviderSlot {
                    image_ref: cmd.provider_ref.clone(),
                    annotations: annotations.clone(),
                    config_names: cmd.config.clone(),
                    // Built-ins carry no claims.
                    name: None,
                    revision: 0,
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
    // Synchronous, as wasmCloud: the reply comes after `provider_stopped`.
    if host.provider_sup.stop(&cmd.provider_id).await {
        return Ok(Reply::ok());
    }
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
    if let Some(keyvalue) = host.dataplane.keyvalue() {
        keyvalue.provider_stopped(&cmd.provider_id);
    }
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
