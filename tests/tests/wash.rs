//! The real `wash` binary against a real nats-server and real `trellis` hosts:
//! every command is run as a child process, and its effect is checked through
//! `wash` itself (inventory, links, config) and through the lattice (HTTP).
//!
//! Build both binaries first: `cargo build -p trellis-host -p trellis-wash`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use trellis_tests::wash::{WashRun as Run, run_wash, wash_binary};
use trellis_tests::{HostOptions, HostProcess, NatsServer, component_path, free_port};

use common::{WAIT, http_get, http_until};

/// How long one `wash` run may take: far above the longest default wait of a
/// command (60 s for a provider start), so a hang fails the test instead of
/// blocking it.
const WASH_DEADLINE: Duration = Duration::from_secs(120);

/// `wash` bound to one NATS server and lattice.
struct Wash {
    bin: PathBuf,
    nats_url: String,
    lattice: String,
}

impl Wash {
    fn new(nats_url: impl Into<String>, lattice: &str) -> anyhow::Result<Self> {
        Ok(Self {
            bin: wash_binary()?,
            nats_url: nats_url.into(),
            lattice: lattice.to_string(),
        })
    }

    /// Runs `wash ARGS --nats-url … --lattice …` (global flags go last, as a
    /// user may write them). The caller's `WASMCLOUD_*` variables are removed.
    async fn run(&self, args: &[&str]) -> anyhow::Result<Run> {
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .args(args)
            .args(["--nats-url", &self.nats_url, "--lattice", &self.lattice])
            .kill_on_drop(true);
        for var in [
            "WASMCLOUD_CTL_HOST",
            "WASMCLOUD_CTL_PORT",
            "WASMCLOUD_LATTICE",
            "WASMCLOUD_CTL_TIMEOUT_MS",
        ] {
            command.env_remove(var);
        }
        run_wash(command, args, WASH_DEADLINE).await
    }

    /// Runs `wash`; an error if it failed.
    async fn ok(&self, args: &[&str]) -> anyhow::Result<Run> {
        let run = self.run(args).await?;
        anyhow::ensure!(run.success, "wash {args:?} failed:\n{}", run.all());
        Ok(run)
    }

    /// Runs `wash … -o json` and parses stdout; an error if it failed.
    async fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        let run = self.ok(&args).await?;
        serde_json::from_str(&run.stdout)
            .with_context(|| format!("wash {args:?} printed no JSON:\n{}", run.stdout))
    }

    /// Runs `wash`, expecting it to fail; returns everything it printed.
    async fn fails(&self, args: &[&str]) -> anyhow::Result<String> {
        let run = self.run(args).await?;
        anyhow::ensure!(
            !run.success,
            "wash {args:?} should have failed:\n{}",
            run.all()
        );
        Ok(run.all())
    }
}

/// A nats-server, one host on `lattice`, and `wash` pointed at both.
async fn lattice_with_host(lattice: &str) -> anyhow::Result<(NatsServer, HostProcess, Wash)> {
    let nats = NatsServer::start().await?;
    let host = HostProcess::start(HostOptions::new(nats.url(), lattice)).await?;
    let wash = Wash::new(nats.url(), lattice)?;
    Ok((nats, host, wash))
}

fn file_ref(guest: &str) -> anyhow::Result<String> {
    Ok(format!("file://{}", component_path(guest)?.display()))
}

#[tokio::test(flavor = "multi_thread")]
async fn get_hosts_lists_the_host_and_errors_say_what_to_do() {
    let (nats, host, wash) = lattice_with_host("wash-hosts").await.unwrap();

    let hosts = wash.json(&["get", "hosts"]).await.unwrap();
    let hosts = hosts.as_array().expect("get hosts prints an array");
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0]["id"], host.id());
    assert_eq!(hosts[0]["lattice"], "wash-hosts");
    assert!(hosts[0]["labels"]["hostcore.os"].is_string(), "{hosts:?}");

    let text = wash.ok(&["get", "hosts"]).await.unwrap().stdout;
    assert!(text.starts_with("HOST ID"), "{text}");
    assert!(text.contains(host.id()), "{text}");
    let friendly = hosts[0]["friendly_name"].as_str().unwrap();
    assert!(text.contains(friendly), "{text}");

    // A host id nobody answers to is named in the error.
    let err = wash.fails(&["get", "inventory", "NBOGUS"]).await.unwrap();
    assert!(err.contains("NBOGUS"), "{err}");
    assert!(err.contains("wash get hosts"), "{err}");
    let err_json = wash
        .run(&["get", "inventory", "NBOGUS", "-o", "json"])
        .await
        .unwrap();
    assert!(!err_json.success);
    let err_json: Value = serde_json::from_str(&err_json.stdout).unwrap();
    assert_eq!(err_json["success"], false);
    assert!(
        err_json["error"].as_str().unwrap().contains("NBOGUS"),
        "{err_json}"
    );

    // Nothing listens on this port: NATS is unreachable, and wash says how to start it.
    // (`Wash::run` passes it as `wash get hosts --nats-url nats://127.0.0.1:{unused}`.)
    let unused = free_port().unwrap();
    let unreachable = Wash::new(format!("nats://127.0.0.1:{unused}"), "wash-hosts").unwrap();
    let err = unreachable.fails(&["get", "hosts"]).await.unwrap();
    assert!(err.contains("cannot reach NATS"), "{err}");
    assert!(
        err.contains(&format!("nats-server -js -p {unused}")),
        "{err}"
    );

    // A lattice without hosts: say so, and how to start one.
    let empty = Wash::new(nats.url(), "wash-nobody").unwrap();
    let err = empty.fails(&["get", "hosts"]).await.unwrap();
    assert!(
        err.contains("no host answered on lattice `wash-nobody`"),
        "{err}"
    );
    assert!(err.contains("trellis --nats-url"), "{err}");

    // An auction nobody can win names the constraint.
    let err = wash
        .fails(&[
            "start",
            "component",
            &file_ref("http-hello").unwrap(),
            "hello",
            "-c",
            "zone=nowhere",
        ])
        .await
        .unwrap();
    assert!(err.contains("zone=nowhere"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_link_serve_label_and_stop() {
    let (_nats, host, wash) = lattice_with_host("wash-flow").await.unwrap();
    let h = host.id();
    let hello = file_ref("http-hello").unwrap();

    let started = wash
        .json(&[
            "start",
            "component",
            &hello,
            "hello",
            "--host-id",
            h,
            "--max-instances",
            "2",
        ])
        .await
        .unwrap();
    assert_eq!(started["success"], true, "{started}");
    assert_eq!(started["host_id"], h);
    let inventory = wash.json(&["get", "inventory", h]).await.unwrap();
    assert_eq!(inventory["host_id"], h);
    let components = inventory["components"].as_array().unwrap();
    assert_eq!(components.len(), 1, "{inventory}");
    assert_eq!(components[0]["id"], "hello");
    assert_eq!(components[0]["max_instances"], 2);
    assert_eq!(components[0]["image_ref"], hello.as_str());

    // No --host-id: the provider is auctioned, and our only host wins.
    let provider = wash
        .json(&["start", "provider", "builtin://http-server", "web"])
        .await
        .unwrap();
    assert_eq!(provider["host_id"], h, "{provider}");

    let port = free_port().unwrap();
    let address = format!("address=127.0.0.1:{port}");
    wash.ok(&["config", "put", "web-addr", &address])
        .await
        .unwrap();
    let config = wash.json(&["config", "get", "web-addr"]).await.unwrap();
    assert_eq!(
        config,
        serde_json::json!({"address": format!("127.0.0.1:{port}")})
    );

    wash.ok(&[
        "link",
        "put",
        "web",
        "hello",
        "wasi",
        "http",
        "--interface",
        "incoming-handler",
        "--source-config",
        "web-addr",
    ])
    .await
    .unwrap();
    let links = wash.json(&["get", "links"]).await.unwrap();
    let links = links.as_array().unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0]["source_id"], "web");
    assert_eq!(links[0]["target"], "hello");
    assert_eq!(links[0]["source_config"], serde_json::json!(["web-addr"]));
    let body = http_until(port, "/", 200).await.unwrap();
    assert_eq!(body, "Hello from Trellis!\n");

    // The text inventory of every host shows both.
    let text = wash.ok(&["get", "inventory"]).await.unwrap().stdout;
    assert!(
        text.contains("hello") && text.contains("builtin://http-server"),
        "{text}"
    );

    wash.ok(&["label", h, "zone=eu-west"]).await.unwrap();
    let inventory = wash.json(&["get", "inventory", h]).await.unwrap();
    assert_eq!(inventory["labels"]["zone"], "eu-west", "{inventory}");
    wash.ok(&["label", h, "zone", "--delete"]).await.unwrap();
    let inventory = wash.json(&["get", "inventory", h]).await.unwrap();
    assert!(inventory["labels"].get("zone").is_none(), "{inventory}");
    let err = wash
        .fails(&["label", h, "hostcore.os=plan9"])
        .await
        .unwrap();
    assert!(err.contains(h) && err.contains("reserved"), "{err}");

    // No --host-id: wash finds the host from the inventories and waits for the event.
    let stopped = wash.json(&["stop", "component", "hello"]).await.unwrap();
    assert_eq!(stopped["host_ids"], serde_json::json!([h]), "{stopped}");
    let inventory = wash.json(&["get", "inventory", h]).await.unwrap();
    assert_eq!(
        inventory["components"],
        serde_json::json!([]),
        "{inventory}"
    );
    let (status, _) = http_get(port, "/").await.unwrap();
    assert_ne!(status, 200, "the stopped component still answers");
    let err = wash.fails(&["stop", "component", "hello"]).await.unwrap();
    assert!(
        err.contains("not running on any host of lattice `wash-flow`"),
        "{err}"
    );

    wash.ok(&["stop", "provider", "web"]).await.unwrap();
    let inventory = wash.json(&["get", "inventory", h]).await.unwrap();
    assert_eq!(inventory["providers"], serde_json::json!([]), "{inventory}");

    wash.ok(&["link", "del", "web", "wasi", "http"])
        .await
        .unwrap();
    assert_eq!(
        wash.json(&["link", "query"]).await.unwrap(),
        serde_json::json!([])
    );
    wash.ok(&["config", "del", "web-addr"]).await.unwrap();
    let err = wash.fails(&["config", "get", "web-addr"]).await.unwrap();
    assert!(err.contains("no config named `web-addr`"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_update_failures_and_stop_host() {
    let (_nats, mut host, wash) = lattice_with_host("wash-scale").await.unwrap();
    let h = host.id().to_string();
    let hello = file_ref("http-hello").unwrap();
    let config_guest = file_ref("http-config").unwrap();

    // Auctioned start, then an explicit scale.
    let started = wash
        .json(&["start", "component", &hello, "hello"])
        .await
        .unwrap();
    assert_eq!(started["host_id"], h.as_str());
    wash.ok(&[
        "scale",
        "component",
        &h,
        &hello,
        "hello",
        "-c",
        "3",
        "-a",
        "team=web",
    ])
    .await
    .unwrap();
    let inventory = wash.json(&["get", "inventory", &h]).await.unwrap();
    assert_eq!(
        inventory["components"][0]["max_instances"], 3,
        "{inventory}"
    );
    assert_eq!(
        inventory["components"][0]["annotations"]["team"], "web",
        "{inventory}"
    );

    // Serve it, then update it to another image: the new one answers.
    wash.ok(&[
        "start",
        "provider",
        "builtin://http-server",
        "web",
        "--host-id",
        &h,
    ])
    .await
    .unwrap();
    let port = free_port().unwrap();
    wash.ok(&[
        "config",
        "put",
        "web-addr",
        &format!("address=127.0.0.1:{port}"),
    ])
    .await
    .unwrap();
    wash.ok(&[
        "link",
        "put",
        "web",
        "hello",
        "wasi",
        "http",
        "--interface",
        "incoming-handler",
        "--source-config",
        "web-addr",
    ])
    .await
    .unwrap();
    assert_eq!(
        http_until(port, "/", 200).await.unwrap(),
        "Hello from Trellis!\n"
    );
    let same = wash
        .ok(&["update", "component", "hello", &hello])
        .await
        .unwrap()
        .stdout;
    assert!(same.contains("nothing to update"), "{same}");
    let updated = wash
        .json(&["update", "component", "hello", &config_guest])
        .await
        .unwrap();
    assert_eq!(
        updated["host_ids"],
        serde_json::json!([h.as_str()]),
        "{updated}"
    );
    let inventory = wash.json(&["get", "inventory", &h]).await.unwrap();
    assert_eq!(
        inventory["components"][0]["image_ref"],
        config_guest.as_str()
    );
    assert_eq!(
        inventory["components"][0]["max_instances"], 3,
        "{inventory}"
    );
    let (status, body) = http_get(port, "/missing-key").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "<unset>"));

    // A start that fails on the host reports the host's error and exits non-zero.
    let err = wash
        .fails(&[
            "start",
            "component",
            "file:///no/such/component.wasm",
            "broken",
            "--host-id",
            &h,
        ])
        .await
        .unwrap();
    assert!(
        err.contains(&format!("starting component `broken` failed on host `{h}`")),
        "{err}"
    );

    // Stop the host: wash waits for host_stopped, and the process exits.
    let stopped = wash.json(&["stop", "host", &h]).await.unwrap();
    assert_eq!(stopped["host_id"], h.as_str());
    let status = host.wait_exit(WAIT).await.unwrap();
    assert!(status.success(), "host exited with {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_need_no_lattice() {
    // Unreachable NATS on purpose: completions must not connect.
    let unreachable = format!("nats://127.0.0.1:{}", free_port().unwrap());
    let wash = Wash::new(unreachable, "none").unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = wash.ok(&["completions", shell]).await.unwrap().stdout;
        assert!(script.contains("wash"), "{shell}: {script}");
        assert!(
            script.contains("inventory"),
            "{shell} completion lacks subcommands"
        );
    }
}
