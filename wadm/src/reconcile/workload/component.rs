//! The component scaler: diff a plan against what runs, with rolling upgrades.
//!
//! A component on a host is one record with a concurrency (`max_instances`), and the
//! host can swap its image in place (`allow_update`). So an upgrade runs in three
//! phases, each named in the status message:
//!
//! 1. new-version instances start on planned hosts that run nothing of it yet, next to
//!    the old version still serving elsewhere;
//! 2. once a new instance runs, old instances on planned hosts are replaced in place,
//!    one host at a time (the others keep serving; the host swaps atomically);
//! 3. once every planned host runs the new version at its planned count, what is left
//!    of the old version (hosts outside the new plan) is scaled to 0.

use std::collections::{BTreeMap, BTreeSet};

use trellis_interfaces::ctl::Annotations;

use super::{
    Occupant, Plan, ScalerKind, Workload, failure_messages, no_hosts, occupants,
    plan_component_spread, plan_daemon, with_in_flight, workload_status,
};
use crate::command::{Command, ScaleComponent};
use crate::reconcile::Ctx;
use crate::status::ScalerStatus;

/// Commands and status of one component scaler.
pub(crate) fn reconcile_component(w: &Workload<'_>, ctx: &Ctx<'_>) -> (Vec<Command>, ScalerStatus) {
    if ctx.placeable.is_empty() {
        return no_hosts(w);
    }
    let occupants = occupants(w, ctx);
    let plan = match w.kind {
        ScalerKind::Spread => plan_component_spread(w, ctx, &occupants),
        ScalerKind::Daemon => plan_daemon(w, ctx, &occupants),
    };
    let diff = diff(w, ctx, &occupants, &plan);
    let failures = failure_messages(w, ctx, &plan);
    let progress = with_in_flight(diff.progress(w), w, ctx);
    let satisfied = diff.satisfied;
    let commands = diff.into_commands(w, ctx, !failures.is_empty());
    let info = workload_status(&plan, failures, satisfied, progress);
    (commands, w.status(info))
}

#[derive(Default)]
struct Diff {
    start: Vec<Command>,
    resize: Vec<Command>,
    /// In-place replacements, with whether that host already failed the new image.
    replace: Vec<(Command, bool)>,
    surplus: Vec<Command>,
    /// Every planned host runs the current version at its planned count.
    satisfied: bool,
    running_new: u32,
    planned: u32,
    old_images: BTreeSet<String>,
    outdated_hosts: usize,
}

fn scale(
    w: &Workload<'_>,
    host_id: &str,
    image: &str,
    count: u32,
    annotations: Annotations,
    allow_update: bool,
) -> Command {
    Command::ScaleComponent(ScaleComponent {
        host_id: host_id.to_string(),
        component_id: w.id.clone(),
        image_ref: image.to_string(),
        count,
        model_name: w.app.to_string(),
        annotations,
        config: w.config.clone(),
        allow_update,
        max_instance_reuse: w.max_instance_reuse,
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
        let failure = ctx.workload_failure(false, host_id, &w.id);
        let may_start = !ctx.backing_off(failure, w.image);
        if let Some(p) = want {
            d.planned = d.planned.saturating_add(p.count);
        }
        match (*occupant, want) {
            (Occupant::Free, Some(p)) => {
                d.satisfied = false;
                if may_start {
                    let annotations = w.annotations(&p.spread);
                    d.start
                        .push(scale(w, host_id, w.image, p.count, annotations, false));
                }
            }
            (Occupant::Current { count, .. }, Some(p)) => {
                d.running_new = d.running_new.saturating_add(count);
                if count != p.count {
                    d.satisfied = false;
                    let annotations = w.annotations(&p.spread);
                    d.resize
                        .push(scale(w, host_id, w.image, p.count, annotations, false));
                }
            }
            (Occupant::Current { annotations, .. }, None) => {
                d.surplus
                    .push(scale(w, host_id, w.image, 0, annotations.clone(), false));
            }
            (Occupant::Outdated { image, .. }, Some(p)) => {
                d.satisfied = false;
                d.outdated_hosts += 1;
                d.old_images.insert(image.to_string());
                if may_start {
                    let annotations = w.annotations(&p.spread);
                    let failed_before = failure.is_some();
                    d.replace.push((
                        scale(w, host_id, w.image, p.count, annotations, true),
                        failed_before,
                    ));
                }
            }
            (
                Occupant::Outdated {
                    image, annotations, ..
                },
                None,
            ) => {
                d.outdated_hosts += 1;
                d.old_images.insert(image.to_string());
                d.surplus
                    .push(scale(w, host_id, image, 0, annotations.clone(), false));
            }
            (Occupant::Foreign, _) | (Occupant::Free, None) => {}
        }
    }
    d
}

impl Diff {
    /// The commands, gated so capacity never drops: starts and resizes at once; one
    /// in-place replacement at a time, and only once a new instance runs, or, when
    /// nothing can start elsewhere, as the first (canary) instance; after a canary
    /// failed, only that host is retried until one succeeds. Removals only once the
    /// plan is met.
    fn into_commands(self, w: &Workload<'_>, ctx: &Ctx<'_>, failing: bool) -> Vec<Command> {
        let replacing = ctx.intents_for(&w.id).any(|i| i.update);
        let canary_only = self.running_new == 0;
        let mut commands = self.start;
        let starting = !commands.is_empty();
        commands.extend(self.resize);
        let blocked = replacing || (canary_only && starting);
        if !blocked {
            let next = self
                .replace
                .into_iter()
                .find(|(_, failed_before)| !canary_only || !failing || *failed_before);
            commands.extend(next.map(|(c, _)| c));
        }
        if self.satisfied {
            commands.extend(self.surplus);
        }
        commands
    }

    /// What the scaler is doing, for the status message; empty when converged.
    fn progress(&self, w: &Workload<'_>) -> String {
        if self.outdated_hosts > 0 {
            let old = self
                .old_images
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let counts = format!(
                "{}/{} new instances running",
                self.running_new, self.planned
            );
            return if self.satisfied {
                format!(
                    "Upgrading {} to {}: phase 3/3, {counts}; draining {} from {} host(s)",
                    w.id, w.image, old, self.outdated_hosts
                )
            } else if self.running_new > 0 && !self.replace.is_empty() {
                format!(
                    "Upgrading {} to {}: phase 2/3, {counts}; replacing {} in place on {} host(s), one at a time",
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
        let changes = self.start.len() + self.resize.len();
        if !self.satisfied {
            format!("Scaling {} on {} host(s)", w.id, changes.max(1))
        } else if !self.surplus.is_empty() {
            format!("Removing {} from {} host(s)", w.id, self.surplus.len())
        } else {
            String::new()
        }
    }
}
