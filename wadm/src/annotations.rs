//! The annotations wadm puts on everything it starts, and the scaler ids inside them.
//!
//! Scaler ids are computed exactly as wadm 0.21 computes them (SHA-256 over the
//! scaler's parameters, concatenated without separators), so a lattice managed by
//! wadm 0.21 can be taken over by Trellis without restarting anything: the instances
//! it finds carry the ids Trellis would have given them.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use trellis_interfaces::ctl::Annotations;

/// Annotation naming who manages an instance; wadm writes [`MANAGED_BY_WADM`].
pub const MANAGED_BY_KEY: &str = "wasmcloud.dev/managed-by";
/// Value of [`MANAGED_BY_KEY`] on everything wadm starts.
pub const MANAGED_BY_WADM: &str = "wadm";
/// Annotation naming the application an instance belongs to.
pub const APPSPEC_KEY: &str = "wasmcloud.dev/appspec";
/// Annotation carrying the id of the scaler that started an instance.
pub const SCALER_KEY: &str = "wasmcloud.dev/scaler";
/// Annotation carrying the name of the spread an instance was placed for.
pub const SPREAD_NAME_KEY: &str = "wasmcloud.dev/spread_name";
/// Name of the implicit spread of a scaler that lists none (wadm's `Spread::default()`).
pub const DEFAULT_SPREAD_NAME: &str = "default";

/// Scaler kind reported in status for `spreadscaler` traits.
pub const SPREAD_SCALER_KIND: &str = "SpreadScaler";
/// Scaler kind reported in status for `daemonscaler` traits.
pub const DAEMON_SCALER_KIND: &str = "DaemonScaler";
/// Scaler kind reported in status for `link` traits.
pub const LINK_SCALER_KIND: &str = "LinkScaler";
/// Scaler kind of a placeholder that only reports a problem (wadm's `StatusScaler`).
pub const STATUS_SCALER_KIND: &str = "StatusScaler";

/// wadm's `compute_id_sha256`: the lowercase hex SHA-256 of the parts, concatenated.
#[must_use]
pub fn compute_id_sha256(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Id of a component or provider scaler (`kind` is [`SPREAD_SCALER_KIND`] or
/// [`DAEMON_SCALER_KIND`]): it changes when the image, id or config names change, not
/// when the instance count or spreads change, so scaling is not an upgrade. `extra`
/// holds settings beyond wadm 0.21's (Trellis extensions such as
/// `max_instance_reuse`); without them the id is wadm's.
#[must_use]
pub fn workload_scaler_id(
    kind: &str,
    app: &str,
    component_name: &str,
    id: &str,
    image_ref: &str,
    config: &[String],
    extra: Option<&str>,
) -> String {
    let mut parts = vec![kind, app, component_name, id, image_ref];
    parts.extend(config.iter().map(String::as_str));
    parts.extend(extra);
    compute_id_sha256(&parts)
}

/// The parts of a link that make its scaler id.
#[derive(Clone, Copy, Debug)]
pub struct LinkIdParts<'a> {
    /// Application name.
    pub app: &'a str,
    /// Link name.
    pub name: &'a str,
    /// Source id.
    pub source_id: &'a str,
    /// Target id.
    pub target: &'a str,
    /// WIT namespace.
    pub wit_namespace: &'a str,
    /// WIT package.
    pub wit_package: &'a str,
    /// WIT interfaces.
    pub interfaces: &'a [String],
    /// Config names for the source.
    pub source_config: &'a [String],
    /// Config names for the target.
    pub target_config: &'a [String],
}

/// Id of a link scaler, as wadm 0.21 computes it.
#[must_use]
pub fn link_scaler_id(link: &LinkIdParts<'_>) -> String {
    let mut parts = vec![
        LINK_SCALER_KIND,
        link.app,
        link.name,
        link.source_id,
        link.target,
        link.wit_namespace,
        link.wit_package,
    ];
    parts.extend(link.interfaces.iter().map(String::as_str));
    parts.extend(link.source_config.iter().map(String::as_str));
    parts.extend(link.target_config.iter().map(String::as_str));
    compute_id_sha256(&parts)
}

/// Everything wadm writes on an instance it starts for `app`, scaler `scaler_id` and
/// spread `spread_name`.
#[must_use]
pub fn managed_annotations(app: &str, scaler_id: &str, spread_name: &str) -> Annotations {
    BTreeMap::from([
        (MANAGED_BY_KEY.to_string(), MANAGED_BY_WADM.to_string()),
        (APPSPEC_KEY.to_string(), app.to_string()),
        (SCALER_KEY.to_string(), scaler_id.to_string()),
        (SPREAD_NAME_KEY.to_string(), spread_name.to_string()),
    ])
}

/// The application an instance belongs to, if wadm started it (`managed-by: wadm` and
/// an `appspec`); `None` for anything started by hand or by another tool.
#[must_use]
pub fn managing_app(annotations: &Annotations) -> Option<&str> {
    let managed = annotations
        .get(MANAGED_BY_KEY)
        .is_some_and(|v| v == MANAGED_BY_WADM);
    if managed {
        annotations.get(APPSPEC_KEY).map(String::as_str)
    } else {
        None
    }
}

/// The scaler id recorded on an instance, if any.
#[must_use]
pub fn scaler_of(annotations: &Annotations) -> Option<&str> {
    annotations.get(SCALER_KEY).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_vector() {
        // sha256("abc"), split over parts to show parts are concatenated.
        assert_eq!(
            compute_id_sha256(&["a", "b", "c"]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn workload_id_is_stable_and_ignores_counts() {
        let a = workload_scaler_id(SPREAD_SCALER_KIND, "app", "c", "app-c", "img:1", &[], None);
        let b = workload_scaler_id(SPREAD_SCALER_KIND, "app", "c", "app-c", "img:1", &[], None);
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        let other_image =
            workload_scaler_id(SPREAD_SCALER_KIND, "app", "c", "app-c", "img:2", &[], None);
        assert_ne!(a, other_image);
        let with_config = workload_scaler_id(
            SPREAD_SCALER_KIND,
            "app",
            "c",
            "app-c",
            "img:1",
            &["cfg".to_string()],
            None,
        );
        assert_ne!(a, with_config);
        let reusing = workload_scaler_id(
            SPREAD_SCALER_KIND,
            "app",
            "c",
            "app-c",
            "img:1",
            &[],
            Some("max_instance_reuse=8"),
        );
        assert_ne!(a, reusing);
        let daemon =
            workload_scaler_id(DAEMON_SCALER_KIND, "app", "c", "app-c", "img:1", &[], None);
        assert_ne!(a, daemon);
        // Same as wadm: plain concatenation of the parts.
        assert_eq!(
            a,
            compute_id_sha256(&["SpreadScaler", "app", "c", "app-c", "img:1"])
        );
    }

    #[test]
    fn only_wadm_annotations_name_an_app() {
        let ours = managed_annotations("app", "sid", "eu");
        assert_eq!(managing_app(&ours), Some("app"));
        assert_eq!(scaler_of(&ours), Some("sid"));
        let mut by_hand = ours.clone();
        by_hand.remove(MANAGED_BY_KEY);
        assert_eq!(managing_app(&by_hand), None);
        let mut other_tool = ours;
        other_tool.insert(MANAGED_BY_KEY.into(), "kubectl".into());
        assert_eq!(managing_app(&other_tool), None);
    }
}
