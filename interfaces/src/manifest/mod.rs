//! wadm 0.21 application manifests (`core.oam.dev/v1beta1`, PROTOCOL.md §6.1): the
//! model, parsing from YAML or JSON, and offline validation.
//!
//! [`Manifest`] and the types under it read what wadm 0.21.1 reads: the same required
//! fields, `deny_unknown_fields` in the same places, the same untagged trait properties
//! and deprecated link forms, so an application file written for wasmCloud 1.x deploys
//! on Trellis unchanged. Two differences, both on purpose: a spread without
//! `requirements` reads as `{}` (wadm omits an empty map when writing, then cannot read
//! its own output), and link properties without `target` are not a link (wadm reads a
//! link to `""`, then reports that target missing). [`validate`] then gives wadm's
//! verdicts, with messages that name the component, trait and field at fault.
//!
//! `component.rs` holds components and their properties, `traits.rs` the scaler and
//! link traits, `validation/` the rules.

mod component;
mod traits;
pub mod validation;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use component::{
    CapabilityProperties, Component, ComponentProperties, ConfigProperty, Properties,
    SecretProperty, SecretSourceProperty, SharedApplicationComponentProperties,
    default_component_id,
};
pub use traits::{
    ConfigDefinition, LinkProperty, Spread, SpreadScalerProperty, TargetConfig, Trait,
    TraitProperty,
};
pub use validation::{ValidationFailure, ValidationFailureLevel, ValidationOutput, validate};

/// The only `apiVersion` wadm understands.
pub const OAM_VERSION: &str = "core.oam.dev/v1beta1";
/// The only `kind` wadm understands.
pub const APPLICATION_KIND: &str = "Application";
/// Annotation holding the application version (wadm assigns a ULID when it is absent).
pub const VERSION_ANNOTATION_KEY: &str = "version";
/// Annotation holding a human description of the application.
pub const DESCRIPTION_ANNOTATION_KEY: &str = "description";
/// Annotation that marks an application whose components other applications may use.
pub const SHARED_ANNOTATION_KEY: &str = "experimental.wasmcloud.dev/shared";
/// A version string wadm reserves for "newest" and refuses as a manifest version.
pub const LATEST_VERSION: &str = "latest";
/// Trait type of the scaler that spreads instances over labelled hosts.
pub const SPREADSCALER_TRAIT: &str = "spreadscaler";
/// Trait type of the scaler that runs instances on every matching host.
pub const DAEMONSCALER_TRAIT: &str = "daemonscaler";
/// Trait type of a link from the component to a target.
pub const LINK_TRAIT: &str = "link";
/// Policy type that secrets must reference.
pub const SECRET_POLICY_TYPE: &str = "policy.secret.wasmcloud.dev/v1alpha1";
/// Weight of a spread that gives none.
pub const DEFAULT_SPREAD_WEIGHT: usize = 100;

/// Why a manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The text is not YAML, or does not have the shape of a wadm application.
    #[error("invalid application manifest (YAML): {0}")]
    Yaml(#[source] serde_norway::Error),
    /// The text is not JSON, or does not have the shape of a wadm application.
    #[error("invalid application manifest (JSON): {0}")]
    Json(#[source] serde_json::Error),
    /// Bytes of unknown format were neither a YAML nor a JSON application.
    #[error("invalid application manifest: as YAML: {yaml}; as JSON: {json}")]
    Unrecognized {
        /// The YAML parser's complaint.
        yaml: serde_norway::Error,
        /// The JSON parser's complaint.
        json: serde_json::Error,
    },
    /// The manifest could not be written as JSON.
    #[error("failed to encode application manifest as JSON: {0}")]
    EncodeJson(#[source] serde_json::Error),
    /// The manifest could not be written as YAML.
    #[error("failed to encode application manifest as YAML: {0}")]
    EncodeYaml(#[source] serde_norway::Error),
}

/// A wadm application: `apiVersion`, `kind`, `metadata` and `spec`, nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// OAM version; [`OAM_VERSION`] for every manifest wadm 0.21 deploys.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Manifest kind; [`APPLICATION_KIND`].
    pub kind: String,
    /// Name, annotations and labels.
    pub metadata: Metadata,
    /// Components and policies.
    pub spec: Specification,
}

/// `metadata` of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Application name, unique per lattice (`^[-\w]+$`).
    pub name: String,
    /// OAM annotations (`version`, `description`, …). wadm requires the key to be present,
    /// so it has no default; `{}` is fine. Always written, so wadm can read our output.
    pub annotations: BTreeMap<String, String>,
    /// OAM labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `spec` of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Specification {
    /// Components and capability providers, in file order.
    pub components: Vec<Component>,
    /// Application-wide policies (today: secret backends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
}

/// A named policy, e.g. which secrets backend a secret is fetched from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Name that secrets refer to in `properties.policy`.
    pub name: String,
    /// Policy settings; a secret policy needs `backend`.
    pub properties: BTreeMap<String, String>,
    /// Policy type; [`SECRET_POLICY_TYPE`] for secret policies.
    #[serde(rename = "type")]
    pub policy_type: String,
}

impl Manifest {
    /// Parses a YAML manifest (JSON is YAML too, so this also reads JSON).
    pub fn from_yaml(text: &str) -> Result<Self, ManifestError> {
        serde_norway::from_str(text).map_err(ManifestError::Yaml)
    }

    /// Parses a JSON manifest.
    pub fn from_json(text: &str) -> Result<Self, ManifestError> {
        serde_json::from_str(text).map_err(ManifestError::Json)
    }

    /// Parses bytes of unknown format the way wadm's `model.put` does without a
    /// `Content-Type`: YAML first, then JSON, reporting both complaints if neither fits.
    pub fn from_yaml_or_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_norway::from_slice(bytes).or_else(|yaml| {
            serde_json::from_slice(bytes).map_err(|json| ManifestError::Unrecognized { yaml, json })
        })
    }

    /// The manifest as JSON, the form wadm stores and publishes.
    pub fn to_json(&self) -> Result<String, ManifestError> {
        serde_json::to_string(self).map_err(ManifestError::EncodeJson)
    }

    /// The manifest as YAML.
    pub fn to_yaml(&self) -> Result<String, ManifestError> {
        serde_norway::to_string(self).map_err(ManifestError::EncodeYaml)
    }

    /// The application name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The `version` annotation, if any (wadm assigns a ULID to manifests without one).
    pub fn version(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(VERSION_ANNOTATION_KEY)
            .map(String::as_str)
    }

    /// The `description` annotation, if any.
    pub fn description(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(DESCRIPTION_ANNOTATION_KEY)
            .map(String::as_str)
    }

    /// Whether other applications may use this application's components
    /// (annotation `experimental.wasmcloud.dev/shared: "true"`).
    pub fn is_shared(&self) -> bool {
        self.metadata
            .annotations
            .get(SHARED_ANNOTATION_KEY)
            .is_some_and(|v| v == "true")
    }

    /// Components and providers in file order.
    pub fn components(&self) -> impl Iterator<Item = &Component> {
        self.spec.components.iter()
    }

    /// The first component with this name.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components().find(|c| c.name == name)
    }

    /// Policies in file order.
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.spec.policies.iter()
    }

    /// The first policy with this name.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies().find(|p| p.name == name)
    }

    /// Every link wadm would put, with the component it starts from: traits of type
    /// [`LINK_TRAIT`] whose properties are a [`LinkProperty`]. Traits of another type
    /// (`linkdef`, a 0.x leftover) are ignored by wadm and so are not yielded.
    pub fn links(&self) -> impl Iterator<Item = (&Component, &LinkProperty)> {
        self.components()
            .flat_map(|c| c.links().map(move |link| (c, link)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: small
  annotations:
    version: v1
    description: a small app
spec:
  components:
    - name: hello
      type: component
      properties:
        image: registry.example/example/hello:0.1.0
      traits:
        - type: spreadscaler
          properties:
            replicas: 3
        - type: link
          properties:
            namespace: wasi
            package: keyvalue
            interfaces: [store]
            target: kv
    - name: kv
      type: capability
      properties:
        image: builtin://keyvalue
"#;

    #[test]
    fn parses_accessors_and_links() {
        let m = Manifest::from_yaml(SMALL).expect("parses");
        assert_eq!(m.name(), "small");
        assert_eq!(m.version(), Some("v1"));
        assert_eq!(m.description(), Some("a small app"));
        assert!(!m.is_shared());
        let links: Vec<_> = m.links().collect();
        assert_eq!(links.len(), 1);
        let (source, link) = links.first().expect("one link");
        assert_eq!(source.name, "hello");
        assert_eq!(link.target.name, "kv");
        assert_eq!(m.component("kv").map(|c| c.is_capability()), Some(true));
    }

    #[test]
    fn json_round_trip_is_lossless_and_readable() {
        let m = Manifest::from_yaml(SMALL).expect("parses");
        let json = m.to_json().expect("encodes");
        assert_eq!(Manifest::from_json(&json).expect("re-parses"), m);
        assert_eq!(
            Manifest::from_yaml_or_json(json.as_bytes()).expect("sniffs"),
            m
        );
        let yaml = m.to_yaml().expect("encodes");
        assert_eq!(Manifest::from_yaml(&yaml).expect("re-parses"), m);
    }

    #[test]
    fn empty_annotations_are_written_so_wadm_can_read_them_back() {
        let mut m = Manifest::from_yaml(SMALL).expect("parses");
        m.metadata.annotations.clear();
        let json = m.to_json().expect("encodes");
        assert!(json.contains(r#""annotations":{}"#), "{json}");
        assert_eq!(m.version(), None);
    }

    #[test]
    fn annotations_are_required() {
        let text = SMALL.replace(
            "  annotations:\n    version: v1\n    description: a small app\n",
            "",
        );
        let err = Manifest::from_yaml(&text).expect_err("annotations missing");
        assert!(err.to_string().contains("annotations"), "{err}");
    }

    #[test]
    fn unknown_top_level_key_is_rejected() {
        let text = format!("{SMALL}status: {{}}\n");
        let err = Manifest::from_yaml(&text).expect_err("unknown key");
        assert!(err.to_string().contains("status"), "{err}");
    }

    #[test]
    fn hostile_input_is_refused_not_panicked_on() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(Manifest::from_yaml(&deep).is_err());
        assert!(Manifest::from_json(&deep).is_err());
        // Aliases expanding exponentially inside a custom trait's free-form properties.
        let mut laughs = String::from(
            "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata: {name: x, annotations: {}}\n\
             spec:\n  components:\n    - name: c\n      type: component\n      properties: {image: i}\n      \
             traits:\n        - type: custom\n          properties:\n            l0: &l0 [x, x, x, x, x, x, x, x, x]\n",
        );
        for level in 1..=8 {
            let prev = format!("*l{}", level - 1);
            let items = [prev.as_str(); 9].join(", ");
            laughs.push_str(&format!("            l{level}: &l{level} [{items}]\n"));
        }
        assert!(Manifest::from_yaml(&laughs).is_err());
        assert!(Manifest::from_yaml("").is_err());
        assert!(Manifest::from_yaml_or_json(&[0xff, 0xfe, 0x00]).is_err());
    }

    #[test]
    fn garbage_is_refused_with_both_reasons() {
        let err = Manifest::from_yaml_or_json(b"{not: [valid").expect_err("garbage");
        let msg = err.to_string();
        assert!(msg.contains("as YAML") && msg.contains("as JSON"), "{msg}");
    }
}
