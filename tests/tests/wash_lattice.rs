//! Lattice commands of the real `wash` against two real `trellis` hosts with
//! different labels: how a user addresses the lattice (flags and
//! `WASMCLOUD_*` variables), auctions with label constraints, `--skip-wait`,
//! and errors that name the unknown host or component and list what exists —
//! in text and JSON, with the exit code. (`tests/tests/wash.rs` covers the
//! happy path of each command on one host.)
//!
//! Build the binaries first: `cargo build -p trellis-host -p trellis-wash`.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests: a failed unwrap is the test failing; serde_json::Value indexing yields Null"
)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use trellis_tests::wash::{WashRun, run_wash, wash_binary};
use trellis_tests::{HostOptions, HostProcess, NatsServer, component_path, eventually};

/// How long one `wash` run may take; a hang fails the test.
const WASH_DEADLINE: Duration = Duration::from_secs(60);
/// How long a condition following a command may take.
const SETTLE: Duration = Duration::from_secs(20);

/// A lattice with an `east` and a `west` host.
struct Lattice {
    nats: NatsServer,
    east: HostProcess,
    west: HostProcess,
    name: &'static str,
    bin: PathBuf,
}

impl Lattice {
    async fn start(name: &'static str) -> Lattice {
        let nats = NatsServer::start().await.unwrap();
        let east = HostProcess::start(HostOptions::new(nats.url(), name).label("zone", "east"))
            .await
            .unwrap();
        let west = HostProcess::start(HostOptions::new(nats.url(), name).label("zone", "west"))
            .await
            .unwrap();
        Lattice {
            nats,
            east,
            west,
            name,
            bin: wash_binary().unwrap(),
        }
    }

    /// Runs `wash ARGS` with only the environment given: the lattice is
    /// addressed through `env` (or flags in `args`), nothing else.
    async fn run_env(&self, args: &[&str], env: &[(&str, String)]) -> WashRun {
        let mut command = tokio::process::Command::new(&self.bin);
        command.args(args);
        for var in [
            "WASMCLOUD_CTL_HOST",
            "WASMCLOUD_CTL_PORT",
            "WASMCLOUD_LATTICE",
            "WASMCLOUD_CTL_TIMEOUT_MS",
        ] {
            command.env_remove(var);
        }
        command.envs(env.iter().map(|(k, v)| (*k, v)));
        run_wash(command, args, WASH_DEADLINE).await.unwrap()
    }

    /// Runs `wash ARGS`, addressing the lattice through the `WASMCLOUD_*`
    /// variables a user exports once.
    async fn run(&self, args: &[&str]) -> WashRun {
        let env = [
            ("WASMCLOUD_CTL_HOST", "127.0.0.1".to_string()),
            ("WASMCLOUD_CTL_PORT", self.nats.port().to_string()),
            ("WASMCLOUD_LATTICE", self.name.to_string()),
        ];
        self.run_env(args, &env).await
    }

    /// `wash ARGS -o json`, which must succeed.
    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        let run = self.run(&args).await;
        assert!(run.success, "wash {args:?} failed:\n{}", run.all());
        run.json().unwrap()
    }

    /// `wash ARGS`, which must fail; its text and its JSON error.
    async fn fails(&self, args: &[&str]) -> (String, Value) {
        let text = self.run(args).await;
        assert!(!text.success, "wash {args:?} succeeded:\n{}", text.all());
        let mut json_args = args.to_vec();
        json_args.extend(["-o", "json"]);
        let json = self.run(&json_args).await;
        assert!(
            !json.success,
            "wash {json_args:?} succeeded:\n{}",
            json.all()
        );
        let json = json.json().unwrap();
        assert_eq!(json["success"], false, "{json}");
        (text.stderr, json)
    }
}

fn hello() -> String {
    format!("file://{}", component_path("http-hello").unwrap().display())
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_and_environment_address_the_lattice() {
    let lattice = Lattice::start("wash-env").await;
    let port = lattice.nats.port().to_string();

    // WASMCLOUD_* variables alone.
    let hosts = lattice.json(&["get", "hosts"]).await;
    let mut ids: Vec<&str> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![lattice.east.id(), lattice.west.id()];
    want.sort();
    assert_eq!(ids, want);

    // --ctl-host/--ctl-port/--lattice flags alone, before or after the command.
    for args in [
        vec![
            "--ctl-host",
            "127.0.0.1",
            "--ctl-port",
            &port,
            "-x",
            "wash-env",
            "get",
            "hosts",
        ],
        vec![
            "get",
            "hosts",
            "-r",
            "127.0.0.1",
            "-p",
            &port,
            "--lattice",
            "wash-env",
        ],
    ] {
        let run = lattice.run_env(&args, &[]).await;
        assert!(run.success, "{args:?}: {}", run.all());
        assert!(run.stdout.starts_with("HOST ID"), "{}", run.stdout);
        assert!(run.stdout.contains(lattice.east.id()), "{}", run.stdout);
        assert!(run.stdout.contains("zone=west"), "{}", run.stdout);
    }

    // A flag beats the environment: another lattice has no hosts.
    let run = lattice.run(&["get", "hosts", "-x", "wash-elsewhere"]).await;
    assert!(!run.success);
    assert!(
        run.stderr
            .contains("no host answered on lattice `wash-elsewhere`"),
        "{}",
        run.all()
    );

    // --timeout-ms is how long pings collect replies (and appears in the error).
    let run = lattice
        .run(&[
            "get",
            "hosts",
            "-x",
            "wash-elsewhere",
            "--timeout-ms",
            "300",
        ])
        .await;
    assert!(!run.success);
    assert!(run.stderr.contains("within 300 ms"), "{}", run.all());

    // A credentials file that is not there: named, with what to pass instead.
    let run = lattice
        .run(&["get", "hosts", "--ctl-credsfile", "/no/such/user.creds"])
        .await;
    assert!(!run.success);
    assert!(run.stderr.contains("/no/such/user.creds"), "{}", run.all());
    assert!(run.stderr.contains("--ctl-credsfile"), "{}", run.all());

    // Contexts (in a temporary wash directory) fill in what is not given.
    let home = tempfile::tempdir().unwrap();
    let home_env = ("WASH_HOME", home.path().display().to_string());
    let ctx = |args: &'static [&'static str]| {
        let (lattice, home_env) = (&lattice, home_env.clone());
        async move { lattice.run_env(args, &[home_env]).await }
    };
    let saved = lattice
        .run_env(
            &["ctx", "new", "lab", "-p", &port, "-x", "wash-env"],
            std::slice::from_ref(&home_env),
        )
        .await;
    assert!(saved.success, "{}", saved.all());
    assert!(
        saved.stdout.contains("Saved context `lab`"),
        "{}",
        saved.stdout
    );
    let run = ctx(&["get", "hosts", "--context", "lab", "-o", "json"]).await;
    assert!(run.success, "{}", run.all());
    assert_eq!(run.json().unwrap().as_array().unwrap().len(), 2);
    let run = ctx(&["ctx", "default", "lab"]).await;
    assert!(run.success, "{}", run.all());
    let list = ctx(&["ctx", "list", "-o", "json"]).await.json().unwrap();
    assert_eq!(list["default"], "lab", "{list}");
    assert_eq!(
        list["contexts"][0]["ctl_port"],
        lattice.nats.port(),
        "{list}"
    );
    let run = ctx(&["get", "hosts"]).await;
    assert!(
        run.success && run.stdout.contains(lattice.west.id()),
        "{}",
        run.all()
    );
    // A flag still beats the context.
    let run = ctx(&["get", "hosts", "-x", "wash-other", "--timeout-ms", "300"]).await;
    assert!(!run.success);
    assert!(run.stderr.contains("lattice `wash-other`"), "{}", run.all());
    let run = ctx(&["ctx", "del", "lab"]).await;
    assert!(run.success, "{}", run.all());
    let run = ctx(&["get", "hosts", "--context", "lab"]).await;
    assert!(!run.success);
    assert!(run.stderr.contains("no context `lab`"), "{}", run.all());
    assert!(run.stderr.contains("wash ctx new"), "{}", run.all());

    // Default port, nothing there (the test NATS is on a free port): the
    // error says which URL was tried and how to start NATS.
    let unused = trellis_tests::free_port().unwrap().to_string();
    let run = lattice
        .run_env(&["get", "hosts"], &[("WASMCLOUD_CTL_PORT", unused.clone())])
        .await;
    assert!(!run.success);
    assert!(
        run.stderr
            .contains(&format!("cannot reach NATS at nats://127.0.0.1:{unused}")),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("nats-server -js"), "{}", run.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn auctions_follow_label_constraints() {
    let lattice = Lattice::start("wash-auction").await;
    let (east, west) = (lattice.east.id(), lattice.west.id());
    let hello = hello();

    // Each constraint picks its host, for components and providers alike.
    let started = lattice
        .json(&[
            "start",
            "component",
            &hello,
            "hello-east",
            "-c",
            "zone=east",
        ])
        .await;
    assert_eq!(started["host_id"], east, "{started}");
    let started = lattice
        .json(&[
            "start",
            "component",
            &hello,
            "hello-west",
            "--constraint",
            "zone=west",
            "--max-instances",
            "2",
        ])
        .await;
    assert_eq!(started["host_id"], west, "{started}");
    let provider = lattice
        .json(&[
            "start",
            "provider",
            "builtin://http-server",
            "web",
            "-c",
            "zone=west",
        ])
        .await;
    assert_eq!(provider["host_id"], west, "{provider}");

    let inventory = lattice.json(&["get", "inventory", west]).await;
    assert_eq!(
        inventory["components"][0]["id"], "hello-west",
        "{inventory}"
    );
    assert_eq!(
        inventory["components"][0]["max_instances"], 2,
        "{inventory}"
    );
    assert_eq!(inventory["providers"][0]["id"], "web", "{inventory}");
    let inventory = lattice.json(&["get", "inventory", east]).await;
    assert_eq!(
        inventory["components"][0]["id"], "hello-east",
        "{inventory}"
    );
    assert_eq!(inventory["providers"], json!([]), "{inventory}");

    // Human output of an inventory across hosts names both hosts and ids.
    let text = lattice.run(&["get", "inventory"]).await;
    assert!(text.success, "{}", text.all());
    for needle in [
        east,
        west,
        "hello-east",
        "hello-west",
        "builtin://http-server",
    ] {
        assert!(
            text.stdout.contains(needle),
            "{needle} missing:\n{}",
            text.stdout
        );
    }

    // No host matches: the constraint is named, and nothing started.
    let (text, json) = lattice
        .fails(&[
            "start",
            "component",
            &hello,
            "hello-mars",
            "-c",
            "zone=mars",
        ])
        .await;
    assert!(text.contains("zone=mars"), "{text}");
    assert!(
        json["error"].as_str().unwrap().contains("zone=mars"),
        "{json}"
    );

    // --skip-wait returns once the host accepted; the component then appears.
    let run = lattice
        .run(&[
            "start",
            "component",
            &hello,
            "hello-quick",
            "-c",
            "zone=east",
            "--skip-wait",
        ])
        .await;
    assert!(run.success, "{}", run.all());
    assert!(run.stdout.contains("accepted"), "{}", run.stdout);
    eventually(SETTLE, || async {
        let inventory = lattice.json(&["get", "inventory", east]).await;
        let ids: Vec<&str> = inventory["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        anyhow::ensure!(ids.contains(&"hello-quick"), "{ids:?}");
        Ok(())
    })
    .await
    .unwrap();

    // Stopping without a host id finds the right host.
    let stopped = lattice.json(&["stop", "component", "hello-west"]).await;
    assert_eq!(stopped["host_ids"], json!([west]), "{stopped}");
    let stopped = lattice.json(&["stop", "provider", "web"]).await;
    assert_eq!(stopped["success"], true, "{stopped}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_hosts_and_components_are_named_with_what_exists() {
    let lattice = Lattice::start("wash-unknown").await;
    let (east, west) = (lattice.east.id(), lattice.west.id());
    let hello = hello();
    lattice
        .json(&["start", "component", &hello, "hello", "--host-id", east])
        .await;

    // Unknown host: named, and the hosts that answer are listed.
    for args in [
        vec!["get", "inventory", "NBOGUS"],
        vec!["label", "NBOGUS", "zone=x"],
        vec!["stop", "host", "NBOGUS"],
        vec!["scale", "component", "NBOGUS", &hello, "hello", "-c", "1"],
        vec!["start", "component", &hello, "x", "--host-id", "NBOGUS"],
    ] {
        let (text, json) = lattice.fails(&args).await;
        for needle in ["NBOGUS", east, west] {
            assert!(text.contains(needle), "{args:?}: {needle} missing: {text}");
        }
        let error = json["error"].as_str().unwrap();
        assert!(error.contains("NBOGUS") && error.contains(west), "{json}");
    }

    // Unknown component: named, with the components that do run.
    let (text, json) = lattice.fails(&["stop", "component", "nope"]).await;
    assert!(text.contains("`nope`"), "{text}");
    assert!(text.contains("running there are: hello"), "{text}");
    assert!(json["error"].as_str().unwrap().contains("hello"), "{json}");
    let (text, _) = lattice
        .fails(&["stop", "component", "hello", "--host-id", west])
        .await;
    assert!(text.contains(&format!("host `{west}`")), "{text}");
    assert!(text.contains("no component runs there"), "{text}");
    let (text, _) = lattice
        .fails(&["update", "component", "nope", &hello])
        .await;
    assert!(text.contains("`nope`") && text.contains("hello"), "{text}");

    // Unknown provider and config.
    let (text, _) = lattice.fails(&["stop", "provider", "nope"]).await;
    assert!(
        text.contains("provider `nope`") && text.contains("no provider runs"),
        "{text}"
    );
    let (text, _) = lattice.fails(&["config", "get", "nope"]).await;
    assert!(text.contains("no config named `nope`"), "{text}");
    assert!(text.contains("wash config put nope"), "{text}");

    // Queries that find nothing succeed, saying so.
    let links = lattice.run(&["get", "links"]).await;
    assert!(
        links.success && links.stdout.starts_with("No links"),
        "{}",
        links.all()
    );
    assert_eq!(lattice.json(&["link", "query"]).await, json!([]));
    let claims = lattice.run(&["get", "claims"]).await;
    assert!(
        claims.success && claims.stdout.starts_with("No claims"),
        "{}",
        claims.all()
    );
    assert_eq!(lattice.json(&["get", "claims"]).await, json!([]));

    // Config round trip in text form.
    let put = lattice
        .run(&["config", "put", "greeting", "lang=en", "tone=warm"])
        .await;
    assert!(put.success, "{}", put.all());
    let got = lattice.run(&["config", "get", "greeting"]).await;
    assert!(got.success, "{}", got.all());
    assert!(
        got.stdout.contains("lang") && got.stdout.contains("warm"),
        "{}",
        got.stdout
    );
    let del = lattice.json(&["config", "del", "greeting"]).await;
    assert_eq!(del["success"], true, "{del}");
}
