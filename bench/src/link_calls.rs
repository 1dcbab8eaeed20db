//! Component → component calls through a link, three ways, against a raw
//! async-nats request/reply baseline measured on the same server in the same
//! run (issue 3's bar: lattice p50 ≤ 1.5× raw NATS, lattice throughput at 32
//! callers ≥ 0.5× raw NATS, in-process p50 ≥ 10× lower than the lattice).
//!
//! Starts its own `nats-server` (JetStream, free port) and two `trellis` hosts
//! (release build), deploys `pinger` + `ponger` through the control interface
//! and measures from *inside* `pinger` (`GET /bench?n=N` times each
//! `ping()` call with the monotonic clock, so HTTP is not in the figure):
//!
//! - **lattice**: `pinger` on host A, `ponger` on host B (wRPC over NATS,
//!   Trellis compact framing: 2 messages per call);
//! - **local**: `pinger-local` and `ponger-local` both on host A (in-process
//!   fast path: no NATS, no encoding);
//! - **lattice with reuse**: as *lattice*, but `ponger` opted into instance
//!   reuse (`component_limits.max_instance_reuse`, 128 calls per instance);
//! - **raw NATS**: a native responder answering the same 5-byte payload
//!   (`pong` as a wRPC string) to `request()`;
//! - **floor**: native callers into `wasm-responder`, a plain async-nats
//!   responder running `ponger` on the host's engine with nothing of Trellis
//!   around it, with a fresh instance per call and with one instance reused:
//!   what wasmtime alone allows on this machine.
//!
//! Sequential: p50/p99 over `BENCH_CALLS` (10 000) calls. Concurrent:
//! `BENCH_CALLERS` (32) callers for `BENCH_SECONDS`; for the components each
//! caller is one HTTP request running `BENCH_BATCH` calls in a loop.
//! `BENCH_HOST_WORKERS` (or `BENCH_HOST_WORKERS_A` / `_B` for the caller's
//! and the callee's host) sets the hosts' tokio worker threads.
//!
//! Usage: `cargo build --release -p trellis-bench`, then `target/release/link-calls`
//! (needs `target/release/trellis` and the guest components: `bash scripts/test.sh`
//! or `cargo build --release -p trellis-host` plus the guest build).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt as _;
use tokio::process::Command;
use trellis_interfaces::client::CtlClient;
use trellis_interfaces::ctl::{ScaleComponentCommand, StartProviderCommand};
use trellis_interfaces::link::Link;

mod procs;
use procs::{
    Procs, WAIT, connect, free_port, http_get, release_dir, require, root, spawn_host, start_nats,
    tempdir, wait_hosts, wait_http,
};

const LATTICE: &str = "bench";
/// `max_instance_reuse` of the reusing callee (`wasmtime serve`'s default
/// for WASIp3 components).
const REUSE: u32 = 128;

/// The two `wasm-responder` modes (the floor), and how their rows read.
const FLOOR: [(&str, &str); 2] = [
    ("fresh", "floor, a fresh instance per call"),
    ("reuse", "floor, one instance reused"),
];

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let (Some("--responder"), Some(url), Some(subject)) =
        (args.get(1).map(String::as_str), args.get(2), args.get(3))
    {
        return respond(url, subject).await;
    }
    let calls = env_num("BENCH_CALLS", 10_000);
    let callers = env_num("BENCH_CALLERS", 32);
    let seconds = env_num("BENCH_SECONDS", 5) as u64;
    let batch = env_num("BENCH_BATCH", 200);
    let root = root();
    let trellis = release_dir().join("trellis");
    let guests = root.join("target/guests/wasm32-wasip2/release");
    require(&[
        &trellis,
        &guests.join("pinger.wasm"),
        &guests.join("ponger.wasm"),
    ])?;
    let work = tempdir("link-calls")?;
    let mut procs = Procs::default();
    let url = start_nats(&mut procs, &work)?;
    let nats = connect(&url).await?;
    let ctl = CtlClient::new(nats.clone(), LATTICE.to_string());
    // Host a (the caller's) starts first, so the CPU figures below can name
    // each process by its role.
    procs
        .0
        .push(spawn_host(&trellis, &url, LATTICE, &work, "a", &[])?);
    let a = wait_hosts(&ctl, 1).await?.remove(0);
    procs
        .0
        .push(spawn_host(&trellis, &url, LATTICE, &work, "b", &[])?);
    let b = wait_hosts(&ctl, 2)
        .await?
        .into_iter()
        .find(|id| *id != a)
        .unwrap_or_default();
    let pinger = format!("file://{}", guests.join("pinger.wasm").display());
    let ponger = format!("file://{}", guests.join("ponger.wasm").display());
    let max = u32::try_from(callers * 2).unwrap_or(64);
    scale(&ctl, &nats, &a, &pinger, "pinger", max, None).await?;
    scale(&ctl, &nats, &b, &ponger, "ponger", max, None).await?;
    scale(&ctl, &nats, &a, &pinger, "pinger-local", max, None).await?;
    scale(&ctl, &nats, &a, &ponger, "ponger-local", max, None).await?;
    // The same across hosts with instance reuse (opt-in): each `ponger`
    // instance answers up to REUSE calls, as `wasmtime serve` does for
    // WASIp3 components.
    scale(&ctl, &nats, &a, &pinger, "pinger-reuse", max, None).await?;
    scale(&ctl, &nats, &b, &ponger, "ponger-reuse", max, Some(REUSE)).await?;
    link(&ctl, "pinger", "ponger").await?;
    link(&ctl, "pinger-local", "ponger-local").await?;
    link(&ctl, "pinger-reuse", "ponger-reuse").await?;
    let lattice_port = expose(&ctl, &a, "pinger").await?;
    let local_port = expose(&ctl, &a, "pinger-local").await?;
    let reuse_port = expose(&ctl, &a, "pinger-reuse").await?;
    wait_http(lattice_port, "/bench?n=10").await?;
    wait_http(local_port, "/bench?n=10").await?;
    wait_http(reuse_port, "/bench?n=10").await?;

    // A second baseline whose responder is its own process, as the callee of
    // a call across hosts is: on a 2-core machine, crossing processes costs
    // scheduler wake-ups that a same-process responder never pays.
    let xproc_subject = "bench.raw.xproc";
    procs.0.push(
        Command::new(std::env::current_exe()?)
            .args(["--responder", &url, xproc_subject])
            .kill_on_drop(true)
            .spawn()?,
    );
    // The floor of a wasm callee: plain NATS responders running `ponger`
    // on the host's engine, with nothing of Trellis around it.
    let floor_bin = std::env::current_exe()?.with_file_name("wasm-responder");
    require(&[&floor_bin])?;
    let ponger_wasm = guests.join("ponger.wasm");
    let mut floor_pids = Vec::new();
    for (mode, _) in FLOOR {
        let child = Command::new(&floor_bin)
            .args([url.as_str(), &format!("bench.floor.{mode}")])
            .arg(&ponger_wasm)
            .arg(mode)
            .kill_on_drop(true)
            .spawn()?;
        floor_pids.push(child.id());
        procs.0.push(child);
    }
    // Responder for the baseline: same server, same reply payload as `ping`.
    let raw_subject = "bench.raw.ping";
    let responder = connect(&url).await?;
    let mut sub = responder.subscribe(raw_subject).await?;
    let r2 = responder.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                let _ = r2
                    .publish(reply, bytes::Bytes::from_static(b"\x04pong"))
                    .await;
            }
        }
    });
    responder.flush().await?;
    answering(&nats, raw_subject, "the baseline responder").await?;

    println!(
        "machine: {} cores; nats-server on loopback; {calls} sequential calls, {callers} callers for {seconds} s",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    // Warm up all three.
    raw_sequential(&nats, raw_subject, 1000).await?;
    component_sequential(lattice_port, 1000).await?;
    component_sequential(local_port, 1000).await?;
    component_sequential(reuse_port, 1000).await?;

    if let Ok(mode) = std::env::var("BENCH_PROFILE_LATTICE") {
        // Profiling aid: only one lattice phase (`seq…`: sequential calls for
        // `seconds`; anything else: the concurrent phase; `…reuse`: against
        // the reusing callee).
        eprintln!("profile now: lattice phase for {seconds} s");
        let lattice_port = if mode.contains("reuse") {
            reuse_port
        } else {
            lattice_port
        };
        if mode.starts_with("seq") {
            let stop = Instant::now() + Duration::from_secs(seconds);
            let mut n = 0;
            while Instant::now() < stop {
                let (p50, p99) = component_sequential(lattice_port, calls).await?;
                n += calls;
                println!("lattice sequential p50 {p50:.1} µs p99 {p99:.1} µs");
            }
            println!("lattice sequential calls: {n}");
        } else {
            let tp = component_concurrent(lattice_port, callers, seconds, batch).await?;
            println!("lattice calls/s at {callers} callers: {tp:.0}");
        }
        return Ok(());
    }
    answering(&nats, xproc_subject, "the cross-process baseline responder").await?;
    raw_sequential(&nats, xproc_subject, 1000).await?;
    for (mode, _) in FLOOR {
        let subject = format!("bench.floor.{mode}");
        answering(&nats, &subject, &format!("the wasm responder ({mode})")).await?;
        raw_sequential(&nats, &subject, 1000).await?;
    }
    // CPU time of every process per call: unlike calls/s, it hardly moves
    // when other work shares the machine.
    let pids: Vec<(&str, Option<u32>)> = ["nats-server", "caller host", "callee host"]
        .into_iter()
        .zip(procs.0.iter().map(|c| c.id()))
        .chain([("bench", Some(std::process::id()))])
        .collect();
    let before = cpu_snapshot(&pids);
    let raw = raw_sequential(&nats, raw_subject, calls).await?;
    let raw_seq_cpu = cpu_per_call(&pids, &before, calls as f64);
    let xproc = raw_sequential(&nats, xproc_subject, calls).await?;
    let before = cpu_snapshot(&pids);
    let lat = component_sequential(lattice_port, calls).await?;
    let lat_seq_cpu = cpu_per_call(&pids, &before, calls as f64);
    let loc = component_sequential(local_port, calls).await?;
    let reu = component_sequential(reuse_port, calls).await?;
    let (before, started) = (cpu_snapshot(&pids), Instant::now());
    let raw_tp = raw_concurrent(&url, raw_subject, callers, seconds).await?;
    let raw_cpu = cpu_per_call(&pids, &before, raw_tp * started.elapsed().as_secs_f64());
    let xproc_tp = raw_concurrent(&url, xproc_subject, callers, seconds).await?;
    let (before, started) = (cpu_snapshot(&pids), Instant::now());
    let lat_tp = component_concurrent(lattice_port, callers, seconds, batch).await?;
    let lat_cpu = cpu_per_call(&pids, &before, lat_tp * started.elapsed().as_secs_f64());
    let (before, started) = (cpu_snapshot(&pids), Instant::now());
    let loc_tp = component_concurrent(local_port, callers, seconds, batch).await?;
    let loc_cpu = cpu_per_call(&pids, &before, loc_tp * started.elapsed().as_secs_f64());
    let (before, started) = (cpu_snapshot(&pids), Instant::now());
    let reu_tp = component_concurrent(reuse_port, callers, seconds, batch).await?;
    let reu_cpu = cpu_per_call(&pids, &before, reu_tp * started.elapsed().as_secs_f64());

    // The floor: native callers into a wasm responder, CPU of nats-server,
    // the responder and this process.
    let mut floor = Vec::new();
    for ((mode, what), pid) in FLOOR.into_iter().zip(&floor_pids) {
        let subject = format!("bench.floor.{mode}");
        let seq = raw_sequential(&nats, &subject, calls).await?;
        let pids: Vec<(&str, Option<u32>)> = vec![
            ("nats-server", procs.0.first().and_then(|c| c.id())),
            ("responder", *pid),
            ("bench", Some(std::process::id())),
        ];
        let (before, started) = (cpu_snapshot(&pids), Instant::now());
        let tp = raw_concurrent(&url, &subject, callers, seconds).await?;
        let cpu = cpu_per_call(&pids, &before, tp * started.elapsed().as_secs_f64());
        floor.push((what, seq, tp, cpu));
    }

    println!();
    println!(
        "| path | p50 µs | p99 µs | p50 vs raw NATS | calls/s at {callers} callers | vs raw NATS |"
    );
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, (p50, p99): (f64, f64), tp: f64| {
        println!(
            "| {name} | {p50:.1} | {p99:.1} | {:.2}× | {tp:.0} | {:.2}× |",
            p50 / raw.0,
            tp / raw_tp
        );
    };
    row("raw async-nats request/reply (baseline)", raw, raw_tp);
    row(
        "raw request/reply, responder in its own process",
        xproc,
        xproc_tp,
    );
    row("component → component across hosts (lattice)", lat, lat_tp);
    row("component → component same host (in-process)", loc, loc_tp);
    row(
        &format!("across hosts, callee instance reuse {REUSE} (opt-in)"),
        reu,
        reu_tp,
    );
    for (what, seq, tp, _) in &floor {
        row(
            &format!("{what}: native caller → NATS → ponger (no Trellis)"),
            *seq,
            *tp,
        );
    }
    println!();
    println!(
        "in-process p50 is {:.1}× lower than the lattice p50",
        lat.0 / loc.0
    );
    println!();
    println!("CPU µs per call (utime+stime from /proc, 10 ms ticks):");
    for (label, cpu) in [
        ("sequential, raw (same process)", &raw_seq_cpu),
        ("sequential, lattice", &lat_seq_cpu),
        ("32 callers, raw (same process)", &raw_cpu),
        ("32 callers, lattice", &lat_cpu),
        ("32 callers, in-process", &loc_cpu),
        ("32 callers, lattice with reuse", &reu_cpu),
    ]
    .into_iter()
    .chain(floor.iter().map(|(what, _, _, cpu)| (*what, cpu)))
    {
        let total: f64 = cpu.iter().map(|(_, us)| us).sum();
        let parts: Vec<String> = cpu
            .iter()
            .map(|(name, us)| format!("{name} {us:.1}"))
            .collect();
        println!("  {label}: total {total:.1} = {}", parts.join(" + "));
    }
    drop(procs);
    Ok(())
}

/// CPU ticks (user + system) each process used so far; 0 when unreadable.
fn cpu_snapshot(pids: &[(&str, Option<u32>)]) -> Vec<u64> {
    pids.iter()
        .map(|(_, pid)| pid.and_then(cpu_ticks).unwrap_or(0))
        .collect()
}

/// utime + stime of `pid` in clock ticks (`/proc/PID/stat` fields 14 and
/// 15, counted after the parenthesised command name, which may hold spaces).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// µs of CPU per call of each process since `before`, for `calls` calls
/// (Linux reports 100 ticks per second in `/proc` on every architecture).
fn cpu_per_call<'a>(
    pids: &[(&'a str, Option<u32>)],
    before: &[u64],
    calls: f64,
) -> Vec<(&'a str, f64)> {
    let after = cpu_snapshot(pids);
    pids.iter()
        .zip(before.iter().zip(after))
        .map(|((name, _), (b, a))| {
            let us = a.saturating_sub(*b) as f64 * 10_000.0;
            (*name, if calls > 0.0 { us / calls } else { 0.0 })
        })
        .collect()
}

/// The cross-process baseline's responder: answers every request on
/// `subject` with the same 5-byte payload as `ping`.
async fn respond(url: &str, subject: &str) -> anyhow::Result<()> {
    let nats = connect(url).await?;
    let mut sub = nats.subscribe(subject.to_string()).await?;
    while let Some(msg) = sub.next().await {
        if let Some(reply) = msg.reply {
            let _ = nats
                .publish(reply, bytes::Bytes::from_static(b"\x04pong"))
                .await;
        }
    }
    Ok(())
}

/// Waits until something answers requests on `subject`.
async fn answering(nats: &async_nats::Client, subject: &str, what: &str) -> anyhow::Result<()> {
    let ready = Instant::now() + WAIT;
    while nats
        .request(subject.to_string(), bytes::Bytes::new())
        .await
        .is_err()
    {
        if Instant::now() > ready {
            bail!("{what} never answered");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn scale(
    ctl: &CtlClient,
    nats: &async_nats::Client,
    host: &str,
    image: &str,
    id: &str,
    max: u32,
    reuse: Option<u32>,
) -> anyhow::Result<()> {
    let mut events = nats
        .subscribe(format!("wasmbus.evt.{LATTICE}.component_scaled"))
        .await?;
    let resp = ctl
        .scale_component(&ScaleComponentCommand {
            component_ref: image.into(),
            component_id: id.into(),
            max_instances: max,
            host_id: host.into(),
            component_limits: reuse
                .map(|n| [("max_instance_reuse".to_string(), n.to_string())].into()),
            ..Default::default()
        })
        .await?;
    if !resp.success {
        bail!("scale {id}: {}", resp.message);
    }
    tokio::time::timeout(WAIT, async {
        while let Some(msg) = events.next().await {
            if String::from_utf8_lossy(&msg.payload).contains(&format!("\"component_id\":\"{id}\""))
            {
                return;
            }
        }
    })
    .await
    .with_context(|| format!("{id} never scaled"))?;
    Ok(())
}

async fn link(ctl: &CtlClient, source: &str, target: &str) -> anyhow::Result<()> {
    let resp = ctl
        .put_link(&Link {
            source_id: source.into(),
            target: target.into(),
            name: "default".into(),
            wit_namespace: "example".into(),
            wit_package: "pong".into(),
            interfaces: vec!["pingpong".into()],
            ..Default::default()
        })
        .await?;
    if !resp.success {
        bail!("link {source} -> {target}: {}", resp.message);
    }
    Ok(())
}

async fn expose(ctl: &CtlClient, host: &str, component: &str) -> anyhow::Result<u16> {
    let port = free_port()?;
    let config = format!("http-{component}");
    ctl.put_config(
        &config,
        &HashMap::from([("address".to_string(), format!("127.0.0.1:{port}"))]),
    )
    .await?;
    let provider = format!("web-{component}");
    let resp = ctl
        .start_provider(&StartProviderCommand {
            provider_id: provider.clone(),
            provider_ref: "builtin://http-server".into(),
            host_id: host.into(),
            ..Default::default()
        })
        .await?;
    if !resp.success {
        bail!("http server: {}", resp.message);
    }
    let resp = ctl
        .put_link(&Link {
            source_id: provider,
            target: component.into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            interfaces: vec!["incoming-handler".into()],
            source_config: vec![config],
            target_config: vec![],
        })
        .await?;
    if !resp.success {
        bail!("http link: {}", resp.message);
    }
    Ok(port)
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len().saturating_sub(1)) as f64 * q) as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

async fn raw_sequential(
    nats: &async_nats::Client,
    subject: &str,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        nats.request(subject.to_string(), bytes::Bytes::new())
            .await?;
        samples.push(t.elapsed());
    }
    samples.sort_unstable();
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

/// Parses `n=.. p50_ns=.. p99_ns=.. total_ns=..`.
fn parse_bench(body: &str) -> anyhow::Result<HashMap<String, u64>> {
    let map: HashMap<String, u64> = body
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect();
    if !map.contains_key("p50_ns") {
        bail!("unexpected bench reply: {body}");
    }
    Ok(map)
}

async fn component_sequential(port: u16, n: usize) -> anyhow::Result<(f64, f64)> {
    let (status, body) = http_get(port, &format!("/bench?n={n}")).await?;
    if status != 200 {
        bail!("bench request failed ({status}): {body}");
    }
    let m = parse_bench(&body)?;
    let us = |k: &str| m.get(k).copied().unwrap_or(0) as f64 / 1e3;
    Ok((us("p50_ns"), us("p99_ns")))
}

async fn raw_concurrent(
    url: &str,
    subject: &str,
    callers: usize,
    seconds: u64,
) -> anyhow::Result<f64> {
    let nats = connect(url).await?;
    let stop = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks = (0..callers).map(|_| {
        let nats = nats.clone();
        let subject = subject.to_string();
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < stop {
                if nats
                    .request(subject.clone(), bytes::Bytes::new())
                    .await
                    .is_ok()
                {
                    n += 1;
                }
            }
            n
        })
    });
    let total: u64 = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap_or(0))
        .sum();
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn component_concurrent(
    port: u16,
    callers: usize,
    seconds: u64,
    batch: usize,
) -> anyhow::Result<f64> {
    let stop = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks = (0..callers).map(|_| {
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < stop {
                if let Ok((200, body)) = http_get(port, &format!("/bench?n={batch}")).await
                    && parse_bench(&body).is_ok()
                {
                    n += batch as u64;
                }
            }
            n
        })
    });
    let total: u64 = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap_or(0))
        .sum();
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
