//! Lattice events (PROTOCOL.md §2.4): the CloudEvents 1.0 envelope hosts publish on
//! `wasmbus.evt.{lattice}.{event}` and the typed [`LatticeEvent`] inside it.
//!
//! ```
//! use trellis_interfaces::event::{CloudEvent, ConfigEvent, LatticeEvent};
//!
//! let event = LatticeEvent::ConfigSet(ConfigEvent { config_name: "db".into() });
//! let envelope = CloudEvent::new("NHOST", &event);
//! assert_eq!(envelope.ty, "com.wasmcloud.lattice.config_set");
//! assert_eq!(envelope.decode().unwrap(), event);
//! ```

mod payload;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::link::Link;
pub use payload::*;

/// CloudEvents spec version written and expected.
pub const SPEC_VERSION: &str = "1.0";
/// Content type of every event's `data`.
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// Type prefix of host events: `com.wasmcloud.lattice.{name}`.
pub const WASMCLOUD_TYPE_PREFIX: &str = "com.wasmcloud.lattice.";
/// Type prefix of wadm's events: `com.wadm.{name}`.
pub const WADM_TYPE_PREFIX: &str = "com.wadm.";

/// A CloudEvents 1.0 envelope in JSON structured mode, as wasmCloud hosts publish it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always `"1.0"`.
    pub specversion: String,
    /// Unique id; wasmCloud hosts use a ULID rendered as a UUID.
    pub id: String,
    /// `com.wasmcloud.lattice.{event}` or `com.wadm.{event}`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Publisher: the host id, or `"wadm"`.
    pub source: String,
    /// Always `"application/json"`.
    #[serde(default)]
    pub datacontenttype: String,
    /// When it happened, RFC 3339 UTC.
    #[serde(default)]
    pub time: String,
    /// The payload, see [`LatticeEvent`].
    #[serde(default)]
    pub data: Value,
    /// Any other CloudEvents attributes (extensions), kept so they survive a round trip.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

/// Why a [`CloudEvent`] could not be decoded into a [`LatticeEvent`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not one of the event types Trellis knows.
    #[error("unsupported event type `{ty}`")]
    UnknownType {
        /// The `type` attribute.
        ty: String,
    },
    /// The `data` does not have the shape of that event.
    #[error("invalid data in `{ty}` event: {source}")]
    Payload {
        /// The `type` attribute.
        ty: String,
        /// The decoding error.
        source: serde_json::Error,
    },
}

/// Every lattice event, with its typed payload.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LatticeEvent {
    /// `host_started`
    HostStarted(HostStarted),
    /// `host_stopped`
    HostStopped(HostStopped),
    /// `host_heartbeat`
    HostHeartbeat(HostHeartbeat),
    /// `component_scaled`
    ComponentScaled(ComponentScaled),
    /// `component_scale_failed`
    ComponentScaleFailed(ComponentScaleFailed),
    /// `provider_started`
    ProviderStarted(ProviderStarted),
    /// `provider_start_failed`
    ProviderStartFailed(ProviderStartFailed),
    /// `provider_stopped`
    ProviderStopped(ProviderStopped),
    /// `health_check_passed` (a provider became healthy)
    HealthCheckPassed(ProviderHealthCheck),
    /// `health_check_failed` (a provider became unhealthy)
    HealthCheckFailed(ProviderHealthCheck),
    /// `health_check_status` (periodic, no change)
    HealthCheckStatus(ProviderHealthCheck),
    /// `linkdef_set`: the data is the [`Link`] itself.
    LinkdefSet(Link),
    /// `linkdef_set_failed`
    LinkdefSetFailed(LinkdefSetFailed),
    /// `linkdef_deleted`
    LinkdefDeleted(LinkdefDeleted),
    /// `config_set`
    ConfigSet(ConfigEvent),
    /// `config_deleted`
    ConfigDeleted(ConfigEvent),
    /// `labels_changed`
    LabelsChanged(LabelsChanged),
    /// wadm's `manifest_published`: the data is the whole manifest, kept as JSON.
    ManifestPublished(Value),
    /// wadm's `manifest_unpublished`
    ManifestUnpublished(ManifestUnpublished),
}

fn parse<T: serde::de::DeserializeOwned>(ty: &str, data: Value) -> Result<T, EventError> {
    serde_json::from_value(data).map_err(|source| EventError::Payload {
        ty: ty.to_string(),
        source,
    })
}

fn encode<T: Serialize>(payload: &T) -> Value {
    // Payloads are plain structs whose maps are keyed by `String`: serializing them to
    // a `Value` cannot fail, so the fallback is unreachable in practice.
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

impl LatticeEvent {
    /// The event name: the last token of its subject and type, e.g. `"component_scaled"`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::HostStarted(_) => "host_started",
            Self::HostStopped(_) => "host_stopped",
            Self::HostHeartbeat(_) => "host_heartbeat",
            Self::ComponentScaled(_) => "component_scaled",
            Self::ComponentScaleFailed(_) => "component_scale_failed",
            Self::ProviderStarted(_) => "provider_started",
            Self::ProviderStartFailed(_) => "provider_start_failed",
            Self::ProviderStopped(_) => "provider_stopped",
            Self::HealthCheckPassed(_) => "health_check_passed",
            Self::HealthCheckFailed(_) => "health_check_failed",
            Self::HealthCheckStatus(_) => "health_check_status",
            Self::LinkdefSet(_) => "linkdef_set",
            Self::LinkdefSetFailed(_) => "linkdef_set_failed",
            Self::LinkdefDeleted(_) => "linkdef_deleted",
            Self::ConfigSet(_) => "config_set",
            Self::ConfigDeleted(_) => "config_deleted",
            Self::LabelsChanged(_) => "labels_changed",
            Self::ManifestPublished(_) => "manifest_published",
            Self::ManifestUnpublished(_) => "manifest_unpublished",
        }
    }

    /// Whether this is one of wadm's events (`com.wadm.*`, published on `wadm.evt.…`).
    #[must_use]
    pub fn is_wadm(&self) -> bool {
        matches!(
            self,
            Self::ManifestPublished(_) | Self::ManifestUnpublished(_)
        )
    }

    /// The CloudEvents `type`, e.g. `com.wasmcloud.lattice.component_scaled`.
    #[must_use]
    pub fn event_type(&self) -> String {
        let prefix = if self.is_wadm() {
            WADM_TYPE_PREFIX
        } else {
            WASMCLOUD_TYPE_PREFIX
        };
        format!("{prefix}{}", self.name())
    }

    /// The payload as the JSON `data` of the envelope.
    #[must_use]
    pub fn to_data(&self) -> Value {
        match self {
            Self::HostStarted(p) => encode(p),
            Self::HostStopped(p) => encode(p),
            Self::HostHeartbeat(p) => encode(p),
            Self::ComponentScaled(p) => encode(p),
            Self::ComponentScaleFailed(p) => encode(p),
            Self::ProviderStarted(p) => encode(p),
            Self::ProviderStartFailed(p) => encode(p),
            Self::ProviderStopped(p) => encode(p),
            Self::HealthCheckPassed(p)
            | Self::HealthCheckFailed(p)
            | Self::HealthCheckStatus(p) => encode(p),
            Self::LinkdefSet(p) => encode(p),
            Self::LinkdefSetFailed(p) => encode(p),
            Self::LinkdefDeleted(p) => encode(p),
            Self::ConfigSet(p) | Self::ConfigDeleted(p) => encode(p),
            Self::LabelsChanged(p) => encode(p),
            Self::ManifestPublished(v) => v.clone(),
            Self::ManifestUnpublished(p) => encode(p),
        }
    }

    /// Decodes `data` given the CloudEvents `type`.
    pub fn from_parts(ty: &str, data: Value) -> Result<Self, EventError> {
        let unknown = || EventError::UnknownType { ty: ty.to_string() };
        if let Some(name) = ty.strip_prefix(WADM_TYPE_PREFIX) {
            return match name {
                "manifest_published" => Ok(Self::ManifestPublished(data)),
                "manifest_unpublished" => parse(ty, data).map(Self::ManifestUnpublished),
                _ => Err(unknown()),
            };
        }
        let name = ty.strip_prefix(WASMCLOUD_TYPE_PREFIX).ok_or_else(unknown)?;
        Ok(match name {
            "host_started" => Self::HostStarted(parse(ty, data)?),
            "host_stopped" => Self::HostStopped(parse(ty, data)?),
            "host_heartbeat" => Self::HostHeartbeat(parse(ty, data)?),
            "component_scaled" => Self::ComponentScaled(parse(ty, data)?),
            "component_scale_failed" => Self::ComponentScaleFailed(parse(ty, data)?),
            "provider_started" => Self::ProviderStarted(parse(ty, data)?),
            "provider_start_failed" => Self::ProviderStartFailed(parse(ty, data)?),
            "provider_stopped" => Self::ProviderStopped(parse(ty, data)?),
            "health_check_passed" => Self::HealthCheckPassed(parse(ty, data)?),
            "health_check_failed" => Self::HealthCheckFailed(parse(ty, data)?),
            "health_check_status" => Self::HealthCheckStatus(parse(ty, data)?),
            "linkdef_set" => Self::LinkdefSet(parse(ty, data)?),
            "linkdef_set_failed" => Self::LinkdefSetFailed(parse(ty, data)?),
            "linkdef_deleted" => Self::LinkdefDeleted(parse(ty, data)?),
            "config_set" => Self::ConfigSet(parse(ty, data)?),
            "config_deleted" => Self::ConfigDeleted(parse(ty, data)?),
            "labels_changed" => Self::LabelsChanged(parse(ty, data)?),
            _ => return Err(unknown()),
        })
    }
}

/// A fresh event id the way wasmCloud makes them: a ULID (time-ordered) as a UUID.
#[must_use]
pub fn new_event_id() -> String {
    uuid::Uuid::from_u128(u128::from(ulid::Ulid::new())).to_string()
}

/// Formats `time` as RFC 3339 for the `time` attribute.
#[must_use]
pub fn format_event_time(time: OffsetDateTime) -> String {
    // Formatting fails only for years outside 0..=9999, which a clock never reports.
    time.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

impl CloudEvent {
    /// Wraps `event` as published by `source` (a host id, or `"wadm"`), with a fresh
    /// id and the current time.
    #[must_use]
    pub fn new(source: &str, event: &LatticeEvent) -> Self {
        Self::new_at(source, event, new_event_id(), OffsetDateTime::now_utc())
    }

    /// Like [`CloudEvent::new`] with the id and time given (for tests and simulation).
    #[must_use]
    pub fn new_at(source: &str, event: &LatticeEvent, id: String, time: OffsetDateTime) -> Self {
        Self {
            specversion: SPEC_VERSION.to_string(),
            id,
            ty: event.event_type(),
            source: source.to_string(),
            datacontenttype: DATA_CONTENT_TYPE.to_string(),
            time: format_event_time(time),
            data: event.to_data(),
            extensions: BTreeMap::new(),
        }
    }

    /// The event name (last token of the type), if the type has a known prefix.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.ty
            .strip_prefix(WASMCLOUD_TYPE_PREFIX)
            .or_else(|| self.ty.strip_prefix(WADM_TYPE_PREFIX))
    }

    /// The typed event inside.
    pub fn decode(&self) -> Result<LatticeEvent, EventError> {
        LatticeEvent::from_parts(&self.ty, self.data.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_matches_wasmcloud_shape() {
        let event = LatticeEvent::ConfigSet(ConfigEvent {
            config_name: "rust_hello_world-custom_config".into(),
        });
        let time = OffsetDateTime::from_unix_timestamp(1_754_502_571).unwrap();
        let ce = CloudEvent::new_at(
            "NBBQ5",
            &event,
            "01988080-a4e1-0000-0000-000000000000".into(),
            time,
        );
        assert_eq!(
            serde_json::to_value(&ce).unwrap(),
            json!({"specversion": "1.0", "id": "01988080-a4e1-0000-0000-000000000000",
                   "type": "com.wasmcloud.lattice.config_set", "source": "NBBQ5",
                   "datacontenttype": "application/json", "time": "2025-08-06T17:49:31Z",
                   "data": {"config_name": "rust_hello_world-custom_config"}})
        );
        assert_eq!(ce.name(), Some("config_set"));
    }

    #[test]
    fn ids_are_ulid_uuids_and_time_is_utc() {
        let a = new_event_id();
        let b = new_event_id();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        let ulid = ulid::Ulid::from(parsed.as_u128());
        let now_ms = u64::try_from(OffsetDateTime::now_utc().unix_timestamp() * 1000).unwrap();
        assert!(ulid.timestamp_ms().abs_diff(now_ms) < 60_000);
        let ce = CloudEvent::new("N1", &LatticeEvent::HostStopped(HostStopped::default()));
        assert!(ce.time.ends_with('Z'), "{}", ce.time);
        assert!(OffsetDateTime::parse(&ce.time, &Rfc3339).is_ok());
    }

    #[test]
    fn wadm_events_use_wadm_type() {
        let ev = LatticeEvent::ManifestUnpublished(ManifestUnpublished { name: "app".into() });
        assert_eq!(ev.event_type(), "com.wadm.manifest_unpublished");
        let ce = CloudEvent::new("wadm", &ev);
        assert_eq!(ce.decode().unwrap(), ev);
    }

    #[test]
    fn unknown_and_malformed_events_are_errors() {
        let err =
            LatticeEvent::from_parts("com.wasmcloud.lattice.refmap_set", json!({})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported event type `com.wasmcloud.lattice.refmap_set`"
        );
        assert!(LatticeEvent::from_parts("org.example.x", json!({})).is_err());
        let err = LatticeEvent::from_parts("com.wasmcloud.lattice.config_set", json!({"x": 1}))
            .unwrap_err();
        assert!(matches!(err, EventError::Payload { .. }), "{err}");
    }

    #[test]
    fn extensions_survive_round_trip() {
        let v = json!({"specversion": "1.0", "id": "x", "type": "com.wasmcloud.lattice.config_set",
                       "source": "N1", "datacontenttype": "application/json", "time": "t",
                       "traceparent": "00-abc-def-01", "data": {"config_name": "c"}});
        let ce: CloudEvent = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(ce.extensions.len(), 1);
        assert_eq!(serde_json::to_value(&ce).unwrap(), v);
    }
}
