//! Links a component's imports that the host does not serve to the data
//! plane. Each imported function becomes a `func_new_async` closure that, per
//! call, picks the link name (`set-link-name` or `default`), resolves the
//! target in the link table, and calls it in-process when it runs here or
//! over the lattice otherwise.

use std::sync::Arc;

use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, InstancePre, Linker, ResourceType, Val};
use wasmtime::{Engine, StoreContextMut};

use tracing::Instrument as _;

use super::DataPlane;
use super::exports::value_only;
use super::links::{default_link_name, unversioned};
use crate::observability::spans;
use crate::runtime::component::ComponentError;
use crate::runtime::state::{CallScope, InvocationState, MAX_CALL_DEPTH};

/// What the router knows about one imported function.
struct ImportedFunc {
    source_id: Arc<str>,
    /// `example:pong/pingpong@0.1.0`: the wire instance.
    instance: Arc<str>,
    /// `example:pong/pingpong`: the link key.
    interface: Arc<str>,
    func: Arc<str>,
    value_only: bool,
}

/// Pre-instantiates `component`: the host's own interfaces first, and every
/// other imported interface routed through `dataplane`. Interfaces that
/// cannot be routed (resources, streams) trap when called, with a message
/// saying why.
pub(crate) fn instantiate_pre(
    base: &Linker<InvocationState>,
    engine: &Engine,
    component: &Component,
    source_id: &Arc<str>,
    dataplane: &Arc<DataPlane>,
) -> Result<InstancePre<InvocationState>, ComponentError> {
    if let Ok(pre) = base.instantiate_pre(component) {
        return Ok(pre);
    }
    let mut linker = base.clone();
    let imports: Vec<(String, ComponentItem)> = component
        .component_type()
        .imports(engine)
        .map(|(n, i)| (n.to_string(), i))
        .collect();
    let mut routed: Vec<String> = Vec::new();
    let mut unroutable: Vec<String> = Vec::new();
    loop {
        let err = match linker.instantiate_pre(component) {
            Ok(pre) => {
                if !unroutable.is_empty() {
                    tracing::warn!(component_id = %source_id, interfaces = ?unroutable, "imports use resources or streams, which cannot be linked across components yet; calls to them trap");
                }
                return Ok(pre);
            }
            Err(e) => e,
        };
        let missing = missing_instance(&err);
        let item = missing.as_deref().and_then(|name| {
            imports
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, item)| item.clone())
        });
        match (missing, item) {
            (Some(name), Some(ComponentItem::ComponentInstance(inst)))
                if !routed.contains(&name) && !unroutable.contains(&name) =>
            {
                let funcs: Vec<(String, ComponentFunc)> = inst
                    .exports(engine)
                    .filter_map(|(f, item)| match item {
                        ComponentItem::ComponentFunc(ty) => Some((f.to_string(), ty)),
                        _ => None,
                    })
                    .collect();
                let has_resources = inst
                    .exports(engine)
                    .any(|(_, item)| matches!(item, ComponentItem::Resource(_)));
                if has_resources {
                    stub_instance(&mut linker, &name, &inst, engine)
                        .map_err(|e| ComponentError::Link(format!("{e:#}")))?;
                    unroutable.push(name);
                    continue;
                }
                link_instance(&mut linker, &name, funcs, source_id, dataplane)
                    .map_err(|e| ComponentError::Link(format!("{e:#}")))?;
                routed.push(name);
            }
            _ => return Err(ComponentError::Link(format!("{err:#}"))),
        }
    }
}

/// The instance name in wasmtime's "component imports instance `X`, but a
/// matching implementation was not found" error (wasmtime 45, pinned).
fn missing_instance(err: &wasmtime::Error) -> Option<String> {
    let text = err.to_string();
    let rest = text.strip_prefix("component imports instance `")?;
    let (name, tail) = rest.split_once('`')?;
    tail.contains("not found in the linker")
        .then(|| name.to_string())
}

/// Defines `instance`'s resources as opaque host types and its functions as
/// traps that say why: interfaces with resources are served by the host's
/// own capabilities or not at all.
fn stub_instance(
    linker: &mut Linker<InvocationState>,
    instance: &str,
    ty: &wasmtime::component::types::ComponentInstance,
    engine: &Engine,
) -> wasmtime::Result<()> {
    let mut inst = linker.instance(instance)?;
    for (name, item) in ty.exports(engine) {
        match item {
            ComponentItem::Resource(_) => {
                inst.resource(name, ResourceType::host::<()>(), |_, _| Ok(()))?;
            }
            ComponentItem::ComponentFunc(_) => {
                let what = format!("{instance}#{name}");
                inst.func_new(name, move |_, _, _, _| {
                    wasmtime::bail!(
                        "`{what}` is not served by this host, and interfaces with resources cannot be linked to other components or providers yet"
                    )
                })?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn link_instance(
    linker: &mut Linker<InvocationState>,
    instance: &str,
    funcs: Vec<(String, ComponentFunc)>,
    source_id: &Arc<str>,
    dataplane: &Arc<DataPlane>,
) -> wasmtime::Result<()> {
    let mut inst = linker.instance(instance)?;
    for (func, ty) in funcs {
        let imported = Arc::new(ImportedFunc {
            source_id: source_id.clone(),
            instance: Arc::from(instance),
            interface: Arc::from(unversioned(instance)),
            func: Arc::from(func.as_str()),
            value_only: ty.params().all(|(_, t)| value_only(&t))
                && ty.results().all(|t| value_only(&t)),
        });
        let dp = dataplane.clone();
        inst.func_new_async(&func, move |store, ty, params, results| {
            let imported = imported.clone();
            let dp = dp.clone();
            Box::new(async move { route(store, &dp, &imported, ty, params, results).await })
        })?;
    }
    Ok(())
}

async fn route(
    mut store: StoreContextMut<'_, InvocationState>,
    dp: &DataPlane,
    f: &ImportedFunc,
    ty: ComponentFunc,
    params: &[Val],
    results: &mut [Val],
) -> wasmtime::Result<()> {
    let state = store.data();
    let link_name: Arc<str> = state
        .link_names
        .get(&*f.interface)
        .map_or_else(default_link_arc, |n| Arc::from(n.as_str()));
    let target = dp
        .resolve(&f.source_id, &f.interface, &link_name)
        .map_err(wasmtime::Error::msg)?;
    if state.scope.depth >= MAX_CALL_DEPTH {
        wasmtime::bail!(
            "call from `{}` to `{target}` ({}.{}) is nested more than {MAX_CALL_DEPTH} deep",
            f.source_id,
            f.instance,
            f.func
        );
    }
    let local = if f.value_only {
        dp.local_target(&target)
            .filter(|local| local.exports().get(&f.instance, &f.func).is_some())
    } else {
        None
    };
    let span = spans::link_call(
        &state.scope.span,
        spans::LinkCall {
            source_id: &f.source_id,
            target_id: &target,
            link_name: &link_name,
            interface: &f.instance,
            function: &f.func,
            path: if local.is_some() {
                spans::CallPath::Local
            } else {
                spans::CallPath::Lattice
            },
        },
    );
    let scope = CallScope {
        source_id: Some(f.source_id.clone()),
        link_name: Some(link_name),
        deadline: state.scope.deadline,
        depth: state.scope.depth + 1,
        trace: state.scope.trace.clone(),
        span: span.clone().into(),
    };
    let result = if let Some(local) = local {
        dp.count_local();
        local
            .call_local(scope, &f.instance, &f.func, params, results)
            .instrument(span.clone())
            .await
            .map_err(wasmtime::Error::msg)
    } else if !f.value_only {
        Err(wasmtime::format_err!(
            "`{}.{}` passes resources, futures or streams, which cannot cross hosts yet",
            f.instance,
            f.func
        ))
    } else {
        dp.count_lattice();
        super::remote::call(
            &mut store,
            dp,
            &target,
            f.instance.as_ref(),
            &f.func,
            &ty,
            scope,
            params,
            results,
        )
        .instrument(span.clone())
        .await
    };
    if let Err(e) = &result {
        spans::fail(&span, e);
    }
    result
}

/// `default` as a shared `Arc<str>`: almost every call uses it, and
/// `Arc::from(&str)` allocates.
fn default_link_arc() -> Arc<str> {
    static DEFAULT: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    DEFAULT
        .get_or_init(|| Arc::from(default_link_name()))
        .clone()
}
