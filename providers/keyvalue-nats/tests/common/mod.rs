//! What the keyvalue provider tests share (the Redis provider's tests include
//! this file too): the provider binary started as a host starts it, and a
//! native wRPC client of `wrpc:keyvalue` standing in for a linked component.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use nkeys::XKey;
use tokio::io::AsyncWriteExt as _;
use trellis_interfaces::provider::{
    HealthCheckResponse, HostData, InterfaceLinkDefinition, ProviderSubjects,
};
use trellis_provider_sdk::trellis_wrpc::{Transport, TransportOptions, headers};
use trellis_tests::{NatsServer, eventually};

pub mod client {
    wit_bindgen_wrpc::generate!({
        inline: "
            package trellis:keyvalue-test;

            world client {
                import wrpc:keyvalue/store@0.2.0-draft;
                import wrpc:keyvalue/atomics@0.2.0-draft;
                import wrpc:keyvalue/batch@0.2.0-draft;
            }
        ",
        path: ["../../interfaces/wit/deps/wrpc-keyvalue"],
        world: "trellis:keyvalue-test/client",
        generate_all,
    });
}

pub use client::wrpc::keyvalue::{atomics, batch, store};

pub const LATTICE: &str = "default";
pub const HOST: &str = "NHOSTKVTEST";
/// How long anything in these tests may take to become true.
pub const WAIT: Duration = Duration::from_secs(15);

/// A link from `source` to the provider for `wasi:keyvalue`, with `config`
/// as its target config.
pub fn kv_link(source: &str, provider: &str, config: &[(&str, &str)]) -> InterfaceLinkDefinition {
    InterfaceLinkDefinition {
        source_id: source.into(),
        target: provider.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into(), "atomics".into(), "batch".into()],
        target_config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// A provider process started the way a host starts it: environment
/// cleared, base64 host data on stdin. Killed on drop.
pub struct ProviderProcess {
    binary: String,
    host_data: HostData,
    child: tokio::process::Child,
}

impl ProviderProcess {
    /// Starts `binary` as provider `provider_id` on `nats`, with provider
    /// config `config` and start links `links`.
    pub async fn start(
        binary: &str,
        nats: &NatsServer,
        provider_id: &str,
        config: &[(&str, &str)],
        links: Vec<InterfaceLinkDefinition>,
    ) -> anyhow::Result<Self> {
        let host_xkey = XKey::new();
        let provider_xkey = XKey::new();
        let host_data = HostData {
            host_id: HOST.into(),
            lattice_rpc_prefix: LATTICE.into(),
            link_name: "default".into(),
            lattice_rpc_url: nats.url(),
            provider_key: provider_id.into(),
            instance_id: "kv-test-instance".into(),
            host_xkey_public_key: host_xkey.public_key(),
            provider_xkey_private_key: provider_xkey.seed()?,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            link_definitions: links,
            ..Default::default()
        };
        let child = spawn(binary, &host_data).await?;
        Ok(Self {
            binary: binary.to_string(),
            host_data,
            child,
        })
    }

    /// SIGKILL, as a crash would; then a new process with the same host data.
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing the provider")?;
        self.child = spawn(&self.binary, &self.host_data).await?;
        Ok(())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

async fn spawn(binary: &str, host_data: &HostData) -> anyhow::Result<tokio::process::Child> {
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {binary}"))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    stdin.write_all(&host_data.to_stdin()?).await?;
    drop(stdin);
    Ok(child)
}

/// A native stand-in for a component linked to the provider: calls carry
/// its id as `source-id` and the link name `default`.
pub struct Caller {
    pub client: trellis_provider_sdk::trellis_wrpc::TargetClient,
    pub headers: async_nats::HeaderMap,
}

impl Caller {
    /// A caller with id `source_id` calling provider `provider_id`.
    pub async fn new(
        nats: &NatsServer,
        provider_id: &str,
        source_id: &str,
    ) -> anyhow::Result<Self> {
        let transport = Transport::new(nats.connect().await?, TransportOptions::default()).await?;
        let client = transport
            .client()
            .target(format!("{LATTICE}.{provider_id}"));
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(headers::SOURCE_ID, source_id);
        Ok(Self { client, headers })
    }

    /// Headers for one call.
    pub fn cx(&self) -> Option<async_nats::HeaderMap> {
        Some(self.headers.clone())
    }

    /// `store.get` as text.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let value = store::get(&self.client, self.cx(), "default", key)
            .await?
            .map_err(|e| anyhow::anyhow!("get {key}: {e:?}"))?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// `store.set` of text.
    pub async fn set(&self, key: &str, value: &str) -> anyhow::Result<()> {
        store::set(
            &self.client,
            self.cx(),
            "default",
            key,
            &bytes::Bytes::from(value.to_string()),
        )
        .await?
        .map_err(|e| anyhow::anyhow!("set {key}: {e:?}"))
    }

    /// Every key, following cursors; also returns the number of pages.
    pub async fn all_keys(&self) -> anyhow::Result<(Vec<String>, usize)> {
        let mut keys = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = store::list_keys(&self.client, self.cx(), "default", cursor)
                .await?
                .map_err(|e| anyhow::anyhow!("list-keys: {e:?}"))?;
            pages += 1;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
            anyhow::ensure!(pages < 10_000, "list-keys never ends");
        }
        keys.sort();
        Ok((keys, pages))
    }

    /// Waits until the provider answers (its exports are subscribed and the
    /// link is known): a `get` that returns without a transport error.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        eventually(WAIT, || async {
            let _answered =
                store::get(&self.client, self.cx(), "default", "readiness-probe").await?;
            Ok(())
        })
        .await
    }
}

/// The provider's health, via the host's subject.
pub async fn health(
    nats: &async_nats::Client,
    provider_id: &str,
) -> anyhow::Result<HealthCheckResponse> {
    let subject = ProviderSubjects::new(LATTICE).health(provider_id);
    let reply = tokio::time::timeout(Duration::from_secs(2), nats.request(subject, "".into()))
        .await
        .context("health request timed out")??;
    Ok(serde_json::from_slice(&reply.payload)?)
}

/// Puts `link` as a host does.
pub async fn put_link(
    nats: &async_nats::Client,
    provider_id: &str,
    link: &InterfaceLinkDefinition,
) -> anyhow::Result<()> {
    let subject = ProviderSubjects::new(LATTICE).link_put(provider_id);
    nats.publish(subject, serde_json::to_vec(link)?.into())
        .await?;
    nats.flush().await?;
    Ok(())
}

/// Checks the store, atomics and batch interfaces end to end on a provider
/// linked for `caller` whose list-keys pages hold at most `page_size` keys
/// (when the backend honours it).
pub async fn exercise_store_atomics_batch(caller: &Caller) -> anyhow::Result<()> {
    use bytes::Bytes;
    let c = &caller.client;
    let cx = || caller.cx();

    // store
    assert_eq!(caller.get("missing").await?, None);
    assert!(
        !store::exists(c, cx(), "default", "greeting")
            .await?
            .map_err(err)?
    );
    caller.set("greeting", "hello").await?;
    assert_eq!(caller.get("greeting").await?.as_deref(), Some("hello"));
    assert!(
        store::exists(c, cx(), "default", "greeting")
            .await?
            .map_err(err)?
    );
    caller.set("greeting", "hello again").await?;
    assert_eq!(
        caller.get("greeting").await?.as_deref(),
        Some("hello again")
    );
    store::delete(c, cx(), "default", "greeting")
        .await?
        .map_err(err)?;
    assert_eq!(caller.get("greeting").await?, None);
    assert!(
        !store::exists(c, cx(), "default", "greeting")
            .await?
            .map_err(err)?
    );
    store::delete(c, cx(), "default", "never-there")
        .await?
        .map_err(err)?;

    // list-keys, over several pages
    let mut expected: Vec<String> = (0..25).map(|i| format!("item-{i:02}")).collect();
    for key in &expected {
        caller.set(key, key).await?;
    }
    let (keys, pages) = caller.all_keys().await?;
    expected.sort();
    assert_eq!(keys, expected, "list-keys over {pages} page(s)");
    assert!(pages > 1, "25 keys came back in a single page");

    // batch
    let (one, two, three) = (Bytes::from("1"), Bytes::from("2"), Bytes::from("3"));
    let pairs = [("batch-a", &one), ("batch-b", &two), ("batch-c", &three)];
    batch::set_many(c, cx(), "default", &pairs)
        .await?
        .map_err(err)?;
    let got = batch::get_many(c, cx(), "default", &["batch-a", "batch-nope", "batch-c"])
        .await?
        .map_err(err)?;
    assert_eq!(
        got,
        vec![
            Some(("batch-a".to_string(), Bytes::from("1"))),
            None,
            Some(("batch-c".to_string(), Bytes::from("3"))),
        ]
    );
    batch::delete_many(c, cx(), "default", &["batch-a", "batch-b", "batch-nope"])
        .await?
        .map_err(err)?;
    assert_eq!(caller.get("batch-a").await?, None);
    assert_eq!(caller.get("batch-b").await?, None);
    assert_eq!(caller.get("batch-c").await?.as_deref(), Some("3"));
    batch::set_many(c, cx(), "default", &[])
        .await?
        .map_err(err)?;
    assert_eq!(
        batch::get_many(c, cx(), "default", &[])
            .await?
            .map_err(err)?,
        vec![]
    );

    // increment: absent counts as 0; concurrent increments all count
    assert_eq!(
        atomics::increment(c, cx(), "default", "hits", 5)
            .await?
            .map_err(err)?,
        5
    );
    const TASKS: u64 = 8;
    const PER_TASK: u64 = 25;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let client = caller.client.clone();
        let headers = caller.headers.clone();
        tasks.spawn(async move {
            for _ in 0..PER_TASK {
                atomics::increment(&client, Some(headers.clone()), "default", "hits", 1)
                    .await?
                    .map_err(err)?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let total = 5 + TASKS * PER_TASK;
    assert_eq!(caller.get("hits").await?, Some(total.to_string()));
    assert_eq!(
        atomics::increment(c, cx(), "default", "hits", 0)
            .await?
            .map_err(err)?,
        total
    );
    // A value that is not a counter is refused with a reason.
    caller.set("not-a-number", "abc").await?;
    let refused = atomics::increment(c, cx(), "default", "not-a-number", 1).await?;
    anyhow::ensure!(
        matches!(&refused, Err(store::Error::Other(m)) if !m.is_empty()),
        "increment of a non-counter: {refused:?}"
    );
    Ok(())
}

fn err(e: store::Error) -> anyhow::Error {
    anyhow::anyhow!("keyvalue error: {e:?}")
}
