//! The one task per provider: fetch, spawn, confirm, supervise, restart with
//! backoff, deliver links and config, stop. It owns the `Child` and always
//! `wait()`s it, so a provider never lingers as a zombie.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use trellis_interfaces::claims::{CapabilityProvider, Claims, StoredClaims, StoredProviderClaims};
use trellis_interfaces::event::{
    LatticeEvent, ProviderStartFailed, ProviderStarted, ProviderStopped,
};
use trellis_interfaces::link::ComponentSpecification;
use trellis_interfaces::provider::{
    HostData, InterfaceLinkDefinition, ProviderSubjects, ShutdownRequest,
};
use trellis_interfaces::subject;

use super::fetch::{self, ProviderArtifact};
use super::links::{self, LinkKey};
use super::process::{self, ProviderProcess};
use super::{ProviderRequest, ProviderSettings};
use crate::host::{HostInner, ProviderSlot};

/// How the control side reaches a provider task.
pub(super) struct Handles {
    pub serial: u64,
    pub cancel: CancellationToken,
    pub lattice_changed: Arc<Notify>,
}

/// How one process run ended.
enum Outcome {
    /// Stopped on request.
    Stopped,
    /// Could not start, or exited within the startup grace.
    FailedToStart(String),
    /// Ran, then exited on its own.
    Exited { reason: String, uptime: Duration },
}

/// Restart delays: initial, doubling to the maximum; a run longer than the
/// reset threshold starts over at the initial delay.
#[derive(Debug)]
pub(super) struct RestartBackoff {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    next: Duration,
}

impl RestartBackoff {
    pub fn new(settings: &ProviderSettings) -> Self {
        Self {
            initial: settings.restart_initial,
            max: settings.restart_max,
            reset_after: settings.restart_reset_after,
            next: settings.restart_initial,
        }
    }

    /// The delay before the next start, after a run of `uptime`.
    pub fn next_delay(&mut self, uptime: Duration) -> Duration {
        if uptime >= self.reset_after {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }
}

/// The supervisor task of one provider.
pub(super) async fn run(host: Arc<HostInner>, request: ProviderRequest, handles: Handles) {
    let id = request.provider_id.clone();
    let fetched = tokio::select! {
        r = fetch::resolve(&host, &id, &request.image_ref) => r,
        () = handles.cancel.cancelled() => {
            publish_stopped(&host, &request, "stop").await;
            return;
        }
    };
    let artifact = match fetched {
        Ok(a) => a,
        Err(e) => {
            host.provider_sup.forget(&id, handles.serial);
            publish_start_failed(&host, &request, e.to_string()).await;
            return;
        }
    };
    if let Err(denial) = crate::policy::check_provider_start(
        &host,
        &id,
        &request.image_ref,
        &request.annotations,
        artifact.claims.as_ref(),
    )
    .await
    {
        host.provider_sup.forget(&id, handles.serial);
        publish_start_failed(&host, &request, denial.to_string()).await;
        return;
    }
    record(&host, &request, artifact.claims.as_ref()).await;
    let settings = host.provider_sup.settings().clone();
    let mut backoff = RestartBackoff::new(&settings);
    let mut ever_started = false;
    loop {
        let outcome = run_once(&host, &request, &artifact, &handles, &settings).await;
        let (uptime, reason) = match outcome {
            Outcome::Stopped => {
                publish_stopped(&host, &request, "stop").await;
                return;
            }
            Outcome::FailedToStart(reason) => {
                publish_start_failed(&host, &request, reason.clone()).await;
                if !ever_started {
                    host.provider_sup.forget(&id, handles.serial);
                    return;
                }
                (Duration::ZERO, reason)
            }
            Outcome::Exited { reason, uptime } => {
                ever_started = true;
                publish_stopped(&host, &request, &reason).await;
                (uptime, reason)
            }
        };
        let delay = backoff.next_delay(uptime);
        tracing::warn!(provider_id = %id, %reason, delay_ms = delay.as_millis() as u64, "provider process ended; restarting");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = handles.cancel.cancelled() => {
                publish_stopped(&host, &request, "stop").await;
                return;
            }
        }
    }
}

/// What was last delivered to the running process.
struct Delivered {
    links: BTreeMap<LinkKey, InterfaceLinkDefinition>,
    config: HashMap<String, String>,
    xkey_public: String,
}

/// Spawns the provider once and supervises it until it ends.
async fn run_once(
    host: &Arc<HostInner>,
    request: &ProviderRequest,
    artifact: &ProviderArtifact,
    handles: &Handles,
    settings: &ProviderSettings,
) -> Outcome {
    let id = &request.provider_id;
    let xkey = nkeys::XKey::new();
    let (host_data, mut delivered) = match host_data(host, request, &xkey) {
        Ok(v) => v,
        Err(reason) => return Outcome::FailedToStart(reason),
    };
    // What the process surely has: what its HostData carries.
    let (initial_links, initial_config) = (delivered.links.clone(), delivered.config.clone());
    let stdin = match host_data.to_stdin() {
        Ok(b) => b,
        Err(e) => {
            return Outcome::FailedToStart(format!("cannot encode host data: {e}"));
        }
    };
    let mut proc = match process::spawn(&artifact.exec, id, &stdin).await {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("cannot execute {}: {e}", artifact.exec.display());
            return Outcome::FailedToStart(reason);
        }
    };
    tracing::info!(provider_id = %id, pid = proc.pid, instance_id = %host_data.instance_id, "provider process spawned");
    let health = tokio::spawn(super::health::run(
        host.clone(),
        id.clone(),
        settings.clone(),
    ));
    let _health = AbortOnDrop(health);
    let started = Instant::now();
    let grace = tokio::time::sleep(settings.startup_grace);
    tokio::pin!(grace);
    let mut confirmed = false;
    // Links and config published between the spawn and the process's
    // subscriptions are lost (core NATS): once it listens, everything since
    // its HostData is delivered again (the SDK ignores what it already has).
    let health_subject = ProviderSubjects::new(&host.config.lattice).health(id);
    let listening = super::health::listening(&host.nats, &health_subject);
    tokio::pin!(listening);
    let mut listens = false;
    loop {
        tokio::select! {
            () = &mut listening, if !listens => {
                listens = true;
                delivered.links = initial_links.clone();
                delivered.config = initial_config.clone();
                deliver(host, request, &mut delivered).await;
            }
            status = proc.child.wait() => {
                // Reaped. Take down anything it left in its group.
                process::signal_group(proc.pid, Signal::KILL);
                let how = match status {
                    Ok(s) => process::describe_status(s),
                    Err(e) => format!("cannot be waited for: {e}"),
                };
                let tail = proc.stderr_tail().await;
                if !confirmed {
                    let how = format!(
                        "provider process {how} within {} ms of starting",
                        settings.startup_grace.as_millis()
                    );
                    return Outcome::FailedToStart(process::with_tail(how, &tail));
                }
                let reason = process::with_tail(how, &tail);
                leave_inventory(host, id);
                return Outcome::Exited { reason, uptime: started.elapsed() };
            }
            () = &mut grace, if !confirmed => {
                confirmed = true;
                join_inventory(host, request, artifact.claims.as_ref());
                publish_started(host, request, artifact.claims.as_ref(), &host_data.instance_id).await;
            }
            () = handles.cancel.cancelled() => {
                terminate(host, id, &mut proc, settings).await;
                if confirmed {
                    leave_inventory(host, id);
                }
                return Outcome::Stopped;
            }
            () = handles.lattice_changed.notified() => {
                deliver(host, request, &mut delivered).await;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `HostData` for a new process, and the links and config it carries.
fn host_data(
    host: &HostInner,
    request: &ProviderRequest,
    xkey: &nkeys::XKey,
) -> Result<(HostData, Delivered), String> {
    let view = host
        .view
        .read()
        .map_err(|_| "the lattice view is unavailable".to_string())?;
    let links = links::provider_links(&view, &request.provider_id);
    let config = links::provider_config(&view, &request.config_names);
    drop(view);
    let seed = xkey
        .seed()
        .map_err(|e| format!("cannot encode the provider xkey: {e}"))?;
    let mut data = HostData {
        host_id: host.id.clone(),
        lattice_rpc_prefix: host.config.lattice.clone(),
        link_name: "default".into(),
        // No NATS credentials: see docs/providers.md ("Credentials").
        lattice_rpc_user_jwt: String::new(),
        lattice_rpc_user_seed: String::new(),
        lattice_rpc_url: host.config.nats_url.clone(),
        provider_key: request.provider_id.clone(),
        instance_id: uuid::Uuid::new_v4().to_string(),
        link_definitions: links.values().cloned().collect(),
        config: config.clone(),
        host_xkey_public_key: host.provider_sup.host_xkey_public(),
        provider_xkey_private_key: seed,
        default_rpc_timeout_ms: u64::try_from(host.config.rpc_timeout.as_millis()).ok(),
        ..Default::default()
    };
    // The host's own log and export settings, as wasmCloud hosts pass them.
    let (logs, otel) = crate::observability::provider_settings();
    data.structured_logging = logs.structured;
    data.log_level = Some(logs.level);
    data.otel_config = (&otel).into();
    Ok((
        data,
        Delivered {
            links,
            config,
            xkey_public: xkey.public_key(),
        },
    ))
}

/// Publishes link and config changes since the last delivery.
async fn deliver(host: &HostInner, request: &ProviderRequest, delivered: &mut Delivered) {
    let id = &request.provider_id;
    let (links, config) = match host.view.read() {
        Ok(view) => (
            links::provider_links(&view, id),
            links::provider_config(&view, &request.config_names),
        ),
        Err(_) => return,
    };
    let subjects = ProviderSubjects::new(&host.config.lattice);
    let changes = links::diff(&delivered.links, &links);
    for def in &changes.put {
        let Ok(body) = serde_json::to_vec(def) else {
            continue;
        };
        // The xkey subject is what wasmCloud 1.x providers listen on; the id
        // subject serves 1.0-era providers and observers.
        for key in [delivered.xkey_public.as_str(), id.as_str()] {
            publish(host, subjects.link_put(key), body.clone()).await;
        }
        tracing::info!(provider_id = %id, source_id = %def.source_id, target = %def.target, name = %def.name, "link delivered to provider");
    }
    for def in &changes.delete {
        let Ok(body) = serde_json::to_vec(def) else {
            continue;
        };
        publish(host, subjects.link_del(id), body).await;
        tracing::info!(provider_id = %id, source_id = %def.source_id, target = %def.target, name = %def.name, "link deletion delivered to provider");
    }
    if config != delivered.config
        && let Ok(body) = serde_json::to_vec(&config)
    {
        publish(host, subjects.config_update(id), body).await;
        tracing::info!(provider_id = %id, "config update delivered to provider");
    }
    delivered.links = links;
    delivered.config = config;
}

async fn publish(host: &HostInner, subject: String, body: Vec<u8>) {
    if let Err(error) = host.nats.publish(subject.clone(), body.into()).await {
        tracing::warn!(%subject, %error, "cannot publish to provider");
    }
}

/// Shutdown request, voluntary exit, SIGTERM to the group, SIGKILL; always
/// ends with the process reaped.
async fn terminate(
    host: &HostInner,
    id: &str,
    proc: &mut ProviderProcess,
    settings: &ProviderSettings,
) {
    let subject = ProviderSubjects::new(&host.config.lattice).shutdown(id);
    let body = serde_json::to_vec(&ShutdownRequest {
        host_id: host.id.clone(),
    })
    .unwrap_or_default();
    let asked = tokio::time::timeout(
        settings.shutdown_delay,
        host.nats.request(subject, body.into()),
    )
    .await;
    if !matches!(asked, Ok(Ok(_))) {
        tracing::debug!(provider_id = id, "no reply to the shutdown request");
    }
    let steps = [
        (None, settings.shutdown_delay),
        (Some(Signal::TERM), settings.term_grace),
    ];
    for (signal, wait) in steps {
        if let Some(signal) = signal {
            proc.signal_group(signal);
        }
        if let Ok(status) = tokio::time::timeout(wait, proc.child.wait()).await {
            process::signal_group(proc.pid, Signal::KILL);
            if let Ok(status) = status {
                tracing::info!(provider_id = id, status = %process::describe_status(status), "provider process ended");
            }
            return;
        }
    }
    tracing::warn!(provider_id = id, "provider ignored SIGTERM; killing it");
    proc.signal_group(Signal::KILL);
    let _ = proc.child.start_kill();
    let _ = proc.child.wait().await;
}

fn join_inventory(
    host: &HostInner,
    request: &ProviderRequest,
    claims: Option<&Claims<CapabilityProvider>>,
) {
    let metadata = claims.and_then(|c| c.metadata.as_ref());
    if let Ok(mut providers) = host.providers.write() {
        providers.insert(
            request.provider_id.clone(),
            ProviderSlot {
                image_ref: request.image_ref.clone(),
                annotations: request.annotations.clone(),
                config_names: request.config_names.clone(),
                name: metadata.and_then(|m| m.name.clone()),
                revision: metadata.and_then(|m| m.rev).unwrap_or(0),
            },
        );
    }
    host.inventory_changed.notify_one();
}

fn leave_inventory(host: &HostInner, id: &str) {
    if let Ok(mut providers) = host.providers.write() {
        providers.remove(id);
    }
    host.inventory_changed.notify_one();
}

/// Writes `COMPONENT_{id}` (so links can hang off the provider) if absent,
/// and `CLAIMS_{subject}` if signed, as wasmCloud does on provider start.
async fn record(
    host: &HostInner,
    request: &ProviderRequest,
    claims: Option<&Claims<CapabilityProvider>>,
) {
    let key = subject::component_spec_key(&request.provider_id);
    let spec = ComponentSpecification {
        url: request.image_ref.clone(),
        links: Vec::new(),
    };
    if let (Ok(None), Ok(bytes)) = (
        host.data.lattice.get(key.as_str()).await,
        serde_json::to_vec(&spec),
    ) {
        // `create` fails if another writer got there first, which is fine.
        let _ = host.data.lattice.create(key.as_str(), bytes.into()).await;
    }
    let Some(claims) = claims else {
        return;
    };
    let stored = StoredClaims::Provider(StoredProviderClaims::from(claims));
    let key = subject::claims_key(&claims.subject);
    if let Ok(bytes) = serde_json::to_vec(&stored)
        && let Err(error) = host.data.lattice.put(key.as_str(), bytes.into()).await
    {
        tracing::warn!(%key, %error, "cannot store provider claims");
    }
}

async fn publish_started(
    host: &HostInner,
    request: &ProviderRequest,
    claims: Option<&Claims<CapabilityProvider>>,
    instance_id: &str,
) {
    tracing::info!(provider_id = %request.provider_id, provider_ref = %request.image_ref, instance_id, "provider started");
    host.events
        .publish(LatticeEvent::ProviderStarted(ProviderStarted {
            host_id: host.id.clone(),
            image_ref: request.image_ref.clone(),
            provider_id: request.provider_id.clone(),
            annotations: request.annotations.clone(),
            claims: claims.map(Claims::<CapabilityProvider>::summary),
            instance_id: Some(request.provider_id.clone()),
            public_key: Some(request.provider_id.clone()),
            link_name: Some("default".into()),
        }))
        .await;
}

async fn publish_start_failed(host: &HostInner, request: &ProviderRequest, error: String) {
    tracing::warn!(provider_id = %request.provider_id, provider_ref = %request.image_ref, %error, "provider start failed");
    host.events
        .publish(LatticeEvent::ProviderStartFailed(ProviderStartFailed {
            provider_ref: request.image_ref.clone(),
            provider_id: request.provider_id.clone(),
            host_id: host.id.clone(),
            error,
            link_name: Some("default".into()),
        }))
        .await;
}

async fn publish_stopped(host: &HostInner, request: &ProviderRequest, reason: &str) {
    tracing::info!(provider_id = %request.provider_id, reason, "provider stopped");
    host.events
        .publish(LatticeEvent::ProviderStopped(ProviderStopped {
            host_id: host.id.clone(),
            provider_id: request.provider_id.clone(),
            annotations: request.annotations.clone(),
            reason: reason.to_string(),
            instance_id: Some(request.provider_id.clone()),
            public_key: Some(request.provider_id.clone()),
            link_name: Some("default".into()),
        }))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_long_run() {
        let mut b = RestartBackoff::new(&ProviderSettings::default());
        let secs: Vec<u64> = (0..8)
            .map(|_| b.next_delay(Duration::ZERO).as_secs())
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.next_delay(Duration::from_secs(301)).as_secs(), 1);
        assert_eq!(b.next_delay(Duration::from_secs(10)).as_secs(), 2);
    }
}
