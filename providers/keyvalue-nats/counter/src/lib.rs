//! Atomic counters on a JetStream KV bucket, shared by the host's
//! `builtin://keyvalue-nats` and the `keyvalue-nats` provider.
//!
//! `wasi:keyvalue/atomics.increment` on JetStream KV is a read of the entry
//! followed by a compare-and-set on its revision (`update` with the expected
//! last subject sequence): two round trips, more when writers race. A
//! [`Counters`] (one per opened bucket) makes the usual increment **one**
//! round trip and keeps a hot key from retrying itself to death:
//!
//! - **Revision cache**: it remembers the value and revision of each key it
//!   last read or wrote, and the next increment of that key goes straight to
//!   the compare-and-set. If anybody else wrote the key since (another host,
//!   another provider instance, a `set`), that compare-and-set fails and the
//!   increment falls back to read + compare-and-set, so a stale cache costs
//!   one round trip and never a wrong value.
//! - **Combining**: increments of one key that arrive while an increment of
//!   that key is in flight wait for it, then go together in one
//!   compare-and-set of their summed deltas; each caller gets its own result,
//!   exactly as if they had run one after the other.
//!
//! Values are decimal `u64` text, as wasmCloud's keyvalue providers store
//! them; an absent, deleted or empty entry counts as 0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_nats::jetstream::kv;
use bytes::Bytes;
use tokio::sync::oneshot;

/// How many compare-and-set attempts an increment makes before it gives up
/// because other writers keep changing the key. Each attempt is one or two
/// round trips; 64 covers heavy contention without looping forever.
pub const MAX_ATTEMPTS: usize = 64;

/// How many keys' revisions one bucket remembers. Past it, the idle ones are
/// forgotten (their next increment reads first, as the first one did).
pub const MAX_REMEMBERED_KEYS: usize = 65_536;

/// Why an increment failed. The caller adds the key and bucket.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IncrementError {
    /// JetStream refused or failed an operation.
    #[error("JetStream KV {op} failed: {message}")]
    Backend {
        /// `get`, `update`, `create`.
        op: &'static str,
        /// What JetStream (or the client) said.
        message: String,
    },
    /// The key holds something that is not a decimal `u64`.
    #[error("it holds {value:?}, not a decimal counter")]
    NotACounter {
        /// The value, lossily decoded.
        value: String,
    },
    /// The counter would pass `u64::MAX`.
    #[error("adding {delta} to {current} overflows u64")]
    Overflow {
        /// The counter's value.
        current: u64,
        /// The delta (the sum of the deltas combined in one write).
        delta: u64,
    },
    /// Every compare-and-set lost a race with another writer.
    #[error("the compare-and-set lost the race {MAX_ATTEMPTS} times in a row; retry")]
    Contended,
}

/// The counters of one JetStream KV bucket. Cheap to share (`Arc`).
pub struct Counters {
    store: kv::Store,
    keys: Mutex<HashMap<String, KeyState>>,
}

/// What this process knows of one key.
#[derive(Default)]
struct KeyState {
    /// The value and revision last read or written here.
    known: Option<Known>,
    /// An increment of this key is in flight.
    running: bool,
    /// Increments that arrived while one was in flight.
    waiting: Vec<Waiter>,
}

#[derive(Clone, Copy, Debug)]
struct Known {
    value: u64,
    revision: u64,
}

struct Waiter {
    delta: u64,
    reply: oneshot::Sender<Result<u64, IncrementError>>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("bucket", &self.store.name)
            .finish_non_exhaustive()
    }
}

impl Counters {
    /// Counters on `store`.
    pub fn new(store: kv::Store) -> Arc<Counters> {
        Arc::new(Counters {
            store,
            keys: Mutex::new(HashMap::new()),
        })
    }

    /// The bucket, for the other operations.
    pub fn store(&self) -> &kv::Store {
        &self.store
    }

    /// Drops what is remembered of `key`: call it after writing or deleting
    /// the key another way (a stale entry would only cost a failed
    /// compare-and-set, this saves it).
    pub fn forget(&self, key: &str) {
        if let Some(state) = self.lock().get_mut(key) {
            state.known = None;
        }
    }

    /// Adds `delta` to the counter at `key` and returns the new value.
    pub async fn increment(self: &Arc<Self>, key: &str, delta: u64) -> Result<u64, IncrementError> {
        let known = match self.join(key, delta) {
            Ok(known) => known,
            Err(answer) => {
                return answer.await.unwrap_or_else(|_| {
                    Err(IncrementError::Backend {
                        op: "update",
                        message: "the combined increment ended without an answer".into(),
                    })
                });
            }
        };
        // This call leads: it writes its own delta now. Whatever arrives
        // meanwhile is handed to a task when it is done (or dropped).
        let mut lead = Lead {
            counters: Arc::clone(self),
            key: key.to_owned(),
            done: false,
        };
        let outcome = self.apply(key, known, delta).await;
        lead.finish(&outcome);
        outcome.map(|(_, after)| after.value)
    }

    /// Marks `key` running and returns what is known of it (this call leads),
    /// or queues `delta` behind the increment in flight and returns where
    /// its answer will come.
    fn join(
        &self,
        key: &str,
        delta: u64,
    ) -> Result<Option<Known>, oneshot::Receiver<Result<u64, IncrementError>>> {
        let mut keys = self.lock();
        if !keys.contains_key(key) && keys.len() >= MAX_REMEMBERED_KEYS {
            keys.retain(|_, state| state.running);
        }
        let state = match keys.get_mut(key) {
            Some(state) => state,
            None => keys.entry(key.to_owned()).or_default(),
        };
        if state.running {
            let (reply, answer) = oneshot::channel();
            state.waiting.push(Waiter { delta, reply });
            return Err(answer);
        }
        state.running = true;
        Ok(state.known)
    }

    /// Writes `current + total` with compare-and-set, starting from `known`
    /// when there is a guess. Returns the value before and after.
    async fn apply(
        &self,
        key: &str,
        mut guess: Option<Known>,
        total: u64,
    ) -> Result<(u64, Known), IncrementError> {
        for _ in 0..MAX_ATTEMPTS {
            let (current, revision) = match guess.take() {
                Some(known) => (known.value, Some(known.revision)),
                None => self.read(key).await?,
            };
            let next = current.checked_add(total).ok_or(IncrementError::Overflow {
                current,
                delta: total,
            })?;
            let bytes = Bytes::from(next.to_string());
            let written = match revision {
                Some(revision) => match self.store.update(key, bytes, revision).await {
                    Ok(revision) => Some(revision),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => None,
                    Err(e) => return Err(backend("update", e)),
                },
                // `create` also succeeds over a deleted or purged entry.
                None => match self.store.create(key, bytes).await {
                    Ok(revision) => Some(revision),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => None,
                    Err(e) => return Err(backend("create", e)),
                },
            };
            if let Some(revision) = written {
                return Ok((
                    current,
                    Known {
                        value: next,
                        revision,
                    },
                ));
            }
        }
        Err(IncrementError::Contended)
    }

    /// The counter's value and revision (`None`: no live entry, value 0).
    async fn read(&self, key: &str) -> Result<(u64, Option<u64>), IncrementError> {
        let entry = self.store.entry(key).await.map_err(|e| backend("get", e))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                Ok((parse(&entry.value)?, Some(entry.revision)))
            }
            _ => Ok((0, None)),
        }
    }

    /// Serves the increments that queued up behind a lead, batch by batch,
    /// until none is left.
    async fn drain(self: Arc<Self>, key: String) {
        loop {
            let (batch, known) = {
                let mut keys = self.lock();
                let Some(state) = keys.get_mut(&key) else {
                    return;
                };
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                (std::mem::take(&mut state.waiting), state.known)
            };
            let total = batch
                .iter()
                .try_fold(0u64, |sum, waiter| sum.checked_add(waiter.delta));
            let outcome = match total {
                Some(total) => self.apply(&key, known, total).await,
                None => Err(IncrementError::Overflow {
                    current: known.map_or(0, |k| k.value),
                    delta: u64::MAX,
                }),
            };
            self.remember(&key, &outcome);
            match outcome {
                Ok((mut value, _)) => {
                    for waiter in batch {
                        // Cannot overflow: the sum of the deltas did not.
                        value = value.saturating_add(waiter.delta);
                        let _ = waiter.reply.send(Ok(value));
                    }
                }
                Err(error) => {
                    for waiter in batch {
                        let _ = waiter.reply.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    fn remember(&self, key: &str, outcome: &Result<(u64, Known), IncrementError>) {
        if let Some(state) = self.lock().get_mut(key) {
            state.known = outcome.as_ref().ok().map(|(_, after)| *after);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, KeyState>> {
        // The map is consistent between statements; a panic elsewhere while
        // holding it cannot leave it half-updated.
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The leading increment of a key: when it ends, or is dropped mid-flight
/// (its caller gave up), the increments that queued behind it are served by
/// a task, or the key is marked idle.
struct Lead {
    counters: Arc<Counters>,
    key: String,
    done: bool,
}

impl Lead {
    fn finish(&mut self, outcome: &Result<(u64, Known), IncrementError>) {
        self.counters.remember(&self.key, outcome);
        self.hand_over();
    }

    fn hand_over(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let waiting = {
            let mut keys = self.counters.lock();
            match keys.get_mut(&self.key) {
                Some(state) if !state.waiting.is_empty() => true,
                Some(state) => {
                    state.running = false;
                    false
                }
                None => false,
            }
        };
        if waiting {
            let counters = Arc::clone(&self.counters);
            let key = std::mem::take(&mut self.key);
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(counters.drain(key));
                }
                // No runtime (dropped outside one): fail the waiters rather
                // than leave them hanging.
                Err(_) => counters.abandon(&key),
            }
        }
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        self.hand_over();
    }
}

impl Counters {
    fn abandon(&self, key: &str) {
        let waiting = match self.lock().get_mut(key) {
            Some(state) => {
                state.running = false;
                std::mem::take(&mut state.waiting)
            }
            None => Vec::new(),
        };
        for waiter in waiting {
            let _ = waiter.reply.send(Err(IncrementError::Backend {
                op: "update",
                message: "the runtime shut down".into(),
            }));
        }
    }
}

fn backend(op: &'static str, e: impl std::fmt::Display) -> IncrementError {
    IncrementError::Backend {
        op,
        message: e.to_string(),
    }
}

/// A stored counter: decimal text, surrounding whitespace allowed, empty = 0.
pub fn parse(value: &[u8]) -> Result<u64, IncrementError> {
    let text = std::str::from_utf8(value).unwrap_or("\u{fffd}").trim();
    if text.is_empty() && value.iter().all(u8::is_ascii_whitespace) {
        return Ok(0);
    }
    text.parse().map_err(|_| IncrementError::NotACounter {
        value: String::from_utf8_lossy(value).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_text_and_empty_as_zero() {
        assert_eq!(parse(b"42"), Ok(42));
        assert_eq!(parse(b" 7\n"), Ok(7));
        assert_eq!(parse(b""), Ok(0));
        assert_eq!(
            parse(b"-1"),
            Err(IncrementError::NotACounter { value: "-1".into() })
        );
        assert!(matches!(
            parse(&[0xff, b'1']),
            Err(IncrementError::NotACounter { .. })
        ));
        assert!(matches!(
            parse(b"18446744073709551616"),
            Err(IncrementError::NotACounter { .. })
        ));
    }
}
