//! Component auctions, `component.scale` and `component.update`.
//!
//! Scale and update acknowledge first and do the work in a task, as wasmCloud
//! does; the outcome is a `component_scaled` / `component_scale_failed` event.
//! Lifecycle operations on one component id are serialized.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use trellis_interfaces::ctl::{
    ComponentAuctionAck, ComponentAuctionRequest, ScaleComponentCommand, UpdateComponentCommand,
};
use trellis_interfaces::event::{ComponentScaleFailed, ComponentScaled, LatticeEvent};
use trellis_interfaces::link::ComponentSpecification;
use trellis_interfaces::subject;

use super::{CtlError, Reply, check_host, parse};
use crate::admission::{AdmissionPolicy, record_claims};
use crate::artifact::ArtifactRef;
use crate::host::{ComponentSlot, HostInner};
use crate::runtime::{
    CompiledArtifact, ComponentParams, RescaleLimits, RunningComponent, Runtime, VerifiedClaims,
    check_header, compile,
};

pub(super) fn auction(host: &HostInner, payload: &[u8]) -> Result<Reply, CtlError> {
    let req: ComponentAuctionRequest = parse("component auction", payload)?;
    let labels = host.labels_snapshot();
    let satisfied = req
        .constraints
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    if !satisfied || host.component(&req.component_id).is_some() {
        return Ok(Reply::Silent);
    }
    Ok(Reply::with(&ComponentAuctionAck {
        component_ref: req.component_ref,
        component_id: req.component_id,
        host_id: host.id.clone(),
        constraints: req.constraints,
    }))
}

fn validate_id(id: &str) -> Result<(), CtlError> {
    if id.is_empty() {
        return Err(CtlError::Rejected("component_id must not be empty".into()));
    }
    if id
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>'))
    {
        return Err(CtlError::Rejected(format!(
            "component id `{id}` is not a valid NATS subject token (no spaces, `.`, `*` or `>`)"
        )));
    }
    Ok(())
}

pub(super) fn scale(
    host: &Arc<HostInner>,
    host_id: &str,
    payload: &[u8],
) -> Result<Reply, CtlError> {
    let cmd: ScaleComponentCommand = parse("component scale", payload)?;
    check_host(host, &cmd.host_id)?;
    let _ = host_id;
    validate_id(&cmd.component_id)?;
    if cmd.max_instances > 0 {
        match ArtifactRef::parse(&cmd.component_ref) {
            Ok(ArtifactRef::Builtin(_)) => {
                return Err(CtlError::Rejected(format!(
                    "`{}` is a built-in capability: start it with provider.start, not component.scale",
                    cmd.component_ref
                )));
            }
            Ok(_) => {}
            Err(e) => return Err(CtlError::Rejected(e.to_string())),
        }
    }
    let mut warning = String::new();
    if let Some(existing) = host.component(&cmd.component_id)
        && cmd.max_instances > 0
        && existing.image_ref() != cmd.component_ref
        && !cmd.allow_update
    {
        warning = format!(
            "component `{}` is already running from `{}`; scaling it but keeping that image (set allow_update to switch to `{}`)",
            cmd.component_id,
            existing.image_ref(),
            cmd.component_ref
        );
    }
    let task_host = host.clone();
    tokio::spawn(async move { scale_task(task_host, cmd).await });
    Ok(if warning.is_empty() {
        Reply::ok()
    } else {
        Reply::warning(warning)
    })
}

pub(super) fn update(
    host: &Arc<HostInner>,
    _host_id: &str,
    payload: &[u8],
) -> Result<Reply, CtlError> {
    let cmd: UpdateComponentCommand = parse("component update", payload)?;
    check_host(host, &cmd.host_id)?;
    let Some(existing) = host.component(&cmd.component_id) else {
        return Err(CtlError::Rejected(format!(
            "component `{}` is not running on host `{}`",
            cmd.component_id, host.id
        )));
    };
    if existing.image_ref() == cmd.new_component_ref {
        return Ok(Reply::warning(format!(
            "component `{}` already runs `{}`; nothing to update",
            cmd.component_id, cmd.new_component_ref
        )));
    }
    ArtifactRef::parse(&cmd.new_component_ref).map_err(|e| CtlError::Rejected(e.to_string()))?;
    let task_host = host.clone();
    tokio::spawn(async move {
        let lock = task_host.component_lock(&cmd.component_id);
        let _guard = lock.lock().await;
        let annotations = cmd.annotations.clone();
        if let Err(error) = replace_image(
            &task_host,
            &cmd.component_id,
            &cmd.new_component_ref,
            annotations,
        )
        .await
        {
            publish_failed(
                &task_host,
                &cmd.component_id,
                &cmd.new_component_ref,
                0,
                BTreeMap::new(),
                error,
            )
            .await;
        }
    });
    Ok(Reply::ok())
}

async fn scale_task(host: Arc<HostInner>, cmd: ScaleComponentCommand) {
    let lock = host.component_lock(&cmd.component_id);
    let _guard = lock.lock().await;
    let annotations = cmd.annotations.clone().unwrap_or_default();
    let id = cmd.component_id.clone();
    if cmd.max_instances == 0 {
        stop_component(&host, &id, &cmd.component_ref, annotations).await;
        return;
    }
    let existing = host.component(&id);
    let result = match existing {
        Some(current) => 'rescale: {
            let limits = match rescale_limits(&cmd, &host.runtime) {
                Ok(limits) => limits,
                Err(error) => break 'rescale Err(error),
            };
            if let Err(denial) = crate::policy::check_component_start(
                &host,
                &id,
                current.image_ref(),
                cmd.max_instances,
                &annotations,
                current.claims().map(|c| &**c),
            )
            .await
            {
                let image_ref = current.image_ref().to_string();
                publish_failed(
                    &host,
                    &id,
                    &image_ref,
                    cmd.max_instances,
                    annotations,
                    denial.to_string(),
                )
                .await;
                return;
            }
            let next = Arc::new(current.rescaled(cmd.max_instances, annotations.clone(), limits));
            swap(&host, &id, next.clone(), Some(&cmd.config));
            let image_ref = next.image_ref().to_string();
            publish_scaled(
                &host,
                &id,
                &image_ref,
                cmd.max_instances,
                annotations.clone(),
                next.claims(),
            )
            .await;
            if cmd.allow_update && current.image_ref() != cmd.component_ref {
                replace_image(&host, &id, &cmd.component_ref, Some(annotations.clone())).await
            } else {
                Ok(())
            }
        }
        None => start_new(&host, &cmd, annotations.clone()).await,
    };
    if let Err(error) = result {
        publish_failed(
            &host,
            &id,
            &cmd.component_ref,
            cmd.max_instances,
            annotations,
            error,
        )
        .await;
    }
}

async fn start_new(
    host: &Arc<HostInner>,
    cmd: &ScaleComponentCommand,
    annotations: BTreeMap<String, String>,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let bytes = host
        .fetcher
        .fetch(&cmd.component_ref)
        .await
        .map_err(|e| e.to_string())?;
    let (claims, compiled) = admit_and_compile(host, &cmd.component_id, bytes).await?;
    crate::policy::check_component_start(
        host,
        &cmd.component_id,
        &cmd.component_ref,
        cmd.max_instances,
        &annotations,
        claims.as_deref(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let merged = host
        .view
        .read()
        .map(|v| v.component_config(&cmd.component_id, &cmd.config))
        .unwrap_or_default();
    let shared = Arc::new(RwLock::new(Arc::new(merged)));
    let running = RunningComponent::new(
        host.runtime.clone(),
        &compiled,
        ComponentParams {
            id: cmd.component_id.clone(),
            image_ref: cmd.component_ref.clone(),
            max_instances: cmd.max_instances,
            annotations: annotations.clone(),
            config: shared.clone(),
            max_execution_time: execution_limit(cmd),
            claims: claims.clone(),
            dataplane: host.dataplane.clone(),
            max_instance_reuse: instance_reuse(cmd)?,
        },
    )
    .map_err(|e| e.to_string())?;
    let running = Arc::new(running);
    if let Ok(mut components) = host.components.write() {
        components.insert(
            cmd.component_id.clone(),
            ComponentSlot {
                current: running.clone(),
                config_names: cmd.config.clone(),
                shared_config: shared,
            },
        );
    }
    host.dataplane.serve_component(&running).await;
    host.inventory_changed.notify_one();
    host.reconcile_http();
    ensure_spec(host, &cmd.component_id, &cmd.component_ref).await;
    if let Some(claims) = &claims {
        record_claims(host, claims).await;
    }
    tracing::info!(
        component_id = %cmd.component_id,
        image_ref = %cmd.component_ref,
        max_instances = cmd.max_instances,
        cache = ?compiled.cache,
        signed_by = claims.as_ref().map(|c| c.issuer.as_str()),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "component started"
    );
    publish_scaled(
        host,
        &cmd.component_id,
        &cmd.component_ref,
        cmd.max_instances,
        annotations,
        claims.as_ref(),
    )
    .await;
    Ok(())
}

/// Admits the artifact under this host's policy (claims verified when present,
/// `--require-signed`, `--allowed-issuers`), then compiles it: both off the
/// async threads, hashing and compiling being CPU work.
async fn admit_and_compile(
    host: &HostInner,
    component_id: &str,
    bytes: Vec<u8>,
) -> Result<(Option<VerifiedClaims>, CompiledArtifact), String> {
    let policy = AdmissionPolicy::from_config(&host.config);
    let runtime = host.runtime.clone();
    let id = component_id.to_string();
    tokio::task::spawn_blocking(move || {
        check_header(&bytes).map_err(|e| e.to_string())?;
        let claims = policy
            .admit_component(&id, &bytes, SystemTime::now())
            .map_err(|e| e.to_string())?;
        let compiled = compile(&runtime, &bytes).map_err(|e| e.to_string())?;
        Ok((claims.map(Arc::new), compiled))
    })
    .await
    .map_err(|e| format!("compilation task failed: {e}"))?
}

/// `component_limits.max_execution_time` in milliseconds, when it is a
/// number (anything else is ignored, as wasmCloud 1.x hosts do).
fn execution_limit(cmd: &ScaleComponentCommand) -> Option<Duration> {
    cmd.component_limits
        .as_ref()
        .and_then(|l| l.get("max_execution_time"))
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// The limits a rescale applies. A request without `component_limits`
/// keeps the running values (`wash scale` without `--max-instance-reuse`).
/// A request with them sets them whole: a limit it does not name goes back
/// to the host's default, so a manifest version that drops
/// `max_instance_reuse` brings the default back (wadm sends its in-place
/// replacements' limits whole, empty when the manifest sets none).
fn rescale_limits(cmd: &ScaleComponentCommand, runtime: &Runtime) -> Result<RescaleLimits, String> {
    if cmd.component_limits.is_none() {
        return Ok(RescaleLimits::default());
    }
    Ok(RescaleLimits {
        max_instance_reuse: Some(instance_reuse(cmd)?.unwrap_or(runtime.max_instance_reuse())),
        max_execution_time: Some(execution_limit(cmd).unwrap_or(runtime.max_execution_time())),
    })
}

/// `component_limits.max_instance_reuse`: calls one instance may answer
/// (`runtime::reuse`), if the request names it. A value that is not a
/// positive integer is refused.
fn instance_reuse(cmd: &ScaleComponentCommand) -> Result<Option<u32>, String> {
    let Some(value) = cmd
        .component_limits
        .as_ref()
        .and_then(|l| l.get("max_instance_reuse"))
    else {
        return Ok(None);
    };
    match value.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(format!(
            "component_limits.max_instance_reuse of `{}` must be a positive integer (calls one instance may answer; 1 gives every call a fresh instance), not `{value}`",
            cmd.component_id
        )),
    }
}

/// Swaps a new generation in. In-flight invocations finish on the old one.
fn swap(host: &HostInner, id: &str, next: Arc<RunningComponent>, config: Option<&Vec<String>>) {
    if let Ok(mut components) = host.components.write()
        && let Some(slot) = components.get_mut(id)
    {
        slot.current = next;
        if let Some(names) = config
            && !names.is_empty()
            && *names != slot.config_names
        {
            slot.config_names = names.clone();
        }
    }
    host.refresh_component_config(None);
    host.inventory_changed.notify_one();
}

/// Starts the new image next to the old one, switches traffic, then lets the
/// old generation drain.
async fn replace_image(
    host: &Arc<HostInner>,
    id: &str,
    new_ref: &str,
    annotations: Option<BTreeMap<String, String>>,
) -> Result<(), String> {
    let Some(current) = host.component(id) else {
        return Err(format!(
            "component `{id}` stopped before it could be updated"
        ));
    };
    let bytes = host
        .fetcher
        .fetch(new_ref)
        .await
        .map_err(|e| e.to_string())?;
    let (claims, compiled) = admit_and_compile(host, id, bytes).await?;
    let shared = host
        .components
        .read()
        .ok()
        .and_then(|c| c.get(id).map(|s| s.shared_config.clone()))
        .ok_or_else(|| format!("component `{id}` stopped before it could be updated"))?;
    let annotations = annotations.unwrap_or_else(|| current.annotations().clone());
    crate::policy::check_component_start(
        host,
        id,
        new_ref,
        current.max_instances(),
        &annotations,
        claims.as_deref(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let next = RunningComponent::new(
        host.runtime.clone(),
        &compiled,
        ComponentParams {
            id: id.to_string(),
            image_ref: new_ref.to_string(),
            max_instances: current.max_instances(),
            annotations: annotations.clone(),
            config: shared,
            max_execution_time: Some(current.max_execution_time()),
            claims: claims.clone(),
            dataplane: host.dataplane.clone(),
            max_instance_reuse: Some(current.max_instance_reuse()),
        },
    )
    .map_err(|e| e.to_string())?;
    let next = Arc::new(next);
    swap(host, id, next.clone(), None);
    // The new image may export other functions: resubscribe (the new
    // subscriptions exist before the old ones go, so no call is refused).
    host.dataplane.serve_component(&next).await;
    ensure_spec(host, id, new_ref).await;
    if let Some(claims) = &claims {
        record_claims(host, claims).await;
    }
    let max = current.max_instances();
    let drain_timeout = host.config.drain_timeout;
    tokio::spawn(async move {
        let left = current.drain(drain_timeout).await;
        if left > 0 {
            tracing::warn!(
                component_id = current.id(),
                left,
                "old generation did not drain in time"
            );
        }
    });
    tracing::info!(component_id = id, image_ref = new_ref, "component updated");
    publish_scaled(host, id, new_ref, max, annotations, claims.as_ref()).await;
    Ok(())
}

async fn stop_component(
    host: &Arc<HostInner>,
    id: &str,
    requested_ref: &str,
    annotations: BTreeMap<String, String>,
) {
    // Unsubscribe first, so the lattice routes new calls to other hosts.
    host.dataplane.unserve_component(id);
    let removed = host.components.write().ok().and_then(|mut c| c.remove(id));
    let image_ref = removed
        .as_ref()
        .map(|s| s.current.image_ref().to_string())
        .unwrap_or_else(|| requested_ref.to_string());
    let claims = removed.as_ref().and_then(|s| s.current.claims().cloned());
    if let Some(slot) = removed {
        host.inventory_changed.notify_one();
        let left = slot.current.drain(host.config.drain_timeout).await;
        if left > 0 {
            tracing::warn!(
                component_id = id,
                left,
                "stopped with invocations still running"
            );
        }
        tracing::info!(component_id = id, "component stopped");
    }
    publish_scaled(host, id, &image_ref, 0, annotations, claims.as_ref()).await;
}

/// Records `COMPONENT_{id}` in LATTICEDATA if absent, so links can hang off it.
async fn ensure_spec(host: &HostInner, id: &str, image_ref: &str) {
    let key = subject::component_spec_key(id);
    let spec = ComponentSpecification {
        url: image_ref.to_string(),
        links: Vec::new(),
    };
    let Ok(bytes) = serde_json::to_vec(&spec) else {
        return;
    };
    if let Ok(None) = host.data.lattice.get(key.as_str()).await {
        // `create` fails if another writer got there first, which is fine.
        let _ = host.data.lattice.create(key.as_str(), bytes.into()).await;
    }
}

async fn publish_scaled(
    host: &HostInner,
    id: &str,
    image_ref: &str,
    max_instances: u32,
    annotations: BTreeMap<String, String>,
    claims: Option<&VerifiedClaims>,
) {
    host.events
        .publish(LatticeEvent::ComponentScaled(ComponentScaled {
            annotations,
            claims: claims.map(|c| c.summary()),
            host_id: host.id.clone(),
            image_ref: image_ref.to_string(),
            max_instances,
            component_id: id.to_string(),
            public_key: claims.map(|c| c.subject.clone()),
        }))
        .await;
}

async fn publish_failed(
    host: &HostInner,
    id: &str,
    image_ref: &str,
    max_instances: u32,
    annotations: BTreeMap<String, String>,
    error: String,
) {
    tracing::warn!(component_id = id, image_ref, %error, "component scale failed");
    host.events
        .publish(LatticeEvent::ComponentScaleFailed(ComponentScaleFailed {
            annotations,
            claims: None,
            host_id: host.id.clone(),
            image_ref: image_ref.to_string(),
            max_instances,
            component_id: id.to_string(),
            public_key: None,
            error,
        }))
        .await;
}
