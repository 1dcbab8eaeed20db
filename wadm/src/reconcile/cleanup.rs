//! Removing what an application no longer wants: everything on undeploy; on a new
//! version, the workloads it dropped and the links and configs only older versions had.
//!
//! Workloads are found by their annotations (this application, managed by wadm), so
//! nothing started by hand or by another application is touched. Links and configs
//! carry no annotations: only those an earlier version of this application defined,
//! and still as it defined them, are deleted.

use std::collections::{BTreeMap, BTreeSet};

use trellis_interfaces::link::Link;

use super::Ctx;
use super::DeployedApp;
use super::config::desired_configs;
use super::link::{delete, desired_links};
use crate::annotations::scaler_of;
use crate::command::{Command, DeleteConfig, ScaleComponent, StopProvider};

/// Which workload ids and scaler ids the current version runs.
#[derive(Debug, Default)]
pub(crate) struct Current {
    pub components: BTreeSet<String>,
    pub providers: BTreeSet<String>,
    pub scaler_ids: BTreeSet<String>,
    pub links: Vec<Link>,
    pub configs: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

/// Everything to remove when `app` is undeployed.
pub(crate) fn undeploy(app: &DeployedApp, ctx: &Ctx<'_>) -> Vec<Command> {
    let current = Current::default();
    let mut commands = workloads_to_remove(app.name(), &current, ctx);
    let manifests = std::iter::once(&app.manifest).chain(app.previous.iter());
    for manifest in manifests {
        for link in desired_links(manifest).into_iter().flatten() {
            if ctx
                .links_from(&link.link.source_id)
                .iter()
                .any(|l| l.same_key(&link.link))
            {
                commands.push(delete(&link.link, app.name()));
            }
        }
        for (name, values) in desired_configs(manifest) {
            if values.is_some() && ctx.observed.configs.contains_key(&name) {
                commands.push(Command::DeleteConfig(DeleteConfig { name }));
            }
        }
    }
    commands
}

/// What the current version of `app` no longer has: workloads it dropped at once;
/// links only older versions defined; configs only older versions defined, once no
/// instance of an older version runs.
pub(crate) fn leftovers(app: &DeployedApp, current: &Current, ctx: &Ctx<'_>) -> Vec<Command> {
    let mut commands = workloads_to_remove(app.name(), current, ctx);
    for manifest in &app.previous {
        for old in desired_links(manifest).into_iter().flatten() {
            let still_wanted = current.links.iter().any(|l| same_slot(l, &old.link));
            let present = ctx
                .links_from(&old.link.source_id)
                .iter()
                .any(|l| l.same_key(&old.link));
            if !still_wanted && present {
                commands.push(delete(&old.link, app.name()));
            }
        }
    }
    if !runs_outdated(app.name(), current, ctx) {
        let retired: BTreeSet<String> = app
            .previous
            .iter()
            .flat_map(desired_configs)
            .filter(|(name, values)| values.is_some() && !current.configs.contains_key(name))
            .map(|(name, _)| name)
            .collect();
        for name in retired {
            if ctx.observed.configs.contains_key(&name) {
                commands.push(Command::DeleteConfig(DeleteConfig { name }));
            }
        }
    }
    commands
}

/// Same source, namespace, package and name: the key `link.del` removes by.
fn same_slot(a: &Link, b: &Link) -> bool {
    a.source_id == b.source_id
        && a.wit_namespace == b.wit_namespace
        && a.wit_package == b.wit_package
        && a.name == b.name
}

/// Instances of `app` on placeable hosts whose id the current version does not run.
fn workloads_to_remove(app: &str, current: &Current, ctx: &Ctx<'_>) -> Vec<Command> {
    ctx.instances_of(app)
        .iter()
        .filter(|i| {
            let ids = if i.provider {
                &current.providers
            } else {
                &current.components
            };
            !ids.contains(i.id)
        })
        .map(|i| {
            if i.provider {
                Command::StopProvider(StopProvider {
                    host_id: i.host_id.to_string(),
                    provider_id: i.id.to_string(),
                    model_name: app.to_string(),
                    annotations: i.annotations.clone(),
                })
            } else {
                Command::ScaleComponent(ScaleComponent {
                    host_id: i.host_id.to_string(),
                    component_id: i.id.to_string(),
                    image_ref: i.image_ref.to_string(),
                    count: 0,
                    model_name: app.to_string(),
                    annotations: i.annotations.clone(),
                    config: Vec::new(),
                    allow_update: false,
                    max_instance_reuse: None,
                })
            }
        })
        .collect()
}

/// Whether any placeable host runs an instance of `app` from a scaler the current
/// version does not have (an upgrade still draining).
fn runs_outdated(app: &str, current: &Current, ctx: &Ctx<'_>) -> bool {
    ctx.instances_of(app)
        .iter()
        .any(|i| scaler_of(i.annotations).is_none_or(|id| !current.scaler_ids.contains(id)))
}
