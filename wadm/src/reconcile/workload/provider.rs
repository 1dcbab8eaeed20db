//! The provider scaler: at most one provider instance per host and id, so a spread's
//! `instances` is a number of hosts.
//!
//! A provider cannot swap its image in place, so an upgrade prefers hosts that run
//! nothing of it (the new version starts next to the old one, which is stopped once
//! the plan is met); where the plan needs a host that runs the old version, that
//! host is stopped then started, one host at a time, only once every other planned
//! host runs the new version.

use std::collections::{BTreeMap, BTreeSet};

use trellis_interfaces::ctl::Annotations;

use super::{
    Occupant, Plan, ScalerKind, Workload, expected, failure_messages, no_hosts, occupants,
    plan_daemon, with_in_flight, workload_status,
};
use crate::command::{Command, StartProvider, StopProvider};
use crate::reconcile::Ctx;
use crate::reconcile::plan::{compute_spread, matches};
use crate::status::ScalerStatus;

/// Commands and status of one provider scaler.
pub(crate) fn reconcile_provider(w: &Workload<'_>, ctx: &Ctx<'_>) -> (Vec<Command>, ScalerStatus) {
    if ctx.placeable.is_empty() {
        return no_hosts(w);
    }
    let occupants = occupants(w, ctx);
    let plan = match w.kind {
        ScalerKind::Spread => plan_provider_spread(w, ctx, &occupants),
        ScalerKind::Daemon => plan_daemon(w, ctx, &occupants),
    };
    let diff = diff(w, ctx, &occupants, &plan);
    let failures = failure_messages(w, ctx, &plan);
    let progress = with_in_flight(diff.progress(w, plan.hosts.len()), w, ctx);
    let satisfied = diff.satisfied;
    let commands = diff.into_commands(w, ctx, !failures.is_empty());
    let info = workload_status(&plan, failures, satisfied, progress);
    (commands, w.status(info))
}

/// The hosts of a provider spreadscaler: per spread (wadm's weighted split), that many
/// distinct eligible hosts, preferring hosts that run the current version, then free
/// hosts, then hosts running an old version (replaced last).
fn plan_provider_spread<'h>(
    w: &Workload<'_>,
    ctx: &Ctx<'h>,
    occupants: &BTreeMap<&'h str, Occupant<'h>>,
) -> Plan<'h> {
    let mut plan = Plan::default();
    let mut taken = BTreeSet::new();
    for (spread, target) in compute_spread(&w.property) {
        if target == 0 {
            continue;
        }
        let mut candidates: Vec<(u8, &'h str)> = ctx
            .placeable
            .iter()
            .filter(|h| matches(&h.labels, &spread) && !taken.contains(h.id.as_str()))
            .filter_map(|h| {
                let occupant = *occupants.get(h.id.as_str())?;
                if occupant == Occupant::Foreign {
                    return None;
                }
                // Rank by what the host will run once commands in flight land.
                let rank = match expected(w, ctx, &h.id, occupant) {
                    (1.., _) => 0,
                    (0, 0) => 1,
                    (0, _) => 2,
                };
                Some((rank, h.id.as_str()))
            })
            .collect();
        candidates.sort_unstable();
        let chosen: Vec<&str> = candidates
            .into_iter()
            .take(target)
            .map(|(_, h)| h)
            .collect();
        if chosen.len() < target {
            plan.problems.push(format!(
                "Could not satisfy spread {} for {}, {}/{} eligible hosts found.",
                spread.name,
                w.image,
                chosen.len(),
                target
            ));
        }
        for host_id in chosen {
            taken.insert(host_id);
            plan.place(host_id, 1, &spread.name);
        }
    }
    plan
}

#[derive(Default)]
struct Diff {
    start: Vec<Command>,
    free_planned: usize,
    replace: Vec<Command>,
    surplus: Vec<Command>,
    satisfied: bool,
    running_new: usize,
    outdated_hosts: usize,
    old_images: BTreeSet<String>,
}

fn stop(w: &Workload<'_>, host_id: &str, annotations: &Annotations) -> Command {
    Command::StopProvider(StopProvider {
        host_id: host_id.to_string(),
        provider_id: w.id.clone(),
        model_name: w.app.to_string(),
        annotations: annotations.clone(),
    })
}

fn diff(
    w: &Workload<'_>,
    ctx: &Ctx<'_>,
    occupants: &BTreeMap<&str, Occupant<'_>>,
    plan: &Plan<'_>,
) -> Diff {
    let mut d = Diff {
        satisfied: true,
        ..Diff::default()
    };
    for (host_id, occupant) in occupants {
        let want = plan.hosts.get(host_id);
        match (*occupant, want) {
            (Occupant::Free, Some(p)) => {
                d.satisfied = false;
                d.free_planned += 1;
                let failure = ctx.workload_failure(true, host_id, &w.id);
                if !ctx.backing_off(failure, w.image) {
                    d.start.push(Command::StartProvider(StartProvider {
                        host_id: (*host_id).to_string(),
                        provider_id: w.id.clone(),
                        image_ref: w.image.to_string(),
                        model_name: w.app.to_string(),
                        annotations: w.annotations(&p.spread),
                        config: w.config.clone(),
                    }));
                }
            }
            (Occupant::Current { .. }, Some(_)) => d.running_new += 1,
            (Occupant::Current { annotations, .. }, None) => {
                d.surplus.push(stop(w, host_id, annotations));
            }
            (
                Occupant::Outdated {
                    image, annotations, ..
                },
                planned,
            ) => {
                d.outdated_hosts += 1;
                d.old_images.insert(image.to_string());
                if planned.is_some() {
                    d.satisfied = false;
                    d.replace.push(stop(w, host_id, annotations));
                } else {
                    d.surplus.push(stop(w, host_id, annotations));
                }
            }
            (Occupant::Foreign, _) | (Occupant::Free, None) => {}
        }
    }
    d
}

impl Diff {
    /// Starts at once; a stop-then-start replacement only when no other replacement is
    /// under way, every other planned host runs the new version, and the new version
    /// has not just failed to start; removals once the plan is met.
    fn into_commands(self, w: &Workload<'_>, ctx: &Ctx<'_>, failing: bool) -> Vec<Command> {
        let stopping = ctx.intents_for(&w.id).any(|i| i.count == 0);
        let mut commands = self.start;
        let canary_failed = failing && self.running_new == 0;
        if !stopping && self.free_planned == 0 && !canary_failed {
            commands.extend(self.replace.into_iter().take(1));
        }
        if self.satisfied {
            commands.extend(self.surplus);
        }
        commands
    }

    fn progress(&self, w: &Workload<'_>, planned: usize) -> String {
        if self.outdated_hosts > 0 {
            let old = self
                .old_images
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let counts = format!("{}/{planned} new instances running", self.running_new);
            return if self.satisfied {
                format!(
                    "Upgrading {} to {}: phase 3/3, {counts}; stopping {} on {} host(s)",
                    w.id, w.image, old, self.outdated_hosts
                )
            } else if self.free_planned == 0 && !self.replace.is_empty() {
                format!(
                    "Upgrading {} to {}: phase 2/3, {counts}; replacing {} on {} host(s), one at a time",
                    w.id,
                    w.image,
                    old,
                    self.replace.len()
                )
            } else {
                format!(
                    "Upgrading {} to {}: phase 1/3, starting new instances alongside {} ({counts})",
                    w.id, w.image, old
                )
            };
        }
        if !self.satisfied {
            format!(
                "Scaling provider {} on {} host(s)",
                w.id,
                self.free_planned.max(1)
            )
        } else if !self.surplus.is_empty() {
            format!(
                "Stopping provider {} on {} host(s)",
                w.id,
                self.surplus.len()
            )
        } else {
            String::new()
        }
    }
}
