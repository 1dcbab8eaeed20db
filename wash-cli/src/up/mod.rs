//! `wash up` and `wash down`: a local lattice in one command.
//!
//! `wash up` reuses a NATS already listening on `--nats-port`, else runs
//! `nats-server` with JetStream (in [`nats`]); then starts `wadm` (unless one
//! already answers on the lattice) and a `trellis` host, waiting until each is
//! ready ([`ready`]). The processes ([`process`]) run in their own process
//! groups with PID and log files in the wash directory, so `wash down` — in
//! [`down`] — stops exactly what `wash up` started, and never a NATS or wadm it
//! merely reused. Detached (`-d`), wash returns once everything is ready;
//! otherwise it streams the host log ([`foreground`]) and stops everything on
//! Ctrl-C or SIGTERM.

pub mod down;
mod foreground;
mod nats;
pub mod process;
mod ready;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use trellis_interfaces::client::CtlClient;

use crate::app;
use crate::ctl::{ConnectionOpts, Lattice};
use crate::output::{OutputKind, Report};
use crate::parse;
use process::Service;

/// Default of `--startup-timeout-ms`: how long each process may take to get
/// ready. A debug host build initialises wasmtime and its buckets in a few
/// seconds; 30 s leaves room for a loaded machine.
pub const DEFAULT_STARTUP_TIMEOUT_MS: u64 = 30_000;
/// Default NATS client port, as in wash 1.x.
pub const DEFAULT_NATS_PORT: u16 = 4222;
/// How long the manifest deploy of `--wadm-manifest` waits for wadm's answers.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(10);
/// The file recording what `wash up` started.
const STATE_FILE: &str = "up.json";
/// The JetStream store directory inside the wash directory.
pub const JETSTREAM_DIR: &str = "jetstream";

/// `wash up`.
#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Leave the stack running in the background and return once it is ready
    #[arg(short = 'd', long = "detached")]
    pub detached: bool,
    /// Address NATS listens on (and wash connects to)
    #[arg(long = "nats-host", default_value = "127.0.0.1")]
    pub nats_host: String,
    /// NATS client port; a NATS already listening there is reused
    #[arg(long = "nats-port", default_value_t = DEFAULT_NATS_PORT)]
    pub nats_port: u16,
    /// Only connect to a running NATS; never start one
    #[arg(long = "nats-connect-only", conflicts_with = "nats_remote_url")]
    pub nats_connect_only: bool,
    /// Join an existing lattice: run the local NATS as a leaf node of this one (nats://HOST:7422)
    #[arg(long = "nats-remote-url")]
    pub nats_remote_url: Option<String>,
    /// Credentials file for the leaf-node connection to --nats-remote-url
    #[arg(long = "nats-credsfile", requires = "nats_remote_url")]
    pub nats_credsfile: Option<PathBuf>,
    /// JetStream domain of the local NATS (keeps a leaf node's JetStream apart from the hub's)
    #[arg(long = "nats-js-domain")]
    pub nats_js_domain: Option<String>,
    /// Lattice the host joins
    #[arg(short = 'x', long = "lattice", env = "WASMCLOUD_LATTICE", default_value = trellis_interfaces::subject::DEFAULT_LATTICE)]
    pub lattice: String,
    /// Host label `key=value` (repeatable)
    #[arg(short = 'l', long = "label", value_parser = parse::key_value)]
    pub labels: Vec<(String, String)>,
    /// Host seed (nkey `SN…`); a new host key is generated if absent
    #[arg(
        long = "host-seed",
        env = "WASMCLOUD_HOST_SEED",
        hide_env_values = true
    )]
    pub host_seed: Option<String>,
    /// Allow `file://` component references (on for a local stack; `--allow-file-load=false` to refuse them)
    #[arg(long = "allow-file-load", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub allow_file_load: bool,
    /// Allow OCI references tagged `latest` (or untagged)
    #[arg(long = "allow-latest")]
    pub allow_latest: bool,
    /// Registry the host may reach over plain HTTP (repeatable)
    #[arg(long = "allowed-insecure")]
    pub allowed_insecure: Vec<String>,
    /// Do not start wadm
    #[arg(long = "disable-wadm", conflicts_with = "wadm_manifest")]
    pub disable_wadm: bool,
    /// Deploy this wadm manifest once everything is up
    #[arg(long = "wadm-manifest")]
    pub wadm_manifest: Option<PathBuf>,
    /// Log filter of wadm and the host (`RUST_LOG` syntax)
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
    /// How long each process may take to get ready, in ms
    #[arg(long = "startup-timeout-ms", default_value_t = DEFAULT_STARTUP_TIMEOUT_MS)]
    pub startup_timeout_ms: u64,
    /// Directory for PID files, logs and JetStream data [default: $WASH_HOME, else ~/.wash]
    #[arg(long = "wash-dir")]
    pub wash_dir: Option<PathBuf>,
}

/// What `wash up` started, for `wash down` and for people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpState {
    /// The lattice the host joined.
    pub lattice: String,
    /// The NATS URL everything connects to.
    pub nats_url: String,
    /// The host's id.
    pub host_id: String,
    /// Whether wash started NATS (false: it reused one).
    pub nats_started: bool,
    /// Whether wash started wadm (false: reused or disabled).
    pub wadm_started: bool,
}

/// A process `wash up` started.
struct Running {
    service: Service,
    pid: u32,
    child: tokio::process::Child,
}

/// The processes started so far, stopped in reverse on failure or Ctrl-C.
struct Stack {
    dir: PathBuf,
    running: Vec<Running>,
}

impl Stack {
    /// Spawns `service` and records its PID file.
    fn spawn(
        &mut self,
        service: Service,
        binary: &Path,
        args: &[String],
        env: &[(&str, String)],
    ) -> anyhow::Result<&mut Running> {
        let log = service.log_file(&self.dir);
        // A fresh log per start: the tail quoted in errors is this run's.
        let _ = std::fs::remove_file(&log);
        let child = process::spawn(binary, args, env, &log)?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("{} exited at once", binary.display()))?;
        process::write_pid(&self.dir, service, pid)?;
        self.running.push(Running {
            service,
            pid,
            child,
        });
        self.running
            .last_mut()
            .ok_or_else(|| anyhow!("the started process was not recorded"))
    }

    /// Waits for the last started process to get ready.
    async fn wait_ready<F, Fut>(
        &mut self,
        timeout: Duration,
        what: &str,
        probe: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let dir = self.dir.clone();
        let running = self
            .running
            .last_mut()
            .ok_or_else(|| anyhow!("nothing was started"))?;
        let log = running.service.log_file(&dir);
        let mut starting = ready::Starting {
            service: running.service,
            child: &mut running.child,
            log: &log,
        };
        starting.wait(timeout, what, probe).await
    }

    /// Stops everything started, host first, and removes the PID files.
    async fn stop_all(&mut self) -> Vec<String> {
        let mut stopped = Vec::new();
        while let Some(mut running) = self.running.pop() {
            let outcome = process::terminate(running.pid, down::STOP_GRACE).await;
            let _ = running.child.try_wait();
            process::remove_pid(&self.dir, running.service);
            stopped.push(match outcome {
                Ok(_) => format!("{} (pid {})", running.service.name(), running.pid),
                Err(e) => format!("{} (pid {}): {e}", running.service.name(), running.pid),
            });
        }
        let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
        stopped
    }
}

/// Runs `wash up`. Detached, it returns the report; in the foreground it
/// prints the report itself, streams the host log until Ctrl-C, and returns
/// `None`.
pub async fn run(args: UpArgs, output: OutputKind) -> anyhow::Result<Option<Report>> {
    let dir = crate::washdir::resolve(args.wash_dir.clone())?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the wash directory {}", dir.display()))?;
    refuse_if_running(&dir)?;
    nats::check_remote(
        args.nats_remote_url.as_deref(),
        args.nats_credsfile.as_deref(),
    )?;
    if let Some(file) = &args.wadm_manifest
        && !file.is_file()
    {
        bail!("--wadm-manifest {} does not exist", file.display());
    }
    let mut stack = Stack {
        dir: dir.clone(),
        running: Vec::new(),
    };
    // Ctrl-C while starting stops what already runs (the children are in
    // their own process groups, so the signal reaches only wash).
    let started = tokio::select! {
        started = start(&args, &mut stack) => started,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted while starting; stopped what had started")),
    };
    let started = match started {
        Ok(started) => started,
        Err(error) => {
            stack.stop_all().await;
            return Err(error);
        }
    };
    let state_file = dir.join(STATE_FILE);
    std::fs::write(&state_file, serde_json::to_vec_pretty(&started.state)?)
        .with_context(|| format!("cannot write {}", state_file.display()))?;
    let mut report = started.report(&args, &dir, &stack);
    if let Some(file) = &args.wadm_manifest {
        report = deploy_manifest(report, file, &started.state).await;
    }
    if args.detached {
        return Ok(Some(report));
    }
    report.print(output);
    foreground::run(&mut stack, output).await?;
    Ok(None)
}

/// Refuses to start a second stack over a running one in the same directory.
fn refuse_if_running(dir: &Path) -> anyhow::Result<()> {
    for service in Service::STOP_ORDER {
        match process::read_pid(dir, service) {
            Some(pid) if process::runs(pid, service) => bail!(
                "`wash up` already runs {} (pid {pid}) from {}: stop it with `wash down`, or use \
                 another --wash-dir (or $WASH_HOME) for a second stack",
                service.binary_name(),
                dir.display()
            ),
            Some(_) => process::remove_pid(dir, service),
            None => {}
        }
    }
    Ok(())
}

/// What `start` brought up.
struct Started {
    state: UpState,
    nats_leaf_of: Option<String>,
}

async fn start(args: &UpArgs, stack: &mut Stack) -> anyhow::Result<Started> {
    let timeout = Duration::from_millis(args.startup_timeout_ms);
    let url = format!("nats://{}:{}", args.nats_host, args.nats_port);
    let nats_started = start_nats(args, stack, timeout).await?;
    let client = async_nats::ConnectOptions::new()
        .name("wash up")
        .connection_timeout(timeout)
        .connect(url.as_str())
        .await
        .map_err(|e| {
            anyhow!(
                "cannot connect to NATS at {url} ({e}): if it is not a NATS server, choose another --nats-port"
            )
        })?;

    let wadm_started = if args.disable_wadm || ready::wadm_answers(&client, &args.lattice).await {
        false
    } else {
        let binary = process::find_binary(Service::Wadm)?;
        let wadm_args = vec![
            "--nats-server".to_string(),
            format!("{}:{}", args.nats_host, args.nats_port),
        ];
        stack.spawn(
            Service::Wadm,
            &binary,
            &wadm_args,
            &[("RUST_LOG", args.log_level.clone())],
        )?;
        let what = format!("answer on wadm.api.{}.model.get", args.lattice);
        stack
            .wait_ready(timeout, &what, || {
                ready::wadm_answers(&client, &args.lattice)
            })
            .await?;
        true
    };

    let host_id = start_host(args, stack, &client, &url, timeout).await?;
    Ok(Started {
        state: UpState {
            lattice: args.lattice.clone(),
            nats_url: url,
            host_id,
            nats_started,
            wadm_started,
        },
        nats_leaf_of: args.nats_remote_url.clone(),
    })
}

/// Reuses a listening NATS, or starts one; whether wash started it.
async fn start_nats(args: &UpArgs, stack: &mut Stack, timeout: Duration) -> anyhow::Result<bool> {
    let (host, port) = (args.nats_host.as_str(), args.nats_port);
    if nats::is_listening(host, port).await {
        if args.nats_remote_url.is_some() {
            return Err(nats::reused_with_remote(host, port));
        }
        return Ok(false);
    }
    if args.nats_connect_only {
        bail!(
            "no NATS is listening on nats://{host}:{port} and --nats-connect-only forbids starting one: \
             start it with `nats-server -js -p {port}`, or drop --nats-connect-only"
        );
    }
    let binary = process::find_binary(Service::Nats)?;
    let config = nats::NatsConfig {
        host: host.to_string(),
        port,
        store_dir: stack.dir.join(JETSTREAM_DIR),
        js_domain: args.nats_js_domain.clone(),
        remote_url: args.nats_remote_url.clone(),
        credsfile: args.nats_credsfile.clone(),
    };
    let conf = nats::write_config(&stack.dir, &config)?;
    let nats_args = vec!["--config".to_string(), conf.display().to_string()];
    stack.spawn(Service::Nats, &binary, &nats_args, &[])?;
    let what = format!("accept connections on {host}:{port}");
    stack
        .wait_ready(timeout, &what, || nats::is_listening(host, port))
        .await?;
    Ok(true)
}

/// Starts the host with a key generated here (so its id is known) and waits
/// until it answers a ping.
async fn start_host(
    args: &UpArgs,
    stack: &mut Stack,
    client: &async_nats::Client,
    url: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let seed = match &args.host_seed {
        Some(seed) => seed.clone(),
        None => nkeys::KeyPair::new_server()
            .seed()
            .map_err(|e| anyhow!("cannot generate a host key: {e}"))?,
    };
    let host_id = nkeys::KeyPair::from_seed(&seed)
        .map_err(|e| anyhow!("--host-seed is not an nkey seed: {e}"))?
        .public_key();
    let binary = process::find_binary(Service::Host)?;
    let mut host_args = vec![
        "--nats-url".to_string(),
        url.to_string(),
        "--lattice".to_string(),
        args.lattice.clone(),
    ];
    for (key, value) in &args.labels {
        host_args.extend(["-l".to_string(), format!("{key}={value}")]);
    }
    if args.allow_file_load {
        host_args.push("--allow-file-load".to_string());
    }
    if args.allow_latest {
        host_args.push("--allow-latest".to_string());
    }
    for registry in &args.allowed_insecure {
        host_args.extend(["--allowed-insecure".to_string(), registry.clone()]);
    }
    if let Some(domain) = &args.nats_js_domain {
        host_args.extend(["--js-domain".to_string(), domain.clone()]);
    }
    // The seed goes through the environment, not argv, where `ps` would show it.
    let env = [
        ("TRELLIS_HOST_SEED", seed),
        ("RUST_LOG", args.log_level.clone()),
        ("NO_COLOR", "1".to_string()),
    ];
    stack.spawn(Service::Host, &binary, &host_args, &env)?;
    let ctl = CtlClient::new(client.clone(), args.lattice.clone());
    let what = format!("answer host.ping on lattice `{}`", args.lattice);
    stack
        .wait_ready(timeout, &what, || ready::host_answers(&ctl, &host_id))
        .await?;
    Ok(host_id)
}

impl Started {
    fn report(&self, args: &UpArgs, dir: &Path, stack: &Stack) -> Report {
        let entry = |service: Service, started: bool| {
            let pid = stack
                .running
                .iter()
                .find(|r| r.service == service)
                .map(|r| r.pid);
            json!({
                "started": started,
                "pid": pid,
                "log": started.then(|| service.log_file(dir)),
            })
        };
        let state = &self.state;
        let mut nats = entry(Service::Nats, state.nats_started);
        if let (Some(remote), Value::Object(fields)) = (&self.nats_leaf_of, &mut nats) {
            fields.insert("leaf_of".into(), json!(remote));
        }
        let wadm = entry(Service::Wadm, state.wadm_started);
        let host = entry(Service::Host, true);
        let line = |service: Service, what: String| {
            let detail = match stack.running.iter().find(|r| r.service == service) {
                Some(r) => format!(
                    "{what} (pid {}), log {}",
                    r.pid,
                    service.log_file(dir).display()
                ),
                None => what,
            };
            format!("  {:<5} {detail}", service.name())
        };
        let nats_what = match (state.nats_started, &self.nats_leaf_of) {
            (true, Some(remote)) => format!("started as a leaf node of {remote}"),
            (true, None) => "started".to_string(),
            (false, _) => "reused the server already listening".to_string(),
        };
        let wadm_what = if args.disable_wadm {
            "disabled".to_string()
        } else if state.wadm_started {
            "started".to_string()
        } else {
            "reused the wadm already answering".to_string()
        };
        let text = [
            format!(
                "Trellis is up: lattice `{}` on {}",
                state.lattice, state.nats_url
            ),
            line(Service::Nats, nats_what),
            line(Service::Wadm, wadm_what),
            line(Service::Host, state.host_id.clone()),
            if args.detached {
                "Stop it with `wash down`.".to_string()
            } else {
                "Streaming the host log; press Ctrl-C to stop everything.".to_string()
            },
        ]
        .join("\n");
        Report::action(
            text,
            json!({
                "lattice": state.lattice,
                "nats_url": state.nats_url,
                "host_id": state.host_id,
                "wash_dir": dir,
                "detached": args.detached,
                "nats": nats,
                "wadm": wadm,
                "host": host,
            }),
        )
    }
}

/// Deploys `--wadm-manifest` through the `wash app deploy` code path. A
/// failure is reported (wash exits non-zero) but leaves the stack running.
async fn deploy_manifest(report: Report, file: &Path, state: &UpState) -> Report {
    let connection = ConnectionOpts {
        ctl_host: crate::ctl::DEFAULT_CTL_HOST.to_string(),
        ctl_port: crate::ctl::DEFAULT_CTL_PORT,
        nats_url: Some(state.nats_url.clone()),
        lattice: state.lattice.clone(),
        timeout_ms: u64::try_from(DEPLOY_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
        ctl_credsfile: None,
        context: None,
        defaulted: Vec::new(),
    };
    // `wash up` reports the stack as soon as wadm accepted the manifest;
    // `wash app status NAME --watch` follows it from there.
    let command = app::AppCommand::Deploy(app::DeployArgs {
        name: file.display().to_string(),
        version: None,
        skip_wait: true,
        wait_timeout_ms: app::DEFAULT_DEPLOY_WAIT_MS,
    });
    let deployed = match Lattice::connect(&connection).await {
        Ok(lattice) => app::run(&lattice, DEPLOY_TIMEOUT, command, OutputKind::Json).await,
        Err(e) => Err(e),
    };
    match deployed {
        Ok(deployed) => report
            .with_field("manifest", deployed.json())
            .note(format!("deployed {}", file.display())),
        Err(e) => {
            let message = format!(
                "the stack is up, but deploying {} failed: {e:#}; fix it and run `wash app deploy {}`",
                file.display(),
                file.display()
            );
            report
                .with_field("success", json!(false))
                .with_field("manifest_error", json!(message))
                .fail(message)
        }
    }
}
