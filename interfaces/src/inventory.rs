//! What a host says about itself: the `host.ping` reply ([`Host`]), the `host.get`
//! reply and heartbeat body ([`HostInventory`]) and its parts (PROTOCOL.md §2.3).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ctl::Annotations;

/// One host's answer to `host.ping`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Host id: the host's nkey server public key (`N…`).
    #[serde(default)]
    pub id: String,
    /// Human-friendly name (`adjective-noun-NNNN`).
    #[serde(default)]
    pub friendly_name: String,
    /// Host labels, built-in `hostcore.*` ones included.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The lattice the host belongs to.
    #[serde(default)]
    pub lattice: String,
    /// Seconds since the host started.
    #[serde(default)]
    pub uptime_seconds: u64,
    /// Uptime for people, e.g. `1h 2m 3s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_human: Option<String>,
    /// Host software version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// NATS server of the control connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctl_host: Option<String>,
    /// NATS server of the RPC connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_host: Option<String>,
    /// JetStream domain, if the host uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_domain: Option<String>,
}

/// Everything running on one host: the `host.get` reply and the `host_heartbeat` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInventory {
    /// Components running on the host (`actors` in pre-1.0 hosts).
    #[serde(default, alias = "actors")]
    pub components: Vec<ComponentDescription>,
    /// Providers running on the host.
    #[serde(default)]
    pub providers: Vec<ProviderDescription>,
    /// Host id (`N…`).
    #[serde(default)]
    pub host_id: String,
    /// Human-friendly name.
    #[serde(default)]
    pub friendly_name: String,
    /// Host labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Host software version; wadm requires valid semver here.
    #[serde(default)]
    pub version: String,
    /// Uptime for people, e.g. `1h 2m 3s`.
    #[serde(default)]
    pub uptime_human: String,
    /// Seconds since the host started.
    #[serde(default)]
    pub uptime_seconds: u64,
}

/// One running component in a [`HostInventory`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentDescription {
    /// Component id.
    #[serde(default)]
    pub id: String,
    /// Image reference it was started from.
    #[serde(default)]
    pub image_ref: String,
    /// Name from the component's claims, if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Annotations from the scale request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// Revision from the component's claims (0 if unsigned).
    #[serde(default)]
    pub revision: i32,
    /// Maximum concurrent instances.
    #[serde(default)]
    pub max_instances: u32,
    /// Resource limits from the scale request (`component_limits`). wasmCloud 1.9
    /// writes `null` when there are none; Trellis omits the key, which every reader
    /// treats the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, String>>,
}

/// One running provider in a [`HostInventory`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderDescription {
    /// Provider id.
    #[serde(default)]
    pub id: String,
    /// Image reference it was started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<String>,
    /// Name from the provider's claims, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Revision from the provider's claims (0 if none).
    #[serde(default)]
    pub revision: i32,
    /// Annotations from the start request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

/// Formats an uptime the way wasmCloud's `uptime_human` reads: `30s`, `1m 5s`,
/// `2h 0m 7s`, `1d 3h 0m 0s`.
#[must_use]
pub fn human_uptime(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (hours, rest) = (rest / 3_600, rest % 3_600);
    let (minutes, secs) = (rest / 60, rest % 60);
    if days > 0 {
        format!("{days}d {hours}h {minutes}m {secs}s")
    } else if hours > 0 {
        format!("{hours}h {minutes}m {secs}s")
    } else if minutes > 0 {
        format!("{minutes}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inventory_accepts_legacy_actors_key() {
        let inv: HostInventory = serde_json::from_value(json!({
            "actors": [{"id": "a", "image_ref": "r", "revision": 0, "max_instances": 1}],
            "providers": [],
            "host_id": "N1", "friendly_name": "f", "labels": {}, "version": "1.9.2",
            "uptime_human": "1s", "uptime_seconds": 1
        }))
        .unwrap();
        assert_eq!(inv.components.len(), 1);
        let out = serde_json::to_value(&inv).unwrap();
        assert!(out.get("components").is_some());
        assert!(out.get("actors").is_none());
    }

    #[test]
    fn host_ping_reply_omits_absent_options() {
        let host = Host {
            id: "N1".into(),
            friendly_name: "f".into(),
            lattice: "default".into(),
            ..Host::default()
        };
        assert_eq!(
            serde_json::to_value(&host).unwrap(),
            json!({"id": "N1", "friendly_name": "f", "labels": {}, "lattice": "default",
                   "uptime_seconds": 0})
        );
    }

    #[test]
    fn component_limits_round_trip() {
        let v = json!({"id": "c", "image_ref": "r", "revision": 2, "max_instances": 4,
                       "limits": {"max_memory_limit": "64"}});
        let d: ComponentDescription = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&d).unwrap(), v);
        let null_limits: ComponentDescription =
            serde_json::from_value(json!({"id": "c", "image_ref": "r", "limits": null})).unwrap();
        assert_eq!(null_limits.limits, None);
    }

    #[test]
    fn uptime_is_human() {
        assert_eq!(human_uptime(30), "30s");
        assert_eq!(human_uptime(65), "1m 5s");
        assert_eq!(human_uptime(3_723), "1h 2m 3s");
        assert_eq!(human_uptime(90_061), "1d 1h 1m 1s");
    }
}
