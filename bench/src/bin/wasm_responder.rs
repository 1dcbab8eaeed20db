//! The floor of a call into a wasm component over NATS: a plain async-nats
//! responder that runs `ponger`'s `ping()` for every request, with nothing
//! of Trellis around it (no wRPC decoding, no headers, no links, no
//! scheduling of its own). `link-calls` measures it next to the lattice path
//! to tell what the hosts add from what wasmtime itself costs.
//!
//! The engine is the host's own (`trellis_host::runtime::Runtime`: pooling
//! allocator, pages reset in place, epoch deadlines), and so is the global
//! allocator (mimalloc). Each request is served inline on the subscription's
//! task, as a host's export task does.
//!
//! Usage: `wasm-responder <nats-url> <subject> <ponger.wasm> fresh|reuse`
//! - `fresh`: a new store and instance per request, dropped after the reply
//!   is queued (wasmCloud 1.x semantics, the host's default);
//! - `reuse`: one instance answers every request (the host's
//!   `max_instance_reuse` opt-in, without its limit).
//!
//! Experiment knob: `FLOOR_PER_STORE=N` (with `fresh`) makes N fresh
//! instances, one per request, in one store before dropping it, to measure
//! what the per-store part of an instance's life costs.

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The export every request calls.
const INTERFACE: &str = "example:pong/pingpong@0.1.0";
const FUNCTION: &str = "ping";

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// What the responder needs to make an instance.
struct Ponger {
    engine: wasmtime::Engine,
    pre: InstancePre<State>,
    ping: ComponentExportIndex,
}

impl Ponger {
    fn load(path: &str) -> anyhow::Result<(Self, trellis_host::runtime::Runtime)> {
        let cache = std::env::temp_dir().join(format!("wasm-responder-{}", std::process::id()));
        let mut config = trellis_host::HostConfig::new("nats://unused", "bench");
        config.cache_dir = cache;
        let runtime = trellis_host::runtime::Runtime::new(&config)?;
        let engine = runtime.engine().clone();
        let component = wasmtime::component::Component::from_file(&engine, path)
            .map_err(|e| anyhow::anyhow!("cannot compile {path}: {e}"))?;
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("cannot link WASI: {e}"))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("cannot pre-instantiate {path}: {e}"))?;
        let interface = component
            .get_export_index(None, INTERFACE)
            .with_context(|| format!("{path} does not export {INTERFACE}"))?;
        let ping = component
            .get_export_index(Some(&interface), FUNCTION)
            .with_context(|| format!("{path} does not export {INTERFACE}#{FUNCTION}"))?;
        Ok((Self { engine, pre, ping }, runtime))
    }

    fn store(&self) -> Store<State> {
        let mut store = Store::new(
            &self.engine,
            State {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        // The engine counts epochs; a request here never runs for long.
        store.set_epoch_deadline(u64::MAX / 2);
        store
    }

    async fn instantiate(&self, store: &mut Store<State>) -> anyhow::Result<Instance> {
        self.pre
            .instantiate_async(store)
            .await
            .map_err(|e| anyhow::anyhow!("instantiate: {e}"))
    }

    /// Calls `ping()` and encodes its string as wRPC does (LEB128 length,
    /// then the bytes): the same 5 bytes as the other baselines answer.
    async fn ping(&self, store: &mut Store<State>, instance: &Instance) -> anyhow::Result<Vec<u8>> {
        let func = instance
            .get_typed_func::<(), (String,)>(&mut *store, &self.ping)
            .map_err(|e| anyhow::anyhow!("ping has another type: {e}"))?;
        let (pong,) = func
            .call_async(&mut *store, ())
            .await
            .map_err(|e| anyhow::anyhow!("ping trapped: {e}"))?;
        let len = u8::try_from(pong.len()).context("reply longer than one LEB128 byte")?;
        let mut out = Vec::with_capacity(pong.len() + 1);
        out.push(len);
        out.extend_from_slice(pong.as_bytes());
        Ok(out)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(subject), Some(path), Some(mode)) =
        (args.get(1), args.get(2), args.get(3), args.get(4))
    else {
        bail!("usage: wasm-responder <nats-url> <subject> <ponger.wasm> fresh|reuse");
    };
    let per_store = match mode.as_str() {
        "fresh" => std::env::var("FLOOR_PER_STORE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_usize)
            .max(1),
        "reuse" => usize::MAX,
        other => bail!("unknown mode `{other}`: fresh or reuse"),
    };
    let reuse = mode == "reuse";
    let (ponger, _runtime) = Ponger::load(path)?;
    let nats = async_nats::connect(url.as_str())
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    let mut sub = nats.subscribe(subject.clone()).await?;
    // The store in use, the instance kept (reuse) and the instances it made.
    let mut current: Option<(Store<State>, Option<Instance>, usize)> = None;
    while let Some(msg) = sub.next().await {
        let Some(reply) = msg.reply else { continue };
        let (store, kept, made) = current.get_or_insert_with(|| (ponger.store(), None, 0));
        let instance = match kept {
            Some(instance) => *instance,
            None => {
                *made += 1;
                ponger.instantiate(store).await?
            }
        };
        let payload = ponger.ping(store, &instance).await?;
        // Queued before the store drops, as a host tears an instance down
        // after its reply.
        nats.publish(reply, payload.into()).await?;
        if reuse {
            *kept = Some(instance);
        } else if *made >= per_store {
            current = None;
        }
    }
    Ok(())
}
