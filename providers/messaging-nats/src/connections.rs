//! NATS connections: the lattice's own (default), or one per distinct
//! `cluster_uris` value, opened on first use and shared.

use std::collections::HashMap;

use tokio::sync::Mutex;
use trellis_provider_sdk::Connection;

/// `cluster_uris` (wasmCloud's key; `CLUSTER_URIS` accepted too).
pub const CLUSTER_URIS: [&str; 2] = ["cluster_uris", "CLUSTER_URIS"];
/// Credentials wasmCloud's provider accepts and this one does not yet.
pub const UNSUPPORTED: [&str; 4] = ["client_jwt", "CLIENT_JWT", "client_seed", "CLIENT_SEED"];

/// Connections to other NATS servers than the lattice's, by URI list.
#[derive(Default)]
pub struct Connections {
    others: Mutex<HashMap<String, async_nats::Client>>,
}

impl Connections {
    /// The connection for a link whose config is `link` (then the
    /// provider's `provider` config): `cluster_uris` if set, else the
    /// lattice's.
    pub async fn for_config(
        &self,
        conn: &Connection,
        link: &HashMap<String, String>,
        provider: &HashMap<String, String>,
    ) -> Result<async_nats::Client, String> {
        for config in [link, provider] {
            if let Some(key) = UNSUPPORTED.iter().find(|k| config.contains_key(**k)) {
                return Err(format!(
                    "`{key}` is not supported by this provider yet: use a NATS that accepts the lattice's credentials, or none (`cluster_uris` without credentials)"
                ));
            }
        }
        let uris = [link, provider].into_iter().find_map(|c| {
            CLUSTER_URIS
                .iter()
                .find_map(|k| c.get(*k).filter(|v| !v.trim().is_empty()).cloned())
        });
        let Some(uris) = uris else {
            return Ok(conn.nats().clone());
        };
        let mut others = self.others.lock().await;
        if let Some(client) = others.get(&uris) {
            return Ok(client.clone());
        }
        let addrs: Vec<async_nats::ServerAddr> = uris
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                u.parse()
                    .map_err(|e| format!("`cluster_uris` entry `{u}` is not a NATS URL: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let client = async_nats::ConnectOptions::new()
            .name("messaging-nats")
            .connect(addrs)
            .await
            .map_err(|e| format!("cannot connect to NATS at `{uris}`: {e}"))?;
        others.insert(uris, client.clone());
        Ok(client)
    }
}
