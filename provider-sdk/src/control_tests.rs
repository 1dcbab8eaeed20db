//! The control loop against a real nats-server, playing the host's part by
//! hand: health, link put/delete (xkey and id subjects), config update and
//! shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nkeys::XKey;
use tokio::sync::mpsc;
use trellis_interfaces::provider::{
    HealthCheckResponse, HostData, InterfaceLinkDefinition, ProviderSubjects, SecretValue,
};
use trellis_tests::NatsServer;

use crate::control::{ControlEnd, ControlPlane, SharedState};
use crate::links::{LinkConfig, LinkKey};
use crate::provider::{InitContext, Provider};

const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq)]
enum Event {
    SourcePut(LinkConfig),
    TargetPut(LinkConfig),
    SourceDel(LinkKey),
    TargetDel(LinkKey),
    Config(HashMap<String, String>),
    Shutdown,
}

struct Recorder(mpsc::UnboundedSender<Event>);

impl Provider for Recorder {
    async fn init(&self, _cx: &InitContext) -> anyhow::Result<()> {
        Ok(())
    }
    async fn on_link_as_source(&self, link: &LinkConfig) -> anyhow::Result<()> {
        self.0.send(Event::SourcePut(link.clone()))?;
        Ok(())
    }
    async fn on_link_as_target(&self, link: &LinkConfig) -> anyhow::Result<()> {
        self.0.send(Event::TargetPut(link.clone()))?;
        Ok(())
    }
    async fn on_link_deleted_as_source(&self, link: &LinkKey) -> anyhow::Result<()> {
        self.0.send(Event::SourceDel(link.clone()))?;
        Ok(())
    }
    async fn on_link_deleted_as_target(&self, link: &LinkKey) -> anyhow::Result<()> {
        self.0.send(Event::TargetDel(link.clone()))?;
        Ok(())
    }
    async fn on_config_update(&self, config: &HashMap<String, String>) -> anyhow::Result<()> {
        self.0.send(Event::Config(config.clone()))?;
        Ok(())
    }
    async fn health(&self) -> HealthCheckResponse {
        HealthCheckResponse {
            healthy: true,
            message: Some("recording".into()),
        }
    }
    async fn shutdown(&self) -> anyhow::Result<()> {
        self.0.send(Event::Shutdown)?;
        Ok(())
    }
}

fn link(source: &str, target: &str, name: &str) -> InterfaceLinkDefinition {
    InterfaceLinkDefinition {
        source_id: source.into(),
        target: target.into(),
        name: name.into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into()],
        source_config: HashMap::from([("side".into(), "source".into())]),
        target_config: HashMap::from([("side".into(), "target".into())]),
        ..Default::default()
    }
}

struct Harness {
    _nats: NatsServer,
    host: async_nats::Client,
    subjects: ProviderSubjects,
    host_xkey: XKey,
    provider_xkey: XKey,
    events: mpsc::UnboundedReceiver<Event>,
    state: Arc<SharedState>,
    control: tokio::task::JoinHandle<Result<ControlEnd, crate::RunError>>,
}

impl Harness {
    async fn start(startup_links: Vec<InterfaceLinkDefinition>) -> Harness {
        let nats = NatsServer::start().await.unwrap();
        let host_xkey = XKey::new();
        let provider_xkey = XKey::new();
        let host_data = HostData {
            host_id: "NHOST".into(),
            lattice_rpc_prefix: "lat".into(),
            provider_key: "prov".into(),
            lattice_rpc_url: nats.url(),
            host_xkey_public_key: host_xkey.public_key(),
            provider_xkey_private_key: provider_xkey.seed().unwrap(),
            link_definitions: startup_links,
            ..Default::default()
        };
        let (tx, events) = mpsc::unbounded_channel();
        let state = Arc::new(SharedState::new("prov", HashMap::new()));
        let client = nats.connect().await.unwrap();
        let control = ControlPlane::new(
            Arc::new(Recorder(tx)),
            client,
            &host_data,
            Arc::clone(&state),
        );
        let subs = control.subscribe().await.unwrap();
        control
            .deliver_startup_links(&host_data.link_definitions)
            .await;
        let control = tokio::spawn(control.run(subs));
        Harness {
            host: nats.connect().await.unwrap(),
            _nats: nats,
            subjects: ProviderSubjects::new("lat"),
            host_xkey,
            provider_xkey,
            events,
            state,
            control,
        }
    }

    async fn next(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("no provider callback within 5 s")
            .expect("provider dropped")
    }

    async fn publish(&self, subject: String, body: &impl serde::Serialize) {
        self.host
            .publish(subject, serde_json::to_vec(body).unwrap().into())
            .await
            .unwrap();
        self.host.flush().await.unwrap();
    }

    /// Health is answered in order with the control messages before it, so
    /// a health round trip proves everything published before was handled.
    async fn barrier(&self) {
        let reply = tokio::time::timeout(
            WAIT,
            self.host.request(self.subjects.health("prov"), "".into()),
        )
        .await
        .unwrap()
        .unwrap();
        let health: HealthCheckResponse = serde_json::from_slice(&reply.payload).unwrap();
        assert!(health.healthy);
    }
}

#[tokio::test]
async fn startup_links_then_health_puts_deletes_and_config() {
    let mut h = Harness::start(vec![link("comp", "prov", "default")]).await;
    let Event::TargetPut(first) = h.next().await else {
        panic!("expected the startup link as target")
    };
    assert_eq!(first.source_id, "comp");
    assert_eq!(first.config["side"], "target");

    // Health replies with the provider's answer.
    let reply = h
        .host
        .request(h.subjects.health("prov"), "".into())
        .await
        .unwrap();
    let health: HealthCheckResponse = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(health.message.as_deref(), Some("recording"));

    // A second link between the same pair under another name, as source,
    // with sealed secrets, on the xkey subject, then its 1.0-era duplicate
    // without secrets on the id subject: delivered once, secrets kept.
    let mut second = link("prov", "comp", "other");
    let secrets = HashMap::from([("token".to_string(), SecretValue::String("t0p".into()))]);
    second.source_secrets = Some(
        h.host_xkey
            .seal(&serde_json::to_vec(&secrets).unwrap(), &h.provider_xkey)
            .unwrap(),
    );
    h.publish(h.subjects.link_put(&h.provider_xkey.public_key()), &second)
        .await;
    let mut legacy = second.clone();
    legacy.source_secrets = None;
    h.publish(h.subjects.link_put("prov"), &legacy).await;
    let Event::SourcePut(got) = h.next().await else {
        panic!("expected the second link as source")
    };
    assert_eq!(got.link_name, "other");
    assert_eq!(got.config["side"], "source");
    assert_eq!(got.secrets, secrets);
    h.barrier().await;
    assert!(h.events.try_recv().is_err(), "duplicate put was delivered");
    assert_eq!(h.state.links().len(), 2);

    // Changed config is delivered again.
    let mut changed = legacy.clone();
    changed.source_config.insert("extra".into(), "1".into());
    h.publish(h.subjects.link_put("prov"), &changed).await;
    let Event::SourcePut(got) = h.next().await else {
        panic!("expected the changed link")
    };
    assert_eq!(got.config["extra"], "1");
    assert_eq!(
        got.secrets, secrets,
        "secrets survive a put without secrets"
    );

    // Deleting one name leaves the other link of the pair alone.
    let mut del = link("prov", "comp", "other");
    del.source_config.clear();
    del.target_config.clear();
    h.publish(h.subjects.link_del("prov"), &del).await;
    let Event::SourceDel(key) = h.next().await else {
        panic!("expected the delete")
    };
    assert_eq!(key.link_name, "other");
    h.publish(h.subjects.link_del("prov"), &del).await;
    h.barrier().await;
    assert!(h.events.try_recv().is_err(), "second delete was delivered");
    let left: Vec<_> = h.state.links().as_target().cloned().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].source_id, "comp");

    // Config update.
    let config = HashMap::from([("k".to_string(), "v".to_string())]);
    h.publish(h.subjects.config_update("prov"), &config).await;
    assert_eq!(h.next().await, Event::Config(config.clone()));
    assert_eq!(h.state.config(), config);

    // Links not involving us and garbage are ignored.
    h.publish(h.subjects.link_put("prov"), &link("x", "y", "default"))
        .await;
    h.host
        .publish(h.subjects.link_put("prov"), "not json".into())
        .await
        .unwrap();
    h.barrier().await;
    assert!(h.events.try_recv().is_err());
}

#[tokio::test]
async fn shutdown_only_for_our_host() {
    let mut h = Harness::start(Vec::new()).await;
    // Another host's request gets no reply and changes nothing.
    let other = h.host.request(
        h.subjects.shutdown("prov"),
        serde_json::to_vec(&serde_json::json!({"host_id": "NOTHER"}))
            .unwrap()
            .into(),
    );
    let result = tokio::time::timeout(Duration::from_millis(500), other).await;
    assert!(
        !matches!(result, Ok(Ok(_))),
        "answered another host's shutdown"
    );
    h.barrier().await;
    assert!(h.events.try_recv().is_err());
    assert!(!h.control.is_finished());

    let reply = tokio::time::timeout(
        WAIT,
        h.host.request(
            h.subjects.shutdown("prov"),
            serde_json::to_vec(&serde_json::json!({"host_id": "NHOST"}))
                .unwrap()
                .into(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&reply.payload[..], b"shutting down");
    assert_eq!(h.next().await, Event::Shutdown);
    let end = tokio::time::timeout(WAIT, &mut h.control)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(end, ControlEnd::ShutdownRequested);
}
