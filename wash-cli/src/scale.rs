//! `wash scale component`, and the scale-and-confirm step that `start
//! component` and `stop component` share with it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use trellis_interfaces::ctl::ScaleComponentCommand;
use trellis_interfaces::event::LatticeEvent;

use crate::ctl::Lattice;
use crate::output::Report;
use crate::parse;
use crate::wait::{EventWait, Settled};

/// Default of `scale component --wait-timeout-ms`: 10 s, as for `start component`,
/// since scaling a component that is not running yet fetches and compiles it.
pub const DEFAULT_SCALE_WAIT_MS: u64 = 10_000;

/// What `wash scale` can scale.
#[derive(Subcommand, Debug, Clone)]
pub enum ScaleCommand {
    /// Set how many instances of a component may run at once on a host (0 stops it)
    #[command(
        after_help = "Example:\n  wash scale component NBQ4…XYZ registry.example/acme/hello:0.1.0 hello -c 10 -a team=web"
    )]
    Component(ScaleComponentArgs),
}

/// `wash scale component`.
#[derive(Args, Debug, Clone)]
pub struct ScaleComponentArgs {
    /// Host to scale the component on
    pub host_id: String,
    /// Component image: OCI reference, file:// URL or path
    pub component_ref: String,
    /// Component id
    #[arg(value_parser = parse::component_id)]
    pub component_id: String,
    /// Maximum concurrent instances; 0 stops the component (default: unbounded)
    #[arg(short = 'c', long = "max-instances", visible_alias = "count", default_value_t = u32::MAX)]
    pub max_instances: u32,
    /// Annotation `key=value` recorded with the component (repeatable)
    #[arg(short = 'a', long = "annotations", value_parser = parse::key_value)]
    pub annotations: Vec<(String, String)>,
    /// Named config to apply to the component (repeatable, merged left to right)
    #[arg(long = "config")]
    pub config: Vec<String>,
    /// Calls one instance may answer before it is replaced (opt-in instance reuse; default: the host's, normally 1 = a fresh instance per call)
    #[arg(long = "max-instance-reuse", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_instance_reuse: Option<u32>,
    /// If the component runs from another image, switch it to this one
    #[arg(long = "allow-update")]
    pub allow_update: bool,
    /// Return once the host acknowledges, without waiting for `component_scaled`
    #[arg(long = "skip-wait")]
    pub skip_wait: bool,
    /// How long to wait for `component_scaled`, in ms
    #[arg(long = "wait-timeout-ms", default_value_t = DEFAULT_SCALE_WAIT_MS)]
    pub wait_timeout_ms: u64,
}

/// Runs `wash scale component`.
pub async fn run(lattice: &Lattice, command: ScaleCommand) -> anyhow::Result<Report> {
    let ScaleCommand::Component(args) = command;
    let component_ref = parse::resolve_ref(&args.component_ref);
    let annotations = parse::into_map(args.annotations);
    let command = ScaleComponentCommand {
        component_ref: component_ref.clone(),
        component_id: args.component_id.clone(),
        annotations: (!annotations.is_empty()).then_some(annotations),
        max_instances: args.max_instances,
        component_limits: parse::instance_reuse_limits(args.max_instance_reuse),
        host_id: args.host_id.clone(),
        config: args.config,
        allow_update: args.allow_update,
    };
    let wait = (!args.skip_wait).then(|| Duration::from_millis(args.wait_timeout_ms));
    let what = format!("scaling component `{}`", args.component_id);
    let warnings = scale(lattice, vec![command], wait, &what).await?;
    let level = match args.max_instances {
        0 => "0 (stopped)".to_string(),
        u32::MAX => "unbounded concurrency".to_string(),
        n => format!("{n} max instances"),
    };
    let text = if args.skip_wait {
        format!(
            "Host {} accepted scaling component `{}` ({component_ref}) to {level}",
            args.host_id, args.component_id
        )
    } else {
        format!(
            "Component `{}` ({component_ref}) scaled to {level} on host {}",
            args.component_id, args.host_id
        )
    };
    Ok(Report::action(
        text,
        json!({
            "component_id": args.component_id,
            "component_ref": component_ref,
            "host_id": args.host_id,
            "max_instances": args.max_instances,
        }),
    )
    .warn_all(warnings))
}

/// Sends each scale command (one per host) and, with `wait`, waits for each
/// host's `component_scaled` (or `component_scale_failed`, which is an error
/// starting with `what`). Returns the hosts' warnings.
pub async fn scale(
    lattice: &Lattice,
    commands: Vec<ScaleComponentCommand>,
    wait: Option<Duration>,
    what: &str,
) -> anyhow::Result<Vec<String>> {
    // Subscribe before sending, so the confirming event cannot be missed.
    let mut events = match wait {
        Some(_) => Some(EventWait::subscribe(lattice).await?),
        None => None,
    };
    let mut warnings = Vec::new();
    for command in &commands {
        let reply = lattice.ctl.scale_component(command).await;
        let reply = lattice.on_host(&command.host_id, reply).await?;
        if !reply.message.is_empty() {
            warnings.push(format!("host `{}`: {}", command.host_id, reply.message));
        }
    }
    let (Some(events), Some(deadline)) = (events.as_mut(), wait) else {
        return Ok(warnings);
    };
    let expected: BTreeMap<String, &ScaleComponentCommand> =
        commands.iter().map(|c| (c.host_id.clone(), c)).collect();
    let pending: BTreeSet<String> = expected.keys().cloned().collect();
    let outcome = events
        .settle(pending, deadline, |_, event| {
            confirmation(event, |host| expected.get(host).copied())
        })
        .await;
    outcome.into_result(
        what,
        deadline,
        "it may still be fetching the image: check `wash get inventory`, or raise --wait-timeout-ms",
    )?;
    Ok(warnings)
}

/// Whether `event` confirms (or fails) the scale command sent to its host.
fn confirmation<'a>(
    event: &LatticeEvent,
    expected: impl Fn(&str) -> Option<&'a ScaleComponentCommand>,
) -> Option<(String, Settled)> {
    match event {
        LatticeEvent::ComponentScaled(scaled) => {
            let command = expected(&scaled.host_id)?;
            let confirms = scaled.component_id == command.component_id
                && scaled.max_instances == command.max_instances
                && (!command.allow_update || scaled.image_ref == command.component_ref);
            confirms.then(|| (scaled.host_id.clone(), Settled::Done))
        }
        LatticeEvent::ComponentScaleFailed(failed) => {
            let command = expected(&failed.host_id)?;
            (failed.component_id == command.component_id).then(|| {
                (
                    failed.host_id.clone(),
                    Settled::Failed(failed.error.clone()),
                )
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_interfaces::event::{ComponentScaleFailed, ComponentScaled};

    fn command(max_instances: u32, allow_update: bool) -> ScaleComponentCommand {
        ScaleComponentCommand {
            component_ref: "file:///new.wasm".into(),
            component_id: "hello".into(),
            max_instances,
            host_id: "NA".into(),
            allow_update,
            ..Default::default()
        }
    }

    fn scaled(max_instances: u32, image_ref: &str) -> LatticeEvent {
        LatticeEvent::ComponentScaled(ComponentScaled {
            host_id: "NA".into(),
            image_ref: image_ref.into(),
            max_instances,
            component_id: "hello".into(),
            ..Default::default()
        })
    }

    #[test]
    fn scaled_event_confirms_matching_count() {
        let cmd = command(3, false);
        let lookup = |h: &str| (h == "NA").then_some(&cmd);
        assert_eq!(
            confirmation(&scaled(3, "file:///old.wasm"), lookup),
            Some(("NA".into(), Settled::Done))
        );
        assert_eq!(confirmation(&scaled(1, "file:///new.wasm"), lookup), None);
    }

    #[test]
    fn allow_update_waits_for_the_new_image() {
        let cmd = command(1, true);
        let lookup = |h: &str| (h == "NA").then_some(&cmd);
        assert_eq!(confirmation(&scaled(1, "file:///old.wasm"), lookup), None);
        assert!(confirmation(&scaled(1, "file:///new.wasm"), lookup).is_some());
    }

    #[test]
    fn failure_event_carries_the_error() {
        let cmd = command(1, false);
        let lookup = |h: &str| (h == "NA").then_some(&cmd);
        let failed = LatticeEvent::ComponentScaleFailed(ComponentScaleFailed {
            host_id: "NA".into(),
            component_id: "hello".into(),
            image_ref: "file:///new.wasm".into(),
            max_instances: 1,
            error: "no such file".into(),
            ..Default::default()
        });
        assert_eq!(
            confirmation(&failed, lookup),
            Some(("NA".into(), Settled::Failed("no such file".into())))
        );
        let other_host = |_: &str| None;
        assert_eq!(confirmation(&failed, other_host), None);
    }
}
