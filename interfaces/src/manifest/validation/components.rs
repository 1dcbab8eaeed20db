//! Component-level rules: unique names and ids, `image` xor `application`, trait
//! shapes, and secrets that point at a usable secret policy.

use std::collections::HashMap;

use super::known::did_you_mean;
use super::{ValidationFailure, component_at, trait_at, traits_with_position};
use crate::manifest::{
    Component, DAEMONSCALER_TRAIT, LINK_TRAIT, LinkProperty, Manifest, SECRET_POLICY_TYPE,
    SPREADSCALER_TRAIT, SecretProperty, SpreadScalerProperty, TraitProperty,
};

/// Duplicate component names, and duplicate lattice ids (explicit `properties.id`, or
/// the `{manifest}-{name}` default) among the components this manifest deploys. A
/// component whose name is already a duplicate is not reported a second time for the
/// id it derives from that name.
pub(super) fn check_names_and_ids(manifest: &Manifest, out: &mut Vec<ValidationFailure>) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ids: HashMap<String, (usize, &str, bool)> = HashMap::new();
    for (index, component) in manifest.components().enumerate() {
        if let Some(first) = names.get(component.name.as_str()) {
            out.push(ValidationFailure::error(format!(
                "{}: duplicate component name in manifest, already used by \
                 spec.components[{first}]; names must be unique because links refer to them",
                component_at(index, component)
            )));
            continue;
        }
        names.insert(&component.name, index);
        let props = component.props();
        if props.image.is_none() && props.application.is_some() {
            // A reference to a shared application's component: deployed by that
            // application, not this one.
            continue;
        }
        let explicit = props.id.is_some();
        let id = component.component_id(manifest.name());
        if let Some((other_index, other_name, other_explicit)) = ids.get(&id) {
            out.push(ValidationFailure::error(format!(
                "{}, field 'properties.id': duplicate component identifier '{id}' ({}), already \
                 used by component '{other_name}' (spec.components[{other_index}], {}); every \
                 component and provider needs its own id",
                component_at(index, component),
                id_origin(explicit),
                id_origin(*other_explicit)
            )));
        } else {
            ids.insert(id, (index, &component.name, explicit));
        }
    }
}

fn id_origin(explicit: bool) -> &'static str {
    if explicit {
        "set in properties.id"
    } else {
        "derived from the manifest and component names"
    }
}

/// `image` xor `application`; a shared reference brings no config, secrets or scaler.
pub(super) fn check_properties(manifest: &Manifest, out: &mut Vec<ValidationFailure>) {
    for (index, component) in manifest.components().enumerate() {
        let at = component_at(index, component);
        let props = component.props();
        match (&props.image, &props.application) {
            (Some(_), Some(_)) => out.push(ValidationFailure::error(format!(
                "{at}, field 'properties': has both `image` and `application`; give `image` to \
                 run an artifact or `application` to use a shared application's component"
            ))),
            (None, None) => out.push(ValidationFailure::error(format!(
                "{at}, field 'properties.image': missing; give `image` to run an artifact or \
                 `application` to use a shared application's component"
            ))),
            (None, Some(shared)) => {
                let owner = format!(
                    "the shared application '{}' owns component '{}'",
                    shared.name, shared.component
                );
                if !props.config.is_empty() {
                    out.push(ValidationFailure::error(format!(
                        "{at}, field 'properties.config': a shared component reference cannot \
                         add config ({owner})"
                    )));
                }
                if !props.secrets.is_empty() {
                    out.push(ValidationFailure::error(format!(
                        "{at}, field 'properties.secrets': a shared component reference cannot \
                         add secrets ({owner})"
                    )));
                }
                if component.scalers().next().is_some() {
                    out.push(ValidationFailure::error(format!(
                        "{at}, field 'traits': a shared component reference cannot have a \
                         scaler trait ({owner} and scales it)"
                    )));
                }
            }
            (Some(_), None) => {}
        }
        check_instance_reuse(&at, component, out);
    }
}

/// `max_instance_reuse` (a Trellis extension): a positive count, on a
/// component that runs its own image.
fn check_instance_reuse(at: &str, component: &Component, out: &mut Vec<ValidationFailure>) {
    let props = component.props();
    let Some(reuse) = props.max_instance_reuse else {
        return;
    };
    let field = "field 'properties.max_instance_reuse'";
    if component.is_capability() {
        out.push(ValidationFailure::error(format!(
            "{at}, {field}: applies to components only (a capability provider is a process, \
             not an instance per call); remove it"
        )));
    } else if props.application.is_some() {
        out.push(ValidationFailure::error(format!(
            "{at}, {field}: a shared component reference cannot set it (the shared \
             application that runs the component does)"
        )));
    } else if reuse == 0 {
        out.push(ValidationFailure::error(format!(
            "{at}, {field}: must be at least 1 (the calls one instance may answer; 1 gives \
             every call a fresh instance)"
        )));
    }
}

/// Link traits must have link properties and scalers scaler properties (a typo in
/// either turns them into untyped "custom" properties that wadm would silently skip);
/// traits of any other type are ignored by wadm, which deserves a warning.
pub(super) fn check_traits(manifest: &Manifest, out: &mut Vec<ValidationFailure>) {
    const SUPPORTED: [&str; 3] = [SPREADSCALER_TRAIT, DAEMONSCALER_TRAIT, LINK_TRAIT];
    for (ci, component, ti, t) in traits_with_position(manifest) {
        let at = trait_at(ci, component, ti, t);
        let problem = match (t.trait_type.as_str(), &t.properties) {
            (LINK_TRAIT, TraitProperty::Link(_))
            | (SPREADSCALER_TRAIT | DAEMONSCALER_TRAIT, TraitProperty::SpreadScaler(_)) => None,
            (LINK_TRAIT, TraitProperty::SpreadScaler(_)) => Some(
                "these are scaler properties; a link needs `namespace`, `package`, \
                 `interfaces` and `target`"
                    .to_string(),
            ),
            (LINK_TRAIT, TraitProperty::Custom(value)) => Some(
                serde_json::from_value::<LinkProperty>(value.clone())
                    .err()
                    .map_or_else(|| "not link properties".to_string(), |e| e.to_string()),
            ),
            (SPREADSCALER_TRAIT | DAEMONSCALER_TRAIT, TraitProperty::Link(_)) => Some(
                "these are link properties; a scaler needs `instances` and an optional `spread`"
                    .to_string(),
            ),
            (SPREADSCALER_TRAIT | DAEMONSCALER_TRAIT, TraitProperty::Custom(value)) => Some(
                serde_json::from_value::<SpreadScalerProperty>(value.clone())
                    .err()
                    .map_or_else(|| "not scaler properties".to_string(), |e| e.to_string()),
            ),
            (other, _) => {
                out.push(ValidationFailure::warning(format!(
                    "{at}, field 'type': '{other}' is not a trait type wadm 0.21 runs \
                     (spreadscaler, daemonscaler, link), so this trait is ignored at deploy{}",
                    did_you_mean(other, SUPPORTED)
                )));
                None
            }
        };
        if let Some(reason) = problem {
            out.push(ValidationFailure::error(format!(
                "{at}, field 'properties': not valid {} properties: {reason}",
                t.trait_type
            )));
        }
    }
}

/// Every secret (the component's own and those of its link-shaped traits) must name a
/// policy of `spec.policies` that is a secret policy with a `backend`.
pub(super) fn check_secrets(manifest: &Manifest, out: &mut Vec<ValidationFailure>) {
    for (index, component) in manifest.components().enumerate() {
        let at = component_at(index, component);
        for (k, secret) in component.props().secrets.iter().enumerate() {
            check_secret(
                manifest,
                &at,
                &format!("properties.secrets[{k}]"),
                secret,
                out,
            );
        }
    }
    for (ci, component, ti, t) in traits_with_position(manifest) {
        let TraitProperty::Link(link) = &t.properties else {
            continue;
        };
        let at = trait_at(ci, component, ti, t);
        for (k, secret) in link.target.secrets.iter().enumerate() {
            let field = format!("properties.target.secrets[{k}]");
            check_secret(manifest, &at, &field, secret, out);
        }
        let source_secrets = link.source.iter().flat_map(|s| s.secrets.iter());
        for (k, secret) in source_secrets.enumerate() {
            let field = format!("properties.source.secrets[{k}]");
            check_secret(manifest, &at, &field, secret, out);
        }
    }
}

fn check_secret(
    manifest: &Manifest,
    at: &str,
    field: &str,
    secret: &SecretProperty,
    out: &mut Vec<ValidationFailure>,
) {
    let wanted = &secret.properties.policy;
    let prefix = format!(
        "{at}, field '{field}.properties.policy': secret '{}' uses policy '{wanted}'",
        secret.name
    );
    match manifest.policy(wanted) {
        None => out.push(ValidationFailure::error(format!(
            "{prefix}, which is not in spec.policies{}",
            did_you_mean(wanted, manifest.policies().map(|p| p.name.as_str()))
        ))),
        Some(policy) if policy.policy_type != SECRET_POLICY_TYPE => {
            out.push(ValidationFailure::error(format!(
                "{prefix}, whose type is '{}', not '{SECRET_POLICY_TYPE}'",
                policy.policy_type
            )));
        }
        Some(policy) if !policy.properties.contains_key("backend") => {
            out.push(ValidationFailure::error(format!(
                "{prefix}, which has no 'backend' property naming the secrets backend"
            )));
        }
        Some(_) => {}
    }
}
