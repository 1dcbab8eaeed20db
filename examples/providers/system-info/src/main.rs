//! `system-info-provider`: the example capability provider of the Trellis
//! provider SDK tutorial (`provider-sdk/README.md`).
//!
//! It exports `trellis:system-info/info@0.1.0` (facts about the machine it runs
//! on, and a call back into the caller) and imports
//! `trellis:system-info/invoker@0.1.0`, which linked components export.

mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "provider",
        path: "wit",
    });
}

mod info;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use trellis_provider_sdk::{
    Connection, HealthCheckResponse, InitContext, LinkConfig, LinkKey, Provider,
};

/// The provider's state: what the SDK's callbacks update.
#[derive(Default)]
struct SystemInfo {
    /// Links on which a component calls this provider.
    callers: AtomicUsize,
    /// Names of the provider's config keys, as last delivered (shown in the
    /// health message, so the host, and the tests, can see updates arrive).
    config_keys: Mutex<BTreeSet<String>>,
}

impl SystemInfo {
    fn set_config(&self, config: &HashMap<String, String>) {
        let keys = config.keys().cloned().collect();
        match self.config_keys.lock() {
            Ok(mut current) => *current = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }

    fn config_keys(&self) -> String {
        match self.config_keys.lock() {
            Ok(keys) => keys.iter().cloned().collect::<Vec<_>>().join(","),
            Err(poisoned) => poisoned
                .into_inner()
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

impl Provider for SystemInfo {
    async fn init(&self, cx: &InitContext) -> anyhow::Result<()> {
        tracing::info!(provider_id = %cx.provider_id, host_id = %cx.host_id, "system-info provider ready");
        self.set_config(&cx.config);
        Ok(())
    }

    async fn on_config_update(&self, config: &HashMap<String, String>) -> anyhow::Result<()> {
        tracing::info!(keys = config.len(), "config updated");
        self.set_config(config);
        Ok(())
    }

    async fn on_link_as_target(&self, link: &LinkConfig) -> anyhow::Result<()> {
        let n = self.callers.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(source_id = %link.source_id, link_name = %link.link_name, callers = n, "component linked to system-info");
        Ok(())
    }

    async fn on_link_deleted_as_target(&self, link: &LinkKey) -> anyhow::Result<()> {
        let n = self
            .callers
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        tracing::info!(source_id = %link.source_id, callers = n, "component unlinked");
        Ok(())
    }

    async fn on_link_as_source(&self, link: &LinkConfig) -> anyhow::Result<()> {
        tracing::info!(target_id = %link.target_id, "system-info may call back into {}", link.target_id);
        Ok(())
    }

    async fn health(&self) -> HealthCheckResponse {
        HealthCheckResponse {
            healthy: true,
            message: Some(format!(
                "{} linked component(s); config keys: [{}]",
                self.callers.load(Ordering::Relaxed),
                self.config_keys()
            )),
        }
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        tracing::info!("system-info provider stopping");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    trellis_provider_sdk::run(
        SystemInfo::default(),
        "system-info",
        async |conn: Connection, _provider: Arc<SystemInfo>| {
            let handler = info::Handler::new(conn.clone());
            let exports = bindings::serve(&conn.server(), handler).await?;
            trellis_provider_sdk::serve_exports(exports).await
        },
    )
    .await?;
    Ok(())
}
