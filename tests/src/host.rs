//! The real `trellis` host binary, run as a child process.
//!
//! [`HostProcess::start`] gives the host an nkeys server seed generated here,
//! so its id is known before it starts, subscribes to the lattice's events,
//! spawns the binary and returns once the host has announced itself with a
//! `host_started` event from that id. The host's stdout and stderr go to a
//! log file; its tail is in every error, and is printed when a test panics
//! while the host is alive (the log directory is then kept on disk).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::events::{EventWatcher, event_source};
use crate::nats::{open_log, tail_of_file};

/// Environment variable that overrides where the `trellis` binary is found.
pub const TRELLIS_BIN_ENV: &str = "TRELLIS_BIN";

/// Name of the host binary (without platform suffix).
const TRELLIS_BIN_NAME: &str = "trellis";

/// How long a host may take from spawn to its `host_started` event. A debug
/// build connects and creates its buckets in well under a second; the margin
/// covers a loaded machine running many hosts at once.
pub const DEFAULT_START_DEADLINE: Duration = Duration::from_secs(30);

/// Log level used when the test's environment sets no `RUST_LOG`.
const DEFAULT_RUST_LOG: &str = "info";

/// Lines of the host log quoted in errors and printed on panic.
const LOG_TAIL_LINES: usize = 60;

/// How a [`HostProcess`] is started.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// `--nats-url`.
    pub nats_url: String,
    /// `--lattice`.
    pub lattice: String,
    /// `-l key=value`, in order.
    pub labels: Vec<(String, String)>,
    /// `--host-seed`; generated when `None`, so the host id is always known.
    pub host_seed: Option<String>,
    /// `--heartbeat-interval-seconds`; the host's default when `None`.
    pub heartbeat_interval_seconds: Option<u64>,
    /// Whether to pass `--allow-file-load` (on by default: tests load guest
    /// components from `target/guests`).
    pub allow_file_load: bool,
    /// Further arguments, appended after the ones above.
    pub extra_args: Vec<String>,
    /// Further environment variables for the host process.
    pub env: Vec<(String, String)>,
    /// How long to wait for the `host_started` event.
    pub start_deadline: Duration,
}

impl HostOptions {
    /// Options for a host joining `lattice` on `nats_url`, with every other
    /// setting at its default.
    pub fn new(nats_url: impl Into<String>, lattice: impl Into<String>) -> HostOptions {
        HostOptions {
            nats_url: nats_url.into(),
            lattice: lattice.into(),
            labels: Vec::new(),
            host_seed: None,
            heartbeat_interval_seconds: None,
            allow_file_load: true,
            extra_args: Vec::new(),
            env: Vec::new(),
            start_deadline: DEFAULT_START_DEADLINE,
        }
    }

    /// Adds a `-l key=value` label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> HostOptions {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// Uses this nkeys server seed (`S…`) instead of a generated one, e.g. to
    /// restart "the same" host.
    pub fn host_seed(mut self, seed: impl Into<String>) -> HostOptions {
        self.host_seed = Some(seed.into());
        self
    }

    /// Sets `--heartbeat-interval-seconds`.
    pub fn heartbeat_interval_seconds(mut self, seconds: u64) -> HostOptions {
        self.heartbeat_interval_seconds = Some(seconds);
        self
    }

    /// Appends one extra command-line argument.
    pub fn arg(mut self, arg: impl Into<String>) -> HostOptions {
        self.extra_args.push(arg.into());
        self
    }

    /// Sets an environment variable for the host process.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> HostOptions {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command-line arguments for these options and this seed.
    fn args(&self, seed: &str) -> Vec<String> {
        let mut args = vec![
            "--nats-url".to_string(),
            self.nats_url.clone(),
            "--lattice".to_string(),
            self.lattice.clone(),
            "--host-seed".to_string(),
            seed.to_string(),
        ];
        if self.allow_file_load {
            args.push("--allow-file-load".to_string());
        }
        for (key, value) in &self.labels {
            args.push("-l".to_string());
            args.push(format!("{key}={value}"));
        }
        if let Some(seconds) = self.heartbeat_interval_seconds {
            args.push("--heartbeat-interval-seconds".to_string());
            args.push(seconds.to_string());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// A running `trellis` host.
#[derive(Debug)]
pub struct HostProcess {
    id: String,
    seed: String,
    lattice: String,
    started_event: Value,
    child: Child,
    /// `None` only after the directory was kept on disk.
    log_dir: Option<TempDir>,
    log_path: PathBuf,
}

impl HostProcess {
    /// Spawns the host and waits for its `host_started` event.
    ///
    /// On failure the host is killed, its log directory is kept on disk and
    /// the error quotes the log's tail.
    pub async fn start(opts: HostOptions) -> anyhow::Result<HostProcess> {
        let binary = binary_path()?;
        warn_if_stale(&binary);
        let seed = match &opts.host_seed {
            Some(seed) => seed.clone(),
            None => nkeys::KeyPair::new_server()
                .seed()
                .context("failed to generate a host seed")?,
        };
        let id = nkeys::KeyPair::from_seed(&seed)
            .context("invalid host seed")?
            .public_key();

        let client = async_nats::connect(&opts.nats_url)
            .await
            .with_context(|| format!("failed to connect to {}", opts.nats_url))?;
        // Subscribe before spawning, so the host_started event cannot be missed.
        let mut events = EventWatcher::new(&client, &opts.lattice).await?;

        let log_dir = tempfile::Builder::new()
            .prefix("trellis-host-")
            .tempdir()
            .context("failed to create a temporary directory for the host log")?;
        let log_path = log_dir.path().join("host.log");
        let (stdout, stderr) = open_log(&log_path)?;
        let mut command = Command::new(&binary);
        command
            .args(opts.args(&seed))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .env("NO_COLOR", "1");
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", DEFAULT_RUST_LOG);
        }
        command.envs(opts.env.iter().map(|(key, value)| (key, value)));
        let child = command
            .spawn()
            .with_context(|| format!("failed to spawn {}", binary.display()))?;

        let mut host = HostProcess {
            id,
            seed,
            lattice: opts.lattice.clone(),
            started_event: Value::Null,
            child,
            log_dir: Some(log_dir),
            log_path,
        };
        match host.wait_started(&mut events, opts.start_deadline).await {
            Ok(event) => {
                host.started_event = event;
                Ok(host)
            }
            Err(error) => {
                let _ = host.child.kill().await;
                let log_path = host.keep_log();
                Err(error.context(format!(
                    "host {} did not start; log {} (kept):\n{}",
                    host.id,
                    log_path.display(),
                    host.log_tail(LOG_TAIL_LINES)
                )))
            }
        }
    }

    /// Waits for the `host_started` event from this host, failing early if
    /// the process exits first.
    async fn wait_started(
        &mut self,
        events: &mut EventWatcher,
        deadline: Duration,
    ) -> anyhow::Result<Value> {
        let id = self.id.clone();
        let started = events.wait_for_type(
            "host_started",
            |event| event_source(event) == Some(id.as_str()),
            deadline,
        );
        tokio::select! {
            event = started => event,
            status = self.child.wait() => match status {
                Ok(status) => bail!("the host exited with {status} before publishing host_started"),
                Err(error) => Err(anyhow::Error::new(error).context("failed to wait for the host process")),
            },
        }
    }

    /// The host id: the nkeys server public key (`N…`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The host's nkeys seed, to start a host with the same id again.
    pub fn seed(&self) -> &str {
        &self.seed
    }

    /// The lattice the host joined.
    pub fn lattice(&self) -> &str {
        &self.lattice
    }

    /// The `host_started` CloudEvent the host published.
    pub fn started_event(&self) -> &Value {
        &self.started_event
    }

    /// The OS process id, while the process has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The pid of the host's child process (a provider) whose command line
    /// mentions `name`, if one runs.
    pub fn child_pid(&self, name: &str) -> Option<u32> {
        let out = std::process::Command::new("pgrep")
            .args(["-P", &self.pid()?.to_string(), "-f", name])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The file receiving the host's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the host log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log_path, lines)
    }

    /// Sends SIGTERM, asking the host to shut down gracefully (drain, publish
    /// `host_stopped`). Use [`HostProcess::wait_exit`] to wait for it.
    pub fn signal_term(&self) -> anyhow::Result<()> {
        let Some(pid) = self.child.id() else {
            bail!("host {} has already exited", self.id);
        };
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .context("failed to run `kill -TERM`")?;
        if !status.success() {
            bail!("`kill -TERM {pid}` exited with {status}");
        }
        Ok(())
    }

    /// Waits up to `deadline` for the process to exit and returns its status.
    pub async fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => status.context("failed to wait for the host process"),
            Err(_elapsed) => bail!(
                "host {} did not exit within {deadline:?}; log {}:\n{}",
                self.id,
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            ),
        }
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .context("failed to poll the host process")
    }

    /// Kills the host with SIGKILL (a crash: no `host_stopped`, no drain) and
    /// reaps it. Killing an exited host is a no-op.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        self.child
            .kill()
            .await
            .with_context(|| format!("failed to kill host {}", self.id))
    }

    /// Keeps the log directory on disk after this value is dropped and
    /// returns the log path.
    fn keep_log(&mut self) -> PathBuf {
        if let Some(dir) = self.log_dir.take() {
            let _ = dir.keep();
        }
        self.log_path.clone()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        // A failing test is the one time a person reads the host log: keep it
        // and show its end next to the panic message.
        if std::thread::panicking() {
            let path = self.keep_log();
            eprintln!(
                "--- host {} log ({}), last {LOG_TAIL_LINES} lines:\n{}\n---",
                self.id,
                path.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        // `kill_on_drop` sends SIGKILL when `child` is dropped.
    }
}

/// Where the `trellis` binary is: `$TRELLIS_BIN` if set, otherwise next to
/// the running test binary's profile directory (`target/debug/trellis` for
/// `target/debug/deps/trellis_tests-…`).
pub fn binary_path() -> anyhow::Result<PathBuf> {
    workspace_binary(TRELLIS_BIN_NAME, TRELLIS_BIN_ENV, "trellis-host")
}

/// Where a workspace binary `name` is: `$env_var` if set, otherwise next to
/// the running test binary's profile directory (`target/debug/{name}`). The
/// error says how to build it (`cargo build -p {package}`).
pub fn workspace_binary(name: &str, env_var: &str, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("${env_var} is {}, which is not a file", path.display());
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("cannot locate the running test binary")?;
    let mut dir = exe
        .parent()
        .context("the test binary has no parent directory")?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().context("the deps directory has no parent")?;
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!(
            "{} does not exist: build it with `cargo build -p {package}` (same profile as the \
             tests), or point ${env_var} at one",
            path.display()
        );
    }
    Ok(path)
}

/// Warns when a source file of the host or its interfaces is newer than the
/// binary: `cargo test` does not rebuild another package's binary, so a test
/// could otherwise silently run yesterday's host.
fn warn_if_stale(binary: &Path) {
    let Ok(built) = binary.metadata().and_then(|meta| meta.modified()) else {
        return;
    };
    let root = crate::guests::repo_root();
    for dir in ["host/src", "interfaces/src"] {
        if let Some(newer) = newest_file(&root.join(dir)).filter(|(modified, _)| *modified > built)
        {
            eprintln!(
                "warning: {} is newer than {}; run `cargo build -p trellis-host` to test the current code",
                newer.1.display(),
                binary.display()
            );
            return;
        }
    }
}

/// The most recently modified file under `dir`, recursively.
fn newest_file(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(path);
            } else if let Ok(modified) = meta.modified()
                && newest.as_ref().is_none_or(|(time, _)| modified > *time)
            {
                newest = Some((modified, path));
            }
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_carry_every_option_in_order() {
        let opts = HostOptions::new("nats://127.0.0.1:1", "lat")
            .label("zone", "eu")
            .label("tier", "edge")
            .heartbeat_interval_seconds(2)
            .arg("--allow-latest");
        assert_eq!(
            opts.args("SNSEED"),
            [
                "--nats-url",
                "nats://127.0.0.1:1",
                "--lattice",
                "lat",
                "--host-seed",
                "SNSEED",
                "--allow-file-load",
                "-l",
                "zone=eu",
                "-l",
                "tier=edge",
                "--heartbeat-interval-seconds",
                "2",
                "--allow-latest",
            ]
        );
    }

    #[test]
    fn generated_seed_gives_a_server_id() {
        let seed = nkeys::KeyPair::new_server().seed().unwrap();
        let id = nkeys::KeyPair::from_seed(&seed).unwrap().public_key();
        assert!(seed.starts_with("SN"), "{seed}");
        assert!(id.starts_with('N'), "{id}");
    }
}
