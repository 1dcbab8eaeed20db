//! One provider process: spawn with a clean environment and `HostData` on
//! stdin, forward its output to the host log, describe how it ended, and
//! terminate its whole process group.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Longest line of provider output logged as one line; longer lines are cut
/// (and the rest logged as further lines), so a provider printing megabytes
/// without a newline cannot make the host buffer them.
pub const MAX_OUTPUT_LINE_BYTES: usize = 4096;
/// Lines of stderr kept to explain an exit.
pub const STDERR_TAIL_LINES: usize = 10;
/// How long to wait, after the process exited, for its output to be read to
/// the end (a grandchild may keep the pipe open).
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);

/// Environment variables a provider inherits; everything else is cleared.
fn passed_through(name: &str) -> bool {
    name == "RUST_LOG" || name.starts_with("OTEL_")
}

/// A spawned provider process and its output readers.
pub(super) struct ProviderProcess {
    pub child: Child,
    /// Process id, which is also its process group id.
    pub pid: Option<u32>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// Spawns `exec` with `stdin` (the encoded `HostData`) written and closed.
pub(super) async fn spawn(
    exec: &Path,
    provider_id: &str,
    stdin: &[u8],
) -> Result<ProviderProcess, std::io::Error> {
    let mut command = Command::new(exec);
    command
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| passed_through(k)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let pid = child.id();
    let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(forward(
            out,
            provider_id.to_string(),
            "stdout",
            None,
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(forward(
            err,
            provider_id.to_string(),
            "stderr",
            Some(stderr_tail.clone()),
        )));
    }
    if let Some(mut input) = child.stdin.take() {
        // Written from a task: a provider that never reads its stdin must not
        // block the supervisor once the pipe buffer is full. A provider that
        // exits before reading gives EPIPE; its exit is what gets reported,
        // so the write error is only logged.
        let (stdin, provider_id) = (stdin.to_vec(), provider_id.to_string());
        tokio::spawn(async move {
            let written = async {
                input.write_all(&stdin).await?;
                input.shutdown().await
            };
            if let Err(error) = written.await {
                tracing::debug!(%provider_id, %error, "cannot write host data to the provider's stdin");
            }
        });
    }
    Ok(ProviderProcess {
        child,
        pid,
        stderr_tail,
        readers,
    })
}

impl ProviderProcess {
    /// After the process exited: waits briefly for its output to be read,
    /// then returns its last stderr lines (oldest first).
    pub async fn stderr_tail(&mut self) -> Vec<String> {
        let readers = std::mem::take(&mut self.readers);
        let all = futures::future::join_all(readers);
        if tokio::time::timeout(OUTPUT_DRAIN, all).await.is_err() {
            tracing::debug!("provider output still open after exit (a child process holds it)");
        }
        self.stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Sends `signal` to the process group, while the process is not reaped
    /// (its pid, and so the group id, cannot have been reused).
    pub fn signal_group(&self, signal: rustix::process::Signal) {
        signal_group(self.pid, signal);
    }
}

/// Sends `signal` to process group `pid`; "no such process" is fine.
pub(super) fn signal_group(pid: Option<u32>, signal: rustix::process::Signal) {
    let Some(pid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    match rustix::process::kill_process_group(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(error) => {
            tracing::warn!(pid = pid.as_raw_nonzero().get(), %error, "cannot signal provider process group")
        }
    }
}

/// `"{how}; last stderr lines: a | b"`, or just `how` without stderr.
pub(super) fn with_tail(how: String, tail: &[String]) -> String {
    if tail.is_empty() {
        how
    } else {
        format!("{how}; last stderr lines: {}", tail.join(" | "))
    }
}

/// `exited with status 3`, `killed by signal 9 (SIGKILL)`.
pub(super) fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = match signal {
                1 => " (SIGHUP)",
                2 => " (SIGINT)",
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            format!("killed by signal {signal}{name}")
        }
        None => format!("ended: {status}"),
    }
}

/// Logs each line of `stream`, cut at [`MAX_OUTPUT_LINE_BYTES`], invalid
/// UTF-8 replaced; keeps the last lines in `tail` if given.
async fn forward(
    stream: impl AsyncRead + Unpin,
    provider_id: String,
    name: &'static str,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match read_bounded_line(&mut reader, &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            continue;
        }
        tracing::info!(target: "provider", provider_id = %provider_id, stream = name, "{text}");
        if let Some(tail) = &tail
            && let Ok(mut tail) = tail.lock()
        {
            if tail.len() >= STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text.to_string());
        }
    }
}

/// Reads up to and including a newline, or [`MAX_OUTPUT_LINE_BYTES`] bytes,
/// whichever comes first. Returns the bytes read (0 at end of stream).
async fn read_bounded_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(line.len());
        }
        let room = MAX_OUTPUT_LINE_BYTES.saturating_sub(line.len());
        let window = available
            .get(..room.min(available.len()))
            .unwrap_or(available);
        let (take, done) = match window.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (window.len(), window.len() == room),
        };
        line.extend_from_slice(window.get(..take).unwrap_or(window));
        reader.consume(take);
        if done {
            return Ok(line.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded() {
        let mut data = vec![b'a'; MAX_OUTPUT_LINE_BYTES + 10];
        data.extend_from_slice(b"\nshort\n");
        let mut reader = BufReader::new(data.as_slice());
        let mut line = Vec::new();
        assert_eq!(
            read_bounded_line(&mut reader, &mut line).await.unwrap(),
            MAX_OUTPUT_LINE_BYTES
        );
        line.clear();
        assert_eq!(read_bounded_line(&mut reader, &mut line).await.unwrap(), 11);
        line.clear();
        read_bounded_line(&mut reader, &mut line).await.unwrap();
        assert_eq!(line, b"short\n");
        line.clear();
        assert_eq!(read_bounded_line(&mut reader, &mut line).await.unwrap(), 0);
    }

    #[test]
    fn statuses_read_well() {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(
            describe_status(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_status(ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
    }

    #[test]
    fn only_logging_and_telemetry_variables_pass() {
        assert!(passed_through("RUST_LOG"));
        assert!(passed_through("OTEL_EXPORTER_OTLP_ENDPOINT"));
        assert!(!passed_through("HOME"));
        assert!(!passed_through("PATH"));
    }
}
