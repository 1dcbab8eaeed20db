//! The built `system-info-provider` binary, started as a host starts it
//! (HostData on stdin) against a real nats-server. This test plays the host
//! (health, link put/delete, config update, shutdown) and a native fake of
//! the `system-info-caller` component (wRPC both ways, with the same WIT).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use nkeys::XKey;
use tokio::io::AsyncWriteExt as _;
use trellis_interfaces::provider::{
    HealthCheckResponse, HostData, InterfaceLinkDefinition, ProviderSubjects,
};
use trellis_provider_sdk::trellis_wrpc::{ServeContext, Transport, TransportOptions, headers};
use trellis_tests::{NatsServer, eventually};

mod caller {
    wit_bindgen_wrpc::generate!({
        world: "caller",
        path: "wit",
    });
}

use caller::trellis::system_info::info::{self, Kind};

const LATTICE: &str = "default";
const PROVIDER: &str = "system-info";
const COMPONENT: &str = "caller";
const HOST: &str = "NHOSTTEST";
const WAIT: Duration = Duration::from_secs(10);
const FAKE_ANSWER: &str = "hello from the fake caller";

/// `(source-id, target-id)` headers of one call.
type SeenHeaders = (Option<String>, Option<String>);

/// The fake component's `invoker` export; records the headers it saw.
#[derive(Clone, Default)]
struct Invoker {
    seen: Arc<Mutex<Vec<SeenHeaders>>>,
}

impl caller::exports::trellis::system_info::invoker::Handler<ServeContext> for Invoker {
    async fn call(&self, cx: ServeContext) -> anyhow::Result<String> {
        self.seen
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push((
                cx.source_id().map(str::to_string),
                cx.header(headers::TARGET_ID).map(str::to_string),
            ));
        Ok(FAKE_ANSWER.to_string())
    }
}

fn link(source: &str, target: &str, interface: &str) -> InterfaceLinkDefinition {
    InterfaceLinkDefinition {
        source_id: source.into(),
        target: target.into(),
        name: "default".into(),
        wit_namespace: "trellis".into(),
        wit_package: "system-info".into(),
        interfaces: vec![interface.into()],
        ..Default::default()
    }
}

async fn health(nats: &async_nats::Client) -> anyhow::Result<HealthCheckResponse> {
    let subject = ProviderSubjects::new(LATTICE).health(PROVIDER);
    let reply = tokio::time::timeout(Duration::from_secs(1), nats.request(subject, "".into()))
        .await
        .context("health request timed out")??;
    Ok(serde_json::from_slice(&reply.payload)?)
}

async fn wait_health(
    nats: &async_nats::Client,
    wanted: &str,
) -> anyhow::Result<HealthCheckResponse> {
    eventually(WAIT, || async {
        let h = health(nats).await?;
        anyhow::ensure!(
            h.message.as_deref().is_some_and(|m| m.contains(wanted)),
            "health message {:?} lacks {wanted:?}",
            h.message
        );
        Ok(h)
    })
    .await
}

#[tokio::test]
async fn provider_binary_speaks_control_plane_and_wrpc_both_ways() {
    let nats = NatsServer::start().await.unwrap();
    let host = nats.connect().await.unwrap();
    let subjects = ProviderSubjects::new(LATTICE);
    let host_xkey = XKey::new();
    let provider_xkey = XKey::new();
    let host_data = HostData {
        host_id: HOST.into(),
        lattice_rpc_prefix: LATTICE.into(),
        link_name: "default".into(),
        lattice_rpc_url: nats.url(),
        provider_key: PROVIDER.into(),
        instance_id: "test-instance".into(),
        host_xkey_public_key: host_xkey.public_key(),
        provider_xkey_private_key: provider_xkey.seed().unwrap(),
        config: HashMap::from([("start".to_string(), "1".to_string())]),
        link_definitions: vec![link(COMPONENT, PROVIDER, "info")],
        ..Default::default()
    };

    // Start the provider as a host does: env cleared, HostData on stdin.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_system-info-provider"))
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&host_data.to_stdin().unwrap())
        .await
        .unwrap();
    drop(stdin);

    // Health, with the startup link and start config delivered.
    let h = wait_health(&host, "1 linked component(s); config keys: [start]")
        .await
        .unwrap();
    assert!(h.healthy);

    // The fake component: serves `invoker`, calls `info`.
    let transport = Transport::new(nats.connect().await.unwrap(), TransportOptions::default())
        .await
        .unwrap();
    let invoker = Invoker::default();
    let prefix = format!("{LATTICE}.{COMPONENT}");
    let server = transport.server(prefix.clone(), Some(prefix));
    let exports = caller::serve(&server, invoker.clone()).await.unwrap();
    let serving = tokio::spawn(trellis_provider_sdk::serve_exports(exports));
    let provider = transport.client().target(format!("{LATTICE}.{PROVIDER}"));
    let mut from_component = async_nats::HeaderMap::new();
    from_component.insert(headers::SOURCE_ID, COMPONENT);

    // Component → provider.
    let os = info::request_info(&provider, Some(from_component.clone()), Kind::Os)
        .await
        .unwrap();
    assert_eq!(os, std::env::consts::OS);
    let cpus = info::request_info(&provider, None, Kind::Cpus)
        .await
        .unwrap();
    assert!(cpus.parse::<usize>().unwrap() >= 1, "{cpus}");

    // Provider → component needs a link provider → component for `invoker`.
    let refused = info::call_back(&provider, Some(from_component.clone()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        refused.contains("no link from provider system-info"),
        "{refused}"
    );
    let back = link(PROVIDER, COMPONENT, "invoker");
    host.publish(
        subjects.link_put(PROVIDER),
        serde_json::to_vec(&back).unwrap().into(),
    )
    .await
    .unwrap();
    let answer = eventually(WAIT, || async {
        info::call_back(&provider, Some(from_component.clone()))
            .await?
            .map_err(anyhow::Error::msg)
    })
    .await
    .unwrap();
    assert_eq!(answer, FAKE_ANSWER);
    let seen = invoker.seen.lock().unwrap().clone();
    assert_eq!(
        seen.last().unwrap(),
        &(Some(PROVIDER.to_string()), Some(COMPONENT.to_string())),
        "the provider's call carries source-id and target-id"
    );

    // Deleting the link stops the call back.
    host.publish(
        subjects.link_del(PROVIDER),
        serde_json::to_vec(&back).unwrap().into(),
    )
    .await
    .unwrap();
    eventually(WAIT, || async {
        match info::call_back(&provider, Some(from_component.clone())).await? {
            Err(reason) if reason.contains("no link") => Ok(()),
            other => anyhow::bail!("call back still works: {other:?}"),
        }
    })
    .await
    .unwrap();

    // Deleting the component's link is delivered as a target delete.
    host.publish(
        subjects.link_del(PROVIDER),
        serde_json::to_vec(&link(COMPONENT, PROVIDER, "info"))
            .unwrap()
            .into(),
    )
    .await
    .unwrap();
    wait_health(&host, "0 linked component(s)").await.unwrap();

    // Config update.
    let config = HashMap::from([
        ("a".to_string(), "1".to_string()),
        ("b".to_string(), "2".to_string()),
    ]);
    host.publish(
        subjects.config_update(PROVIDER),
        serde_json::to_vec(&config).unwrap().into(),
    )
    .await
    .unwrap();
    wait_health(&host, "config keys: [a,b]").await.unwrap();

    // A shutdown for another host is ignored: no reply, still healthy.
    let other = host.request(
        subjects.shutdown(PROVIDER),
        serde_json::to_vec(&serde_json::json!({"host_id": "NOTHER"}))
            .unwrap()
            .into(),
    );
    assert!(
        !matches!(
            tokio::time::timeout(Duration::from_millis(500), other).await,
            Ok(Ok(_))
        ),
        "answered another host's shutdown"
    );
    assert!(health(&host).await.unwrap().healthy);
    assert!(child.try_wait().unwrap().is_none());

    // Our host's shutdown: reply, then the process exits cleanly.
    let reply = tokio::time::timeout(
        WAIT,
        host.request(
            subjects.shutdown(PROVIDER),
            serde_json::to_vec(&serde_json::json!({"host_id": HOST}))
                .unwrap()
                .into(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&reply.payload[..], b"shutting down");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("provider did not exit after shutdown")
        .unwrap();
    assert!(status.success(), "provider exited with {status}");
    serving.abort();
}

#[tokio::test]
async fn provider_without_host_data_explains_itself() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_system-info-provider"))
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("started by a Trellis or wasmCloud host"),
        "{stderr}"
    );
}
