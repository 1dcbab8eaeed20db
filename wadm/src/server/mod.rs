//! The wadm service's NATS side, and the only I/O in this crate: the manifest store
//! (`store.rs`, JetStream KV `wadm_manifests`), the `wadm.api.{lattice}.model.*`
//! handlers (`handlers.rs`) and status/event publication (`notify.rs`). [`Server`]
//! queue-subscribes `wadm.api.>` in group `wadm_server` like wadm 0.21, so every
//! lattice on the NATS server is served and several wadm processes share the load.
//!
//! Status until the reconcile loop is wired in: what was last published on
//! `wadm.status.{lattice}.{app}` (by this API or a reconciler), otherwise what the store
//! says — `undeployed`, or `waiting` for a deployed version nothing has placed yet.

mod handlers;
mod notify;
mod store;

use futures::StreamExt;
use tracing::{debug, info, warn};

pub use handlers::{Handlers, stored_status};
pub use notify::{Notifier, NotifyError, STATUS_STREAM, status_subject};
pub use store::{DEFAULT_MANIFEST_BUCKET, ManifestStore, StoreError};

use crate::api::{CONTENT_TYPE_HEADER, DEFAULT_API_PREFIX, ErrorReply};

/// Queue group of the API subscription (wadm 0.21's).
pub const QUEUE_GROUP: &str = "wadm_server";

/// Settings of the service.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Subject prefix of the API (`--api-prefix`, default [`DEFAULT_API_PREFIX`]).
    pub api_prefix: String,
    /// Manifest bucket (`--manifest-bucket-name`, default [`DEFAULT_MANIFEST_BUCKET`]).
    pub manifest_bucket: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            api_prefix: DEFAULT_API_PREFIX.to_string(),
            manifest_bucket: DEFAULT_MANIFEST_BUCKET.to_string(),
        }
    }
}

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The manifest bucket is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The status stream is unusable.
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// The API subscription failed.
    #[error("cannot subscribe to {subject}: {detail}")]
    Subscribe {
        /// Subject.
        subject: String,
        /// What NATS said.
        detail: String,
    },
    /// The subscription ended (the connection was closed).
    #[error("the API subscription ended; the NATS connection was closed")]
    Ended,
}

/// `wadm.api.{lattice}.{category}.{operation}[.{name}]`, split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiSubject<'a> {
    /// Lattice.
    pub lattice: &'a str,
    /// `model`.
    pub category: &'a str,
    /// `put`, `get`, `del`, … .
    pub operation: &'a str,
    /// Application name, for the operations that take one.
    pub name: Option<&'a str>,
}

/// Splits an API subject; an error message when it has too few or too many tokens.
pub fn parse_subject<'a>(prefix: &str, subject: &'a str) -> Result<ApiSubject<'a>, String> {
    let rest = subject
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('.'))
        .ok_or_else(|| format!("subject {subject} does not start with {prefix}."))?;
    let mut tokens = rest.split('.');
    let mut next = |what: &str| {
        tokens
            .next()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("Expected to find {what} in subject {subject}"))
    };
    let lattice = next("lattice ID")?;
    let category = next("API category")?;
    let operation = next("operation")?;
    let name = tokens.next();
    if tokens.next().is_some() {
        return Err("Found extra components of subject, ensure your manifest name consists of only alphanumeric characters, dashes, and underscores.".to_string());
    }
    Ok(ApiSubject {
        lattice,
        category,
        operation,
        name,
    })
}

/// The running API.
pub struct Server {
    client: async_nats::Client,
    handlers: Handlers,
    prefix: String,
    subscriber: async_nats::Subscriber,
}

impl Server {
    /// Opens (creating if needed) the bucket and the status stream and subscribes.
    pub async fn start(
        client: async_nats::Client,
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let js = async_nats::jetstream::new(client.clone());
        let store = ManifestStore::open(&js, &config.manifest_bucket).await?;
        let notifier = notify::Notifier::open(client.clone(), js).await?;
        let prefix = config.api_prefix.trim().trim_matches('.').to_string();
        let subject = format!("{prefix}.>");
        let subscriber = client
            .queue_subscribe(subject.clone(), QUEUE_GROUP.to_string())
            .await
            .map_err(|e| ServerError::Subscribe {
                subject: subject.clone(),
                detail: e.to_string(),
            })?;
        // Written out before anything this connection publishes next (the
        // server handles one connection's operations in order). A client
        // that races wadm's start is told that no wadm is answering.
        client.flush().await.map_err(|e| ServerError::Subscribe {
            subject: subject.clone(),
            detail: e.to_string(),
        })?;
        info!(%subject, queue = QUEUE_GROUP, bucket = %config.manifest_bucket, "wadm API serving");
        Ok(Self {
            client,
            handlers: Handlers { store, notifier },
            prefix,
            subscriber,
        })
    }

    /// The manifest store (shared with the reconcile loop).
    #[must_use]
    pub fn store(&self) -> ManifestStore {
        self.handlers.store.clone()
    }

    /// The status publisher (shared with the reconcile loop).
    #[must_use]
    pub fn notifier(&self) -> Notifier {
        self.handlers.notifier.clone()
    }

    /// Answers requests one at a time until the connection closes. Sequential on
    /// purpose: one process never races itself on an application's KV revision.
    pub async fn serve(mut self) -> Result<(), ServerError> {
        while let Some(message) = self.subscriber.next().await {
            let Some(reply_to) = message.reply.clone() else {
                debug!(subject = %message.subject, "API message without reply subject; ignored");
                continue;
            };
            let body = self.handle(&message).await;
            if let Err(e) = self.client.publish(reply_to, body.into()).await {
                warn!(subject = %message.subject, error = %e, "cannot send API reply");
            }
        }
        Err(ServerError::Ended)
    }

    async fn handle(&self, message: &async_nats::Message) -> Vec<u8> {
        let h = &self.handlers;
        let payload = &message.payload[..];
        let parsed = match parse_subject(&self.prefix, &message.subject) {
            Ok(p) => p,
            Err(e) => return error_body(format!("Invalid subject: {e}")),
        };
        let lattice = parsed.lattice;
        match (parsed.category, parsed.operation, parsed.name) {
            ("model", "put", None) => {
                let content_type = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(CONTENT_TYPE_HEADER))
                    .map(|v| v.as_str());
                h.put(lattice, payload, content_type).await
            }
            ("model", "get", None) => h.list(lattice).await,
            ("model", "list", None) => {
                warn!("Received deprecated subject: model.list. Please use model.get instead");
                h.list(lattice).await
            }
            ("model", "get", Some(name)) => h.get(lattice, name, payload).await,
            ("model", "versions", Some(name)) => h.versions(lattice, name).await,
            ("model", "del", Some(name)) => h.delete(lattice, name, payload).await,
            ("model", "deploy", Some(name)) => h.deploy(lattice, name, payload).await,
            ("model", "undeploy", Some(name)) => h.undeploy(lattice, name, payload).await,
            ("model", "status", Some(name)) => h.status(lattice, name).await,
            ("model", "history", Some(_)) => error_body(
                "Model deployment history is not currently supported. It may be added in a future version",
            ),
            _ => error_body(format!(
                "Unsupported subject: {}; see PROTOCOL.md §6.3 for the model.* operations",
                message.subject
            )),
        }
    }
}

fn error_body(message: impl Into<String>) -> Vec<u8> {
    serde_json::to_vec(&ErrorReply::new(message)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse() {
        let s = parse_subject("wadm.api", "wadm.api.default.model.deploy.app").unwrap();
        assert_eq!(
            s,
            ApiSubject {
                lattice: "default",
                category: "model",
                operation: "deploy",
                name: Some("app")
            }
        );
        let s = parse_subject("wadm.api", "wadm.api.l1.model.get").unwrap();
        assert_eq!(s.name, None);
        assert!(parse_subject("wadm.api", "wadm.api.l1.model").is_err());
        assert!(parse_subject("wadm.api", "wadm.api.l1.model.get.a.b").is_err());
        assert!(parse_subject("wadm.api", "other.l1.model.get").is_err());
    }
}
