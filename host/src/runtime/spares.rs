//! Where spares wait: instances an export server made ahead of its next
//! call (`dataplane::serve`, [`Spare`]). Each export holds at most one, in
//! a [`SpareHolder`] the host can reach too: like an idle reused instance, a
//! spare holds a host instance slot, and it must never keep another
//! component's call waiting. A call that finds no slot free has every spare
//! torn down (with the idle reused instances, `RunningComponent::
//! acquire_within`), and the liveness tick tears down spares that waited
//! [`IDLE_TIMEOUT`] for a call, so an export that stopped being called
//! gives its slot and memory back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Spare;
use super::reuse::{IDLE_TIMEOUT, Registry};

/// One export's spare, if it has one, and since when it waits.
pub(crate) struct SpareHolder<T = Spare> {
    spare: Mutex<Option<(T, Instant)>>,
}

impl<T> Default for SpareHolder<T> {
    fn default() -> Self {
        Self {
            spare: Mutex::new(None),
        }
    }
}

impl<T> SpareHolder<T> {
    /// Keeps `spare` for the export's next call; hands it back when one
    /// already waits (the caller then drops it).
    pub(crate) fn put(&self, spare: T) -> Option<T> {
        self.put_at(spare, Instant::now())
    }

    fn put_at(&self, spare: T, now: Instant) -> Option<T> {
        match self.spare.lock() {
            Ok(mut held) if held.is_none() => {
                *held = Some((spare, now));
                None
            }
            _ => Some(spare),
        }
    }

    /// The spare, for the call about to start.
    pub(crate) fn take(&self) -> Option<T> {
        self.spare.lock().ok()?.take().map(|(spare, _)| spare)
    }

    /// Whether a spare waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.spare.lock().map_or(true, |held| held.is_none())
    }

    /// The spare if it waited `timeout` or longer at `now`.
    fn take_expired(&self, now: Instant, timeout: Duration) -> Option<T> {
        let mut held = self.spare.lock().ok()?;
        let since = held.as_ref()?.1;
        (now.saturating_duration_since(since) >= timeout)
            .then(|| held.take().map(|(spare, _)| spare))
            .flatten()
    }
}

/// Every export's spare holder on a host.
pub(crate) struct Spares<T = Spare> {
    holders: Registry<SpareHolder<T>>,
}

impl<T> Default for Spares<T> {
    fn default() -> Self {
        Self {
            holders: Registry::default(),
        }
    }
}

impl<T> Spares<T> {
    /// A holder for one export's spares, registered here.
    pub(crate) fn holder(&self) -> Arc<SpareHolder<T>> {
        let holder = Arc::new(SpareHolder::default());
        self.holders.register(&holder);
        holder
    }

    /// Spares waiting for a call, in all.
    pub(crate) fn count(&self) -> usize {
        self.holders.live().iter().filter(|h| !h.is_empty()).count()
    }

    /// Tears down every spare; returns how many.
    pub(crate) fn evict_all(&self) -> usize {
        // Dropped outside the holders' locks: each drop resets a pool slot.
        let spares: Vec<T> = self
            .holders
            .live()
            .iter()
            .filter_map(|h| h.take())
            .collect();
        spares.len()
    }

    /// Tears down the spares that waited [`IDLE_TIMEOUT`] or longer; returns
    /// how many.
    pub(crate) fn reap(&self) -> usize {
        self.reap_at(Instant::now(), IDLE_TIMEOUT)
    }

    fn reap_at(&self, now: Instant, timeout: Duration) -> usize {
        let spares: Vec<T> = self
            .holders
            .live()
            .iter()
            .filter_map(|h| h.take_expired(now, timeout))
            .collect();
        spares.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Spares;

    #[test]
    fn one_spare_per_holder_and_all_of_them_can_be_evicted() {
        let spares = Spares::<&str>::default();
        let a = spares.holder();
        let b = spares.holder();
        assert_eq!(a.put("a1"), None);
        assert_eq!(a.put("a2"), Some("a2"), "one waits already");
        assert_eq!(b.put("b1"), None);
        assert_eq!(spares.count(), 2);
        assert_eq!(a.take(), Some("a1"));
        assert!(a.is_empty());
        assert_eq!(spares.count(), 1);
        assert_eq!(a.put("a3"), None);
        assert_eq!(spares.evict_all(), 2);
        assert_eq!((a.take(), b.take()), (None, None));
        // A holder whose export is gone is forgotten with its spare.
        assert_eq!(b.put("b2"), None);
        drop(b);
        assert_eq!(spares.count(), 0);
        assert_eq!(spares.evict_all(), 0);
    }

    #[test]
    fn only_spares_that_waited_the_timeout_are_reaped() {
        let spares = Spares::<&str>::default();
        let (old, fresh) = (spares.holder(), spares.holder());
        let start = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(old.put_at("old", start), None);
        assert_eq!(fresh.put_at("fresh", start + 10 * second), None);
        assert_eq!(spares.reap_at(start + 4 * second, 5 * second), 0);
        assert_eq!(spares.reap_at(start + 6 * second, 5 * second), 1);
        assert!(old.is_empty());
        assert_eq!(fresh.take(), Some("fresh"));
    }
}
