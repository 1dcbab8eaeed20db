//! The `data` of each lattice event (PROTOCOL.md §2.4), field for field.
//!
//! Fields that some hosts leave out are `Option`s skipped when `None`, so an event
//! decodes and re-encodes to the same JSON. Fields wasmCloud keeps only for old
//! consumers are marked *legacy*; Trellis hosts may fill them for compatibility.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ctl::Annotations;
use crate::inventory::HostInventory;
use crate::link::Link;

/// Claims summary carried by component events (from the component's signed JWT).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentClaims {
    /// Call alias, if the component declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_alias: Option<String>,
    /// Account public key that signed the component (`A…`).
    #[serde(default)]
    pub issuer: String,
    /// Tags from the claims. Always written (as `null` when absent), as wasmCloud does
    /// for signed components.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Component name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Component version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Component revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i32>,
    /// Not-before time for people, or `"immediately"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_human: Option<String>,
    /// Expiry time for people, or `"never"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_human: Option<String>,
    /// Legacy (pre-1.0 actors): capability contract ids the actor was signed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
}

/// Claims summary carried by `provider_started`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderClaims {
    /// Account public key that signed the provider (`A…`).
    #[serde(default)]
    pub issuer: String,
    /// Always `null` from wasmCloud hosts; always written.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Provider name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Provider version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Not-before time for people, or `"immediately"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_human: Option<String>,
    /// Expiry time for people, or `"never"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_human: Option<String>,
}

/// `host_started`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStarted {
    /// Human-friendly host name.
    #[serde(default)]
    pub friendly_name: String,
    /// Host labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Always 0 from 1.x hosts; absent from older ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// Host software version; absent from older hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `host_stopped`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStopped {
    /// The stopping host's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `host_heartbeat`: the full inventory, plus the issuer some hosts add.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostHeartbeat {
    /// Everything running on the host.
    #[serde(flatten)]
    pub inventory: HostInventory,
    /// Cluster issuer key (`C…`), sent by older hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl From<HostInventory> for HostHeartbeat {
    fn from(inventory: HostInventory) -> Self {
        Self {
            inventory,
            issuer: None,
        }
    }
}

/// `component_scaled`: a component now runs with `max_instances` (0 = stopped).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentScaled {
    /// Component's own public key (`M…`), if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Claims summary, if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ComponentClaims>,
    /// Annotations of the component (wadm requires the key).
    #[serde(default)]
    pub annotations: Annotations,
    /// Host that scaled it.
    #[serde(default)]
    pub host_id: String,
    /// Image reference.
    pub image_ref: String,
    /// New maximum concurrency.
    pub max_instances: u32,
    /// Component id.
    pub component_id: String,
}

/// `component_scale_failed`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentScaleFailed {
    /// Component's own public key (`M…`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Claims summary, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ComponentClaims>,
    /// Annotations from the request.
    #[serde(default)]
    pub annotations: Annotations,
    /// Host that tried.
    #[serde(default)]
    pub host_id: String,
    /// Image reference requested.
    pub image_ref: String,
    /// Requested maximum concurrency.
    pub max_instances: u32,
    /// Component id.
    pub component_id: String,
    /// What went wrong.
    pub error: String,
}

/// `provider_started`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStarted {
    /// Host running the provider.
    #[serde(default)]
    pub host_id: String,
    /// Image reference.
    pub image_ref: String,
    /// Provider id.
    pub provider_id: String,
    /// Annotations from the start request.
    #[serde(default)]
    pub annotations: Annotations,
    /// Claims summary, if the provider archive is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ProviderClaims>,
    /// Legacy: equals `provider_id` in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Legacy: equals `provider_id` in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Legacy: always `"default"` in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_name: Option<String>,
}

/// `provider_start_failed`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStartFailed {
    /// Image reference requested.
    pub provider_ref: String,
    /// Provider id requested.
    pub provider_id: String,
    /// Host that tried (omitted by pre-1.0 hosts, then left out here too).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_id: String,
    /// What went wrong.
    pub error: String,
    /// Legacy: always `"default"` in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_name: Option<String>,
}

/// `provider_stopped`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStopped {
    /// Host the provider ran on.
    #[serde(default)]
    pub host_id: String,
    /// Provider id.
    pub provider_id: String,
    /// Annotations from the start request.
    #[serde(default)]
    pub annotations: Annotations,
    /// Why it stopped (`"stop"` for a requested stop).
    #[serde(default)]
    pub reason: String,
    /// Legacy: equals `provider_id` in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Legacy: equals `provider_id` in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Legacy: always `"default"` in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_name: Option<String>,
}

/// `health_check_passed`, `health_check_failed` and `health_check_status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderHealthCheck {
    /// Host running the provider.
    #[serde(default)]
    pub host_id: String,
    /// Provider id.
    pub provider_id: String,
}

/// `linkdef_set_failed`: the link as requested, plus the reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkdefSetFailed {
    /// The rejected link.
    #[serde(flatten)]
    pub link: Link,
    /// Why it was rejected.
    pub error: String,
}

/// `linkdef_deleted`. `target` and `interfaces` are present only if the link existed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkdefDeleted {
    /// Link source.
    pub source_id: String,
    /// Link name.
    #[serde(default = "default_link_name")]
    pub name: String,
    /// WIT namespace.
    pub wit_namespace: String,
    /// WIT package.
    pub wit_package: String,
    /// Target of the removed link, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Interfaces of the removed link, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<String>>,
}

fn default_link_name() -> String {
    crate::link::DEFAULT_LINK_NAME.to_string()
}

/// `config_set` and `config_deleted`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEvent {
    /// The config's name.
    pub config_name: String,
}

/// `labels_changed`: the host's full label set after the change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelsChanged {
    /// Host whose labels changed.
    pub host_id: String,
    /// All labels now.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// wadm's `manifest_unpublished`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestUnpublished {
    /// Application name.
    pub name: String,
}
