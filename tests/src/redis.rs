//! A real `redis-server` on a free loopback port, for the keyvalue-redis
//! provider's tests.
//!
//! Each [`RedisServer`] owns its process and a temporary directory holding
//! its append-only file and log. Writes are fsynced before they are
//! acknowledged (`appendfsync always`), so [`RedisServer::restart`] (a
//! SIGKILL, as a crash would, then a new process on the same port and
//! directory) keeps every acknowledged write. Dropping it kills the process.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tempfile::TempDir;

use crate::eventually;

/// Environment variable naming the redis-server binary to run.
pub const REDIS_SERVER_BIN_ENV: &str = "REDIS_SERVER_BIN";

/// Where Debian's `redis-server` package installs the server, tried when
/// `redis-server` is not on `PATH` (`/usr/bin` is missing from some minimal
/// environments' `PATH`).
const DEBIAN_REDIS_SERVER: &str = "/usr/bin/redis-server";

/// What to tell a developer whose machine has no redis-server.
const REDIS_SERVER_MISSING: &str = "redis-server not found: run scripts/prereqs.sh";

/// How long a server may take to answer `PING`. A local server is ready in
/// a few milliseconds; the margin covers a loaded CI machine.
const SERVER_READY_DEADLINE: Duration = Duration::from_secs(15);

/// How long one `PING` probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// How many times [`RedisServer::start`] picks a new port when the one it
/// picked was taken by another process in the meantime.
const START_ATTEMPTS: usize = 3;

/// Lines of the server log quoted in error messages.
const LOG_TAIL_LINES: usize = 20;

/// A running (or deliberately killed) `redis-server` process.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    program: PathBuf,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port of 127.0.0.1 with an append-only file
    /// in a temporary directory, and waits until it answers `PING`.
    pub async fn start() -> anyhow::Result<RedisServer> {
        let program = redis_server_program()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = crate::free_port()?;
            let dir = tempfile::Builder::new()
                .prefix("trellis-redis-")
                .tempdir()
                .context("failed to create redis-server's directory")?;
            let mut server = RedisServer {
                port,
                program: program.clone(),
                dir,
                child: None,
            };
            server.spawn_process()?;
            match server.wait_ready().await {
                Ok(()) => return Ok(server),
                Err(error)
                    if server
                        .log_tail(LOG_TAIL_LINES)
                        .contains("Address already in use") =>
                {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no start attempt was made"))).context(
            format!("redis-server failed to start {START_ATTEMPTS} times"),
        )
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all.iter()
            .skip(all.len().saturating_sub(lines))
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL; its data directory is kept for
    /// [`RedisServer::restart`]. Killing a killed server is a no-op.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // `kill` fails only if the process already exited; `wait` reaps
            // it either way.
            let _ = child.kill();
            child.wait().context("failed to reap redis-server")?;
        }
        Ok(())
    }

    /// Starts the server again on the same port with the same data, killing
    /// it first if it still runs; waits until it answers `PING`.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.spawn_process()?;
        self.wait_ready().await
    }

    fn spawn_process(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("failed to open redis-server's log")?;
        let child = Command::new(&self.program)
            .args(server_args(self.port, dir))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("failed to clone the log handle")?)
            .stderr(log)
            .spawn()
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::NotFound => anyhow::anyhow!(REDIS_SERVER_MISSING),
                _ => anyhow::Error::new(error).context("failed to spawn redis-server"),
            })?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let port = self.port;
        let result = eventually(SERVER_READY_DEADLINE, || async move {
            tokio::task::spawn_blocking(move || ping(port)).await?
        })
        .await;
        if result.is_ok() {
            return Ok(());
        }
        if !self.is_running() {
            bail!(
                "redis-server on port {port} exited; log ({}):\n{}",
                self.log_path().display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        result.with_context(|| {
            format!(
                "redis-server on port {port} did not answer PING; log:\n{}",
                self.log_tail(LOG_TAIL_LINES)
            )
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Nothing to report to from `drop`; a process that cannot be killed
        // has already exited.
        let _ = self.kill();
    }
}

/// The redis-server to run: `$REDIS_SERVER_BIN`, else `redis-server` on
/// `PATH`, else Debian's `/usr/bin/redis-server`.
fn redis_server_program() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os(REDIS_SERVER_BIN_ENV) {
        return Ok(PathBuf::from(bin));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from(DEBIAN_REDIS_SERVER)).filter(|p| p.is_file()))
        .ok_or_else(|| anyhow::anyhow!(REDIS_SERVER_MISSING))
}

/// Command-line config: loopback only, no RDB snapshots, an append-only file
/// fsynced on every write, no protected mode (loopback has no password).
fn server_args(port: u16, dir: &Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        &dir.display().to_string(),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One `PING` over a fresh connection; `Ok` on `+PONG`.
fn ping(port: u16) -> anyhow::Result<()> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0_u8; 64];
    let n = stream.read(&mut reply)?;
    let reply = String::from_utf8_lossy(reply.get(..n).unwrap_or_default());
    if reply.starts_with("+PONG") {
        Ok(())
    } else {
        bail!("PING answered {reply:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_answers_and_restarts_on_the_same_port() {
        let mut server = RedisServer::start().await.unwrap();
        ping(server.port()).unwrap();
        let port = server.port();
        server.kill().unwrap();
        assert!(ping(port).is_err());
        server.restart().await.unwrap();
        assert_eq!(server.port(), port);
        ping(port).unwrap();
        assert!(server.url().ends_with(&port.to_string()));
    }
}
