//! `wash call` and `wash spy` as processes against a real `trellis` host
//! running `ponger` (`example:pong/pingpong`: `ping`, `echo(record)`, `work`):
//! results and errors in text and JSON with their exit codes, and the spy's
//! lines for calls to the component and from a caller, live, until `--count`
//! or Ctrl-C.
//!
//! Build the binaries first: `cargo build -p trellis-host -p trellis-wash`.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests: a failed unwrap is the test failing; serde_json::Value indexing yields Null"
)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use trellis_tests::wash::{WashRun, run_wash, wash_binary};
use trellis_tests::{HostOptions, HostProcess, NatsServer, component_path};

/// How long one `wash` run may take; a hang fails the test.
const WASH_DEADLINE: Duration = Duration::from_secs(60);
const LATTICE: &str = "debug";
const PING: &str = "example:pong/pingpong.ping";
const ECHO: &str = "example:pong/pingpong.echo";

/// A host running `ponger` from its `file://` image.
struct Stack {
    nats: NatsServer,
    host: HostProcess,
    ponger: String,
}

impl Stack {
    async fn start() -> Stack {
        let ponger = tokio::task::spawn_blocking(|| component_path("ponger"))
            .await
            .unwrap()
            .unwrap()
            .display()
            .to_string();
        let nats = NatsServer::start().await.unwrap();
        let host = HostProcess::start(HostOptions::new(nats.url(), LATTICE))
            .await
            .unwrap();
        let stack = Stack { nats, host, ponger };
        let image = format!("file://{}", stack.ponger);
        let started = stack.run(&["start", "component", &image, "ponger"]).await;
        assert!(started.success, "{}", started.all());
        stack
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(wash_binary().unwrap());
        command
            .args(args)
            .args(["--nats-url", &self.nats.url(), "-x", LATTICE]);
        for var in [
            "WASMCLOUD_CTL_HOST",
            "WASMCLOUD_CTL_PORT",
            "WASMCLOUD_LATTICE",
        ] {
            command.env_remove(var);
        }
        command
    }

    async fn run(&self, args: &[&str]) -> WashRun {
        run_wash(self.command(args), args, WASH_DEADLINE)
            .await
            .unwrap()
    }

    /// `wash ARGS` in text and in JSON; both must fail. The text's stderr
    /// and the JSON error.
    async fn fails(&self, args: &[&str]) -> (String, String) {
        let text = self.run(args).await;
        assert!(!text.success, "wash {args:?} succeeded:\n{}", text.all());
        let mut json_args = args.to_vec();
        json_args.extend(["-o", "json"]);
        let json = self.run(&json_args).await;
        assert!(!json.success, "{}", json.all());
        let json = json.json().unwrap();
        assert_eq!(json["success"], false, "{json}");
        (text.stderr, json["error"].as_str().unwrap().to_string())
    }

    /// A running `wash spy ARGS`, returned once it is subscribed.
    async fn spy(&self, args: &[&str]) -> Spy {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let ready = tokio::time::timeout(WASH_DEADLINE, stderr.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap_or_default();
        assert!(ready.starts_with("Spying on component"), "{ready}");
        Spy { child }
    }
}

struct Spy {
    child: tokio::process::Child,
}

impl Spy {
    /// Waits for the spy to exit; its stdout lines and whether it succeeded.
    async fn finish(self) -> (bool, Vec<String>) {
        let output = tokio::time::timeout(WASH_DEADLINE, self.child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("wash spy did not exit"))
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        (
            output.status.success(),
            stdout.lines().map(str::to_string).collect(),
        )
    }
}

#[tokio::test]
async fn wash_call_prints_results_and_names_the_expected_type() {
    let stack = Stack::start().await;

    let ping = stack.run(&["call", "ponger", PING]).await;
    assert!(ping.success, "{}", ping.all());
    assert_eq!(ping.stdout, "\"pong\"\n");

    let record = r#"{"message": "hi", "times": 2, "tags": ["a", "b"]}"#;
    let echo = stack
        .run(&["call", "ponger", ECHO, record, "-o", "json"])
        .await;
    assert!(echo.success, "{}", echo.all());
    let json = echo.json().unwrap();
    assert_eq!(json["success"], true);
    assert_eq!(json["result"], json!({"ok": ["0:hi[a,b]", "1:hi[a,b]"]}));
    assert_eq!(json["instance"], "example:pong/pingpong@0.1.0");
    assert!(json["duration_ms"].as_f64().unwrap() > 0.0, "{json}");

    // A function's own error is a result, not a failed call.
    let too_many = r#"{"message": "x", "times": 101, "tags": []}"#;
    let err = stack.run(&["call", "ponger", ECHO, too_many]).await;
    assert!(err.success, "{}", err.all());
    assert_eq!(
        err.stdout.trim(),
        r#"{"err":"times must be at most 100, got 101"}"#
    );

    // The versioned instance name and --wit-from work too; numbers as JSON.
    let work = stack
        .run(&[
            "call",
            "ponger",
            "example:pong/pingpong@0.1.0.work",
            "5",
            "--wit-from",
            &stack.ponger,
        ])
        .await;
    assert!(work.success, "{}", work.all());
    assert_eq!(work.stdout, "5\n");

    // Wrong argument type: the path and the expected WIT type are named.
    let bad = r#"{"message": "hi", "times": "two", "tags": []}"#;
    let (text, json) = stack.fails(&["call", "ponger", ECHO, bad]).await;
    assert!(
        text.contains("req.times: expected u32, got \"two\""),
        "{text}"
    );
    assert!(json.contains("req.times: expected u32"), "{json}");
    let (text, _) = stack.fails(&["call", "ponger", ECHO, "[1]"]).await;
    assert!(
        text.contains("record `echo-request` { message: string, times: u32, tags: list<string> }"),
        "{text}"
    );
    let (text, _) = stack.fails(&["call", "ponger", ECHO]).await;
    assert!(text.contains("takes 1 argument(s), got 0"), "{text}");
    assert!(
        text.contains("echo(req: echo-request) -> result<list<string>, string>"),
        "{text}"
    );

    // Unknown function: the exports are listed.
    let (text, _) = stack
        .fails(&["call", "ponger", "example:pong/pingpong.nope"])
        .await;
    assert!(
        text.contains("does not export `example:pong/pingpong.nope`"),
        "{text}"
    );
    assert!(text.contains("example:pong/pingpong.ping"), "{text}");

    // Unknown component: named, with the ones that run.
    let (text, _) = stack.fails(&["call", "nobody", PING]).await;
    assert!(text.contains("nobody") && text.contains("ponger"), "{text}");
    // Not running, with the signature given: nothing serves the subject.
    let (text, _) = stack
        .fails(&["call", "nobody", PING, "--wit-from", &stack.ponger])
        .await;
    assert!(text.contains("nothing serves"), "{text}");
}

#[tokio::test]
async fn wash_spy_shows_calls_to_and_from_a_component() {
    let stack = Stack::start().await;
    // Calls *to* ponger, in JSON; calls *from* `wash` (the source-id that
    // `wash call` sends), in text.
    let to = stack
        .spy(&["spy", "ponger", "-o", "json", "--count", "2"])
        .await;
    let from = stack.spy(&["spy", "wash", "--count", "1"]).await;

    let ping = stack.run(&["call", "ponger", PING]).await;
    assert!(ping.success, "{}", ping.all());
    let record = r#"{"message": "hi", "times": 3, "tags": []}"#;
    let echo = stack
        .run(&["call", "ponger", ECHO, record, "--link-name", "backup"])
        .await;
    assert!(echo.success, "{}", echo.all());

    let (ok, lines) = to.finish().await;
    assert!(ok, "{lines:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    let calls: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(calls[0]["direction"], "in");
    assert_eq!(calls[0]["from"], "wash");
    assert_eq!(calls[0]["function"], "example:pong/pingpong@0.1.0.ping");
    assert_eq!(calls[0]["link_name"], "default");
    assert_eq!(calls[0]["params_bytes"], 0);
    // "pong": one length byte and four letters.
    assert_eq!(calls[0]["results_bytes"], 5);
    assert_eq!(calls[0]["framing"], "compact");
    assert!(calls[0]["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(calls[1]["function"], "example:pong/pingpong@0.1.0.echo");
    assert_eq!(calls[1]["link_name"], "backup");
    assert_eq!(calls[1]["error"], Value::Null);

    let (ok, lines) = from.finish().await;
    assert!(ok, "{lines:?}");
    assert!(lines[0].starts_with("TIME"), "{lines:?}");
    let line = &lines[1];
    assert!(line.contains(" out "), "{line}");
    assert!(line.contains("to ponger"), "{line}");
    assert!(line.contains("example:pong/pingpong@0.1.0.ping"), "{line}");
    assert!(line.contains(" ms ") && line.ends_with("compact"), "{line}");

    // Without --count the spy runs until Ctrl-C, and then exits 0.
    let spy = stack.spy(&["spy", "ponger"]).await;
    let pid = spy.child.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (ok, lines) = spy.finish().await;
    assert!(ok, "{lines:?}");
}

/// `wash start component --max-instance-reuse N` opts a component into
/// instance reuse: `answered()` (calls its instance has answered) counts up
/// to N and starts again on a fresh instance; without the flag every call
/// gets a fresh instance. `wash scale component` refuses 0.
#[tokio::test]
async fn wash_start_with_max_instance_reuse_reuses_instances() {
    const ANSWERED: &str = "example:pong/pingpong.answered";
    let stack = Stack::start().await;
    let image = format!("file://{}", stack.ponger);
    let started = stack
        .run(&[
            "start",
            "component",
            &image,
            "ponger-reused",
            "--max-instance-reuse",
            "2",
        ])
        .await;
    assert!(started.success, "{}", started.all());
    let mut reused = Vec::new();
    let mut fresh = Vec::new();
    for _ in 0..5 {
        let call = stack.run(&["call", "ponger-reused", ANSWERED]).await;
        assert!(call.success, "{}", call.all());
        reused.push(call.stdout.trim().to_string());
        let call = stack.run(&["call", "ponger", ANSWERED]).await;
        assert!(call.success, "{}", call.all());
        fresh.push(call.stdout.trim().to_string());
    }
    assert_eq!(reused, ["1", "2", "1", "2", "1"]);
    assert_eq!(fresh, ["1"; 5]);

    let host_id = stack.host.id().to_string();
    let zero = stack
        .run(&[
            "scale",
            "component",
            &host_id,
            &image,
            "ponger",
            "--max-instance-reuse",
            "0",
        ])
        .await;
    assert!(!zero.success, "{}", zero.all());
    assert!(
        zero.stderr.contains("--max-instance-reuse"),
        "{}",
        zero.all()
    );
}
