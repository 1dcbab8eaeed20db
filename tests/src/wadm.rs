//! The real `wadm` binary, run as a child process.
//!
//! [`WadmProcess::start`] spawns it against a NATS URL and returns once it answers
//! `wadm.api.{lattice}.model.get`. Its output goes to a log file whose tail is printed
//! when a test panics while it runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::host::workspace_binary;
use crate::nats::{open_log, tail_of_file};

/// How long a started wadm may take to answer its first API request.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// Lines of the log printed on panic.
const LOG_TAIL_LINES: usize = 60;

/// Where the `wadm` binary is (`$TRELLIS_WADM_BIN`, else next to the test binary).
pub fn wadm_binary() -> anyhow::Result<PathBuf> {
    workspace_binary("wadm", "TRELLIS_WADM_BIN", "trellis-wadm")
}

/// A running `wadm`, killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct WadmProcess {
    child: Child,
    log_dir: Option<TempDir>,
    log_path: PathBuf,
}

impl WadmProcess {
    /// Starts `wadm --nats-server URL` with `args`, and waits until it answers the API
    /// on `lattice`.
    pub async fn start(nats_url: &str, lattice: &str, args: &[&str]) -> anyhow::Result<Self> {
        let binary = wadm_binary()?;
        let log_dir = tempfile::Builder::new()
            .prefix("trellis-wadm-")
            .tempdir()
            .context("cannot create a directory for the wadm log")?;
        let log_path = log_dir.path().join("wadm.log");
        let (stdout, stderr) = open_log(&log_path)?;
        let child = Command::new(&binary)
            .arg("--nats-server")
            .arg(nats_url)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot spawn {}", binary.display()))?;
        let mut wadm = Self {
            child,
            log_dir: Some(log_dir),
            log_path,
        };
        let client = async_nats::connect(nats_url)
            .await
            .with_context(|| format!("cannot connect to {nats_url}"))?;
        let deadline = tokio::time::Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = wadm.child.try_wait()? {
                bail!(
                    "wadm exited with {status} before answering; log:\n{}",
                    wadm.log_tail(LOG_TAIL_LINES)
                );
            }
            let probe = tokio::time::timeout(
                Duration::from_millis(500),
                client.request(format!("wadm.api.{lattice}.model.get"), "".into()),
            )
            .await;
            if let Ok(Ok(_)) = probe {
                return Ok(wadm);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "wadm did not answer within {READY_DEADLINE:?}; log:\n{}",
                    wadm.log_tail(LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log_path, lines)
    }

    /// Kills it with SIGKILL (a crash: the lease is not released) and reaps it.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        self.child.kill().await.context("cannot kill wadm")
    }
}

impl Drop for WadmProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.log_dir.take() {
                let _ = dir.keep();
            }
            eprintln!(
                "--- wadm log ({}), last {LOG_TAIL_LINES} lines:\n{}\n---",
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }
}
