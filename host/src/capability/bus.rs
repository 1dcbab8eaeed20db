//! `wasmcloud:bus/lattice` (`@1.0.0` and `@2.0.x`): a component picks, per
//! interface, which link name its next calls use.
//!
//! The choice lives in the invocation's store, so it holds for the rest of
//! that invocation only: concurrent invocations of the same component never
//! see each other's choice (wasmCloud 1.x kept it per component, a race).
//! `@2.0.x` checks that a link with that name exists and says which is missing.

use wasmtime::component::{Linker, Resource, ResourceType};

use crate::runtime::InvocationState;

/// The `call-target-interface` resource: one `namespace:package/interface`.
pub struct CallTargetInterface {
    interface: String,
}

/// Versions served. Semver matching lets `@2.0.0` imports use `@2.0.1`.
const V1: &str = "wasmcloud:bus/lattice@1.0.0";
const V2: &str = "wasmcloud:bus/lattice@2.0.1";

/// Adds both versions of `wasmcloud:bus/lattice` to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    for (version, checked) in [(V1, false), (V2, true)] {
        let mut inst = linker.instance(version)?;
        inst.resource(
            "call-target-interface",
            ResourceType::host::<CallTargetInterface>(),
            |mut store, rep| {
                store
                    .data_mut()
                    .table_mut()
                    .delete(Resource::<CallTargetInterface>::new_own(rep))?;
                Ok(())
            },
        )?;
        inst.func_wrap(
            "[constructor]call-target-interface",
            |mut store, (namespace, package, interface): (String, String, String)| {
                let target = CallTargetInterface {
                    interface: format!("{namespace}:{package}/{interface}"),
                };
                Ok((store.data_mut().table_mut().push(target)?,))
            },
        )?;
        if checked {
            inst.func_wrap(
                "set-link-name",
                |mut store, (name, targets): (String, Vec<Resource<CallTargetInterface>>)| {
                    Ok((set_link_name(store.data_mut(), name, targets, true)?,))
                },
            )?;
        } else {
            inst.func_wrap(
                "set-link-name",
                |mut store, (name, targets): (String, Vec<Resource<CallTargetInterface>>)| {
                    // 1.0.0 returns nothing; an unknown name surfaces on the call.
                    let _ = set_link_name(store.data_mut(), name, targets, false)?;
                    Ok(())
                },
            )?;
        }
    }
    Ok(())
}

fn set_link_name(
    state: &mut InvocationState,
    name: String,
    targets: Vec<Resource<CallTargetInterface>>,
    checked: bool,
) -> wasmtime::Result<Result<(), String>> {
    let mut interfaces = Vec::with_capacity(targets.len());
    for target in targets {
        let t = state.table_mut().delete(target)?;
        interfaces.push(t.interface);
    }
    if checked && let Some(links) = &state.links {
        let missing: Vec<&str> = interfaces
            .iter()
            .filter(|i| !links.has_link(&state.component_id, i, &name))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Ok(Err(format!(
                "component `{}` has no link named `{name}` for {}",
                state.component_id,
                missing.join(", ")
            )));
        }
    }
    if interfaces
        .iter()
        .any(|i| i == super::http_client::OUTGOING_INTERFACE)
        && let Some(http_client) = state.links.as_ref().and_then(|l| l.http_client())
    {
        let hooks = http_client.hooks(&state.component_id, &name);
        state.set_outgoing_http(hooks);
    }
    for interface in interfaces {
        state.link_names.insert(interface, name.clone());
    }
    Ok(Ok(()))
}
