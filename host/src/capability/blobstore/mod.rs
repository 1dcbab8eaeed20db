//! `wasi:blobstore@0.2.0-draft` (`blobstore`, `container`, `types`) served by
//! the host, the version wasmCloud 1.x components import.
//!
//! Each call resolves the component's `wasi:blobstore/blobstore` link (name
//! from `set-link-name`, else `default`). A link to a `builtin://blobstore-fs`
//! provider on this host is served from the filesystem ([`fs`]) under the
//! root directory its config names (`ROOT` or `root` in the link's target
//! config, else in the provider's config, else `$TMPDIR/<component-id>` as
//! wasmCloud's blobstore-fs). Object data moves through `wasi:io` streams in
//! bounded chunks: reads stream from the file, writes stream into a temporary
//! file that `outgoing-value.finish` renames into place.

mod fs;
mod resources;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use crate::host::HostInner;
use crate::runtime::InvocationState;

pub use fs::{UPLOAD_PREFIX, check_container_name, check_object_name};
pub use resources::{Container, IncomingValue, MAX_SYNC_BYTES, ObjectNames, OutgoingValue};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: ["../interfaces/wit/deps/io", "../interfaces/wit/deps/blobstore"],
        world: "wasi:blobstore/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:blobstore/container.container": super::Container,
            "wasi:blobstore/container.stream-object-names": super::ObjectNames,
            "wasi:blobstore/types.outgoing-value": super::OutgoingValue,
            "wasi:blobstore/types.incoming-value": super::IncomingValue,
        },
    });
}

/// The link key every blobstore call resolves.
const BLOBSTORE_INTERFACE: &str = "wasi:blobstore/blobstore";
/// `builtin://` name of the filesystem backend.
pub const BUILTIN_FS: &str = "blobstore-fs";
/// Config keys naming the root directory (wasmCloud's provider reads `ROOT`).
const ROOT_KEYS: [&str; 2] = ["ROOT", "root"];

/// Whether `image_ref` names the built-in filesystem blobstore
/// (`builtin://blobstore-fs` or `wasmcloud+builtin://blobstore-fs`).
pub fn is_builtin_blobstore(image_ref: &str) -> bool {
    matches!(
        crate::artifact::ArtifactRef::parse(image_ref),
        Ok(crate::artifact::ArtifactRef::Builtin(name)) if name == BUILTIN_FS
    )
}

/// Why a blobstore operation failed; its text becomes the WIT `error`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// A container or object name that cannot be a path inside the root.
    #[error("invalid {what} name `{name}`: {reason}")]
    InvalidName {
        /// `container` or `object`.
        what: &'static str,
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The name resolves (through a symlink) to a place outside the root.
    #[error("`{name}` resolves outside the blobstore root (a symlink leaves it); refused")]
    Escape {
        /// The name.
        name: String,
    },
    /// The container does not exist.
    #[error(
        "container `{name}` does not exist under blobstore root `{root}`: create it with `create-container` first"
    )]
    NoSuchContainer {
        /// The container.
        name: String,
        /// The root directory.
        root: String,
    },
    /// `get-data` with `end < start`.
    #[error("invalid range {start}..={end}: `end` is before `start` (offsets are inclusive)")]
    Range {
        /// First byte.
        start: u64,
        /// Last byte.
        end: u64,
    },
    /// The link or provider config is unusable.
    #[error("{0}")]
    Config(String),
    /// A filesystem operation failed.
    #[error("cannot {op} `{path}`: {reason}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The value was used out of order (finish before write-data, …).
    #[error("{0}")]
    Usage(String),
}

/// The host-wide blobstore capability.
pub struct BlobstoreService {
    host: Weak<HostInner>,
}

/// Where one component's blobstore link leads.
#[derive(Clone)]
pub struct BlobstoreTarget {
    /// The filesystem root.
    pub root: fs::FsRoot,
    /// For messages: component, link name, provider id.
    pub label: Arc<str>,
}

impl BlobstoreService {
    pub(crate) fn new(host: Weak<HostInner>) -> Self {
        Self { host }
    }

    /// The blobstore `component` reaches under `link_name`.
    async fn target(&self, component: &str, link_name: &str) -> Result<BlobstoreTarget, String> {
        let host = self
            .host
            .upgrade()
            .ok_or_else(|| "the host is stopping".to_string())?;
        let target = host
            .dataplane
            .resolve(component, BLOBSTORE_INTERFACE, link_name)
            .map_err(|_| {
                format!(
                    "component `{component}` has no blobstore link named `{link_name}`: link `wasi:blobstore` (interface `blobstore`) to a provider, e.g. builtin://blobstore-fs"
                )
            })?;
        let slot = host
            .providers
            .read()
            .ok()
            .and_then(|p| p.get(&*target).cloned());
        let label = format!("component `{component}`, link `{link_name}` to `{target}`");
        let Some(slot) = slot else {
            return Err(format!(
                "{label}: `{target}` is not a built-in blobstore on this host; blobstore through a provider process is not supported yet, start `builtin://blobstore-fs` here and link to it"
            ));
        };
        if !is_builtin_blobstore(&slot.image_ref) {
            return Err(format!(
                "{label}: `{target}` is `{}` and serves no blobstore",
                slot.image_ref
            ));
        }
        let root = {
            let Ok(view) = host.view.read() else {
                return Err("the lattice view is unavailable".into());
            };
            let link_config = view
                .links_from(component)
                .iter()
                .find(|l| {
                    l.target == *target
                        && l.name == link_name
                        && l.wit_namespace == "wasi"
                        && l.wit_package == "blobstore"
                })
                .map(|l| view.merged_config(&l.target_config))
                .unwrap_or_default();
            let provider_config = view.merged_config(&slot.config_names);
            root_dir(&link_config, &provider_config, component)
        };
        let root = fs::FsRoot::open(&root)
            .await
            .map_err(|e| format!("{label}: {e}"))?;
        Ok(BlobstoreTarget {
            root,
            label: Arc::from(label),
        })
    }
}

/// `ROOT`/`root` of the link's target config, then of the provider's config,
/// else `$TMPDIR/<component-id>` (wasmCloud's `/tmp/<component-id>`).
fn root_dir(
    link: &BTreeMap<String, String>,
    provider: &BTreeMap<String, String>,
    component: &str,
) -> String {
    let pick = |c: &BTreeMap<String, String>| {
        ROOT_KEYS
            .iter()
            .find_map(|k| c.get(*k).filter(|v| !v.is_empty()).cloned())
    };
    pick(link).or_else(|| pick(provider)).unwrap_or_else(|| {
        let dir: PathBuf = std::env::temp_dir().join(component);
        dir.display().to_string()
    })
}

impl InvocationState {
    /// The blobstore this invocation's component reaches.
    async fn blobstore(&mut self) -> Result<BlobstoreTarget, String> {
        let link_name = self
            .link_names
            .get(BLOBSTORE_INTERFACE)
            .cloned()
            .unwrap_or_else(|| crate::dataplane::links::default_link_name().to_string());
        let Some(service) = self.links.as_ref().and_then(|dp| dp.blobstore()).cloned() else {
            return Err("blobstore is not available in this host".into());
        };
        let result = service.target(&self.component_id, &link_name).await;
        if let Err(message) = &result {
            tracing::warn!(component_id = %self.component_id, link = %link_name, "{message}");
        }
        result
    }
}

/// Adds `wasi:blobstore/{blobstore,container,types}@0.2.0-draft` to `linker`.
pub(crate) fn add_to_linker(
    linker: &mut wasmtime::component::Linker<InvocationState>,
) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    bindings::wasi::blobstore::blobstore::add_to_linker::<_, HasSelf<InvocationState>>(
        linker,
        |s| s,
    )?;
    bindings::wasi::blobstore::container::add_to_linker::<_, HasSelf<InvocationState>>(
        linker,
        |s| s,
    )?;
    bindings::wasi::blobstore::types::add_to_linker::<_, HasSelf<InvocationState>>(linker, |s| s)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_from_link_then_provider_then_default() {
        let mut link = BTreeMap::new();
        let mut provider = BTreeMap::new();
        assert!(root_dir(&link, &provider, "blobby").ends_with("/blobby"));
        provider.insert("root".to_string(), "/p".to_string());
        assert_eq!(root_dir(&link, &provider, "blobby"), "/p");
        link.insert("ROOT".to_string(), "/l".to_string());
        assert_eq!(root_dir(&link, &provider, "blobby"), "/l");
    }

    #[test]
    fn builtin_names() {
        assert!(is_builtin_blobstore("builtin://blobstore-fs"));
        assert!(is_builtin_blobstore("wasmcloud+builtin://blobstore-fs"));
        assert!(!is_builtin_blobstore("builtin://keyvalue-memory"));
    }
}
