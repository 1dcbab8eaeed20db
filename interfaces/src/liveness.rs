//! Trellis's own host liveness beat, published on
//! [`liveness_subject`](crate::subject::liveness_subject) every second or so.
//!
//! wasmCloud 1.x only has the 30-second `host_heartbeat`, so losing a host takes
//! minutes to notice. The beat is small and frequent; the heartbeat stays for wadm
//! and `wash`. Not part of the wasmCloud wire surface.

use serde::{Deserialize, Serialize};

/// One liveness beat of one host (JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivenessBeat {
    /// Host id (`N…`).
    pub host_id: String,
    /// Beat counter, starting at 0 and incremented per beat, so observers can see
    /// gaps and restarts (a smaller `seq` than before means the host restarted).
    pub seq: u64,
    /// Milliseconds since the host started.
    pub uptime_ms: u64,
    /// Components running on the host.
    pub components: u32,
    /// Providers running on the host.
    pub providers: u32,
    /// Whether the host accepts work (false while starting or draining).
    pub ready: bool,
    /// Link calls by path since the host started (absent from older hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<CallCounts>,
    /// The host's component instance slots (absent from older hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<InstanceSlots>,
}

/// How a host's component instance slots (its pooled instances) are used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSlots {
    /// Slots in all (`--max-memory-bytes` / `--max-linear-memory-bytes`).
    pub slots: u32,
    /// Slots free now; a call that finds none waits for one.
    pub free: u32,
    /// Slots held by instances waiting for a call: reused instances (opt-in
    /// instance reuse) and spares made ahead of an export's next call; they
    /// are torn down when a call needs their slot.
    pub idle: u32,
}

/// Calls through links, by the path they took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounts {
    /// Calls from components here to targets here, made in-process.
    pub local: u64,
    /// Calls from components here sent over the lattice.
    pub lattice: u64,
    /// Calls received from the lattice and run by components here.
    pub served: u64,
    /// Of `served`, those that ran on an instance made while their export
    /// was idle (absent from older hosts).
    #[serde(default)]
    pub served_ahead: u64,
    /// Calls, served or in-process, that ran on an instance that had
    /// already answered a call (instance reuse, opt-in; absent from older
    /// hosts).
    #[serde(default)]
    pub reused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beat_round_trips() {
        let beat = LivenessBeat {
            host_id: "N1".into(),
            seq: 7,
            uptime_ms: 7_000,
            components: 2,
            providers: 1,
            ready: true,
            calls: None,
            instances: None,
        };
        let json = serde_json::to_string(&beat).unwrap();
        assert_eq!(
            json,
            r#"{"host_id":"N1","seq":7,"uptime_ms":7000,"components":2,"providers":1,"ready":true}"#
        );
        assert_eq!(serde_json::from_str::<LivenessBeat>(&json).unwrap(), beat);
        let with_slots = LivenessBeat {
            instances: Some(InstanceSlots {
                slots: 16,
                free: 9,
                idle: 7,
            }),
            ..beat
        };
        let json = serde_json::to_value(&with_slots).unwrap();
        assert_eq!(
            json["instances"],
            serde_json::json!({"slots": 16, "free": 9, "idle": 7})
        );
        assert_eq!(
            serde_json::from_value::<LivenessBeat>(json).unwrap(),
            with_slots
        );
    }
}
