//! Link bookkeeping: which links involve this provider, in which role, with
//! which config.
//!
//! Links are keyed by `(source, target, ns:pkg, name)`. wasmCloud's SDK kept
//! one entry per peer id, so two links between the same pair with different
//! names (or packages) overwrote each other (PROTOCOL.md §4.3); here they are
//! separate entries. A put that changes nothing is a duplicate (hosts publish
//! the same put on the xkey subject and, for 1.0-era providers, on the id
//! subject) and is not delivered again; a put with changed config, interfaces
//! or secrets is.

use std::collections::{BTreeMap, HashMap};

use trellis_interfaces::provider::{InterfaceLinkDefinition, SecretValue};

/// Which end of a link this provider is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkRole {
    /// The provider calls the target (`link.source_id == provider_id`), e.g.
    /// an HTTP server provider calling a component's handler.
    Source,
    /// The provider is called by the source (`link.target == provider_id`),
    /// e.g. a key-value provider called by a component.
    Target,
}

/// Identifies one link: `(source, target, ns:pkg, name)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkKey {
    /// Id of the caller.
    pub source_id: String,
    /// Id of the callee.
    pub target_id: String,
    /// WIT namespace, e.g. `wasi`.
    pub wit_namespace: String,
    /// WIT package, e.g. `keyvalue`.
    pub wit_package: String,
    /// Link name, `default` unless set.
    pub link_name: String,
}

impl LinkKey {
    /// The key of a link definition as sent by a host.
    pub fn of(def: &InterfaceLinkDefinition) -> Self {
        Self {
            source_id: def.source_id.clone(),
            target_id: def.target.clone(),
            wit_namespace: def.wit_namespace.clone(),
            wit_package: def.wit_package.clone(),
            link_name: def.name.clone(),
        }
    }
}

impl std::fmt::Display for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {} ({}:{}, name {})",
            self.source_id, self.target_id, self.wit_namespace, self.wit_package, self.link_name
        )
    }
}

/// One link as delivered to [`Provider`](crate::Provider) callbacks: the
/// config and secrets are this provider's side of the link (`source_config`
/// when it is the source, `target_config` when it is the target), secrets
/// already decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Id of the caller.
    pub source_id: String,
    /// Id of the callee.
    pub target_id: String,
    /// Link name, `default` unless set.
    pub link_name: String,
    /// This provider's side of the link config.
    pub config: HashMap<String, String>,
    /// This provider's side of the link secrets.
    pub secrets: HashMap<String, SecretValue>,
    /// WIT namespace, e.g. `wasi`.
    pub wit_namespace: String,
    /// WIT package, e.g. `keyvalue`.
    pub wit_package: String,
    /// Interfaces of the package the link covers, e.g. `["store", "atomics"]`.
    pub interfaces: Vec<String>,
}

impl LinkConfig {
    /// The link's key.
    pub fn key(&self) -> LinkKey {
        LinkKey {
            source_id: self.source_id.clone(),
            target_id: self.target_id.clone(),
            wit_namespace: self.wit_namespace.clone(),
            wit_package: self.wit_package.clone(),
            link_name: self.link_name.clone(),
        }
    }

    /// `(namespace, package, interfaces)`, as wasmCloud's `wit_metadata`.
    pub fn wit_metadata(&self) -> (&str, &str, &[String]) {
        (&self.wit_namespace, &self.wit_package, &self.interfaces)
    }

    /// Whether the link covers `namespace:package/interface`.
    pub fn covers(&self, namespace: &str, package: &str, interface: &str) -> bool {
        self.wit_namespace == namespace
            && self.wit_package == package
            && self.interfaces.iter().any(|i| i == interface)
    }
}

/// A link definition with both sides' secrets decrypted: what the table
/// stores and compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinkRecord {
    /// The definition with its sealed secrets removed.
    pub def: InterfaceLinkDefinition,
    /// Decrypted `source_secrets`.
    pub source_secrets: HashMap<String, SecretValue>,
    /// Decrypted `target_secrets`.
    pub target_secrets: HashMap<String, SecretValue>,
    /// Whether the put carried sealed secrets at all (xkey subject); a put
    /// without them (1.0-era id subject) does not erase known secrets.
    pub had_secrets: bool,
}

impl LinkRecord {
    /// The config this provider sees in `role`.
    pub fn config_for(&self, role: LinkRole) -> LinkConfig {
        let (config, secrets) = match role {
            LinkRole::Source => (&self.def.source_config, &self.source_secrets),
            LinkRole::Target => (&self.def.target_config, &self.target_secrets),
        };
        LinkConfig {
            source_id: self.def.source_id.clone(),
            target_id: self.def.target.clone(),
            link_name: self.def.name.clone(),
            config: config.clone(),
            secrets: secrets.clone(),
            wit_namespace: self.def.wit_namespace.clone(),
            wit_package: self.def.wit_package.clone(),
            interfaces: self.def.interfaces.clone(),
        }
    }
}

/// The roles `provider_id` plays in `def`: none, one, or both (a provider
/// linked to itself).
pub(crate) fn roles_of(provider_id: &str, def: &InterfaceLinkDefinition) -> Vec<LinkRole> {
    let mut roles = Vec::with_capacity(2);
    if def.source_id == provider_id {
        roles.push(LinkRole::Source);
    }
    if def.target == provider_id {
        roles.push(LinkRole::Target);
    }
    roles
}

/// What a put did to the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PutOutcome {
    /// A link not seen before: deliver it.
    New,
    /// A known link whose config, interfaces or secrets changed: deliver again.
    Changed,
    /// Same as what is known: do not deliver.
    Duplicate,
    /// The link does not involve this provider.
    NotOurs,
}

/// The links that involve one provider.
#[derive(Debug, Default)]
pub(crate) struct LinkTable {
    provider_id: String,
    links: BTreeMap<LinkKey, LinkRecord>,
}

impl LinkTable {
    /// An empty table for `provider_id`.
    pub fn new(provider_id: impl Into<String>) -> Self {
        Self {
            provider_id: provider_id.into(),
            links: BTreeMap::new(),
        }
    }

    /// Records a put. A put without secrets for a link known with secrets
    /// keeps the known secrets (the 1.0-era duplicate of an xkey put).
    pub fn put(&mut self, mut record: LinkRecord) -> PutOutcome {
        if roles_of(&self.provider_id, &record.def).is_empty() {
            return PutOutcome::NotOurs;
        }
        let key = LinkKey::of(&record.def);
        match self.links.get(&key) {
            None => {
                self.links.insert(key, record);
                PutOutcome::New
            }
            Some(known) => {
                if !record.had_secrets && known.had_secrets {
                    record.source_secrets = known.source_secrets.clone();
                    record.target_secrets = known.target_secrets.clone();
                    record.had_secrets = true;
                }
                if *known == record {
                    PutOutcome::Duplicate
                } else {
                    self.links.insert(key, record);
                    PutOutcome::Changed
                }
            }
        }
    }

    /// Forgets a link; returns it when it was known.
    #[cfg(test)]
    pub fn delete(&mut self, key: &LinkKey) -> Option<LinkRecord> {
        self.links.remove(key)
    }

    /// Forgets every link `matcher` selects and returns them.
    pub fn delete_matching(&mut self, matcher: &LinkMatcher<'_>) -> Vec<LinkRecord> {
        let keys: Vec<LinkKey> = self
            .links
            .keys()
            .filter(|key| matcher.matches(key))
            .cloned()
            .collect();
        keys.iter()
            .filter_map(|key| self.links.remove(key))
            .collect()
    }

    /// The record of a known link.
    pub fn get(&self, key: &LinkKey) -> Option<&LinkRecord> {
        self.links.get(key)
    }

    /// The roles of this provider in `def`.
    pub fn roles(&self, def: &InterfaceLinkDefinition) -> Vec<LinkRole> {
        roles_of(&self.provider_id, def)
    }

    /// A copy of every known link, in key order.
    pub fn snapshot(&self) -> LinkSnapshot {
        let mut links = Vec::with_capacity(self.links.len());
        for record in self.links.values() {
            for role in roles_of(&self.provider_id, &record.def) {
                links.push((role, record.config_for(role)));
            }
        }
        LinkSnapshot { links }
    }
}

/// Selects the links a delete names. A delete carries source, target and
/// name; namespace and package narrow it when present.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkMatcher<'a> {
    pub source_id: &'a str,
    pub target_id: &'a str,
    pub link_name: &'a str,
    pub wit_namespace: Option<&'a str>,
    pub wit_package: Option<&'a str>,
}

impl LinkMatcher<'_> {
    fn matches(&self, key: &LinkKey) -> bool {
        key.source_id == self.source_id
            && key.target_id == self.target_id
            && key.link_name == self.link_name
            && self.wit_namespace.is_none_or(|ns| key.wit_namespace == ns)
            && self.wit_package.is_none_or(|pkg| key.wit_package == pkg)
    }
}

/// The links known at one moment (from [`Connection::links`](crate::Connection::links)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkSnapshot {
    links: Vec<(LinkRole, LinkConfig)>,
}

impl LinkSnapshot {
    /// Every link with this provider's role in it.
    pub fn iter(&self) -> impl Iterator<Item = (LinkRole, &LinkConfig)> {
        self.links.iter().map(|(role, link)| (*role, link))
    }

    /// Links on which this provider is the source (it calls the target).
    pub fn as_source(&self) -> impl Iterator<Item = &LinkConfig> {
        self.with_role(LinkRole::Source)
    }

    /// Links on which this provider is the target (the source calls it).
    pub fn as_target(&self) -> impl Iterator<Item = &LinkConfig> {
        self.with_role(LinkRole::Target)
    }

    /// Number of (role, link) entries.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether no link is known.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    fn with_role(&self, role: LinkRole) -> impl Iterator<Item = &LinkConfig> {
        self.links
            .iter()
            .filter(move |(r, _)| *r == role)
            .map(|(_, link)| link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(source: &str, target: &str, pkg: &str, name: &str) -> InterfaceLinkDefinition {
        InterfaceLinkDefinition {
            source_id: source.into(),
            target: target.into(),
            name: name.into(),
            wit_namespace: "wasi".into(),
            wit_package: pkg.into(),
            interfaces: vec!["store".into()],
            ..Default::default()
        }
    }

    fn record(def: InterfaceLinkDefinition) -> LinkRecord {
        LinkRecord {
            def,
            source_secrets: HashMap::new(),
            target_secrets: HashMap::new(),
            had_secrets: false,
        }
    }

    #[test]
    fn same_pair_with_different_names_or_packages_are_separate_links() {
        let mut table = LinkTable::new("kv");
        assert_eq!(
            table.put(record(def("c", "kv", "keyvalue", "a"))),
            PutOutcome::New
        );
        assert_eq!(
            table.put(record(def("c", "kv", "keyvalue", "b"))),
            PutOutcome::New
        );
        assert_eq!(
            table.put(record(def("c", "kv", "blobstore", "a"))),
            PutOutcome::New
        );
        assert_eq!(table.snapshot().as_target().count(), 3);
        assert!(
            table
                .delete(&LinkKey::of(&def("c", "kv", "keyvalue", "a")))
                .is_some()
        );
        let left: Vec<_> = table
            .snapshot()
            .as_target()
            .map(|l| (l.wit_package.clone(), l.link_name.clone()))
            .collect();
        assert_eq!(
            left,
            vec![
                ("blobstore".to_string(), "a".to_string()),
                ("keyvalue".to_string(), "b".to_string())
            ]
        );
    }

    #[test]
    fn duplicates_are_ignored_and_changes_redelivered() {
        let mut table = LinkTable::new("kv");
        let mut d = def("c", "kv", "keyvalue", "default");
        assert_eq!(table.put(record(d.clone())), PutOutcome::New);
        assert_eq!(table.put(record(d.clone())), PutOutcome::Duplicate);
        d.target_config.insert("URL".into(), "redis://x".into());
        assert_eq!(table.put(record(d.clone())), PutOutcome::Changed);
        d.interfaces.push("atomics".into());
        assert_eq!(table.put(record(d)), PutOutcome::Changed);
    }

    #[test]
    fn a_put_without_secrets_keeps_known_secrets() {
        let mut table = LinkTable::new("kv");
        let d = def("c", "kv", "keyvalue", "default");
        let mut with = record(d.clone());
        with.target_secrets
            .insert("pw".into(), SecretValue::String("s".into()));
        with.had_secrets = true;
        assert_eq!(table.put(with), PutOutcome::New);
        assert_eq!(table.put(record(d)), PutOutcome::Duplicate);
        let snap = table.snapshot();
        let link = snap.as_target().next().unwrap();
        assert_eq!(link.secrets["pw"], SecretValue::String("s".into()));
    }

    #[test]
    fn deletes_without_package_remove_every_match() {
        let mut table = LinkTable::new("kv");
        table.put(record(def("c", "kv", "keyvalue", "default")));
        table.put(record(def("c", "kv", "blobstore", "default")));
        table.put(record(def("c", "kv", "keyvalue", "other")));
        let narrow = LinkMatcher {
            source_id: "c",
            target_id: "kv",
            link_name: "default",
            wit_namespace: Some("wasi"),
            wit_package: Some("keyvalue"),
        };
        assert_eq!(table.delete_matching(&narrow).len(), 1);
        assert!(table.delete_matching(&narrow).is_empty());
        let wide = LinkMatcher {
            wit_namespace: None,
            wit_package: None,
            ..narrow
        };
        assert_eq!(table.delete_matching(&wide).len(), 1);
        assert_eq!(table.snapshot().len(), 1);
    }

    #[test]
    fn roles_follow_source_and_target_ids() {
        let mut table = LinkTable::new("p");
        assert_eq!(
            table.put(record(def("x", "y", "k", "d"))),
            PutOutcome::NotOurs
        );
        let mut both = def("p", "p", "k", "d");
        both.source_config.insert("side".into(), "source".into());
        both.target_config.insert("side".into(), "target".into());
        assert_eq!(table.put(record(both)), PutOutcome::New);
        let snap = table.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap.as_source().next().unwrap().config["side"], "source");
        assert_eq!(snap.as_target().next().unwrap().config["side"], "target");
    }

    #[test]
    fn covers_checks_namespace_package_and_interface() {
        let link = record(def("c", "kv", "keyvalue", "default")).config_for(LinkRole::Target);
        assert!(link.covers("wasi", "keyvalue", "store"));
        assert!(!link.covers("wasi", "keyvalue", "atomics"));
        assert!(!link.covers("wasi", "blobstore", "store"));
    }
}
