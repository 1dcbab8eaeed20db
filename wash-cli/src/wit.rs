//! The world of a component, as far as `wash inspect` shows it: the names of
//! what its top-level import and export sections name (`wasi:http/types@0.2.0`,
//! `wasi:http/incoming-handler@0.2.0`, a plain function, …), read with
//! wasmparser's component reader. Types are not decoded into WIT text; the
//! names are what a person (and `wash dev`-style tooling) matches links on.

use serde::Serialize;
use wasmparser::{ComponentExternalKind, ComponentTypeRef, Encoding, Parser, Payload};

/// One import or export of a component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorldItem {
    /// The name as the binary spells it.
    pub name: String,
    /// `interface`, `function`, `type`, `component`, `module` or `value`.
    pub kind: &'static str,
}

/// What a component imports and exports, in binary order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct World {
    /// Imports.
    pub imports: Vec<WorldItem>,
    /// Exports.
    pub exports: Vec<WorldItem>,
}

impl World {
    /// The world as text: two lists of names, interfaces first-class and other
    /// kinds marked.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (title, items) in [("Imports", &self.imports), ("Exports", &self.exports)] {
            out.push_str(&format!("{title}:\n"));
            if items.is_empty() {
                out.push_str("  (none)\n");
            }
            for item in items {
                if item.kind == "interface" {
                    out.push_str(&format!("  {}\n", item.name));
                } else {
                    out.push_str(&format!("  {} ({})\n", item.name, item.kind));
                }
            }
        }
        out
    }
}

/// The imports and exports of `wasm`; `None` for a core module (which has no
/// WIT world). Nested components and modules are skipped: only the outer
/// component's sections say what the component as a whole needs and offers.
pub fn world(wasm: &[u8]) -> anyhow::Result<Option<World>> {
    let mut world = World::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| anyhow::anyhow!("cannot read the component: {e}"))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Ok(None);
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import =
                        import.map_err(|e| anyhow::anyhow!("cannot read an import: {e}"))?;
                    world.imports.push(WorldItem {
                        name: import.name.0.to_string(),
                        kind: type_ref_kind(&import.ty),
                    });
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export =
                        export.map_err(|e| anyhow::anyhow!("cannot read an export: {e}"))?;
                    world.exports.push(WorldItem {
                        name: export.name.0.to_string(),
                        kind: external_kind(export.kind),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(Some(world))
}

fn type_ref_kind(ty: &ComponentTypeRef) -> &'static str {
    match ty {
        ComponentTypeRef::Module(_) => "module",
        ComponentTypeRef::Func(_) => "function",
        ComponentTypeRef::Value(_) => "value",
        ComponentTypeRef::Type(_) => "type",
        ComponentTypeRef::Instance(_) => "interface",
        ComponentTypeRef::Component(_) => "component",
    }
}

fn external_kind(kind: ComponentExternalKind) -> &'static str {
    match kind {
        ComponentExternalKind::Module => "module",
        ComponentExternalKind::Func => "function",
        ComponentExternalKind::Value => "value",
        ComponentExternalKind::Type => "type",
        ComponentExternalKind::Instance => "interface",
        ComponentExternalKind::Component => "component",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_module_has_no_world() {
        assert_eq!(world(b"\0asm\x01\0\0\0").unwrap(), None);
    }

    #[test]
    fn an_empty_component_has_an_empty_world() {
        let world = world(b"\0asm\x0d\0\x01\0").unwrap().unwrap();
        assert!(world.imports.is_empty() && world.exports.is_empty());
        assert_eq!(world.render(), "Imports:\n  (none)\nExports:\n  (none)\n");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(world(b"not wasm").is_err());
    }
}
