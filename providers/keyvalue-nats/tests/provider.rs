//! The built `keyvalue-nats-provider`, started as a host starts it, against a
//! real nats-server with JetStream; a native wRPC client plays the linked
//! component.

mod common;

use common::{Caller, ProviderProcess, WAIT, health, kv_link, put_link, store};
use trellis_tests::{NatsServer, eventually};

const BINARY: &str = env!("CARGO_BIN_EXE_keyvalue-nats-provider");
const PROVIDER: &str = "kv-nats";
const COMPONENT: &str = "counter";

#[tokio::test]
async fn store_atomics_and_batch_on_jetstream_kv() {
    let nats = NatsServer::start().await.unwrap();
    // Page size from the provider's config, bucket from the link.
    let link = kv_link(
        COMPONENT,
        PROVIDER,
        &[
            ("bucket", "counters"),
            ("enable_bucket_auto_create", "true"),
        ],
    );
    let _provider = ProviderProcess::start(
        BINARY,
        &nats,
        PROVIDER,
        &[("list_keys_page_size", "7")],
        vec![link],
    )
    .await
    .unwrap();
    let caller = Caller::new(&nats, PROVIDER, COMPONENT).await.unwrap();
    caller.wait_ready().await.unwrap();
    common::exercise_store_atomics_batch(&caller).await.unwrap();

    // The values are in the JetStream bucket the link named.
    let js = async_nats::jetstream::new(nats.connect().await.unwrap());
    let bucket = js.get_key_value("counters").await.unwrap();
    assert_eq!(
        bucket.get("hits").await.unwrap().unwrap(),
        bytes::Bytes::from("205")
    );
}

#[tokio::test]
async fn data_survives_a_provider_restart() {
    let nats = NatsServer::start().await.unwrap();
    // Bucket from the provider's config this time; the link has none.
    let mut provider = ProviderProcess::start(
        BINARY,
        &nats,
        PROVIDER,
        &[("bucket", "durable"), ("enable_bucket_auto_create", "true")],
        vec![kv_link(COMPONENT, PROVIDER, &[])],
    )
    .await
    .unwrap();
    let caller = Caller::new(&nats, PROVIDER, COMPONENT).await.unwrap();
    caller.wait_ready().await.unwrap();
    caller.set("name", "trellis").await.unwrap();
    for _ in 0..3 {
        common::atomics::increment(&caller.client, caller.cx(), "default", "visits", 1)
            .await
            .unwrap()
            .unwrap();
    }

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
    let next = common::atomics::increment(&caller.client, caller.cx(), "default", "visits", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, 4);
    assert!(provider.is_running());
}

#[tokio::test]
async fn bad_links_get_clear_errors_and_the_provider_stays_up() {
    let nats = NatsServer::start().await.unwrap();
    let host = nats.connect().await.unwrap();
    let mut provider = ProviderProcess::start(
        BINARY,
        &nats,
        PROVIDER,
        &[],
        vec![
            // No bucket anywhere.
            kv_link(COMPONENT, PROVIDER, &[]),
            // A bucket that does not exist, no auto-create.
            kv_link("other", PROVIDER, &[("bucket", "nowhere")]),
        ],
    )
    .await
    .unwrap();
    let caller = Caller::new(&nats, PROVIDER, COMPONENT).await.unwrap();
    caller.wait_ready().await.unwrap();

    let no_bucket = store::get(&caller.client, caller.cx(), "default", "k")
        .await
        .unwrap()
        .unwrap_err();
    let message = match &no_bucket {
        store::Error::Other(message) => message.clone(),
        other => format!("not error::other: {other:?}"),
    };
    assert!(message.contains("no `bucket`"), "{message}");
    assert!(message.contains(COMPONENT), "{message}");

    let other = Caller::new(&nats, PROVIDER, "other").await.unwrap();
    let missing = other.get("k").await.unwrap_err().to_string();
    assert!(missing.contains("nowhere"), "{missing}");
    assert!(missing.contains("enable_bucket_auto_create"), "{missing}");

    let stranger = Caller::new(&nats, PROVIDER, "stranger").await.unwrap();
    let unlinked = stranger.get("k").await.unwrap_err().to_string();
    assert!(
        unlinked.contains("has no link named `default`"),
        "{unlinked}"
    );

    // Still up and healthy; fixing the link makes the calls work.
    assert!(provider.is_running());
    let h = health(&host, PROVIDER).await.unwrap();
    assert!(h.healthy);
    assert!(
        h.message
            .as_deref()
            .unwrap_or("")
            .contains("2 link(s), 1 with unusable config"),
        "{h:?}"
    );
    put_link(
        &host,
        PROVIDER,
        &kv_link(
            COMPONENT,
            PROVIDER,
            &[("bucket", "fixed"), ("enable_bucket_auto_create", "true")],
        ),
    )
    .await
    .unwrap();
    eventually(WAIT, || caller.set("k", "v")).await.unwrap();
    assert_eq!(caller.get("k").await.unwrap().as_deref(), Some("v"));
}
