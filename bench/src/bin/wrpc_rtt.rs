//! wRPC round trips over NATS: raw async-nats request/reply (the baseline),
//! trellis-wrpc (compact framing) and the published wrpc-transport-nats 0.31,
//! each echoing a 64-byte string: p50/p99 over sequential calls and
//! throughput with concurrent callers, with ratios against raw NATS.
//!
//! `cargo run --release -p trellis-bench --bin wrpc-rtt [-- --nats-url URL]
//! [--calls N] [--concurrency C] [--seconds S]`. Without `--nats-url` it
//! starts `nats-server` from `PATH` (or `NATS_SERVER_BIN`) on a free port.

use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
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
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        nats_url: None,
        calls: 10_000,
        concurrency: 32,
        seconds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nats-url" => args.nats_url = Some(value),
            "--calls" => args.calls = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
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
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
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
}

/// Runs `call` sequentially `calls` times, then from `concurrency` tasks for
/// `seconds`.
async fn measure<F, Fut>(args: &Args, call: F) -> anyhow::Result<Figures>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    for _ in 0..200 {
        call().await?;
    }
    let mut latencies = Vec::with_capacity(args.calls);
    for _ in 0..args.calls {
        let started = Instant::now();
        call().await?;
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
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                call().await?;
                done.fetch_add(1, Ordering::Relaxed);
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
    })
}

fn payload() -> String {
    "x".repeat(64)
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
    let figures = measure(args, move || {
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
            .serve_values::<(String,), (String,)>(INSTANCE, FUNC, Vec::<Box<[Option<usize>]>>::new())
            .await?;
        let mut invocations = std::pin::pin!(invocations);
        while let Some(item) = invocations.next().await {
            let (_cx, (text,), _rx, tx) = item?;
            tokio::spawn(async move { tx((text,)).await });
        }
        Ok(())
    })
}

async fn trellis(args: &Args, url: &str) -> anyhow::Result<Figures> {
    let options = trellis_wrpc::TransportOptions::default();
    let server = trellis_wrpc::Transport::new(async_nats::connect(url).await?, options.clone()).await?;
    let serving = spawn_typed_server(server.server(PREFIX, Some(PREFIX.to_string())));
    let transport = trellis_wrpc::Transport::new(async_nats::connect(url).await?, options).await?;
    let client = transport.client().target(PREFIX);
    wait_until_served(&client, || None).await?;
    let figures = measure(args, move || typed_call(client.clone(), None)).await;
    let stats = transport.stats();
    anyhow::ensure!(stats.standard_calls == 0, "expected compact calls only: {stats:?}");
    serving.abort();
    figures
}

async fn upstream(args: &Args, url: &str) -> anyhow::Result<Figures> {
    let server = wrpc_transport_nats::Client::new(
        async_nats_upstream::connect(url).await?,
        PREFIX,
        Some(Arc::from(PREFIX)),
    )
    .await?;
    let serving = spawn_typed_server(server);
    let client =
        wrpc_transport_nats::Client::new(async_nats_upstream::connect(url).await?, PREFIX, None)
            .await?;
    wait_until_served(&client, || None).await?;
    let figures = measure(args, move || typed_call(client.clone(), None)).await;
    serving.abort();
    figures
}

async fn typed_call<C: wrpc_transport::Invoke>(client: C, cx: C::Context) -> anyhow::Result<()> {
    let text = payload();
    let (echo,): (String,) = client
        .invoke_values_blocking(cx, INSTANCE, FUNC, (text.clone(),), Vec::<Box<[Option<usize>]>>::new())
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
    let raw = raw(&args, &url).await?;
    let trellis = trellis(&args, &url).await?;
    let upstream = upstream(&args, &url).await?;
    println!(
        "{:<34} {:>10} {:>10} {:>12} {:>11} {:>12}",
        "transport", "p50 µs", "p99 µs", "calls/s", "p50 ratio", "tput ratio"
    );
    for (name, f) in [
        ("raw async-nats request/reply", &raw),
        ("trellis-wrpc (compact)", &trellis),
        ("wrpc-transport-nats 0.31", &upstream),
    ] {
        println!(
            "{:<34} {:>10.1} {:>10.1} {:>12.0} {:>10.2}x {:>11.2}x",
            name,
            f.p50.as_secs_f64() * 1e6,
            f.p99.as_secs_f64() * 1e6,
            f.throughput,
            f.p50.as_secs_f64() / raw.p50.as_secs_f64(),
            f.throughput / raw.throughput,
        );
    }
    Ok(())
}
