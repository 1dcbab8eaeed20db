//! Waiting for the lattice event that confirms an acknowledged request.
//!
//! Hosts acknowledge `component.scale`, `provider.start` and friends before
//! doing the work; the outcome is only visible as an event. An [`EventWait`] is
//! subscribed to `wasmbus.evt.{lattice}.>` *before* the request is sent, so the
//! confirming event cannot be missed, and then settles a set of keys (usually
//! host ids) one event at a time until all are settled or the deadline passes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{Stream, StreamExt};
use trellis_interfaces::event::{CloudEvent, LatticeEvent};

use crate::ctl::{Lattice, Target};

/// How one awaited operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The confirming event arrived.
    Done,
    /// The failure event arrived, with its error.
    Failed(String),
}

/// Everything an [`EventWait`] learned before its deadline.
#[derive(Debug)]
pub struct WaitOutcome<K> {
    /// Keys whose event arrived, with how they ended.
    pub settled: BTreeMap<K, Settled>,
    /// Keys still waiting when the deadline passed.
    pub timed_out: Vec<K>,
}

impl<K: Ord + Clone + std::fmt::Display> WaitOutcome<K> {
    /// `Ok` if every key settled as [`Settled::Done`]; otherwise an error that
    /// lists each failure and each key that timed out.
    pub fn into_result(self, what: &str, waited: Duration, hint: &str) -> anyhow::Result<()> {
        let mut problems: Vec<String> = self
            .settled
            .iter()
            .filter_map(|(key, settled)| match settled {
                Settled::Done => None,
                Settled::Failed(error) => Some(format!("on host `{key}`: {error}")),
            })
            .collect();
        problems.extend(self.timed_out.iter().map(|key| {
            format!(
                "host `{key}` acknowledged but sent no confirmation within {} ms ({hint})",
                waited.as_millis()
            )
        }));
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{what} failed {}", problems.join("; "))
        }
    }
}

/// A subscription to every event of the lattice, opened before a request.
pub struct EventWait {
    events: Box<dyn Stream<Item = CloudEvent> + Send + Unpin>,
}

impl EventWait {
    /// Subscribes to `wasmbus.evt.{lattice}.>`. Call this before sending the request.
    pub async fn subscribe(lattice: &Lattice) -> anyhow::Result<Self> {
        let events = lattice
            .ctl
            .subscribe_events()
            .await
            .map_err(|e| lattice.explain(e, Target::Lattice))?;
        Ok(Self {
            events: Box::new(events),
        })
    }

    /// Reads events until every key in `pending` is settled or `deadline` passes.
    /// `classify` maps an event to the key it settles, if any; events for keys
    /// not (or no longer) pending are ignored.
    pub async fn settle<K: Ord + Clone>(
        &mut self,
        mut pending: BTreeSet<K>,
        deadline: Duration,
        mut classify: impl FnMut(&CloudEvent, &LatticeEvent) -> Option<(K, Settled)>,
    ) -> WaitOutcome<K> {
        let mut settled = BTreeMap::new();
        let end = tokio::time::Instant::now() + deadline;
        while !pending.is_empty() {
            let Ok(Some(envelope)) = tokio::time::timeout_at(end, self.events.next()).await else {
                break;
            };
            let Ok(event) = envelope.decode() else {
                continue;
            };
            if let Some((key, outcome)) = classify(&envelope, &event)
                && pending.remove(&key)
            {
                settled.insert(key, outcome);
            }
        }
        WaitOutcome {
            settled,
            timed_out: pending.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_lists_failures_and_timeouts() {
        let outcome = WaitOutcome {
            settled: BTreeMap::from([
                ("NA".to_string(), Settled::Done),
                ("NB".to_string(), Settled::Failed("fetch failed".into())),
            ]),
            timed_out: vec!["NC".to_string()],
        };
        let err = outcome
            .into_result("stopping `hello`", Duration::from_secs(1), "see its log")
            .unwrap_err()
            .to_string();
        assert!(err.contains("on host `NB`: fetch failed"), "{err}");
        assert!(err.contains("host `NC` acknowledged"), "{err}");
        assert!(!err.contains("NA"), "{err}");
        let ok = WaitOutcome {
            settled: BTreeMap::from([("NA".to_string(), Settled::Done)]),
            timed_out: Vec::new(),
        };
        assert!(ok.into_result("x", Duration::from_secs(1), "").is_ok());
    }
}
