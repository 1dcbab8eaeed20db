//! Fixtures shared by the whole-system tests: a lattice (real nats-server +
//! control client + event watcher), deploying `http-hello` behind the built-in
//! HTTP server, and a small HTTP client.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing yields Null on a missing key, it never panics"
)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt as _;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use trellis_interfaces::client::CtlClient;
use trellis_interfaces::ctl::{ScaleComponentCommand, StartProviderCommand};
use trellis_interfaces::link::Link;
use trellis_interfaces::liveness::{CallCounts, LivenessBeat};
use trellis_interfaces::subject::liveness_subject;
use trellis_tests::{
    EventWatcher, HostOptions, HostProcess, NatsServer, component_path, free_port,
};

pub const WAIT: Duration = Duration::from_secs(30);

pub struct TestLattice {
    pub nats: NatsServer,
    pub client: async_nats::Client,
    pub ctl: CtlClient,
    pub events: EventWatcher,
    pub lattice: String,
}

impl TestLattice {
    pub async fn start() -> anyhow::Result<Self> {
        let nats = NatsServer::start().await?;
        let client = nats.connect().await?;
        let lattice = "test".to_string();
        let events = EventWatcher::new(&client, &lattice).await?;
        let ctl = CtlClient::new(client.clone(), lattice.clone());
        Ok(Self {
            nats,
            client,
            ctl,
            events,
            lattice,
        })
    }

    pub fn host_options(&self) -> HostOptions {
        HostOptions::new(self.nats.url(), self.lattice.clone())
    }

    pub async fn host(&self) -> anyhow::Result<HostProcess> {
        HostProcess::start(self.host_options()).await
    }
}

pub fn hello_ref() -> anyhow::Result<String> {
    Ok(format!(
        "file://{}",
        component_path("http-hello")?.display()
    ))
}

/// Scales `id` from `image_ref` to `count` on `host` and waits for the event.
pub async fn scale(
    l: &mut TestLattice,
    host: &str,
    image_ref: &str,
    id: &str,
    count: u32,
) -> anyhow::Result<serde_json::Value> {
    scale_with(
        l,
        ScaleComponentCommand {
            component_ref: image_ref.to_string(),
            component_id: id.to_string(),
            max_instances: count,
            host_id: host.to_string(),
            ..Default::default()
        },
    )
    .await
}

/// Sends `cmd` and waits for its `component_scaled` (or
/// `component_scale_failed`) event, which it returns.
pub async fn scale_with(
    l: &mut TestLattice,
    cmd: ScaleComponentCommand,
) -> anyhow::Result<serde_json::Value> {
    let resp = l.ctl.scale_component(&cmd).await?;
    anyhow::ensure!(resp.success, "scale rejected: {}", resp.message);
    let (host, id, count) = (cmd.host_id, cmd.component_id, cmd.max_instances);
    l.events
        .wait_for(
            |e| {
                let ty = e["type"].as_str().unwrap_or_default();
                (ty.ends_with("component_scaled") || ty.ends_with("component_scale_failed"))
                    && e["data"]["component_id"] == id.as_str()
                    && e["data"]["host_id"] == host.as_str()
                    && (ty.ends_with("failed") || e["data"]["max_instances"] == count)
            },
            WAIT,
        )
        .await
}

/// Starts provider `id` from `image_ref` on `host` and waits for its
/// `provider_started` event, which it returns.
pub async fn start_provider(
    l: &mut TestLattice,
    host: &str,
    id: &str,
    image_ref: &str,
) -> anyhow::Result<serde_json::Value> {
    start_provider_with_config(l, host, id, image_ref, &[]).await
}

/// [`start_provider`] with the provider's named configs.
pub async fn start_provider_with_config(
    l: &mut TestLattice,
    host: &str,
    id: &str,
    image_ref: &str,
    config: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let resp = l
        .ctl
        .start_provider(&StartProviderCommand {
            provider_id: id.to_string(),
            provider_ref: image_ref.to_string(),
            host_id: host.to_string(),
            config: config.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        })
        .await?;
    anyhow::ensure!(resp.success, "provider start rejected: {}", resp.message);
    l.events
        .wait_for_type("provider_started", |e| e["data"]["provider_id"] == id, WAIT)
        .await
}

/// Starts the built-in HTTP server on `host` and links it to `component_id`
/// on `127.0.0.1:{port}`. Returns the port.
pub async fn expose_http(
    l: &mut TestLattice,
    host: &str,
    component_id: &str,
) -> anyhow::Result<u16> {
    let port = free_port()?;
    let provider_id = format!("http-server-{port}");
    let config_name = format!("http-{port}");
    let values = HashMap::from([("address".to_string(), format!("127.0.0.1:{port}"))]);
    l.ctl.put_config(&config_name, &values).await?;
    start_provider(l, host, &provider_id, "builtin://http-server").await?;
    let resp = l
        .ctl
        .put_link(&Link {
            source_id: provider_id,
            target: component_id.to_string(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            interfaces: vec!["incoming-handler".into()],
            source_config: vec![config_name],
            target_config: vec![],
        })
        .await?;
    anyhow::ensure!(resp.success, "link put rejected: {}", resp.message);
    Ok(port)
}

/// One HTTP/1.1 GET; returns status and body.
pub async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("connect to 127.0.0.1:{port}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", format!("127.0.0.1:{port}"))
        .body(Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Polls `GET path` until it returns `want_status`, or fails after `WAIT`.
pub async fn http_until(port: u16, path: &str, want_status: u16) -> anyhow::Result<String> {
    trellis_tests::eventually(WAIT, || async move {
        let (status, body) = http_get(port, path).await?;
        anyhow::ensure!(
            status == want_status,
            "GET {path} returned {status}: {body}"
        );
        Ok(body)
    })
    .await
}

/// The SDK's example provider (`examples/providers/system-info`), as a
/// `file://` reference.
pub fn system_info_provider_ref() -> anyhow::Result<String> {
    let binary = trellis_tests::host::workspace_binary(
        "system-info-provider",
        "SYSTEM_INFO_PROVIDER_BIN",
        "system-info-provider",
    )?;
    Ok(format!("file://{}", binary.display()))
}

/// A `trellis:system-info` link (`info`: component → provider; `invoker`:
/// provider → component) named `default`.
pub fn system_info_link(source: &str, target: &str, interface: &str) -> Link {
    Link {
        source_id: source.into(),
        target: target.into(),
        name: "default".into(),
        wit_namespace: "trellis".into(),
        wit_package: "system-info".into(),
        interfaces: vec![interface.into()],
        ..Default::default()
    }
}

/// `answered()` of a `ponger` through a `pinger` whose HTTP route is on
/// `port`, `times` calls in a row: 1 on a fresh instance, N on a reused
/// instance answering its Nth call.
pub async fn answered(port: u16, times: usize) -> anyhow::Result<Vec<u32>> {
    let mut seen = Vec::new();
    for _ in 0..times {
        let (code, body) = http_get(port, "/answered").await?;
        anyhow::ensure!(code == 200, "{code} {body}");
        let n = body
            .trim()
            .strip_prefix("answered ")
            .with_context(|| format!("unexpected body {body:?}"))?;
        seen.push(n.parse()?);
    }
    Ok(seen)
}

/// `file://` reference of a guest component built from this repository.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly on purpose"
)]
pub fn image(name: &str) -> String {
    format!("file://{}", component_path(name).unwrap().display())
}

/// A link from `source`'s `example:pong/pingpong` import to `target`, named `name`.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly on purpose"
)]
pub fn pong_link(source: &str, target: &str, name: &str) -> Link {
    Link {
        source_id: source.into(),
        target: target.into(),
        name: name.into(),
        wit_namespace: "example".into(),
        wit_package: "pong".into(),
        interfaces: vec!["pingpong".into()],
        ..Default::default()
    }
}

/// Puts `link`; the test fails if the host refuses it.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly on purpose"
)]
pub async fn put_link(l: &TestLattice, link: Link) {
    let resp = l.ctl.put_link(&link).await.unwrap();
    assert!(resp.success, "link put rejected: {}", resp.message);
}

/// The call counters of `host` from its next liveness beats, once `done` holds.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly on purpose"
)]
pub async fn counts_until(
    l: &TestLattice,
    host: &HostProcess,
    done: impl Fn(&CallCounts) -> bool,
) -> CallCounts {
    let beat = beat_until(l, host, |beat| {
        done(&beat.calls.expect("Trellis hosts report call counts"))
    })
    .await;
    beat.calls.unwrap_or_default()
}

/// The next liveness beat of `host` for which `done` holds.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly on purpose"
)]
pub async fn beat_until(
    l: &TestLattice,
    host: &HostProcess,
    done: impl Fn(&LivenessBeat) -> bool,
) -> LivenessBeat {
    let mut sub = l
        .client
        .subscribe(liveness_subject(&l.lattice, host.id()))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await else {
            continue;
        };
        let beat: LivenessBeat = serde_json::from_slice(&msg.payload).unwrap();
        if done(&beat) {
            return beat;
        }
        last = Some(beat);
    }
    panic!(
        "host {} never sent the expected beat; last {last:?}",
        host.id()
    );
}
