//! Opt-in instance reuse: an instance that answered a call cleanly serves
//! the component's next calls, up to `max_instance_reuse` calls in all, as
//! `wasmtime serve --max-instance-reuse-count` does. Off by default (a
//! fresh instance per call, as in wasmCloud 1.x): a component opts in with
//! the scale request's `component_limits.max_instance_reuse`, or a host
//! sets the default for all its components (`--max-instance-reuse`).
//!
//! What a reused instance keeps from one call to the next: its linear
//! memory (globals, caches, the allocator's state) and its WASI context.
//! What it does not: the call scope (caller, link name, deadline, trace),
//! `set-link-name` choices and the outgoing-HTTP link, which are set again
//! for every call, and the component's config, which is the current one.
//! An instance whose call trapped, timed out or failed to decode is never
//! reused.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;
use wasmtime::component::Instance;

use super::InvocationState;
use super::component::RunningComponent;
use super::state::CallScope;

/// At most this many instances of one component generation wait for a
/// call: each holds a host instance slot.
pub(crate) const MAX_IDLE: usize = 16;

/// Host instance slots left free for calls: with this many or fewer free,
/// answered instances are torn down instead of kept, and no spare is made
/// (`runtime::calls`).
pub(crate) const SLOT_MARGIN: usize = 8;

/// An instance that waited this long for a call is torn down (by the host's
/// liveness tick), so a component that stopped being called gives its
/// memory back.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// An instance between two calls: its store, and the host instance slot it
/// holds (not the component's own permit: an idle instance never keeps a
/// call of the component waiting).
pub(crate) struct Reusable {
    pub(crate) store: Store<InvocationState>,
    pub(crate) instance: Instance,
    pub(crate) slot: OwnedSemaphorePermit,
    /// Calls it has answered.
    pub(crate) uses: u32,
}

/// Idle items, oldest first, each with the time it became idle.
struct IdleList<T> {
    entries: Vec<(T, Instant)>,
}

impl<T> IdleList<T> {
    /// The most recently used item (its memory is the warmest).
    fn pop(&mut self) -> Option<T> {
        self.entries.pop().map(|(item, _)| item)
    }

    /// Keeps `item`, unless `MAX_IDLE` already wait: then hands it back.
    fn push(&mut self, item: T, now: Instant) -> Option<T> {
        if self.entries.len() >= MAX_IDLE {
            return Some(item);
        }
        self.entries.push((item, now));
        None
    }

    /// Takes out the items idle for `timeout` or longer at `now`.
    fn expired(&mut self, now: Instant, timeout: Duration) -> Vec<T> {
        let stale = self
            .entries
            .iter()
            .take_while(|(_, since)| now.saturating_duration_since(*since) >= timeout)
            .count();
        self.entries.drain(..stale).map(|(item, _)| item).collect()
    }
}

/// The idle instances of one component generation (dropped with it).
pub(crate) struct ReusePool {
    max_uses: u32,
    idle: Mutex<IdleList<Reusable>>,
}

impl ReusePool {
    /// A pool when `max_uses` allows an instance more than one call.
    pub(crate) fn new(max_uses: u32) -> Option<Self> {
        (max_uses > 1).then(|| Self {
            max_uses,
            idle: Mutex::new(IdleList {
                entries: Vec::new(),
            }),
        })
    }

    /// Calls one instance may answer.
    pub(crate) fn max_uses(&self) -> u32 {
        self.max_uses
    }

    /// Instances waiting for a call.
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().map(|idle| idle.entries.len()).unwrap_or(0)
    }

    fn take(&self) -> Option<Reusable> {
        self.idle.lock().ok()?.pop()
    }

    /// Takes out every idle instance (to tear them down: a call is waiting
    /// for a host slot).
    fn drain(&self) -> Vec<Reusable> {
        self.idle
            .lock()
            .map(|mut idle| idle.entries.drain(..).map(|(item, _)| item).collect())
            .unwrap_or_default()
    }

    /// Keeps `instance` for a later call; hands it back when it has
    /// answered its last call, the pool is full or host slots are scarce
    /// (the caller then drops it, tearing it down).
    fn put(&self, instance: Reusable, free_slots: usize) -> Option<Reusable> {
        if instance.uses >= self.max_uses || free_slots <= SLOT_MARGIN {
            return Some(instance);
        }
        match self.idle.lock() {
            Ok(mut idle) => idle.push(instance, Instant::now()),
            Err(_) => Some(instance),
        }
    }
}

/// Things the host must be able to reach while someone else owns them (a
/// component generation's reuse pool, an export's spare): held weakly, so
/// they go when their owner does.
pub(crate) struct Registry<T> {
    items: Mutex<Vec<Weak<T>>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self {
            items: Mutex::new(Vec::new()),
        }
    }
}

impl<T> Registry<T> {
    /// Registers `item` (forgetting the items whose owner is gone).
    pub(crate) fn register(&self, item: &Arc<T>) {
        if let Ok(mut items) = self.items.lock() {
            items.retain(|i| i.strong_count() > 0);
            items.push(Arc::downgrade(item));
        }
    }

    /// The items whose owner still holds them.
    pub(crate) fn live(&self) -> Vec<Arc<T>> {
        self.items.lock().map_or_else(
            |_| Vec::new(),
            |mut items| {
                items.retain(|i| i.strong_count() > 0);
                items.iter().filter_map(Weak::upgrade).collect()
            },
        )
    }
}

/// Every reuse pool of a host, so that a call waiting for a host instance
/// slot can have idle instances torn down first: idle instances must never
/// keep another component's call waiting.
#[derive(Default)]
pub(crate) struct ReusePools {
    pools: Registry<ReusePool>,
}

impl ReusePools {
    /// A pool for a component generation whose instances may answer
    /// `max_uses` calls, registered here; `None` for one call per instance.
    pub(crate) fn pool(&self, max_uses: u32) -> Option<Arc<ReusePool>> {
        let pool = Arc::new(ReusePool::new(max_uses)?);
        self.pools.register(&pool);
        Some(pool)
    }

    /// Idle instances of the host, in all.
    pub(crate) fn idle(&self) -> usize {
        self.pools.live().iter().map(|pool| pool.idle()).sum()
    }

    /// Tears down every idle instance of the host; returns how many.
    pub(crate) fn evict_all(&self) -> usize {
        // Torn down outside the registry's lock: each drop resets a pool slot.
        self.pools
            .live()
            .iter()
            .map(|pool| pool.drain().len())
            .sum()
    }
}

impl RunningComponent {
    /// An idle instance for a call made within `scope`, its store prepared
    /// for that call as [`Self::new_store_in`] prepares a fresh one; the
    /// scope back when there is none.
    pub(crate) fn reuse_instance(&self, scope: CallScope) -> Result<Reusable, CallScope> {
        let Some(mut reusable) = self.reuse.as_deref().and_then(ReusePool::take) else {
            return Err(scope);
        };
        let budget = scope.remaining();
        let config = self.config.read().map(|c| c.clone()).unwrap_or_default();
        let state = reusable.store.data_mut();
        state.scope = scope;
        state.config = config;
        state.link_names.clear();
        self.arm_outgoing_http(state);
        let store = &mut reusable.store;
        store.set_epoch_deadline(super::Runtime::deadline_ticks(budget));
        store.epoch_deadline_trap();
        self.dataplane.count_reused();
        Ok(reusable)
    }

    /// Returns an instance whose call succeeded (its `uses` counting that
    /// call) to the pool; `None` when it was kept, else what to tear down.
    pub(crate) fn release_instance(&self, reusable: Reusable) -> Option<Reusable> {
        let Some(pool) = &self.reuse else {
            return Some(reusable);
        };
        let free = self.runtime.instance_slots().available_permits();
        pool.put(reusable, free)
    }

    /// Calls one instance of this generation may answer (1: no reuse).
    pub fn max_instance_reuse(&self) -> u32 {
        self.reuse.as_deref().map_or(1, ReusePool::max_uses)
    }

    /// Instances of this generation waiting for a call.
    pub fn idle_instances(&self) -> usize {
        self.reuse.as_deref().map_or(0, ReusePool::idle)
    }

    /// Tears down the instances that waited [`IDLE_TIMEOUT`] or longer for
    /// a call; returns how many.
    pub fn reap_idle_instances(&self) -> usize {
        let Some(pool) = &self.reuse else {
            return 0;
        };
        let expired = match pool.idle.lock() {
            Ok(mut idle) => idle.expired(Instant::now(), IDLE_TIMEOUT),
            Err(_) => return 0,
        };
        // Dropped outside the lock: each drop resets a pool slot.
        expired.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{IdleList, MAX_IDLE, ReusePool};

    #[test]
    fn the_warmest_item_goes_first_and_the_list_is_bounded() {
        let now = Instant::now();
        let mut list = IdleList {
            entries: Vec::new(),
        };
        for i in 0..MAX_IDLE {
            assert_eq!(list.push(i, now), None);
        }
        assert_eq!(list.push(99, now), Some(99), "full: handed back");
        assert_eq!(list.pop(), Some(MAX_IDLE - 1));
        assert_eq!(list.push(7, now), None);
        assert_eq!(list.pop(), Some(7));
    }

    #[test]
    fn only_items_idle_for_the_timeout_expire() {
        let start = Instant::now();
        let mut list = IdleList {
            entries: Vec::new(),
        };
        let second = Duration::from_secs(1);
        list.push("old", start);
        list.push("older-but-later", start + second);
        list.push("fresh", start + 10 * second);
        let timeout = 5 * second;
        assert!(list.expired(start + 4 * second, timeout).is_empty());
        assert_eq!(
            list.expired(start + 6 * second, timeout),
            ["old", "older-but-later"]
        );
        assert_eq!(list.pop(), Some("fresh"));
        assert_eq!(list.pop(), None);
    }

    #[test]
    fn one_call_per_instance_needs_no_pool() {
        assert!(ReusePool::new(0).is_none());
        assert!(ReusePool::new(1).is_none());
        assert_eq!(ReusePool::new(2).map(|p| p.max_uses()), Some(2));
    }
}
