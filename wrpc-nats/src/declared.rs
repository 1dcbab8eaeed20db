//! [`DeclaredParams`]: the nested (async) param paths callers declared per
//! function, so calls to them can be held (see [`crate::hold`]).
//!
//! Generated bindings pass `Invoke::invoke` the nested paths of the
//! *results*, not of the params, so a caller that wants its complete async
//! params sent inline says which functions have some
//! ([`crate::Transport::declare_async_params`]), once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

type ByFunction = HashMap<String, HashMap<String, Arc<[Vec<usize>]>>>;

/// Declared nested param paths, by instance and function.
#[derive(Default)]
pub(crate) struct DeclaredParams {
    /// Whether anything was declared: the common case costs one load.
    any: AtomicBool,
    by_function: RwLock<ByFunction>,
}

impl DeclaredParams {
    /// Declares (or, with no paths, forgets) `func`'s nested param paths.
    /// `false` if a path has a wildcard: the streams to wait for are then
    /// unknown, and calls are not held.
    pub(crate) fn declare<P: AsRef<[Option<usize>]>>(
        &self,
        instance: &str,
        func: &str,
        paths: impl IntoIterator<Item = P>,
    ) -> bool {
        let exact: Option<Vec<Vec<usize>>> = paths
            .into_iter()
            .map(|p| p.as_ref().iter().copied().collect())
            .collect();
        let mut map = self.by_function.write().unwrap_or_else(|e| e.into_inner());
        let holdable = match exact {
            Some(paths) if !paths.is_empty() => {
                map.entry(instance.to_string())
                    .or_default()
                    .insert(func.to_string(), paths.into());
                true
            }
            other => {
                if let Some(funcs) = map.get_mut(instance) {
                    funcs.remove(func);
                }
                other.is_some()
            }
        };
        self.any
            .store(map.values().any(|f| !f.is_empty()), Ordering::Release);
        holdable
    }

    /// The declared paths of `func`, if any.
    pub(crate) fn get(&self, instance: &str, func: &str) -> Option<Arc<[Vec<usize>]>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let map = self.by_function.read().unwrap_or_else(|e| e.into_inner());
        map.get(instance)?.get(func).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declare_get_forget() {
        let declared = DeclaredParams::default();
        assert!(declared.get("i", "f").is_none());
        assert!(declared.declare("i", "f", [[Some(0), Some(0)], [Some(0), Some(1)]]));
        assert_eq!(
            declared.get("i", "f").unwrap().to_vec(),
            vec![vec![0, 0], vec![0, 1]]
        );
        assert!(declared.get("i", "g").is_none());
        // A wildcard: not held.
        assert!(!declared.declare("i", "f", [vec![Some(0), None]]));
        assert!(declared.get("i", "f").is_none());
        assert!(declared.declare("i", "f", [[Some(1)]]));
        assert!(declared.declare("i", "f", Vec::<Vec<Option<usize>>>::new()));
        assert!(declared.get("i", "f").is_none());
    }
}
