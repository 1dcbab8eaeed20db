//! `wasi:blobstore@0.2.0-draft` (`blobstore`, `container`, `types`) served by
//! the host, the version wasmCloud 1.x components import.
//!
//! Each call resolves the component's `wasi:blobstore/blobstore` link (name
//! from `set-link-name`, else `default`) and picks a backend by what the link
//! targets:
//!
//! - a `builtin://blobstore-fs` provider on this host: the filesystem, under
//!   the root directory its config names (`ROOT` or `root` in the link's
//!   target config, else in the provider's config, else
//!   `$TMPDIR/<component-id>` as wasmCloud's blobstore-fs), with the logic
//!   shared with the blobstore-fs provider process (`trellis-blobstore-fs`):
//!   reads stream from the file, writes stream into a temporary file that
//!   `outgoing-value.finish` renames into place;
//! - anything else, a provider process anywhere in the lattice, called over
//!   wRPC on `wrpc:blobstore/blobstore@0.2.0` ([`remote`]): bodies stream as
//!   `stream<u8>` both ways, reads in bounded windows so an object never
//!   piles up in the host.

mod remote;
mod resources;

use std::sync::{Arc, Weak};

use trellis_blobstore_fs::FsRoot;

use crate::host::HostInner;
use crate::runtime::InvocationState;

pub use remote::{DOWNLOAD_WINDOW_BYTES, RemoteBlobstore};
pub use resources::{Container, IncomingValue, MAX_SYNC_BYTES, ObjectNames, OutgoingValue};
pub use trellis_blobstore_fs::{BlobError, UPLOAD_PREFIX, check_container_name, check_object_name};

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
/// Whether `image_ref` names the built-in filesystem blobstore
/// (`builtin://blobstore-fs` or `wasmcloud+builtin://blobstore-fs`).
pub fn is_builtin_blobstore(image_ref: &str) -> bool {
    matches!(
        crate::artifact::ArtifactRef::parse(image_ref),
        Ok(crate::artifact::ArtifactRef::Builtin(name)) if name == BUILTIN_FS
    )
}

/// The host-wide blobstore capability.
pub struct BlobstoreService {
    host: Weak<HostInner>,
}

/// Where one component's blobstore link leads.
#[derive(Clone)]
pub struct BlobstoreTarget {
    /// The backend serving it.
    pub backend: Backend,
    /// For messages: component, link name, provider id.
    pub label: Arc<str>,
}

/// The backend of a blobstore link.
#[derive(Clone)]
pub enum Backend {
    /// `builtin://blobstore-fs` on this host: a filesystem root.
    Fs(FsRoot),
    /// A provider process, over wRPC.
    Remote(RemoteBlobstore),
}

impl BlobstoreService {
    pub(crate) fn new(host: Weak<HostInner>) -> Self {
        Self { host }
    }

    /// The blobstore `component` reaches under `link_name`; remote calls
    /// share the invocation's `deadline`.
    async fn target(
        &self,
        component: &str,
        link_name: &str,
        deadline: tokio::time::Instant,
    ) -> Result<BlobstoreTarget, String> {
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
        let slot = match slot {
            Some(slot) if is_builtin_blobstore(&slot.image_ref) => slot,
            Some(slot) if is_builtin(&slot.image_ref) => {
                return Err(format!(
                    "{label}: `{target}` is `{}` and serves no blobstore",
                    slot.image_ref
                ));
            }
            // A provider process (on this host or another) serves it over wRPC.
            Some(_) | None => {
                let remote = RemoteBlobstore::new(
                    host.dataplane.clone(),
                    component,
                    link_name,
                    target,
                    deadline,
                );
                return Ok(BlobstoreTarget {
                    backend: Backend::Remote(remote),
                    label: Arc::from(label),
                });
            }
        };
        let link_config =
            super::link_target_config(&host, component, &target, link_name, ("wasi", "blobstore"))?;
        let provider_config = host
            .view
            .read()
            .map(|view| view.merged_config(&slot.config_names))
            .map_err(|_| "the lattice view is unavailable".to_string())?;
        let root = trellis_blobstore_fs::configured_root(|k| link_config.get(k))
            .or_else(|| trellis_blobstore_fs::configured_root(|k| provider_config.get(k)))
            .unwrap_or_else(|| trellis_blobstore_fs::default_root(component));
        let root = FsRoot::open(&root)
            .await
            .map_err(|e| format!("{label}: {e}"))?;
        Ok(BlobstoreTarget {
            backend: Backend::Fs(root),
            label: Arc::from(label),
        })
    }
}

/// Whether `image_ref` names one of the host's built-in capabilities.
fn is_builtin(image_ref: &str) -> bool {
    matches!(
        crate::artifact::ArtifactRef::parse(image_ref),
        Ok(crate::artifact::ArtifactRef::Builtin(_))
    )
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
        let deadline = tokio::time::Instant::now() + self.scope.remaining();
        let result = service
            .target(&self.component_id, &link_name, deadline)
            .await;
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
    fn builtin_names() {
        assert!(is_builtin_blobstore("builtin://blobstore-fs"));
        assert!(is_builtin_blobstore("wasmcloud+builtin://blobstore-fs"));
        assert!(!is_builtin_blobstore("builtin://keyvalue-memory"));
        assert!(is_builtin("builtin://keyvalue-memory"));
        assert!(!is_builtin("file:///bin/blobstore-fs-provider"));
    }
}
