//! The host's in-memory copy of the lattice buckets, and what a change means.

use std::collections::{BTreeMap, HashMap};

use async_nats::jetstream::kv::{Entry, Operation};
use trellis_interfaces::claims::StoredClaims;
use trellis_interfaces::ctl::ClaimsMap;
use trellis_interfaces::link::{ComponentSpecification, Link};

use super::Bucket;

const COMPONENT_PREFIX: &str = "COMPONENT_";
const CLAIMS_PREFIX: &str = "CLAIMS_";

/// What a KV entry changed, for the parts of the host that react.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatticeChange {
    /// The spec (and so the links) of a component or provider id changed.
    Spec(String),
    /// A named config changed or was deleted.
    Config(String),
    /// Nothing the host acts on (claims, legacy keys, malformed values).
    Other,
}

/// Component specs, claims and named config as last seen in KV.
#[derive(Debug, Default)]
pub struct LatticeView {
    specs: HashMap<String, ComponentSpecification>,
    claims: BTreeMap<String, StoredClaims>,
    configs: HashMap<String, HashMap<String, String>>,
}

impl LatticeView {
    /// Applies one KV entry.
    pub fn apply(&mut self, bucket: Bucket, entry: &Entry) -> LatticeChange {
        let deleted = matches!(entry.operation, Operation::Delete | Operation::Purge);
        match bucket {
            Bucket::Config => {
                if deleted {
                    self.configs.remove(&entry.key);
                } else {
                    match serde_json::from_slice::<HashMap<String, String>>(&entry.value) {
                        Ok(values) => {
                            self.configs.insert(entry.key.clone(), values);
                        }
                        Err(e) => {
                            tracing::warn!(config = %entry.key, error = %e, "ignoring config that is not a JSON object of strings");
                            return LatticeChange::Other;
                        }
                    }
                }
                LatticeChange::Config(entry.key.clone())
            }
            Bucket::Lattice => {
                if let Some(id) = entry.key.strip_prefix(COMPONENT_PREFIX) {
                    if deleted {
                        self.specs.remove(id);
                    } else {
                        match serde_json::from_slice::<ComponentSpecification>(&entry.value) {
                            Ok(spec) => {
                                self.specs.insert(id.to_string(), spec);
                            }
                            Err(e) => {
                                tracing::warn!(key = %entry.key, error = %e, "ignoring malformed component spec");
                                return LatticeChange::Other;
                            }
                        }
                    }
                    LatticeChange::Spec(id.to_string())
                } else if let Some(key) = entry.key.strip_prefix(CLAIMS_PREFIX) {
                    if deleted {
                        self.claims.remove(key);
                    } else {
                        match serde_json::from_slice::<StoredClaims>(&entry.value) {
                            Ok(claims) => {
                                self.claims.insert(key.to_string(), claims);
                            }
                            Err(e) => {
                                tracing::warn!(key = %entry.key, error = %e, "ignoring malformed stored claims");
                            }
                        }
                    }
                    LatticeChange::Other
                } else {
                    LatticeChange::Other
                }
            }
        }
    }

    /// Every link in the lattice, source by source.
    pub fn links(&self) -> Vec<Link> {
        let mut ids: Vec<&String> = self.specs.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| self.specs.get(id))
            .flat_map(|s| s.links.iter().cloned())
            .collect()
    }

    /// Links whose source is `id`.
    pub fn links_from(&self, id: &str) -> Vec<Link> {
        self.specs
            .get(id)
            .map(|s| s.links.clone())
            .unwrap_or_default()
    }

    /// Names of the configs that links hand to `id`: `source_config` of the
    /// links it makes, `target_config` of the links made to it. wasmCloud 1.x
    /// gave link config to providers only; Trellis gives it to components too.
    pub fn link_config_names(&self, id: &str) -> Vec<String> {
        let mut names = Vec::new();
        for spec in self.specs.values() {
            for link in &spec.links {
                if link.source_id == id {
                    names.extend(link.source_config.iter().cloned());
                }
                if link.target == id {
                    names.extend(link.target_config.iter().cloned());
                }
            }
        }
        names
    }

    /// What a component reads through `wasi:config`: the configs of its links
    /// merged first, then its own named configs over them (its own win).
    pub fn component_config(&self, id: &str, own: &[String]) -> BTreeMap<String, String> {
        let mut merged = self.merged_config(&self.link_config_names(id));
        merged.extend(self.merged_config(own));
        merged
    }

    /// A named config, if it exists.
    pub fn config(&self, name: &str) -> Option<&HashMap<String, String>> {
        self.configs.get(name)
    }

    /// The merge of named configs, later names overriding earlier ones.
    pub fn merged_config(&self, names: &[String]) -> BTreeMap<String, String> {
        let mut merged = BTreeMap::new();
        for name in names {
            if let Some(values) = self.configs.get(name) {
                merged.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        merged
    }

    /// Stored claims as `claims.get` answers them: string maps with both the
    /// long and the short key names, tags comma-joined.
    pub fn claims(&self) -> Vec<ClaimsMap> {
        self.claims
            .values()
            .map(StoredClaims::to_claims_map)
            .collect()
    }
}
