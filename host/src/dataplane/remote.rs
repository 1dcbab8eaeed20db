//! The lattice path of a call: encode the parameters with the component-model
//! value encoding, invoke `{lattice}.{target}.wrpc.0.0.1.{instance}.{func}`
//! through `trellis-wrpc` (2 NATS messages between Trellis hosts), decode the
//! results into the caller's slots.

use std::pin::pin;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt as _;
use tokio_util::codec::Encoder as _;
use wasmtime::component::Val;
use wasmtime::component::types::ComponentFunc;
use wasmtime::{AsContextMut as _, StoreContextMut};
use wrpc_runtime_wasmtime::{ValEncoder, read_value};
use wrpc_transport::Invoke as _;

use super::DataPlane;
use crate::runtime::state::{CallScope, InvocationState};

/// Calls `target`'s `instance.func` over the lattice.
#[allow(clippy::too_many_arguments)] // one call's full description; a struct would only rename it
pub(crate) async fn call(
    store: &mut StoreContextMut<'_, InvocationState>,
    dp: &DataPlane,
    target: &str,
    instance: &str,
    func: &str,
    ty: &ComponentFunc,
    scope: CallScope,
    params: &[Val],
    results: &mut [Val],
) -> wasmtime::Result<()> {
    let Some(transport) = dp.transport() else {
        wasmtime::bail!("the lattice transport is not connected yet; retry the call");
    };
    let mut buf = BytesMut::new();
    for (i, (v, ty)) in params.iter().zip(ty.params().map(|(_, t)| t)).enumerate() {
        let mut enc =
            ValEncoder::<_, trellis_wrpc::ParamWriter>::new(store.as_context_mut(), &ty, &[], &[]);
        enc.encode(v, &mut buf).map_err(|e| {
            e.context(format!(
                "cannot encode parameter {i} of `{instance}.{func}`"
            ))
        })?;
        if enc.deferred.is_some() {
            wasmtime::bail!(
                "`{instance}.{func}` passes futures or streams, which cannot cross hosts yet"
            );
        }
    }
    let timeout = scope.remaining().min(dp.rpc_timeout());
    // Static header names: a `&str` name is allocated and validated on every
    // insert.
    use trellis_wrpc::headers::{self as h, name};
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        name(h::SOURCE_ID),
        scope.source_id.as_deref().unwrap_or_default(),
    );
    headers.insert(
        name(h::LINK_NAME),
        scope
            .link_name
            .as_deref()
            .unwrap_or(super::links::default_link_name()),
    );
    // With traces on, the receiver's spans become children of this call's
    // `link.call` span; otherwise the caller's own context is passed on as
    // received.
    let outgoing = crate::observability::spans::outgoing_trace(&scope.span);
    if let Some(trace) = outgoing.as_ref().or(scope.trace.as_deref()) {
        headers.insert(name(h::TRACEPARENT), trace.traceparent.as_str());
        if let Some(state) = &trace.tracestate {
            headers.insert(name(h::TRACESTATE), state.as_str());
        }
    }
    let cx = trellis_wrpc::CallContext {
        prefix: format!("{}.{target}", dp.lattice()),
        headers: Some(headers),
        timeout: Some(timeout),
    };
    let no_paths: [&[Option<usize>]; 0] = [];
    let (mut outgoing, incoming) = transport
        .client()
        .invoke(cx, instance, func, buf.freeze(), no_paths)
        .await
        .map_err(|e| call_error(target, instance, func, e))?;
    outgoing
        .shutdown()
        .await
        .map_err(|e| call_error(target, instance, func, e.into()))?;
    let mut incoming = pin!(incoming);
    for (i, (v, ty)) in results.iter_mut().zip(ty.results()).enumerate() {
        read_value(store, &mut incoming, &[], &[], v, &ty, &[i])
            .await
            .map_err(|e| call_error(target, instance, func, e.into()))?;
    }
    Ok(())
}

fn call_error(target: &str, instance: &str, func: &str, err: anyhow::Error) -> wasmtime::Error {
    let detail = err
        .chain()
        .find_map(trellis_wrpc::find_wrpc_error)
        .map_or_else(|| format!("{err:#}"), ToString::to_string);
    wasmtime::Error::msg(format!(
        "call to `{target}` ({instance}.{func}) failed: {detail}"
    ))
}
