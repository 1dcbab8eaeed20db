//! Capability provider processes on a real `trellis` host and nats-server:
//! start, health, restart after a crash, stop, bad binaries, link and config
//! delivery, and provider archives (PAR) built with the real `wash`.
//!
//! Build first: `cargo build -p trellis-host -p trellis-wash -p system-info-provider`.
#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing yields Null on a missing key, it never panics"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers of the tests below: a failed step fails the test, at its line"
)]

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::{TestLattice, WAIT};
use futures::StreamExt as _;
use serde_json::Value;
use tempfile::TempDir;
use trellis_interfaces::client::CtlClient;
use trellis_interfaces::ctl::{StartProviderCommand, StopProviderCommand};
use trellis_interfaces::link::{DeleteInterfaceLinkDefinitionRequest, Link};
use trellis_interfaces::provider::{HealthCheckResponse, InterfaceLinkDefinition};
use trellis_tests::procs::Proc;
use trellis_tests::{HostOptions, HostProcess, eventually};

/// Host flags that make provider supervision fast enough for tests.
const FAST_PROVIDER_FLAGS: &[&str] = &[
    "--provider-health-initial-delay-ms",
    "200",
    "--provider-health-interval-ms",
    "500",
    "--provider-health-timeout-ms",
    "300",
    "--provider-startup-grace-ms",
    "1000",
    "--provider-restart-initial-ms",
    "500",
];

/// The startup grace and first restart delay above.
const GRACE: Duration = Duration::from_millis(1000);
const FIRST_RESTART: Duration = Duration::from_millis(500);

/// A provider script that runs until killed and never answers NATS.
const SLEEPER: &str = "#!/bin/sh\nexec /bin/sleep 3600\n";

fn fast_options(l: &TestLattice) -> HostOptions {
    FAST_PROVIDER_FLAGS
        .iter()
        .fold(l.host_options(), |o, a| o.arg(*a))
}

/// Scratch files (provider scripts, archives).
struct Scratch(TempDir);

impl Scratch {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    /// Writes `name` with `content` and `mode`; returns its `file://` ref.
    fn file(&self, name: &str, content: &[u8], mode: u32) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        format!("file://{}", path.display())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// A process as `/proc` shows it.
/// The host's child processes (its providers).
fn children(host: &HostProcess) -> Vec<Proc> {
    Proc::children_of(host.pid().unwrap())
}

/// Waits until the host has no zombie children.
async fn no_zombies(host: &HostProcess) {
    eventually(Duration::from_secs(5), || async {
        let zombies: Vec<Proc> = children(host)
            .into_iter()
            .filter(|p| p.state == 'Z')
            .collect();
        anyhow::ensure!(zombies.is_empty(), "zombie children: {zombies:?}");
        Ok(())
    })
    .await
    .unwrap();
}

/// Waits for exactly one running child whose command line contains `needle`.
async fn provider_pid(host: &HostProcess, needle: &str) -> u32 {
    eventually(WAIT, || async {
        let found: Vec<Proc> = children(host)
            .into_iter()
            .filter(|p| p.state != 'Z' && p.cmdline.contains(needle))
            .collect();
        match found.as_slice() {
            [one] => Ok(one.pid),
            other => anyhow::bail!("expected one provider process `{needle}`, found {other:?}"),
        }
    })
    .await
    .unwrap()
}

/// Whether `pid` no longer exists (neither running nor a zombie).
fn gone(pid: u32) -> bool {
    Proc::of(pid).is_none()
}

async fn start(l: &TestLattice, host: &HostProcess, id: &str, image_ref: &str, config: &[&str]) {
    let resp = l
        .ctl
        .start_provider(&StartProviderCommand {
            provider_id: id.into(),
            provider_ref: image_ref.into(),
            host_id: host.id().into(),
            config: config.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
}

async fn wait_event(l: &mut TestLattice, ty: &str, id: &str) -> Value {
    let id = id.to_string();
    l.events
        .wait_for_type(ty, |e| e["data"]["provider_id"] == id.as_str(), WAIT)
        .await
        .unwrap()
}

/// Starts `image_ref` and returns the `provider_start_failed` error text.
async fn start_fails(l: &mut TestLattice, host: &HostProcess, id: &str, image_ref: &str) -> String {
    start(l, host, id, image_ref, &[]).await;
    let id_owned = id.to_string();
    let ev = l
        .events
        .wait_for(
            |e| {
                let ty = e["type"].as_str().unwrap_or_default();
                (ty.ends_with("provider_start_failed") || ty.ends_with("provider_started"))
                    && e["data"]["provider_id"] == id_owned.as_str()
            },
            WAIT,
        )
        .await
        .unwrap();
    assert!(
        ev["type"]
            .as_str()
            .unwrap()
            .ends_with("provider_start_failed"),
        "{id} should not start: {ev}"
    );
    ev["data"]["error"].as_str().unwrap().to_string()
}

async fn inventory_ids(l: &TestLattice, host: &HostProcess) -> Vec<String> {
    l.ctl
        .get_host_inventory(host.id())
        .await
        .unwrap()
        .providers
        .into_iter()
        .map(|p| p.id)
        .collect()
}

async fn inventory_becomes(l: &TestLattice, host: &HostProcess, want: &[&str]) {
    eventually(WAIT, || async {
        let ids = inventory_ids(l, host).await;
        anyhow::ensure!(ids == want, "inventory providers {ids:?}, want {want:?}");
        Ok(())
    })
    .await
    .unwrap();
}

/// A control client that waits long enough for a provider's stop sequence.
fn patient_ctl(l: &TestLattice) -> CtlClient {
    CtlClient::new(l.client.clone(), l.lattice.clone()).with_timeout(Duration::from_secs(15))
}

async fn stop(l: &TestLattice, host: &HostProcess, id: &str) {
    let resp = patient_ctl(l)
        .stop_provider(&StopProviderCommand {
            host_id: host.id().into(),
            provider_id: id.into(),
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_binaries_fail_to_start_with_the_reason_and_leave_no_zombies() {
    let mut l = TestLattice::start().await.unwrap();
    let host = HostProcess::start(fast_options(&l)).await.unwrap();
    let s = Scratch::new();

    let exits = s.file(
        "exits",
        b"#!/bin/sh\necho 'cannot find my config' >&2\nexit 3\n",
        0o755,
    );
    let error = start_fails(&mut l, &host, "exits", &exits).await;
    assert!(error.contains("exited with status 3"), "{error}");
    assert!(error.contains("cannot find my config"), "{error}");

    // Kilobytes of binary junk without a newline on stdout, then a crash.
    let garbage = s.file(
        "garbage",
        b"#!/bin/sh\ni=0\nwhile [ $i -lt 3000 ]; do printf '\\377\\376\\001junk\\033[31m'; i=$((i+1)); done\nprintf '\\377 broken \\n' >&2\nkill -SEGV $$\n",
        0o755,
    );
    let error = start_fails(&mut l, &host, "garbage", &garbage).await;
    assert!(error.contains("killed by signal 11 (SIGSEGV)"), "{error}");
    assert!(error.contains("broken"), "{error}");

    let not_executable = s.file("not-executable", SLEEPER.as_bytes(), 0o644);
    let error = start_fails(&mut l, &host, "noexec", &not_executable).await;
    assert!(error.contains("cannot execute"), "{error}");
    assert!(error.contains("Permission denied"), "{error}");

    let not_a_program = s.file("not-a-program", &[0x13u8; 64], 0o755);
    let error = start_fails(&mut l, &host, "noformat", &not_a_program).await;
    assert!(error.contains("cannot execute"), "{error}");
    assert!(
        error.to_lowercase().contains("exec format error"),
        "{error}"
    );

    let missing = format!("file://{}", s.path("missing").display());
    let error = start_fails(&mut l, &host, "missing", &missing).await;
    assert!(error.contains("cannot read"), "{error}");

    // A failed start leaves nothing behind: the id is free again, the host
    // answers, nothing is in the inventory, no zombie remains.
    let error = start_fails(&mut l, &host, "exits", &exits).await;
    assert!(error.contains("exited with status 3"), "{error}");
    assert_eq!(l.ctl.ping_hosts().await.unwrap().len(), 1);
    assert!(inventory_ids(&l, &host).await.is_empty());
    no_zombies(&host).await;
    assert!(children(&host).is_empty(), "{:?}", children(&host));

    // Provider ids become NATS subject tokens.
    let err = l
        .ctl
        .start_provider(&StartProviderCommand {
            provider_id: "a.b".into(),
            provider_ref: exits.clone(),
            host_id: host.id().into(),
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("single NATS subject token"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn file_providers_need_allow_file_load() {
    let mut l = TestLattice::start().await.unwrap();
    let mut opts = fast_options(&l);
    opts.allow_file_load = false;
    let host = HostProcess::start(opts).await.unwrap();
    let s = Scratch::new();
    let sleeper = s.file("sleeper", SLEEPER.as_bytes(), 0o755);
    let error = start_fails(&mut l, &host, "p", &sleeper).await;
    assert!(error.contains("--allow-file-load"), "{error}");
    // And the host does not bid for what it cannot run.
    let acks = l
        .ctl
        .auction_provider(trellis_interfaces::ctl::ProviderAuctionRequest {
            provider_ref: sleeper,
            provider_id: "p".into(),
            constraints: Default::default(),
        })
        .await
        .unwrap();
    assert!(acks.is_empty(), "{acks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_provider_fails_health_checks_and_a_stubborn_one_is_killed_on_stop() {
    let mut l = TestLattice::start().await.unwrap();
    let host = HostProcess::start(fast_options(&l)).await.unwrap();
    let s = Scratch::new();
    // Ignores SIGTERM (inherited by the exec'd sleep), never answers NATS.
    let stubborn = s.file(
        "stubborn",
        b"#!/bin/sh\ntrap '' TERM\nexec /bin/sleep 3601\n",
        0o755,
    );
    let acks = l
        .ctl
        .auction_provider(trellis_interfaces::ctl::ProviderAuctionRequest {
            provider_ref: stubborn.clone(),
            provider_id: "stubborn".into(),
            constraints: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(acks.len(), 1, "{acks:?}");
    start(&l, &host, "stubborn", &stubborn, &[]).await;
    let started = wait_event(&mut l, "provider_started", "stubborn").await;
    assert_eq!(started["data"]["host_id"], host.id());
    assert_eq!(started["data"]["image_ref"], stubborn.as_str());
    inventory_becomes(&l, &host, &["stubborn"]).await;
    let pid = provider_pid(&host, "3601").await;

    // Already running: refused, as wasmCloud.
    let err = l
        .ctl
        .start_provider(&StartProviderCommand {
            provider_id: "stubborn".into(),
            provider_ref: stubborn.clone(),
            host_id: host.id().into(),
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already running"), "{err}");

    wait_event(&mut l, "health_check_failed", "stubborn").await;
    // Later checks that fail too are status events, not new failures.
    wait_event(&mut l, "health_check_status", "stubborn").await;
    eventually(WAIT, || async {
        let log = host.log_tail(400);
        anyhow::ensure!(
            log.contains("provider health check failed")
                && log.contains("nothing answers on wasmbus.rpc.test.stubborn.health"),
            "not in log yet"
        );
        Ok(())
    })
    .await
    .unwrap();

    let before = Instant::now();
    stop(&l, &host, "stubborn").await;
    let stopped = wait_event(&mut l, "provider_stopped", "stubborn").await;
    assert_eq!(stopped["data"]["reason"], "stop");
    // Shutdown request (300 ms), voluntary exit (300 ms), SIGTERM ignored
    // (2 s), then SIGKILL.
    assert!(
        before.elapsed() >= Duration::from_secs(2),
        "{:?}",
        before.elapsed()
    );
    assert!(gone(pid), "provider process {pid} still exists");
    assert!(inventory_ids(&l, &host).await.is_empty());
    no_zombies(&host).await;
    assert_eq!(l.ctl.ping_hosts().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_provider_restarts_with_backoff() {
    let mut l = TestLattice::start().await.unwrap();
    let host = HostProcess::start(fast_options(&l)).await.unwrap();
    let s = Scratch::new();
    let sleeper = s.file("sleeper", b"#!/bin/sh\nexec /bin/sleep 3602\n", 0o755);
    start(&l, &host, "crashy", &sleeper, &[]).await;
    wait_event(&mut l, "provider_started", "crashy").await;
    inventory_becomes(&l, &host, &["crashy"]).await;

    let mut delays = Vec::new();
    for _ in 0..2 {
        let pid = provider_pid(&host, "3602").await;
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        let killed = Instant::now();
        let stopped = wait_event(&mut l, "provider_stopped", "crashy").await;
        let reason = stopped["data"]["reason"].as_str().unwrap();
        assert!(reason.contains("killed by signal 9"), "{reason}");
        // Out of the inventory while down…
        inventory_becomes(&l, &host, &[]).await;
        // …and back after the backoff and the startup grace.
        wait_event(&mut l, "provider_started", "crashy").await;
        delays.push(killed.elapsed());
        inventory_becomes(&l, &host, &["crashy"]).await;
        assert!(gone(pid));
    }
    assert!(delays[0] >= FIRST_RESTART + GRACE, "{delays:?}");
    assert!(delays[1] >= FIRST_RESTART * 2 + GRACE, "{delays:?}");
    no_zombies(&host).await;

    stop(&l, &host, "crashy").await;
    wait_event(&mut l, "provider_stopped", "crashy").await;
    inventory_becomes(&l, &host, &[]).await;
    assert!(children(&host).is_empty(), "{:?}", children(&host));
}

#[tokio::test(flavor = "multi_thread")]
async fn host_stop_stops_its_providers() {
    let mut l = TestLattice::start().await.unwrap();
    let mut host = HostProcess::start(fast_options(&l)).await.unwrap();
    let s = Scratch::new();
    let sleeper = s.file("sleeper", b"#!/bin/sh\nexec /bin/sleep 3603\n", 0o755);
    start(&l, &host, "p1", &sleeper, &[]).await;
    wait_event(&mut l, "provider_started", "p1").await;
    let pid = provider_pid(&host, "3603").await;
    host.signal_term().unwrap();
    wait_event(&mut l, "provider_stopped", "p1").await;
    host.wait_exit(WAIT).await.unwrap();
    assert!(gone(pid), "provider {pid} outlived its host");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sdk_provider_exits_when_its_host_is_killed() {
    // SIGKILL gives the host no chance to stop its providers: a provider on
    // the SDK notices it was re-parented and shuts down by itself.
    let mut l = TestLattice::start().await.unwrap();
    let mut host = HostProcess::start(fast_options(&l)).await.unwrap();
    let image_ref = format!("file://{}", system_info_binary().display());
    start(&l, &host, "orphan", &image_ref, &[]).await;
    wait_event(&mut l, "provider_started", "orphan").await;
    let pid = provider_pid(&host, "system-info-provider").await;
    host.kill().await.unwrap();
    eventually(WAIT, || async {
        match Proc::of(pid) {
            Some(p) if !p.exited() => anyhow::bail!("provider {pid} still runs: {p:?}"),
            _ => Ok(()),
        }
    })
    .await
    .unwrap();
}

// ---- the SDK's example provider -------------------------------------------

fn system_info_binary() -> PathBuf {
    trellis_tests::host::workspace_binary(
        "system-info-provider",
        "SYSTEM_INFO_PROVIDER_BIN",
        "system-info-provider",
    )
    .unwrap()
}

/// Asks the provider for its health directly.
async fn health(l: &TestLattice, id: &str) -> anyhow::Result<HealthCheckResponse> {
    let msg = l
        .client
        .request(format!("wasmbus.rpc.{}.{id}.health", l.lattice), "".into())
        .await?;
    Ok(serde_json::from_slice(&msg.payload)?)
}

async fn health_message_contains(l: &TestLattice, id: &str, needle: &str) {
    eventually(WAIT, || async {
        let h = health(l, id).await?;
        let message = h.message.unwrap_or_default();
        anyhow::ensure!(h.healthy && message.contains(needle), "health: {message}");
        Ok(())
    })
    .await
    .unwrap();
}

fn link_to(provider: &str) -> Link {
    Link {
        source_id: "caller".into(),
        target: provider.into(),
        name: "default".into(),
        wit_namespace: "trellis".into(),
        wit_package: "system-info".into(),
        interfaces: vec!["info".into()],
        source_config: vec![],
        target_config: vec!["si-link".into()],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_put_while_the_provider_starts_reaches_it() {
    // The link is put right after `provider.start` is acknowledged, while
    // the process is still starting and not yet subscribed: the host
    // delivers it again once the provider listens.
    let l = TestLattice::start().await.unwrap();
    let host = HostProcess::start(fast_options(&l)).await.unwrap();
    let image_ref = format!("file://{}", system_info_binary().display());
    l.ctl
        .put_config(
            "si-link",
            &HashMap::from([("token".to_string(), "t1".to_string())]),
        )
        .await
        .unwrap();
    start(&l, &host, "early", &image_ref, &[]).await;
    let resp = l.ctl.put_link(&link_to("early")).await.unwrap();
    assert!(resp.success, "{}", resp.message);
    health_message_contains(&l, "early", "1 linked component(s)").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn system_info_starts_is_healthy_gets_links_and_config_restarts_and_stops() {
    let mut l = TestLattice::start().await.unwrap();
    let host = HostProcess::start(fast_options(&l)).await.unwrap();
    let binary = system_info_binary();
    let image_ref = format!("file://{}", binary.display());
    let id = "sysinfo";
    l.ctl
        .put_config(
            "si-own",
            &HashMap::from([("alpha".to_string(), "1".to_string())]),
        )
        .await
        .unwrap();
    l.ctl
        .put_config(
            "si-link",
            &HashMap::from([("token".to_string(), "t1".to_string())]),
        )
        .await
        .unwrap();
    // An observer of link deliveries on the id subject.
    let mut puts = l
        .client
        .subscribe(format!("wasmbus.rpc.{}.{id}.linkdefs.put", l.lattice))
        .await
        .unwrap();
    let mut dels = l
        .client
        .subscribe(format!("wasmbus.rpc.{}.{id}.linkdefs.del", l.lattice))
        .await
        .unwrap();
    trellis_tests::nats::synced(&l.client).await.unwrap();

    start(&l, &host, id, &image_ref, &["si-own"]).await;
    wait_event(&mut l, "provider_started", id).await;
    wait_event(&mut l, "health_check_passed", id).await;
    inventory_becomes(&l, &host, &[id]).await;
    health_message_contains(&l, id, "0 linked component(s); config keys: [alpha]").await;

    // A link to the provider is delivered, config resolved.
    let resp = l.ctl.put_link(&link_to(id)).await.unwrap();
    assert!(resp.success, "{}", resp.message);
    let msg = tokio::time::timeout(WAIT, puts.next())
        .await
        .unwrap()
        .unwrap();
    let def: InterfaceLinkDefinition = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(def.source_id, "caller");
    assert_eq!(def.target, id);
    assert_eq!(
        def.target_config.get("token").map(String::as_str),
        Some("t1")
    );
    health_message_contains(&l, id, "1 linked component(s)").await;

    // Named config changes reach it.
    l.ctl
        .put_config(
            "si-own",
            &HashMap::from([
                ("alpha".to_string(), "1".to_string()),
                ("beta".to_string(), "2".to_string()),
            ]),
        )
        .await
        .unwrap();
    health_message_contains(&l, id, "config keys: [alpha,beta]").await;

    // kill -9: restarted, links and config re-delivered through HostData.
    let pid = provider_pid(&host, "system-info-provider").await;
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let stopped = wait_event(&mut l, "provider_stopped", id).await;
    assert!(
        stopped["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("signal 9"),
        "{stopped}"
    );
    wait_event(&mut l, "provider_started", id).await;
    wait_event(&mut l, "health_check_passed", id).await;
    inventory_becomes(&l, &host, &[id]).await;
    health_message_contains(&l, id, "1 linked component(s); config keys: [alpha,beta]").await;
    assert_ne!(provider_pid(&host, "system-info-provider").await, pid);

    // Link deletion is delivered too.
    let resp = l
        .ctl
        .delete_link(&DeleteInterfaceLinkDefinitionRequest {
            source_id: "caller".into(),
            name: "default".into(),
            wit_namespace: "trellis".into(),
            wit_package: "system-info".into(),
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
    let msg = tokio::time::timeout(WAIT, dels.next())
        .await
        .unwrap()
        .unwrap();
    let def: InterfaceLinkDefinition = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(
        (def.source_id.as_str(), def.target.as_str()),
        ("caller", id)
    );
    health_message_contains(&l, id, "0 linked component(s)").await;

    // A well-behaved provider exits on the shutdown request.
    let pid = provider_pid(&host, "system-info-provider").await;
    let before = Instant::now();
    stop(&l, &host, id).await;
    let stopped = wait_event(&mut l, "provider_stopped", id).await;
    assert_eq!(stopped["data"]["reason"], "stop");
    assert!(
        before.elapsed() < Duration::from_secs(2),
        "{:?}",
        before.elapsed()
    );
    assert!(gone(pid));
    inventory_becomes(&l, &host, &[]).await;
    no_zombies(&host).await;
}

// ---- provider archives -----------------------------------------------------

fn wash_binary() -> PathBuf {
    trellis_tests::host::workspace_binary("wash", "WASH_BIN", "trellis-wash").unwrap()
}

/// `wash par create` around `binary`; returns the archive path.
fn par_create(
    s: &Scratch,
    binary: &Path,
    arch: Option<&str>,
    dest: &str,
    account: &str,
) -> PathBuf {
    let service = nkeys::KeyPair::new_service().seed().unwrap();
    let dest = s.path(dest);
    let mut args = vec![
        "par".to_string(),
        "create".into(),
        "--binary".into(),
        binary.display().to_string(),
        "--name".into(),
        "sleeper".into(),
        "--vendor".into(),
        "trellis-tests".into(),
        "--version".into(),
        "1.2.3".into(),
        "--issuer".into(),
        account.into(),
        "--subject".into(),
        service,
        "--destination".into(),
        dest.display().to_string(),
    ];
    if let Some(arch) = arch {
        args.extend(["--arch".to_string(), arch.to_string()]);
    }
    let out = std::process::Command::new(wash_binary())
        .args(&args)
        .env("WASH_KEYS", s.path("keys"))
        .output()
        .context("run wash")
        .unwrap();
    assert!(
        out.status.success(),
        "wash par create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dest
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_archives_are_verified_and_run() {
    let mut l = TestLattice::start().await.unwrap();
    let account = nkeys::KeyPair::new_account();
    let other = nkeys::KeyPair::new_account();
    let s = Scratch::new();
    let marker = "# a provider archive around a script, padding the binary: 0123456789\n";
    let script = format!("#!/bin/sh\n{marker}exec /bin/sleep 3604\n");
    s.file("sleeper.sh", script.as_bytes(), 0o644);
    let binary = s.path("sleeper.sh");
    let archive = par_create(&s, &binary, None, "sleeper.par", &account.seed().unwrap());
    let registry = trellis_tests::OciRegistry::start_with_layer_type(
        "trellis/sleeper",
        "1.2.3",
        std::fs::read(&archive).unwrap(),
        "application/vnd.wasmcloud.provider.archive.layer.v1+par",
    )
    .await
    .unwrap();
    let host = HostProcess::start(
        fast_options(&l)
            .arg("--allowed-insecure")
            .arg(registry.host())
            .arg("--cache-dir")
            .arg(s.path("cache").display().to_string())
            .arg("--require-signed")
            .arg("--allowed-issuers")
            .arg(account.public_key()),
    )
    .await
    .unwrap();

    // A bare binary has no claims: refused under --require-signed.
    let bare = s.file("bare", SLEEPER.as_bytes(), 0o755);
    let error = start_fails(&mut l, &host, "bare", &bare).await;
    assert!(error.contains("--require-signed"), "{error}");

    // A signed archive runs (mode 0755 from the cache, though the input was 0644).
    let image_ref = format!("file://{}", archive.display());
    start(&l, &host, "par", &image_ref, &[]).await;
    let started = wait_event(&mut l, "provider_started", "par").await;
    assert_eq!(
        started["data"]["claims"]["issuer"],
        account.public_key().as_str()
    );
    assert_eq!(started["data"]["claims"]["name"], "sleeper");
    assert_eq!(started["data"]["claims"]["version"], "1.2.3");
    inventory_becomes(&l, &host, &["par"]).await;
    // The inventory names the provider as its claims do.
    let listed = l.ctl.get_host_inventory(host.id()).await.unwrap().providers;
    assert_eq!(listed[0].name.as_deref(), Some("sleeper"), "{listed:?}");
    provider_pid(&host, "3604").await;
    let cached = std::fs::read_dir(s.path("cache").join("providers"))
        .unwrap()
        .count();
    assert_eq!(cached, 1);
    stop(&l, &host, "par").await;
    wait_event(&mut l, "provider_stopped", "par").await;

    // The same archive from an OCI registry; same binary, same cache entry.
    let oci_ref = format!("{}/trellis/sleeper:1.2.3", registry.host());
    start(&l, &host, "oci-par", &oci_ref, &[]).await;
    let started = wait_event(&mut l, "provider_started", "oci-par").await;
    assert_eq!(started["data"]["claims"]["name"], "sleeper");
    inventory_becomes(&l, &host, &["oci-par"]).await;
    assert!(registry.requests() > 0);
    stop(&l, &host, "oci-par").await;
    wait_event(&mut l, "provider_stopped", "oci-par").await;
    let cached = std::fs::read_dir(s.path("cache").join("providers"))
        .unwrap()
        .count();
    assert_eq!(cached, 1);

    // One byte of the binary changed inside the tar: refused, named.
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .unwrap();
    bytes[at + 5] ^= 0x01;
    let tampered = s.file("tampered.par", &bytes, 0o644);
    let error = start_fails(&mut l, &host, "tampered", &tampered).await;
    assert!(error.contains("hash mismatch for target"), "{error}");
    assert!(error.contains("modified after signing"), "{error}");

    // No binary for this machine: the error lists what the archive has.
    let foreign = par_create(
        &s,
        &binary,
        Some("riscv64-plan9"),
        "foreign.par",
        &account.seed().unwrap(),
    );
    let error = start_fails(
        &mut l,
        &host,
        "foreign",
        &format!("file://{}", foreign.display()),
    )
    .await;
    assert!(error.contains("(it has: riscv64-plan9)"), "{error}");

    // Signed by an issuer this host does not allow.
    let stranger = par_create(&s, &binary, None, "stranger.par", &other.seed().unwrap());
    let error = start_fails(
        &mut l,
        &host,
        "stranger",
        &format!("file://{}", stranger.display()),
    )
    .await;
    assert!(error.contains("not in --allowed-issuers"), "{error}");
    no_zombies(&host).await;
}
