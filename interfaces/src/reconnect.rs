//! How Trellis processes (hosts, wadm, providers) pace their NATS reconnects.
//!
//! async-nats's default backs off exponentially up to 4 s between attempts. With a
//! 3 s liveness timeout that is too slow: after any NATS outage longer than a few
//! seconds, a live host could come back up to 4 s after wadm did and be fenced — its
//! work moved — for no fault of its own. Trellis caps the delay at
//! [`MAX_RECONNECT_DELAY`], well inside the liveness timeout, so every process is back
//! within about a second of the server. Reconnecting to a local or regional NATS
//! server costs little; the cap trades a few extra attempts during a long outage for
//! a scheduler that does not drift when NATS degrades.

use std::time::Duration;

/// The longest pause between two reconnect attempts.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The pause before reconnect attempt `attempts` (1-based, as async-nats counts):
/// none for the first, then 50 ms doubling up to [`MAX_RECONNECT_DELAY`].
#[must_use]
pub fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exp = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(16);
    Duration::from_millis(50u64.saturating_mul(1u64 << exp)).min(MAX_RECONNECT_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_attempt_is_immediate_then_backs_off_to_a_cap_under_the_liveness_timeout() {
        assert_eq!(reconnect_delay(0), Duration::ZERO);
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(50));
        assert_eq!(reconnect_delay(3), Duration::from_millis(100));
        assert_eq!(reconnect_delay(6), Duration::from_millis(800));
        assert_eq!(reconnect_delay(7), MAX_RECONNECT_DELAY);
        assert_eq!(reconnect_delay(10_000), MAX_RECONNECT_DELAY);
    }
}
