//! Components and capability providers of a manifest, their properties, named config
//! and secret references, and the rule that gives each one its lattice id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::traits::{LinkProperty, Trait, TraitProperty};

/// One entry of `spec.components`: a Wasm component or a capability provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Name, unique in the manifest; links refer to components by it.
    pub name: String,
    /// `type` and `properties` (flattened, as in the file).
    #[serde(flatten)]
    pub properties: Properties,
    /// Scalers, links and (ignored) custom traits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Vec<Trait>>,
}

/// `type` (`component`, or its 0.x alias `actor`, or `capability`) with its `properties`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Properties {
    /// A Wasm component.
    #[serde(rename = "component", alias = "actor")]
    Component {
        /// What to run and with which config.
        properties: ComponentProperties,
    },
    /// A capability provider.
    #[serde(rename = "capability")]
    Capability {
        /// What to run and with which config.
        properties: CapabilityProperties,
    },
}

/// Properties of a component or provider: an `image` to run, or an `application`
/// reference to a component of a shared application (exactly one of the two).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentProperties {
    /// Artifact reference: OCI (`registry.example/…:tag`), `file://…` or `builtin://NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A component of another (shared) application to use instead of an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<SharedApplicationComponentProperties>,
    /// Lattice id; when absent it is derived, see [`default_component_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Named config for the component (`wasi:config`) or the provider (its host data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigProperty>,
    /// Secret references (`wasmcloud:secrets/store`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretProperty>,
    /// Trellis extension, components only: how many calls one instance may
    /// answer before a fresh one replaces it (`component_limits.max_instance_reuse`
    /// of `component.scale`). Absent: the host's default (a fresh instance per
    /// call unless the host was started with `--max-instance-reuse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instance_reuse: Option<u32>,
}

/// Properties of a capability provider; the same shape as a component's.
pub type CapabilityProperties = ComponentProperties;

/// `properties.application`: which component of which shared application to use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedApplicationComponentProperties {
    /// Name of the shared application.
    pub name: String,
    /// Name of the component inside it.
    pub component: String,
}

/// A named config. With `properties`, wadm creates it; without, it must already exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigProperty {
    /// Config name.
    pub name: String,
    /// Values to store under that name; `None` means "managed elsewhere".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, String>>,
}

/// A named secret reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretProperty {
    /// Name the component or provider asks for.
    pub name: String,
    /// Where the secret comes from.
    pub properties: SecretSourceProperty,
}

/// Where a secret is fetched from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretSourceProperty {
    /// Name of a [`Policy`](super::Policy) of type
    /// [`SECRET_POLICY_TYPE`](super::SECRET_POLICY_TYPE) naming the backend.
    pub policy: String,
    /// Key in the backend.
    pub key: String,
    /// Field inside the secret, if the backend stores maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Secret version; newest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// wadm's id for a component without an explicit `id`: `{manifest}-{component}`, each
/// part lowercased with every character that is not ASCII alphanumeric replaced by `_`.
///
/// `default_component_id("rust-http-kv", "Counter")` is `"rust_http_kv-counter"`.
pub fn default_component_id(manifest_name: &str, component_name: &str) -> String {
    format!(
        "{}-{}",
        sanitize_id_part(manifest_name),
        sanitize_id_part(component_name)
    )
}

fn sanitize_id_part(part: &str) -> String {
    part.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

impl Component {
    /// The id this component or provider has in the lattice when deployed from the
    /// manifest named `manifest_name`: its explicit `properties.id`, else the
    /// [`default_component_id`]. A reference to a shared application's component gets
    /// the id that application gives it (derived from the shared application's name
    /// and the referenced component's name), as wadm computes it.
    pub fn component_id(&self, manifest_name: &str) -> String {
        let props = self.props();
        if let Some(id) = &props.id {
            return id.clone();
        }
        match (&props.image, &props.application) {
            (None, Some(shared)) => default_component_id(&shared.name, &shared.component),
            _ => default_component_id(manifest_name, &self.name),
        }
    }

    /// The properties, whichever the type.
    pub fn props(&self) -> &ComponentProperties {
        match &self.properties {
            Properties::Component { properties } | Properties::Capability { properties } => {
                properties
            }
        }
    }

    /// Whether this is a capability provider.
    pub fn is_capability(&self) -> bool {
        matches!(self.properties, Properties::Capability { .. })
    }

    /// The image to run, if this entry has one (shared references do not).
    pub fn image(&self) -> Option<&str> {
        self.props().image.as_deref()
    }

    /// The traits, in file order.
    pub fn traits(&self) -> &[Trait] {
        self.traits.as_deref().unwrap_or_default()
    }

    /// Links wadm puts from this component: traits of type `link` with link properties.
    pub fn links(&self) -> impl Iterator<Item = &LinkProperty> {
        self.traits().iter().filter_map(|t| match &t.properties {
            TraitProperty::Link(link) if t.is_link() => Some(link),
            _ => None,
        })
    }

    /// Scaler traits (`spreadscaler`, `daemonscaler`) whatever their properties.
    pub fn scalers(&self) -> impl Iterator<Item = &Trait> {
        self.traits().iter().filter(|t| t.is_scaler())
    }

    /// Every secret reference the component carries: its own, then those of its
    /// link-shaped traits (target, then source), as wadm collects them.
    pub fn all_secrets(&self) -> impl Iterator<Item = &SecretProperty> {
        let links = self.traits().iter().filter_map(|t| match &t.properties {
            TraitProperty::Link(link) => Some(link),
            _ => None,
        });
        self.props().secrets.iter().chain(links.flat_map(|l| {
            l.target
                .secrets
                .iter()
                .chain(l.source.iter().flat_map(|s| s.secrets.iter()))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(name: &str, props: ComponentProperties) -> Component {
        Component {
            name: name.to_string(),
            properties: Properties::Component { properties: props },
            traits: None,
        }
    }

    #[test]
    fn default_id_lowercases_and_replaces_non_alphanumerics() {
        assert_eq!(
            default_component_id("rust-http-kv", "Counter"),
            "rust_http_kv-counter"
        );
        assert_eq!(
            default_component_id("My App", "kv.redis"),
            "my_app-kv_redis"
        );
        assert_eq!(default_component_id("hello", "http_1"), "hello-http_1");
        // Non-ASCII letters become `_`, one per character of the lowercased form.
        assert_eq!(default_component_id("café", "Ünïcode"), "caf_-_n_code");
    }

    #[test]
    fn explicit_id_wins() {
        let c = component(
            "webcap",
            ComponentProperties {
                image: Some("img".into()),
                id: Some("httpserver".into()),
                ..Default::default()
            },
        );
        assert_eq!(c.component_id("anything"), "httpserver");
    }

    #[test]
    fn derived_id_uses_manifest_name() {
        let c = component(
            "Http-Component",
            ComponentProperties {
                image: Some("img".into()),
                ..Default::default()
            },
        );
        assert_eq!(c.component_id("hello-world"), "hello_world-http_component");
    }

    #[test]
    fn shared_reference_gets_the_shared_applications_id() {
        let c = component(
            "local-name",
            ComponentProperties {
                application: Some(SharedApplicationComponentProperties {
                    name: "shared-http".into(),
                    component: "httpserver".into(),
                }),
                ..Default::default()
            },
        );
        assert_eq!(c.component_id("mine"), "shared_http-httpserver");
    }

    #[test]
    fn actor_is_an_alias_of_component() {
        let c: Component =
            serde_json::from_str(r#"{"name":"a","type":"actor","properties":{"image":"img"}}"#)
                .expect("parses");
        assert!(!c.is_capability());
        assert_eq!(c.image(), Some("img"));
        let json = serde_json::to_value(&c).expect("encodes");
        assert_eq!(json["type"], "component");
    }

    #[test]
    fn max_instance_reuse_is_optional_and_round_trips() {
        let c: Component = serde_norway::from_str(
            "name: a\ntype: component\nproperties:\n  image: img\n  max_instance_reuse: 64\n",
        )
        .expect("parses");
        assert_eq!(c.props().max_instance_reuse, Some(64));
        let json = serde_json::to_value(&c).expect("encodes");
        assert_eq!(json["properties"]["max_instance_reuse"], 64);
        let plain: Component =
            serde_json::from_str(r#"{"name":"a","type":"component","properties":{"image":"img"}}"#)
                .expect("parses");
        assert_eq!(plain.props().max_instance_reuse, None);
        let json = serde_json::to_value(&plain).expect("encodes");
        assert!(
            json["properties"].get("max_instance_reuse").is_none(),
            "{json}"
        );
    }

    #[test]
    fn unknown_property_is_rejected() {
        let err = serde_json::from_str::<Component>(
            r#"{"name":"a","type":"component","properties":{"image":"img","replicas":2}}"#,
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("replicas"), "{err}");
    }
}
