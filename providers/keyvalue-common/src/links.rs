//! The links on which components call a keyvalue provider, keyed by the
//! calling component and the link name.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Which link a call comes over.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LinkId {
    /// The calling component.
    pub source_id: String,
    /// The link's name.
    pub link_name: String,
}

impl LinkId {
    /// The link `link_name` from `source_id`.
    pub fn new(source_id: &str, link_name: &str) -> Self {
        Self {
            source_id: source_id.to_string(),
            link_name: link_name.to_string(),
        }
    }
}

/// Why a call matches no link; the message goes back to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotLinked {
    /// The call carries no `source-id` header.
    #[error(
        "the call carries no source-id header: the {provider} provider serves linked components only"
    )]
    NoSource {
        /// The provider's name, e.g. `keyvalue-redis`.
        provider: &'static str,
    },
    /// No link from the caller to this provider under that name.
    #[error(
        "component `{source_id}` has no link named `{link_name}` to this {provider} provider: \
         link it (wash link put {source_id} <provider-id> wasi keyvalue --interface store --target-config …)"
    )]
    NoLink {
        /// The provider's name.
        provider: &'static str,
        /// The caller.
        source_id: String,
        /// The link name of the call.
        link_name: String,
    },
}

/// Per-link state of a provider named `provider` (for messages).
#[derive(Debug)]
pub struct LinkTable<T> {
    provider: &'static str,
    links: RwLock<HashMap<LinkId, T>>,
}

impl<T: Clone> LinkTable<T> {
    /// An empty table for the provider named `provider`.
    pub fn new(provider: &'static str) -> Self {
        Self {
            provider,
            links: RwLock::default(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<LinkId, T>> {
        self.links
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<LinkId, T>> {
        self.links
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The link a call is for: the caller's link named `link_name`; else, as
    /// wasmCloud's providers resolve it, the caller's link named like the
    /// bucket the component opened.
    pub fn lookup(
        &self,
        source_id: Option<&str>,
        link_name: &str,
        opened: &str,
    ) -> Result<T, NotLinked> {
        let source_id = source_id.ok_or(NotLinked::NoSource {
            provider: self.provider,
        })?;
        let links = self.read();
        [link_name, opened]
            .iter()
            .find_map(|name| links.get(&LinkId::new(source_id, name)))
            .cloned()
            .ok_or_else(|| NotLinked::NoLink {
                provider: self.provider,
                source_id: source_id.to_string(),
                link_name: link_name.to_string(),
            })
    }

    /// Adds or replaces a link.
    pub fn insert(&self, id: LinkId, state: T) {
        self.write().insert(id, state);
    }

    /// Forgets a link.
    pub fn remove(&self, id: &LinkId) {
        self.write().remove(id);
    }

    /// Forgets every link.
    pub fn clear(&self) {
        self.write().clear();
    }

    /// Replaces every link's state with `update(id, old)` (e.g. after the
    /// provider's config changed); returns how many links there are.
    pub fn replace_all(&self, mut update: impl FnMut(&LinkId, &T) -> T) -> usize {
        let mut links = self.write();
        for (id, state) in links.iter_mut() {
            *state = update(id, state);
        }
        links.len()
    }

    /// How many links there are, and how many of them `broken` says are
    /// unusable (for the health check).
    pub fn counts(&self, broken: impl Fn(&T) -> bool) -> (usize, usize) {
        let links = self.read();
        (links.len(), links.values().filter(|t| broken(t)).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_finds_its_link_by_name_then_by_opened_bucket() {
        let table = LinkTable::new("keyvalue-test");
        table.insert(LinkId::new("counter", "default"), 1);
        table.insert(LinkId::new("counter", "cache"), 2);
        assert_eq!(
            table.lookup(Some("counter"), "default", "cache").unwrap(),
            1
        );
        assert_eq!(table.lookup(Some("counter"), "other", "cache").unwrap(), 2);
        let err = table.lookup(Some("counter"), "other", "x").unwrap_err();
        assert!(err.to_string().contains("no link named `other`"), "{err}");
        assert!(err.to_string().contains("keyvalue-test provider"), "{err}");
        let err = table.lookup(None, "default", "x").unwrap_err();
        assert!(matches!(err, NotLinked::NoSource { .. }), "{err}");
        table.remove(&LinkId::new("counter", "default"));
        assert_eq!(
            table.lookup(Some("counter"), "default", "cache").unwrap(),
            2
        );
    }

    #[test]
    fn replace_all_and_counts() {
        let table = LinkTable::new("keyvalue-test");
        table.insert(LinkId::new("a", "default"), 1);
        table.insert(LinkId::new("b", "default"), 2);
        assert_eq!(table.replace_all(|_, v| v * 10), 2);
        assert_eq!(table.counts(|v| *v > 15), (2, 1));
        table.clear();
        assert_eq!(table.counts(|_| true), (0, 0));
    }
}
