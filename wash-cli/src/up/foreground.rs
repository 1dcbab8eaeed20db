//! `wash up` without `-d`: stream the host log until Ctrl-C (SIGINT) or
//! SIGTERM, then stop everything that was started, host first. If the host
//! exits on its own, the rest is stopped too and wash fails with its log.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tokio::signal::unix::{SignalKind, signal};

use super::Stack;
use super::process::{LOG_TAIL_LINES, Service, log_tail};
use crate::output::OutputKind;

/// How often the host log is checked for new lines.
const TAIL_INTERVAL: Duration = Duration::from_millis(200);

/// Streams the host log (to stdout; to stderr with `-o json`, so stdout stays
/// one JSON document) until a signal or the host's exit, then stops the stack.
pub(super) async fn run(stack: &mut Stack, output: OutputKind) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot install a SIGTERM handler")?;
    let log_path = Service::Host.log_file(&stack.dir);
    let mut log = std::fs::File::open(&log_path)
        .with_context(|| format!("cannot read the host log {}", log_path.display()))?;
    let mut position = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let host_exit = loop {
        position = copy_new(&mut log, position, output);
        if let Some(exit) = exited(stack) {
            break Some(exit);
        }
        tokio::select! {
            _ = &mut ctrl_c => break None,
            _ = term.recv() => break None,
            () = tokio::time::sleep(TAIL_INTERVAL) => {}
        }
    };
    copy_new(&mut log, position, output);
    eprintln!("Stopping…");
    let stopped = stack.stop_all().await;
    eprintln!("Stopped {}.", stopped.join(", "));
    match host_exit {
        None => Ok(()),
        Some((service, status)) => Err(anyhow!(
            "{} exited ({status}), so wash stopped the rest; see {}:\n{}",
            service.binary_name(),
            service.log_file(&stack.dir).display(),
            log_tail(&service.log_file(&stack.dir), LOG_TAIL_LINES)
        )),
    }
}

/// The first started process that has exited, if any.
fn exited(stack: &mut Stack) -> Option<(Service, std::process::ExitStatus)> {
    stack.running.iter_mut().find_map(|running| {
        running
            .child
            .try_wait()
            .ok()
            .flatten()
            .map(|status| (running.service, status))
    })
}

/// Writes what was appended to the log since `position`; the new position.
fn copy_new(log: &mut std::fs::File, position: u64, output: OutputKind) -> u64 {
    let mut fresh = Vec::new();
    if log.seek(SeekFrom::Start(position)).is_err() || log.read_to_end(&mut fresh).is_err() {
        return position;
    }
    if !fresh.is_empty() {
        let _ = match output {
            OutputKind::Text => std::io::stdout().lock().write_all(&fresh),
            OutputKind::Json => std::io::stderr().lock().write_all(&fresh),
        };
    }
    position.saturating_add(u64::try_from(fresh.len()).unwrap_or(0))
}
