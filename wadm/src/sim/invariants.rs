//! What must always hold, checked against the simulated world (the truth), not against
//! wadm's view of it; and the oracle deciding whether the world runs a manifest.

use std::collections::BTreeMap;

use trellis_interfaces::manifest::{
    Component, DAEMONSCALER_TRAIT, Manifest, SpreadScalerProperty, TraitProperty,
};

use super::world::{SimHost, World};
use crate::annotations::managing_app;
use crate::reconcile::config::desired_configs;
use crate::reconcile::plan::{compute_spread, default_spread, matches};

/// An invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// Commands were issued while wadm was disconnected or every host was silent.
    #[error("issued commands while blind ({why}): {commands}")]
    ActedWhileBlind {
        /// Why wadm should not have acted.
        why: String,
        /// What it issued.
        commands: String,
    },
    /// A host runs more instances of a component than any version asks for.
    #[error(
        "host {host} runs {max_instances} instances of `{id}` (app `{app}`); the most any version asks for is {target}"
    )]
    HostOverTarget {
        /// The host.
        host: String,
        /// The application.
        app: String,
        /// The component id.
        id: String,
        /// What it runs.
        max_instances: u32,
        /// The largest per-host count any deployed version allows.
        target: u32,
    },
    /// A status said `deployed` while wadm's view was complete and the world disagreed.
    #[error("`{app}` reported deployed, but the lattice disagrees: {reason}")]
    DeployedButWrong {
        /// The application.
        app: String,
        /// What is wrong.
        reason: String,
    },
    /// The world was stable and wadm did not converge in time.
    #[error("did not converge within {ticks} ticks of stability: {details}")]
    DidNotConverge {
        /// The bound.
        ticks: u64,
        /// Statuses, last commands and what the oracle found wrong.
        details: String,
    },
    /// wadm issued commands after convergence.
    #[error("issued commands on a converged lattice: {commands}")]
    NotIdempotent {
        /// What it issued.
        commands: String,
    },
    /// A component ran fewer instances than asked during a calm upgrade.
    #[error("capacity of `{id}` dropped to {running} (floor {floor}) during an upgrade")]
    CapacityDropped {
        /// The component or provider id.
        id: String,
        /// What ran.
        running: u32,
        /// What should have run at least.
        floor: u32,
    },
}

/// The scaler of a manifest component as the oracle reads it.
pub(crate) struct Expectation {
    pub id: String,
    pub image: String,
    pub provider: bool,
    pub daemon: bool,
    pub property: SpreadScalerProperty,
}

/// What each workload of `manifest` should run (first scaler trait; providers without
/// one get a spread of 1; shared references and components without scaler run nothing).
pub(crate) fn expectations(manifest: &Manifest) -> Vec<Expectation> {
    let app = manifest.name();
    manifest
        .components()
        .filter_map(|c| expectation(app, c))
        .collect()
}

fn expectation(app: &str, c: &Component) -> Option<Expectation> {
    let image = c.image()?.to_string();
    let scaler = c.scalers().find_map(|t| match &t.properties {
        TraitProperty::SpreadScaler(p) => Some((t.trait_type == DAEMONSCALER_TRAIT, p.clone())),
        _ => None,
    });
    let (daemon, property) = match scaler {
        Some(found) => found,
        None if c.is_capability() => (
            false,
            SpreadScalerProperty {
                instances: 1,
                spread: Vec::new(),
            },
        ),
        None => return None,
    };
    Some(Expectation {
        id: c.component_id(app),
        image,
        provider: c.is_capability(),
        daemon,
        property,
    })
}

/// The largest per-host instance count `manifest` allows for each component id.
pub(crate) fn per_host_targets(manifest: &Manifest) -> BTreeMap<String, u32> {
    expectations(manifest)
        .into_iter()
        .filter(|e| !e.provider)
        .map(|e| {
            (
                e.id,
                u32::try_from(e.property.instances).unwrap_or(u32::MAX),
            )
        })
        .collect()
}

/// How many instances of `e` run on `host` for `app` (0 if another image or app).
fn running(host: &SimHost, app: &str, e: &Expectation) -> u32 {
    if e.provider {
        host.providers
            .get(&e.id)
            .filter(|p| p.image_ref == e.image && managing_app(&p.annotations) == Some(app))
            .map_or(0, |_| 1)
    } else {
        host.components
            .get(&e.id)
            .filter(|c| c.image_ref == e.image && managing_app(&c.annotations) == Some(app))
            .map_or(0, |c| c.max_instances)
    }
}

/// Whether the live hosts of `world` run exactly `manifest` (or, when `deployed` is
/// false, nothing of it); `Err` says what differs.
pub(crate) fn satisfied(
    world: &World,
    manifest: &Manifest,
    deployed: bool,
    now_ms: u64,
) -> Result<(), String> {
    let app = manifest.name();
    let hosts: Vec<&SimHost> = world.reachable_hosts(now_ms).collect();
    let expected = if deployed {
        expectations(manifest)
    } else {
        Vec::new()
    };
    for h in &hosts {
        let ours = h
            .components
            .iter()
            .map(|(id, c)| (id, &c.image_ref, &c.annotations, false))
            .chain(
                h.providers
                    .iter()
                    .map(|(id, p)| (id, &p.image_ref, &p.annotations, true)),
            )
            .filter(|(_, _, a, _)| managing_app(a) == Some(app));
        for (id, image, _, provider) in ours {
            let wanted = expected
                .iter()
                .any(|e| &e.id == id && &e.image == image && e.provider == provider);
            if !wanted {
                return Err(format!("host {} still runs `{id}` ({image})", h.id));
            }
        }
    }
    for e in &expected {
        check_placement(&hosts, app, e)?;
    }
    if deployed {
        check_links_and_configs(world, manifest)?;
    } else {
        check_links_and_configs_gone(world, manifest)?;
    }
    Ok(())
}

fn check_links_and_configs_gone(world: &World, manifest: &Manifest) -> Result<(), String> {
    let app = manifest.name();
    let links = world.links();
    for (source, property) in manifest.links() {
        let source_id = source.component_id(app);
        let left = links.iter().any(|l| {
            l.source_id == source_id
                && l.wit_namespace == property.namespace
                && l.wit_package == property.package
                && l.name == property.link_name()
        });
        if left {
            return Err(format!(
                "link {source_id} -({}:{})-> … is still there",
                property.namespace, property.package
            ));
        }
    }
    for (name, values) in desired_configs(manifest) {
        if values.is_some() && world.configs.contains_key(&name) {
            return Err(format!("config `{name}` is still there"));
        }
    }
    Ok(())
}

fn check_placement(hosts: &[&SimHost], app: &str, e: &Expectation) -> Result<(), String> {
    let total: u32 = hosts.iter().map(|h| running(h, app, e)).sum();
    if e.daemon {
        let spreads = if e.property.spread.is_empty() {
            vec![default_spread()]
        } else {
            e.property.spread.clone()
        };
        let per_host = if e.provider {
            1
        } else {
            u32::try_from(e.property.instances).unwrap_or(u32::MAX)
        };
        for h in hosts {
            let eligible =
                e.property.instances > 0 && spreads.iter().any(|s| matches(&h.labels, s));
            let want = if eligible { per_host } else { 0 };
            let have = running(h, app, e);
            if have != want {
                return Err(format!(
                    "daemon `{}` runs {have} on {} (want {want})",
                    e.id, h.id
                ));
            }
        }
        return Ok(());
    }
    let instances = u32::try_from(e.property.instances).unwrap_or(u32::MAX);
    if total != instances {
        return Err(format!(
            "`{}` runs {total} instances (want {instances})",
            e.id
        ));
    }
    for (spread, target) in compute_spread(&e.property) {
        let counts: Vec<u32> = hosts
            .iter()
            .filter(|h| matches(&h.labels, &spread))
            .map(|h| running(h, app, e))
            .collect();
        let sum: u32 = counts.iter().sum();
        let target = u32::try_from(target).unwrap_or(u32::MAX);
        if sum != target {
            return Err(format!(
                "spread {} of `{}` runs {sum} (want {target})",
                spread.name, e.id
            ));
        }
        let (min, max) = (counts.iter().min(), counts.iter().max());
        if let (Some(min), Some(max)) = (min, max)
            && !e.provider
            && max - min > 1
        {
            return Err(format!(
                "spread {} of `{}` is uneven over its hosts: {counts:?}",
                spread.name, e.id
            ));
        }
    }
    Ok(())
}

fn check_links_and_configs(world: &World, manifest: &Manifest) -> Result<(), String> {
    let links = world.links();
    for (source, property) in manifest.links() {
        let app = manifest.name();
        let source_id = source.component_id(app);
        let target = manifest
            .component(&property.target.name)
            .map(|t| t.component_id(app))
            .unwrap_or_default();
        let present = links.iter().any(|l| {
            l.source_id == source_id
                && l.target == target
                && l.wit_namespace == property.namespace
                && l.wit_package == property.package
                && l.name == property.link_name()
        });
        if !present {
            return Err(format!(
                "link {source_id} -({}:{})-> {target} is missing",
                property.namespace, property.package
            ));
        }
    }
    for (name, values) in desired_configs(manifest) {
        if let Some(values) = values
            && world.configs.get(&name) != Some(&values)
        {
            return Err(format!("config `{name}` is missing or differs"));
        }
    }
    Ok(())
}
