//! What a component exports, indexed once per compiled component so a call
//! (local or from the lattice) finds its function without walking types.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex, Type};

use super::links::unversioned;

/// Exports the host itself serves and never offers on the lattice: HTTP comes
/// in through the ingress, `wasi:cli/run` is not an RPC.
const NOT_ON_THE_LATTICE: &[&str] = &["wasi:http/incoming-handler", "wasi:cli/run"];

/// One exported function.
#[derive(Clone)]
pub struct ExportedFunc {
    /// Instance name as exported (`example:pong/pingpong@0.1.0`), empty for a
    /// root-level function.
    pub instance: String,
    /// Function name (`ping`, `[method]res.get`).
    pub func: String,
    /// Index to look the function up in an instance.
    pub index: ComponentExportIndex,
    /// Its type.
    pub ty: ComponentFunc,
    /// No resources, futures or streams anywhere in params or results: the
    /// function can be called with plain values (in-process) and with the
    /// compact framing (lattice).
    pub value_only: bool,
    /// Parameter types in order, collected once: every served call needs
    /// them and walking `ty` allocates.
    params: Arc<[Type]>,
    /// Result types in order, collected once (same reason).
    results: Arc<[Type]>,
}

impl ExportedFunc {
    /// Parameter types in order.
    pub fn param_types(&self) -> &[Type] {
        &self.params
    }
    /// Result types in order.
    pub fn result_types(&self) -> &[Type] {
        &self.results
    }
}

/// Function name → index in [`ExportTable::funcs`], per instance name: two
/// lookups by `&str`, so finding a function allocates nothing (a
/// `(String, String)` key cost two allocations per call).
type ByInstance = HashMap<String, HashMap<String, usize>>;

/// Every exported function of one component.
#[derive(Clone, Default)]
pub struct ExportTable {
    funcs: Vec<ExportedFunc>,
    by_name: ByInstance,
    by_unversioned: ByInstance,
}

impl ExportTable {
    /// Walks `component`'s export types.
    pub fn new(engine: &Engine, component: &Component) -> Self {
        let mut table = Self::default();
        let ty = component.component_type();
        for (name, item) in ty.exports(engine) {
            match item {
                ComponentItem::ComponentFunc(f) => {
                    if let Some(index) = component.get_export_index(None, name) {
                        table.push(String::new(), name.to_string(), index, f);
                    }
                }
                ComponentItem::ComponentInstance(inst) => {
                    if NOT_ON_THE_LATTICE.contains(&unversioned(name)) {
                        continue;
                    }
                    let Some(inst_index) = component.get_export_index(None, name) else {
                        continue;
                    };
                    for (fname, fitem) in inst.exports(engine) {
                        if let ComponentItem::ComponentFunc(f) = fitem
                            && let Some(index) =
                                component.get_export_index(Some(&inst_index), fname)
                        {
                            table.push(name.to_string(), fname.to_string(), index, f);
                        }
                    }
                }
                _ => {}
            }
        }
        table
    }

    fn push(
        &mut self,
        instance: String,
        func: String,
        index: ComponentExportIndex,
        ty: ComponentFunc,
    ) {
        let value_only =
            ty.params().all(|(_, t)| value_only(&t)) && ty.results().all(|t| value_only(&t));
        let at = self.funcs.len();
        self.by_name
            .entry(instance.clone())
            .or_default()
            .insert(func.clone(), at);
        self.by_unversioned
            .entry(unversioned(&instance).to_string())
            .or_default()
            .insert(func.clone(), at);
        let params = ty.params().map(|(_, t)| t).collect();
        let results = ty.results().collect();
        self.funcs.push(ExportedFunc {
            instance,
            func,
            index,
            ty,
            value_only,
            params,
            results,
        });
    }

    /// The function `func` of `instance`: exact name first, then the same
    /// interface at another version.
    pub fn get(&self, instance: &str, func: &str) -> Option<&ExportedFunc> {
        let lookup = |map: &ByInstance, instance: &str| map.get(instance)?.get(func).copied();
        lookup(&self.by_name, instance)
            .or_else(|| lookup(&self.by_unversioned, unversioned(instance)))
            .and_then(|i| self.funcs.get(i))
    }

    /// Every exported function.
    pub fn iter(&self) -> impl Iterator<Item = &ExportedFunc> {
        self.funcs.iter()
    }
}

/// Whether values of `ty` are plain data (no handles, no async values).
pub fn value_only(ty: &Type) -> bool {
    match ty {
        // `map` has no wRPC encoding in wrpc-runtime-wasmtime 0.31.
        Type::Own(_)
        | Type::Borrow(_)
        | Type::Future(_)
        | Type::Stream(_)
        | Type::ErrorContext
        | Type::Map(_) => false,
        Type::List(l) => value_only(&l.ty()),
        Type::Record(r) => r.fields().all(|f| value_only(&f.ty)),
        Type::Tuple(t) => t.types().all(|t| value_only(&t)),
        Type::Variant(v) => v.cases().all(|c| c.ty.as_ref().is_none_or(value_only)),
        Type::Option(o) => value_only(&o.ty()),
        Type::Result(r) => {
            r.ok().as_ref().is_none_or(value_only) && r.err().as_ref().is_none_or(value_only)
        }
        _ => true,
    }
}
