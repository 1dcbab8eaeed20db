//! A byte-echo wRPC server for the soak test and the bench:
//! `echo-server <nats-url> <prefix> [delay-ms]` serves
//! `trellis-test:soak/echo.echo` (any params are returned as results, which
//! is a valid `func(s: string) -> string`), prints `ready` once subscribed
//! and runs until killed.

use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use trellis_wrpc::{Transport, TransportOptions};
use wrpc_transport::Serve as _;

/// Instance and function served.
const INSTANCE: &str = "trellis-test:soak/echo";
const FUNC: &str = "echo";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .context("usage: echo-server <nats-url> <prefix> [delay-ms]")?;
    let prefix = args
        .next()
        .context("usage: echo-server <nats-url> <prefix> [delay-ms]")?;
    let delay = Duration::from_millis(args.next().map(|d| d.parse()).transpose()?.unwrap_or(0));
    let nats = async_nats::connect(&url).await?;
    let transport = Transport::new(nats, TransportOptions::default()).await?;
    let server = transport.server(prefix.clone(), Some(prefix));
    let invocations = server
        .serve(INSTANCE, FUNC, Vec::<Box<[Option<usize>]>>::new())
        .await?;
    println!("ready");
    let mut invocations = std::pin::pin!(invocations);
    while let Some(item) = invocations.next().await {
        let (_cx, mut results, mut params) = item?;
        tokio::spawn(async move {
            let mut buf = Vec::new();
            params.read_to_end(&mut buf).await?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            results.write_all(&buf).await?;
            results.shutdown().await?;
            anyhow::Ok(())
        });
    }
    Ok(())
}
