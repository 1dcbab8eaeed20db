//! NATS subjects, queue groups, KV bucket names and keys of a lattice
//! (PROTOCOL.md §2.1, §2.2, §2.4, §2.5), built and parsed in one place.
//!
//! Control subjects are `{prefix}.v1.{lattice}.{…}`; [`CtlSubjects`] builds every
//! one of them and parses an incoming subject back into a [`CtlOperation`].

/// Default control-subject prefix (`--ctl-topic-prefix`).
pub const DEFAULT_CTL_PREFIX: &str = "wasmbus.ctl";
/// Version token of the control protocol.
pub const CTL_VERSION: &str = "v1";
/// Default lattice name.
pub const DEFAULT_LATTICE: &str = "default";
/// Key prefix of component/provider specs in the lattice-data bucket.
pub const COMPONENT_SPEC_KEY_PREFIX: &str = "COMPONENT_";
/// Key prefix of stored claims in the lattice-data bucket.
pub const CLAIMS_KEY_PREFIX: &str = "CLAIMS_";

/// An incoming subject that is not a control operation, or a name that cannot be
/// used as a subject token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// The subject is not one of the control operations of this lattice.
    #[error("unsupported subject `{subject}`")]
    Unsupported {
        /// The subject as received.
        subject: String,
    },
    /// A config name that is not a single NATS subject token.
    #[error("invalid config name `{name}`: {reason}")]
    InvalidConfigName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A host id or other value that is not a single NATS subject token.
    #[error(
        "invalid {what} `{token}`: it must be one non-empty subject token (no `.`, `*`, `>` or whitespace)"
    )]
    InvalidToken {
        /// What the value is (`"host id"`, …).
        what: &'static str,
        /// The rejected value.
        token: String,
    },
}

/// A control operation, as identified by its subject.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CtlOperation {
    /// `component.auction`
    ComponentAuction,
    /// `provider.auction`
    ProviderAuction,
    /// `component.scale.{host_id}`
    ComponentScale {
        /// Addressed host.
        host_id: String,
    },
    /// `component.update.{host_id}`
    ComponentUpdate {
        /// Addressed host.
        host_id: String,
    },
    /// `provider.start.{host_id}`
    ProviderStart {
        /// Addressed host.
        host_id: String,
    },
    /// `provider.stop.{host_id}`
    ProviderStop {
        /// Addressed host.
        host_id: String,
    },
    /// `host.get.{host_id}`
    HostGet {
        /// Addressed host.
        host_id: String,
    },
    /// `host.ping`
    HostPing,
    /// `host.stop.{host_id}`
    HostStop {
        /// Addressed host.
        host_id: String,
    },
    /// `claims.get`
    ClaimsGet,
    /// `link.put`
    LinkPut,
    /// `link.del`
    LinkDel,
    /// `link.get`
    LinkGet,
    /// `config.put.{name}`
    ConfigPut {
        /// Config name.
        name: String,
    },
    /// `config.get.{name}`
    ConfigGet {
        /// Config name.
        name: String,
    },
    /// `config.del.{name}`
    ConfigDel {
        /// Config name.
        name: String,
    },
    /// `label.put.{host_id}`
    LabelPut {
        /// Addressed host.
        host_id: String,
    },
    /// `label.del.{host_id}`
    LabelDel {
        /// Addressed host.
        host_id: String,
    },
    /// `registry.put`
    RegistryPut,
}

impl CtlOperation {
    /// The host this operation is addressed to, for per-host operations.
    #[must_use]
    pub fn host_id(&self) -> Option<&str> {
        match self {
            Self::ComponentScale { host_id }
            | Self::ComponentUpdate { host_id }
            | Self::ProviderStart { host_id }
            | Self::ProviderStop { host_id }
            | Self::HostGet { host_id }
            | Self::HostStop { host_id }
            | Self::LabelPut { host_id }
            | Self::LabelDel { host_id } => Some(host_id),
            _ => None,
        }
    }
}

/// One subscription a host makes on the control subjects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlSubscription {
    /// Subject or wildcard pattern.
    pub subject: String,
    /// Queue group, for operations one host of the lattice answers.
    pub queue_group: Option<String>,
}

/// Builds and parses the control subjects of one lattice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlSubjects {
    /// Subject prefix, `wasmbus.ctl` unless configured otherwise.
    pub prefix: String,
    /// Lattice name.
    pub lattice: String,
}

impl Default for CtlSubjects {
    fn default() -> Self {
        Self::new(DEFAULT_LATTICE)
    }
}

impl CtlSubjects {
    /// Subjects of `lattice` under the default prefix `wasmbus.ctl`.
    #[must_use]
    pub fn new(lattice: impl Into<String>) -> Self {
        Self::with_prefix(DEFAULT_CTL_PREFIX, lattice)
    }

    /// Subjects of `lattice` under a custom prefix.
    #[must_use]
    pub fn with_prefix(prefix: impl Into<String>, lattice: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            lattice: lattice.into(),
        }
    }

    /// `{prefix}.v1.{lattice}`, the root every control subject starts with.
    #[must_use]
    pub fn root(&self) -> String {
        format!("{}.{CTL_VERSION}.{}", self.prefix, self.lattice)
    }

    fn sub(&self, rest: &str) -> String {
        format!("{}.{rest}", self.root())
    }

    /// `…component.auction`
    #[must_use]
    pub fn component_auction(&self) -> String {
        self.sub("component.auction")
    }
    /// `…provider.auction`
    #[must_use]
    pub fn provider_auction(&self) -> String {
        self.sub("provider.auction")
    }
    /// `…component.scale.{host_id}`
    #[must_use]
    pub fn component_scale(&self, host_id: &str) -> String {
        self.sub(&format!("component.scale.{host_id}"))
    }
    /// `…component.update.{host_id}`
    #[must_use]
    pub fn component_update(&self, host_id: &str) -> String {
        self.sub(&format!("component.update.{host_id}"))
    }
    /// `…provider.start.{host_id}`
    #[must_use]
    pub fn provider_start(&self, host_id: &str) -> String {
        self.sub(&format!("provider.start.{host_id}"))
    }
    /// `…provider.stop.{host_id}`
    #[must_use]
    pub fn provider_stop(&self, host_id: &str) -> String {
        self.sub(&format!("provider.stop.{host_id}"))
    }
    /// `…host.get.{host_id}`
    #[must_use]
    pub fn host_get(&self, host_id: &str) -> String {
        self.sub(&format!("host.get.{host_id}"))
    }
    /// `…host.ping`
    #[must_use]
    pub fn host_ping(&self) -> String {
        self.sub("host.ping")
    }
    /// `…host.stop.{host_id}`
    #[must_use]
    pub fn host_stop(&self, host_id: &str) -> String {
        self.sub(&format!("host.stop.{host_id}"))
    }
    /// `…claims.get`
    #[must_use]
    pub fn claims_get(&self) -> String {
        self.sub("claims.get")
    }
    /// `…link.put`
    #[must_use]
    pub fn link_put(&self) -> String {
        self.sub("link.put")
    }
    /// `…link.del`
    #[must_use]
    pub fn link_del(&self) -> String {
        self.sub("link.del")
    }
    /// `…link.get`
    #[must_use]
    pub fn link_get(&self) -> String {
        self.sub("link.get")
    }
    /// `…config.put.{name}`
    #[must_use]
    pub fn config_put(&self, name: &str) -> String {
        self.sub(&format!("config.put.{name}"))
    }
    /// `…config.get.{name}`
    #[must_use]
    pub fn config_get(&self, name: &str) -> String {
        self.sub(&format!("config.get.{name}"))
    }
    /// `…config.del.{name}`
    #[must_use]
    pub fn config_del(&self, name: &str) -> String {
        self.sub(&format!("config.del.{name}"))
    }
    /// `…label.put.{host_id}`
    #[must_use]
    pub fn label_put(&self, host_id: &str) -> String {
        self.sub(&format!("label.put.{host_id}"))
    }
    /// `…label.del.{host_id}`
    #[must_use]
    pub fn label_del(&self, host_id: &str) -> String {
        self.sub(&format!("label.del.{host_id}"))
    }
    /// `…registry.put`
    #[must_use]
    pub fn registry_put(&self) -> String {
        self.sub("registry.put")
    }

    /// `…link.*` (queue-subscribed with [`CtlSubjects::link_queue_group`]).
    #[must_use]
    pub fn link_wildcard(&self) -> String {
        self.sub("link.*")
    }
    /// `…link`, the queue group of the link operations.
    #[must_use]
    pub fn link_queue_group(&self) -> String {
        self.sub("link")
    }
    /// `…claims`, the queue group of `claims.get`.
    #[must_use]
    pub fn claims_queue_group(&self) -> String {
        self.sub("claims")
    }
    /// `…config.>` (queue-subscribed with [`CtlSubjects::config_queue_group`]).
    #[must_use]
    pub fn config_wildcard(&self) -> String {
        self.sub("config.>")
    }
    /// `…config`, the queue group of the config operations.
    #[must_use]
    pub fn config_queue_group(&self) -> String {
        self.sub("config")
    }
    /// `…component.*.{host_id}`
    #[must_use]
    pub fn component_wildcard(&self, host_id: &str) -> String {
        self.sub(&format!("component.*.{host_id}"))
    }
    /// `…provider.*.{host_id}`
    #[must_use]
    pub fn provider_wildcard(&self, host_id: &str) -> String {
        self.sub(&format!("provider.*.{host_id}"))
    }
    /// `…label.*.{host_id}`
    #[must_use]
    pub fn label_wildcard(&self, host_id: &str) -> String {
        self.sub(&format!("label.*.{host_id}"))
    }
    /// `…host.*.{host_id}`
    #[must_use]
    pub fn host_wildcard(&self, host_id: &str) -> String {
        self.sub(&format!("host.*.{host_id}"))
    }

    /// Every subscription of PROTOCOL.md §2.2 for host `host_id`; the auction
    /// subscriptions only when enabled (both are by default in wasmCloud).
    #[must_use]
    pub fn host_subscriptions(
        &self,
        host_id: &str,
        component_auction: bool,
        provider_auction: bool,
    ) -> Vec<CtlSubscription> {
        let plain = |subject: String| CtlSubscription {
            subject,
            queue_group: None,
        };
        let queued = |subject: String, group: String| CtlSubscription {
            subject,
            queue_group: Some(group),
        };
        let mut subs = vec![
            plain(self.registry_put()),
            plain(self.host_ping()),
            queued(self.link_wildcard(), self.link_queue_group()),
            queued(self.claims_get(), self.claims_queue_group()),
            plain(self.component_wildcard(host_id)),
            plain(self.provider_wildcard(host_id)),
            plain(self.label_wildcard(host_id)),
            plain(self.host_wildcard(host_id)),
            queued(self.config_wildcard(), self.config_queue_group()),
        ];
        if component_auction {
            subs.push(plain(self.component_auction()));
        }
        if provider_auction {
            subs.push(plain(self.provider_auction()));
        }
        subs
    }

    /// Identifies the operation an incoming control subject asks for.
    pub fn parse(&self, subject: &str) -> Result<CtlOperation, SubjectError> {
        let unsupported = || SubjectError::Unsupported {
            subject: subject.to_string(),
        };
        let rest = subject
            .strip_prefix(self.root().as_str())
            .and_then(|r| r.strip_prefix('.'))
            .ok_or_else(unsupported)?;
        let tokens: Vec<&str> = rest.split('.').collect();
        if tokens.iter().any(|t| t.is_empty()) {
            return Err(unsupported());
        }
        let arg = |s: &&str| s.to_string();
        let op = match tokens.as_slice() {
            ["component", "auction"] => CtlOperation::ComponentAuction,
            ["provider", "auction"] => CtlOperation::ProviderAuction,
            ["host", "ping"] => CtlOperation::HostPing,
            ["claims", "get"] => CtlOperation::ClaimsGet,
            ["link", "put"] => CtlOperation::LinkPut,
            ["link", "del"] => CtlOperation::LinkDel,
            ["link", "get"] => CtlOperation::LinkGet,
            ["registry", "put"] => CtlOperation::RegistryPut,
            ["component", "scale", h] => CtlOperation::ComponentScale { host_id: arg(h) },
            ["component", "update", h] => CtlOperation::ComponentUpdate { host_id: arg(h) },
            ["provider", "start", h] => CtlOperation::ProviderStart { host_id: arg(h) },
            ["provider", "stop", h] => CtlOperation::ProviderStop { host_id: arg(h) },
            ["host", "get", h] => CtlOperation::HostGet { host_id: arg(h) },
            ["host", "stop", h] => CtlOperation::HostStop { host_id: arg(h) },
            ["label", "put", h] => CtlOperation::LabelPut { host_id: arg(h) },
            ["label", "del", h] => CtlOperation::LabelDel { host_id: arg(h) },
            ["config", "put", n] => CtlOperation::ConfigPut { name: arg(n) },
            ["config", "get", n] => CtlOperation::ConfigGet { name: arg(n) },
            ["config", "del", n] => CtlOperation::ConfigDel { name: arg(n) },
            ["config", "put" | "get" | "del", name @ ..] if name.len() > 1 => {
                return Err(SubjectError::InvalidConfigName {
                    name: name.join("."),
                    reason: "config names must not contain `.`",
                });
            }
            _ => return Err(unsupported()),
        };
        Ok(op)
    }
}

/// Checks that `name` can be a config name: one non-empty NATS subject token
/// (no `.`, `*`, `>` or whitespace), so it fits in `config.put.{name}` and as a KV key.
pub fn validate_config_name(name: &str) -> Result<(), SubjectError> {
    let invalid = |reason| {
        Err(SubjectError::InvalidConfigName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("config names must not be empty");
    }
    if name.contains('.') {
        return invalid("config names must not contain `.`");
    }
    if name.contains(['*', '>']) {
        return invalid("config names must not contain the wildcards `*` or `>`");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("config names must not contain whitespace or control characters");
    }
    Ok(())
}

/// Checks that `token` (a host id, lattice name, …) is one non-empty NATS subject
/// token, so it can be put into a subject without changing its meaning.
pub fn validate_subject_token(what: &'static str, token: &str) -> Result<(), SubjectError> {
    let bad = token.is_empty()
        || token
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control());
    if bad {
        Err(SubjectError::InvalidToken {
            what,
            token: token.to_string(),
        })
    } else {
        Ok(())
    }
}

/// `wasmbus.evt.{lattice}.{event}`: where hosts publish lattice events.
#[must_use]
pub fn event_subject(lattice: &str, event_name: &str) -> String {
    format!("wasmbus.evt.{lattice}.{event_name}")
}

/// `wasmbus.evt.{lattice}.>`: every lattice event.
#[must_use]
pub fn event_wildcard(lattice: &str) -> String {
    format!("wasmbus.evt.{lattice}.>")
}

/// `wadm.evt.{lattice}.{event}`: where wadm publishes its manifest events.
#[must_use]
pub fn wadm_event_subject(lattice: &str, event_name: &str) -> String {
    format!("wadm.evt.{lattice}.{event_name}")
}

/// `LATTICEDATA_{lattice}`: component specs and claims.
#[must_use]
pub fn lattice_data_bucket(lattice: &str) -> String {
    format!("LATTICEDATA_{lattice}")
}

/// `CONFIGDATA_{lattice}`: named configs and secret references.
#[must_use]
pub fn config_data_bucket(lattice: &str) -> String {
    format!("CONFIGDATA_{lattice}")
}

/// `COMPONENT_{id}`: key of a [`crate::link::ComponentSpecification`].
#[must_use]
pub fn component_spec_key(id: &str) -> String {
    format!("{COMPONENT_SPEC_KEY_PREFIX}{id}")
}

/// The id in a `COMPONENT_{id}` key, `None` for any other key.
#[must_use]
pub fn component_id_from_spec_key(key: &str) -> Option<&str> {
    key.strip_prefix(COMPONENT_SPEC_KEY_PREFIX)
        .filter(|id| !id.is_empty())
}

/// `CLAIMS_{pubkey}`: key of stored claims.
#[must_use]
pub fn claims_key(public_key: &str) -> String {
    format!("{CLAIMS_KEY_PREFIX}{public_key}")
}

/// `trellis.liveness.{lattice}.{host_id}`: Trellis's own fast host liveness beat.
#[must_use]
pub fn liveness_subject(lattice: &str, host_id: &str) -> String {
    format!("trellis.liveness.{lattice}.{host_id}")
}

/// `trellis.liveness.{lattice}.*`: every host's liveness beat.
#[must_use]
pub fn liveness_wildcard(lattice: &str) -> String {
    format!("trellis.liveness.{lattice}.*")
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "NHOST";

    #[test]
    fn builds_every_subject() {
        let s = CtlSubjects::new("default");
        let p = "wasmbus.ctl.v1.default";
        let cases = [
            (s.component_auction(), format!("{p}.component.auction")),
            (s.provider_auction(), format!("{p}.provider.auction")),
            (s.component_scale(H), format!("{p}.component.scale.{H}")),
            (s.component_update(H), format!("{p}.component.update.{H}")),
            (s.provider_start(H), format!("{p}.provider.start.{H}")),
            (s.provider_stop(H), format!("{p}.provider.stop.{H}")),
            (s.host_get(H), format!("{p}.host.get.{H}")),
            (s.host_ping(), format!("{p}.host.ping")),
            (s.host_stop(H), format!("{p}.host.stop.{H}")),
            (s.claims_get(), format!("{p}.claims.get")),
            (s.link_put(), format!("{p}.link.put")),
            (s.link_del(), format!("{p}.link.del")),
            (s.link_get(), format!("{p}.link.get")),
            (s.config_put("c"), format!("{p}.config.put.c")),
            (s.config_get("c"), format!("{p}.config.get.c")),
            (s.config_del("c"), format!("{p}.config.del.c")),
            (s.label_put(H), format!("{p}.label.put.{H}")),
            (s.label_del(H), format!("{p}.label.del.{H}")),
            (s.registry_put(), format!("{p}.registry.put")),
            (s.link_wildcard(), format!("{p}.link.*")),
            (s.link_queue_group(), format!("{p}.link")),
            (s.claims_queue_group(), format!("{p}.claims")),
            (s.config_wildcard(), format!("{p}.config.>")),
            (s.config_queue_group(), format!("{p}.config")),
            (s.component_wildcard(H), format!("{p}.component.*.{H}")),
            (s.provider_wildcard(H), format!("{p}.provider.*.{H}")),
            (s.label_wildcard(H), format!("{p}.label.*.{H}")),
            (s.host_wildcard(H), format!("{p}.host.*.{H}")),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        let custom = CtlSubjects::with_prefix("acme.ctl", "blue");
        assert_eq!(custom.host_ping(), "acme.ctl.v1.blue.host.ping");
        assert_eq!(CtlSubjects::default().lattice, "default");
    }

    #[test]
    fn parses_every_operation_it_builds() {
        let s = CtlSubjects::with_prefix("acme.ctl", "lat");
        let h = || H.to_string();
        let n = || "cfg".to_string();
        let cases = [
            (s.component_auction(), CtlOperation::ComponentAuction),
            (s.provider_auction(), CtlOperation::ProviderAuction),
            (
                s.component_scale(H),
                CtlOperation::ComponentScale { host_id: h() },
            ),
            (
                s.component_update(H),
                CtlOperation::ComponentUpdate { host_id: h() },
            ),
            (
                s.provider_start(H),
                CtlOperation::ProviderStart { host_id: h() },
            ),
            (
                s.provider_stop(H),
                CtlOperation::ProviderStop { host_id: h() },
            ),
            (s.host_get(H), CtlOperation::HostGet { host_id: h() }),
            (s.host_ping(), CtlOperation::HostPing),
            (s.host_stop(H), CtlOperation::HostStop { host_id: h() }),
            (s.claims_get(), CtlOperation::ClaimsGet),
            (s.link_put(), CtlOperation::LinkPut),
            (s.link_del(), CtlOperation::LinkDel),
            (s.link_get(), CtlOperation::LinkGet),
            (s.config_put("cfg"), CtlOperation::ConfigPut { name: n() }),
            (s.config_get("cfg"), CtlOperation::ConfigGet { name: n() }),
            (s.config_del("cfg"), CtlOperation::ConfigDel { name: n() }),
            (s.label_put(H), CtlOperation::LabelPut { host_id: h() }),
            (s.label_del(H), CtlOperation::LabelDel { host_id: h() }),
            (s.registry_put(), CtlOperation::RegistryPut),
        ];
        for (subject, op) in cases {
            assert_eq!(s.parse(&subject), Ok(op), "{subject}");
        }
        assert_eq!(s.parse(&s.label_put(H)).unwrap().host_id(), Some(H),);
        assert_eq!(s.parse(&s.link_put()).unwrap().host_id(), None);
    }

    #[test]
    fn rejects_unknown_subjects() {
        let s = CtlSubjects::new("default");
        for bad in [
            "wasmbus.ctl.v1.default.component.start.N1",
            "wasmbus.ctl.v1.default.host.ping.extra",
            "wasmbus.ctl.v1.other.host.ping",
            "wasmbus.ctl.v1.defaultx.host.ping",
            "wasmbus.ctl.v1.default",
            "wasmbus.ctl.v1.default.",
            "wasmbus.ctl.v1.default.component.scale.",
            "wasmbus.ctl.v2.default.host.ping",
        ] {
            let err = s.parse(bad).unwrap_err();
            assert_eq!(err.to_string(), format!("unsupported subject `{bad}`"));
        }
        let err = s
            .parse("wasmbus.ctl.v1.default.config.put.a.b")
            .unwrap_err();
        assert!(matches!(err, SubjectError::InvalidConfigName { ref name, .. } if name == "a.b"));
    }

    #[test]
    fn host_subscriptions_match_protocol_table() {
        let s = CtlSubjects::new("default");
        let subs = s.host_subscriptions(H, true, false);
        assert_eq!(subs.len(), 10);
        let link = subs.iter().find(|x| x.subject.ends_with("link.*")).unwrap();
        assert_eq!(
            link.queue_group.as_deref(),
            Some("wasmbus.ctl.v1.default.link")
        );
        let claims = subs
            .iter()
            .find(|x| x.subject.ends_with("claims.get"))
            .unwrap();
        assert_eq!(
            claims.queue_group.as_deref(),
            Some("wasmbus.ctl.v1.default.claims")
        );
        assert!(
            subs.iter()
                .any(|x| x.subject.ends_with("component.auction"))
        );
        assert!(!subs.iter().any(|x| x.subject.ends_with("provider.auction")));
        assert_eq!(subs.iter().filter(|x| x.queue_group.is_none()).count(), 7);
    }

    #[test]
    fn config_names_are_single_tokens() {
        assert!(validate_config_name("rust_hello_world-custom_config").is_ok());
        assert!(validate_config_name("SECRET_x").is_ok());
        for bad in ["", "a.b", "a*", ">", "a b", "tab\t", "nl\n"] {
            assert!(validate_config_name(bad).is_err(), "{bad:?}");
        }
        let err = validate_config_name("a.b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config name `a.b`: config names must not contain `.`"
        );
    }

    #[test]
    fn subject_tokens_are_validated() {
        assert!(validate_subject_token("host id", H).is_ok());
        for bad in ["", "a.b", "*", "a>", "a b"] {
            let err = validate_subject_token("host id", bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid host id"), "{err}");
        }
    }

    #[test]
    fn buckets_keys_and_event_subjects() {
        assert_eq!(
            event_subject("default", "component_scaled"),
            "wasmbus.evt.default.component_scaled"
        );
        assert_eq!(event_wildcard("default"), "wasmbus.evt.default.>");
        assert_eq!(
            wadm_event_subject("default", "manifest_published"),
            "wadm.evt.default.manifest_published"
        );
        assert_eq!(lattice_data_bucket("default"), "LATTICEDATA_default");
        assert_eq!(config_data_bucket("default"), "CONFIGDATA_default");
        assert_eq!(component_spec_key("http"), "COMPONENT_http");
        assert_eq!(component_id_from_spec_key("COMPONENT_http"), Some("http"));
        assert_eq!(component_id_from_spec_key("COMPONENT_"), None);
        assert_eq!(component_id_from_spec_key("CLAIMS_M1"), None);
        assert_eq!(claims_key("MABC"), "CLAIMS_MABC");
        assert_eq!(
            liveness_subject("default", H),
            "trellis.liveness.default.NHOST"
        );
        assert_eq!(liveness_wildcard("default"), "trellis.liveness.default.*");
    }
}
