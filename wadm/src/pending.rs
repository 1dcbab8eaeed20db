//! Commands in flight: issued, not yet visible in the observed lattice. The reconciler
//! does not re-issue a command identical to one in flight, so a slow host is not sent
//! the same scale twice. This is explicit state the caller owns and passes in: record
//! what was sent, settle what became visible, and anything else simply stops counting
//! after its timeout (a lost command is then re-issued).

use crate::command::Command;
use crate::observed::{ConfigValue, FailureKey, LatticeState};
use crate::policy::FailurePolicy;

/// One command in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCommand {
    /// The command as issued.
    pub command: Command,
    /// When it was issued (ms).
    pub issued_at_ms: u64,
}

/// The commands in flight.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingCommands {
    entries: Vec<PendingCommand>,
}

/// How long `command` counts as in flight.
#[must_use]
pub fn command_timeout_ms(command: &Command, policy: &FailurePolicy) -> u64 {
    match command {
        Command::StartProvider(_) => policy.provider_command_timeout_ms,
        _ => policy.command_timeout_ms,
    }
}

impl PendingCommands {
    /// Nothing in flight.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `commands` as issued at `now_ms`.
    pub fn record(&mut self, commands: &[Command], now_ms: u64) {
        self.entries
            .extend(commands.iter().cloned().map(|command| PendingCommand {
                command,
                issued_at_ms: now_ms,
            }));
    }

    /// The commands still in flight at `now_ms`.
    pub fn in_flight<'a>(
        &'a self,
        now_ms: u64,
        policy: &'a FailurePolicy,
    ) -> impl Iterator<Item = &'a Command> + 'a {
        self.entries
            .iter()
            .filter(move |p| {
                now_ms.saturating_sub(p.issued_at_ms) < command_timeout_ms(&p.command, policy)
            })
            .map(|p| &p.command)
    }

    /// Whether a command identical to `command` is in flight at `now_ms`.
    #[must_use]
    pub fn contains(&self, command: &Command, now_ms: u64, policy: &FailurePolicy) -> bool {
        self.in_flight(now_ms, policy).any(|c| c == command)
    }

    /// Forgets commands whose timeout has passed at `now_ms`.
    pub fn expire(&mut self, now_ms: u64, policy: &FailurePolicy) {
        self.entries.retain(|p| {
            now_ms.saturating_sub(p.issued_at_ms) < command_timeout_ms(&p.command, policy)
        });
    }

    /// Forgets `command`: the control request failed (no responder, a timeout, or
    /// `success: false`), so nothing is in flight and the next pass may re-issue it.
    pub fn forget(&mut self, command: &Command) {
        self.entries.retain(|p| p.command != *command);
    }

    /// Forgets commands whose effect is visible in `observed`, or that a host answered
    /// with a failure after they were issued.
    pub fn settle(&mut self, observed: &LatticeState) {
        self.entries.retain(|p| !is_answered(p, observed));
    }

    /// Commands in flight at `now_ms` that `observed` does not answer yet (neither
    /// their effect nor a failure is visible), whether or not the caller settled.
    pub fn unanswered<'a>(
        &'a self,
        observed: &'a LatticeState,
        now_ms: u64,
        policy: &'a FailurePolicy,
    ) -> impl Iterator<Item = &'a Command> + 'a {
        self.entries
            .iter()
            .filter(move |p| {
                now_ms.saturating_sub(p.issued_at_ms) < command_timeout_ms(&p.command, policy)
                    && !is_answered(p, observed)
            })
            .map(|p| &p.command)
    }

    /// Number of commands recorded (in flight or not yet expired).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every recorded command with its issue time.
    pub fn iter(&self) -> impl Iterator<Item = &PendingCommand> {
        self.entries.iter()
    }
}

fn is_answered(pending: &PendingCommand, observed: &LatticeState) -> bool {
    is_visible(&pending.command, observed) || failed_since(pending, observed)
}

/// Whether the effect of `command` is visible in `observed`.
fn is_visible(command: &Command, observed: &LatticeState) -> bool {
    match command {
        Command::ScaleComponent(c) => {
            let instance = observed
                .hosts
                .get(&c.host_id)
                .and_then(|h| h.components.get(&c.component_id));
            match instance {
                None => c.count == 0,
                Some(i) => {
                    c.count > 0
                        && i.max_instances == c.count
                        && i.image_ref == c.image_ref
                        && i.annotations == c.annotations
                }
            }
        }
        Command::StartProvider(c) => observed
            .hosts
            .get(&c.host_id)
            .and_then(|h| h.providers.get(&c.provider_id))
            .is_some_and(|p| p.image_ref == c.image_ref && p.annotations == c.annotations),
        Command::StopProvider(c) => observed
            .hosts
            .get(&c.host_id)
            .is_none_or(|h| !h.providers.contains_key(&c.provider_id)),
        Command::PutLink(c) => observed.links.contains(&c.link),
        Command::DeleteLink(c) => !observed.links.iter().any(|l| {
            l.source_id == c.source_id
                && l.wit_namespace == c.wit_namespace
                && l.wit_package == c.wit_package
                && l.name == c.link_name
        }),
        Command::PutConfig(c) => match observed.configs.get(&c.name) {
            Some(ConfigValue::Known(values)) => *values == c.values,
            Some(ConfigValue::Unknown) => true,
            None => false,
        },
        Command::DeleteConfig(c) => !observed.configs.contains_key(&c.name),
    }
}

fn failed_since(pending: &PendingCommand, observed: &LatticeState) -> bool {
    let key = match &pending.command {
        Command::ScaleComponent(c) => FailureKey::Component {
            host_id: c.host_id.clone(),
            id: c.component_id.clone(),
        },
        Command::StartProvider(c) => FailureKey::Provider {
            host_id: c.host_id.clone(),
            id: c.provider_id.clone(),
        },
        Command::PutLink(c) => crate::observed::link_failure_key(&c.link),
        _ => return false,
    };
    observed
        .failures
        .get(&key)
        .is_some_and(|f| f.at_ms >= pending.issued_at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{PutConfig, ScaleComponent};
    use crate::observed::{ComponentInstance, HostState};
    use std::collections::BTreeMap;

    fn scale(count: u32) -> Command {
        Command::ScaleComponent(ScaleComponent {
            host_id: "N1".into(),
            component_id: "c".into(),
            image_ref: "img".into(),
            count,
            ..ScaleComponent::default()
        })
    }

    #[test]
    fn identical_commands_are_in_flight_until_timeout() {
        let policy = FailurePolicy::default();
        let mut pending = PendingCommands::new();
        pending.record(&[scale(2)], 1_000);
        assert!(pending.contains(&scale(2), 1_000, &policy));
        assert!(pending.contains(&scale(2), 5_999, &policy));
        assert!(!pending.contains(&scale(3), 2_000, &policy));
        assert!(!pending.contains(&scale(2), 6_000, &policy));
        pending.expire(6_000, &policy);
        assert!(pending.is_empty());
    }

    #[test]
    fn visible_effects_settle() {
        let mut observed = LatticeState::default();
        let mut pending = PendingCommands::new();
        pending.record(
            &[
                scale(2),
                Command::PutConfig(PutConfig {
                    name: "cfg".into(),
                    values: BTreeMap::new(),
                }),
            ],
            0,
        );
        pending.settle(&observed);
        assert_eq!(pending.len(), 2);
        let mut host = HostState {
            id: "N1".into(),
            ..HostState::default()
        };
        host.components.insert(
            "c".into(),
            ComponentInstance {
                image_ref: "img".into(),
                max_instances: 2,
                annotations: BTreeMap::new(),
            },
        );
        observed.hosts.insert("N1".into(), host);
        observed.configs.insert("cfg".into(), ConfigValue::Unknown);
        pending.settle(&observed);
        assert!(pending.is_empty());
    }
}
