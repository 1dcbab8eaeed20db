//! Timeouts that decide when a host is fenced, when a command is given up on and when a
//! failed start is retried. Time is always passed in (milliseconds on any monotonic
//! clock), never read, so the simulator and tests control it.

/// A Trellis host beats every second; three seconds of silence (two missed beats plus
/// jitter) fences it. Together with a one-second reconcile this places a dead host's
/// work elsewhere well under the 5 s bar, where wadm 0.21 needed 70 s to notice.
pub const DEFAULT_HOST_TIMEOUT_MS: u64 = 3_000;

/// A host that has never sent a Trellis liveness beat (a wasmCloud 1.x host) only
/// sends its `host_heartbeat` every 30 s: it is fenced after two missed heartbeats plus
/// margin, the 70 s wadm 0.21's reaper uses.
pub const DEFAULT_LEGACY_HOST_TIMEOUT_MS: u64 = 70_000;

/// A component scale or link/config command is in flight for up to 5 s (wadm 0.21's
/// wait for components and links): identical commands are not re-sent meanwhile.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 5_000;

/// A provider start downloads and spawns a process: it is in flight for up to 30 s
/// (wadm 0.21 waits 60 s; Trellis providers start in well under that, and a lost
/// command should not block a replacement for a minute).
pub const DEFAULT_PROVIDER_COMMAND_TIMEOUT_MS: u64 = 30_000;

/// After a `component_scale_failed` / `provider_start_failed` / `linkdef_set_failed`,
/// the same thing is not retried on that host for 10 s, so a broken image does not turn
/// into a tight loop of failures; the status says `failed` with the host's reason.
pub const DEFAULT_FAILURE_BACKOFF_MS: u64 = 10_000;

/// When wadm acts on what it sees, and when it refuses to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Silence after which a host that sends liveness beats is fenced: treated as absent
    /// for placement, its work placed elsewhere. See [`DEFAULT_HOST_TIMEOUT_MS`].
    pub host_timeout_ms: u64,
    /// Silence after which a host without liveness beats is fenced.
    /// See [`DEFAULT_LEGACY_HOST_TIMEOUT_MS`].
    pub legacy_host_timeout_ms: u64,
    /// How long a component or link/config command counts as in flight.
    /// See [`DEFAULT_COMMAND_TIMEOUT_MS`].
    pub command_timeout_ms: u64,
    /// How long a provider command counts as in flight.
    /// See [`DEFAULT_PROVIDER_COMMAND_TIMEOUT_MS`].
    pub provider_command_timeout_ms: u64,
    /// How long a failed start is not retried on the same host.
    /// See [`DEFAULT_FAILURE_BACKOFF_MS`].
    pub failure_backoff_ms: u64,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self {
            host_timeout_ms: DEFAULT_HOST_TIMEOUT_MS,
            legacy_host_timeout_ms: DEFAULT_LEGACY_HOST_TIMEOUT_MS,
            command_timeout_ms: DEFAULT_COMMAND_TIMEOUT_MS,
            provider_command_timeout_ms: DEFAULT_PROVIDER_COMMAND_TIMEOUT_MS,
            failure_backoff_ms: DEFAULT_FAILURE_BACKOFF_MS,
        }
    }
}
