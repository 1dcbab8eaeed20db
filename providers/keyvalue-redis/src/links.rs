//! The provider's state: the Redis database of each link on which a
//! component calls this provider, keyed by the calling component and the
//! link name, and the [`Provider`] callbacks that keep it current.
//!
//! Links with the same config share one reconnecting connection
//! ([`ConnectionManager`]), created without connecting: the first command
//! connects, a lost connection is re-established on the next one, and a
//! Redis that is down fails the calls that need it, with the reason.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use trellis_keyvalue_provider::{LinkId, LinkTable, NotLinked};
use trellis_provider_sdk::{HealthCheckResponse, InitContext, LinkConfig, LinkKey, Provider};

use crate::backend::Database;
use crate::config::{ConfigError, RedisConfig};

/// Why a call could not reach Redis; the message goes back to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The call matches no link.
    #[error(transparent)]
    NotLinked(#[from] NotLinked),
    /// The link's config is unusable.
    #[error("link `{link_name}` from `{source_id}`: {error}")]
    Config {
        /// The caller.
        source_id: String,
        /// The link name.
        link_name: String,
        /// What is wrong.
        error: ConfigError,
    },
    /// The link was put with an unusable config (the reason, as it was
    /// found when the link was put).
    #[error("{0}")]
    Unusable(String),
    /// The Redis client refused the connection settings.
    #[error("cannot set up a Redis connection to {url}: {message}")]
    Client {
        /// The server (password hidden).
        url: String,
        /// Why.
        message: String,
    },
}

/// One link: its own target config and what it resolved to.
#[derive(Debug)]
struct LinkedDatabase {
    link_config: HashMap<String, String>,
    /// The database, or why the link cannot reach one.
    database: Result<Database, Arc<LinkError>>,
}

/// The keyvalue-redis provider's state.
#[derive(Debug)]
pub struct KvRedis {
    /// The provider's config: defaults for every link.
    defaults: RwLock<HashMap<String, String>>,
    links: LinkTable<Arc<LinkedDatabase>>,
    /// Connections by config, shared by the links that resolve to it.
    connections: RwLock<HashMap<RedisConfig, ConnectionManager>>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for KvRedis {
    fn default() -> Self {
        Self {
            defaults: RwLock::default(),
            links: LinkTable::new("keyvalue-redis"),
            connections: RwLock::default(),
        }
    }
}

impl KvRedis {
    /// The database a call is for: the caller's link named `link_name`;
    /// else the caller's link named like the bucket the component opened.
    pub fn database(
        &self,
        source_id: Option<&str>,
        link_name: &str,
        opened: &str,
    ) -> Result<Database, LinkError> {
        self.links
            .lookup(source_id, link_name, opened)?
            .database
            .clone()
            .map_err(|reason| LinkError::Unusable(reason.to_string()))
    }

    /// Resolves a link's config and finds or creates its connection.
    fn resolve(
        &self,
        id: &LinkId,
        link_config: &HashMap<String, String>,
        defaults: &HashMap<String, String>,
    ) -> Result<Database, LinkError> {
        let config =
            RedisConfig::resolve(defaults, link_config).map_err(|error| LinkError::Config {
                source_id: id.source_id.clone(),
                link_name: id.link_name.clone(),
                error,
            })?;
        let url = config.redacted_url();
        let mut connections = write(&self.connections);
        let conn = match connections.get(&config) {
            Some(conn) => conn.clone(),
            None => {
                let conn = connect_lazily(&config).map_err(|e| LinkError::Client {
                    url: url.clone(),
                    message: e.to_string(),
                })?;
                connections.insert(config.clone(), conn.clone());
                conn
            }
        };
        Ok(Database::new(conn, url, config.page_size))
    }
}

/// A connection manager that connects on its first command and reconnects
/// after failures.
fn connect_lazily(config: &RedisConfig) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(config.url.as_str())?;
    let settings = ConnectionManagerConfig::new()
        .set_number_of_retries(config.reconnect_retries)
        .set_connection_timeout(Some(config.connection_timeout))
        .set_response_timeout(Some(config.response_timeout));
    ConnectionManager::new_lazy_with_config(client, settings)
}

impl Provider for KvRedis {
    async fn init(&self, cx: &InitContext) -> anyhow::Result<()> {
        *write(&self.defaults) = cx.config.clone();
        tracing::info!(provider_id = %cx.provider_id, "keyvalue-redis provider ready");
        Ok(())
    }

    async fn on_config_update(&self, config: &HashMap<String, String>) -> anyhow::Result<()> {
        *write(&self.defaults) = config.clone();
        let links = self.links.replace_all(|id, linked| {
            Arc::new(LinkedDatabase {
                link_config: linked.link_config.clone(),
                database: self
                    .resolve(id, &linked.link_config, config)
                    .map_err(Arc::new),
            })
        });
        tracing::info!(links, "provider config updated");
        Ok(())
    }

    async fn on_link_as_target(&self, link: &LinkConfig) -> anyhow::Result<()> {
        let id = LinkId::new(&link.source_id, &link.link_name);
        let defaults = read(&self.defaults).clone();
        let database = self.resolve(&id, &link.config, &defaults).map_err(Arc::new);
        let outcome = match &database {
            Ok(db) => Ok(format!("{db:?}")),
            Err(e) => Err(e.to_string()),
        };
        self.links.insert(
            id,
            Arc::new(LinkedDatabase {
                link_config: link.config.clone(),
                database,
            }),
        );
        match outcome {
            Ok(database) => {
                tracing::info!(source_id = %link.source_id, link = %link.link_name, %database, "component linked");
                Ok(())
            }
            // Kept: the component's calls get this reason back.
            Err(error) => Err(anyhow::anyhow!("link is unusable: {error}")),
        }
    }

    async fn on_link_deleted_as_target(&self, link: &LinkKey) -> anyhow::Result<()> {
        self.links
            .remove(&LinkId::new(&link.source_id, &link.link_name));
        tracing::info!(source_id = %link.source_id, link = %link.link_name, "component unlinked");
        Ok(())
    }

    async fn health(&self) -> HealthCheckResponse {
        let (links, broken) = self.links.counts(|l| l.database.is_err());
        HealthCheckResponse {
            healthy: true,
            message: Some(format!("{links} link(s), {broken} with unusable config")),
        }
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        self.links.clear();
        write(&self.connections).clear();
        tracing::info!("keyvalue-redis provider stopping");
        Ok(())
    }
}
