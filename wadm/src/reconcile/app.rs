//! One application: its scalers, in manifest order, and their statuses.

use trellis_interfaces::link::Link;
use trellis_interfaces::manifest::{
    Component, DAEMONSCALER_TRAIT, SpreadScalerProperty, TraitProperty,
};

use super::cleanup::{self, Current};
use super::config::{config_commands, describe_unready, desired_configs, unready};
use super::link::{desired_links, reconcile_link};
use super::workload::{ScalerKind, Workload, reconcile_component, reconcile_provider};
use super::{Ctx, DeployedApp};
use crate::annotations::{STATUS_SCALER_KIND, compute_id_sha256};
use crate::command::Command;
use crate::status::{AppStatus, ScalerStatus, StatusInfo};

/// Commands and status of one application.
pub(crate) fn reconcile_app(app: &DeployedApp, ctx: &Ctx<'_>) -> (Vec<Command>, AppStatus) {
    if !app.deployed {
        let commands = cleanup::undeploy(app, ctx);
        let message = if commands.is_empty() {
            String::new()
        } else {
            format!(
                "Removing {} thing(s) the application started",
                commands.len()
            )
        };
        return (commands, AppStatus::bare(StatusInfo::undeployed(message)));
    }
    let manifest = &app.manifest;
    let name = manifest.name();
    let mut current = Current {
        configs: desired_configs(manifest),
        ..Current::default()
    };
    let mut commands = config_commands(&current.configs, ctx.observed);
    let mut scalers = Vec::new();
    for component in manifest.components() {
        for workload in workloads_of(name, component) {
            let w = match workload {
                Ok(w) => w,
                Err(status) => {
                    scalers.push(status);
                    continue;
                }
            };
            if w.provider {
                current.providers.insert(w.id.clone());
            } else {
                current.components.insert(w.id.clone());
            }
            current.scaler_ids.insert(w.scaler_id.clone());
            let (c, s) = reconcile_workload(&w, &current, ctx);
            commands.extend(c);
            scalers.push(s);
        }
    }
    let previous_links: Vec<Link> = app
        .previous
        .iter()
        .flat_map(desired_links)
        .flatten()
        .map(|d| d.link)
        .collect();
    for desired in desired_links(manifest) {
        match desired {
            Ok(d) => {
                let (c, s) = reconcile_link(name, &d, &previous_links, &current.configs, ctx);
                current.links.push(d.link);
                commands.extend(c);
                scalers.push(s);
            }
            Err(status) => scalers.push(status),
        }
    }
    let leftovers = cleanup::leftovers(app, &current, ctx);
    if !leftovers.is_empty() {
        scalers.push(ScalerStatus {
            id: compute_id_sha256(&[STATUS_SCALER_KIND, name, "leftovers"]),
            kind: STATUS_SCALER_KIND.to_string(),
            name: format!("{name} leftovers"),
            info: StatusInfo::reconciling(format!(
                "Removing {} thing(s) the deployed version no longer has",
                leftovers.len()
            )),
        });
        commands.extend(leftovers);
    }
    (commands, AppStatus::from_scalers(scalers))
}

/// A workload scaler, held back while configs it needs are not in place.
fn reconcile_workload(
    w: &Workload<'_>,
    current: &Current,
    ctx: &Ctx<'_>,
) -> (Vec<Command>, ScalerStatus) {
    let waiting = unready(&w.config, &current.configs, ctx.observed);
    if !waiting.is_empty() {
        let (message, missing) = describe_unready(&waiting);
        let info = if missing {
            StatusInfo::failed(message)
        } else {
            StatusInfo::reconciling(message)
        };
        return (Vec::new(), w.status(info));
    }
    if w.provider {
        reconcile_provider(w, ctx)
    } else {
        reconcile_component(w, ctx)
    }
}

/// The scalers of one manifest component: its first `spreadscaler` or `daemonscaler`
/// trait; for a provider without one, an implicit `spreadscaler` of 1 (as in wadm); a
/// component without one is never started. A reference to a shared application's
/// component (no image) has none: that application runs it. Extra or malformed scaler
/// traits are reported as failed rather than left to fight each other.
fn workloads_of<'a>(
    app: &'a str,
    component: &'a Component,
) -> Vec<Result<Workload<'a>, ScalerStatus>> {
    let Some(image) = component.image() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut have_scaler = false;
    for (index, t) in component.scalers().enumerate() {
        let invalid = |message: String| ScalerStatus {
            id: compute_id_sha256(&[
                STATUS_SCALER_KIND,
                app,
                &component.name,
                &t.trait_type,
                &index.to_string(),
            ]),
            kind: STATUS_SCALER_KIND.to_string(),
            name: component.component_id(app),
            info: StatusInfo::failed(message),
        };
        let TraitProperty::SpreadScaler(property) = &t.properties else {
            out.push(Err(invalid(format!(
                "component `{}`: `{}` trait properties are not scaler properties",
                component.name, t.trait_type
            ))));
            continue;
        };
        if have_scaler {
            out.push(Err(invalid(format!(
                "component `{}`: only one scaler trait per component is supported; `{}` #{} ignored",
                component.name,
                t.trait_type,
                index + 1
            ))));
            continue;
        }
        have_scaler = true;
        let kind = if t.trait_type == DAEMONSCALER_TRAIT {
            ScalerKind::Daemon
        } else {
            ScalerKind::Spread
        };
        out.push(Ok(Workload::new(
            app,
            component,
            image,
            property.clone(),
            kind,
        )));
    }
    if !have_scaler && component.is_capability() {
        let implicit = SpreadScalerProperty {
            instances: 1,
            spread: Vec::new(),
        };
        out.push(Ok(Workload::new(
            app,
            component,
            image,
            implicit,
            ScalerKind::Spread,
        )));
    }
    out
}
