//! Invocation metrics, named as the wasmCloud 1.x host named them:
//!
//! | instrument | kind | unit |
//! | --- | --- | --- |
//! | `wasmcloud_host.handle_rpc_message.duration` | histogram (u64) | nanoseconds |
//! | `wasmcloud_host.component.invocations` | counter (u64) | |
//! | `wasmcloud_host.component.invocation.errors` | counter (u64) | |
//! | `wasmcloud_host.component.active_instances` | up-down counter (i64) | |
//!
//! Every point carries `component.id`, `component.ref`, `lattice`, `host` and
//! `operation` (`{interface}/{function}`, as wasmCloud). One invocation is
//! one HTTP request handled, one in-process call, or one call served from the
//! lattice. Without `--enable-metrics` nothing is installed and
//! [`InvocationMetrics::start`] returns an empty record.

use std::sync::OnceLock;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _, UpDownCounter};
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::Identity;

/// Duration of each invocation.
pub const DURATION: &str = "wasmcloud_host.handle_rpc_message.duration";
/// Invocations, successful or not.
pub const INVOCATIONS: &str = "wasmcloud_host.component.invocations";
/// Invocations that failed (trap, deadline, refused, error response code).
pub const ERRORS: &str = "wasmcloud_host.component.invocation.errors";
/// Instances running an invocation right now.
pub const ACTIVE_INSTANCES: &str = "wasmcloud_host.component.active_instances";

struct HostMetrics {
    duration: Histogram<u64>,
    invocations: Counter<u64>,
    errors: Counter<u64>,
    active: UpDownCounter<i64>,
    host: String,
    lattice: String,
}

static METRICS: OnceLock<HostMetrics> = OnceLock::new();

/// Creates the instruments on `provider` (once per process).
pub(crate) fn install(provider: &SdkMeterProvider, identity: &Identity) {
    let meter = provider.meter(super::SERVICE_NAME);
    let _ = METRICS.set(HostMetrics {
        duration: meter
            .u64_histogram(DURATION)
            .with_description("Duration in nanoseconds each invocation took")
            .with_unit("nanoseconds")
            .build(),
        invocations: meter
            .u64_counter(INVOCATIONS)
            .with_description("Number of component invocations")
            .build(),
        errors: meter
            .u64_counter(ERRORS)
            .with_description("Number of component errors")
            .build(),
        active: meter
            .i64_up_down_counter(ACTIVE_INSTANCES)
            .with_description("Number of active component instances")
            .build(),
        host: identity.host_id.clone(),
        lattice: identity.lattice.clone(),
    });
}

/// The metrics of one invocation: counted active from [`start`](Self::start)
/// until dropped; [`finish`](Self::finish) records its outcome. Dropped
/// without `finish` (the caller went away), it counts as an error.
#[must_use = "an invocation is recorded when finished"]
pub struct InvocationMetrics {
    inner: Option<(Vec<KeyValue>, Instant, &'static HostMetrics)>,
}

impl InvocationMetrics {
    /// Starts recording one invocation of `component_id` (`component_ref`)'s
    /// `interface.function`.
    pub fn start(component_id: &str, component_ref: &str, interface: &str, function: &str) -> Self {
        let Some(m) = METRICS.get() else {
            return Self { inner: None };
        };
        let attributes = vec![
            KeyValue::new("component.id", component_id.to_string()),
            KeyValue::new("component.ref", component_ref.to_string()),
            KeyValue::new("lattice", m.lattice.clone()),
            KeyValue::new("host", m.host.clone()),
            KeyValue::new("operation", format!("{interface}/{function}")),
        ];
        m.active.add(1, &attributes);
        Self {
            inner: Some((attributes, Instant::now(), m)),
        }
    }

    /// Records the outcome.
    pub fn finish(mut self, ok: bool) {
        self.record(ok);
    }

    fn record(&mut self, ok: bool) {
        if let Some((attributes, started, m)) = self.inner.take() {
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            m.duration.record(nanos, &attributes);
            m.invocations.add(1, &attributes);
            if !ok {
                m.errors.add(1, &attributes);
            }
            m.active.add(-1, &attributes);
        }
    }
}

impl Drop for InvocationMetrics {
    fn drop(&mut self) {
        self.record(false);
    }
}
