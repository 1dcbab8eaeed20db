//! Running the `wash` binary from whole-system tests: where it is, and what
//! one run did.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

/// Environment variable that overrides where the `wash` binary is found.
pub const WASH_BIN_ENV: &str = "WASH_BIN";

/// Where `wash` is: `$WASH_BIN`, else next to the test binary's profile
/// directory, like the harness finds `trellis`.
pub fn wash_binary() -> anyhow::Result<PathBuf> {
    crate::host::workspace_binary("wash", WASH_BIN_ENV, "trellis-wash")
}

/// What one `wash` run did.
#[derive(Debug)]
pub struct WashRun {
    /// Exit status was success.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl WashRun {
    /// stdout and stderr together, for checking messages wherever they went.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("stdout is not JSON:\n{}", self.all()))
    }
}

/// Runs a prepared `wash` command (`args` only name it in errors), failing
/// if it takes longer than `deadline` so a hang fails the test.
pub async fn run_wash(
    mut command: tokio::process::Command,
    args: &[&str],
    deadline: Duration,
) -> anyhow::Result<WashRun> {
    command.kill_on_drop(true);
    let output = tokio::time::timeout(deadline, command.output())
        .await
        .with_context(|| format!("wash {args:?} did not finish within {deadline:?}"))?
        .with_context(|| format!("cannot run wash {args:?}"))?;
    Ok(WashRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
