//! Capabilities the host serves in-process. Each follows one lifecycle:
//! *init* adds its bindings to the linker once (here), *configure* validates
//! links and config when they change (see [`http_server`]), *prepare* builds
//! per-invocation state (in [`crate::runtime::InvocationState`]).
//!
//! - [`bus`]: `wasmcloud:bus/lattice`, the per-invocation link name.
//! - [`config`]: `wasi:config/store` from the component's named config.
//! - [`logging`]: `wasi:logging/logging` into `tracing`, tagged with the component id.
//! - [`http_server`]: the `wasi:http` incoming listener (`builtin://http-server`).
//! - [`http_client`]: outgoing `wasi:http` (`builtin://http-client`, or an
//!   http-client provider over `wrpc:http`), denied unless linked.
//! - [`http_lattice`]: a component's `wasi:http` export offered on the lattice
//!   as `wrpc:http/incoming-handler` (for http-server providers).
//! - [`keyvalue`]: `wasi:keyvalue` on built-in memory or JetStream KV, or a provider.
//! - [`blobstore`]: `wasi:blobstore` on the filesystem (`builtin://blobstore-fs`), or a provider.
//! - [`messaging`]: `wasmcloud:messaging` on NATS (`builtin://messaging-nats`), or a provider.

pub mod blobstore;
pub mod bus;
pub mod config;
pub mod http_client;
mod http_forward;
pub mod http_lattice;
pub mod http_server;
pub mod keyvalue;
pub mod logging;
pub mod messaging;

use std::collections::BTreeMap;

use wasmtime::component::{HasSelf, Linker};

use crate::host::HostInner;
use crate::runtime::InvocationState;

/// The merged target config of `component`'s link named `link_name` to
/// `target` for `namespace:package` (empty when the link has none): what a
/// built-in capability reads its per-link settings from.
pub(crate) fn link_target_config(
    host: &HostInner,
    component: &str,
    target: &str,
    link_name: &str,
    (namespace, package): (&str, &str),
) -> Result<BTreeMap<String, String>, String> {
    let Ok(view) = host.view.read() else {
        return Err("the lattice view is unavailable".into());
    };
    Ok(view
        .links_from(component)
        .iter()
        .find(|l| {
            l.target == target
                && l.name == link_name
                && l.wit_namespace == namespace
                && l.wit_package == package
        })
        .map(|l| view.merged_config(&l.target_config))
        .unwrap_or_default())
}

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: [
            "../interfaces/wit/deps/config",
            "../interfaces/wit/deps/logging",
        ],
        inline: "
            package trellis:host-builtins@0.1.0;
            world builtins {
                import wasi:config/store@0.2.0-draft;
                import wasi:logging/logging@0.1.0-draft;
            }
        ",
        world: "trellis:host-builtins/builtins",
    });
}

/// Adds every in-process capability interface to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    bindings::wasi::config::store::add_to_linker::<_, HasSelf<InvocationState>>(linker, |s| s)?;
    bindings::wasi::logging::logging::add_to_linker::<_, HasSelf<InvocationState>>(linker, |s| s)?;
    bus::add_to_linker(linker)?;
    keyvalue::add_to_linker(linker)?;
    blobstore::add_to_linker(linker)?;
    messaging::add_to_linker(linker)?;
    Ok(())
}
