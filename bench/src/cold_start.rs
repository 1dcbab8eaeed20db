//! Cold-start benchmark: time from a `component.scale` request to the
//! `component_scaled` event, for one component, repeated N times (scaling to 0
//! in between). The first iteration on an empty precompiled cache is the
//! "first start"; the rest hit the warm cache.
//!
//! Usage: `cold-start <nats-url> <lattice> <host-id> <component-ref> <iterations>`
//! Prints one line per iteration and a summary (min / median / max, ms).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, lattice, host_id, component_ref, iterations] = args.as_slice() else {
        bail!("usage: cold-start <nats-url> <lattice> <host-id> <component-ref> <iterations>");
    };
    let iterations: usize = iterations.parse().context("iterations")?;
    let nats = async_nats::connect(url.as_str()).await?;
    let mut events = nats
        .subscribe(format!("wasmbus.evt.{lattice}.component_scaled"))
        .await?;
    let scale_subject = format!("wasmbus.ctl.v1.{lattice}.component.scale.{host_id}");
    let mut samples = Vec::new();
    for i in 0..iterations {
        let id = "coldstart";
        let started = Instant::now();
        scale(&nats, &scale_subject, host_id, component_ref, id, 1).await?;
        wait_scaled(&mut events, id, 1).await?;
        let elapsed = started.elapsed();
        println!("iteration {i}: {:.2} ms", elapsed.as_secs_f64() * 1000.0);
        samples.push(elapsed);
        scale(&nats, &scale_subject, host_id, component_ref, id, 0).await?;
        wait_scaled(&mut events, id, 0).await?;
    }
    let first = samples.first().copied().unwrap_or_default();
    let mut warm: Vec<Duration> = samples.iter().skip(1).copied().collect();
    warm.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("first start: {:.2} ms", ms(first));
    if let (Some(min), Some(max)) = (warm.first(), warm.last()) {
        let median = warm.get(warm.len() / 2).copied().unwrap_or_default();
        println!(
            "warm cache ({} runs): min {:.2} ms, median {:.2} ms, max {:.2} ms",
            warm.len(),
            ms(*min),
            ms(median),
            ms(*max)
        );
    }
    Ok(())
}

async fn scale(
    nats: &async_nats::Client,
    subject: &str,
    host_id: &str,
    component_ref: &str,
    id: &str,
    count: u32,
) -> anyhow::Result<()> {
    let body = json!({"component_ref": component_ref, "component_id": id, "count": count, "host_id": host_id, "config": [], "allow_update": false});
    let reply = nats
        .request(subject.to_string(), serde_json::to_vec(&body)?.into())
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    if v.get("success") != Some(&serde_json::Value::Bool(true)) {
        bail!("scale rejected: {v}");
    }
    Ok(())
}

async fn wait_scaled(
    events: &mut async_nats::Subscriber,
    id: &str,
    count: u64,
) -> anyhow::Result<()> {
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => bail!("no component_scaled for {id} within 60 s"),
            msg = events.next() => {
                let Some(msg) = msg else { bail!("event subscription closed") };
                let v: serde_json::Value = serde_json::from_slice(&msg.payload)?;
                let component_id = v.pointer("/data/component_id").and_then(serde_json::Value::as_str);
                let max_instances = v.pointer("/data/max_instances").and_then(serde_json::Value::as_u64);
                if component_id == Some(id) && max_instances == Some(count) {
                    return Ok(());
                }
            }
        }
    }
}
