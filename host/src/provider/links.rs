//! What a provider should know: the links it is part of (configs resolved to
//! maps) and its merged named config, and what changed since it was told.

use std::collections::{BTreeMap, HashMap};

use trellis_interfaces::link::Link;
use trellis_interfaces::provider::InterfaceLinkDefinition;

use crate::lattice::LatticeView;

/// Links are keyed as the provider SDK keys them: (source, target, ns:pkg, name).
pub(super) type LinkKey = (String, String, String, String);

/// The links involving `provider_id` (as source or target), configs resolved.
pub(super) fn provider_links(
    view: &LatticeView,
    provider_id: &str,
) -> BTreeMap<LinkKey, InterfaceLinkDefinition> {
    view.links()
        .iter()
        .filter(|l| l.source_id == provider_id || l.target == provider_id)
        .map(|l| {
            let def = definition(view, l);
            (def.key(), def)
        })
        .collect()
}

fn definition(view: &LatticeView, link: &Link) -> InterfaceLinkDefinition {
    InterfaceLinkDefinition {
        source_id: link.source_id.clone(),
        target: link.target.clone(),
        name: link.name.clone(),
        wit_namespace: link.wit_namespace.clone(),
        wit_package: link.wit_package.clone(),
        interfaces: link.interfaces.clone(),
        source_config: to_map(view.merged_config(&link.source_config)),
        target_config: to_map(view.merged_config(&link.target_config)),
        source_secrets: None,
        target_secrets: None,
    }
}

/// The provider's own named configs, merged (later names win).
pub(super) fn provider_config(view: &LatticeView, names: &[String]) -> HashMap<String, String> {
    to_map(view.merged_config(names))
}

fn to_map(m: BTreeMap<String, String>) -> HashMap<String, String> {
    m.into_iter().collect()
}

/// Link changes to deliver: definitions to put (new or changed) and to delete.
#[derive(Debug, Default, PartialEq)]
pub(super) struct LinkDiff {
    pub put: Vec<InterfaceLinkDefinition>,
    pub delete: Vec<InterfaceLinkDefinition>,
}

/// What turns `old` into `new`. A deleted link is sent without its config.
pub(super) fn diff(
    old: &BTreeMap<LinkKey, InterfaceLinkDefinition>,
    new: &BTreeMap<LinkKey, InterfaceLinkDefinition>,
) -> LinkDiff {
    let put = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(_, v)| v.clone())
        .collect();
    let delete = old
        .iter()
        .filter(|(k, _)| !new.contains_key(*k))
        .map(|(_, v)| InterfaceLinkDefinition {
            source_config: HashMap::new(),
            target_config: HashMap::new(),
            source_secrets: None,
            target_secrets: None,
            ..v.clone()
        })
        .collect();
    LinkDiff { put, delete }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(
        source: &str,
        target: &str,
        name: &str,
        cfg: &[(&str, &str)],
    ) -> InterfaceLinkDefinition {
        InterfaceLinkDefinition {
            source_id: source.into(),
            target: target.into(),
            name: name.into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: vec!["store".into()],
            target_config: cfg
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn set(defs: &[InterfaceLinkDefinition]) -> BTreeMap<LinkKey, InterfaceLinkDefinition> {
        defs.iter().map(|d| (d.key(), d.clone())).collect()
    }

    #[test]
    fn new_changed_and_removed_links_are_told_apart() {
        let a = def("c1", "kv", "default", &[("url", "x")]);
        let b = def("c2", "kv", "default", &[]);
        let a2 = def("c1", "kv", "default", &[("url", "y")]);
        let c = def("c1", "kv", "other", &[]);
        let d = diff(
            &set(&[a.clone(), b.clone()]),
            &set(&[a2.clone(), c.clone()]),
        );
        assert_eq!(d.put, vec![a2, c]);
        assert_eq!(d.delete.len(), 1);
        assert_eq!(d.delete[0].source_id, "c2");
        assert!(d.delete[0].target_config.is_empty());
        let same = set(std::slice::from_ref(&a));
        assert_eq!(diff(&same, &same), LinkDiff::default());
    }
}
