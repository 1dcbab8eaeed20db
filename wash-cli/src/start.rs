//! `wash start component|provider`: pick a host (or auction for one), send the
//! request, and wait for the event that confirms it.

use std::collections::BTreeSet;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use trellis_interfaces::ctl::{
    ComponentAuctionRequest, Constraints, ProviderAuctionRequest, ScaleComponentCommand,
    StartProviderCommand,
};
use trellis_interfaces::event::LatticeEvent;

use crate::ctl::{Lattice, Target};
use crate::output::{Report, labels};
use crate::parse;
use crate::scale;
use crate::wait::{EventWait, Settled};

/// Default of `start component --wait-timeout-ms`: 10 s, as in wash 1.x, enough
/// to download and compile a typical component.
pub const DEFAULT_COMPONENT_WAIT_MS: u64 = 10_000;
/// Default of `start provider --wait-timeout-ms`: 60 s, as in wash 1.x;
/// provider archives are large and start a process.
pub const DEFAULT_PROVIDER_WAIT_MS: u64 = 60_000;

/// What `wash start` can start.
#[derive(Subcommand, Debug, Clone)]
pub enum StartCommand {
    /// Start a component on a host (auctioned if no --host-id)
    #[command(
        after_help = "Example:\n  wash start component registry.example/acme/hello:0.1.0 hello --max-instances 4 -c zone=eu\n  wash start component ./build/hello.wasm hello --host-id NBQ4…XYZ --config hello-cfg"
    )]
    Component(StartComponentArgs),
    /// Start a capability provider on a host (auctioned if no --host-id)
    #[command(
        after_help = "Example:\n  wash start provider builtin://http-server web\n  wash start provider registry.example/wasmcloud/keyvalue-nats:0.3.1 kv --host-id NBQ4…XYZ"
    )]
    Provider(StartProviderArgs),
}

/// `wash start component`.
#[derive(Args, Debug, Clone)]
pub struct StartComponentArgs {
    /// Component image: OCI reference, file:// URL or path
    pub component_ref: String,
    /// Id to run the component under
    #[arg(value_parser = parse::component_id)]
    pub component_id: String,
    /// Maximum concurrent instances
    #[arg(long = "max-instances", visible_alias = "count", default_value_t = 1)]
    pub max_instances: u32,
    /// Host to start on; without it, hosts bid in an auction and the first bid wins
    #[arg(long = "host-id")]
    pub host_id: Option<String>,
    /// Auction constraint `label=value` a bidding host must carry (repeatable)
    #[arg(short = 'c', long = "constraint", value_parser = parse::key_value)]
    pub constraints: Vec<(String, String)>,
    /// How long the auction collects bids, in ms [default: --timeout-ms]
    #[arg(long = "auction-timeout-ms")]
    pub auction_timeout_ms: Option<u64>,
    /// Named config to apply (repeatable, merged left to right)
    #[arg(long = "config")]
    pub config: Vec<String>,
    /// Calls one instance may answer before it is replaced (opt-in instance reuse; default: the host's, normally 1 = a fresh instance per call)
    #[arg(long = "max-instance-reuse", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_instance_reuse: Option<u32>,
    /// Return once the host acknowledges, without waiting for `component_scaled`
    #[arg(long = "skip-wait")]
    pub skip_wait: bool,
    /// How long to wait for `component_scaled`, in ms
    #[arg(long = "wait-timeout-ms", default_value_t = DEFAULT_COMPONENT_WAIT_MS)]
    pub wait_timeout_ms: u64,
}

/// `wash start provider`.
#[derive(Args, Debug, Clone)]
pub struct StartProviderArgs {
    /// Provider image: OCI reference, file:// URL, path or builtin://NAME
    pub provider_ref: String,
    /// Id to run the provider under
    #[arg(value_parser = parse::component_id)]
    pub provider_id: String,
    /// Host to start on; without it, hosts bid in an auction and the first bid wins
    #[arg(long = "host-id")]
    pub host_id: Option<String>,
    /// Auction constraint `label=value` a bidding host must carry (repeatable)
    #[arg(short = 'c', long = "constraint", value_parser = parse::key_value)]
    pub constraints: Vec<(String, String)>,
    /// How long the auction collects bids, in ms [default: --timeout-ms]
    #[arg(long = "auction-timeout-ms")]
    pub auction_timeout_ms: Option<u64>,
    /// Named config to apply (repeatable, merged left to right)
    #[arg(long = "config")]
    pub config: Vec<String>,
    /// Return once the host acknowledges, without waiting for `provider_started`
    #[arg(long = "skip-wait")]
    pub skip_wait: bool,
    /// How long to wait for `provider_started`, in ms
    #[arg(long = "wait-timeout-ms", default_value_t = DEFAULT_PROVIDER_WAIT_MS)]
    pub wait_timeout_ms: u64,
}

/// Runs a `wash start` command.
pub async fn run(
    lattice: &Lattice,
    command: StartCommand,
    timeout_ms: u64,
) -> anyhow::Result<Report> {
    match command {
        StartCommand::Component(args) => component(lattice, args, timeout_ms).await,
        StartCommand::Provider(args) => provider(lattice, args, timeout_ms).await,
    }
}

async fn component(
    lattice: &Lattice,
    args: StartComponentArgs,
    timeout_ms: u64,
) -> anyhow::Result<Report> {
    let component_ref = parse::resolve_ref(&args.component_ref);
    let host_id = pick_host(
        lattice,
        Auctioned::Component,
        &args.component_id,
        &component_ref,
        Placement {
            host_id: args.host_id,
            constraints: args.constraints,
            auction_timeout_ms: args.auction_timeout_ms,
            timeout_ms,
        },
    )
    .await?;
    let command = ScaleComponentCommand {
        component_ref: component_ref.clone(),
        component_id: args.component_id.clone(),
        max_instances: args.max_instances,
        host_id: host_id.clone(),
        config: args.config,
        component_limits: parse::instance_reuse_limits(args.max_instance_reuse),
        ..Default::default()
    };
    let wait = (!args.skip_wait).then(|| Duration::from_millis(args.wait_timeout_ms));
    let what = format!("starting component `{}`", args.component_id);
    let warnings = scale::scale(lattice, vec![command], wait, &what).await?;
    let text = if args.skip_wait {
        format!(
            "Host {host_id} accepted starting component `{}` ({component_ref})",
            args.component_id
        )
    } else {
        format!(
            "Component `{}` ({component_ref}) started on host {host_id} (max instances {})",
            args.component_id, args.max_instances
        )
    };
    Ok(Report::action(
        text,
        json!({
            "component_id": args.component_id,
            "component_ref": component_ref,
            "host_id": host_id,
            "max_instances": args.max_instances,
        }),
    )
    .warn_all(warnings))
}

async fn provider(
    lattice: &Lattice,
    args: StartProviderArgs,
    timeout_ms: u64,
) -> anyhow::Result<Report> {
    let provider_ref = parse::resolve_ref(&args.provider_ref);
    let host_id = pick_host(
        lattice,
        Auctioned::Provider,
        &args.provider_id,
        &provider_ref,
        Placement {
            host_id: args.host_id,
            constraints: args.constraints,
            auction_timeout_ms: args.auction_timeout_ms,
            timeout_ms,
        },
    )
    .await?;
    let mut events = match args.skip_wait {
        false => Some(EventWait::subscribe(lattice).await?),
        true => None,
    };
    let command = StartProviderCommand {
        provider_id: args.provider_id.clone(),
        provider_ref: provider_ref.clone(),
        host_id: host_id.clone(),
        config: args.config,
        annotations: None,
    };
    let reply = lattice.ctl.start_provider(&command).await;
    let reply = lattice.on_host(&host_id, reply).await?;
    if let Some(events) = events.as_mut() {
        let deadline = Duration::from_millis(args.wait_timeout_ms);
        let outcome = events
            .settle(BTreeSet::from([host_id.clone()]), deadline, |_, event| {
                provider_confirmation(event, &args.provider_id, &host_id)
            })
            .await;
        outcome.into_result(
            &format!("starting provider `{}`", args.provider_id),
            deadline,
            "it may still be downloading: check `wash get inventory`, or raise --wait-timeout-ms",
        )?;
    }
    let text = if args.skip_wait {
        format!(
            "Host {host_id} accepted starting provider `{}` ({provider_ref})",
            args.provider_id
        )
    } else {
        format!(
            "Provider `{}` ({provider_ref}) started on host {host_id}",
            args.provider_id
        )
    };
    Ok(Report::action(
        text,
        json!({
            "provider_id": args.provider_id,
            "provider_ref": provider_ref,
            "host_id": host_id,
        }),
    )
    .warn(reply.message))
}

/// Whether `event` confirms (or fails) starting `provider_id` on `host_id`.
fn provider_confirmation(
    event: &LatticeEvent,
    provider_id: &str,
    host_id: &str,
) -> Option<(String, Settled)> {
    match event {
        LatticeEvent::ProviderStarted(started)
            if started.provider_id == provider_id && started.host_id == host_id =>
        {
            Some((host_id.to_string(), Settled::Done))
        }
        // Pre-1.0 hosts leave `host_id` out of the failure event.
        LatticeEvent::ProviderStartFailed(failed)
            if failed.provider_id == provider_id
                && (failed.host_id.is_empty() || failed.host_id == host_id) =>
        {
            Some((host_id.to_string(), Settled::Failed(failed.error.clone())))
        }
        _ => None,
    }
}

/// What is being placed.
#[derive(Clone, Copy, Debug)]
enum Auctioned {
    Component,
    Provider,
}

/// Where the user asked to place it.
struct Placement {
    host_id: Option<String>,
    constraints: Vec<(String, String)>,
    auction_timeout_ms: Option<u64>,
    timeout_ms: u64,
}

/// `--host-id` if given, else the first bidder of an auction for `id`.
async fn pick_host(
    lattice: &Lattice,
    what: Auctioned,
    id: &str,
    image_ref: &str,
    placement: Placement,
) -> anyhow::Result<String> {
    if let Some(host) = placement.host_id {
        return Ok(host);
    }
    let constraints = parse::into_map(placement.constraints);
    let auction = lattice.with_auction_timeout(auction_window(
        placement.auction_timeout_ms,
        placement.timeout_ms,
    ));
    let (kind, bidders) = match what {
        Auctioned::Component => (
            "component",
            auction
                .auction_component(ComponentAuctionRequest {
                    component_ref: image_ref.to_string(),
                    component_id: id.to_string(),
                    constraints: constraints.clone(),
                })
                .await
                .map(|acks| acks.into_iter().map(|ack| ack.host_id).collect::<Vec<_>>()),
        ),
        Auctioned::Provider => (
            "provider",
            auction
                .auction_provider(ProviderAuctionRequest {
                    provider_ref: image_ref.to_string(),
                    provider_id: id.to_string(),
                    constraints: constraints.clone(),
                })
                .await
                .map(|acks| acks.into_iter().map(|ack| ack.host_id).collect()),
        ),
    };
    let bidders = bidders.map_err(|e| lattice.explain(e, Target::Lattice))?;
    match bidders.into_iter().next() {
        Some(host) => Ok(host),
        None => Err(no_bid(lattice, kind, id, &constraints).await),
    }
}

fn auction_window(auction_timeout_ms: Option<u64>, timeout_ms: u64) -> Duration {
    Duration::from_millis(auction_timeout_ms.unwrap_or(timeout_ms))
}

/// The error for an auction nobody bid in: no host at all, or none that fits.
async fn no_bid(
    lattice: &Lattice,
    kind: &str,
    id: &str,
    constraints: &Constraints,
) -> anyhow::Error {
    if let Err(no_hosts) = lattice.hosts().await {
        return no_hosts;
    }
    let wanted = if constraints.is_empty() {
        String::new()
    } else {
        format!(" with labels {}", labels(constraints))
    };
    anyhow::anyhow!(
        "no host{wanted} bid to run {kind} `{id}` on lattice `{lattice}`: hosts bid only when \
         their labels match every constraint and they do not already run `{id}`; \
         `wash get hosts` shows the labels, `wash get inventory` what runs where, and \
         --host-id picks a host directly",
        lattice = lattice.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_interfaces::event::{ProviderStartFailed, ProviderStarted};

    #[test]
    fn provider_events_are_matched_by_id_and_host() {
        let started = LatticeEvent::ProviderStarted(ProviderStarted {
            host_id: "NA".into(),
            image_ref: "builtin://http-server".into(),
            provider_id: "web".into(),
            ..Default::default()
        });
        assert_eq!(
            provider_confirmation(&started, "web", "NA"),
            Some(("NA".into(), Settled::Done))
        );
        assert_eq!(provider_confirmation(&started, "web", "NB"), None);
        assert_eq!(provider_confirmation(&started, "kv", "NA"), None);
        let failed = LatticeEvent::ProviderStartFailed(ProviderStartFailed {
            provider_ref: "x".into(),
            provider_id: "web".into(),
            error: "boom".into(),
            ..Default::default()
        });
        assert_eq!(
            provider_confirmation(&failed, "web", "NA"),
            Some(("NA".into(), Settled::Failed("boom".into())))
        );
    }

    #[test]
    fn auction_window_defaults_to_request_timeout() {
        assert_eq!(auction_window(None, 2_000), Duration::from_secs(2));
        assert_eq!(auction_window(Some(500), 2_000), Duration::from_millis(500));
    }
}
