//! Named configuration: what an application defines, which names its workloads and
//! links are given, and whether each is in place.
//!
//! As in wadm 0.21, a config with `properties` is created by wadm under the name
//! `{app}-{name}` (each part lowercased, non-alphanumerics replaced by `_`); a config
//! without `properties` is managed elsewhere, used under its own name, and must exist.

use std::collections::BTreeMap;

use trellis_interfaces::manifest::{ConfigProperty, Manifest, default_component_id};

use crate::command::{Command, PutConfig};
use crate::observed::{ConfigValue, LatticeState};

/// The lattice name of a config of application `app`.
#[must_use]
pub fn config_name(app: &str, config: &ConfigProperty) -> String {
    if config.properties.is_some() {
        default_component_id(app, &config.name)
    } else {
        config.name.clone()
    }
}

/// The lattice names of a list of configs, in order.
#[must_use]
pub fn config_names(app: &str, configs: &[ConfigProperty]) -> Vec<String> {
    configs.iter().map(|c| config_name(app, c)).collect()
}

/// Every config an application refers to: lattice name → values wadm must put
/// (`None` for configs managed elsewhere).
#[must_use]
pub fn desired_configs(manifest: &Manifest) -> BTreeMap<String, Option<BTreeMap<String, String>>> {
    let app = manifest.name();
    let mut out = BTreeMap::new();
    for component in manifest.components() {
        let link_configs = component.links().flat_map(|l| {
            l.source
                .iter()
                .flat_map(|s| s.config.iter())
                .chain(l.target.config.iter())
        });
        for config in component.props().config.iter().chain(link_configs) {
            out.entry(config_name(app, config))
                .or_insert_with(|| config.properties.clone());
        }
    }
    out
}

/// Whether a config a workload or link needs is in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Present (with the right values, if wadm manages it).
    Ready,
    /// Managed by wadm and being put.
    Pending(String),
    /// Managed elsewhere and absent.
    Missing(String),
}

/// The readiness of every config in `names` that is not [`Readiness::Ready`].
#[must_use]
pub fn unready(
    names: &[String],
    desired: &BTreeMap<String, Option<BTreeMap<String, String>>>,
    observed: &LatticeState,
) -> Vec<Readiness> {
    names
        .iter()
        .map(|name| readiness(name, desired.get(name).and_then(Option::as_ref), observed))
        .filter(|r| *r != Readiness::Ready)
        .collect()
}

fn readiness(
    name: &str,
    managed: Option<&BTreeMap<String, String>>,
    observed: &LatticeState,
) -> Readiness {
    match (observed.configs.get(name), managed) {
        (Some(ConfigValue::Unknown), _) | (Some(_), None) => Readiness::Ready,
        (Some(ConfigValue::Known(values)), Some(wanted)) if values == wanted => Readiness::Ready,
        (_, Some(_)) => Readiness::Pending(name.to_string()),
        (None, None) => Readiness::Missing(name.to_string()),
    }
}

/// `PutConfig` for every managed config that is absent or differs.
#[must_use]
pub fn config_commands(
    desired: &BTreeMap<String, Option<BTreeMap<String, String>>>,
    observed: &LatticeState,
) -> Vec<Command> {
    desired
        .iter()
        .filter_map(|(name, values)| {
            let values = values.as_ref()?;
            match readiness(name, Some(values), observed) {
                Readiness::Ready => None,
                _ => Some(Command::PutConfig(PutConfig {
                    name: name.clone(),
                    values: values.clone(),
                })),
            }
        })
        .collect()
}

/// A status message for configs that hold a scaler back, and whether any is missing
/// for good (managed elsewhere and absent: `failed`) rather than on its way.
#[must_use]
pub fn describe_unready(unready: &[Readiness]) -> (String, bool) {
    let missing: Vec<&str> = unready
        .iter()
        .filter_map(|r| match r {
            Readiness::Missing(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return (
            format!("Specified configuration {list} does not exist"),
            true,
        );
    }
    let pending = unready
        .iter()
        .filter_map(|r| match r {
            Readiness::Pending(n) => Some(format!("`{n}`")),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(", ");
    (format!("Waiting for configuration {pending}"), false)
}
