//! What the `wadm_manifests` bucket holds per application, in wadm 0.21's shape
//! (`StoredManifest`, PROTOCOL.md §6.2): every version in the order it was put (no
//! pruning) and the deployed version, under key `{lattice}-{name}`. The key `{lattice}`
//! holds the sorted list of application names ([`model_set_key`]).
//!
//! ```json
//! {"manifests": {"v0.0.1": {…manifest…}, "v0.0.2": {…}}, "deployed_version": "v0.0.1"}
//! ```
//!
//! Pure data; reading and writing the bucket is [`crate::server`]'s job.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use trellis_interfaces::manifest::{LATEST_VERSION, Manifest};

/// Key of an application in `wadm_manifests`: `{lattice}-{name}`.
#[must_use]
pub fn model_key(lattice: &str, name: &str) -> String {
    format!("{lattice}-{name}")
}

/// Key of the list of application names of a lattice: `{lattice}`.
#[must_use]
pub fn model_set_key(lattice: &str) -> String {
    lattice.to_string()
}

/// Why a version could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddVersionError {
    /// The version is already stored.
    #[error(
        "manifest version {0} already exists; put it with a new `version` annotation (or none, to get a generated one)"
    )]
    Exists(String),
    /// The manifest has no `version` annotation (the caller assigns one first).
    #[error("manifest has no version annotation")]
    NoVersion,
    /// The manifest belongs to another application.
    #[error("manifest is for application {found}, not {expected}")]
    OtherApplication {
        /// The stored application.
        expected: String,
        /// The manifest's name.
        found: String,
    },
}

/// All versions of one application, and which one is deployed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredManifest {
    /// Versions in insertion order, newest last (a JSON object, order kept).
    #[serde(with = "ordered")]
    manifests: Vec<(String, Manifest)>,
    /// The deployed version, `null` when undeployed.
    #[serde(default)]
    deployed_version: Option<String>,
}

impl StoredManifest {
    /// The application name (of the newest version); empty when there is none.
    #[must_use]
    pub fn name(&self) -> &str {
        self.current().map_or("", Manifest::name)
    }

    /// How many versions are stored.
    #[must_use]
    pub fn count(&self) -> usize {
        self.manifests.len()
    }

    /// Whether no version is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.manifests.is_empty()
    }

    /// The newest version's manifest.
    #[must_use]
    pub fn current(&self) -> Option<&Manifest> {
        self.manifests.last().map(|(_, m)| m)
    }

    /// The newest version; empty when there is none.
    #[must_use]
    pub fn current_version(&self) -> &str {
        self.manifests.last().map_or("", |(v, _)| v.as_str())
    }

    /// The manifest of `version`.
    #[must_use]
    pub fn get_version(&self, version: &str) -> Option<&Manifest> {
        self.manifests
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, m)| m)
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        self.manifests.iter().map(|(v, _)| v.as_str())
    }

    /// The deployed version, if any.
    #[must_use]
    pub fn deployed_version(&self) -> Option<&str> {
        self.deployed_version.as_deref()
    }

    /// The deployed version's manifest, if any.
    #[must_use]
    pub fn deployed(&self) -> Option<&Manifest> {
        self.deployed_version().and_then(|v| self.get_version(v))
    }

    /// Whether `version` is the deployed one.
    #[must_use]
    pub fn is_deployed(&self, version: &str) -> bool {
        self.deployed_version() == Some(version)
    }

    /// Adds `manifest` as the newest version. Its `version` annotation must be set and
    /// new; re-putting a stored version is refused, as in wadm.
    pub fn add_version(&mut self, manifest: Manifest) -> Result<(), AddVersionError> {
        let version = manifest
            .version()
            .ok_or(AddVersionError::NoVersion)?
            .to_string();
        if let Some(current) = self.current()
            && current.name() != manifest.name()
        {
            return Err(AddVersionError::OtherApplication {
                expected: current.name().to_string(),
                found: manifest.name().to_string(),
            });
        }
        if self.get_version(&version).is_some() {
            return Err(AddVersionError::Exists(version));
        }
        self.manifests.push((version, manifest));
        Ok(())
    }

    /// Resolves a deploy request's version: `None`, empty or `latest` mean the newest.
    #[must_use]
    pub fn resolve_version(&self, requested: Option<&str>) -> Option<&str> {
        match requested {
            None | Some("") | Some(LATEST_VERSION) => {
                self.manifests.last().map(|(v, _)| v.as_str())
            }
            Some(v) => self
                .manifests
                .iter()
                .find(|(s, _)| s == v)
                .map(|(s, _)| s.as_str()),
        }
    }

    /// Marks the requested version deployed (see [`Self::resolve_version`]); returns the
    /// version, or `None` when it is not stored.
    pub fn deploy(&mut self, requested: Option<&str>) -> Option<String> {
        let version = self.resolve_version(requested)?.to_string();
        self.deployed_version = Some(version.clone());
        Some(version)
    }

    /// Marks the application undeployed; whether it was deployed.
    pub fn undeploy(&mut self) -> bool {
        self.deployed_version.take().is_some()
    }

    /// Removes `version`; whether it was stored. Deleting the deployed version
    /// undeploys the application.
    pub fn delete_version(&mut self, version: &str) -> bool {
        let before = self.manifests.len();
        self.manifests.retain(|(v, _)| v != version);
        let deleted = self.manifests.len() != before;
        if deleted && self.is_deployed(version) {
            self.deployed_version = None;
        }
        deleted
    }
}

/// A list of `(version, manifest)` as a JSON object whose key order is kept (wadm uses
/// an `IndexMap`).
mod ordered {
    use super::*;

    pub(super) fn serialize<S: Serializer>(
        entries: &[(String, Manifest)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (version, manifest) in entries {
            map.serialize_entry(version, manifest)?;
        }
        map.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, Manifest)>, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Vec<(String, Manifest)>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of version to manifest")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = access.next_entry::<String, Manifest>()? {
                    out.push(entry);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str, version: &str) -> Manifest {
        Manifest::from_yaml(&format!(
            "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: {name}\n  annotations:\n    version: {version}\nspec:\n  components: []\n"
        ))
        .unwrap()
    }

    #[test]
    fn versions_keep_order_through_json() {
        let mut stored = StoredManifest::default();
        for v in ["v9", "v1", "v5"] {
            stored.add_version(manifest("app", v)).unwrap();
        }
        assert_eq!(stored.deploy(Some("v1")).as_deref(), Some("v1"));
        let json = serde_json::to_string(&stored).unwrap();
        assert!(json.find("\"v9\"").unwrap() < json.find("\"v1\"").unwrap());
        assert!(json.ends_with(r#""deployed_version":"v1"}"#), "{json}");
        let back: StoredManifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, stored);
        assert_eq!(back.versions().collect::<Vec<_>>(), ["v9", "v1", "v5"]);
        assert_eq!(back.current_version(), "v5");
    }

    #[test]
    fn add_deploy_delete() {
        let mut stored = StoredManifest::default();
        stored.add_version(manifest("app", "v1")).unwrap();
        assert_eq!(
            stored.add_version(manifest("app", "v1")),
            Err(AddVersionError::Exists("v1".into()))
        );
        assert!(matches!(
            stored.add_version(manifest("other", "v2")),
            Err(AddVersionError::OtherApplication { .. })
        ));
        stored.add_version(manifest("app", "v2")).unwrap();
        assert_eq!(stored.deploy(Some("latest")).as_deref(), Some("v2"));
        assert_eq!(stored.deploy(Some("v3")), None);
        assert!(stored.is_deployed("v2"));
        assert!(stored.delete_version("v2"));
        assert_eq!(stored.deployed_version(), None);
        assert!(!stored.delete_version("v2"));
        assert!(!stored.undeploy());
        assert_eq!(stored.current_version(), "v1");
    }
}
