use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::PrecompiledCache;
use super::state::InvocationState;
use crate::config::HostConfig;

/// How often the engine's epoch advances. Execution deadlines are expressed in
/// these ticks, so this is their resolution; 10 ms costs nothing measurable.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of each pooled linear memory and table that are reset in place
/// (only the pages the guest touched, found with Linux's `PAGEMAP_SCAN`)
/// instead of with `madvise` when an instance ends. Resetting with `madvise`
/// dominated the per-request cost under load (page faults and TLB shootdowns);
/// with 1 MiB kept resident HTTP throughput rose ~50 % at no RSS cost
/// (docs/PERFORMANCE.md, finding 2). Where `PAGEMAP_SCAN` is unavailable
/// (kernels before 6.7) wasmtime falls back to its default behaviour.
pub const POOL_KEEP_RESIDENT_BYTES: usize = 1024 * 1024;

/// Why the runtime could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// wasmtime refused the engine configuration.
    #[error("cannot configure the wasmtime engine: {0}")]
    Engine(String),
    /// A WASI or built-in interface could not be added to the linker.
    #[error("cannot link host interfaces: {0}")]
    Linker(String),
    /// The precompiled cache directory is unusable.
    #[error("cannot use precompiled cache at {path}: {source}")]
    Cache {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The host's wasmtime engine, the linker every component starts from, and
/// the precompiled cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<InvocationState>,
    cache: PrecompiledCache,
    max_execution_time: Duration,
    max_linear_memory_bytes: usize,
    max_instance_reuse: u32,
    instance_slots: Arc<tokio::sync::Semaphore>,
    pooled_instances: u32,
    reuse_pools: super::reuse::ReusePools,
    spares: super::spares::Spares,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    /// Builds the engine from the host configuration and starts the epoch ticker.
    pub fn new(config: &HostConfig) -> Result<Self, RuntimeError> {
        let slots = config.pooled_instances();
        let max_linear = usize::try_from(config.max_linear_memory_bytes).unwrap_or(usize::MAX);
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(4))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .total_stacks(slots)
            .max_memory_size(max_linear)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .linear_memory_keep_resident(POOL_KEEP_RESIDENT_BYTES)
            .table_keep_resident(POOL_KEEP_RESIDENT_BYTES)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&wasm).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let linker = super::state::base_linker(&engine)?;
        let cache =
            PrecompiledCache::open(&config.cache_dir).map_err(|source| RuntimeError::Cache {
                path: config.cache_dir.display().to_string(),
                source,
            })?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone());
        Ok(Self {
            engine,
            linker,
            cache,
            max_execution_time: config.max_execution_time,
            max_linear_memory_bytes: max_linear,
            max_instance_reuse: config.max_instance_reuse,
            instance_slots: Arc::new(tokio::sync::Semaphore::new(slots as usize)),
            pooled_instances: slots,
            reuse_pools: super::reuse::ReusePools::default(),
            spares: super::spares::Spares::default(),
            ticker_stop,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The linker with every host interface; clone it per component.
    pub fn linker(&self) -> &Linker<InvocationState> {
        &self.linker
    }

    /// The precompiled cache.
    pub fn cache(&self) -> &PrecompiledCache {
        &self.cache
    }

    /// The default wall-clock limit of one invocation.
    pub fn max_execution_time(&self) -> Duration {
        self.max_execution_time
    }

    /// The default linear-memory limit of one instance.
    pub fn max_linear_memory_bytes(&self) -> usize {
        self.max_linear_memory_bytes
    }

    /// Calls one instance may answer unless a component sets its own
    /// (`runtime::reuse`); 1: a fresh instance per call.
    pub fn max_instance_reuse(&self) -> u32 {
        self.max_instance_reuse
    }

    /// Host-wide instance slots (one per pooled instance): invocations wait for
    /// a slot instead of failing when the pool is full.
    pub fn instance_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.instance_slots
    }

    /// The host's instance slots in all.
    pub fn pooled_instances(&self) -> u32 {
        self.pooled_instances
    }

    /// How the instance slots are used now (for the liveness beat).
    pub fn slot_usage(&self) -> trellis_interfaces::liveness::InstanceSlots {
        let free = self.instance_slots.available_permits();
        trellis_interfaces::liveness::InstanceSlots {
            slots: self.pooled_instances,
            free: u32::try_from(free).unwrap_or(u32::MAX),
            idle: u32::try_from(self.reuse_pools.idle() + self.spares.count()).unwrap_or(u32::MAX),
        }
    }

    /// The reuse pools of every component generation on this host.
    pub(crate) fn reuse_pools(&self) -> &super::reuse::ReusePools {
        &self.reuse_pools
    }

    /// The spares of every export this host serves.
    pub(crate) fn spares(&self) -> &super::spares::Spares {
        &self.spares
    }

    /// Tears down every instance that waits for a call (idle reused
    /// instances and spares), so their slots go to calls; returns how many.
    pub(crate) fn evict_waiting_instances(&self) -> usize {
        self.reuse_pools.evict_all() + self.spares.evict_all()
    }

    /// Deadline in epoch ticks for a wall-clock limit.
    pub fn deadline_ticks(limit: Duration) -> u64 {
        let tick = EPOCH_TICK.as_millis().max(1);
        u64::try_from(limit.as_millis() / tick)
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    // A plain thread: the ticker must keep running even when every tokio worker
    // is busy executing guest code, which is exactly when it is needed.
    let _ = std::thread::Builder::new()
        .name("trellis-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        });
}
