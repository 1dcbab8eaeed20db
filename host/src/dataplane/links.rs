//! The link table: where an import of a component goes. Built from the
//! lattice view whenever a `COMPONENT_*` spec changes (not per call), keyed
//! by `(source, namespace:package/interface, link name)`.

use std::collections::HashMap;
use std::sync::Arc;

use trellis_interfaces::link::{DEFAULT_LINK_NAME, Link};

/// Targets by source, then interface, then link name: looked up by `&str`
/// at each level, so routing a call allocates nothing (a `(String, String,
/// String)` key cost three allocations per call).
type Routes = HashMap<String, HashMap<String, HashMap<String, Arc<str>>>>;

/// Snapshot of every link in the lattice, indexed for routing.
#[derive(Debug, Default)]
pub struct LinkTable {
    routes: Routes,
    /// Link names each `(source, interface)` has, for error messages.
    names: HashMap<(String, String), Vec<String>>,
}

/// A call could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// No link with that name for that interface.
    #[error("{0}")]
    NoLink(Box<MissingLink>),
}

/// What a missing link was looked up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingLink {
    /// The caller.
    pub source_id: String,
    /// `ns:pkg/iface`.
    pub interface: String,
    /// The link name the call used.
    pub link_name: String,
    /// Other link names the caller has for that interface.
    pub other_names: Vec<String>,
}

impl std::fmt::Display for MissingLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ns_pkg, iface) = self
            .interface
            .split_once('/')
            .unwrap_or((self.interface.as_str(), ""));
        let (namespace, package) = ns_pkg.split_once(':').unwrap_or((ns_pkg, ""));
        write!(
            f,
            "component `{}` has no link named `{}` for `{}`",
            self.source_id, self.link_name, self.interface
        )?;
        if !self.other_names.is_empty() {
            write!(f, " (it has: {})", self.other_names.join(", "))?;
        }
        write!(
            f,
            ": add one with `wash link put {} <target> {namespace} {package} --interface {iface} --link-name {}` or in the application manifest",
            self.source_id, self.link_name
        )
    }
}

impl LinkTable {
    /// Indexes `links`.
    pub fn new(links: &[Link]) -> Self {
        let mut table = Self::default();
        for link in links {
            for interface in link.qualified_interfaces() {
                table
                    .names
                    .entry((link.source_id.clone(), interface.clone()))
                    .or_default()
                    .push(link.name.clone());
                table
                    .routes
                    .entry(link.source_id.clone())
                    .or_default()
                    .entry(interface)
                    .or_default()
                    .insert(link.name.clone(), Arc::from(link.target.as_str()));
            }
        }
        table
    }

    /// The target of `source`'s calls to `interface` (`ns:pkg/iface`,
    /// unversioned) under `link_name`.
    pub fn resolve(
        &self,
        source: &str,
        interface: &str,
        link_name: &str,
    ) -> Result<Arc<str>, RouteError> {
        if let Some(target) = self.route(source, interface, link_name) {
            return Ok(target.clone());
        }
        let other_names = self
            .names
            .get(&(source.to_string(), interface.to_string()))
            .cloned()
            .unwrap_or_default();
        Err(RouteError::NoLink(Box::new(MissingLink {
            source_id: source.to_string(),
            interface: interface.to_string(),
            link_name: link_name.to_string(),
            other_names,
        })))
    }

    /// Whether `source` has a link named `name` for `interface`.
    pub fn has(&self, source: &str, interface: &str, name: &str) -> bool {
        self.route(source, interface, name).is_some()
    }

    fn route(&self, source: &str, interface: &str, name: &str) -> Option<&Arc<str>> {
        self.routes.get(source)?.get(interface)?.get(name)
    }
}

/// `ns:pkg/iface@1.2.3` → `ns:pkg/iface`.
pub fn unversioned(instance: &str) -> &str {
    instance.split_once('@').map_or(instance, |(name, _)| name)
}

/// The link name used when the component chose none.
pub fn default_link_name() -> &'static str {
    DEFAULT_LINK_NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(source: &str, target: &str, name: &str, ifaces: &[&str]) -> Link {
        Link {
            source_id: source.into(),
            target: target.into(),
            name: name.into(),
            wit_namespace: "example".into(),
            wit_package: "pong".into(),
            interfaces: ifaces.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn resolves_by_source_interface_and_name() {
        let t = LinkTable::new(&[
            link("ping", "pong", "default", &["pingpong"]),
            link("ping", "pong2", "other", &["pingpong"]),
        ]);
        assert_eq!(
            &*t.resolve("ping", "example:pong/pingpong", "default")
                .unwrap(),
            "pong"
        );
        assert_eq!(
            &*t.resolve("ping", "example:pong/pingpong", "other").unwrap(),
            "pong2"
        );
        assert!(t.has("ping", "example:pong/pingpong", "other"));
    }

    #[test]
    fn missing_link_names_component_interface_and_link() {
        let t = LinkTable::new(&[link("ping", "pong", "default", &["pingpong"])]);
        let err = t
            .resolve("ping", "example:pong/pingpong", "backup")
            .unwrap_err()
            .to_string();
        assert!(err.contains("component `ping`"), "{err}");
        assert!(err.contains("`backup`"), "{err}");
        assert!(err.contains("`example:pong/pingpong`"), "{err}");
        assert!(err.contains("(it has: default)"), "{err}");
        let err = t
            .resolve("other", "example:pong/pingpong", "default")
            .unwrap_err();
        assert!(!err.to_string().contains("it has"));
    }

    #[test]
    fn strips_versions() {
        assert_eq!(
            unversioned("example:pong/pingpong@0.1.0"),
            "example:pong/pingpong"
        );
        assert_eq!(
            unversioned("example:pong/pingpong"),
            "example:pong/pingpong"
        );
    }
}
