//! Thousands of concurrent calls against two server processes, one killed
//! with SIGKILL mid-run: every call returns within its deadline (+250 ms),
//! no call stays registered, no subscription leaks.

// Test bodies run through `common::run` (large stacks), so they are not
// `#[test]` functions themselves and clippy's in-test allowances miss them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use trellis_tests::{NatsOptions, NatsServer};
use trellis_wrpc::{CallContext, Client, Transport, TransportOptions, WrpcError, find_wrpc_error};
use wrpc_transport::Invoke as _;

const PREFIX: &str = "default.soak";
const CALLS: usize = 4000;
const DEADLINE: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_millis(250);

/// The `echo-server` example, built on demand (`cargo test` builds examples,
/// `cargo test --test soak` does not).
fn echo_server_path() -> PathBuf {
    // target/<profile>/deps/soak-… → target/<profile>/examples/echo-server
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join("echo-server");
    if !path.exists() {
        let target_dir = profile_dir.parent().unwrap();
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "trellis-wrpc", "--example", "echo-server"])
            .env("CARGO_TARGET_DIR", target_dir)
            .status()
            .unwrap();
        assert!(status.success(), "failed to build the echo-server example");
    }
    path
}

async fn spawn_server(url: &str, delay_ms: u32) -> tokio::process::Child {
    let mut child = tokio::process::Command::new(echo_server_path())
        .args([url, PREFIX, &delay_ms.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line.as_deref(), Some("ready"));
    child
}

async fn call(client: &Client, payload: Bytes) -> Result<Vec<u8>, anyhow::Error> {
    let cx = CallContext {
        prefix: PREFIX.to_string(),
        headers: None,
        timeout: Some(DEADLINE),
    };
    let (mut params, mut results) = client
        .invoke(
            cx,
            "trellis-test:soak/echo",
            "echo",
            payload,
            Vec::<Box<[Option<usize>]>>::new(),
        )
        .await?;
    params.shutdown().await?;
    let mut out = Vec::new();
    results.read_to_end(&mut out).await?;
    Ok(out)
}

/// Subscriptions of the named connection, from the monitoring endpoint.
async fn subscriptions(monitoring: &str, name: &str) -> usize {
    let port: u16 = monitoring.rsplit(':').next().unwrap().parse().unwrap();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /connz?subs=1&limit=1000 HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    let connection = json["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no connection named {name}: {json}"));
    connection["subscriptions_list"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn concurrent_calls_survive_a_killed_server() {
    common::run(concurrent_calls_survive_a_killed_server_body());
}

async fn concurrent_calls_survive_a_killed_server_body() {
    let nats = NatsServer::start_with(NatsOptions {
        monitoring: true,
        ..NatsOptions::default()
    })
    .await
    .unwrap();
    let monitoring = nats.monitoring_url().unwrap();
    let mut victim = spawn_server(&nats.url(), 50).await;
    let _survivor = spawn_server(&nats.url(), 50).await;
    // The bound covers the calls, not building the example.
    let started = Instant::now();

    let connection = async_nats::ConnectOptions::new()
        .name("soak-client")
        .connect(nats.url())
        .await
        .unwrap();
    let transport = Transport::new(connection, TransportOptions::default())
        .await
        .unwrap();
    let client = transport.client();
    // Warm up (and prove both servers answer).
    assert_eq!(
        call(&client, Bytes::from_static(b"\x02hi")).await.unwrap(),
        b"\x02hi"
    );
    let baseline = subscriptions(&monitoring, "soak-client").await;
    assert_eq!(baseline, 1, "one inbox subscription per transport");

    for round in 0..3 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..CALLS {
            let client = client.clone();
            tasks.spawn(async move {
                let payload = Bytes::from(format!("\x08call{i:04}"));
                let begun = Instant::now();
                let result = call(&client, payload.clone()).await;
                (begun.elapsed(), result.map(|out| out == payload))
            });
        }
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            victim.start_kill().unwrap();
            victim.wait().await.unwrap();
        }
        let (mut ok, mut timeouts) = (0, 0);
        while let Some(joined) = tasks.join_next().await {
            let (elapsed, result) = joined.unwrap();
            assert!(elapsed <= DEADLINE + SLACK, "a call took {elapsed:?}");
            match result {
                Ok(true) => ok += 1,
                Ok(false) => panic!("wrong echo"),
                Err(error) => match error.chain().find_map(find_wrpc_error) {
                    Some(WrpcError::Timeout { .. }) if round == 0 => timeouts += 1,
                    _ => panic!("unexpected error in round {round}: {error:#}"),
                },
            }
        }
        eprintln!(
            "round {round}: {ok} ok, {timeouts} timed out, {:?} so far",
            started.elapsed()
        );
        assert_eq!(ok + timeouts, CALLS);
        assert!(ok > 0);
        assert_eq!(transport.open_calls(), 0);
    }
    assert_eq!(subscriptions(&monitoring, "soak-client").await, baseline);
    let stats = transport.stats();
    eprintln!("{stats:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
}
