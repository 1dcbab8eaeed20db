//! The provider's state: one [`LinkedRoot`] per link on which a component
//! calls this provider, keyed by the calling component and the link name,
//! and the [`Provider`] callbacks that keep it current.
//!
//! A link's root directory is opened (created if missing) on the first call
//! over it, not when the link is put, so a root that cannot be created yet
//! fails the calls that need it, with the reason, and works once it can.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::OnceCell;
use trellis_blobstore_fs::{BlobError, FsRoot, configured_root, default_root};
use trellis_provider_sdk::{HealthCheckResponse, InitContext, LinkConfig, LinkKey, Provider};

/// Why a call could not reach its root; the message goes back to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    /// The call carries no `source-id` header.
    #[error(
        "the call carries no source-id header: the blobstore-fs provider serves linked components only"
    )]
    NoSource,
    /// No link from the caller to this provider under that name.
    #[error(
        "component `{source_id}` has no link named `{link_name}` to this blobstore-fs provider: \
         link it (wash link put {source_id} <provider-id> wasi blobstore --interface blobstore --target-config …)"
    )]
    NotLinked {
        /// The caller.
        source_id: String,
        /// The link name of the call.
        link_name: String,
    },
    /// The root directory cannot be used.
    #[error("link `{link_name}` from `{source_id}`: {error}")]
    Root {
        /// The caller.
        source_id: String,
        /// The link name.
        link_name: String,
        /// What is wrong.
        error: BlobError,
    },
}

/// Which link a call comes over.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LinkId {
    source_id: String,
    link_name: String,
}

/// One link's root: the directory its config names and, once opened, the
/// canonical root.
#[derive(Debug)]
pub struct LinkedRoot {
    source_id: String,
    link_name: String,
    /// The link's own target config, kept to re-resolve on a config update.
    link_config: HashMap<String, String>,
    dir: String,
    opened: OnceCell<FsRoot>,
}

impl LinkedRoot {
    fn new(
        source_id: String,
        link_name: String,
        link_config: HashMap<String, String>,
        defaults: &HashMap<String, String>,
    ) -> Self {
        let dir = root_dir(&link_config, defaults, &source_id);
        Self {
            source_id,
            link_name,
            link_config,
            dir,
            opened: OnceCell::new(),
        }
    }

    /// The root, opened on first use; a failure is returned to this call and
    /// the next call tries again.
    pub async fn root(&self) -> Result<FsRoot, RootError> {
        self.opened
            .get_or_try_init(|| FsRoot::open(&self.dir))
            .await
            .cloned()
            .map_err(|error| RootError::Root {
                source_id: self.source_id.clone(),
                link_name: self.link_name.clone(),
                error,
            })
    }
}

/// `ROOT`/`root` of the link's target config, then of the provider's
/// config, else `$TMPDIR/<component-id>`: the host built-in's rule, so each
/// component gets its own directory unless told otherwise.
fn root_dir(
    link: &HashMap<String, String>,
    provider: &HashMap<String, String>,
    source_id: &str,
) -> String {
    configured_root(|k| link.get(k))
        .or_else(|| configured_root(|k| provider.get(k)))
        .unwrap_or_else(|| default_root(source_id))
}

/// The blobstore-fs provider: the provider's config and one root per link.
#[derive(Default)]
pub struct BlobstoreFs {
    defaults: RwLock<HashMap<String, String>>,
    links: RwLock<HashMap<LinkId, Arc<LinkedRoot>>>,
}

impl BlobstoreFs {
    fn links_read(&self) -> RwLockReadGuard<'_, HashMap<LinkId, Arc<LinkedRoot>>> {
        self.links.read().unwrap_or_else(|e| e.into_inner())
    }

    fn links_write(&self) -> RwLockWriteGuard<'_, HashMap<LinkId, Arc<LinkedRoot>>> {
        self.links.write().unwrap_or_else(|e| e.into_inner())
    }

    fn defaults(&self) -> HashMap<String, String> {
        self.defaults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The root of the link a call comes over.
    pub fn linked_root(
        &self,
        source_id: Option<&str>,
        link_name: &str,
    ) -> Result<Arc<LinkedRoot>, RootError> {
        let source_id = source_id.ok_or(RootError::NoSource)?;
        let id = LinkId {
            source_id: source_id.to_string(),
            link_name: link_name.to_string(),
        };
        let found = self.links_read().get(&id).cloned();
        match found {
            Some(linked) => Ok(linked),
            None => Err(RootError::NotLinked {
                source_id: id.source_id,
                link_name: id.link_name,
            }),
        }
    }
}

impl Provider for BlobstoreFs {
    async fn init(&self, cx: &InitContext) -> anyhow::Result<()> {
        *self.defaults.write().unwrap_or_else(|e| e.into_inner()) = cx.config.clone();
        tracing::info!(provider_id = %cx.provider_id, "blobstore-fs provider ready");
        Ok(())
    }

    async fn on_link_as_target(&self, link: &LinkConfig) -> anyhow::Result<()> {
        let linked = LinkedRoot::new(
            link.source_id.clone(),
            link.link_name.clone(),
            link.config.clone(),
            &self.defaults(),
        );
        tracing::info!(source_id = %link.source_id, link = %link.link_name, root = %linked.dir, "component linked");
        let id = LinkId {
            source_id: link.source_id.clone(),
            link_name: link.link_name.clone(),
        };
        self.links_write().insert(id, Arc::new(linked));
        Ok(())
    }

    async fn on_link_deleted_as_target(&self, link: &LinkKey) -> anyhow::Result<()> {
        self.links_write().remove(&LinkId {
            source_id: link.source_id.clone(),
            link_name: link.link_name.clone(),
        });
        tracing::info!(source_id = %link.source_id, link = %link.link_name, "component unlinked");
        Ok(())
    }

    async fn on_config_update(&self, config: &HashMap<String, String>) -> anyhow::Result<()> {
        *self.defaults.write().unwrap_or_else(|e| e.into_inner()) = config.clone();
        let mut links = self.links_write();
        for linked in links.values_mut() {
            *linked = Arc::new(LinkedRoot::new(
                linked.source_id.clone(),
                linked.link_name.clone(),
                linked.link_config.clone(),
                config,
            ));
        }
        Ok(())
    }

    async fn health(&self) -> HealthCheckResponse {
        HealthCheckResponse {
            healthy: true,
            message: Some(format!("{} linked component(s)", self.links_read().len())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_from_link_then_provider_then_per_component_default() {
        let mut link = HashMap::new();
        let mut provider = HashMap::new();
        assert!(root_dir(&link, &provider, "blobby").ends_with("/blobby"));
        assert_ne!(
            root_dir(&link, &provider, "a"),
            root_dir(&link, &provider, "b")
        );
        provider.insert("root".to_string(), "/p".to_string());
        assert_eq!(root_dir(&link, &provider, "blobby"), "/p");
        link.insert("ROOT".to_string(), "/l".to_string());
        assert_eq!(root_dir(&link, &provider, "blobby"), "/l");
    }

    #[test]
    fn calls_need_a_source_and_a_link() {
        let p = BlobstoreFs::default();
        assert!(matches!(
            p.linked_root(None, "default"),
            Err(RootError::NoSource)
        ));
        assert!(matches!(
            p.linked_root(Some("blobby"), "default"),
            Err(RootError::NotLinked { .. })
        ));
    }
}
