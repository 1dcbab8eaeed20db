//! The provider's state: one [`LinkedBucket`] per link on which a component
//! calls this provider, keyed by the calling component and the link name,
//! and the [`Provider`] callbacks that keep it current.
//!
//! A link's bucket is opened on the first call over it, not when the link is
//! put: links arrive before the lattice connection is handed to the exports,
//! and a bucket that cannot be opened yet (not created, NATS away) should
//! fail the calls that need it, with the reason, and work once it can.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_nats::jetstream;
use tokio::sync::OnceCell;
use trellis_keyvalue_provider::{LinkId, LinkTable, NotLinked};
use trellis_provider_sdk::{HealthCheckResponse, InitContext, LinkConfig, LinkKey, Provider};

use crate::config::{BucketConfig, ConfigError};
use crate::kv::Bucket;

/// Why a call could not reach a bucket; the message goes back to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
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
    /// Connecting to `cluster_uri` failed.
    #[error("cannot connect to NATS at `{uri}`: {message}")]
    Connect {
        /// The URL(s).
        uri: String,
        /// Why.
        message: String,
    },
    /// The bucket does not exist (and auto-create is off) or cannot be opened.
    #[error("cannot open JetStream KV bucket `{bucket}`: {message}")]
    Bucket {
        /// The bucket name.
        bucket: String,
        /// Why.
        message: String,
    },
}

/// One link's bucket: its resolved config and, once opened, the bucket.
#[derive(Debug)]
pub struct LinkedBucket {
    source_id: String,
    link_name: String,
    /// The link's own target config, kept to re-resolve on a config update.
    link_config: HashMap<String, String>,
    config: Result<BucketConfig, ConfigError>,
    opened: OnceCell<Bucket>,
}

impl LinkedBucket {
    fn new(link: &LinkConfig, defaults: &HashMap<String, String>) -> Self {
        Self::with_config(
            link.source_id.clone(),
            link.link_name.clone(),
            link.config.clone(),
            defaults,
        )
    }

    fn with_config(
        source_id: String,
        link_name: String,
        link_config: HashMap<String, String>,
        defaults: &HashMap<String, String>,
    ) -> Self {
        let config = BucketConfig::resolve(defaults, &link_config);
        Self {
            source_id,
            link_name,
            link_config,
            config,
            opened: OnceCell::new(),
        }
    }

    /// The bucket, opened on first use; a failure is returned to this call
    /// and the next call tries again.
    pub async fn bucket(&self, lattice: &async_nats::Client) -> Result<Bucket, OpenError> {
        let config = self.config.as_ref().map_err(|error| OpenError::Config {
            source_id: self.source_id.clone(),
            link_name: self.link_name.clone(),
            error: error.clone(),
        })?;
        self.opened
            .get_or_try_init(|| open(config, lattice))
            .await
            .cloned()
    }
}

/// Connects (when the link has its own NATS) and opens, or creates, the bucket.
async fn open(config: &BucketConfig, lattice: &async_nats::Client) -> Result<Bucket, OpenError> {
    let client = if config.uses_lattice_connection() {
        lattice.clone()
    } else {
        connect(config).await?
    };
    let js = match &config.js_domain {
        Some(domain) => jetstream::with_domain(client, domain.as_str()),
        None => jetstream::new(client),
    };
    let bucket_error = |message: String| OpenError::Bucket {
        bucket: config.bucket.clone(),
        message,
    };
    let store = match js.get_key_value(&config.bucket).await {
        Ok(store) => store,
        Err(error) if config.auto_create => {
            tracing::info!(bucket = %config.bucket, "creating JetStream KV bucket ({error})");
            js.create_key_value(jetstream::kv::Config {
                bucket: config.bucket.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| bucket_error(format!("creating it failed: {e}")))?
        }
        Err(error) => {
            return Err(bucket_error(format!(
                "{error}; create it (nats kv add {}) or set enable_bucket_auto_create=true \
                 in the link's target config",
                config.bucket
            )));
        }
    };
    tracing::info!(bucket = %config.bucket, js_domain = ?config.js_domain, "JetStream KV bucket opened");
    Ok(Bucket::new(store, config.page_size))
}

/// A connection of the link's own, to `cluster_uri` (default: the local
/// NATS) with `client_jwt`/`client_seed` when set.
async fn connect(config: &BucketConfig) -> Result<async_nats::Client, OpenError> {
    let uri = config
        .cluster_uri
        .clone()
        .unwrap_or_else(|| DEFAULT_CLUSTER_URI.to_string());
    let connect_error = |message: String| OpenError::Connect {
        uri: uri.clone(),
        message,
    };
    let mut options = async_nats::ConnectOptions::new().name("trellis keyvalue-nats provider");
    if let Some((jwt, seed)) = &config.credentials {
        let key =
            Arc::new(nkeys::KeyPair::from_seed(seed).map_err(|e| {
                connect_error(format!("client_seed is not a valid nkey seed: {e}"))
            })?);
        options = options.jwt(jwt.clone(), move |nonce| {
            let key = Arc::clone(&key);
            async move { key.sign(&nonce).map_err(async_nats::AuthError::new) }
        });
    }
    let urls: Vec<async_nats::ServerAddr> = uri
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| connect_error(format!("not a NATS URL list: {e}")))?;
    options
        .connect(urls)
        .await
        .map_err(|e| connect_error(e.to_string()))
}

/// `cluster_uri` when only credentials are given (wasmCloud's default).
pub const DEFAULT_CLUSTER_URI: &str = "nats://127.0.0.1:4222";

/// The keyvalue-nats provider's state.
#[derive(Debug)]
pub struct KvNats {
    /// The provider's config: defaults for every link.
    defaults: RwLock<HashMap<String, String>>,
    links: LinkTable<Arc<LinkedBucket>>,
}

impl Default for KvNats {
    fn default() -> Self {
        Self {
            defaults: RwLock::default(),
            links: LinkTable::new("keyvalue-nats"),
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl KvNats {
    /// The link a call is for (see [`LinkTable::lookup`]).
    pub fn linked_bucket(
        &self,
        source_id: Option<&str>,
        link_name: &str,
        opened: &str,
    ) -> Result<Arc<LinkedBucket>, OpenError> {
        Ok(self.links.lookup(source_id, link_name, opened)?)
    }
}

impl Provider for KvNats {
    async fn init(&self, cx: &InitContext) -> anyhow::Result<()> {
        *write(&self.defaults) = cx.config.clone();
        tracing::info!(provider_id = %cx.provider_id, "keyvalue-nats provider ready");
        Ok(())
    }

    async fn on_config_update(&self, config: &HashMap<String, String>) -> anyhow::Result<()> {
        *write(&self.defaults) = config.clone();
        // Every link re-resolves against the new defaults and reopens.
        let links = self.links.replace_all(|id, entry| {
            Arc::new(LinkedBucket::with_config(
                id.source_id.clone(),
                id.link_name.clone(),
                entry.link_config.clone(),
                config,
            ))
        });
        tracing::info!(links, "provider config updated");
        Ok(())
    }

    async fn on_link_as_target(&self, link: &LinkConfig) -> anyhow::Result<()> {
        let defaults = read(&self.defaults).clone();
        let entry = LinkedBucket::new(link, &defaults);
        let id = LinkId::new(&link.source_id, &link.link_name);
        let outcome = entry
            .config
            .as_ref()
            .map(|c| c.bucket.clone())
            .map_err(Clone::clone);
        self.links.insert(id, Arc::new(entry));
        match outcome {
            Ok(bucket) => {
                tracing::info!(source_id = %link.source_id, link = %link.link_name, %bucket, "component linked");
                Ok(())
            }
            // Kept: the component's calls get this reason back.
            Err(error) => Err(anyhow::anyhow!(
                "link from {} ({}) is unusable: {error}",
                link.source_id,
                link.link_name
            )),
        }
    }

    async fn on_link_deleted_as_target(&self, link: &LinkKey) -> anyhow::Result<()> {
        self.links
            .remove(&LinkId::new(&link.source_id, &link.link_name));
        tracing::info!(source_id = %link.source_id, link = %link.link_name, "component unlinked");
        Ok(())
    }

    async fn health(&self) -> HealthCheckResponse {
        let (links, broken) = self.links.counts(|l| l.config.is_err());
        HealthCheckResponse {
            healthy: true,
            message: Some(format!("{links} link(s), {broken} with unusable config")),
        }
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        self.links.clear();
        tracing::info!("keyvalue-nats provider stopping");
        Ok(())
    }
}
