//! Component traits: scalers (`spreadscaler`, `daemonscaler`), links, and anything else
//! (kept as raw JSON, as wadm does, and ignored at deploy).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::component::{ConfigProperty, SecretProperty};
use super::{DAEMONSCALER_TRAIT, LINK_TRAIT, SPREADSCALER_TRAIT};

/// One entry of a component's `traits`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trait {
    /// `spreadscaler`, `daemonscaler`, `link`, or a custom type (ignored by wadm).
    #[serde(rename = "type")]
    pub trait_type: String,
    /// The properties; their shape, not `type`, decides the variant (as in wadm).
    pub properties: TraitProperty,
}

impl Trait {
    /// Whether the type is `link`.
    pub fn is_link(&self) -> bool {
        self.trait_type == LINK_TRAIT
    }

    /// Whether the type is `spreadscaler` or `daemonscaler`.
    pub fn is_scaler(&self) -> bool {
        self.trait_type == SPREADSCALER_TRAIT || self.trait_type == DAEMONSCALER_TRAIT
    }
}

/// Trait properties, decided by shape: a link, else a scaler, else raw JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[allow(
    clippy::large_enum_variant,
    reason = "mirrors wadm's enum; manifests hold a handful of traits"
)]
pub enum TraitProperty {
    /// `namespace`, `package`, `interfaces`, `target`, … .
    Link(LinkProperty),
    /// `instances` (or `replicas`) and `spread`.
    SpreadScaler(SpreadScalerProperty),
    /// Anything else. Validation rejects it on `link` and scaler traits.
    Custom(serde_json::Value),
}

/// A link from the component carrying the trait (the source) to `target`.
///
/// Reads both the current form (`source: {config, secrets}`, `target: {name, config,
/// secrets}`) and the pre-0.13 form (`target: NAME` with `source_config` /
/// `target_config`), folding the old one into `source` / `target` exactly as wadm does:
/// `source` wins over `source_config`, and `target_config` is used only when `target`
/// is a plain name. Like wadm, keys it does not know are ignored; they are listed in
/// [`ignored_keys`](Self::ignored_keys) so validation can warn about them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawLinkProperty")]
pub struct LinkProperty {
    /// WIT namespace, e.g. `wasi`.
    pub namespace: String,
    /// WIT package, e.g. `keyvalue`.
    pub package: String,
    /// WIT interfaces of the package, e.g. `["store", "atomics"]`.
    pub interfaces: Vec<String>,
    /// Config and secrets handed to the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ConfigDefinition>,
    /// The target component (by manifest name) and config and secrets handed to it.
    pub target: TargetConfig,
    /// Link name; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated `source_config` as written (already folded into `source`); never
    /// written back.
    #[serde(skip)]
    pub source_config: Option<Vec<ConfigProperty>>,
    /// Deprecated `target_config` as written (folded into `target` when `target` is a
    /// plain name, ignored otherwise, as in wadm); never written back.
    #[serde(skip)]
    pub target_config: Option<Vec<ConfigProperty>>,
    /// Keys of the link properties that neither wadm nor Trellis reads.
    #[serde(skip)]
    pub ignored_keys: Vec<String>,
}

impl LinkProperty {
    /// The link name, `default` when none is given.
    pub fn link_name(&self) -> &str {
        self.name
            .as_deref()
            .unwrap_or(crate::link::DEFAULT_LINK_NAME)
    }

    /// `namespace:package`, e.g. `wasi:keyvalue`.
    pub fn wit_package(&self) -> String {
        format!("{}:{}", self.namespace, self.package)
    }
}

/// Link properties as written, before the deprecated forms are folded in.
#[derive(Deserialize)]
struct RawLinkProperty {
    namespace: String,
    package: String,
    interfaces: Vec<String>,
    #[serde(default)]
    source: Option<ConfigDefinition>,
    target: RawTarget,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    source_config: Option<Vec<ConfigProperty>>,
    #[serde(default)]
    target_config: Option<Vec<ConfigProperty>>,
    #[serde(flatten)]
    other: BTreeMap<String, IgnoredAny>,
}

impl From<RawLinkProperty> for LinkProperty {
    fn from(raw: RawLinkProperty) -> Self {
        let target = match raw.target {
            RawTarget::Config(target) => target,
            RawTarget::Name(name) => TargetConfig {
                name,
                config: raw.target_config.clone().unwrap_or_default(),
                secrets: Vec::new(),
            },
        };
        let source = raw.source.or_else(|| {
            raw.source_config.clone().map(|config| ConfigDefinition {
                config,
                secrets: Vec::new(),
            })
        });
        LinkProperty {
            namespace: raw.namespace,
            package: raw.package,
            interfaces: raw.interfaces,
            source,
            target,
            name: raw.name,
            source_config: raw.source_config,
            target_config: raw.target_config,
            ignored_keys: raw.other.into_keys().collect(),
        }
    }
}

/// `target`: a component name (deprecated form) or a [`TargetConfig`] map.
enum RawTarget {
    Name(String),
    Config(TargetConfig),
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TargetVisitor;
        impl<'de> Visitor<'de> for TargetVisitor {
            type Value = RawTarget;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a component name or a map with `name`, `config` and `secrets`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTarget, E> {
                Ok(RawTarget::Name(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawTarget, A::Error> {
                TargetConfig::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawTarget::Config)
            }
        }
        deserializer.deserialize_any(TargetVisitor)
    }
}

/// Config and secrets for the source side of a link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDefinition {
    /// Named configs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigProperty>,
    /// Secret references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretProperty>,
}

/// The target side of a link: which component, and config and secrets for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetConfig {
    /// Name of a component of this manifest.
    pub name: String,
    /// Named configs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigProperty>,
    /// Secret references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretProperty>,
}

/// Properties of `spreadscaler` and `daemonscaler`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpreadScalerProperty {
    /// For components, max concurrent instances; for providers, number of hosts
    /// (`daemonscaler`: per matching host).
    #[serde(alias = "replicas")]
    pub instances: usize,
    /// Weighted host-label requirements; none means "any host".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<Spread>,
}

/// One weighted placement requirement of a scaler.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// Spread name (annotated on what it starts as `wasmcloud.dev/spread_name`).
    pub name: String,
    /// Host labels that must all match exactly. wadm requires the key but writes
    /// nothing when it is empty; Trellis reads an absent key as `{}` and always writes
    /// it, so its output reads back in both.
    #[serde(default)]
    pub requirements: BTreeMap<String, String>,
    /// Relative weight, [`DEFAULT_SPREAD_WEIGHT`](super::DEFAULT_SPREAD_WEIGHT) when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> TraitProperty {
        serde_json::from_str(json).expect("trait properties parse")
    }

    #[test]
    fn shape_decides_the_variant() {
        assert!(matches!(
            parse(r#"{"namespace":"wasi","package":"http","interfaces":[],"target":"x"}"#),
            TraitProperty::Link(_)
        ));
        assert!(matches!(
            parse(r#"{"replicas":2}"#),
            TraitProperty::SpreadScaler(SpreadScalerProperty { instances: 2, .. })
        ));
        assert!(matches!(
            parse(r#"{"instances":2,"clouds":["aws"]}"#),
            TraitProperty::Custom(_)
        ));
    }

    #[test]
    fn deprecated_forms_fold_into_source_and_target() {
        let TraitProperty::Link(link) = parse(
            r#"{"namespace":"wasi","package":"blobstore","interfaces":["blobstore"],
                "target":"fs","target_config":[{"name":"root","properties":{"root":"/tmp"}}],
                "source_config":[{"name":"src"}]}"#,
        ) else {
            panic!("not a link");
        };
        assert_eq!(link.target.name, "fs");
        assert_eq!(
            link.target.config.first().map(|c| c.name.as_str()),
            Some("root")
        );
        let source = link.source.as_ref().expect("source folded in");
        assert_eq!(source.config.first().map(|c| c.name.as_str()), Some("src"));
        assert!(link.source_config.is_some() && link.target_config.is_some());
        // Written back in the current form only.
        let json = serde_json::to_value(&link).expect("encodes");
        assert!(json.get("source_config").is_none() && json.get("target_config").is_none());
        assert_eq!(json["target"]["name"], "fs");
    }

    #[test]
    fn source_block_wins_and_target_config_needs_a_plain_target() {
        let TraitProperty::Link(link) = parse(
            r#"{"namespace":"n","package":"p","interfaces":["i"],
                "source":{"config":[{"name":"new"}]},"source_config":[{"name":"old"}],
                "target":{"name":"t"},"target_config":[{"name":"ignored"}]}"#,
        ) else {
            panic!("not a link");
        };
        let source = link.source.as_ref().expect("source");
        assert_eq!(source.config.first().map(|c| c.name.as_str()), Some("new"));
        assert!(link.target.config.is_empty());
    }

    #[test]
    fn unknown_link_keys_are_kept_for_a_warning() {
        let TraitProperty::Link(link) =
            parse(r#"{"namespace":"n","package":"p","interfaces":["i"],"target":"t","sorce":{}}"#)
        else {
            panic!("not a link");
        };
        assert_eq!(link.ignored_keys, vec!["sorce".to_string()]);
        assert_eq!(link.link_name(), "default");
        assert_eq!(link.wit_package(), "n:p");
    }

    #[test]
    fn spread_requirements_round_trip_when_empty() {
        let spread = Spread {
            name: "any".into(),
            requirements: BTreeMap::new(),
            weight: None,
        };
        let json = serde_json::to_string(&spread).expect("encodes");
        assert_eq!(json, r#"{"name":"any","requirements":{}}"#);
        let back: Spread = serde_json::from_str(r#"{"name":"any"}"#).expect("parses");
        assert_eq!(back, spread);
    }
}
