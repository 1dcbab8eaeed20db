//! Puts a running `trellis` host into the state a benchmark needs, through the
//! wasmCloud 1.x control interface only (so it works against any compatible
//! host).
//!
//! Usage:
//! - `lattice-setup <nats-url> <lattice> host-id`
//!   waits until a host answers `host.ping` and prints its id.
//! - `lattice-setup <nats-url> <lattice> serve <component.wasm> <addr> <max-instances>`
//!   stores config `bench-http` (`address` = `addr`), starts
//!   `builtin://http-server` as provider `web`, links it to component `hello`,
//!   scales `hello` from `file://<component.wasm>`, waits for
//!   `component_scaled`, then polls `http://<addr>/` until it answers 200.
//! - `lattice-setup <nats-url> <lattice> many <component.wasm> <count> <artifact-dir>`
//!   writes `count` distinct copies of the component into `artifact-dir` (each
//!   with its own custom section, so each has its own sha256 and is compiled
//!   and cached separately), scales each as `many-{i}` with one instance and
//!   waits until every one is scaled.
//!
//! Every mode prints `host_id=<id>` on stdout; progress goes to stderr.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long to wait for a host to answer its first ping.
const HOST_WAIT: Duration = Duration::from_secs(30);
/// How long to wait for components to be scaled (50 first-time compilations
/// on a busy two-core machine take a while).
const SCALE_WAIT: Duration = Duration::from_secs(600);
/// How long to wait for the HTTP route to answer 200.
const HTTP_WAIT: Duration = Duration::from_secs(30);
/// Delay between two polls (ping, HTTP).
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Reply timeout of one control request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Named config holding the listener address.
const HTTP_CONFIG_NAME: &str = "bench-http";
/// Provider id of the built-in HTTP server.
const HTTP_PROVIDER_ID: &str = "web";
/// Component id of the served component.
const HTTP_COMPONENT_ID: &str = "hello";
/// Name of the custom section that makes each `many` artifact distinct.
const VARIANT_SECTION: &str = "trellis-bench-variant";

struct Lattice {
    nats: async_nats::Client,
    name: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: lattice-setup <nats-url> <lattice> host-id\n       \
                 lattice-setup <nats-url> <lattice> serve <component.wasm> <addr> <max-instances>\n       \
                 lattice-setup <nats-url> <lattice> many <component.wasm> <count> <artifact-dir>";
    let (Some(url), Some(lattice), Some(mode)) = (args.first(), args.get(1), args.get(2)) else {
        bail!("{usage}");
    };
    let rest = args.get(3..).unwrap_or_default();
    let nats = async_nats::ConnectOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .connect(url.as_str())
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    let lattice = Lattice {
        nats,
        name: lattice.clone(),
    };
    let host_id = lattice.wait_for_host().await?;
    match (mode.as_str(), rest) {
        ("host-id", []) => {}
        ("serve", [component, addr, max]) => {
            let max: u32 = max.parse().context("max-instances")?;
            serve(&lattice, &host_id, Path::new(component), addr, max).await?;
        }
        ("many", [component, count, dir]) => {
            let count: usize = count.parse().context("count")?;
            many(
                &lattice,
                &host_id,
                Path::new(component),
                count,
                Path::new(dir),
            )
            .await?;
        }
        _ => bail!("{usage}"),
    }
    println!("host_id={host_id}");
    Ok(())
}

impl Lattice {
    fn subject(&self, op: &str) -> String {
        format!("wasmbus.ctl.v1.{}.{op}", self.name)
    }

    /// Sends a control request and fails unless the reply says `success`.
    async fn request(&self, op: &str, body: &Value) -> anyhow::Result<Value> {
        let reply = self
            .nats
            .request(self.subject(op), serde_json::to_vec(body)?.into())
            .await
            .with_context(|| format!("{op}: no reply"))?;
        let v: Value = serde_json::from_slice(&reply.payload)
            .with_context(|| format!("{op}: reply is not JSON"))?;
        if v.get("success") != Some(&Value::Bool(true)) {
            bail!("{op} rejected: {v}");
        }
        Ok(v)
    }

    /// Pings until a host answers; returns the first host's id.
    async fn wait_for_host(&self) -> anyhow::Result<String> {
        let deadline = Instant::now() + HOST_WAIT;
        loop {
            if let Ok(reply) = self.request("host.ping", &json!({})).await
                && let Some(id) = reply.pointer("/response/id").and_then(Value::as_str)
            {
                return Ok(id.to_string());
            }
            if Instant::now() > deadline {
                bail!(
                    "no host answered host.ping on lattice `{}` within {HOST_WAIT:?}",
                    self.name
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn events(&self) -> anyhow::Result<async_nats::Subscriber> {
        let sub = self
            .nats
            .subscribe(format!("wasmbus.evt.{}.>", self.name))
            .await?;
        // The subscription must be registered before the scale request goes out.
        self.nats.flush().await?;
        Ok(sub)
    }

    async fn scale(
        &self,
        host_id: &str,
        component: &Path,
        id: &str,
        count: u32,
    ) -> anyhow::Result<()> {
        let component_ref = format!("file://{}", component.display());
        let body = json!({"component_ref": component_ref, "component_id": id, "count": count,
                          "host_id": host_id, "config": [], "allow_update": false});
        self.request(&format!("component.scale.{host_id}"), &body)
            .await?;
        Ok(())
    }
}

/// Waits for `component_scaled` of every id in `pending`; a
/// `component_scale_failed` for one of them is an error.
async fn wait_scaled(
    events: &mut async_nats::Subscriber,
    mut pending: BTreeSet<String>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::sleep(SCALE_WAIT);
    tokio::pin!(deadline);
    while !pending.is_empty() {
        let msg = tokio::select! {
            _ = &mut deadline => bail!("{} components not scaled within {SCALE_WAIT:?}: {pending:?}", pending.len()),
            msg = events.next() => msg.context("event subscription closed")?,
        };
        let Ok(event) = serde_json::from_slice::<Value>(&msg.payload) else {
            continue;
        };
        let id = event
            .pointer("/data/component_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if msg.subject.ends_with(".component_scaled") {
            pending.remove(id);
        } else if msg.subject.ends_with(".component_scale_failed") && pending.contains(id) {
            bail!(
                "component `{id}` failed to scale: {}",
                event.pointer("/data/error").unwrap_or(&Value::Null)
            );
        }
    }
    Ok(())
}

async fn serve(
    lattice: &Lattice,
    host_id: &str,
    component: &Path,
    addr: &str,
    max: u32,
) -> anyhow::Result<()> {
    let component =
        std::fs::canonicalize(component).with_context(|| format!("{}", component.display()))?;
    let mut events = lattice.events().await?;
    lattice
        .request(
            &format!("config.put.{HTTP_CONFIG_NAME}"),
            &json!({"address": addr}),
        )
        .await?;
    lattice
        .request(
            &format!("provider.start.{host_id}"),
            &json!({"provider_id": HTTP_PROVIDER_ID, "provider_ref": "builtin://http-server",
                    "host_id": host_id, "config": []}),
        )
        .await?;
    lattice
        .request(
            "link.put",
            &json!({"source_id": HTTP_PROVIDER_ID, "target": HTTP_COMPONENT_ID, "name": "default",
                    "wit_namespace": "wasi", "wit_package": "http", "interfaces": ["incoming-handler"],
                    "source_config": [HTTP_CONFIG_NAME], "target_config": []}),
        )
        .await?;
    lattice
        .scale(host_id, &component, HTTP_COMPONENT_ID, max)
        .await?;
    wait_scaled(&mut events, BTreeSet::from([HTTP_COMPONENT_ID.to_string()])).await?;
    wait_http_ok(addr).await?;
    eprintln!(
        "serving {} on http://{addr}/ (max_instances {max})",
        component.display()
    );
    Ok(())
}

/// Polls `GET /` on `addr` until it answers 200.
async fn wait_http_ok(addr: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + HTTP_WAIT;
    loop {
        match http_status(addr).await {
            Ok(200) => return Ok(()),
            Ok(status) if Instant::now() > deadline => {
                bail!("http://{addr}/ still answers {status}")
            }
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("http://{addr}/ never answered")));
            }
            _ => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Status code of one `GET /` on `addr`, over a plain HTTP/1.1 connection.
async fn http_status(addr: &str) -> anyhow::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(REQUEST_TIMEOUT, stream.read_to_end(&mut response)).await??;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP response: {text:?}"))?;
    Ok(status)
}

async fn many(
    lattice: &Lattice,
    host_id: &str,
    component: &Path,
    count: usize,
    dir: &Path,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(component).with_context(|| format!("{}", component.display()))?;
    std::fs::create_dir_all(dir)?;
    let dir = std::fs::canonicalize(dir)?;
    let mut artifacts = Vec::with_capacity(count);
    for i in 0..count {
        let path: PathBuf = dir.join(format!("variant-{i}.wasm"));
        let mut variant = bytes.clone();
        variant.extend(custom_section(
            VARIANT_SECTION,
            format!("variant {i}").as_bytes(),
        ));
        std::fs::write(&path, variant)?;
        artifacts.push((format!("many-{i}"), path));
    }
    let mut events = lattice.events().await?;
    let started = Instant::now();
    for (id, path) in &artifacts {
        lattice.scale(host_id, path, id, 1).await?;
    }
    wait_scaled(
        &mut events,
        artifacts.iter().map(|(id, _)| id.clone()).collect(),
    )
    .await?;
    eprintln!(
        "{count} distinct components scaled in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}

/// A WebAssembly custom section: id 0, LEB128 size, LEB128 name length, name,
/// payload. Valid at the end of a module or a component.
fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut contents = leb128(name.len());
    contents.extend_from_slice(name.as_bytes());
    contents.extend_from_slice(payload);
    let mut section = vec![0u8];
    section.extend(leb128(contents.len()));
    section.extend(contents);
    section
}

fn leb128(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_matches_the_spec_examples() {
        assert_eq!(leb128(0), [0x00]);
        assert_eq!(leb128(127), [0x7f]);
        assert_eq!(leb128(128), [0x80, 0x01]);
        assert_eq!(leb128(624_485), [0xe5, 0x8e, 0x26]);
    }

    #[test]
    fn custom_section_layout() {
        let s = custom_section("ab", b"xyz");
        assert_eq!(s, [0, 6, 2, b'a', b'b', b'x', b'y', b'z']);
    }
}
