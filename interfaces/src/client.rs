//! A typed control-interface client over NATS (feature `client`).
//!
//! It speaks the wasmCloud 1.x control protocol, so it works against Trellis and
//! wasmCloud hosts alike. Every failure says what to do next: "no responders" names
//! the subject and lattice instead of a bare NATS status, and a host's refusal
//! (`success: false`) becomes [`CtlClientError::Rejected`] carrying the host's message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ctl::{
    ClaimsMap, ComponentAuctionAck, ComponentAuctionRequest, CtlResponse, HostLabel,
    HostLabelIdentifier, ProviderAuctionAck, ProviderAuctionRequest, RegistryCredentialMap,
    ScaleComponentCommand, StartProviderCommand, StopHostCommand, StopProviderCommand,
    UpdateComponentCommand,
};
use crate::event::CloudEvent;
use crate::inventory::{Host, HostInventory};
use crate::link::{DeleteInterfaceLinkDefinitionRequest, Link};
use crate::subject::{self, CtlSubjects, SubjectError};

/// Default timeout of a single request, as in wasmCloud's client: 2 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default collection window of scatter-gather requests (ping, auctions), as in
/// wasmCloud's client: 5 s, long enough for hosts on a loaded cluster to answer.
pub const DEFAULT_AUCTION_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong with a control request, for callers that branch on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CtlClientErrorKind {
    /// Nobody subscribes to the subject.
    NoResponders,
    /// Nobody answered in time.
    Timeout,
    /// A host answered `success: false`.
    Rejected,
    /// A reply could not be decoded, or lacked its payload.
    Decode,
    /// The request itself was invalid (bad name or id, unencodable body).
    InvalidRequest,
    /// The NATS connection failed.
    Nats,
}

/// A failed control request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CtlClientError {
    /// Nobody subscribes to the subject.
    #[error(
        "no host is answering `{subject}` on lattice `{lattice}`: is a trellis host running and connected to this NATS server?"
    )]
    NoResponders {
        /// The request subject.
        subject: String,
        /// The lattice addressed.
        lattice: String,
    },
    /// Somebody subscribes but did not answer in time.
    #[error("no reply on `{subject}` within {after:?}")]
    Timeout {
        /// The request subject.
        subject: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The host refused the request; `message` is its explanation.
    #[error("host rejected {op}: {message}")]
    Rejected {
        /// The operation, e.g. `"component scale"`.
        op: String,
        /// The host's message.
        message: String,
    },
    /// A reply was not the expected JSON.
    #[error("cannot decode the reply on `{subject}`: {source}")]
    Decode {
        /// The request subject.
        subject: String,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// A successful reply lacked the payload the operation returns.
    #[error("the reply on `{subject}` reported success but carried no response")]
    MissingResponse {
        /// The request subject.
        subject: String,
    },
    /// A name or id cannot be used in a subject.
    #[error(transparent)]
    InvalidName(#[from] SubjectError),
    /// The request body could not be encoded.
    #[error("cannot encode the {what} request: {source}")]
    Encode {
        /// Which request.
        what: &'static str,
        /// The encoding error.
        source: serde_json::Error,
    },
    /// The NATS connection failed.
    #[error("NATS error: {0}")]
    Nats(String),
}

impl CtlClientError {
    /// The category of the failure.
    #[must_use]
    pub fn kind(&self) -> CtlClientErrorKind {
        match self {
            Self::NoResponders { .. } => CtlClientErrorKind::NoResponders,
            Self::Timeout { .. } => CtlClientErrorKind::Timeout,
            Self::Rejected { .. } => CtlClientErrorKind::Rejected,
            Self::Decode { .. } | Self::MissingResponse { .. } => CtlClientErrorKind::Decode,
            Self::InvalidName(_) | Self::Encode { .. } => CtlClientErrorKind::InvalidRequest,
            Self::Nats(_) => CtlClientErrorKind::Nats,
        }
    }
}

/// Headers to send with each request, asked for at send time (e.g. the W3C
/// trace context of the caller's current span); `None`: no headers.
pub type RequestHeaders = Arc<dyn Fn() -> Option<async_nats::HeaderMap> + Send + Sync>;

/// Control-interface client for one lattice.
#[derive(Clone)]
pub struct CtlClient {
    nats: async_nats::Client,
    subjects: CtlSubjects,
    timeout: Duration,
    auction_timeout: Duration,
    headers: Option<RequestHeaders>,
}

impl std::fmt::Debug for CtlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtlClient")
            .field("subjects", &self.subjects)
            .field("timeout", &self.timeout)
            .field("auction_timeout", &self.auction_timeout)
            .field("headers", &self.headers.is_some())
            .finish_non_exhaustive()
    }
}

fn encode<T: Serialize>(what: &'static str, body: &T) -> Result<Bytes, CtlClientError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|source| CtlClientError::Encode { what, source })
}

fn host_token(host_id: &str) -> Result<&str, CtlClientError> {
    subject::validate_subject_token("host id", host_id)?;
    Ok(host_id)
}

impl CtlClient {
    /// A client for `lattice` with the default prefix `wasmbus.ctl` and timeouts.
    #[must_use]
    pub fn new(nats: async_nats::Client, lattice: impl Into<String>) -> Self {
        Self {
            nats,
            subjects: CtlSubjects::new(lattice),
            timeout: DEFAULT_TIMEOUT,
            auction_timeout: DEFAULT_AUCTION_TIMEOUT,
            headers: None,
        }
    }

    /// Sends the headers `headers` returns with every request (ping and
    /// auctions included); used to carry the caller's trace context.
    #[must_use]
    pub fn with_request_headers(mut self, headers: RequestHeaders) -> Self {
        self.headers = Some(headers);
        self
    }

    /// The headers to send with one request.
    fn request_headers(&self) -> Option<async_nats::HeaderMap> {
        self.headers.as_ref().and_then(|headers| headers())
    }

    /// Uses a custom control-subject prefix (`--ctl-topic-prefix`).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subjects.prefix = prefix.into();
        self
    }

    /// Sets the timeout of single requests (default [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long ping and auctions collect replies (default [`DEFAULT_AUCTION_TIMEOUT`]).
    #[must_use]
    pub fn with_auction_timeout(mut self, timeout: Duration) -> Self {
        self.auction_timeout = timeout;
        self
    }

    /// The lattice this client addresses.
    #[must_use]
    pub fn lattice(&self) -> &str {
        &self.subjects.lattice
    }

    /// The subjects this client uses.
    #[must_use]
    pub fn subjects(&self) -> &CtlSubjects {
        &self.subjects
    }

    async fn request_raw(&self, subject: String, body: Bytes) -> Result<Bytes, CtlClientError> {
        let mut request = async_nats::Request::new()
            .payload(body)
            .timeout(Some(self.timeout));
        if let Some(headers) = self.request_headers() {
            request = request.headers(headers);
        }
        match self.nats.send_request(subject.clone(), request).await {
            Ok(msg) => Ok(msg.payload),
            Err(e) => Err(match e.kind() {
                async_nats::RequestErrorKind::NoResponders => CtlClientError::NoResponders {
                    subject,
                    lattice: self.subjects.lattice.clone(),
                },
                async_nats::RequestErrorKind::TimedOut => CtlClientError::Timeout {
                    subject,
                    after: self.timeout,
                },
                _ => CtlClientError::Nats(format!("request on `{subject}` failed: {e}")),
            }),
        }
    }

    /// Sends one request and decodes the reply; `success: false` becomes `Rejected`.
    async fn request<T: DeserializeOwned>(
        &self,
        op: &str,
        subject: String,
        body: Bytes,
    ) -> Result<CtlResponse<T>, CtlClientError> {
        let payload = self.request_raw(subject.clone(), body).await?;
        let reply: CtlResponse<T> =
            serde_json::from_slice(&payload).map_err(|source| CtlClientError::Decode {
                subject: subject.clone(),
                source,
            })?;
        if reply.success {
            Ok(reply)
        } else {
            Err(CtlClientError::Rejected {
                op: op.to_string(),
                message: reply.message,
            })
        }
    }

    /// Like [`CtlClient::request`], for operations whose reply must carry a payload.
    async fn request_payload<T: DeserializeOwned>(
        &self,
        op: &str,
        subject: String,
        body: Bytes,
    ) -> Result<T, CtlClientError> {
        self.request(op, subject.clone(), body)
            .await?
            .response
            .ok_or(CtlClientError::MissingResponse { subject })
    }

    /// Publishes with a fresh inbox and collects successful replies until the auction
    /// timeout, an empty reply, or a "no responders" status (then there are none).
    /// Replies that do not decode, or report failure, are skipped: one broken host
    /// must not hide the others.
    async fn scatter<T: DeserializeOwned>(
        &self,
        subject: String,
        body: Bytes,
    ) -> Result<Vec<T>, CtlClientError> {
        let nats_err = |e: &dyn std::fmt::Display| {
            CtlClientError::Nats(format!("scatter-gather on `{subject}` failed: {e}"))
        };
        let inbox = self.nats.new_inbox();
        let mut sub = self
            .nats
            .subscribe(inbox.clone())
            .await
            .map_err(|e| nats_err(&e))?;
        let sent = match self.request_headers() {
            Some(headers) => {
                self.nats
                    .publish_with_reply_and_headers(subject.clone(), inbox, headers, body)
                    .await
            }
            None => {
                self.nats
                    .publish_with_reply(subject.clone(), inbox, body)
                    .await
            }
        };
        sent.map_err(|e| nats_err(&e))?;
        self.nats.flush().await.map_err(|e| nats_err(&e))?;
        let deadline = tokio::time::Instant::now() + self.auction_timeout;
        let mut replies = Vec::new();
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, sub.next()).await {
            if msg.status == Some(async_nats::StatusCode::NO_RESPONDERS) || msg.payload.is_empty() {
                break;
            }
            if let Ok(CtlResponse {
                success: true,
                response: Some(reply),
                ..
            }) = serde_json::from_slice::<CtlResponse<T>>(&msg.payload)
            {
                replies.push(reply);
            }
        }
        // Best effort: the subscription is dropped (and so unsubscribed) either way.
        let _ = sub.unsubscribe().await;
        Ok(replies)
    }

    /// Every host of the lattice that answers `host.ping` within the auction timeout.
    pub async fn ping_hosts(&self) -> Result<Vec<Host>, CtlClientError> {
        self.scatter(self.subjects.host_ping(), Bytes::new()).await
    }

    /// What runs on one host.
    pub async fn get_host_inventory(&self, host_id: &str) -> Result<HostInventory, CtlClientError> {
        let subject = self.subjects.host_get(host_token(host_id)?);
        self.request_payload("host inventory", subject, Bytes::new())
            .await
    }

    /// Bids of the hosts that could run a component.
    pub async fn auction_component(
        &self,
        request: ComponentAuctionRequest,
    ) -> Result<Vec<ComponentAuctionAck>, CtlClientError> {
        let body = encode("component auction", &request)?;
        self.scatter(self.subjects.component_auction(), body).await
    }

    /// Bids of the hosts that could run a provider.
    pub async fn auction_provider(
        &self,
        request: ProviderAuctionRequest,
    ) -> Result<Vec<ProviderAuctionAck>, CtlClientError> {
        let body = encode("provider auction", &request)?;
        self.scatter(self.subjects.provider_auction(), body).await
    }

    /// Scales a component on `command.host_id`. The reply is an acknowledgement; its
    /// `message` may hold a warning. The outcome arrives as an event.
    pub async fn scale_component(
        &self,
        command: &ScaleComponentCommand,
    ) -> Result<CtlResponse<()>, CtlClientError> {
        let subject = self.subjects.component_scale(host_token(&command.host_id)?);
        let body = encode("component scale", command)?;
        self.request("component scale", subject, body).await
    }

    /// Updates a running component to a new image on `command.host_id`.
    pub async fn update_component(
        &self,
        command: &UpdateComponentCommand,
    ) -> Result<CtlResponse<()>, CtlClientError> {
        let subject = self
            .subjects
            .component_update(host_token(&command.host_id)?);
        let body = encode("component update", command)?;
        self.request("component update", subject, body).await
    }

    /// Starts a provider on `command.host_id` (acknowledged before the download).
    pub async fn start_provider(
        &self,
        command: &StartProviderCommand,
    ) -> Result<CtlResponse<()>, CtlClientError> {
        let subject = self.subjects.provider_start(host_token(&command.host_id)?);
        let body = encode("provider start", command)?;
        self.request("provider start", subject, body).await
    }

    /// Stops a provider on `command.host_id`.
    pub async fn stop_provider(
        &self,
        command: &StopProviderCommand,
    ) -> Result<CtlResponse<()>, CtlClientError> {
        let subject = self.subjects.provider_stop(host_token(&command.host_id)?);
        let body = encode("provider stop", command)?;
        self.request("provider stop", subject, body).await
    }

    /// Stops a host, giving it `timeout` to wind down.
    pub async fn stop_host(
        &self,
        host_id: &str,
        timeout: Option<Duration>,
    ) -> Result<CtlResponse<()>, CtlClientError> {
        let subject = self.subjects.host_stop(host_token(host_id)?);
        let command = StopHostCommand {
            host_id: host_id.to_string(),
            timeout: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        };
        let body = encode("host stop", &command)?;
        self.request("host stop", subject, body).await
    }

    /// Puts a link (replacing the one with the same key).
    pub async fn put_link(&self, link: &Link) -> Result<CtlResponse<()>, CtlClientError> {
        let body = encode("link put", link)?;
        self.request("link put", self.subjects.link_put(), body)
            .await
    }

    /// Deletes a link (idempotent).
    pub async fn delete_link(
        &self,
        request: &DeleteInterfaceLinkDefinitionRequest,
    ) -> Result<CtlResponse<()>, CtlClientError> {
        let body = encode("link delete", request)?;
        self.request("link delete", self.subjects.link_del(), body)
            .await
    }

    /// Every link of the lattice, as one host sees it.
    pub async fn get_links(&self) -> Result<Vec<Link>, CtlClientError> {
        self.request_payload("link get", self.subjects.link_get(), Bytes::new())
            .await
    }

    /// Stores a named config.
    pub async fn put_config(
        &self,
        name: &str,
        values: &HashMap<String, String>,
    ) -> Result<CtlResponse<()>, CtlClientError> {
        subject::validate_config_name(name)?;
        let body = encode("config put", values)?;
        self.request("config put", self.subjects.config_put(name), body)
            .await
    }

    /// A named config, `None` if it does not exist.
    pub async fn get_config(
        &self,
        name: &str,
    ) -> Result<Option<HashMap<String, String>>, CtlClientError> {
        subject::validate_config_name(name)?;
        let reply = self
            .request("config get", self.subjects.config_get(name), Bytes::new())
            .await?;
        Ok(reply.response)
    }

    /// Deletes a named config.
    pub async fn delete_config(&self, name: &str) -> Result<CtlResponse<()>, CtlClientError> {
        subject::validate_config_name(name)?;
        self.request(
            "config delete",
            self.subjects.config_del(name),
            Bytes::new(),
        )
        .await
    }

    /// Sets a label on a host.
    pub async fn put_label(
        &self,
        host_id: &str,
        key: &str,
        value: &str,
    ) -> Result<CtlResponse<()>, CtlClientError> {
        let subject = self.subjects.label_put(host_token(host_id)?);
        let label = HostLabel {
            key: key.to_string(),
            value: value.to_string(),
        };
        let body = encode("label put", &label)?;
        self.request("label put", subject, body).await
    }

    /// Removes a label from a host.
    pub async fn delete_label(
        &self,
        host_id: &str,
        key: &str,
    ) -> Result<CtlResponse<()>, CtlClientError> {
        let subject = self.subjects.label_del(host_token(host_id)?);
        let label = HostLabelIdentifier {
            key: key.to_string(),
        };
        let body = encode("label delete", &label)?;
        self.request("label delete", subject, body).await
    }

    /// Claims of every signed component and provider the lattice knows.
    pub async fn get_claims(&self) -> Result<Vec<ClaimsMap>, CtlClientError> {
        self.request_payload("claims get", self.subjects.claims_get(), Bytes::new())
            .await
    }

    /// Pushes registry credentials to every host. Publish only: hosts do not reply,
    /// as in wasmCloud 1.x.
    pub async fn put_registries(
        &self,
        credentials: &RegistryCredentialMap,
    ) -> Result<(), CtlClientError> {
        let body = encode("registry put", credentials)?;
        let subject = self.subjects.registry_put();
        let failed = |e: &dyn std::fmt::Display| {
            CtlClientError::Nats(format!("publish on `{subject}` failed: {e}"))
        };
        let sent = match self.request_headers() {
            Some(headers) => {
                self.nats
                    .publish_with_headers(subject.clone(), headers, body)
                    .await
            }
            None => self.nats.publish(subject.clone(), body).await,
        };
        sent.map_err(|e| failed(&e))?;
        self.nats.flush().await.map_err(|e| failed(&e))
    }

    /// Every lattice event from now on (`wasmbus.evt.{lattice}.>`). Messages that are
    /// not CloudEvents JSON are skipped.
    pub async fn subscribe_events(
        &self,
    ) -> Result<impl Stream<Item = CloudEvent> + Send + Unpin + 'static, CtlClientError> {
        let subject = subject::event_wildcard(&self.subjects.lattice);
        let sub =
            self.nats.subscribe(subject.clone()).await.map_err(|e| {
                CtlClientError::Nats(format!("subscribe to `{subject}` failed: {e}"))
            })?;
        Ok(sub.filter_map(|msg| {
            futures::future::ready(serde_json::from_slice::<CloudEvent>(&msg.payload).ok())
        }))
    }
}

/// Subject prefix of [`server_caught_up`]'s probes. A subscriber on `>` sees
/// them and should skip them.
pub const SYNC_PROBE_PREFIX: &str = "_TRELLIS_SYNC.";

/// Waits until the server has handled everything `nats` sent before this
/// call, subscriptions included, so that a message any *other* connection
/// publishes from now on reaches them.
///
/// `async_nats::Client::flush` does not give that: it only writes the
/// client's buffer to its socket, and a loaded server may read it after
/// another connection's publish. The server handles one connection's
/// operations in order, so once a probe published after them has come back
/// to this connection, they were handled.
///
/// # Errors
///
/// [`CtlClientError::Nats`] when the probe cannot be sent, and
/// [`CtlClientError::Timeout`] when it is not back within `timeout`.
pub async fn server_caught_up(
    nats: &async_nats::Client,
    timeout: Duration,
) -> Result<(), CtlClientError> {
    let inbox = nats.new_inbox();
    let token = inbox.rsplit('.').next().unwrap_or(&inbox);
    let subject = format!("{SYNC_PROBE_PREFIX}{token}");
    let nats_err = |e: &dyn std::fmt::Display| CtlClientError::Nats(e.to_string());
    let mut probe = nats
        .subscribe(subject.clone())
        .await
        .map_err(|e| nats_err(&e))?;
    nats.publish(subject.clone(), Bytes::new())
        .await
        .map_err(|e| nats_err(&e))?;
    let back = tokio::time::timeout(timeout, probe.next()).await;
    // Best effort: the subscription ends with the connection anyway.
    let _ = probe.unsubscribe().await;
    match back {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(CtlClientError::Nats(format!(
            "the connection closed before the probe on `{subject}` came back"
        ))),
        Err(_) => Err(CtlClientError::Timeout {
            subject,
            after: timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_to_do() {
        let e = CtlClientError::NoResponders {
            subject: "wasmbus.ctl.v1.default.link.get".into(),
            lattice: "default".into(),
        };
        assert_eq!(
            e.to_string(),
            "no host is answering `wasmbus.ctl.v1.default.link.get` on lattice `default`: is a trellis host running and connected to this NATS server?"
        );
        assert_eq!(e.kind(), CtlClientErrorKind::NoResponders);
        let e = CtlClientError::Rejected {
            op: "link put".into(),
            message: "config `x` does not exist".into(),
        };
        assert_eq!(
            e.to_string(),
            "host rejected link put: config `x` does not exist"
        );
        assert_eq!(e.kind(), CtlClientErrorKind::Rejected);
        let e = CtlClientError::Timeout {
            subject: "s".into(),
            after: Duration::from_secs(2),
        };
        assert_eq!(e.to_string(), "no reply on `s` within 2s");
        assert_eq!(e.kind(), CtlClientErrorKind::Timeout);
        let e = host_token("a.b").unwrap_err();
        assert_eq!(e.kind(), CtlClientErrorKind::InvalidRequest);
        let e = CtlClientError::Nats("x".into());
        assert_eq!(e.kind(), CtlClientErrorKind::Nats);
        let source = serde_json::from_str::<u8>("x").unwrap_err();
        let e = CtlClientError::Decode {
            subject: "s".into(),
            source,
        };
        assert_eq!(e.kind(), CtlClientErrorKind::Decode);
    }

    #[test]
    fn defaults_match_wasmcloud_client() {
        assert_eq!(DEFAULT_TIMEOUT, Duration::from_secs(2));
        assert_eq!(DEFAULT_AUCTION_TIMEOUT, Duration::from_secs(5));
    }
}
