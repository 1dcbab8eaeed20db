//! The WebAssembly runtime: one wasmtime [`Engine`](wasmtime::Engine) per host
//! (component model, async, epoch deadlines, pooling allocator), the on-disk
//! cache of precompiled components, the per-invocation store state, and
//! [`RunningComponent`], a compiled component ready to be instantiated.

mod cache;
mod calls;
pub(crate) mod component;
mod engine;
mod reuse;
mod spares;
pub(crate) mod state;

pub use cache::PrecompiledCache;
pub(crate) use calls::{Finished, Spare};
pub use component::{
    CompiledArtifact, ComponentError, ComponentParams, InvokeError, RescaleLimits,
    RunningComponent, SharedConfig, VerifiedClaims, check_header, compile, error_status,
};
pub use engine::{Runtime, RuntimeError};
pub(crate) use spares::SpareHolder;
pub use state::{CallScope, InvocationState};
