//! `Counters` against a real nats-server with JetStream.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt as _;
use trellis_nats_counter::{Counters, IncrementError};
use trellis_tests::nats::NatsServer;

async fn bucket(nats: &NatsServer, name: &str) -> anyhow::Result<kv::Store> {
    let client = nats.connect().await?;
    let js = jetstream::new(client);
    Ok(js
        .create_key_value(kv::Config {
            bucket: name.into(),
            history: 1,
            ..Default::default()
        })
        .await?)
}

/// Counts the direct-get requests (reads) JetStream receives for `bucket`.
async fn count_reads(nats: &NatsServer, bucket: &str) -> anyhow::Result<Arc<AtomicUsize>> {
    let client = nats.connect().await?;
    let mut sub = client
        .subscribe(format!("$JS.API.DIRECT.GET.KV_{bucket}.>"))
        .await?;
    client.flush().await?;
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    tokio::spawn(async move {
        let _client = client;
        while sub.next().await.is_some() {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    Ok(count)
}

/// Reads `marker` through `store` (the same connection as the reads being
/// counted, so NATS delivers them to the observer in order) and waits until
/// the observer has seen it: every read sent before it has been counted.
async fn count_settled(
    store: &kv::Store,
    reads: &AtomicUsize,
    marker: &str,
) -> anyhow::Result<usize> {
    let before = reads.load(Ordering::SeqCst);
    store.get(marker).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = reads.load(Ordering::SeqCst);
        if now > before {
            // The marker's own read is not one of the counted ones.
            return Ok(now - 1);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the read observer never saw the marker"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_key_is_incremented_without_a_read() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let store = bucket(&nats, "warm").await?;
    let reads = count_reads(&nats, "warm").await?;
    let counters = Counters::new(store);
    assert_eq!(counters.increment("hits", 1).await?, 1);
    let after_first = count_settled(counters.store(), &reads, "marker-1").await?;
    assert_eq!(after_first, 1, "the first increment reads the key once");
    for expected in 2..=20 {
        assert_eq!(counters.increment("hits", 1).await?, expected);
    }
    let after_all = count_settled(counters.store(), &reads, "marker-2").await?;
    assert_eq!(
        after_all,
        // The first marker's read is counted now.
        after_first + 1,
        "increments of a remembered key must not read it again"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_revision_falls_back_to_a_read_and_loses_nothing() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let store = bucket(&nats, "stale").await?;
    let counters = Counters::new(store.clone());
    assert_eq!(counters.increment("n", 5).await?, 5);
    // Another writer (another host or a `set`) changes the key behind its back.
    store.put("n", "100".into()).await?;
    assert_eq!(counters.increment("n", 1).await?, 101);
    // Deleted and purged keys count from 0 again.
    store.delete("n").await?;
    assert_eq!(counters.increment("n", 2).await?, 2);
    store.purge("n").await?;
    assert_eq!(counters.increment("n", 3).await?, 3);
    // Not a counter: the value is named, nothing is written.
    store.put("n", "ten".into()).await?;
    assert_eq!(
        counters.increment("n", 1).await,
        Err(IncrementError::NotACounter {
            value: "ten".into()
        })
    );
    assert_eq!(store.get("n").await?.as_deref(), Some(&b"ten"[..]));
    store.put("n", u64::MAX.to_string().into()).await?;
    assert_eq!(
        counters.increment("n", 1).await,
        Err(IncrementError::Overflow {
            current: u64::MAX,
            delta: 1
        })
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_from_two_processes_are_each_counted_once() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let store = bucket(&nats, "race").await?;
    // Two `Counters` on two connections: two hosts or provider instances.
    let other = jetstream::new(nats.connect().await?)
        .get_key_value("race")
        .await?;
    let sides = [Counters::new(store), Counters::new(other)];
    let per_side = 150u64;
    let mut calls = Vec::new();
    for counters in &sides {
        for i in 0..per_side {
            let counters = Arc::clone(counters);
            // One hot key and a few cooler ones.
            let key = if i % 3 == 0 { "cool" } else { "hot" };
            calls.push(tokio::spawn(async move {
                (key, counters.increment(key, 1).await)
            }));
        }
    }
    let mut seen: [BTreeSet<u64>; 2] = [BTreeSet::new(), BTreeSet::new()];
    for call in calls {
        let (key, value) = call.await?;
        let value = value?;
        let set = if key == "hot" {
            &mut seen[0]
        } else {
            &mut seen[1]
        };
        assert!(set.insert(value), "{key} returned {value} twice");
    }
    let [hot, cool] = seen;
    let hot_total = 2 * (per_side - per_side.div_ceil(3));
    let cool_total = 2 * per_side.div_ceil(3);
    // Every caller got its own value, and the values are exactly 1..=n.
    assert_eq!(hot, (1..=hot_total).collect::<BTreeSet<_>>());
    assert_eq!(cool, (1..=cool_total).collect::<BTreeSet<_>>());
    let reader = &sides[0];
    assert_eq!(
        reader.store().get("hot").await?.as_deref(),
        Some(hot_total.to_string().as_bytes())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_increment_does_not_strand_the_ones_behind_it() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let store = bucket(&nats, "cancel").await?;
    let counters = Counters::new(store);
    for _ in 0..20 {
        // The first call leads and is cancelled at once; the others queued
        // behind it must still be answered.
        let lead = tokio::spawn({
            let counters = Arc::clone(&counters);
            async move { counters.increment("k", 1).await }
        });
        let followers: Vec<_> = (0..5)
            .map(|_| {
                let counters = Arc::clone(&counters);
                tokio::spawn(async move { counters.increment("k", 1).await })
            })
            .collect();
        lead.abort();
        for follower in followers {
            let value = tokio::time::timeout(Duration::from_secs(10), follower).await???;
            assert!(value >= 1);
        }
    }
    Ok(())
}
