//! `wash stop component|provider|host`. Components and providers are found
//! through the hosts' inventories when no host id is given, and stopped on
//! every host that runs them.

use std::collections::BTreeSet;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use trellis_interfaces::ctl::{ScaleComponentCommand, StopProviderCommand};
use trellis_interfaces::event::LatticeEvent;

use crate::ctl::Lattice;
use crate::output::Report;
use crate::parse;
use crate::scale;
use crate::wait::{EventWait, Settled};

/// Default of `--wait-timeout-ms` for stopping a component or host: 35 s. A
/// host lets in-flight invocations finish for up to its drain timeout (30 s by
/// default) before it confirms, and the margin covers a loaded machine.
pub const DEFAULT_STOP_WAIT_MS: u64 = 35_000;
/// Default of `stop provider --wait-timeout-ms`: 10 s. Hosts stop providers
/// synchronously, so the confirmation follows the reply almost at once.
pub const DEFAULT_PROVIDER_STOP_WAIT_MS: u64 = 10_000;
/// Default of `stop host --host-timeout`, in ms: wash 1.x's default.
pub const DEFAULT_HOST_TIMEOUT_MS: u64 = 2_000;

/// What `wash stop` can stop.
#[derive(Subcommand, Debug, Clone)]
pub enum StopCommand {
    /// Stop a component (scale it to 0) on its host(s)
    #[command(
        after_help = "Example:\n  wash stop component hello\n  wash stop component hello --host-id NBQ4…XYZ"
    )]
    Component(StopComponentArgs),
    /// Stop a capability provider on its host(s)
    #[command(after_help = "Example:\n  wash stop provider web")]
    Provider(StopProviderArgs),
    /// Stop a host
    #[command(after_help = "Example:\n  wash stop host NBQ4…XYZ --host-timeout 5000")]
    Host(StopHostArgs),
}

/// `wash stop component`.
#[derive(Args, Debug, Clone)]
pub struct StopComponentArgs {
    /// Component id
    #[arg(value_parser = parse::component_id)]
    pub component_id: String,
    /// Host to stop it on; every host running it if omitted
    #[arg(long = "host-id")]
    pub host_id: Option<String>,
    /// Return once the host(s) acknowledge, without waiting for `component_scaled`
    #[arg(long = "skip-wait")]
    pub skip_wait: bool,
    /// How long to wait for the confirmation, in ms
    #[arg(long = "wait-timeout-ms", default_value_t = DEFAULT_STOP_WAIT_MS)]
    pub wait_timeout_ms: u64,
}

/// `wash stop provider`.
#[derive(Args, Debug, Clone)]
pub struct StopProviderArgs {
    /// Provider id
    #[arg(value_parser = parse::component_id)]
    pub provider_id: String,
    /// Host to stop it on; every host running it if omitted
    #[arg(long = "host-id")]
    pub host_id: Option<String>,
    /// Return once the host(s) acknowledge, without waiting for `provider_stopped`
    #[arg(long = "skip-wait")]
    pub skip_wait: bool,
    /// How long to wait for the confirmation, in ms
    #[arg(long = "wait-timeout-ms", default_value_t = DEFAULT_PROVIDER_STOP_WAIT_MS)]
    pub wait_timeout_ms: u64,
}

/// `wash stop host`.
#[derive(Args, Debug, Clone)]
pub struct StopHostArgs {
    /// Host id
    pub host_id: String,
    /// Time the host gets to shut down gracefully, in ms
    #[arg(long = "host-timeout", default_value_t = DEFAULT_HOST_TIMEOUT_MS)]
    pub host_timeout: u64,
    /// Return once the host acknowledges, without waiting for `host_stopped`
    #[arg(long = "skip-wait")]
    pub skip_wait: bool,
    /// How long to wait for `host_stopped`, in ms
    #[arg(long = "wait-timeout-ms", default_value_t = DEFAULT_STOP_WAIT_MS)]
    pub wait_timeout_ms: u64,
}

/// Runs a `wash stop` command.
pub async fn run(lattice: &Lattice, command: StopCommand) -> anyhow::Result<Report> {
    match command {
        StopCommand::Component(args) => component(lattice, args).await,
        StopCommand::Provider(args) => provider(lattice, args).await,
        StopCommand::Host(args) => host(lattice, args).await,
    }
}

async fn component(lattice: &Lattice, args: StopComponentArgs) -> anyhow::Result<Report> {
    let running = lattice
        .find_component(&args.component_id, args.host_id.as_deref())
        .await?;
    let commands: Vec<ScaleComponentCommand> = running
        .iter()
        .map(|(host_id, description)| ScaleComponentCommand {
            component_ref: description.image_ref.clone(),
            component_id: args.component_id.clone(),
            max_instances: 0,
            host_id: host_id.clone(),
            ..Default::default()
        })
        .collect();
    let host_ids: Vec<String> = running.into_iter().map(|(host, _)| host).collect();
    let wait = (!args.skip_wait).then(|| Duration::from_millis(args.wait_timeout_ms));
    let what = format!("stopping component `{}`", args.component_id);
    let warnings = scale::scale(lattice, commands, wait, &what).await?;
    let hosts = host_ids.join(", ");
    let text = if args.skip_wait {
        format!(
            "Host(s) {hosts} accepted stopping component `{}`",
            args.component_id
        )
    } else {
        format!(
            "Component `{}` stopped on host(s) {hosts}",
            args.component_id
        )
    };
    Ok(Report::action(
        text,
        json!({"component_id": args.component_id, "host_ids": host_ids}),
    )
    .warn_all(warnings))
}

async fn provider(lattice: &Lattice, args: StopProviderArgs) -> anyhow::Result<Report> {
    let running = lattice
        .find_provider(&args.provider_id, args.host_id.as_deref())
        .await?;
    let host_ids: Vec<String> = running.into_iter().map(|(host, _)| host).collect();
    let mut events = match args.skip_wait {
        false => Some(EventWait::subscribe(lattice).await?),
        true => None,
    };
    let mut warnings = Vec::new();
    for host_id in &host_ids {
        let command = StopProviderCommand {
            host_id: host_id.clone(),
            provider_id: args.provider_id.clone(),
        };
        let reply = lattice.ctl.stop_provider(&command).await;
        let reply = lattice.on_host(host_id, reply).await?;
        if !reply.message.is_empty() {
            warnings.push(format!("host `{host_id}`: {}", reply.message));
        }
    }
    if let Some(events) = events.as_mut() {
        let deadline = Duration::from_millis(args.wait_timeout_ms);
        let pending: BTreeSet<String> = host_ids.iter().cloned().collect();
        let outcome = events
            .settle(pending, deadline, |_, event| match event {
                LatticeEvent::ProviderStopped(stopped)
                    if stopped.provider_id == args.provider_id =>
                {
                    Some((stopped.host_id.clone(), Settled::Done))
                }
                _ => None,
            })
            .await;
        outcome.into_result(
            &format!("stopping provider `{}`", args.provider_id),
            deadline,
            "check `wash get inventory` and the host's log",
        )?;
    }
    let hosts = host_ids.join(", ");
    Ok(Report::action(
        format!("Provider `{}` stopped on host(s) {hosts}", args.provider_id),
        json!({"provider_id": args.provider_id, "host_ids": host_ids}),
    )
    .warn_all(warnings))
}

async fn host(lattice: &Lattice, args: StopHostArgs) -> anyhow::Result<Report> {
    let mut events = match args.skip_wait {
        false => Some(EventWait::subscribe(lattice).await?),
        true => None,
    };
    let reply = lattice
        .ctl
        .stop_host(
            &args.host_id,
            Some(Duration::from_millis(args.host_timeout)),
        )
        .await;
    let reply = lattice.on_host(&args.host_id, reply).await?;
    if let Some(events) = events.as_mut() {
        let deadline = Duration::from_millis(args.wait_timeout_ms);
        let outcome = events
            .settle(
                BTreeSet::from([args.host_id.clone()]),
                deadline,
                |envelope, event| match event {
                    LatticeEvent::HostStopped(_) if envelope.source == args.host_id => {
                        Some((args.host_id.clone(), Settled::Done))
                    }
                    _ => None,
                },
            )
            .await;
        outcome.into_result(
            &format!("stopping host `{}`", args.host_id),
            deadline,
            "it may still be draining invocations; check the host's log",
        )?;
    }
    let text = if args.skip_wait {
        format!("Host {} accepted the stop request", args.host_id)
    } else {
        format!("Host {} stopped", args.host_id)
    };
    Ok(Report::action(text, json!({"host_id": args.host_id})).warn(reply.message))
}
