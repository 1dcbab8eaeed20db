//! Baseline for the HTTP benchmark: the smallest reasonable wasmtime +
//! wasmtime-wasi-http server over one component, in the spirit of
//! `wasmtime serve` (pooling allocator, a fresh store per request,
//! TCP_NODELAY). The host's ingress is compared against this in the same run.
//!
//! Usage: `baseline-wasi-http <component.wasm> <addr>`
//!
//! Experiment knobs (unset in `bench/run.sh`, so the baseline stays plain
//! wasmtime defaults): `BASELINE_KEEP_RESIDENT=<bytes>` sets the pooling
//! allocator's `linear_memory_keep_resident` and `table_keep_resident`
//! (reset slots with `memset` instead of `madvise`), and
//! `BASELINE_PAGEMAP_SCAN=1` enables `pagemap_scan` (Linux >= 6.7). They exist
//! to measure allocator settings before proposing them for the host.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::{WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

struct NoOutgoing;
impl WasiHttpHooks for NoOutgoing {
    fn send_request(
        &mut self,
        _request: hyper::Request<wasmtime_wasi_http::p2::body::HyperOutgoingBody>,
        _config: wasmtime_wasi_http::p2::types::OutgoingRequestConfig,
    ) -> wasmtime_wasi_http::p2::HttpResult<wasmtime_wasi_http::p2::types::HostFutureIncomingResponse>
    {
        Err(wasmtime_wasi_http::p2::bindings::http::types::ErrorCode::HttpRequestDenied.into())
    }
}

struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: NoOutgoing,
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

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The pooling allocator: wasmtime's defaults unless an experiment knob is set.
fn pooling_config() -> anyhow::Result<PoolingAllocationConfig> {
    let mut pooling = PoolingAllocationConfig::default();
    if let Ok(bytes) = std::env::var("BASELINE_KEEP_RESIDENT") {
        let bytes: usize = bytes.parse().context("BASELINE_KEEP_RESIDENT")?;
        pooling
            .linear_memory_keep_resident(bytes)
            .table_keep_resident(bytes);
        eprintln!("experiment: keep_resident {bytes} bytes");
    }
    if std::env::var("BASELINE_PAGEMAP_SCAN").is_ok_and(|v| v == "1") {
        pooling.pagemap_scan(wasmtime::Enabled::Yes);
        eprintln!("experiment: pagemap_scan enabled");
    }
    Ok(pooling)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(addr)) = (args.get(1), args.get(2)) else {
        bail!("usage: baseline-wasi-http <component.wasm> <addr>");
    };
    let addr: SocketAddr = addr.parse().context("invalid address")?;
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config()?));
    let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let component = Component::from_file(&engine, path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow::anyhow!("{e}"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pre = ProxyPre::new(
        linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let shared = Arc::new((engine, pre));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("baseline listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move { handle(&shared.0, &shared.1, req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    engine: &Engine,
    pre: &ProxyPre<State>,
    req: hyper::Request<hyper::body::Incoming>,
) -> anyhow::Result<hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>> {
    use http_body_util::BodyExt;
    let mut store = Store::new(
        engine,
        State {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            hooks: NoOutgoing,
            table: ResourceTable::new(),
        },
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req = req.map(|b| b.map_err(wasmtime_wasi_http::p2::hyper_request_error));
    let req = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let out = store
        .data_mut()
        .http()
        .new_response_outparam(tx)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pre = pre.clone();
    let task = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, out)
            .await
    });
    match rx.await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => bail!("guest error {e:?}"),
        Err(_) => bail!(
            "guest never responded: {:?}",
            task.await.map(|r| r.map_err(|e| e.to_string()))
        ),
    }
}
