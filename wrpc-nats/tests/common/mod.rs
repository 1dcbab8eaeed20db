//! Shared pieces of the integration tests: bindings for `tests/wit`, an echo
//! handler usable with any transport, and serve/connect helpers.

// Test helpers: panicking on a broken fixture is the point, and not every
// test file uses every helper.
#![allow(
    dead_code,
    clippy::type_complexity,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use trellis_tests::NatsServer;
use trellis_wrpc::{ServeContext, Transport, TransportOptions};

pub mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "interop",
        path: "tests/wit",
    });
}

pub use bindings::exports::trellis_test::interop::api as ex;
pub use bindings::exports::trellis_test::interop::api::Handler;
pub use bindings::trellis_test::interop::api;

pub const LATTICE_PREFIX: &str = "default.echo";

/// What a handler can learn about its caller, whatever the transport.
pub trait CallerInfo {
    fn source_id(&self) -> Option<String>;
    fn link_name(&self) -> String;
}

impl CallerInfo for ServeContext {
    fn source_id(&self) -> Option<String> {
        ServeContext::source_id(self).map(str::to_string)
    }
    fn link_name(&self) -> String {
        ServeContext::link_name(self).to_string()
    }
}

impl CallerInfo for wrpc_transport_nats::NatsContext {
    fn source_id(&self) -> Option<String> {
        self.headers
            .as_ref()
            .and_then(|h| h.get("source-id"))
            .map(|v| v.as_str().to_string())
    }
    fn link_name(&self) -> String {
        self.headers
            .as_ref()
            .and_then(|h| h.get("link-name"))
            .map_or_else(|| "default".to_string(), |v| v.as_str().to_string())
    }
}

/// Echoes everything back.
#[derive(Clone, Copy)]
pub struct Echo;

type ByteStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

impl<Ctx: CallerInfo + Send> Handler<Ctx> for Echo {
    async fn echo_u32(&self, _cx: Ctx, v: u32) -> anyhow::Result<u32> {
        Ok(v)
    }
    async fn echo_string(&self, _cx: Ctx, v: String) -> anyhow::Result<String> {
        Ok(v)
    }
    async fn echo_bytes(&self, _cx: Ctx, v: Bytes) -> anyhow::Result<Bytes> {
        Ok(v)
    }
    async fn echo_point(&self, _cx: Ctx, v: ex::Point) -> anyhow::Result<ex::Point> {
        Ok(v)
    }
    async fn echo_shape(&self, _cx: Ctx, v: ex::Shape) -> anyhow::Result<ex::Shape> {
        Ok(v)
    }
    async fn echo_color(&self, _cx: Ctx, v: ex::Color) -> anyhow::Result<ex::Color> {
        Ok(v)
    }
    async fn echo_perms(&self, _cx: Ctx, v: ex::Perms) -> anyhow::Result<ex::Perms> {
        Ok(v)
    }
    async fn echo_option(&self, _cx: Ctx, v: Option<String>) -> anyhow::Result<Option<String>> {
        Ok(v)
    }
    async fn echo_result(
        &self,
        _cx: Ctx,
        v: Result<u32, String>,
    ) -> anyhow::Result<Result<u32, String>> {
        Ok(v)
    }
    async fn echo_tuple(
        &self,
        _cx: Ctx,
        a: u32,
        b: String,
        c: (bool, u8),
    ) -> anyhow::Result<(u32, String, (bool, u8))> {
        Ok((a, b, c))
    }
    async fn fill(&self, _cx: Ctx, n: u32) -> anyhow::Result<Bytes> {
        Ok(filled(n))
    }
    async fn whoami(&self, cx: Ctx) -> anyhow::Result<(Option<String>, String)> {
        Ok((cx.source_id(), cx.link_name()))
    }
    async fn fail(&self, _cx: Ctx, msg: String) -> anyhow::Result<String> {
        anyhow::bail!("{msg}")
    }
    async fn sleep_ms(&self, _cx: Ctx, ms: u32) -> anyhow::Result<u32> {
        tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
        Ok(ms)
    }
    async fn sum_stream(&self, _cx: Ctx, mut data: ByteStream) -> anyhow::Result<u64> {
        let mut sum = 0u64;
        while let Some(chunk) = data.next().await {
            sum += chunk.iter().map(|b| u64::from(*b)).sum::<u64>();
        }
        Ok(sum)
    }
    async fn count_up(&self, _cx: Ctx, n: u32) -> anyhow::Result<ByteStream> {
        let bytes: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let chunks: Vec<Bytes> = bytes.chunks(7).map(Bytes::copy_from_slice).collect();
        Ok(Box::pin(futures::stream::iter(chunks)))
    }
    async fn take_upload(
        &self,
        _cx: Ctx,
        u: ex::Upload,
    ) -> anyhow::Result<(u64, u64, Option<String>, String)> {
        let ex::Upload {
            mut body,
            trailer,
            name,
        } = u;
        let (mut len, mut sum) = (0u64, 0u64);
        while let Some(chunk) = body.next().await {
            len += chunk.len() as u64;
            sum += chunk.iter().map(|b| u64::from(*b)).sum::<u64>();
        }
        Ok((len, sum, trailer.await, name))
    }
    async fn later(
        &self,
        _cx: Ctx,
        msg: String,
    ) -> anyhow::Result<Pin<Box<dyn Future<Output = String> + Send>>> {
        Ok(Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            msg.chars().rev().collect()
        }))
    }
}

/// Aborts the serving task (and so unsubscribes) on drop.
pub struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves [`Echo`] on any transport until the returned guard drops.
pub async fn serve_echo<S>(server: &S) -> Serving
where
    S: wrpc_transport::Serve,
    S::Context: CallerInfo + Send,
{
    let invocations = bindings::serve(server, Echo).await.unwrap();
    let mut all = futures::stream::select_all(invocations.into_iter().map(|(_, _, s)| s));
    Serving(tokio::spawn(async move {
        while let Some(item) = all.next().await {
            match item {
                Ok(call) => {
                    tokio::spawn(async move {
                        if let Err(error) = call.await {
                            eprintln!("handler failed: {error:#}");
                        }
                    });
                }
                Err(error) => eprintln!("failed to accept a call: {error:#}"),
            }
        }
    }))
}

/// A Trellis transport on a fresh connection.
pub async fn trellis(nats: &NatsServer) -> Transport {
    trellis_with(nats, TransportOptions::default()).await
}

pub async fn trellis_with(nats: &NatsServer, options: TransportOptions) -> Transport {
    Transport::new(nats.connect().await.unwrap(), options)
        .await
        .unwrap()
}

/// A connection of the published transport's async-nats (0.49).
pub async fn upstream_nats(nats: &NatsServer) -> async_nats_upstream::Client {
    async_nats_upstream::connect(nats.url()).await.unwrap()
}

/// The published transport, as a client of `prefix` or a server of it.
pub async fn upstream(
    nats: &NatsServer,
    prefix: &str,
    queue_group: Option<&str>,
) -> wrpc_transport_nats::Client {
    wrpc_transport_nats::Client::new(
        upstream_nats(nats).await,
        prefix,
        queue_group.map(std::sync::Arc::from),
    )
    .await
    .unwrap()
}

/// Counts every message on the server (a subscriber on `>`).
pub struct Counter {
    sub: async_nats::Subscriber,
    client: async_nats::Client,
}

impl Counter {
    pub async fn start(nats: &NatsServer) -> Counter {
        let client = nats.connect().await.unwrap();
        let sub = client.subscribe(">").await.unwrap();
        trellis_tests::nats::synced(&client).await.unwrap();
        Counter { sub, client }
    }

    /// Collects messages until none arrives for `quiet` (except the probes
    /// that confirm subscriptions).
    pub async fn drain(&mut self, quiet: Duration) -> Vec<async_nats::Message> {
        let mut seen = Vec::new();
        while let Ok(Some(message)) = tokio::time::timeout(quiet, self.sub.next()).await {
            if !trellis_tests::nats::is_sync_probe(&message) {
                seen.push(message);
            }
        }
        seen
    }
}

/// A sample of every value kind of the WIT.
pub fn sample_point() -> api::Point {
    api::Point {
        x: 300,
        y: -7,
        label: "hé".to_string(),
    }
}

/// Compares values of generated types that derive only `Debug`.
pub fn same(a: &impl std::fmt::Debug, b: &impl std::fmt::Debug) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// What `fill(n)` returns.
pub fn filled(n: u32) -> Bytes {
    (0..n).map(|i| i as u8).collect::<Vec<u8>>().into()
}

/// Runs a test body on a runtime with large stacks: the futures generated
/// by `wit-bindgen-wrpc` are big in debug builds and overflow the 2 MiB
/// default of test threads.
pub fn run(body: impl Future<Output = ()> + Send + 'static) {
    const STACK: usize = 32 << 20;
    let thread = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(STACK)
                .enable_all()
                .build()
                .unwrap()
                .block_on(body)
        })
        .unwrap();
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Waits (bounded) until `count()` is zero: server-side calls end when the
/// handler task finishes, just after the caller got its answer.
pub async fn eventually_zero(count: impl Fn() -> usize) {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while count() != 0 {
        assert!(
            std::time::Instant::now() < end,
            "still {} open calls",
            count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
