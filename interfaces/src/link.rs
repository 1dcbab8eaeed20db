//! Links between components and providers (PROTOCOL.md §3.3) and the per-source
//! [`ComponentSpecification`] stored in `LATTICEDATA_{lattice}` under `COMPONENT_{id}`.
//!
//! The uniqueness rules of wasmCloud's `link.put` live here as pure functions so the
//! host, tools and tests apply exactly the same ones.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The link name used when none is given.
pub const DEFAULT_LINK_NAME: &str = "default";

fn default_link_name() -> String {
    DEFAULT_LINK_NAME.to_string()
}

/// A link: `source_id` may call `target` on the listed interfaces of
/// `wit_namespace:wit_package`. Body of `link.put`, element of `link.get`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Link {
    /// The caller (component or provider id).
    pub source_id: String,
    /// The callee (component or provider id).
    pub target: String,
    /// Link name; lets one source use several targets for the same interface.
    #[serde(default = "default_link_name")]
    pub name: String,
    /// WIT namespace, e.g. `wasi` in `wasi:keyvalue/store`.
    pub wit_namespace: String,
    /// WIT package, e.g. `keyvalue` in `wasi:keyvalue/store`.
    pub wit_package: String,
    /// WIT interfaces, e.g. `["store", "atomics"]`.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Named configs handed to the source (providers only).
    #[serde(default)]
    pub source_config: Vec<String>,
    /// Named configs handed to the target (providers only).
    #[serde(default)]
    pub target_config: Vec<String>,
}

impl Link {
    /// Whether `other` would be rejected next to `self`: same source, namespace,
    /// package and name, at least one interface in common, and a different target.
    #[must_use]
    pub fn conflicts_with(&self, other: &Link) -> bool {
        self.source_id == other.source_id
            && self.wit_namespace == other.wit_namespace
            && self.wit_package == other.wit_package
            && self.name == other.name
            && self.target != other.target
            && self.interfaces.iter().any(|i| other.interfaces.contains(i))
    }

    /// Whether `other` is the same link (same source, target, namespace, package and
    /// name), so that putting it replaces `self` in place.
    #[must_use]
    pub fn same_key(&self, other: &Link) -> bool {
        self.source_id == other.source_id
            && self.target == other.target
            && self.wit_namespace == other.wit_namespace
            && self.wit_package == other.wit_package
            && self.name == other.name
    }

    /// The interfaces as unversioned WIT instance names, `ns:pkg/iface`.
    pub fn qualified_interfaces(&self) -> impl Iterator<Item = String> + '_ {
        self.interfaces
            .iter()
            .map(|i| format!("{}:{}/{}", self.wit_namespace, self.wit_package, i))
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` -> `{}` on {}:{}/{{{}}} (link name `{}`)",
            self.source_id,
            self.target,
            self.wit_namespace,
            self.wit_package,
            self.interfaces.join(","),
            self.name
        )
    }
}

/// Body of `link.del`. Interfaces and target are not part of the key: the first link
/// of `source_id` matching namespace, package and name is removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteInterfaceLinkDefinitionRequest {
    /// The link's source.
    pub source_id: String,
    /// Link name (default `"default"`).
    #[serde(default = "default_link_name")]
    pub name: String,
    /// WIT namespace.
    pub wit_namespace: String,
    /// WIT package.
    pub wit_package: String,
}

/// What the lattice knows about one component or provider id: its image and the
/// links it is the source of. Stored as JSON in `LATTICEDATA_{lattice}`,
/// key `COMPONENT_{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentSpecification {
    /// Image reference of the component or provider.
    #[serde(default)]
    pub url: String,
    /// Links whose source is this id.
    #[serde(default)]
    pub links: Vec<Link>,
}

/// A `link.put` rejected because an existing link claims an overlapping interface
/// with a different target.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "link already exists with different target, consider deleting the existing link or using a different link name: existing link {existing}"
)]
pub struct LinkConflict {
    /// The link already in place (boxed to keep `Result`s small).
    pub existing: Box<Link>,
}

impl ComponentSpecification {
    /// A spec for an image with no links yet.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            links: Vec::new(),
        }
    }

    /// Adds `link`, replacing a link with the same key in place, or rejects it if it
    /// conflicts with an existing link (see [`Link::conflicts_with`]).
    pub fn put_link(&mut self, link: Link) -> Result<(), LinkConflict> {
        if let Some(existing) = self.links.iter().find(|l| l.conflicts_with(&link)) {
            return Err(LinkConflict {
                existing: Box::new(existing.clone()),
            });
        }
        match self.links.iter_mut().find(|l| l.same_key(&link)) {
            Some(slot) => *slot = link,
            None => self.links.push(link),
        }
        Ok(())
    }

    /// Removes and returns the first link matching namespace, package and name (and
    /// `source_id`, when given). `None` if there was none: deleting is idempotent.
    pub fn remove_link(
        &mut self,
        source_id: Option<&str>,
        wit_namespace: &str,
        wit_package: &str,
        name: &str,
    ) -> Option<Link> {
        let index = self.links.iter().position(|l| {
            source_id.is_none_or(|s| l.source_id == s)
                && l.wit_namespace == wit_namespace
                && l.wit_package == wit_package
                && l.name == name
        })?;
        Some(self.links.remove(index))
    }

    /// [`ComponentSpecification::remove_link`] driven by a `link.del` request.
    pub fn remove_requested(&mut self, req: &DeleteInterfaceLinkDefinitionRequest) -> Option<Link> {
        self.remove_link(
            Some(&req.source_id),
            &req.wit_namespace,
            &req.wit_package,
            &req.name,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link(target: &str, name: &str, ifaces: &[&str]) -> Link {
        Link {
            source_id: "src".into(),
            target: target.into(),
            name: name.into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: ifaces.iter().map(|s| s.to_string()).collect(),
            ..Link::default()
        }
    }

    #[test]
    fn link_defaults_name_and_configs() {
        let l: Link = serde_json::from_value(json!({
            "source_id": "a", "target": "b", "wit_namespace": "wasi",
            "wit_package": "http", "interfaces": ["incoming-handler"]
        }))
        .unwrap();
        assert_eq!(l.name, "default");
        assert!(l.source_config.is_empty() && l.target_config.is_empty());
        let d: DeleteInterfaceLinkDefinitionRequest = serde_json::from_value(
            json!({"source_id": "a", "wit_namespace": "wasi", "wit_package": "http"}),
        )
        .unwrap();
        assert_eq!(d.name, "default");
    }

    #[test]
    fn conflict_needs_overlap_same_name_and_other_target() {
        let a = link("redis", "default", &["store", "atomics"]);
        assert!(a.conflicts_with(&link("nats", "default", &["atomics"])));
        assert!(!a.conflicts_with(&link("nats", "default", &["batch"])));
        assert!(!a.conflicts_with(&link("nats", "other", &["store"])));
        assert!(!a.conflicts_with(&link("redis", "default", &["store"])));
        assert!(a.same_key(&link("redis", "default", &["batch"])));
        assert!(!a.same_key(&link("redis", "other", &["store"])));
    }

    #[test]
    fn put_link_replaces_appends_or_rejects() {
        let mut spec = ComponentSpecification::new("registry.example/x:1");
        spec.put_link(link("redis", "default", &["store"])).unwrap();
        spec.put_link(link("redis", "default", &["store", "atomics"]))
            .unwrap();
        assert_eq!(spec.links.len(), 1);
        assert_eq!(spec.links[0].interfaces, vec!["store", "atomics"]);
        spec.put_link(link("nats", "default", &["batch"])).unwrap();
        assert_eq!(spec.links.len(), 2);
        let err = spec
            .put_link(link("other", "default", &["atomics"]))
            .unwrap_err();
        assert_eq!(err.existing.target, "redis");
        let msg = err.to_string();
        assert!(msg.starts_with("link already exists with different target, consider deleting the existing link or using a different link name"), "{msg}");
        assert!(msg.contains("`redis`"), "{msg}");
        assert_eq!(spec.links.len(), 2);
    }

    #[test]
    fn remove_link_takes_first_match_only() {
        let mut spec = ComponentSpecification::new("x");
        spec.put_link(link("redis", "default", &["store"])).unwrap();
        spec.put_link(link("nats", "default", &["batch"])).unwrap();
        let removed = spec
            .remove_link(None, "wasi", "keyvalue", "default")
            .unwrap();
        assert_eq!(removed.target, "redis");
        assert_eq!(spec.links.len(), 1);
        assert!(
            spec.remove_link(Some("nobody"), "wasi", "keyvalue", "default")
                .is_none()
        );
        let req = DeleteInterfaceLinkDefinitionRequest {
            source_id: "src".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
        };
        assert_eq!(spec.remove_requested(&req).unwrap().target, "nats");
        assert!(spec.remove_requested(&req).is_none());
    }

    #[test]
    fn spec_round_trips() {
        let v = json!({"url": "registry.example/wasmcloud/http-server:0.27.0", "links": [{
            "source_id": "s", "target": "t", "name": "default", "wit_namespace": "wasi",
            "wit_package": "http", "interfaces": ["incoming-handler"],
            "source_config": ["c"], "target_config": []}]});
        let spec: ComponentSpecification = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&spec).unwrap(), v);
        let l = &spec.links[0];
        assert_eq!(
            l.qualified_interfaces().collect::<Vec<_>>(),
            vec!["wasi:http/incoming-handler"]
        );
    }
}
