//! `wash spy COMPONENT_ID`: a live view of the wRPC calls made to and by a
//! component over the lattice, one line per call when it completes (or
//! when it is given up on), with the time it was sent, the direction, the
//! peer, `instance.function`, the link name, the sizes of the parameters
//! and results, the framing and the time until the last reply message.
//!
//! What is watched (PROTOCOL.md §3.1, `docs/dataplane.md`):
//!
//! * `{lattice}.*.wrpc.>`: every invocation. One whose target token is the
//!   component is a call *to* it; one carrying `source-id: COMPONENT_ID` is
//!   a call *from* it.
//! * `_INBOX.>`: the replies, matched to a call by its reply subject. A
//!   compact reply (`trellis-framing: 1`) ends the call unless it says
//!   `trellis-continued`; with the standard handshake the call ends with the
//!   empty message that closes `{reply}.results`. A `trellis-error` header
//!   is shown as the call's error.
//!
//! Calls a host keeps in-process (caller and target on the same host) never
//! reach NATS, so they are not seen; start hosts with `--no-local-calls` to
//! see every call.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use futures::StreamExt as _;
use serde_json::json;
use tokio::time::Instant;
use trellis_wrpc::headers;

use crate::ctl::Lattice;
use crate::output::OutputKind;

/// How long the spy waits for NATS to confirm its subscriptions.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(10);
use crate::parse;

/// How long a call may go without its last reply before it is shown as
/// unanswered: 30 s by default, three times the 10 s default invocation
/// budget, so only calls that really lost their answer are reported so.
pub const DEFAULT_REPLY_TIMEOUT_MS: u64 = 30_000;

/// `wash spy`.
#[derive(Args, Debug, Clone)]
pub struct SpyArgs {
    /// Id of the component to watch
    #[arg(value_parser = parse::component_id)]
    pub component_id: String,
    /// Stop after this many calls (default: run until Ctrl-C)
    #[arg(long = "count")]
    pub count: Option<u64>,
    /// Show a call as unanswered after this many milliseconds without its reply
    #[arg(long = "reply-timeout-ms", default_value_t = DEFAULT_REPLY_TIMEOUT_MS)]
    pub reply_timeout_ms: u64,
}

/// One call seen on the wire.
#[derive(Debug, Clone)]
struct Call {
    sent: SystemTime,
    started: Instant,
    incoming: bool,
    /// The caller for a call to the component, the target for one from it.
    peer: String,
    function: String,
    link_name: String,
    params_bytes: usize,
    results_bytes: usize,
    framing: &'static str,
    error: Option<String>,
}

/// Resolves on the next Ctrl-C; the handler is in place when this returns.
fn interrupted() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupts = signal(SignalKind::interrupt())
            .map_err(|e| anyhow::anyhow!("cannot listen for Ctrl-C: {e}"))?;
        Ok(async move {
            interrupts.recv().await;
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Runs until Ctrl-C (or `--count` calls).
pub async fn run(lattice: &Lattice, args: SpyArgs, output: OutputKind) -> anyhow::Result<()> {
    let nats = &lattice.nats;
    let calls_subject = format!("{}.*.wrpc.>", lattice.name());
    let mut requests = nats
        .subscribe(calls_subject.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {calls_subject}: {e}"))?;
    let mut replies = nats
        .subscribe("_INBOX.>")
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to _INBOX.>: {e}"))?;
    // Not just `flush()`: the calls the spy is about to announce it sees
    // come from other connections, so the server must have registered both
    // subscriptions before the line below is printed.
    trellis_interfaces::client::server_caught_up(nats, SUBSCRIBE_WAIT)
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe on NATS at {}: {e}", lattice.url))?;
    // Listened for before the line below says Ctrl-C stops the spy: a
    // `ctrl_c()` future only installs its handler when first polled, and an
    // interrupt before that would kill the process instead.
    let ctrl_c = interrupted()?;
    tokio::pin!(ctrl_c);
    eprintln!(
        "Spying on component `{}` in lattice `{}` (Ctrl-C to stop)",
        args.component_id,
        lattice.name()
    );
    if output == OutputKind::Text {
        println!(
            "{:<12}  {:<4}  {:<20}  {:<44}  {:<8}  {:>8}  {:>8}  {:>9}  NOTE",
            "TIME", "DIR", "PEER", "FUNCTION", "LINK", "PARAMS", "RESULTS", "DURATION"
        );
    }
    let reply_timeout = Duration::from_millis(args.reply_timeout_ms);
    let mut pending: HashMap<String, Call> = HashMap::new();
    let mut shown: u64 = 0;
    let mut sweep = tokio::time::interval(Duration::from_millis(500));
    let prefix = format!("{}.", lattice.name());
    while args.count.is_none_or(|n| shown < n) {
        tokio::select! {
            // Requests first: a reply is never looked at before the request
            // that NATS delivered ahead of it.
            biased;
            _ = &mut ctrl_c => break,
            Some(message) = requests.next() => {
                let Some(call) = classify(&message, &prefix, &args.component_id) else {
                    continue;
                };
                match &message.reply {
                    Some(reply) => {
                        pending.insert(reply.to_string(), call);
                    }
                    // No reply subject: a one-way message, done at once.
                    None => {
                        print_call(&call, output, None);
                        shown += 1;
                    }
                }
            }
            Some(message) = replies.next() => {
                if let Some(call) = on_reply(&mut pending, &message) {
                    print_call(&call, output, Some(call.started.elapsed()));
                    shown += 1;
                }
            }
            _ = sweep.tick() => {
                let expired: Vec<String> = pending
                    .iter()
                    .filter(|(_, c)| c.started.elapsed() >= reply_timeout)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in expired {
                    if let Some(mut call) = pending.remove(&key) {
                        call.error.get_or_insert_with(|| "no reply".to_string());
                        print_call(&call, output, None);
                        shown += 1;
                    }
                }
            }
            else => break,
        }
    }
    Ok(())
}

/// The call `message` is, if it is one to or from `component`.
fn classify(message: &async_nats::Message, prefix: &str, component: &str) -> Option<Call> {
    let rest = message.subject.as_str().strip_prefix(prefix)?;
    let (target, rest) = rest.split_once('.')?;
    let function = rest
        .strip_prefix(trellis_wrpc::PROTOCOL)?
        .strip_prefix('.')?;
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let source = header(headers::SOURCE_ID).unwrap_or_default();
    let incoming = target == component;
    if !incoming && source != component {
        return None;
    }
    let compact = header(headers::FRAMING).is_some_and(|v| v == "1");
    Some(Call {
        sent: SystemTime::now(),
        started: Instant::now(),
        incoming,
        peer: if incoming {
            if source.is_empty() {
                "?".to_string()
            } else {
                source
            }
        } else {
            target.to_string()
        },
        function: function.to_string(),
        link_name: header(headers::LINK_NAME).unwrap_or_else(|| "default".to_string()),
        params_bytes: message.payload.len(),
        results_bytes: 0,
        framing: if compact { "compact" } else { "standard" },
        error: None,
    })
}

/// Feeds one inbox message to the call it answers; the call when it is done.
fn on_reply(pending: &mut HashMap<String, Call>, message: &async_nats::Message) -> Option<Call> {
    let subject = message.subject.as_str();
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let error = header(headers::ERROR).map(|kind| match header(headers::ERROR_MESSAGE) {
        Some(text) => format!("{kind}: {text}"),
        None => kind,
    });
    if let Some(call) = pending.get_mut(subject) {
        // First answer on the reply subject itself.
        let compact = header(headers::FRAMING).is_some_and(|v| v == "1");
        let continued = header(headers::CONTINUED).is_some_and(|v| v == "1");
        call.results_bytes += message.payload.len();
        if compact {
            call.framing = "compact";
        } else if message.reply.is_some() {
            call.framing = "standard";
        }
        if error.is_some() {
            call.error = error;
        }
        let done = (compact && !continued) || call.error.is_some();
        return if done { pending.remove(subject) } else { None };
    }
    // `{reply}.results`: the end of the root results stream is an empty
    // message (nested streams `{reply}.results.{i}` only add bytes).
    let base = subject.strip_suffix(".results")?;
    let call = pending.get_mut(base)?;
    call.results_bytes += message.payload.len();
    if error.is_some() {
        call.error = error;
    }
    if message.payload.is_empty() {
        pending.remove(base)
    } else {
        None
    }
}

fn print_call(call: &Call, output: OutputKind, duration: Option<Duration>) {
    let since_epoch = call.sent.duration_since(UNIX_EPOCH).unwrap_or_default();
    let time = clock(since_epoch);
    let duration_ms = duration.map(|d| d.as_secs_f64() * 1000.0);
    let direction = if call.incoming { "in" } else { "out" };
    let mut stdout = std::io::stdout().lock();
    let _ = match output {
        OutputKind::Json => writeln!(
            stdout,
            "{}",
            json!({
                "time": time,
                "time_unix_ms": since_epoch.as_millis(),
                "direction": direction,
                "from": if call.incoming { call.peer.as_str() } else { "" },
                "to": if call.incoming { "" } else { call.peer.as_str() },
                "function": call.function,
                "link_name": call.link_name,
                "params_bytes": call.params_bytes,
                "results_bytes": call.results_bytes,
                "framing": call.framing,
                "duration_ms": duration_ms,
                "error": call.error,
            })
        ),
        OutputKind::Text => {
            let peer = if call.incoming {
                format!("from {}", call.peer)
            } else {
                format!("to {}", call.peer)
            };
            let duration = duration_ms
                .map(|ms| format!("{ms:.1} ms"))
                .unwrap_or_else(|| "-".to_string());
            let note = match &call.error {
                Some(e) => format!("{} error: {e}", call.framing),
                None => call.framing.to_string(),
            };
            writeln!(
                stdout,
                "{time:<12}  {direction:<4}  {peer:<20}  {:<44}  {:<8}  {:>6} B  {:>6} B  {duration:>9}  {note}",
                call.function, call.link_name, call.params_bytes, call.results_bytes
            )
        }
    };
    let _ = stdout.flush();
}

/// `HH:MM:SS.mmm` (UTC) of a time since the epoch.
fn clock(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(
        subject: &str,
        reply: Option<&str>,
        hdrs: &[(&str, &str)],
        payload: &[u8],
    ) -> async_nats::Message {
        let mut headers = async_nats::HeaderMap::new();
        for (k, v) in hdrs {
            headers.insert(*k, *v);
        }
        async_nats::Message {
            subject: subject.into(),
            reply: reply.map(Into::into),
            payload: payload.to_vec().into(),
            headers: Some(headers),
            status: None,
            description: None,
            length: 0,
        }
    }

    #[test]
    fn calls_to_and_from_the_component_are_told_apart() {
        let to = message(
            "default.ponger.wrpc.0.0.1.example:pong/pingpong@0.1.0.ping",
            Some("_INBOX.a.1"),
            &[("source-id", "pinger"), ("trellis-framing", "1")],
            b"",
        );
        let call = classify(&to, "default.", "ponger").unwrap();
        assert!(call.incoming);
        assert_eq!(call.peer, "pinger");
        assert_eq!(call.function, "example:pong/pingpong@0.1.0.ping");
        assert_eq!(call.link_name, "default");
        let from = classify(&to, "default.", "pinger").unwrap();
        assert!(!from.incoming);
        assert_eq!(from.peer, "ponger");
        assert!(classify(&to, "default.", "other").is_none());
        assert!(classify(&to, "prod.", "ponger").is_none());
    }

    #[test]
    fn compact_and_standard_replies_end_the_call() {
        let mut pending = HashMap::new();
        let call = classify(
            &message("d.p.wrpc.0.0.1.i.f", Some("_INBOX.a.1"), &[], b"xy"),
            "d.",
            "p",
        )
        .unwrap();
        pending.insert("_INBOX.a.1".to_string(), call.clone());
        pending.insert("_INBOX.a.2".to_string(), call);
        let done = on_reply(
            &mut pending,
            &message("_INBOX.a.1", None, &[("trellis-framing", "1")], b"abc"),
        )
        .unwrap();
        assert_eq!((done.results_bytes, done.framing), (3, "compact"));
        // Standard: handshake, results, end of results.
        assert!(
            on_reply(
                &mut pending,
                &message("_INBOX.a.2", Some("_INBOX.s.9"), &[], b"")
            )
            .is_none()
        );
        assert!(
            on_reply(
                &mut pending,
                &message("_INBOX.a.2.results", None, &[], b"abcd")
            )
            .is_none()
        );
        let done = on_reply(&mut pending, &message("_INBOX.a.2.results", None, &[], b"")).unwrap();
        assert_eq!((done.results_bytes, done.framing), (4, "standard"));
        assert!(pending.is_empty());
    }

    #[test]
    fn clock_is_utc_time_of_day() {
        assert_eq!(
            clock(Duration::from_millis(86_400_000 + 3_723_045)),
            "01:02:03.045"
        );
    }
}
