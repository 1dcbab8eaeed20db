//! The built `keyvalue-redis-provider`, started as a host starts it, against
//! a real nats-server (the lattice) and a real redis-server; a native wRPC
//! client plays the linked component.

#[path = "../../keyvalue-nats/tests/common/mod.rs"]
mod common;

use common::{Caller, ProviderProcess, WAIT, atomics, health, kv_link, put_link, store};
use trellis_tests::redis::RedisServer;
use trellis_tests::{NatsServer, eventually};

const BINARY: &str = env!("CARGO_BIN_EXE_keyvalue-redis-provider");
const PROVIDER: &str = "kv-redis";
const COMPONENT: &str = "counter";

#[tokio::test]
async fn store_atomics_and_batch_on_redis() {
    let nats = NatsServer::start().await.unwrap();
    let redis = RedisServer::start().await.unwrap();
    // URL and page size from the provider's config; the link has none.
    let _provider = ProviderProcess::start(
        BINARY,
        &nats,
        PROVIDER,
        &[("URL", &redis.url()), ("list_keys_page_size", "5")],
        vec![kv_link(COMPONENT, PROVIDER, &[])],
    )
    .await
    .unwrap();
    let caller = Caller::new(&nats, PROVIDER, COMPONENT).await.unwrap();
    caller.wait_ready().await.unwrap();
    common::exercise_store_atomics_batch(&caller).await.unwrap();
}

#[tokio::test]
async fn data_survives_provider_and_redis_restarts() {
    let nats = NatsServer::start().await.unwrap();
    let mut redis = RedisServer::start().await.unwrap();
    // The link's own URL overrides the provider's (unreachable) default.
    let mut provider = ProviderProcess::start(
        BINARY,
        &nats,
        PROVIDER,
        &[("URL", "redis://127.0.0.1:1")],
        vec![kv_link(COMPONENT, PROVIDER, &[("URL", &redis.url())])],
    )
    .await
    .unwrap();
    let caller = Caller::new(&nats, PROVIDER, COMPONENT).await.unwrap();
    caller.wait_ready().await.unwrap();
    caller.set("name", "trellis").await.unwrap();
    for _ in 0..3 {
        atomics::increment(&caller.client, caller.cx(), "default", "visits", 1)
            .await
            .unwrap()
            .unwrap();
    }

    // The provider crashes and comes back.
    provider.kill_and_restart().await.unwrap();
    let name = eventually(WAIT, || async {
        caller
            .get("name")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no value yet"))
    })
    .await
    .unwrap();
    assert_eq!(name, "trellis");
    assert_eq!(caller.get("visits").await.unwrap().as_deref(), Some("3"));

    // Redis goes away: calls fail with Redis's reason, the provider stays up.
    redis.kill().unwrap();
    let down = caller.get("name").await.unwrap_err().to_string();
    assert!(down.contains("Redis GET"), "{down}");
    assert!(provider.is_running());

    // Redis comes back with every acknowledged write; the provider reconnects.
    redis.restart().await.unwrap();
    let visits = eventually(WAIT, || async {
        atomics::increment(&caller.client, caller.cx(), "default", "visits", 1)
            .await?
            .map_err(|e| anyhow::anyhow!("{e:?}"))
    })
    .await
    .unwrap();
    assert_eq!(visits, 4);
    assert_eq!(
        caller.get("name").await.unwrap().as_deref(),
        Some("trellis")
    );
}

#[tokio::test]
async fn bad_links_get_clear_errors_and_the_provider_stays_up() {
    let nats = NatsServer::start().await.unwrap();
    let redis = RedisServer::start().await.unwrap();
    let host = nats.connect().await.unwrap();
    let mut provider = ProviderProcess::start(
        BINARY,
        &nats,
        PROVIDER,
        &[],
        vec![kv_link(COMPONENT, PROVIDER, &[("URL", "not a url")])],
    )
    .await
    .unwrap();
    let caller = Caller::new(&nats, PROVIDER, COMPONENT).await.unwrap();
    caller.wait_ready().await.unwrap();

    let refused = store::get(&caller.client, caller.cx(), "default", "k")
        .await
        .unwrap()
        .unwrap_err();
    let message = match &refused {
        store::Error::Other(message) => message.clone(),
        other => format!("not error::other: {other:?}"),
    };
    assert!(message.contains("is not a Redis URL"), "{message}");
    assert!(message.contains(COMPONENT), "{message}");

    let stranger = Caller::new(&nats, PROVIDER, "stranger").await.unwrap();
    let unlinked = stranger.get("k").await.unwrap_err().to_string();
    assert!(
        unlinked.contains("has no link named `default`"),
        "{unlinked}"
    );

    assert!(provider.is_running());
    let h = health(&host, PROVIDER).await.unwrap();
    assert!(h.healthy);
    assert!(
        h.message
            .as_deref()
            .unwrap_or("")
            .contains("1 link(s), 1 with unusable config"),
        "{h:?}"
    );

    // Fixing the link makes the calls work.
    put_link(
        &host,
        PROVIDER,
        &kv_link(COMPONENT, PROVIDER, &[("URL", &redis.url())]),
    )
    .await
    .unwrap();
    eventually(WAIT, || caller.set("k", "v")).await.unwrap();
    assert_eq!(caller.get("k").await.unwrap().as_deref(), Some("v"));
}
