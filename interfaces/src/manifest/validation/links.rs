//! Link rules: targets that exist, known interfaces spelled right, no two links for the
//! same source, name and interface, unique names for the configs links create, and the
//! deprecated or unknown keys of link properties.

use std::collections::HashMap;

use super::known::{did_you_mean, packages};
use super::{ValidationFailure, trait_at, traits_with_position};
use crate::manifest::{Component, ConfigProperty, LinkProperty, Manifest, Trait, TraitProperty};

/// Links as wadm puts them (type `link`, link properties), with their position.
fn link_traits(
    manifest: &Manifest,
) -> impl Iterator<Item = (usize, &Component, usize, &Trait, &LinkProperty)> {
    traits_with_position(manifest).filter_map(|(ci, c, ti, t)| match &t.properties {
        TraitProperty::Link(link) if t.is_link() => Some((ci, c, ti, t, link)),
        _ => None,
    })
}

/// Every link-shaped trait (whatever its type, as wadm checks it) must target a
/// component of this manifest. wadm reports a dangling `link` as a warning and every
/// missing target as an error; here each one is a single error at the trait.
pub(super) fn check_targets(manifest: &Manifest, out: &mut Vec<ValidationFailure>) {
    for (ci, component, ti, t) in traits_with_position(manifest) {
        let TraitProperty::Link(link) = &t.properties else {
            continue;
        };
        let target = &link.target.name;
        if manifest.component(target).is_none() {
            out.push(ValidationFailure::error(format!(
                "{}, field 'properties.target.name': link target '{target}' is missing from the \
                 manifest (dangling link): no component or capability has that name{}",
                trait_at(ci, component, ti, t),
                did_you_mean(target, manifest.components().map(|c| c.name.as_str()))
            )));
        }
    }
}

/// Under a namespace the host knows (`wasi`, `wrpc`, `wasmcloud`), an unknown package
/// or interface is probably a typo: a warning, since it may also be newer than the table.
pub(super) fn check_interfaces(manifest: &Manifest, out: &mut Vec<ValidationFailure>) {
    for (ci, component, ti, t, link) in link_traits(manifest) {
        let Some(known_packages) = packages(&link.namespace) else {
            continue;
        };
        let at = trait_at(ci, component, ti, t);
        let Some((_, interfaces)) = known_packages.iter().find(|(p, _)| *p == link.package) else {
            let names = known_packages.iter().map(|(p, _)| *p);
            out.push(ValidationFailure::warning(format!(
                "{at}, field 'properties.package': '{}' is not a known package of namespace \
                 '{}' (known: {}){}",
                link.wit_package(),
                link.namespace,
                names.clone().collect::<Vec<_>>().join(", "),
                did_you_mean(&link.package, names)
            )));
            continue;
        };
        for interface in &link.interfaces {
            if !interfaces.contains(&interface.as_str()) {
                out.push(ValidationFailure::warning(format!(
                    "{at}, field 'properties.interfaces': '{}/{interface}' is not a known \
                     interface of package '{}' (known: {}){}",
                    link.wit_package(),
                    link.wit_package(),
                    interfaces.join(", "),
                    did_you_mean(interface, interfaces.iter().copied())
                )));
            }
        }
    }
}

/// A source may have one link per (link name, namespace, package, interface): the host
/// rejects a second target for the same one, and a second link to the same target is
/// a duplicate.
pub(super) fn check_duplicates(manifest: &Manifest, out: &mut Vec<ValidationFailure>) {
    type Key<'a> = (&'a str, &'a str, &'a str, &'a str);
    let mut seen: HashMap<(usize, Key<'_>), (usize, &str)> = HashMap::new();
    for (ci, component, ti, t, link) in link_traits(manifest) {
        for interface in &link.interfaces {
            let key = (
                link.link_name(),
                link.namespace.as_str(),
                link.package.as_str(),
                interface.as_str(),
            );
            let target = link.target.name.as_str();
            let Some((first, first_target)) = seen.get(&(ci, key)) else {
                seen.insert((ci, key), (ti, target));
                continue;
            };
            let how = if *first_target == target {
                format!("to the same target '{target}'; remove one of them")
            } else {
                format!(
                    "with different targets ('{first_target}' there, '{target}' here); a source \
                     can have only one target per link name and interface, so give one of the \
                     links another `name`"
                )
            };
            out.push(ValidationFailure::error(format!(
                "{}, field 'properties.interfaces': duplicate link inside component '{}': link \
                 '{}' for '{}/{interface}' is already defined by traits[{first}] {how}",
                trait_at(ci, component, ti, t),
                component.name,
                link.link_name(),
                link.wit_package()
            )));
        }
    }
}

/// Link configs given with `properties` are created by wadm under their name, so two of
/// them with one name would overwrite each other forever. Configs without
/// `properties` only refer to an existing config and may repeat.
pub(super) fn check_config_names(manifest: &Manifest, out: &mut Vec<ValidationFailure>) {
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (ci, component, ti, t, link) in link_traits(manifest) {
        let at = trait_at(ci, component, ti, t);
        let target = link.target.config.iter().map(|c| ("target", c));
        let source = link
            .source
            .iter()
            .flat_map(|s| s.config.iter().map(|c| ("source", c)));
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (side, config) in target.chain(source) {
            let k = index.entry(side).or_default();
            let field = format!("properties.{side}.config[{k}]");
            *k += 1;
            check_config_name(config, &at, &field, &mut seen, out);
        }
    }
}

fn check_config_name<'m>(
    config: &'m ConfigProperty,
    at: &str,
    field: &str,
    seen: &mut HashMap<&'m str, String>,
    out: &mut Vec<ValidationFailure>,
) {
    if config.properties.is_none() {
        return;
    }
    let here = format!("{at}, field '{field}.name'");
    if let Some(first) = seen.get(config.name.as_str()) {
        out.push(ValidationFailure::error(format!(
            "{here}: duplicate link config name '{}', already defined with properties at \
             {first}; wadm creates link configs by name, so rename one, or drop `properties` \
             here to reuse the other",
            config.name
        )));
    } else {
        seen.insert(&config.name, here);
    }
}

/// `source_config` / `target_config` (deprecated since wadm 0.13) and keys nobody reads.
pub(super) fn check_deprecated_and_ignored(manifest: &Manifest, out: &mut Vec<ValidationFailure>) {
    for (ci, component, ti, t, link) in link_traits(manifest) {
        let at = trait_at(ci, component, ti, t);
        if let Some(source_config) = &link.source_config {
            let used = link.source.as_ref().map(|s| &s.config) == Some(source_config);
            out.push(ValidationFailure::warning(format!(
                "{at}, field 'properties.source_config': deprecated since wadm 0.13, write \
                 `source: {{config: [...]}}` instead{}",
                if used {
                    ""
                } else {
                    " (ignored here, because `source` is also given)"
                }
            )));
        }
        if let Some(target_config) = &link.target_config {
            let used = &link.target.config == target_config;
            out.push(ValidationFailure::warning(format!(
                "{at}, field 'properties.target_config': deprecated since wadm 0.13, write \
                 `target: {{name: ..., config: [...]}}` instead{}",
                if used {
                    ""
                } else {
                    " (ignored here, because `target` is a map)"
                }
            )));
        }
        for key in &link.ignored_keys {
            out.push(ValidationFailure::warning(format!(
                "{at}, field 'properties.{key}': not a link property, ignored (link properties \
                 are namespace, package, interfaces, name, source and target){}",
                did_you_mean(
                    key,
                    [
                        "namespace",
                        "package",
                        "interfaces",
                        "name",
                        "source",
                        "target"
                    ]
                )
            )));
        }
    }
}
