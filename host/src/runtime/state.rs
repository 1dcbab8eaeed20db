use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::p2::{WasiHttpCtxView, WasiHttpView};

use super::engine::RuntimeError;
use crate::capability;

/// The data of one invocation's `Store`: WASI contexts with nothing granted
/// (no environment, no preopened directories, no sockets), the component's
/// named config as it stood when the invocation began, and memory limits.
pub struct InvocationState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: capability::http_client::DeniedOutgoingHttp,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    /// Id of the component this store runs, for logs.
    pub(crate) component_id: Arc<str>,
    /// Merged named config of the component (`wasi:config/store`).
    pub(crate) config: Arc<BTreeMap<String, String>>,
}

impl InvocationState {
    /// State for one invocation of `component_id`.
    pub fn new(
        component_id: Arc<str>,
        config: Arc<BTreeMap<String, String>>,
        max_linear_memory_bytes: usize,
    ) -> Self {
        let mut wasi = WasiCtx::builder();
        // Nothing is granted by default: no env, no args, no preopens, no
        // network. stdout/stderr of guests go to the host's log.
        wasi.inherit_stdout().inherit_stderr();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            http_hooks: capability::http_client::DeniedOutgoingHttp,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(max_linear_memory_bytes)
                .instances(64)
                .build(),
            component_id,
            config,
        }
    }
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InvocationState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// The linker every component starts from: the WASI 0.2 CLI world, `wasi:http`
/// and the host's built-in interfaces.
pub(crate) fn base_linker(engine: &Engine) -> Result<Linker<InvocationState>, RuntimeError> {
    let mut linker = Linker::new(engine);
    let err = |e: wasmtime::Error| RuntimeError::Linker(format!("{e:#}"));
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(err)?;
    capability::add_to_linker(&mut linker).map_err(err)?;
    Ok(linker)
}
