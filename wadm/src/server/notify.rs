//! What the API tells the rest of the lattice: application statuses on
//! `wadm.status.{lattice}.{app}` (kept in the `wadm_status` stream, last per subject
//! read back for `model.status` and `model.get`), and wadm's manifest events on
//! `wadm.evt.{lattice}.manifest_published|manifest_unpublished`.

use async_nats::jetstream::{self, stream};
use tracing::warn;
use trellis_interfaces::event::{CloudEvent, LatticeEvent, ManifestUnpublished};
use trellis_interfaces::manifest::Manifest;
use trellis_interfaces::subject::wadm_event_subject;

use crate::api::STATUS_PREFIX;
use crate::status::AppStatus;

/// Name of the stream that keeps published statuses (wadm 0.21's `wadm_status`).
pub const STATUS_STREAM: &str = "wadm_status";
/// Statuses kept per application subject; only the last one is read.
const STATUS_HISTORY: i64 = 10;
/// CloudEvent `source` of wadm's events.
const EVENT_SOURCE: &str = "wadm";

/// A failed publication or status read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The status stream could not be opened or created.
    #[error("cannot open or create stream {STATUS_STREAM}: {0}")]
    Stream(String),
    /// A publication failed.
    #[error("cannot publish on {subject}: {detail}; retry the request")]
    Publish {
        /// Subject.
        subject: String,
        /// What NATS said.
        detail: String,
    },
}

/// Publishes statuses and manifest events, reads statuses back.
#[derive(Clone)]
pub struct Notifier {
    client: async_nats::Client,
    js: jetstream::Context,
    status_stream: stream::Stream,
}

/// `wadm.status.{lattice}.{app}`.
#[must_use]
pub fn status_subject(lattice: &str, app: &str) -> String {
    format!("{STATUS_PREFIX}.{lattice}.{app}")
}

impl Notifier {
    /// Opens (or creates) the status stream.
    pub async fn open(
        client: async_nats::Client,
        js: jetstream::Context,
    ) -> Result<Self, NotifyError> {
        let status_stream = js
            .get_or_create_stream(stream::Config {
                name: STATUS_STREAM.to_string(),
                description: Some("Application statuses published by wadm".to_string()),
                subjects: vec![format!("{STATUS_PREFIX}.*.*")],
                max_messages_per_subject: STATUS_HISTORY,
                storage: stream::StorageType::File,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| NotifyError::Stream(e.to_string()))?;
        Ok(Self {
            client,
            js,
            status_stream,
        })
    }

    /// The last status published for the application, `None` if there is none or it
    /// cannot be read.
    pub async fn status(&self, lattice: &str, app: &str) -> Option<AppStatus> {
        let subject = status_subject(lattice, app);
        let message = self
            .status_stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .ok()?;
        match serde_json::from_slice(&message.payload) {
            Ok(status) => Some(status),
            Err(error) => {
                warn!(%subject, %error, "unreadable status in the status stream; ignoring it");
                None
            }
        }
    }

    /// Publishes `status` on `wadm.status.{lattice}.{app}` and waits until the stream
    /// has stored it.
    pub async fn publish_status(
        &self,
        lattice: &str,
        app: &str,
        status: &AppStatus,
    ) -> Result<(), NotifyError> {
        let subject = status_subject(lattice, app);
        let body = serde_json::to_vec(status).unwrap_or_default();
        let fail = |detail: String| NotifyError::Publish {
            subject: subject.clone(),
            detail,
        };
        self.js
            .publish(subject.clone(), body.into())
            .await
            .map_err(|e| fail(e.to_string()))?
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    }

    /// Publishes `manifest_published` with the whole manifest.
    pub async fn published(&self, lattice: &str, manifest: &Manifest) -> Result<(), NotifyError> {
        let data = serde_json::to_value(manifest).unwrap_or_default();
        self.event(lattice, &LatticeEvent::ManifestPublished(data))
            .await
    }

    /// Publishes `manifest_unpublished {name}`.
    pub async fn unpublished(&self, lattice: &str, name: &str) -> Result<(), NotifyError> {
        let event = LatticeEvent::ManifestUnpublished(ManifestUnpublished {
            name: name.to_string(),
        });
        self.event(lattice, &event).await
    }

    async fn event(&self, lattice: &str, event: &LatticeEvent) -> Result<(), NotifyError> {
        let subject = wadm_event_subject(lattice, event.name());
        let body = serde_json::to_vec(&CloudEvent::new(EVENT_SOURCE, event)).unwrap_or_default();
        self.client
            .publish(subject.clone(), body.into())
            .await
            .map_err(|e| NotifyError::Publish {
                subject,
                detail: e.to_string(),
            })
    }
}
