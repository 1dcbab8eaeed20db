//! External capability providers: native processes the host fetches, starts,
//! watches and stops (PROTOCOL.md §4, docs/providers.md).
//!
//! [`fetch`] turns a reference (`file://` binary or provider archive, OCI
//! provider archive) into a verified executable in the cache; [`process`]
//! spawns it with `HostData` on stdin, forwards its output to the log and
//! terminates its process group; [`health`] asks it `….health` on an
//! interval and publishes transitions; [`links`] computes the link
//! definitions and config a provider should have and what changed;
//! [`supervise`] is the one task per provider that owns the child process,
//! restarts it with backoff and delivers links and config. This file holds
//! the settings and the [`ProviderSupervisor`] registry the control handlers
//! and the host call into.

mod fetch;
mod health;
mod links;
mod process;
mod supervise;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::host::HostInner;

/// First health request after a provider process starts. wasmCloud's value:
/// long enough for a provider to connect to NATS and subscribe.
pub const DEFAULT_HEALTH_INITIAL_DELAY: Duration = Duration::from_secs(5);
/// Interval between health requests, as wasmCloud (30 s).
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
/// How long a health request waits for its reply before the provider counts
/// as unhealthy ("no reply within …"). 5 s: a provider busy for longer than
/// that is not answering its callers either.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the shutdown request waits for a reply, and then how long the
/// process gets to exit on its own before SIGTERM. wasmCloud's CLI default
/// (300 ms): a provider's `shutdown()` closes connections, it does not drain.
pub const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::from_millis(300);
/// How long a process must stay up to count as started: an exit within this
/// window is `provider_start_failed` (bad config, missing library, wrong
/// NATS URL), not a crash to restart.
pub const DEFAULT_STARTUP_GRACE: Duration = Duration::from_secs(2);
/// Between SIGTERM and SIGKILL when stopping a provider.
pub const DEFAULT_TERM_GRACE: Duration = Duration::from_secs(2);
/// First restart delay after an unexpected exit; doubles up to
/// [`DEFAULT_RESTART_MAX`].
pub const DEFAULT_RESTART_INITIAL: Duration = Duration::from_secs(1);
/// Longest restart delay: a provider that keeps crashing is retried once a
/// minute, cheap for the host and quick enough once its dependency is back.
pub const DEFAULT_RESTART_MAX: Duration = Duration::from_secs(60);
/// A process that ran this long before exiting restarts after the initial
/// delay again (the backoff is reset).
pub const DEFAULT_RESTART_RESET_AFTER: Duration = Duration::from_secs(300);

/// Timing of provider supervision; every value has a `--provider-*` flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSettings {
    /// Delay before the first health request.
    pub health_initial_delay: Duration,
    /// Interval between health requests.
    pub health_interval: Duration,
    /// Wait for a health reply.
    pub health_timeout: Duration,
    /// Shutdown request timeout, and the wait for a voluntary exit after it.
    pub shutdown_delay: Duration,
    /// Minimum uptime for a start to count as successful.
    pub startup_grace: Duration,
    /// Between SIGTERM and SIGKILL.
    pub term_grace: Duration,
    /// First restart delay.
    pub restart_initial: Duration,
    /// Longest restart delay.
    pub restart_max: Duration,
    /// Uptime after which the restart delay starts over.
    pub restart_reset_after: Duration,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            health_initial_delay: DEFAULT_HEALTH_INITIAL_DELAY,
            health_interval: DEFAULT_HEALTH_INTERVAL,
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            shutdown_delay: DEFAULT_SHUTDOWN_DELAY,
            startup_grace: DEFAULT_STARTUP_GRACE,
            term_grace: DEFAULT_TERM_GRACE,
            restart_initial: DEFAULT_RESTART_INITIAL,
            restart_max: DEFAULT_RESTART_MAX,
            restart_reset_after: DEFAULT_RESTART_RESET_AFTER,
        }
    }
}

/// What `provider.start` asked for.
#[derive(Clone, Debug)]
pub(crate) struct ProviderRequest {
    pub provider_id: String,
    pub image_ref: String,
    pub annotations: BTreeMap<String, String>,
    pub config_names: Vec<String>,
}

/// One supervised provider: its task and the handles to reach it.
struct Managed {
    serial: u64,
    cancel: CancellationToken,
    lattice_changed: Arc<Notify>,
    task: JoinHandle<()>,
}

/// The external providers of one host, by provider id: starting, running or
/// waiting to restart. A provider is in the host's inventory only while its
/// process runs; it is here from `provider.start` until it is stopped or its
/// first start failed.
pub(crate) struct ProviderSupervisor {
    settings: ProviderSettings,
    host_xkey: nkeys::XKey,
    managed: Mutex<HashMap<String, Managed>>,
    serials: AtomicU64,
}

impl ProviderSupervisor {
    pub fn new(settings: ProviderSettings) -> Self {
        Self {
            settings,
            host_xkey: nkeys::XKey::new(),
            managed: Mutex::new(HashMap::new()),
            serials: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Managed>> {
        match self.managed.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether `provider_id` is supervised here (starting, running or
    /// waiting to restart).
    pub fn contains(&self, provider_id: &str) -> bool {
        self.lock().contains_key(provider_id)
    }

    /// Whether this host can run `provider_ref` as a process: OCI references,
    /// and `file://` when file loading is allowed.
    pub fn can_run(host: &HostInner, provider_ref: &str) -> bool {
        match crate::artifact::ArtifactRef::parse(provider_ref) {
            Ok(crate::artifact::ArtifactRef::File(_)) => host.config.allow_file_load,
            Ok(crate::artifact::ArtifactRef::Oci(_)) => true,
            _ => false,
        }
    }

    /// Registers `request` and starts its supervisor task, which fetches,
    /// spawns and reports through events. `false` if the id is taken.
    pub fn start(&self, host: &Arc<HostInner>, request: ProviderRequest) -> bool {
        let mut managed = self.lock();
        if managed.contains_key(&request.provider_id) {
            return false;
        }
        let serial = self.serials.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let lattice_changed = Arc::new(Notify::new());
        let id = request.provider_id.clone();
        let task = tokio::spawn(supervise::run(
            host.clone(),
            request,
            supervise::Handles {
                serial,
                cancel: cancel.clone(),
                lattice_changed: lattice_changed.clone(),
            },
        ));
        managed.insert(
            id,
            Managed {
                serial,
                cancel,
                lattice_changed,
                task,
            },
        );
        true
    }

    /// Forgets `provider_id` if its entry is still the one with `serial`
    /// (called by a supervisor task that ends on its own).
    fn forget(&self, provider_id: &str, serial: u64) {
        let mut managed = self.lock();
        if managed.get(provider_id).is_some_and(|m| m.serial == serial) {
            managed.remove(provider_id);
        }
    }

    /// Stops `provider_id`: shutdown request, SIGTERM, SIGKILL, then
    /// `provider_stopped`. Returns once the process is gone; `false` if it is
    /// not supervised here.
    pub async fn stop(&self, provider_id: &str) -> bool {
        let Some(m) = self.lock().remove(provider_id) else {
            return false;
        };
        self.finish(provider_id, m).await;
        true
    }

    /// Stops every provider (host shutdown), concurrently.
    pub async fn stop_all(&self) {
        let all: Vec<(String, Managed)> = self.lock().drain().collect();
        futures::future::join_all(all.into_iter().map(|(id, m)| async move {
            self.finish(&id, m).await;
        }))
        .await;
    }

    async fn finish(&self, provider_id: &str, m: Managed) {
        m.cancel.cancel();
        // The task's own stop sequence is bounded by the shutdown delay
        // (twice) and the SIGTERM grace; the margin covers event publishing.
        let bound = self.settings.shutdown_delay * 2 + self.settings.term_grace * 2;
        let abort = m.task.abort_handle();
        if tokio::time::timeout(bound, m.task).await.is_err() {
            tracing::warn!(
                provider_id,
                "provider supervisor did not finish its stop sequence in time; aborted (the process is killed on drop)"
            );
            abort.abort();
        }
    }

    /// Tells every provider task that links or config may have changed; each
    /// recomputes its own and delivers the difference.
    pub fn lattice_changed(&self) {
        for m in self.lock().values() {
            m.lattice_changed.notify_one();
        }
    }

    pub(crate) fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    pub(crate) fn host_xkey_public(&self) -> String {
        self.host_xkey.public_key()
    }
}
