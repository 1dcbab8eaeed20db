//! The `wadm` binary against a real nats-server: every `wadm.api.{lattice}.model.*`
//! subject with its exact reply, validation refusals, status publication, and a
//! restarted wadm finding what the store holds.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers: a failed unwrap is the test failing; serde_json::Value indexing yields Null, never panics"
)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use trellis_interfaces::manifest::{Manifest, ValidationOutput, validate};
use trellis_tests::NatsServer;

const LATTICE: &str = "default";
const APP: &str = "rust-sqldb-postgres-query";
/// How long a started wadm may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

fn compat(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/compat")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(compat(path)).unwrap()
}

/// A running `wadm` process, killed on drop.
struct Wadm {
    child: Child,
}

impl Wadm {
    async fn start(nats: &NatsServer, client: &async_nats::Client) -> Result<Self> {
        // API only: these tests check what the API itself stores and publishes; the
        // reconcile loop is tested against real hosts in tests/tests/wadm.rs.
        let child = Command::new(env!("CARGO_BIN_EXE_wadm"))
            .arg("--api-only")
            .env("WADM_NATS_SERVER", nats.url())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("spawning wadm")?;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let probe = tokio::time::timeout(
                Duration::from_millis(500),
                client.request(format!("wadm.api.{LATTICE}.model.get"), "".into()),
            )
            .await;
            if let Ok(Ok(_)) = probe {
                return Ok(Self { child });
            }
            if tokio::time::Instant::now() > deadline {
                bail!("wadm did not answer within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn call(client: &async_nats::Client, op: &str, body: impl Into<Vec<u8>>) -> Value {
    let reply = client
        .request(format!("wadm.api.{LATTICE}.model.{op}"), body.into().into())
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

async fn put(client: &async_nats::Client, body: &str, content_type: Option<&str>) -> Value {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(t) = content_type {
        headers.insert("Content-Type", t);
    }
    let reply = client
        .request_with_headers(
            format!("wadm.api.{LATTICE}.model.put"),
            headers,
            body.to_string().into(),
        )
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

/// wadm's put message, followed by the validation warnings (Trellis addition).
fn put_message(manifest: &Manifest, version: &str) -> String {
    let failures = validate(manifest);
    let warnings: Vec<&str> = failures.warnings().iter().map(|w| w.msg.as_str()).collect();
    let mut message = format!("Successfully put manifest {APP} {version}");
    if !warnings.is_empty() {
        message.push_str(&format!(" (warnings: {})", warnings.join("; ")));
    }
    message
}

fn v2_json() -> (Manifest, String) {
    let yaml = read("manifests/sqldbpostgres.yaml").replace("version: v0.0.1", "version: v0.0.2");
    let manifest = Manifest::from_yaml(&yaml).unwrap();
    let json = manifest.to_json().unwrap();
    (manifest, json)
}

#[tokio::test]
async fn put_get_list_deploy_status_undeploy_delete() -> Result<()> {
    let nats = NatsServer::start().await?;
    let client = nats.connect().await?;
    let wadm = Wadm::start(&nats, &client).await?;
    let yaml = read("manifests/sqldbpostgres.yaml");
    let v1 = Manifest::from_yaml(&yaml)?;

    let reply = put(&client, &yaml, Some("application/yaml")).await;
    assert_eq!(
        reply,
        json!({"result": {"success": "Created"}, "total_versions": 1, "current_version": "v0.0.1",
               "message": put_message(&v1, "v0.0.1"), "name": APP})
    );
    let again = put(&client, &yaml, None).await;
    assert_eq!(again["result"], "error");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("Manifest version v0.0.1 already exists"),
        "{again}"
    );

    // A second version as JSON, without Content-Type (YAML-then-JSON sniffing).
    let (v2, v2_json) = v2_json();
    let reply = put(&client, &v2_json, Some("application/json")).await;
    assert_eq!(
        reply,
        json!({"result": {"success": {"NewVersion": "v0.0.2"}}, "total_versions": 2,
               "current_version": "v0.0.2",
               "message": put_message(&v2, "v0.0.2"), "name": APP})
    );

    let reply = call(&client, &format!("get.{APP}"), "").await;
    assert_eq!(
        reply,
        json!({"result": "success", "message": format!("Successfully fetched application {APP}"),
               "manifest": serde_json::to_value(&v2)?})
    );
    let reply = call(&client, &format!("get.{APP}"), r#"{"version":"v0.0.1"}"#).await;
    assert_eq!(reply["result"], "success");
    assert_eq!(reply["manifest"], serde_json::to_value(&v1)?);
    let reply = call(&client, &format!("get.{APP}"), r#"{"version":"v9"}"#).await;
    assert_eq!(reply["result"], "notfound");
    let reply = call(&client, "get.nope", "").await;
    assert_eq!(
        reply,
        json!({"result": "notfound", "message": "Application with the name nope not found"})
    );

    let description = v2.description().map(str::to_string);
    let reply = call(&client, "get", "").await;
    assert_eq!(
        reply,
        json!({"result": "success", "message": "Successfully fetched list of applications",
               "models": [{"name": APP, "version": "v0.0.2", "description": description,
                           "deployed_version": null,
                           "detailed_status": {"status": {"type": "undeployed"}, "version": "", "components": []},
                           "status": "undeployed", "status_message": ""}]})
    );
    assert_eq!(
        call(&client, "list", "").await,
        reply,
        "deprecated model.list"
    );

    let reply = call(&client, &format!("versions.{APP}"), "").await;
    assert_eq!(
        reply,
        json!({"result": "success",
               "message": format!("Successfully fetched versions for application {APP}"),
               "versions": [{"version": "v0.0.1", "deployed": false},
                            {"version": "v0.0.2", "deployed": false}]})
    );

    // Deploy an older version; its status is published on wadm.status.{lattice}.{app}.
    let mut statuses = client
        .subscribe(format!("wadm.status.{LATTICE}.{APP}"))
        .await?;
    trellis_tests::nats::synced(&client).await?;
    let reply = call(&client, &format!("deploy.{APP}"), r#"{"version":"v0.0.1"}"#).await;
    assert_eq!(
        reply,
        json!({"result": "acknowledged",
               "message": format!("Successfully deployed application {APP} v0.0.1"),
               "name": APP, "version": "v0.0.1"})
    );
    let waiting = json!({"status": {"type": "waiting",
        "message": "Version v0.0.1 is deployed; waiting for the reconciler to place it"},
        "version": "", "components": []});
    let published = tokio::time::timeout(Duration::from_secs(5), statuses.next())
        .await?
        .context("status subscription ended")?;
    assert_eq!(
        serde_json::from_slice::<Value>(&published.payload)?,
        waiting
    );
    let reply = call(&client, &format!("status.{APP}"), "").await;
    assert_eq!(
        reply,
        json!({"result": "ok", "message": format!("Successfully fetched status for application {APP}"),
               "status": waiting})
    );
    let reply = call(&client, &format!("versions.{APP}"), "").await;
    assert_eq!(
        reply["versions"][0],
        json!({"version": "v0.0.1", "deployed": true})
    );
    let reply = call(&client, &format!("deploy.{APP}"), r#"{"version":"v7"}"#).await;
    assert_eq!(reply["result"], "error");
    assert_eq!(reply["version"], "v7");
    let reply = call(&client, "deploy.nope", "").await;
    assert_eq!(reply["result"], "notfound");

    // Undeploy: acknowledged, status back to undeployed.
    let reply = call(&client, &format!("undeploy.{APP}"), "{}").await;
    assert_eq!(
        reply,
        json!({"result": "acknowledged",
               "message": format!("Successfully undeployed application {APP}"),
               "name": APP, "version": null})
    );
    let published = tokio::time::timeout(Duration::from_secs(5), statuses.next())
        .await?
        .context("status subscription ended")?;
    let undeployed = json!({"status": {"type": "undeployed"}, "version": "", "components": []});
    assert_eq!(
        serde_json::from_slice::<Value>(&published.payload)?,
        undeployed
    );
    let reply = call(&client, &format!("status.{APP}"), "").await;
    assert_eq!(reply["status"], undeployed);

    // Deploy latest (empty body), then delete one version, then all.
    let reply = call(&client, &format!("deploy.{APP}"), "").await;
    assert_eq!(reply["version"], "v0.0.2");
    let reply = call(&client, &format!("del.{APP}"), r#"{"version":"v0.0.1"}"#).await;
    assert_eq!(
        reply,
        json!({"result": "deleted",
               "message": format!("Successfully deleted version v0.0.1 of application {APP}"),
               "undeploy": false})
    );
    let reply = call(&client, &format!("del.{APP}"), "").await;
    assert_eq!(
        reply,
        json!({"result": "deleted", "message": format!("Successfully deleted application {APP}"),
               "undeploy": true})
    );
    let reply = call(&client, &format!("del.{APP}"), "").await;
    assert_eq!(reply["result"], "noop");
    assert_eq!(
        call(&client, &format!("get.{APP}"), "").await["result"],
        "notfound"
    );
    assert_eq!(call(&client, "get", "").await["models"], json!([]));
    assert_eq!(
        call(&client, &format!("history.{APP}"), "").await["result"],
        "error"
    );

    // The store holds wadm 0.21's keys and shapes.
    let js = async_nats::jetstream::new(client.clone());
    let kv = js.get_key_value("wadm_manifests").await?;
    assert_eq!(kv.get(LATTICE).await?.as_deref(), Some(&b"[]"[..]));
    wadm.stop().await;
    Ok(())
}

#[tokio::test]
async fn invalid_manifests_are_refused_with_their_errors() -> Result<()> {
    let nats = NatsServer::start().await?;
    let client = nats.connect().await?;
    let wadm = Wadm::start(&nats, &client).await?;

    for file in [
        "dangling-link.wadm.yaml",
        "duplicate_link_config_names.wadm.yaml",
    ] {
        let yaml = read(&format!("validation/{file}"));
        let failures = validate(&Manifest::from_yaml(&yaml)?);
        let errors = failures.errors();
        assert!(!errors.is_empty(), "{file} should be invalid");
        let reply = put(&client, &yaml, None).await;
        assert_eq!(reply["result"], "error", "{file}: {reply}");
        let message = reply["message"].as_str().unwrap();
        for e in errors {
            assert!(
                message.contains(&e.msg),
                "{file}: {message} lacks {}",
                e.msg
            );
        }
    }
    let reply = put(&client, &read("validation/made-up-key.wadm.yaml"), None).await;
    assert_eq!(reply["result"], "error");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .starts_with("Unable to parse manifest"),
        "{reply}"
    );
    let reply = put(&client, "not: [a manifest", Some("application/json")).await;
    assert_eq!(reply["result"], "error");
    assert_eq!(
        call(&client, "get", "").await["models"],
        json!([]),
        "nothing stored"
    );
    wadm.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_restarted_wadm_sees_the_stored_manifests() -> Result<()> {
    let nats = NatsServer::start().await?;
    let client = nats.connect().await?;
    let wadm = Wadm::start(&nats, &client).await?;
    // No version annotation: wadm assigns a ULID.
    let reply = put(&client, &read("manifests/hello.yaml"), None).await;
    assert_eq!(reply["result"], json!({"success": "Created"}));
    let version = reply["current_version"].as_str().unwrap().to_string();
    assert_eq!(version.len(), 26, "a ULID: {version}");
    let reply = call(&client, "deploy.hello-world", r#"{"version":"latest"}"#).await;
    assert_eq!(reply["result"], "acknowledged");
    wadm.stop().await;

    let wadm = Wadm::start(&nats, &client).await?;
    let reply = call(&client, "versions.hello-world", "").await;
    assert_eq!(
        reply["versions"],
        json!([{"version": version, "deployed": true}])
    );
    let reply = call(&client, "get", "").await;
    assert_eq!(reply["models"][0]["deployed_version"], json!(version));
    assert_eq!(
        reply["models"][0]["detailed_status"]["status"]["type"],
        "waiting"
    );
    wadm.stop().await;
    Ok(())
}

#[tokio::test]
async fn deploy_refuses_a_component_id_another_application_runs() -> Result<()> {
    let nats = NatsServer::start().await?;
    let client = nats.connect().await?;
    let wadm = Wadm::start(&nats, &client).await?;
    let app = |name: &str| {
        format!(
            "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: {name}\n  annotations:\n    version: v1\nspec:\n  components:\n    - name: web\n      type: component\n      properties:\n        image: registry.example/acme/web:0.1.0\n        id: shared-web\n"
        )
    };
    for name in ["first", "second"] {
        let reply = put(&client, &app(name), None).await;
        assert_eq!(reply["result"], json!({"success": "Created"}), "{reply}");
    }
    assert_eq!(
        call(&client, "deploy.first", "").await["result"],
        "acknowledged"
    );
    let reply = call(&client, "deploy.second", "").await;
    assert_eq!(reply["result"], "error");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .starts_with("Component identifier 'shared-web' is already deployed in a different application 'first'"),
        "{reply}"
    );
    // Once the first is undeployed, the second may run it.
    assert_eq!(
        call(&client, "undeploy.first", "").await["result"],
        "acknowledged"
    );
    assert_eq!(
        call(&client, "deploy.second", "").await["result"],
        "acknowledged"
    );
    wadm.stop().await;
    Ok(())
}
