//! wRPC round trips over NATS: raw async-nats request/reply (the baseline),
//! trellis-wrpc (compact framing) and the published wrpc-transport-nats 0.31,
//! each echoing a 64-byte string: p50/p99 over sequential calls and
//! throughput with concurrent callers, with ratios against raw NATS.
//!
//! Each wRPC transport is measured twice: through `wit-bindgen-wrpc`-style
//! typed calls (`invoke_values_blocking` / `serve_values`), and through the
//! raw `Invoke` / `Serve` traits the way the Trellis host drives them
//! (`invoke` → `shutdown` → read the results; serve → one task per call →
//! `write_all` + `flush` + `shutdown`), so the transport's own cost is
//! visible apart from the typed helpers'.
//!
//! `cargo run --release -p trellis-bench --bin wrpc-rtt [-- --nats-url URL]
//! [--calls N] [--concurrency C] [--seconds S] [--only NAME,NAME]`. Without
//! `--nats-url` it starts `nats-server` from `PATH` (or `NATS_SERVER_BIN`) on
//! a free port. Every call is bounded (10 s): a hang fails the run.

use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use wrpc_transport::{InvokeExt as _, ServeExt as _};

const INSTANCE: &str = "bench:echo/echo@0.1.0";
const FUNC: &str = "echo";
const PREFIX: &str = "default.bench";
const RAW_SUBJECT: &str = "default.bench.raw";

struct Args {
    nats_url: Option<String>,
    calls: usize,
    concurrency: usize,
    seconds: u64,
    only: Option<Vec<String>>,
}

impl Args {
    fn wants(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name))
    }
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        nats_url: None,
        calls: 10_000,
        concurrency: 32,
        seconds: 5,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nats-url" => args.nats_url = Some(value),
            "--calls" => args.calls = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--only" => args.only = Some(value.split(',').map(str::to_string).collect()),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// A nats-server child killed on drop.
struct NatsChild(Child);

impl Drop for NatsChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_nats() -> anyhow::Result<(NatsChild, String)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let program = std::env::var_os("NATS_SERVER_BIN").unwrap_or_else(|| "nats-server".into());
    let child = Command::new(program)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("failed to start nats-server (is it on PATH?)")?;
    let child = NatsChild(child);
    let end = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > end {
            bail!("nats-server did not start");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((child, format!("nats://127.0.0.1:{port}")))
}

struct Figures {
    p50: Duration,
    p99: Duration,
    throughput: f64,
    /// Calls that never finished (see [`CALL_BOUND`]).
    stalls: u64,
}

/// Bound of one call: a lost reply is counted as a stall (and the caller
/// moves on) instead of hanging the run.
const CALL_BOUND: Duration = Duration::from_secs(5);

/// Runs one call; `Ok(false)` if it stalled past [`CALL_BOUND`].
async fn bounded<Fut>(what: &'static str, call: Fut) -> anyhow::Result<bool>
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    match tokio::time::timeout(CALL_BOUND, call).await {
        Ok(result) => result
            .with_context(|| format!("{what}: call failed"))
            .map(|()| true),
        Err(_) => {
            eprintln!("{what}: a call did not finish within {CALL_BOUND:?}");
            Ok(false)
        }
    }
}

/// Runs `call` sequentially `calls` times, then from `concurrency` tasks for
/// `seconds`.
async fn measure<F, Fut>(args: &Args, what: &'static str, call: F) -> anyhow::Result<Figures>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    eprintln!("measuring {what}…");
    let stalls = Arc::new(AtomicU64::new(0));
    for _ in 0..200 {
        if !bounded(what, call()).await? {
            stalls.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut latencies = Vec::with_capacity(args.calls);
    for _ in 0..args.calls {
        let started = Instant::now();
        if !bounded(what, call()).await? {
            stalls.fetch_add(1, Ordering::Relaxed);
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let pick = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(index).copied().unwrap_or_default()
    };
    let (p50, p99) = (pick(0.50), pick(0.99));

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (call, stop, done) = (call.clone(), Arc::clone(&stop), Arc::clone(&done));
        let stalls = Arc::clone(&stalls);
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if bounded(what, call()).await? {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    stalls.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        });
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let calls = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(Figures {
        p50,
        p99,
        throughput: calls as f64 / elapsed.as_secs_f64(),
        stalls: stalls.load(Ordering::Relaxed),
    })
}

fn payload() -> String {
    "x".repeat(64)
}

/// The component-model encoding of `(payload(),)`.
fn encoded_payload() -> bytes::Bytes {
    bytes::Bytes::from(encode_string(payload().as_bytes()))
}

/// The component-model encoding of a string: LEB128 length + bytes.
fn encode_string(text: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(text.len() + 5);
    let mut len = text.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            buf.push(byte);
            break;
        }
        buf.push(byte | 0x80);
    }
    buf.extend_from_slice(text);
    buf
}

/// Reads one encoded string (LEB128 length, then the bytes) the way
/// `wrpc_runtime_wasmtime::read_value` does: byte-wise length, exact body.
async fn read_string(rx: &mut (impl AsyncRead + Unpin)) -> anyhow::Result<Vec<u8>> {
    let mut len: usize = 0;
    let mut shift = 0;
    loop {
        let byte = rx
            .read_u8()
            .await
            .context("failed to read a string length")?;
        len |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        anyhow::ensure!(shift < 35, "string length overflows");
    }
    let mut body = vec![0; len];
    rx.read_exact(&mut body)
        .await
        .context("failed to read a string")?;
    Ok(body)
}

async fn raw(args: &Args, url: &str) -> anyhow::Result<Figures> {
    let server = async_nats::connect(url).await?;
    let mut sub = server.subscribe(RAW_SUBJECT).await?;
    server.flush().await?;
    let responder = tokio::spawn(async move {
        while let Some(message) = sub.next().await {
            if let Some(reply) = message.reply {
                let _ = server.publish(reply, message.payload).await;
            }
        }
    });
    let client = async_nats::connect(url).await?;
    let body = bytes::Bytes::from(payload());
    let figures = measure(args, "raw", move || {
        let (client, body) = (client.clone(), body.clone());
        async move {
            let reply = client.request(RAW_SUBJECT, body.clone()).await?;
            anyhow::ensure!(reply.payload == body, "wrong echo");
            Ok(())
        }
    })
    .await;
    responder.abort();
    figures
}

/// Serves the typed echo on any transport.
fn spawn_typed_server<S>(server: S) -> tokio::task::JoinHandle<anyhow::Result<()>>
where
    S: wrpc_transport::Serve + Send + 'static,
{
    tokio::spawn(async move {
        let invocations = server
            .serve_values::<(String,), (String,)>(
                INSTANCE,
                FUNC,
                Vec::<Box<[Option<usize>]>>::new(),
            )
            .await?;
        let mut invocations = std::pin::pin!(invocations);
        while let Some(item) = invocations.next().await {
            let (_cx, (text,), _rx, tx) = item?;
            tokio::spawn(async move { tx((text,)).await });
        }
        Ok(())
    })
}

/// Serves the echo through the raw `Serve` trait, as the host does: one task
/// per call, decode the params, `write_all` + `flush` + `shutdown`.
fn spawn_stream_server<S>(server: S) -> tokio::task::JoinHandle<anyhow::Result<()>>
where
    S: wrpc_transport::Serve + Send + 'static,
{
    tokio::spawn(async move {
        let invocations = server
            .serve(INSTANCE, FUNC, Vec::<Box<[Option<usize>]>>::new())
            .await?;
        let mut invocations = std::pin::pin!(invocations);
        while let Some(item) = invocations.next().await {
            let (_cx, mut tx, mut rx) = item?;
            tokio::spawn(async move {
                let text = read_string(&mut rx).await?;
                drop(rx);
                tx.write_all(&encode_string(&text)).await?;
                tx.flush().await?;
                tx.shutdown().await?;
                anyhow::Ok(())
            });
        }
        Ok(())
    })
}

/// One call through the raw `Invoke` trait, as the host makes it.
async fn stream_call<C: wrpc_transport::Invoke>(
    client: &C,
    cx: C::Context,
    params: bytes::Bytes,
) -> anyhow::Result<()> {
    let expected = params.len() - 1;
    let (mut outgoing, mut incoming) = client
        .invoke(
            cx,
            INSTANCE,
            FUNC,
            params,
            Vec::<Box<[Option<usize>]>>::new(),
        )
        .await?;
    outgoing.shutdown().await?;
    let echo = read_string(&mut incoming).await?;
    anyhow::ensure!(echo.len() == expected, "wrong echo");
    Ok(())
}

fn host_headers() -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(trellis_wrpc::headers::SOURCE_ID, "bench-caller");
    headers.insert(trellis_wrpc::headers::LINK_NAME, "default");
    headers
}

async fn trellis_transports(
    url: &str,
) -> anyhow::Result<(trellis_wrpc::Transport, trellis_wrpc::Transport)> {
    let options = trellis_wrpc::TransportOptions::default();
    let server =
        trellis_wrpc::Transport::new(async_nats::connect(url).await?, options.clone()).await?;
    let client = trellis_wrpc::Transport::new(async_nats::connect(url).await?, options).await?;
    Ok((server, client))
}

async fn trellis(args: &Args, url: &str) -> anyhow::Result<Figures> {
    let (server, transport) = trellis_transports(url).await?;
    let serving = spawn_typed_server(server.server(PREFIX, Some(PREFIX.to_string())));
    let client = transport.client().target(PREFIX);
    wait_until_served(&client, || None).await?;
    let figures = measure(args, "trellis typed", move || {
        typed_call(client.clone(), None)
    })
    .await;
    let stats = transport.stats();
    anyhow::ensure!(
        stats.standard_calls == 0,
        "expected compact calls only: {stats:?}"
    );
    serving.abort();
    figures
}

async fn trellis_streams(args: &Args, url: &str) -> anyhow::Result<Figures> {
    let (server, transport) = trellis_transports(url).await?;
    let serving = spawn_stream_server(server.server(PREFIX, Some(PREFIX.to_string())));
    let client = transport.client();
    let cx = || trellis_wrpc::CallContext {
        prefix: PREFIX.to_string(),
        headers: Some(host_headers()),
        timeout: None,
    };
    wait_until_served(&client, cx).await?;
    let params = encoded_payload();
    let figures = measure(args, "trellis streams", move || {
        let (client, params) = (client.clone(), params.clone());
        async move { stream_call(&client, cx(), params).await }
    })
    .await;
    let stats = transport.stats();
    anyhow::ensure!(
        stats.standard_calls == 0,
        "expected compact calls only: {stats:?}"
    );
    serving.abort();
    figures
}

async fn upstream_clients(
    url: &str,
) -> anyhow::Result<(wrpc_transport_nats::Client, wrpc_transport_nats::Client)> {
    let server = wrpc_transport_nats::Client::new(
        async_nats_upstream::connect(url).await?,
        PREFIX,
        Some(Arc::from(PREFIX)),
    )
    .await?;
    let client =
        wrpc_transport_nats::Client::new(async_nats_upstream::connect(url).await?, PREFIX, None)
            .await?;
    Ok((server, client))
}

async fn upstream(args: &Args, url: &str) -> anyhow::Result<Figures> {
    let (server, client) = upstream_clients(url).await?;
    let serving = spawn_typed_server(server);
    wait_until_served(&client, || None).await?;
    let figures = measure(args, "upstream typed", move || {
        typed_call(client.clone(), None)
    })
    .await;
    serving.abort();
    figures
}

async fn upstream_streams(args: &Args, url: &str) -> anyhow::Result<Figures> {
    let (server, client) = upstream_clients(url).await?;
    let serving = spawn_stream_server(server);
    wait_until_served(&client, || None).await?;
    let params = encoded_payload();
    let figures = measure(args, "upstream streams", move || {
        let (client, params) = (client.clone(), params.clone());
        async move { stream_call(&client, None, params).await }
    })
    .await;
    serving.abort();
    figures
}

async fn typed_call<C: wrpc_transport::Invoke>(client: C, cx: C::Context) -> anyhow::Result<()> {
    let text = payload();
    let (echo,): (String,) = client
        .invoke_values_blocking(
            cx,
            INSTANCE,
            FUNC,
            (text.clone(),),
            Vec::<Box<[Option<usize>]>>::new(),
        )
        .await?;
    anyhow::ensure!(echo == text, "wrong echo");
    Ok(())
}

/// The server's subscription is flushed before `serve` returns, but it runs
/// in a spawned task: retry until the first call goes through.
async fn wait_until_served<C: wrpc_transport::Invoke + Clone>(
    client: &C,
    cx: impl Fn() -> C::Context,
) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(Duration::from_secs(1), typed_call(client.clone(), cx())).await {
            Ok(Ok(())) => return Ok(()),
            _ if Instant::now() < end => tokio::time::sleep(Duration::from_millis(20)).await,
            Ok(Err(error)) => return Err(error),
            Err(_) => bail!("the echo server never answered"),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let (_nats, url) = match &args.nats_url {
        Some(url) => (None, url.clone()),
        None => {
            let (child, url) = start_nats().await?;
            (Some(child), url)
        }
    };
    println!(
        "wRPC round trips, 64-byte string echo; {} sequential calls, {} concurrent callers for {} s; nats {url}",
        args.calls, args.concurrency, args.seconds
    );
    // `--only` without `raw` (for profiling one transport) prints no ratios.
    let raw = if args.wants("raw") {
        raw(&args, &url).await?
    } else {
        Figures {
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            throughput: f64::NAN,
            stalls: 0,
        }
    };
    let mut rows: Vec<(&str, Figures)> = Vec::new();
    if args.wants("trellis") {
        rows.push(("trellis-wrpc typed (compact)", trellis(&args, &url).await?));
    }
    if args.wants("trellis-streams") {
        rows.push((
            "trellis-wrpc streams (compact)",
            trellis_streams(&args, &url).await?,
        ));
    }
    if args.wants("upstream") {
        rows.push((
            "wrpc-transport-nats 0.31 typed",
            upstream(&args, &url).await?,
        ));
    }
    if args.wants("upstream-streams") {
        rows.push((
            "wrpc-transport-nats 0.31 streams",
            upstream_streams(&args, &url).await?,
        ));
    }
    println!(
        "{:<34} {:>10} {:>10} {:>12} {:>11} {:>12} {:>7}",
        "transport", "p50 µs", "p99 µs", "calls/s", "p50 ratio", "tput ratio", "stalls"
    );
    let raw_row = [("raw async-nats request/reply", &raw)];
    for (name, f) in raw_row
        .into_iter()
        .chain(rows.iter().map(|(name, f)| (*name, f)))
    {
        println!(
            "{:<34} {:>10.1} {:>10.1} {:>12.0} {:>10.2}x {:>11.2}x {:>7}",
            name,
            f.p50.as_secs_f64() * 1e6,
            f.p99.as_secs_f64() * 1e6,
            f.throughput,
            f.p50.as_secs_f64() / raw.p50.as_secs_f64(),
            f.throughput / raw.throughput,
            f.stalls,
        );
    }
    Ok(())
}
