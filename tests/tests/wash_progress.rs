//! `wash app deploy` and `wash app status --watch` against a real `wadm` and
//! `trellis` host: the progress lines (plain appended lines, stdout not being
//! a terminal) until `deployed` or `failed`, the final status alone with
//! `--output json`, and the exit codes for success, failure and a timeout;
//! `app versions` and the error wadm 0.21 gives for `app history`.
//!
//! Build the binaries first: `cargo build -p trellis-host -p trellis-wadm -p trellis-wash`.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests: a failed unwrap is the test failing; serde_json::Value indexing yields Null"
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use trellis_tests::wash::{WashRun, run_wash, wash_binary};
use trellis_tests::{HostOptions, HostProcess, NatsServer, WadmProcess, component_path};

/// How long one `wash` run may take; a hang fails the test.
const WASH_DEADLINE: Duration = Duration::from_secs(90);
const LATTICE: &str = "progress";

struct Stack {
    nats: NatsServer,
    _wadm: WadmProcess,
    _host: Option<HostProcess>,
    dir: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Stack {
        Stack::start_with(true).await
    }

    /// Without a host, wadm keeps a deployed application `waiting`.
    async fn start_with(host: bool) -> Stack {
        let nats = NatsServer::start().await.unwrap();
        let wadm = WadmProcess::start(&nats.url(), LATTICE, &[]).await.unwrap();
        let host = if host {
            Some(
                HostProcess::start(HostOptions::new(nats.url(), LATTICE))
                    .await
                    .unwrap(),
            )
        } else {
            None
        };
        Stack {
            nats,
            _wadm: wadm,
            _host: host,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A manifest `name` with one spreadscaled component from `image`.
    fn manifest(&self, name: &str, image: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.yaml"));
        let yaml = format!(
            "apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: v0.1.0
spec:
  components:
    - name: pong
      type: component
      properties:
        image: {image}
      traits:
        - type: spreadscaler
          properties:
            instances: 2
"
        );
        std::fs::write(&path, yaml).unwrap();
        path
    }

    async fn run(&self, args: &[&str]) -> WashRun {
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
        run_wash(command, args, WASH_DEADLINE).await.unwrap()
    }
}

fn ponger() -> PathBuf {
    component_path("ponger").unwrap()
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[tokio::test]
async fn deploy_follows_the_status_until_deployed() {
    let ponger = tokio::task::spawn_blocking(ponger).await.unwrap();
    let stack = Stack::start().await;
    let good = stack.manifest("pongapp", &file_url(&ponger));

    let deploy = stack.run(&["app", "deploy", good.to_str().unwrap()]).await;
    assert!(deploy.success, "{}", deploy.all());
    // Progress as appended lines (stdout is a pipe), each scaler by kind and
    // name, ending deployed; then the final status table.
    let out = &deploy.stdout;
    assert!(
        out.contains("Successfully deployed application pongapp"),
        "{out}"
    );
    assert!(out.contains("s] pongapp: deployed"), "{out}");
    assert!(
        out.contains("s]   SpreadScaler pongapp-pong: deployed"),
        "{out}"
    );
    assert!(
        !out.contains("\x1b["),
        "no terminal escapes in a pipe: {out}"
    );
    assert!(
        out.trim_end()
            .ends_with("SpreadScaler  pongapp-pong  deployed"),
        "{out}"
    );
    assert!(
        deploy.stderr.contains("pongapp is deployed"),
        "{}",
        deploy.stderr
    );

    // Watching a deployed app ends at once; JSON is the final status only.
    let watch = stack
        .run(&["app", "status", "pongapp", "--watch", "-o", "json"])
        .await;
    assert!(watch.success, "{}", watch.all());
    let json = watch.json().unwrap();
    assert_eq!(json["status"]["type"], "deployed");
    assert_eq!(json["scalers"][0]["kind"], "SpreadScaler");
    assert_eq!(json["scalers"][0]["name"], "pongapp-pong");

    // Deploying the same version again: wadm has nothing to do, wash says so.
    let again = stack.run(&["app", "deploy", "pongapp", "-o", "json"]).await;
    assert!(again.success, "{}", again.all());
    assert_eq!(again.json().unwrap()["status"]["type"], "deployed");

    let versions = stack.run(&["app", "versions", "pongapp"]).await;
    assert!(versions.success, "{}", versions.all());
    assert!(
        versions.stdout.contains("v0.1.0   yes"),
        "{}",
        versions.stdout
    );
    let versions = stack
        .run(&["app", "versions", "pongapp", "-o", "json"])
        .await;
    assert_eq!(
        versions.json().unwrap(),
        serde_json::json!([{"version": "v0.1.0", "deployed": true}])
    );

    let history = stack.run(&["app", "history", "pongapp"]).await;
    assert!(!history.success, "{}", history.all());
    assert!(
        history
            .stderr
            .contains("history is not currently supported"),
        "{}",
        history.stderr
    );
    assert!(
        history.stderr.contains("wash app versions pongapp"),
        "{}",
        history.stderr
    );

    let skip = stack
        .run(&["app", "deploy", "pongapp", "--skip-wait", "-o", "json"])
        .await;
    assert!(skip.success, "{}", skip.all());
    assert_eq!(skip.json().unwrap()["success"], true);
}

#[tokio::test]
async fn deploy_and_watch_fail_with_the_scalers_reason() {
    let stack = Stack::start().await;
    let bad = stack.manifest("badapp", "file:///nonexistent/missing.wasm");

    let deploy = stack.run(&["app", "deploy", bad.to_str().unwrap()]).await;
    assert!(!deploy.success, "{}", deploy.all());
    assert!(
        deploy.stdout.contains("s] badapp: failed"),
        "{}",
        deploy.stdout
    );
    assert!(
        deploy.stdout.contains("SpreadScaler badapp-pong: failed (")
            && deploy.stdout.contains("/nonexistent/missing.wasm"),
        "{}",
        deploy.stdout
    );
    assert!(
        deploy.stderr.contains("error: badapp failed after"),
        "{}",
        deploy.stderr
    );

    let watch = stack
        .run(&["app", "status", "badapp", "--watch", "-o", "json"])
        .await;
    assert!(!watch.success, "{}", watch.all());
    let json = watch.json().unwrap();
    assert_eq!(json["status"]["type"], "failed");
    assert!(
        json["scalers"][0]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("missing.wasm"),
        "{json}"
    );

    let unknown = stack.run(&["app", "status", "nope", "--watch"]).await;
    assert!(!unknown.success);
    assert!(unknown.stderr.contains("nope"), "{}", unknown.stderr);
}

#[tokio::test]
async fn deploy_times_out_when_nothing_can_place_the_app() {
    let ponger = tokio::task::spawn_blocking(ponger).await.unwrap();
    // No host: wadm keeps the application `waiting`, so wash times out.
    let stack = Stack::start_with(false).await;
    let path = stack.manifest("nowhere", &file_url(&ponger));
    let started = tokio::time::Instant::now();
    let deploy = stack
        .run(&[
            "app",
            "deploy",
            path.to_str().unwrap(),
            "--wait-timeout-ms",
            "1500",
            "-o",
            "json",
        ])
        .await;
    assert!(!deploy.success, "{}", deploy.all());
    assert!(started.elapsed() < Duration::from_secs(20));
    let json = deploy.json().unwrap();
    assert_eq!(json["status"]["type"], "waiting", "{json}");
    let text = stack
        .run(&[
            "app",
            "status",
            "nowhere",
            "--watch",
            "--wait-timeout-ms",
            "500",
        ])
        .await;
    assert!(!text.success, "{}", text.all());
    assert!(text.stdout.contains("nowhere: waiting"), "{}", text.stdout);
    assert!(
        text.stderr.contains("nowhere is still `waiting`"),
        "{}",
        text.stderr
    );
    assert!(text.stderr.contains("--wait-timeout-ms"), "{}", text.stderr);
}
