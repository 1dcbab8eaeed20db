//! What the reconciler asks the lattice to do. The JSON shape is wadm 0.21's `Command`
//! (as it travels on `wadm.cmd.{lattice}`), with everything the control-interface call
//! needs already filled in: the annotations are complete, so the part that sends
//! commands is a plain translation ([`Command`]'s `to_ctl` helpers).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use trellis_interfaces::ctl::{
    Annotations, ScaleComponentCommand, StartProviderCommand, StopProviderCommand,
};
use trellis_interfaces::link::{DeleteInterfaceLinkDefinitionRequest, Link};

/// One command for the lattice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// `component.scale.{host}`.
    ScaleComponent(ScaleComponent),
    /// `provider.start.{host}`.
    StartProvider(StartProvider),
    /// `provider.stop.{host}`.
    StopProvider(StopProvider),
    /// `link.put`.
    PutLink(PutLink),
    /// `link.del`.
    DeleteLink(DeleteLink),
    /// `config.put.{name}`.
    PutConfig(PutConfig),
    /// `config.del.{name}`.
    DeleteConfig(DeleteConfig),
}

/// Run `count` concurrent instances of a component on one host (`0` stops it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScaleComponent {
    /// The host that acts.
    pub host_id: String,
    /// The component id.
    pub component_id: String,
    /// The image to run.
    #[serde(rename = "reference")]
    pub image_ref: String,
    /// Maximum concurrent instances on that host; `0` stops it there.
    pub count: u32,
    /// The application the command is for.
    pub model_name: String,
    /// The complete annotations to record (managed-by, appspec, scaler, spread name).
    pub annotations: Annotations,
    /// Named configs for the component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<String>,
    /// Whether the host may switch a running instance to `image_ref` in place (rolling
    /// upgrade). wadm 0.21 never sets it, which turns an image change into stop-then-start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_update: bool,
    /// Calls one instance may answer (`properties.max_instance_reuse`, a Trellis
    /// extension); `None` leaves it to the host's default. An in-place
    /// replacement (`allow_update`) sends its limits whole, so a version that
    /// drops the field returns the running instances to the host's default
    /// ([`ScaleComponent::to_ctl`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instance_reuse: Option<u32>,
}

/// Start one provider instance on one host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StartProvider {
    /// The host that acts.
    pub host_id: String,
    /// The provider id.
    pub provider_id: String,
    /// The image to run.
    #[serde(rename = "reference")]
    pub image_ref: String,
    /// The application the command is for.
    pub model_name: String,
    /// The complete annotations to record.
    pub annotations: Annotations,
    /// Named configs for the provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<String>,
}

/// Stop one provider instance on one host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StopProvider {
    /// The host that acts.
    pub host_id: String,
    /// The provider id.
    pub provider_id: String,
    /// The application the command is for.
    pub model_name: String,
    /// The annotations of the instance being stopped.
    pub annotations: Annotations,
}

/// Put a link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PutLink {
    /// The link, as `link.put` takes it.
    #[serde(flatten)]
    pub link: Link,
    /// The application the command is for.
    pub model_name: String,
}

/// Delete a link (keyed by source, namespace, package and name, as `link.del` is).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeleteLink {
    /// Link source.
    pub source_id: String,
    /// WIT namespace.
    pub wit_namespace: String,
    /// WIT package.
    pub wit_package: String,
    /// Link name.
    pub link_name: String,
    /// The application the command is for.
    pub model_name: String,
}

/// Store named configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PutConfig {
    /// Config name (`{app}-{name}` for configs the manifest defines).
    #[serde(rename = "config_name")]
    pub name: String,
    /// The values.
    #[serde(rename = "config")]
    pub values: BTreeMap<String, String>,
}

/// Delete named configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeleteConfig {
    /// Config name.
    #[serde(rename = "config_name")]
    pub name: String,
}

impl Command {
    /// The host a command is addressed to, for host-scoped commands.
    #[must_use]
    pub fn host_id(&self) -> Option<&str> {
        match self {
            Self::ScaleComponent(c) => Some(&c.host_id),
            Self::StartProvider(c) => Some(&c.host_id),
            Self::StopProvider(c) => Some(&c.host_id),
            Self::PutLink(_) | Self::DeleteLink(_) | Self::PutConfig(_) | Self::DeleteConfig(_) => {
                None
            }
        }
    }

    /// The component or provider id a workload command acts on.
    #[must_use]
    pub fn workload_id(&self) -> Option<&str> {
        match self {
            Self::ScaleComponent(c) => Some(&c.component_id),
            Self::StartProvider(c) => Some(&c.provider_id),
            Self::StopProvider(c) => Some(&c.provider_id),
            _ => None,
        }
    }
}

/// The `component_limits` key of `component.scale` that carries
/// [`ScaleComponent::max_instance_reuse`].
pub const MAX_INSTANCE_REUSE: &str = "max_instance_reuse";

impl ScaleComponent {
    /// The `component.scale` request.
    ///
    /// `component_limits` carries the Trellis limits the manifest sets. A
    /// start or a resize without any sends none, exactly as wadm 0.21. An
    /// in-place replacement of an older version (`allow_update`) always
    /// sends them, empty if need be: the host then resets every limit the
    /// request does not name to its default, so removing
    /// `max_instance_reuse` from a manifest takes effect like changing it.
    /// (A request without `component_limits` keeps the running values, as
    /// `wash scale` relies on.)
    #[must_use]
    pub fn to_ctl(&self) -> ScaleComponentCommand {
        let limits = self
            .max_instance_reuse
            .map(|reuse| BTreeMap::from([(MAX_INSTANCE_REUSE.to_string(), reuse.to_string())]));
        ScaleComponentCommand {
            component_ref: self.image_ref.clone(),
            component_id: self.component_id.clone(),
            annotations: Some(self.annotations.clone()),
            max_instances: self.count,
            component_limits: if self.allow_update {
                Some(limits.unwrap_or_default())
            } else {
                limits
            },
            host_id: self.host_id.clone(),
            config: self.config.clone(),
            allow_update: self.allow_update,
        }
    }
}

impl StartProvider {
    /// The `provider.start` request.
    #[must_use]
    pub fn to_ctl(&self) -> StartProviderCommand {
        StartProviderCommand {
            provider_id: self.provider_id.clone(),
            provider_ref: self.image_ref.clone(),
            host_id: self.host_id.clone(),
            config: self.config.clone(),
            annotations: Some(self.annotations.clone()),
        }
    }
}

impl StopProvider {
    /// The `provider.stop` request.
    #[must_use]
    pub fn to_ctl(&self) -> StopProviderCommand {
        StopProviderCommand {
            host_id: self.host_id.clone(),
            provider_id: self.provider_id.clone(),
        }
    }
}

impl DeleteLink {
    /// The `link.del` request.
    #[must_use]
    pub fn to_ctl(&self) -> DeleteInterfaceLinkDefinitionRequest {
        DeleteInterfaceLinkDefinitionRequest {
            source_id: self.source_id.clone(),
            name: self.link_name.clone(),
            wit_namespace: self.wit_namespace.clone(),
            wit_package: self.wit_package.clone(),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ScaleComponent(c) => write!(
                f,
                "scale `{}` ({}) to {} on {}{}",
                c.component_id,
                c.image_ref,
                c.count,
                c.host_id,
                if c.allow_update { " (update)" } else { "" }
            ),
            Self::StartProvider(c) => write!(
                f,
                "start provider `{}` ({}) on {}",
                c.provider_id, c.image_ref, c.host_id
            ),
            Self::StopProvider(c) => {
                write!(f, "stop provider `{}` on {}", c.provider_id, c.host_id)
            }
            Self::PutLink(c) => write!(f, "put link {}", c.link),
            Self::DeleteLink(c) => write!(
                f,
                "delete link `{}` {}:{} (link name `{}`)",
                c.source_id, c.wit_namespace, c.wit_package, c.link_name
            ),
            Self::PutConfig(c) => write!(f, "put config `{}`", c.name),
            Self::DeleteConfig(c) => write!(f, "delete config `{}`", c.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_shape_is_wadms() {
        let cmd = Command::ScaleComponent(ScaleComponent {
            host_id: "N1".into(),
            component_id: "app-http".into(),
            image_ref: "img:1".into(),
            count: 2,
            model_name: "app".into(),
            annotations: BTreeMap::from([("k".into(), "v".into())]),
            config: vec![],
            allow_update: false,
            max_instance_reuse: None,
        });
        assert_eq!(
            serde_json::to_value(&cmd).unwrap(),
            json!({"ScaleComponent": {"host_id": "N1", "component_id": "app-http",
                "reference": "img:1", "count": 2, "model_name": "app",
                "annotations": {"k": "v"}}})
        );
        let put = Command::PutConfig(PutConfig {
            name: "app-cfg".into(),
            values: BTreeMap::from([("a".into(), "b".into())]),
        });
        assert_eq!(
            serde_json::to_value(&put).unwrap(),
            json!({"PutConfig": {"config_name": "app-cfg", "config": {"a": "b"}}})
        );
        let link = Command::PutLink(PutLink {
            link: Link {
                source_id: "s".into(),
                target: "t".into(),
                name: "default".into(),
                wit_namespace: "wasi".into(),
                wit_package: "http".into(),
                interfaces: vec!["incoming-handler".into()],
                source_config: vec![],
                target_config: vec![],
            },
            model_name: "app".into(),
        });
        let v = serde_json::to_value(&link).unwrap();
        assert_eq!(v["PutLink"]["source_id"], "s");
        assert_eq!(v["PutLink"]["model_name"], "app");
        let back: Command = serde_json::from_value(v).unwrap();
        assert_eq!(back, link);
    }

    #[test]
    fn ctl_requests_carry_everything() {
        let scale = ScaleComponent {
            host_id: "N1".into(),
            component_id: "c".into(),
            image_ref: "img:2".into(),
            count: 3,
            model_name: "app".into(),
            annotations: BTreeMap::from([("k".into(), "v".into())]),
            config: vec!["cfg".into()],
            allow_update: true,
            max_instance_reuse: None,
        };
        let ctl = scale.to_ctl();
        // A replacement sends its limits whole: none set, so the host resets
        // them to its defaults; a start or resize sends none, as wadm 0.21.
        assert_eq!(ctl.component_limits, Some(BTreeMap::new()));
        let start = ScaleComponent {
            allow_update: false,
            ..scale.clone()
        };
        assert_eq!(
            start.to_ctl().component_limits,
            None,
            "the host default applies"
        );
        let reusing = ScaleComponent {
            max_instance_reuse: Some(64),
            ..scale.clone()
        }
        .to_ctl();
        assert_eq!(
            reusing.component_limits,
            Some(BTreeMap::from([("max_instance_reuse".into(), "64".into())]))
        );
        assert_eq!(ctl.max_instances, 3);
        assert!(ctl.allow_update);
        assert_eq!(ctl.component_ref, "img:2");
        assert_eq!(ctl.config, vec!["cfg".to_string()]);
        let del = DeleteLink {
            source_id: "s".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            link_name: "default".into(),
            model_name: "app".into(),
        };
        assert_eq!(del.to_ctl().name, "default");
        assert_eq!(
            Command::ScaleComponent(scale).to_string(),
            "scale `c` (img:2) to 3 on N1 (update)"
        );
    }
}
