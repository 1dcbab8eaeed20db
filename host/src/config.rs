//! Host configuration: every timeout, interval and limit the host uses, with its
//! default and the reason for it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Default lattice name, as in wasmCloud 1.x.
pub const DEFAULT_LATTICE: &str = "default";
/// Default control-interface subject prefix, as in wasmCloud 1.x.
pub const DEFAULT_CTL_PREFIX: &str = "wasmbus.ctl";
/// Full inventory heartbeat interval. wasmCloud 1.x uses 30 s; wadm 0.21 only
/// needs it to refresh state, liveness comes from the one-second beat.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// Liveness beat interval: small message, lets a scheduler tell a dead host in
/// a few seconds instead of wasmCloud's 70.
pub const DEFAULT_LIVENESS_INTERVAL: Duration = Duration::from_secs(1);
/// Maximum wall-clock time one invocation may run. Matches wasmCloud's default
/// (10 minutes) so long-running handlers written for it keep working.
pub const DEFAULT_MAX_EXECUTION_TIME: Duration = Duration::from_secs(600);
/// Maximum linear memory of one component instance. 64 MiB comfortably holds
/// typical Rust/Go HTTP components (1–10 MiB) while letting the pooling
/// allocator keep a useful number of slots within the host's memory budget.
pub const DEFAULT_MAX_LINEAR_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// How long scale-down, update and host stop wait for in-flight invocations to
/// finish before giving up on them.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound on pooled instance slots, whatever the memory budget allows:
/// beyond this the virtual address space reserved by the pool becomes silly.
pub const MAX_POOLED_INSTANCES: u32 = 4096;
/// Lower bound on pooled instance slots, so a tiny memory budget still runs
/// a handful of components.
pub const MIN_POOLED_INSTANCES: u32 = 16;

/// Everything a host needs to start. Built by the `trellis` binary from flags
/// and environment, or directly by embedders and tests.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// NATS server URL for both control and data traffic.
    pub nats_url: String,
    /// Lattice this host joins.
    pub lattice: String,
    /// Control-interface subject prefix.
    pub ctl_prefix: String,
    /// Host seed (nkey server seed, `SN…`); a fresh key is generated if absent.
    pub host_seed: Option<String>,
    /// User labels, merged over the built-in `hostcore.*` labels.
    pub labels: BTreeMap<String, String>,
    /// JetStream domain for the lattice buckets.
    pub js_domain: Option<String>,
    /// Allow `file://` artifact references.
    pub allow_file_load: bool,
    /// Allow OCI references with the `latest` tag (or no tag).
    pub allow_latest: bool,
    /// Registries reached over plain HTTP instead of HTTPS.
    pub allowed_insecure: Vec<String>,
    /// Wall-clock limit of one invocation.
    pub max_execution_time: Duration,
    /// Linear-memory limit of one component instance.
    pub max_linear_memory_bytes: u64,
    /// Memory budget for all component instances; sizes the pooling allocator.
    pub max_memory_bytes: u64,
    /// Calls one instance may answer before it is torn down, for components
    /// that do not set their own (`component_limits.max_instance_reuse`);
    /// 1, the default, gives every call a fresh instance.
    pub max_instance_reuse: u32,
    /// Full inventory heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Liveness beat interval.
    pub liveness_interval: Duration,
    /// How long draining waits for in-flight invocations.
    pub drain_timeout: Duration,
    /// Directory of the precompiled-component cache.
    pub cache_dir: PathBuf,
    /// Whether this host answers component auctions.
    pub enable_component_auction: bool,
    /// Whether this host answers provider auctions.
    pub enable_provider_auction: bool,
    /// Refuse components that carry no claims. Off by default, as in
    /// wasmCloud 1.x: claims that are present are verified either way.
    pub require_signed: bool,
    /// Account keys (`A…`) allowed to issue the claims of components this host
    /// runs; empty allows any issuer. Unsigned components are governed by
    /// [`require_signed`](Self::require_signed) alone.
    pub allowed_issuers: Vec<String>,
    /// Budget of a component-to-component or component-to-provider call over
    /// the lattice when the caller's own deadline is not tighter (wasmCloud
    /// hard-coded 10 s; here it is a flag).
    pub rpc_timeout: Duration,
    /// Call link targets that run on this host in-process (the fast path).
    /// Off only to measure or test the lattice path.
    pub prefer_local: bool,
    /// Health checks, restart backoff and stop timing of provider processes.
    pub providers: crate::provider::ProviderSettings,
    /// The external policy service asked before starts and lattice calls
    /// (`--policy-topic`); off by default.
    pub policy: crate::policy::PolicySettings,
}

impl HostConfig {
    /// A configuration with every default, joining `lattice` on `nats_url`.
    pub fn new(nats_url: impl Into<String>, lattice: impl Into<String>) -> Self {
        Self {
            nats_url: nats_url.into(),
            lattice: lattice.into(),
            ctl_prefix: DEFAULT_CTL_PREFIX.to_string(),
            host_seed: None,
            labels: BTreeMap::new(),
            js_domain: None,
            allow_file_load: false,
            allow_latest: false,
            allowed_insecure: Vec::new(),
            max_execution_time: DEFAULT_MAX_EXECUTION_TIME,
            max_linear_memory_bytes: DEFAULT_MAX_LINEAR_MEMORY_BYTES,
            max_memory_bytes: default_memory_budget(),
            max_instance_reuse: 1,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            liveness_interval: DEFAULT_LIVENESS_INTERVAL,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            cache_dir: default_cache_dir(),
            enable_component_auction: true,
            enable_provider_auction: true,
            require_signed: false,
            allowed_issuers: Vec::new(),
            rpc_timeout: crate::dataplane::DEFAULT_RPC_TIMEOUT,
            prefer_local: true,
            providers: crate::provider::ProviderSettings::default(),
            policy: crate::policy::PolicySettings::default(),
        }
    }

    /// Number of instance slots in the pooling allocator: the memory budget
    /// divided by the per-instance linear-memory limit, clamped to
    /// [`MIN_POOLED_INSTANCES`, `MAX_POOLED_INSTANCES`].
    pub fn pooled_instances(&self) -> u32 {
        let per = self.max_linear_memory_bytes.max(1);
        let slots = self.max_memory_bytes / per;
        u32::try_from(slots)
            .unwrap_or(u32::MAX)
            .clamp(MIN_POOLED_INSTANCES, MAX_POOLED_INSTANCES)
    }
}

/// Default memory budget for component instances: half of physical memory, so
/// the host process, the OS and a NATS server on the same machine keep the
/// other half. Falls back to 4 GiB where `/proc/meminfo` is unavailable.
pub fn default_memory_budget() -> u64 {
    const FALLBACK: u64 = 4 * 1024 * 1024 * 1024;
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024 / 2)
        .unwrap_or(FALLBACK)
}

/// Default precompiled-code cache: `$XDG_CACHE_HOME/trellis/precompiled`, else
/// `~/.cache/trellis/precompiled`, else a directory under the system temp dir.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("trellis").join("precompiled");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home)
            .join(".cache")
            .join("trellis")
            .join("precompiled");
    }
    std::env::temp_dir().join("trellis").join("precompiled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_is_sized_from_the_memory_budget() {
        let mut c = HostConfig::new("nats://x", "default");
        c.max_linear_memory_bytes = 64 << 20;
        c.max_memory_bytes = 12 << 30;
        assert_eq!(c.pooled_instances(), 192);
        c.max_memory_bytes = 1 << 20;
        assert_eq!(c.pooled_instances(), MIN_POOLED_INSTANCES);
        c.max_memory_bytes = u64::MAX;
        assert_eq!(c.pooled_instances(), MAX_POOLED_INSTANCES);
    }
}
