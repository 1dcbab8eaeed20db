//! `wasi:logging/logging@0.1.0-draft`: guest log lines become `tracing` events
//! carrying the component id, so they land in the host's log pipeline.

use super::bindings::wasi::logging::logging::{Host, Level};
use crate::runtime::InvocationState;

impl Host for InvocationState {
    fn log(&mut self, level: Level, context: String, message: String) {
        let component_id = &*self.component_id;
        match level {
            Level::Trace => tracing::trace!(component_id, context, "{message}"),
            Level::Debug => tracing::debug!(component_id, context, "{message}"),
            Level::Info => tracing::info!(component_id, context, "{message}"),
            Level::Warn => tracing::warn!(component_id, context, "{message}"),
            Level::Error | Level::Critical => {
                tracing::error!(
                    component_id,
                    context,
                    critical = matches!(level, Level::Critical),
                    "{message}"
                )
            }
        }
    }
}
