//! Shared by the lattice benchmarks: start `nats-server`, `trellis` hosts and other
//! processes (killed when [`Procs`] drops), wait for them, and a minimal HTTP GET.

#![allow(dead_code, reason = "each bench binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};
use trellis_interfaces::client::CtlClient;

/// How long anything may take to come up.
pub const WAIT: Duration = Duration::from_secs(60);

/// Child processes, killed on drop.
#[derive(Default)]
pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.start_kill();
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where release binaries are: `$CARGO_TARGET_DIR/release`, else `target/release`.
pub fn release_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), PathBuf::from)
        .join("release")
}

/// A fresh work directory for this run.
pub fn tempdir(tag: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("trellis-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Fails naming the build command when a needed artifact is missing.
pub fn require(paths: &[&Path]) -> anyhow::Result<()> {
    for p in paths {
        if !p.exists() {
            bail!(
                "{} is missing: build with `cargo build --release -p trellis-host -p trellis-wadm -p trellis-bench` and the guest workspace (scripts/test.sh builds the guests)",
                p.display()
            );
        }
    }
    Ok(())
}

/// Connects, retrying while the server starts.
pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    let deadline = Instant::now() + WAIT;
    loop {
        match async_nats::connect(url).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Starts `nats-server` with JetStream on a free port; returns its URL.
pub fn start_nats(procs: &mut Procs, work: &Path) -> anyhow::Result<String> {
    let port = free_port()?;
    procs.0.push(
        Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(work.join("js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start nats-server (is it on PATH? scripts/prereqs.sh installs it)")?,
    );
    Ok(format!("nats://127.0.0.1:{port}"))
}

/// Spawns a `trellis` host named `name` (log and cache under `work`) with labels.
/// `BENCH_HOST_WORKERS_{NAME}` (else `BENCH_HOST_WORKERS`) sets its tokio worker threads.
pub fn spawn_host(
    trellis: &Path,
    url: &str,
    lattice: &str,
    work: &Path,
    name: &str,
    labels: &[(&str, &str)],
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(work.join(format!("host-{name}.log")))?;
    let mut cmd = Command::new(trellis);
    cmd.args(["--nats-url", url, "--lattice", lattice, "--allow-file-load"])
        .arg("--cache-dir")
        .arg(work.join(format!("cache-{name}")));
    for (k, v) in labels {
        cmd.arg("-l").arg(format!("{k}={v}"));
    }
    let per_host = format!("BENCH_HOST_WORKERS_{}", name.to_uppercase());
    if let Some(n) = std::env::var_os(per_host).or_else(|| std::env::var_os("BENCH_HOST_WORKERS")) {
        cmd.env("TOKIO_WORKER_THREADS", n);
    }
    Ok(cmd
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?)
}

/// Waits until at least `n` hosts answer `host.ping`; their ids, sorted.
pub async fn wait_hosts(ctl: &CtlClient, n: usize) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(hosts) = ctl.ping_hosts().await
            && hosts.len() >= n
        {
            let mut ids: Vec<String> = hosts.into_iter().map(|h| h.id).collect();
            ids.sort();
            return Ok(ids);
        }
        if Instant::now() > deadline {
            bail!("hosts did not come up");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET path` on 127.0.0.1:`port`: status and body.
pub async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Waits until `GET path` answers 200.
pub async fn wait_http(port: u16, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok((200, _)) = http_get(port, path).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            let last = http_get(port, path).await;
            bail!("GET {path} on {port} never answered 200: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
