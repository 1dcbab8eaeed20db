//! The network side of one lattice's worker: control-interface requests that fetch
//! what wadm observes, and the requests that carry out the reconciler's commands.
//! Every function here runs in its own task and reports back as an [`Input`].

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::Instrument as _;
use trellis_interfaces::client::CtlClient;

use super::worker::{Fetch, Input};
use crate::command::Command;
use crate::observed::Observation;

/// Milliseconds on the worker's clock.
pub(crate) fn ms_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// Runs one fetch and reports what it learned (or that it failed).
pub(crate) async fn fetch(ctl: CtlClient, what: Fetch, start: Instant, tx: mpsc::Sender<Input>) {
    let observations = match &what {
        Fetch::Discover => match ctl.ping_hosts().await {
            Ok(hosts) => {
                let mut out = Vec::new();
                for host in hosts {
                    if let Ok(inventory) = ctl.get_host_inventory(&host.id).await {
                        out.push(Observation::Inventory {
                            inventory,
                            at_ms: ms_since(start),
                        });
                    }
                }
                Ok(out)
            }
            Err(e) => Err(e.to_string()),
        },
        Fetch::Inventory(host_id) => match ctl.get_host_inventory(host_id).await {
            Ok(inventory) => Ok(vec![Observation::Inventory {
                inventory,
                at_ms: ms_since(start),
            }]),
            Err(e) => Err(e.to_string()),
        },
        Fetch::Probe(host_id) => Ok(vec![match ctl.get_host_inventory(host_id).await {
            Ok(inventory) => Observation::Inventory {
                inventory,
                at_ms: ms_since(start),
            },
            Err(_) => Observation::ProbeFailed {
                host_id: host_id.clone(),
                at_ms: ms_since(start),
            },
        }]),
        Fetch::Links => match ctl.get_links().await {
            Ok(links) => Ok(vec![Observation::Links { links }]),
            Err(e) => Err(e.to_string()),
        },
        Fetch::Config(name) => match ctl.get_config(name).await {
            Ok(values) => Ok(vec![Observation::Config {
                name: name.clone(),
                values: values.map(|v| v.into_iter().collect()),
            }]),
            Err(e) => Err(e.to_string()),
        },
    };
    // The worker may be gone (leadership lost): nothing to report to then.
    let _ = tx.send(Input::Fetched { what, observations }).await;
}

/// Sends one command; a failure (no host answered, a timeout, or `success: false`)
/// is reported so the command stops counting as in flight.
pub(crate) async fn execute(ctl: CtlClient, command: Command, tx: mpsc::Sender<Input>) {
    let span = command_span(&command);
    let result = send(&ctl, &command).instrument(span.clone()).await;
    if let Err(error) = &result {
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_message", error.as_str());
    }
    drop(span);
    let _ = tx.send(Input::Executed { command, result }).await;
}

/// The span of one command, the parent of the host's `ctl.request` span
/// (its context travels in the request's `traceparent`); none while traces
/// are off.
fn command_span(command: &Command) -> tracing::Span {
    if !trellis_observability::traces_enabled() {
        return tracing::Span::none();
    }
    let kind = match command {
        Command::ScaleComponent(_) => "scale_component",
        Command::StartProvider(_) => "start_provider",
        Command::StopProvider(_) => "stop_provider",
        Command::PutLink(_) => "put_link",
        Command::DeleteLink(_) => "delete_link",
        Command::PutConfig(_) => "put_config",
        Command::DeleteConfig(_) => "delete_config",
    };
    tracing::info_span!(
        target: trellis_observability::SPAN_TARGET,
        parent: None,
        "wadm.command",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        otel.status_message = tracing::field::Empty,
        wadm.command = kind,
    )
}

/// The W3C trace context of the current span as request headers (the
/// control client asks for them at send time).
pub(crate) fn trace_headers() -> Option<async_nats::HeaderMap> {
    let w3c = trellis_observability::propagation::of_span(&tracing::Span::current())?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        trellis_observability::propagation::TRACEPARENT,
        w3c.traceparent.as_str(),
    );
    if let Some(state) = &w3c.tracestate {
        headers.insert("tracestate", state.as_str());
    }
    Some(headers)
}

async fn send(ctl: &CtlClient, command: &Command) -> Result<(), String> {
    let reply = match command {
        Command::ScaleComponent(c) => ctl.scale_component(&c.to_ctl()).await,
        Command::StartProvider(c) => ctl.start_provider(&c.to_ctl()).await,
        Command::StopProvider(c) => ctl.stop_provider(&c.to_ctl()).await,
        Command::PutLink(c) => ctl.put_link(&c.link).await,
        Command::DeleteLink(c) => ctl.delete_link(&c.to_ctl()).await,
        Command::PutConfig(c) => {
            let values: HashMap<String, String> = c.values.clone().into_iter().collect();
            ctl.put_config(&c.name, &values).await
        }
        Command::DeleteConfig(c) => ctl.delete_config(&c.name).await,
    }
    .map_err(|e| e.to_string())?;
    if reply.success {
        Ok(())
    } else {
        Err(reply.message)
    }
}
