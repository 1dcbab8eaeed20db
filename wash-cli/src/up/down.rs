//! `wash down`: stop what `wash up` started, from its PID files — the host
//! first, then wadm, then NATS — and never a NATS or wadm that `wash up`
//! reused (it wrote no PID file for those). `--purge-jetstream` also deletes
//! the JetStream data of the NATS it ran.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;

use super::process::{self, Service, Stopped};
use super::{JETSTREAM_DIR, STATE_FILE, UpState};
use crate::output::Report;

/// How long a process gets between SIGTERM and SIGKILL: the host drains
/// in-flight invocations and stops its providers on SIGTERM, which takes a
/// few seconds at most on a local stack.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// `wash down`.
#[derive(Args, Debug, Clone)]
pub struct DownArgs {
    /// Also delete the JetStream data (apps, links, config) of the NATS `wash up` ran
    #[arg(long = "purge-jetstream")]
    pub purge_jetstream: bool,
    /// Directory `wash up` used [default: $WASH_HOME, else ~/.wash]
    #[arg(long = "wash-dir")]
    pub wash_dir: Option<PathBuf>,
}

/// Stops the stack; reports what was stopped.
pub async fn run(args: DownArgs) -> anyhow::Result<Report> {
    let dir = crate::washdir::resolve(args.wash_dir)?;
    let state: Option<UpState> = std::fs::read(dir.join(STATE_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let mut stopped = Vec::new();
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for service in Service::STOP_ORDER {
        let Some(pid) = process::read_pid(&dir, service) else {
            continue;
        };
        if !process::runs(pid, service) {
            // Stale: the process is gone (or its PID now belongs to another).
            process::remove_pid(&dir, service);
            continue;
        }
        match process::terminate(pid, STOP_GRACE).await {
            Ok(how) => {
                process::remove_pid(&dir, service);
                let how = match how {
                    Stopped::Terminated => "stopped",
                    Stopped::Killed => "killed (it ignored SIGTERM)",
                };
                lines.push(format!("  {:<5} {how} (pid {pid})", service.name()));
                stopped.push(json!({"service": service.name(), "pid": pid, "how": how}));
            }
            Err(e) => failures.push(format!("{} (pid {pid}): {e}", service.binary_name())),
        }
    }
    if !failures.is_empty() {
        bail!(
            "could not stop {}; stop it by hand, then run `wash down` again",
            failures.join(", ")
        );
    }
    let _ = std::fs::remove_file(dir.join(STATE_FILE));
    let purged = if args.purge_jetstream {
        purge(&dir)?
    } else {
        None
    };
    let mut text = if stopped.is_empty() {
        format!(
            "Nothing to stop: no process started by `wash up` runs from {}.",
            dir.display()
        )
    } else {
        format!(
            "Stopped what `wash up` started from {}:\n{}",
            dir.display(),
            lines.join("\n")
        )
    };
    if let Some(path) = &purged {
        text.push_str(&format!(
            "\nDeleted the JetStream data in {}.",
            path.display()
        ));
    }
    let kept_nats = state.as_ref().is_some_and(|s| !s.nats_started);
    let report = Report::action(
        text,
        json!({
            "wash_dir": dir,
            "stopped": stopped,
            "purged": purged,
            "lattice": state.as_ref().map(|s| s.lattice.clone()),
        }),
    );
    Ok(if kept_nats {
        report.note("left NATS running: `wash up` reused it rather than starting it")
    } else {
        report
    })
}

/// Deletes the JetStream directory, unless a NATS started by `wash up` still
/// runs on it.
fn purge(dir: &std::path::Path) -> anyhow::Result<Option<PathBuf>> {
    if let Some(pid) = process::read_pid(dir, Service::Nats)
        && process::runs(pid, Service::Nats)
    {
        bail!("NATS (pid {pid}) still runs on the JetStream data; not purging it");
    }
    let store = dir.join(JETSTREAM_DIR);
    if !store.exists() {
        return Ok(None);
    }
    std::fs::remove_dir_all(&store)
        .with_context(|| format!("cannot delete {}", store.display()))?;
    Ok(Some(store))
}
