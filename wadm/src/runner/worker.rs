//! One lattice's reconcile loop: the I/O shell around the pure [`reconcile`].
//!
//! ```text
//!  wasmbus.evt.{lattice}.>  ─┐
//!  trellis.liveness.{l}.*   ─┼─▶ Input ─▶ LatticeState::apply ─┐
//!  host.get / link.get / config.get (fetch tasks) ─┘            │ every tick (and at once
//!  wadm_manifests changes ─▶ AppSet (stored apps + tombstones) ──┤  when apps change)
//!                                                               ▼
//!              reconcile(apps, observed, pending, now) ─▶ commands ─▶ ctl requests
//!                                                     └─▶ status ─▶ wadm.status.{l}.{app}
//! ```
//!
//! The observer's contract (see `observed`): before the first pass, and after every
//! reconnect, wadm asks every host for its inventory (`host.ping` then `host.get`) and
//! reads every link, so a restarted wadm acts on a complete view and issues nothing
//! spurious. Until then it publishes no status and sends no command.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use trellis_interfaces::client::CtlClient;
use trellis_interfaces::event::CloudEvent;
use trellis_interfaces::liveness::LivenessBeat;
use trellis_interfaces::subject;

use super::apps::AppSet;
use super::exec::{execute, fetch, ms_since};
use crate::command::Command;
use crate::observed::{ConfigValue, LatticeState, Observation};
use crate::pending::PendingCommands;
use crate::policy::FailurePolicy;
use crate::reconcile::config::desired_configs;
use crate::reconcile::reconcile;
use crate::server::{ManifestStore, Notifier, status_subject};
use crate::status::AppStatus;

/// A host silent this long is forgotten (its work was re-placed long before, after
/// the host timeout); wadm 0.21's reaper uses 70 s.
const FORGET_AFTER_MS: u64 = 30_000;
/// A failed fetch of the same thing is not retried sooner than this.
const FETCH_RETRY_MS: u64 = 1_000;
/// How often hosts are discovered again with `host.ping`, in case a host was missed.
const REDISCOVER_MS: u64 = 30_000;
/// Events trigger a pass at once, but not more often than this.
const EARLY_PASS_SPACING: Duration = Duration::from_millis(50);

/// Something a fetch task asks the control interface for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fetch {
    /// `host.ping`, then `host.get` of every host that answered.
    Discover,
    /// `host.get` of a host whose inventory wadm lacks or doubts.
    Inventory(String),
    /// `host.get` of a silent host without liveness beats (fenced if it fails).
    Probe(String),
    /// `link.get`.
    Links,
    /// `config.get.{name}`.
    Config(String),
}

/// What reaches the worker.
#[derive(Debug)]
pub(crate) enum Input {
    /// A lattice event.
    Event(Box<CloudEvent>),
    /// A liveness beat.
    Beat(LivenessBeat),
    /// A fetch finished.
    Fetched {
        what: Fetch,
        observations: Result<Vec<Observation>, String>,
    },
    /// A command's control request finished.
    Executed {
        command: Command,
        result: Result<(), String>,
    },
    /// The lattice's applications changed in the store.
    AppsChanged,
    /// A status was published on `wadm.status.{lattice}.{app}` (by this loop, or by
    /// the API on deploy/undeploy).
    StatusSeen { app: String, status: Box<AppStatus> },
}

/// Settings shared by every worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// When hosts are fenced and commands given up on.
    pub policy: FailurePolicy,
    /// Time between passes when nothing else triggers one.
    pub tick: Duration,
    /// Per-request timeout of control requests.
    pub ctl_timeout: Duration,
    /// How long `host.ping` collects answers.
    pub discover_timeout: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            policy: FailurePolicy::default(),
            tick: Duration::from_millis(250),
            ctl_timeout: Duration::from_secs(2),
            discover_timeout: Duration::from_millis(750),
        }
    }
}

/// A running worker; dropping it stops it.
pub(crate) struct WorkerHandle {
    pub(crate) tx: mpsc::Sender<Input>,
    task: JoinHandle<()>,
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Worker {
    lattice: String,
    nats: async_nats::Client,
    ctl: CtlClient,
    store: ManifestStore,
    notifier: Notifier,
    config: WorkerConfig,
    start: Instant,
    tx: mpsc::Sender<Input>,
    observed: LatticeState,
    pending: PendingCommands,
    apps: AppSet,
    apps_loaded: bool,
    /// Fetches in flight.
    fetching: BTreeSet<Fetch>,
    /// When each fetch last failed.
    failed_at: BTreeMap<Fetch, u64>,
    /// Whether the initial (or post-reconnect) discovery and link read are done.
    synced_hosts: bool,
    synced_links: bool,
    last_discover_ms: u64,
    /// Configs read since the last (re)connect.
    configs_read: BTreeSet<String>,
    published: BTreeMap<String, AppStatus>,
    /// Subscriptions forwarding into `tx`; aborted with the worker.
    feeds: Vec<JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        for feed in &self.feeds {
            feed.abort();
        }
    }
}

/// Starts the worker of `lattice`.
pub(crate) fn spawn(
    lattice: String,
    nats: async_nats::Client,
    store: ManifestStore,
    notifier: Notifier,
    config: WorkerConfig,
) -> WorkerHandle {
    let (tx, rx) = mpsc::channel(4096);
    let ctl = CtlClient::new(nats.clone(), lattice.clone())
        .with_timeout(config.ctl_timeout)
        .with_auction_timeout(config.discover_timeout)
        .with_request_headers(std::sync::Arc::new(super::exec::trace_headers));
    let start = Instant::now();
    let worker = Worker {
        lattice,
        nats,
        ctl,
        store,
        notifier,
        observed: LatticeState::new(1),
        pending: PendingCommands::new(),
        apps: AppSet::default(),
        apps_loaded: false,
        fetching: BTreeSet::new(),
        failed_at: BTreeMap::new(),
        synced_hosts: false,
        synced_links: false,
        last_discover_ms: 0,
        configs_read: BTreeSet::new(),
        published: BTreeMap::new(),
        feeds: Vec::new(),
        config,
        start,
        tx: tx.clone(),
    };
    let task = tokio::spawn(worker.run(rx));
    WorkerHandle { tx, task }
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        if let Err(e) = self.subscribe().await {
            warn!(lattice = %self.lattice, error = %e, "cannot subscribe to the lattice; retrying on the next start");
        }
        info!(lattice = %self.lattice, "reconciling lattice");
        let mut tick = tokio::time::interval(self.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_pass = Instant::now();
        loop {
            tokio::select! {
                input = rx.recv() => {
                    let Some(input) = input else { return };
                    let mut urgent = self.handle(input);
                    // Drain what else is queued before acting, so a burst of events
                    // costs one pass; and at most one early pass per
                    // EARLY_PASS_SPACING (the tick does the rest).
                    while let Ok(more) = rx.try_recv() {
                        urgent |= self.handle(more);
                    }
                    if urgent && last_pass.elapsed() >= EARLY_PASS_SPACING {
                        self.pass().await;
                        last_pass = Instant::now();
                    }
                }
                _ = tick.tick() => {
                    self.pass().await;
                    last_pass = Instant::now();
                }
            }
        }
    }

    async fn subscribe(&mut self) -> Result<(), async_nats::SubscribeError> {
        let events = self
            .nats
            .subscribe(subject::event_wildcard(&self.lattice))
            .await?;
        let beats = self
            .nats
            .subscribe(subject::liveness_wildcard(&self.lattice))
            .await?;
        let tx = self.tx.clone();
        self.feeds.push(tokio::spawn(async move {
            let mut events = events;
            while let Some(msg) = events.next().await {
                if let Ok(event) = serde_json::from_slice::<CloudEvent>(&msg.payload)
                    && tx.send(Input::Event(Box::new(event))).await.is_err()
                {
                    return;
                }
            }
        }));
        let tx = self.tx.clone();
        self.feeds.push(tokio::spawn(async move {
            let mut beats = beats;
            while let Some(msg) = beats.next().await {
                if let Ok(beat) = serde_json::from_slice::<LivenessBeat>(&msg.payload)
                    && tx.send(Input::Beat(beat)).await.is_err()
                {
                    return;
                }
            }
        }));
        // Statuses published by anyone: when the API overwrites ours (it publishes
        // `waiting` on every deploy), the next pass publishes the truth again.
        let statuses = self
            .nats
            .subscribe(status_subject(&self.lattice, "*"))
            .await?;
        let tx = self.tx.clone();
        let prefix = status_subject(&self.lattice, "");
        self.feeds.push(tokio::spawn(async move {
            let mut statuses = statuses;
            while let Some(msg) = statuses.next().await {
                let Some(app) = msg.subject.as_str().strip_prefix(prefix.as_str()) else {
                    continue;
                };
                if let Ok(status) = serde_json::from_slice::<AppStatus>(&msg.payload) {
                    let input = Input::StatusSeen {
                        app: app.to_string(),
                        status: Box::new(status),
                    };
                    if tx.send(input).await.is_err() {
                        return;
                    }
                }
            }
        }));
        // Subscribed before anything is fetched: the server handles these
        // SUBs before the fetches that follow on this connection, so nothing
        // between is missed (`flush` only writes them out sooner).
        let _ = self.nats.flush().await;
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        ms_since(self.start)
    }

    /// Applies one input; `true` when a pass should follow at once.
    fn handle(&mut self, input: Input) -> bool {
        let now = self.now_ms();
        match input {
            Input::Event(event) => {
                if !self.observed.observer_connected {
                    return false;
                }
                match Observation::from_cloud_event(&event, now) {
                    // Something changed in the lattice: act on it without waiting
                    // for the tick (a scaled component may complete a deploy).
                    Ok(observation) => {
                        self.observed.apply(observation);
                        true
                    }
                    Err(e) => {
                        debug!(error = %e, "undecodable lattice event ignored");
                        false
                    }
                }
            }
            Input::Beat(beat) => {
                if self.observed.observer_connected {
                    self.observed
                        .apply(Observation::Liveness { beat, at_ms: now });
                }
                false
            }
            Input::Fetched { what, observations } => {
                self.fetching.remove(&what);
                match observations {
                    Ok(observations) => {
                        for o in observations {
                            self.observed.apply(o);
                        }
                        self.failed_at.remove(&what);
                        match &what {
                            Fetch::Discover => self.synced_hosts = true,
                            Fetch::Links => self.synced_links = true,
                            Fetch::Config(name) => {
                                self.configs_read.insert(name.clone());
                            }
                            Fetch::Inventory(_) | Fetch::Probe(_) => {}
                        }
                    }
                    Err(e) => {
                        // No host at all is a valid (empty) answer to a discovery and
                        // to `link.get`: there is nothing to know yet.
                        if matches!(what, Fetch::Discover) {
                            self.synced_hosts = true;
                        }
                        if matches!(what, Fetch::Links) && self.observed.hosts.is_empty() {
                            self.synced_links = true;
                        }
                        debug!(lattice = %self.lattice, ?what, error = %e, "fetch failed");
                        self.failed_at.insert(what, now);
                    }
                }
                false
            }
            Input::Executed { command, result } => {
                match result {
                    Ok(()) => {
                        if let Command::PutConfig(c) = &command {
                            // Known exactly: what was just stored.
                            self.observed.apply(Observation::Config {
                                name: c.name.clone(),
                                values: Some(c.values.clone()),
                            });
                        }
                        if let Command::DeleteConfig(c) = &command {
                            self.observed.apply(Observation::Config {
                                name: c.name.clone(),
                                values: None,
                            });
                        }
                    }
                    Err(e) => {
                        warn!(lattice = %self.lattice, %command, error = %e, "command failed; it will be retried");
                        self.pending.forget(&command);
                    }
                }
                false
            }
            Input::AppsChanged => {
                self.apps_loaded = false;
                true
            }
            Input::StatusSeen { app, status } => {
                if self.published.get(&app) == Some(&*status) {
                    return false;
                }
                self.published.remove(&app);
                true
            }
        }
    }

    /// Notices wadm's own connection going down or coming back.
    fn check_connection(&mut self, now: u64) {
        let connected = self.nats.connection_state() == State::Connected;
        if connected == self.observed.observer_connected {
            return;
        }
        if connected {
            info!(lattice = %self.lattice, "NATS connection back; re-reading the lattice before acting");
            self.observed
                .apply(Observation::ObserverConnected { at_ms: now });
            self.synced_hosts = false;
            self.synced_links = false;
            self.configs_read.clear();
            self.failed_at.clear();
        } else {
            warn!(lattice = %self.lattice, "NATS connection lost; not acting until it is back");
            self.observed
                .apply(Observation::ObserverDisconnected { at_ms: now });
        }
    }

    fn want(&mut self, what: Fetch, now: u64) {
        if self.fetching.contains(&what)
            || self
                .failed_at
                .get(&what)
                .is_some_and(|at| now.saturating_sub(*at) < FETCH_RETRY_MS)
        {
            return;
        }
        self.fetching.insert(what.clone());
        tokio::spawn(fetch(self.ctl.clone(), what, self.start, self.tx.clone()));
    }

    /// Asks for everything the observed state lacks.
    fn observe(&mut self, now: u64) {
        if !self.synced_hosts
            || now.saturating_sub(self.last_discover_ms) > REDISCOVER_MS
                && !self.fetching.contains(&Fetch::Discover)
        {
            if !self.fetching.contains(&Fetch::Discover) {
                self.last_discover_ms = now;
            }
            self.want(Fetch::Discover, now);
        }
        if !self.synced_links {
            self.want(Fetch::Links, now);
        }
        for host_id in self.observed.silent_hosts(now, FORGET_AFTER_MS) {
            self.observed.apply(Observation::HostGone { host_id });
        }
        let inventories: Vec<String> = self
            .observed
            .hosts_needing_inventory()
            .into_iter()
            .map(str::to_string)
            .collect();
        for host_id in inventories {
            self.want(Fetch::Inventory(host_id), now);
        }
        let probes: Vec<String> = self
            .observed
            .hosts_to_probe(now, &self.config.policy)
            .into_iter()
            .map(str::to_string)
            .collect();
        for host_id in probes {
            self.want(Fetch::Probe(host_id), now);
        }
        // Configs: those a host said changed, and those the applications use that wadm
        // has not read since it (re)connected.
        let mut names: BTreeSet<String> = self
            .observed
            .configs
            .iter()
            .filter(|(_, v)| matches!(v, ConfigValue::Unknown))
            .map(|(k, _)| k.clone())
            .collect();
        for app in self.apps.all() {
            names.extend(
                desired_configs(&app.manifest)
                    .into_keys()
                    .filter(|n| !self.configs_read.contains(n)),
            );
        }
        for name in names {
            self.want(Fetch::Config(name), now);
        }
    }

    async fn reload_apps(&mut self) {
        match self.store.list(&self.lattice).await {
            Ok(stored) => {
                self.apps.replace(&stored);
                self.apps_loaded = true;
            }
            Err(e) => {
                warn!(lattice = %self.lattice, error = %e, "cannot read the applications; keeping what was known")
            }
        }
    }

    /// One pass: observe, then (when the view is complete) reconcile, send, publish.
    async fn pass(&mut self) {
        let now = self.now_ms();
        self.check_connection(now);
        if !self.apps_loaded {
            self.reload_apps().await;
        }
        if self.observed.observer_connected {
            self.observe(now);
        }
        self.pending.settle(&self.observed);
        self.pending.expire(now, &self.config.policy);
        if !(self.synced_hosts && self.synced_links) {
            return;
        }
        let apps = self.apps.all();
        let rec = reconcile(
            &apps,
            &self.observed,
            &self.pending,
            now,
            &self.config.policy,
        );
        self.pending.record(&rec.commands, now);
        for command in rec.commands {
            info!(lattice = %self.lattice, %command, "sending");
            tokio::spawn(execute(self.ctl.clone(), command, self.tx.clone()));
        }
        self.publish(&rec.status).await;
        self.apps.settle(&rec.status);
    }

    /// Publishes the statuses that changed. Nothing is published while disconnected
    /// (it could not be stored, and would only be buffered and land late); a publish
    /// that fails may still land later, so it is forgotten and sent again on the next
    /// pass, whatever the status is then.
    async fn publish(&mut self, statuses: &BTreeMap<String, AppStatus>) {
        if !self.observed.observer_connected {
            return;
        }
        for (name, status) in statuses {
            if self.apps.is_tombstone(name) || self.published.get(name) == Some(status) {
                continue;
            }
            match self
                .notifier
                .publish_status(&self.lattice, name, status)
                .await
            {
                Ok(()) => {
                    self.published.insert(name.clone(), status.clone());
                }
                Err(e) => {
                    warn!(lattice = %self.lattice, app = %name, error = %e, "cannot publish status; retrying on the next pass");
                    self.published.remove(name);
                }
            }
        }
    }
}
