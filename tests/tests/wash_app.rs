//! `wash app` against a real `wadm` and nats-server: put, list, get, deploy, status,
//! undeploy, delete, and `validate` offline.
//!
//! Build the binaries first: `cargo build -p trellis-wash -p trellis-wadm`.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers: a failed unwrap or panic is the test failing; serde_json::Value indexing yields Null, never panics"
)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;
use trellis_tests::NatsServer;

/// How long one `wash` run may take; turns a hang into a failure.
const WASH_DEADLINE: Duration = Duration::from_secs(30);
/// How long a started wadm may take to answer.
const WADM_READY: Duration = Duration::from_secs(15);

fn binary(name: &str, env: &str, package: &str) -> PathBuf {
    trellis_tests::host::workspace_binary(name, env, package).unwrap()
}

fn compat(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/compat")
        .join(path)
        .display()
        .to_string()
}

struct Out {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}{}", self.stdout, self.stderr))
    }
}

async fn wash(nats: Option<&NatsServer>, args: &[&str]) -> Result<Out> {
    let mut command = tokio::process::Command::new(binary("wash", "WASH_BIN", "trellis-wash"));
    command.args(args).args(["-o", "json"]).kill_on_drop(true);
    if let Some(nats) = nats {
        command.args(["--nats-url", &nats.url(), "--lattice", "default"]);
    }
    for var in [
        "WASMCLOUD_CTL_HOST",
        "WASMCLOUD_CTL_PORT",
        "WASMCLOUD_LATTICE",
    ] {
        command.env_remove(var);
    }
    let output = tokio::time::timeout(WASH_DEADLINE, command.output())
        .await
        .context("wash hung")??;
    Ok(Out {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

#[tokio::test]
async fn wash_app_validate_is_offline() -> Result<()> {
    let ok = wash(None, &["app", "validate", &compat("manifests/hello.yaml")]).await?;
    assert!(ok.success, "{}", ok.stderr);
    assert_eq!(ok.json()["valid"], true);
    let bad = wash(
        None,
        &[
            "app",
            "validate",
            &compat("validation/dangling-link.wadm.yaml"),
        ],
    )
    .await?;
    assert!(!bad.success);
    let json = bad.json();
    assert_eq!(json["valid"], false);
    assert!(!json["errors"].as_array().unwrap().is_empty(), "{json}");
    Ok(())
}

#[tokio::test]
async fn wash_app_put_deploy_status_undeploy_delete() -> Result<()> {
    let nats = NatsServer::start().await?;
    let client = nats.connect().await?;
    let _wadm = tokio::process::Command::new(binary("wadm", "WADM_BIN", "trellis-wadm"))
        .env("WADM_NATS_SERVER", nats.url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let deadline = tokio::time::Instant::now() + WADM_READY;
    while client
        .request("wadm.api.default.model.get", "".into())
        .await
        .is_err()
    {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "wadm did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let file = compat("manifests/sqldbpostgres.yaml");
    let app = "rust-sqldb-postgres-query";

    let put = wash(Some(&nats), &["app", "put", &file]).await?;
    assert!(put.success, "{}{}", put.stdout, put.stderr);
    assert_eq!(put.json()["current_version"], "v0.0.1");

    let list = wash(Some(&nats), &["app", "list"]).await?;
    assert!(list.success, "{}", list.stderr);
    assert_eq!(list.json()[0]["name"], app);
    assert_eq!(list.json()[0]["deployed_version"], Value::Null);

    let get = wash(Some(&nats), &["app", "get", app]).await?;
    assert!(get.success, "{}", get.stderr);
    assert_eq!(get.json()["metadata"]["name"], app);

    let deploy = wash(Some(&nats), &["app", "deploy", app, "--skip-wait"]).await?;
    assert!(deploy.success, "{}", deploy.stderr);
    assert_eq!(deploy.json()["result"], "acknowledged");
    assert_eq!(deploy.json()["version"], "v0.0.1");

    let status = wash(Some(&nats), &["app", "status", app]).await?;
    assert!(status.success, "{}", status.stderr);
    assert_eq!(status.json()["status"]["type"], "waiting");

    let undeploy = wash(Some(&nats), &["app", "undeploy", app]).await?;
    assert!(undeploy.success, "{}", undeploy.stderr);
    let status = wash(Some(&nats), &["app", "status", app]).await?;
    assert_eq!(status.json()["status"]["type"], "undeployed");

    // Re-putting the same version is refused with wadm's reason.
    let again = wash(Some(&nats), &["app", "put", &file]).await?;
    assert!(!again.success);
    assert!(again.stdout.contains("already exists") || again.stderr.contains("already exists"));

    let delete = wash(Some(&nats), &["app", "delete", app]).await?;
    assert!(delete.success, "{}", delete.stderr);
    assert_eq!(delete.json()["result"], "deleted");
    let list = wash(Some(&nats), &["app", "list"]).await?;
    assert_eq!(list.json(), serde_json::json!([]));

    // An unknown application: a failure naming it.
    let missing = wash(Some(&nats), &["app", "status", "nope"]).await?;
    assert!(!missing.success);
    Ok(())
}
