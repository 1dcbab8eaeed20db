//! `wash update component`: switch a running component to a new image, on the
//! given host or on every host that runs it.

use std::collections::BTreeSet;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use trellis_interfaces::ctl::UpdateComponentCommand;
use trellis_interfaces::event::LatticeEvent;

use crate::ctl::Lattice;
use crate::output::Report;
use crate::parse;
use crate::wait::{EventWait, Settled};

/// Default of `update component --wait-timeout-ms`: 10 s, as for `start
/// component`: the host fetches and compiles the new image before switching.
pub const DEFAULT_UPDATE_WAIT_MS: u64 = 10_000;

/// What `wash update` can update.
#[derive(Subcommand, Debug, Clone)]
pub enum UpdateCommand {
    /// Switch a running component to a new image without downtime
    #[command(
        after_help = "Example:\n  wash update component hello registry.example/acme/hello:0.2.0\n  wash update component hello ./build/hello.wasm --host-id NBQ4…XYZ"
    )]
    Component(UpdateComponentArgs),
}

/// `wash update component`.
#[derive(Args, Debug, Clone)]
pub struct UpdateComponentArgs {
    /// Component id
    #[arg(value_parser = parse::component_id)]
    pub component_id: String,
    /// The new image: OCI reference, file:// URL or path
    pub new_component_ref: String,
    /// Host to update it on; every host running it if omitted
    #[arg(long = "host-id")]
    pub host_id: Option<String>,
    /// Return once the host(s) acknowledge, without waiting for the new image to run
    #[arg(long = "skip-wait")]
    pub skip_wait: bool,
    /// How long to wait for the confirmation, in ms
    #[arg(long = "wait-timeout-ms", default_value_t = DEFAULT_UPDATE_WAIT_MS)]
    pub wait_timeout_ms: u64,
}

/// Runs `wash update component`.
pub async fn run(lattice: &Lattice, command: UpdateCommand) -> anyhow::Result<Report> {
    let UpdateCommand::Component(args) = command;
    let new_ref = parse::resolve_ref(&args.new_component_ref);
    let running = lattice
        .find_component(&args.component_id, args.host_id.as_deref())
        .await?;
    // Hosts already on the new image have nothing to do and send no event.
    let (current, stale): (Vec<_>, Vec<_>) = running
        .into_iter()
        .partition(|(_, description)| description.image_ref == new_ref);
    let up_to_date: Vec<String> = current.into_iter().map(|(host, _)| host).collect();
    let host_ids: Vec<String> = stale.into_iter().map(|(host, _)| host).collect();
    let mut events = match args.skip_wait || host_ids.is_empty() {
        false => Some(EventWait::subscribe(lattice).await?),
        true => None,
    };
    let mut warnings = Vec::new();
    for host_id in &host_ids {
        let command = UpdateComponentCommand {
            component_id: args.component_id.clone(),
            annotations: None,
            host_id: host_id.clone(),
            new_component_ref: new_ref.clone(),
        };
        let reply = lattice.ctl.update_component(&command).await;
        let reply = lattice.on_host(host_id, reply).await?;
        if !reply.message.is_empty() {
            warnings.push(format!("host `{host_id}`: {}", reply.message));
        }
    }
    if let Some(events) = events.as_mut() {
        let deadline = Duration::from_millis(args.wait_timeout_ms);
        let pending: BTreeSet<String> = host_ids.iter().cloned().collect();
        let outcome = events
            .settle(pending, deadline, |_, event| {
                update_confirmation(event, &args.component_id, &new_ref)
            })
            .await;
        outcome.into_result(
            &format!("updating component `{}`", args.component_id),
            deadline,
            "it may still be fetching the image: check `wash get inventory`, or raise --wait-timeout-ms",
        )?;
    }
    let text = match (host_ids.is_empty(), args.skip_wait) {
        (true, _) => format!(
            "Component `{}` already runs {new_ref} on host(s) {}; nothing to update",
            args.component_id,
            up_to_date.join(", ")
        ),
        (false, true) => format!(
            "Host(s) {} accepted updating component `{}` to {new_ref}",
            host_ids.join(", "),
            args.component_id
        ),
        (false, false) => format!(
            "Component `{}` now runs {new_ref} on host(s) {}",
            args.component_id,
            host_ids.join(", ")
        ),
    };
    Ok(Report::action(
        text,
        json!({
            "component_id": args.component_id,
            "new_component_ref": new_ref,
            "host_ids": host_ids,
            "already_current": up_to_date,
        }),
    )
    .warn_all(warnings))
}

/// Whether `event` confirms (or fails) the update of `component_id` to `new_ref`.
fn update_confirmation(
    event: &LatticeEvent,
    component_id: &str,
    new_ref: &str,
) -> Option<(String, Settled)> {
    match event {
        LatticeEvent::ComponentScaled(scaled)
            if scaled.component_id == component_id && scaled.image_ref == new_ref =>
        {
            Some((scaled.host_id.clone(), Settled::Done))
        }
        LatticeEvent::ComponentScaleFailed(failed) if failed.component_id == component_id => {
            Some((
                failed.host_id.clone(),
                Settled::Failed(failed.error.clone()),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_interfaces::event::ComponentScaled;

    #[test]
    fn only_the_new_image_confirms() {
        let scaled = |image_ref: &str| {
            LatticeEvent::ComponentScaled(ComponentScaled {
                host_id: "NA".into(),
                image_ref: image_ref.into(),
                max_instances: 1,
                component_id: "hello".into(),
                ..Default::default()
            })
        };
        assert_eq!(update_confirmation(&scaled("old"), "hello", "new"), None);
        assert_eq!(
            update_confirmation(&scaled("new"), "hello", "new"),
            Some(("NA".into(), Settled::Done))
        );
        assert_eq!(update_confirmation(&scaled("new"), "other", "new"), None);
    }
}
