//! Component and provider scalers (`spreadscaler`, `daemonscaler`).
//!
//! A host runs at most one instance record per component or provider id. For each
//! placeable host the scaler classifies what runs there under its id ([`Occupant`]),
//! computes a [`Plan`] (how many instances each host should run), and diffs the two
//! (`component.rs`, `provider.rs`), ordering the changes so capacity never drops:
//! new instances first, replacements one host at a time once a new instance runs,
//! removals only once the plan is met.

mod component;
mod provider;

use std::collections::BTreeMap;

use trellis_interfaces::ctl::Annotations;
use trellis_interfaces::manifest::{Component, SpreadScalerProperty};

use super::Ctx;
use super::config::config_names;
use super::plan::{Candidate, compute_spread, default_spread, describe_requirements, matches};
use crate::annotations::{
    DAEMON_SCALER_KIND, SPREAD_SCALER_KIND, managed_annotations, managing_app, scaler_of,
    workload_scaler_id,
};
use crate::command::Command;
use crate::observed::HostState;
use crate::status::{ScalerStatus, StatusInfo};

pub(crate) use component::reconcile_component;
pub(crate) use provider::reconcile_provider;

/// Which scaler trait drives a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScalerKind {
    /// `spreadscaler`: a number of instances spread by weight over labelled hosts.
    Spread,
    /// `daemonscaler`: instances on every matching host.
    Daemon,
}

/// One component or provider scaler of an application.
pub(crate) struct Workload<'a> {
    pub app: &'a str,
    pub id: String,
    pub image: &'a str,
    pub config: Vec<String>,
    pub property: SpreadScalerProperty,
    pub kind: ScalerKind,
    pub provider: bool,
    /// `properties.max_instance_reuse` (components only).
    pub max_instance_reuse: Option<u32>,
    pub scaler_id: String,
}

impl<'a> Workload<'a> {
    /// The scaler for `component` of `app` running `image` with `property`.
    pub fn new(
        app: &'a str,
        component: &'a Component,
        image: &'a str,
        property: SpreadScalerProperty,
        kind: ScalerKind,
    ) -> Self {
        let id = component.component_id(app);
        let config = config_names(app, &component.props().config);
        let kind_name = kind_name(kind);
        let max_instance_reuse = component.props().max_instance_reuse;
        // Part of the scaler id only when set, so the ids of manifests without
        // it stay those of wadm 0.21; changing it replaces instances in place.
        let reuse = max_instance_reuse.map(|n| format!("max_instance_reuse={n}"));
        let scaler_id = workload_scaler_id(
            kind_name,
            app,
            &component.name,
            &id,
            image,
            &config,
            reuse.as_deref(),
        );
        Self {
            app,
            id,
            image,
            config,
            property,
            kind,
            provider: component.is_capability(),
            max_instance_reuse,
            scaler_id,
        }
    }

    /// Annotations for an instance placed for `spread`.
    pub fn annotations(&self, spread: &str) -> Annotations {
        managed_annotations(self.app, &self.scaler_id, spread)
    }

    /// A status entry for this scaler.
    pub fn status(&self, info: StatusInfo) -> ScalerStatus {
        ScalerStatus {
            id: self.scaler_id.clone(),
            kind: kind_name(self.kind).to_string(),
            name: self.id.clone(),
            info,
        }
    }

    /// What runs under this workload's id on `host`.
    pub fn occupant<'h>(&self, host: &'h HostState) -> Occupant<'h> {
        let found = if self.provider {
            host.providers
                .get(&self.id)
                .map(|p| (1, p.image_ref.as_str(), &p.annotations))
        } else {
            host.components
                .get(&self.id)
                .map(|c| (c.max_instances, c.image_ref.as_str(), &c.annotations))
        };
        let Some((count, image, annotations)) = found else {
            return Occupant::Free;
        };
        if managing_app(annotations) != Some(self.app) {
            return Occupant::Foreign;
        }
        if scaler_of(annotations) == Some(self.scaler_id.as_str()) && image == self.image {
            Occupant::Current { count, annotations }
        } else {
            Occupant::Outdated {
                count,
                image,
                annotations,
            }
        }
    }
}

/// The status kind of a scaler.
pub(crate) fn kind_name(kind: ScalerKind) -> &'static str {
    match kind {
        ScalerKind::Spread => SPREAD_SCALER_KIND,
        ScalerKind::Daemon => DAEMON_SCALER_KIND,
    }
}

/// What runs under a workload's id on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Occupant<'h> {
    /// Nothing.
    Free,
    /// This scaler's instance, on the wanted image.
    Current {
        count: u32,
        annotations: &'h Annotations,
    },
    /// This application's instance from another scaler or image: an older version.
    Outdated {
        count: u32,
        image: &'h str,
        annotations: &'h Annotations,
    },
    /// Something this application did not start: never touched, never placed over.
    Foreign,
}

impl Occupant<'_> {
    fn current(self) -> u32 {
        match self {
            Self::Current { count, .. } => count,
            _ => 0,
        }
    }

    fn ours(self) -> u32 {
        match self {
            Self::Current { count, .. } | Self::Outdated { count, .. } => count,
            _ => 0,
        }
    }
}

/// Where a scaler wants instances: host → count (and the spread that placed them),
/// plus the reasons some spreads cannot be satisfied.
#[derive(Debug, Default)]
pub(crate) struct Plan<'h> {
    pub hosts: BTreeMap<&'h str, Placement>,
    pub problems: Vec<String>,
}

/// What one host should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    pub count: u32,
    pub spread: String,
}

impl<'h> Plan<'h> {
    fn place(&mut self, host_id: &'h str, count: u32, spread: &str) {
        let entry = self.hosts.entry(host_id).or_insert_with(|| Placement {
            count: 0,
            spread: spread.to_string(),
        });
        entry.count = entry.count.saturating_add(count);
    }
}

/// The occupant of every placeable host.
pub(crate) fn occupants<'h>(w: &Workload<'_>, ctx: &Ctx<'h>) -> BTreeMap<&'h str, Occupant<'h>> {
    ctx.placeable
        .iter()
        .map(|h| (h.id.as_str(), w.occupant(h)))
        .collect()
}

/// What a host will run for this scaler once the commands in flight land: `(current,
/// ours)` instance counts. Placement ranks hosts by it.
pub(crate) fn expected(
    w: &Workload<'_>,
    ctx: &Ctx<'_>,
    host_id: &str,
    occupant: Occupant<'_>,
) -> (u32, u32) {
    match ctx.intent(&w.id, host_id) {
        Some(intent) => {
            let current =
                intent.scaler.as_deref() == Some(w.scaler_id.as_str()) && intent.image == w.image;
            (if current { intent.count } else { 0 }, intent.count)
        }
        None => (occupant.current(), occupant.ours()),
    }
}

/// Placeable hosts matching `spread`'s requirements that this scaler may use.
fn eligible<'h>(
    w: &Workload<'_>,
    ctx: &Ctx<'h>,
    occupants: &BTreeMap<&'h str, Occupant<'h>>,
    spread: &trellis_interfaces::manifest::Spread,
) -> Vec<Candidate<'h>> {
    ctx.placeable
        .iter()
        .filter(|h| matches(&h.labels, spread))
        .filter_map(|h| {
            let occupant = occupants.get(h.id.as_str()).copied()?;
            let (current, ours) = expected(w, ctx, &h.id, occupant);
            (occupant != Occupant::Foreign).then_some(Candidate {
                host_id: h.id.as_str(),
                current,
                ours,
                load: u32::try_from(h.components.len() + h.providers.len()).unwrap_or(u32::MAX),
                rank: super::plan::rendezvous(&w.id, &h.id),
            })
        })
        .collect()
}

fn to_count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn unsatisfiable(
    w: &Workload<'_>,
    ctx: &Ctx<'_>,
    occupants: &BTreeMap<&str, Occupant<'_>>,
    spread: &trellis_interfaces::manifest::Spread,
) -> String {
    let occupied = ctx
        .placeable
        .iter()
        .filter(|h| matches(&h.labels, spread))
        .filter(|h| occupants.get(h.id.as_str()) == Some(&Occupant::Foreign))
        .count();
    let why = if occupied > 0 {
        format!(
            "the {occupied} host(s) matching requirements {} already run `{}` for someone else",
            describe_requirements(spread),
            w.id
        )
    } else {
        format!(
            "no eligible host matches requirements {}",
            describe_requirements(spread)
        )
    };
    format!(
        "Could not satisfy spread {} for {}: {why}",
        spread.name, w.image
    )
}

/// The plan of a component spreadscaler: wadm's weighted split over spreads, then each
/// spread's instances split evenly over its eligible hosts (wadm puts them all on the
/// first eligible host).
pub(crate) fn plan_component_spread<'h>(
    w: &Workload<'_>,
    ctx: &Ctx<'h>,
    occupants: &BTreeMap<&'h str, Occupant<'h>>,
) -> Plan<'h> {
    let mut plan = Plan::default();
    for (spread, target) in compute_spread(&w.property) {
        if target == 0 {
            continue;
        }
        let candidates = eligible(w, ctx, occupants, &spread);
        if candidates.is_empty() {
            plan.problems
                .push(unsatisfiable(w, ctx, occupants, &spread));
            continue;
        }
        for (host_id, n) in super::plan::split_evenly(target, &candidates) {
            plan.place(host_id, to_count(n), &spread.name);
        }
    }
    plan
}

/// The plan of a daemonscaler: `instances` on every eligible host of every spread
/// (components), or one provider on each (providers). Weights are ignored, as in wadm.
pub(crate) fn plan_daemon<'h>(
    w: &Workload<'_>,
    ctx: &Ctx<'h>,
    occupants: &BTreeMap<&'h str, Occupant<'h>>,
) -> Plan<'h> {
    let mut plan = Plan::default();
    if w.property.instances == 0 {
        return plan;
    }
    let spreads = if w.property.spread.is_empty() {
        vec![default_spread()]
    } else {
        w.property.spread.clone()
    };
    let count = if w.provider {
        1
    } else {
        to_count(w.property.instances)
    };
    for spread in &spreads {
        let candidates = eligible(w, ctx, occupants, spread);
        if candidates.is_empty() {
            plan.problems.push(unsatisfiable(w, ctx, occupants, spread));
        }
        for c in candidates {
            if !plan.hosts.contains_key(c.host_id) {
                plan.place(c.host_id, count, &spread.name);
            }
        }
    }
    plan
}

/// What a scaler does when there is no host to place on at all.
pub(crate) fn no_hosts(w: &Workload<'_>) -> (Vec<Command>, ScalerStatus) {
    let info = if w.property.instances == 0 {
        StatusInfo::deployed()
    } else {
        StatusInfo::waiting(format!("No hosts available to run {}", w.id))
    };
    (Vec::new(), w.status(info))
}

/// Failure messages for the planned hosts that reported a failure of this image.
pub(crate) fn failure_messages(w: &Workload<'_>, ctx: &Ctx<'_>, plan: &Plan<'_>) -> Vec<String> {
    plan.hosts
        .keys()
        .filter_map(|host_id| {
            let failure = ctx.workload_failure(w.provider, host_id, &w.id)?;
            (failure.reference == w.image).then(|| {
                format!(
                    "{} failed to start {} on host {host_id}: {}",
                    w.id, w.image, failure.error
                )
            })
        })
        .collect()
}

/// The status of a workload scaler from what its diff found.
pub(crate) fn workload_status(
    plan: &Plan<'_>,
    failures: Vec<String>,
    satisfied: bool,
    progress: String,
) -> StatusInfo {
    let mut problems = plan.problems.clone();
    if !satisfied {
        problems.extend(failures);
    }
    if !problems.is_empty() {
        StatusInfo::failed(problems.join(" "))
    } else if satisfied && progress.is_empty() {
        StatusInfo::deployed()
    } else {
        StatusInfo::reconciling(progress)
    }
}

/// The progress message, or, when the diff found nothing to do but commands for this
/// workload are still in flight, a note saying so: the lattice is about to change, so
/// the scaler is not `deployed` yet.
pub(crate) fn with_in_flight(progress: String, w: &Workload<'_>, ctx: &Ctx<'_>) -> String {
    let in_flight = ctx.in_flight_for(&w.id);
    if progress.is_empty() && in_flight > 0 {
        format!(
            "Waiting for {in_flight} command(s) on {} to take effect",
            w.id
        )
    } else {
        progress
    }
}
