//! wadm on a real lattice (issue 6's bars), release builds, one machine:
//!
//! - **deploy**: `model.put` + `model.deploy` of one component with 100 instances
//!   spread over 3 worker hosts → status `deployed` (artifact already cached; bar:
//!   under 2 s). Baseline in the same run: the same 3 `component.scale` requests sent
//!   directly and their `component_scaled` events (what wadm has to do at minimum).
//! - **failover**: `pinger` (HTTP) on a gateway host calls `ponger`, which runs on
//!   one of the workers; that worker is SIGKILLed and the time until pinger answers
//!   200 again is measured (bar: under 5 s; wadm 0.21 needed 70 s to notice).
//!
//! `BENCH_ROUNDS` (5) deploy rounds, `BENCH_FAILOVERS` (3) kills; medians printed.
//!
//! Usage: `cargo run --release -p trellis-bench --bin wadm-lattice`
//! (needs `target/release/{trellis,wadm}` and the guest components).

#[path = "../procs.rs"]
mod procs;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::process::Command;
use trellis_interfaces::client::CtlClient;
use trellis_interfaces::ctl::ScaleComponentCommand;

use procs::{
    Procs, WAIT, connect, free_port, http_get, release_dir, require, root, spawn_host, start_nats,
    tempdir, wait_hosts,
};

const LATTICE: &str = "bench";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn api(nats: &async_nats::Client, op: &str, body: String) -> anyhow::Result<Value> {
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        nats.request(format!("wadm.api.{LATTICE}.model.{op}"), body.into()),
    )
    .await
    .with_context(|| format!("model.{op} timed out"))??;
    Ok(serde_json::from_slice(&reply.payload)?)
}

async fn status_type(nats: &async_nats::Client, app: &str) -> anyhow::Result<String> {
    let st = api(nats, &format!("status.{app}"), String::new()).await?;
    Ok(st
        .pointer("/status/status/type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

async fn wait_status(nats: &async_nats::Client, app: &str, want: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        if status_type(nats, app).await? == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{app} never became {want}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn spread_app(image: &str, version: &str, instances: u32) -> String {
    json!({
        "apiVersion": "core.oam.dev/v1beta1", "kind": "Application",
        "metadata": {"name": "hundred", "annotations": {"version": version}},
        "spec": {"components": [{"name": "ponger", "type": "component",
            "properties": {"image": image, "id": "hundred"},
            "traits": [{"type": "spreadscaler", "properties": {"instances": instances,
                "spread": [{"name": "workers", "requirements": {"role": "worker"}}]}}]}]}
    })
    .to_string()
}

fn failover_app(pinger: &str, ponger: &str, port: u16) -> String {
    json!({
        "apiVersion": "core.oam.dev/v1beta1", "kind": "Application",
        "metadata": {"name": "failover", "annotations": {"version": "v1"}},
        "spec": {"components": [
            {"name": "pinger", "type": "component", "properties": {"image": pinger, "id": "pinger"},
             "traits": [
                {"type": "spreadscaler", "properties": {"instances": 8,
                    "spread": [{"name": "gw", "requirements": {"role": "gateway"}}]}},
                {"type": "link", "properties": {"target": {"name": "ponger"},
                    "namespace": "example", "package": "pong", "interfaces": ["pingpong"]}}]},
            {"name": "ponger", "type": "component", "properties": {"image": ponger, "id": "ponger"},
             "traits": [{"type": "spreadscaler", "properties": {"instances": 1,
                "spread": [{"name": "workers", "requirements": {"role": "worker"}}]}}]},
            {"name": "httpserver", "type": "capability",
             "properties": {"image": "builtin://http-server", "id": "failover-http"},
             "traits": [
                {"type": "spreadscaler", "properties": {"instances": 1,
                    "spread": [{"name": "gw", "requirements": {"role": "gateway"}}]}},
                {"type": "link", "properties": {"target": {"name": "pinger"},
                    "namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                    "source": {"config": [{"name": "failover-http",
                        "properties": {"address": format!("127.0.0.1:{port}")}}]}}}]}
        ]}
    })
    .to_string()
}

/// Which host runs component `id`.
async fn host_running(ctl: &CtlClient, hosts: &[String], id: &str) -> Option<String> {
    for h in hosts {
        if let Ok(inv) = ctl.get_host_inventory(h).await
            && inv.components.iter().any(|c| c.id == id)
        {
            return Some(h.clone());
        }
    }
    None
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds = env_num("BENCH_ROUNDS", 5).max(1);
    let failovers = env_num("BENCH_FAILOVERS", 3).max(1);
    let root = root();
    let trellis = release_dir().join("trellis");
    let wadm = release_dir().join("wadm");
    let guests = root.join("target/guests/wasm32-wasip2/release");
    require(&[
        &trellis,
        &wadm,
        &guests.join("pinger.wasm"),
        &guests.join("ponger.wasm"),
    ])?;
    let pinger = format!("file://{}", guests.join("pinger.wasm").display());
    let ponger = format!("file://{}", guests.join("ponger.wasm").display());

    let work = tempdir("wadm-lattice")?;
    let mut procs = Procs::default();
    let url = start_nats(&mut procs, &work)?;
    let nats = connect(&url).await?;
    let ctl = CtlClient::new(nats.clone(), LATTICE.to_string());
    procs.0.push(spawn_host(
        &trellis,
        &url,
        LATTICE,
        &work,
        "gw",
        &[("role", "gateway")],
    )?);
    // Workers by name (label `bench.name`), so the one running ponger can be killed.
    let mut workers = std::collections::BTreeMap::new();
    for i in 0..3 {
        let name = format!("w{i}");
        let child = spawn_host(
            &trellis,
            &url,
            LATTICE,
            &work,
            &name,
            &[("role", "worker"), ("bench.name", &name)],
        )?;
        workers.insert(name, child);
    }
    let all = wait_hosts(&ctl, 4).await?;
    let log = std::fs::File::create(work.join("wadm.log"))?;
    procs.0.push(
        Command::new(&wadm)
            .args(["--nats-server", &url])
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?,
    );
    let deadline = Instant::now() + WAIT;
    while api(&nats, "get", String::new()).await.is_err() {
        if Instant::now() > deadline {
            bail!("wadm never answered");
        }
    }
    println!(
        "machine: {} cores; nats-server, 4 hosts and wadm on loopback (release builds)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // Deploy 100 instances over 3 workers; warm the artifact cache first.
    let mut deploy = Vec::new();
    for round in 0..=rounds {
        let version = format!("v{round}");
        api(&nats, "put", spread_app(&ponger, &version, 100)).await?;
        let t = Instant::now();
        api(
            &nats,
            "deploy.hundred",
            json!({"version": version}).to_string(),
        )
        .await?;
        wait_status(&nats, "hundred", "deployed").await?;
        let took = t.elapsed();
        if round > 0 {
            deploy.push(took);
        }
        api(&nats, "undeploy.hundred", "{}".into()).await?;
        wait_status(&nats, "hundred", "undeployed").await?;
        let deadline = Instant::now() + WAIT;
        while host_running(&ctl, &all, "hundred").await.is_some() {
            if Instant::now() > deadline {
                bail!("undeploy left instances behind");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    api(&nats, "del.hundred", "{}".into()).await?;

    // Baseline: the 3 scale requests sent directly, until their events arrived.
    let worker_ids: Vec<String> = {
        let mut ids = Vec::new();
        for h in &all {
            if let Ok(inv) = ctl.get_host_inventory(h).await
                && inv.labels.get("role").map(String::as_str) == Some("worker")
            {
                ids.push(h.clone());
            }
        }
        ids
    };
    let mut direct = Vec::new();
    for round in 0..=rounds {
        let mut events = nats
            .subscribe(format!("wasmbus.evt.{LATTICE}.component_scaled"))
            .await?;
        let t = Instant::now();
        for (i, h) in worker_ids.iter().enumerate() {
            let resp = ctl
                .scale_component(&ScaleComponentCommand {
                    component_ref: ponger.clone(),
                    component_id: "direct".into(),
                    max_instances: if i == 0 { 34 } else { 33 },
                    host_id: h.clone(),
                    ..Default::default()
                })
                .await?;
            anyhow::ensure!(resp.success, "scale: {}", resp.message);
        }
        let mut seen = 0;
        while seen < worker_ids.len() {
            tokio::time::timeout(WAIT, events.next())
                .await?
                .context("event stream ended")?;
            seen += 1;
        }
        if round > 0 {
            direct.push(t.elapsed());
        }
        for h in &worker_ids {
            ctl.scale_component(&ScaleComponentCommand {
                component_ref: ponger.clone(),
                component_id: "direct".into(),
                max_instances: 0,
                host_id: h.clone(),
                ..Default::default()
            })
            .await?;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (wadm_ms, direct_ms) = (ms(median(deploy)), ms(median(direct)));
    println!();
    println!("| measure | median ms | vs baseline |");
    println!("|---|---|---|");
    println!(
        "| direct: 3 × component.scale → component_scaled (baseline) | {direct_ms:.1} | 1.00× |"
    );
    println!(
        "| wadm: put + deploy of 100 instances over 3 hosts → `deployed` | {wadm_ms:.1} | {:.2}× |",
        wadm_ms / direct_ms
    );

    // Failover: kill the worker running ponger; time until pinger answers again.
    let port = free_port()?;
    api(&nats, "put", failover_app(&pinger, &ponger, port)).await?;
    api(&nats, "deploy.failover", "{}".into()).await?;
    wait_status(&nats, "failover", "deployed").await?;
    let mut recoveries = Vec::new();
    for spare in 3..3 + failovers {
        let deadline = Instant::now() + WAIT;
        while !matches!(http_get(port, "/").await, Ok((200, _))) {
            if Instant::now() > deadline {
                bail!("pinger never answered");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let hosts = wait_hosts(&ctl, 4).await?;
        let victim = host_running(&ctl, &hosts, "ponger")
            .await
            .context("ponger runs nowhere")?;
        let inv = ctl.get_host_inventory(&victim).await?;
        let name = inv.labels.get("bench.name").cloned().unwrap_or_default();
        let mut child = workers
            .remove(&name)
            .with_context(|| format!("host {victim} ({name:?}) is not one of ours"))?;
        let killed = Instant::now();
        child.start_kill()?;
        let deadline = killed + WAIT;
        loop {
            if let Ok((200, body)) = http_get(port, "/").await
                && body.contains("pong")
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("traffic never came back after killing {victim}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = killed.elapsed();
        println!("failover: served again {:.0} ms after SIGKILL", ms(took));
        recoveries.push(took);
        let _ = child.wait().await;
        // Keep three workers.
        let name = format!("w{spare}");
        let child = spawn_host(
            &trellis,
            &url,
            LATTICE,
            &work,
            &name,
            &[("role", "worker"), ("bench.name", &name)],
        )?;
        workers.insert(name, child);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "| host SIGKILLed → HTTP through the moved component answered again | {:.0} | (bar 5,000 ms; wadm 0.21 noticed after 70,000) |",
        ms(median(recoveries))
    );
    drop(workers);
    drop(procs);
    Ok(())
}
