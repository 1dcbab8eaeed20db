//! The live progress view of `wash app deploy` and `wash app status --watch`:
//! an application's status, and each scaler's kind, name, state and reason,
//! followed until the application is `deployed` or `failed`, or a deadline
//! passes.
//!
//! Statuses arrive two ways at once: wadm's reconcile loop publishes each
//! change on `wadm.status.{lattice}.{name}`, and the view also asks
//! `wadm.api.{lattice}.model.status.{name}` every [`POLL_INTERVAL`] (a wadm
//! that only serves the API, or a change published before the subscription
//! existed, is seen that way). On a terminal the view is redrawn in place;
//! otherwise every change is appended as plain lines, which logs and CI keep.
//! With `--output json` nothing is printed while waiting: the caller prints
//! the final status only.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::Value;
use tokio::time::Instant;

use crate::ctl::Lattice;
use crate::output::{OutputKind, Table};

/// How often the status is asked for while waiting: 200 ms, below wadm's
/// 250 ms reconcile pass, so no state a person could see is skipped, at the
/// cost of five small requests a second.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long after a deploy a `deployed` status that is identical to the one
/// from before the deploy is not trusted: 1 s, four reconcile passes of
/// wadm, which reacts to a deploy at once. Without it, redeploying a new
/// version of a deployed application would end the wait on the old
/// version's status.
pub const STALE_GRACE: Duration = Duration::from_secs(1);

/// How a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The application is deployed.
    Deployed,
    /// The application failed.
    Failed,
    /// The deadline passed first.
    TimedOut,
}

/// What the watch is for.
pub struct Watch<'a> {
    /// The lattice.
    pub lattice: &'a Lattice,
    /// The application.
    pub name: &'a str,
    /// Per-request timeout of a status request.
    pub request_timeout: Duration,
    /// When to give up; `None` = wait forever (until Ctrl-C).
    pub deadline: Option<Duration>,
    /// The status before a deploy, not trusted as `deployed` for
    /// [`STALE_GRACE`]; `None` for `status --watch`.
    pub before: Option<Value>,
    /// How to print.
    pub output: OutputKind,
}

/// The last status seen (wadm's `Status` object), and how the watch ended.
pub struct Watched {
    /// Final status object.
    pub status: Value,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

impl Watch<'_> {
    /// Follows the status until it is `deployed` or `failed`, or the deadline.
    pub async fn run(self) -> anyhow::Result<Watched> {
        let subject = format!("wadm.status.{}.{}", self.lattice.name(), self.name);
        let mut updates = self
            .lattice
            .nats
            .subscribe(subject.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot subscribe to {subject}: {e}"))?;
        let start = Instant::now();
        let mut view = View::new(self.output);
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Value::Null;
        loop {
            let elapsed = start.elapsed();
            let outcome = match state(&last) {
                "deployed" if self.trusted(&last, elapsed) => Some(Outcome::Deployed),
                "failed" => Some(Outcome::Failed),
                _ if self.deadline.is_some_and(|d| elapsed >= d) => Some(Outcome::TimedOut),
                _ => None,
            };
            if let Some(outcome) = outcome {
                view.finish();
                return Ok(Watched {
                    status: last,
                    outcome,
                    elapsed,
                });
            }
            let remaining = self
                .deadline
                .map(|d| d.saturating_sub(elapsed))
                .unwrap_or(Duration::MAX);
            let next = tokio::select! {
                message = updates.next() => message
                    .and_then(|m| serde_json::from_slice::<Value>(&m.payload).ok()),
                _ = poll.tick() => self.ask().await?,
                () = tokio::time::sleep(remaining) => None,
            };
            if let Some(status) = next.filter(|s| s.get("status").is_some() && *s != last) {
                view.show(self.name, &status, start.elapsed());
                last = status;
            }
        }
    }

    /// A `deployed` status counts unless it is the pre-deploy one within
    /// [`STALE_GRACE`].
    fn trusted(&self, status: &Value, elapsed: Duration) -> bool {
        elapsed >= STALE_GRACE || self.before.as_ref() != Some(status)
    }

    /// `model.status.{name}`; `None` if wadm did not answer this time (the
    /// watch goes on), an error if the application does not exist.
    async fn ask(&self) -> anyhow::Result<Option<Value>> {
        let subject = format!(
            "wadm.api.{}.model.status.{}",
            self.lattice.name(),
            self.name
        );
        let request = self.lattice.nats.request(subject, "".into());
        let Ok(Ok(reply)) = tokio::time::timeout(self.request_timeout, request).await else {
            return Ok(None);
        };
        let Ok(reply) = serde_json::from_slice::<Value>(&reply.payload) else {
            return Ok(None);
        };
        if reply.get("result").and_then(Value::as_str) == Some("ok") {
            return Ok(reply.get("status").cloned());
        }
        let message = reply
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no status");
        anyhow::bail!(
            "cannot watch application `{}`: {message}; see `wash app list`",
            self.name
        )
    }
}

/// The aggregate state of a status object (`deployed`, `reconciling`, …).
pub fn state(status: &Value) -> &str {
    status
        .get("status")
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The scalers of a status as rows: kind, name, state, reason.
pub fn scaler_rows(status: &Value) -> Vec<[String; 4]> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    status
        .get("scalers")
        .and_then(Value::as_array)
        .map(|scalers| {
            scalers
                .iter()
                .map(|s| {
                    let info = s.get("status");
                    [
                        text(s.get("kind")),
                        text(s.get("name")),
                        text(info.and_then(|i| i.get("type"))),
                        text(info.and_then(|i| i.get("message"))),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The whole status for people: one summary line and the scaler table.
pub fn render(name: &str, status: &Value) -> String {
    let mut out = format!("{name}: {}", state(status));
    let reason = status
        .get("status")
        .and_then(|s| s.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !reason.is_empty() {
        out.push_str(&format!(" ({reason})"));
    }
    let rows = scaler_rows(status);
    if !rows.is_empty() {
        let mut table = Table::new(&["SCALER", "NAME", "STATUS", "REASON"]);
        for row in rows {
            table.row(row.to_vec());
        }
        out.push('\n');
        out.push_str(table.render().trim_end());
    }
    out
}

/// Where progress goes: redrawn in place, appended, or nowhere (JSON).
enum View {
    Redraw {
        lines: usize,
    },
    Append {
        shown: Vec<[String; 4]>,
        state: String,
    },
    Quiet,
}

impl View {
    fn new(output: OutputKind) -> View {
        match output {
            OutputKind::Json => View::Quiet,
            OutputKind::Text if std::io::stdout().is_terminal() => View::Redraw { lines: 0 },
            OutputKind::Text => View::Append {
                shown: Vec::new(),
                state: String::new(),
            },
        }
    }

    fn show(&mut self, name: &str, status: &Value, elapsed: Duration) {
        let mut stdout = std::io::stdout().lock();
        let secs = elapsed.as_secs_f64();
        match self {
            View::Quiet => {}
            View::Redraw { lines } => {
                let text = format!("{} [{secs:.1}s]", render(name, status));
                // Up to the first line of the previous drawing, clear to the end.
                if *lines > 0 {
                    let _ = write!(stdout, "\x1b[{lines}A\r\x1b[J");
                }
                let _ = writeln!(stdout, "{text}");
                *lines = text.lines().count();
            }
            View::Append { shown, state: old } => {
                let new = state(status);
                if new != old {
                    let _ = writeln!(stdout, "[{secs:6.1}s] {name}: {new}");
                    *old = new.to_string();
                }
                for row in scaler_rows(status) {
                    if shown.contains(&row) {
                        continue;
                    }
                    let [kind, scaler, state, reason] = &row;
                    let reason = if reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({reason})")
                    };
                    let _ = writeln!(stdout, "[{secs:6.1}s]   {kind} {scaler}: {state}{reason}");
                    shown.retain(|s| s.get(..2) != row.get(..2));
                    shown.push(row);
                }
            }
        }
        let _ = stdout.flush();
    }

    fn finish(&mut self) {
        let _ = std::io::stdout().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status() -> Value {
        json!({"status": {"type": "reconciling", "message": "Putting link"},
               "scalers": [
                 {"id": "a", "kind": "SpreadScaler", "name": "ponger",
                  "status": {"type": "deployed"}},
                 {"id": "b", "kind": "LinkScaler", "name": "pinger -(example:pong)-> ponger",
                  "status": {"type": "reconciling", "message": "Putting link"}}]})
    }

    #[test]
    fn render_shows_each_scaler_with_its_reason() {
        let text = render("pingpong", &status());
        assert_eq!(
            text,
            "pingpong: reconciling (Putting link)\n\
             SCALER        NAME                             STATUS       REASON\n\
             SpreadScaler  ponger                           deployed\n\
             LinkScaler    pinger -(example:pong)-> ponger  reconciling  Putting link"
        );
        assert_eq!(state(&status()), "reconciling");
        assert_eq!(state(&Value::Null), "");
    }
}
