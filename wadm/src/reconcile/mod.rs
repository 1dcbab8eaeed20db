//! The reconciler: a pure function of the deployed applications, the observed lattice,
//! the commands in flight and the time, returning the commands to send and a status
//! per application. It keeps no state between calls.
//!
//! `plan.rs` holds the placement arithmetic, `workload.rs` the component and provider
//! scalers (spread and daemon, with rolling upgrades), `link.rs` the link scaler,
//! `config.rs` named configuration, `cleanup.rs` undeploy and removal of what older
//! versions left behind, `app.rs` the assembly of one application.

mod app;
mod cleanup;
pub mod config;
mod ctx;
mod link;
pub mod plan;
mod workload;

use std::collections::{BTreeMap, HashSet};

pub(crate) use ctx::Ctx;

use trellis_interfaces::manifest::Manifest;

use crate::command::Command;
use crate::observed::LatticeState;
use crate::pending::PendingCommands;
use crate::policy::FailurePolicy;
use crate::status::{AppStatus, StatusInfo, StatusType};

/// One application as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployedApp {
    /// The version to run, or (when not `deployed`) the last version that ran.
    pub manifest: Manifest,
    /// Whether the application is deployed; `false` removes everything it started.
    pub deployed: bool,
    /// Earlier versions whose links and configs may still be in the lattice; those the
    /// current version no longer has are deleted. (Components and providers need no
    /// history: they carry their application and scaler in their annotations.)
    pub previous: Vec<Manifest>,
}

impl DeployedApp {
    /// A deployed application without history.
    #[must_use]
    pub fn deployed(manifest: Manifest) -> Self {
        Self {
            manifest,
            deployed: true,
            previous: Vec::new(),
        }
    }

    /// An undeployed application (its last manifest, to clean up after).
    #[must_use]
    pub fn undeployed(manifest: Manifest) -> Self {
        Self {
            manifest,
            deployed: false,
            previous: Vec::new(),
        }
    }

    /// The same application with earlier versions to clean up after.
    #[must_use]
    pub fn with_previous(mut self, previous: Vec<Manifest>) -> Self {
        self.previous = previous;
        self
    }

    /// The application name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.manifest.name()
    }
}

/// What one reconcile pass decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Commands to send, in order (configs first), none identical to one in flight.
    pub commands: Vec<Command>,
    /// Status per application name.
    pub status: BTreeMap<String, AppStatus>,
}

/// Why wadm refuses to act this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Blindness {
    /// wadm's own NATS connection is down.
    Disconnected { since_ms: u64 },
    /// Every known host is silent: a partition, not a dead fleet.
    Partition { silent_ms: u64 },
}

/// One reconcile pass. See the crate docs for the rules; in short:
///
/// * each application's scalers compare the manifest with the lattice as observed on
///   the hosts heard from within the host timeout (others are fenced: their work is
///   placed elsewhere) and return commands and a status with a reason;
/// * a command identical to one in `pending` (in flight) is not returned again;
/// * if wadm is disconnected from NATS, or every known host is silent at once, no
///   command at all is returned and deployed applications report `unhealthy`.
#[must_use]
pub fn reconcile(
    desired: &[DeployedApp],
    observed: &LatticeState,
    pending: &PendingCommands,
    now_ms: u64,
    policy: &FailurePolicy,
) -> Reconciliation {
    let blindness = blindness(observed, now_ms, policy);
    let ctx = Ctx::new(observed, pending, now_ms, policy, blindness.is_some());
    let mut commands = Vec::new();
    let mut status = BTreeMap::new();
    for app in desired {
        let (app_commands, app_status) = app::reconcile_app(app, &ctx);
        commands.extend(app_commands);
        status.insert(app.name().to_string(), app_status);
    }
    match blindness {
        Some(blind) => {
            for (app, s) in &mut status {
                let deployed = desired.iter().any(|d| d.name() == app && d.deployed);
                if deployed {
                    mark_unhealthy(s, &blind);
                }
            }
            commands.clear();
        }
        None => commands = dedup_and_drop_in_flight(commands, &ctx),
    }
    Reconciliation { commands, status }
}

fn blindness(observed: &LatticeState, now_ms: u64, policy: &FailurePolicy) -> Option<Blindness> {
    if !observed.observer_connected {
        return Some(Blindness::Disconnected {
            since_ms: observed.observer_since_ms,
        });
    }
    let all_silent = !observed.hosts.is_empty()
        && observed
            .hosts
            .values()
            .all(|h| observed.is_stale(h, now_ms, policy));
    all_silent.then(|| Blindness::Partition {
        silent_ms: observed
            .hosts
            .values()
            .map(|h| observed.silence_ms(h, now_ms))
            .min()
            .unwrap_or_default(),
    })
}

fn mark_unhealthy(status: &mut AppStatus, blind: &Blindness) {
    let message = match blind {
        Blindness::Disconnected { since_ms } => format!(
            "wadm is disconnected from NATS (since t={since_ms} ms); not acting until it reconnects"
        ),
        Blindness::Partition { silent_ms } => {
            format!("no host heard from for {silent_ms} ms — likely a partition; not evicting")
        }
    };
    for scaler in &mut status.scalers {
        if scaler.info.status_type == StatusType::Deployed {
            scaler.info = StatusInfo::unhealthy(message.clone());
        }
    }
    status.info = StatusInfo::unhealthy(message);
}

/// Configs first (workloads and links wait for them), then the rest in scaler order;
/// duplicates (a config two scalers need) once; nothing identical to a command in
/// flight.
fn dedup_and_drop_in_flight(commands: Vec<Command>, ctx: &Ctx<'_>) -> Vec<Command> {
    let (configs, rest): (Vec<Command>, Vec<Command>) = commands
        .into_iter()
        .partition(|c| matches!(c, Command::PutConfig(_)));
    let in_flight: HashSet<&Command> = ctx.pending.in_flight(ctx.now_ms, ctx.policy).collect();
    let mut seen = HashSet::new();
    configs
        .into_iter()
        .chain(rest)
        .filter(|c| !in_flight.contains(c))
        .filter(|c| seen.insert(c.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_failure;
