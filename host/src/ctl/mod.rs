//! The control-interface server: the subscriptions of PROTOCOL.md §2.2, one
//! task per request (unbounded, as wasmCloud), and a `CtlResponse` reply for
//! every request that has a reply subject. Handlers live by topic:
//! [`components`] (auctions, scale, update), [`providers`], [`links`],
//! [`config`], and [`host_ops`] (ping, inventory, stop, labels, claims,
//! registry credentials).

mod components;
mod config;
mod host_ops;
mod links;
mod providers;

use std::sync::Arc;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;
use trellis_interfaces::ctl::CtlResponse;
use trellis_interfaces::subject::{CtlOperation, CtlSubjects};

use crate::host::{HostError, HostInner};
use crate::observability::spans;
use crate::runtime::state::TraceContext;

/// Why a control request failed; the message goes back in `CtlResponse.message`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CtlError {
    /// The subject is not a control operation.
    #[error("unsupported subject `{0}`")]
    UnsupportedSubject(String),
    /// The body does not parse.
    #[error("invalid {op} request: {reason}")]
    InvalidPayload {
        /// The operation.
        op: &'static str,
        /// The decode error.
        reason: String,
    },
    /// The request is well-formed but not acceptable.
    #[error("{0}")]
    Rejected(String),
    /// The lattice KV store failed.
    #[error("lattice store error: {0}")]
    Store(String),
}

/// What a handler answers: a reply, or silence (auctions this host loses).
pub(crate) enum Reply {
    Respond(CtlResponse<serde_json::Value>),
    Silent,
}

impl Reply {
    fn ok() -> Self {
        Self::Respond(CtlResponse::<serde_json::Value> {
            success: true,
            message: String::new(),
            response: None,
        })
    }

    fn with<T: serde::Serialize>(value: &T) -> Self {
        match serde_json::to_value(value) {
            Ok(v) => Self::Respond(CtlResponse::ok(v)),
            Err(e) => Self::error(format!("cannot encode response: {e}")),
        }
    }

    fn warning(message: String) -> Self {
        Self::Respond(CtlResponse::<serde_json::Value> {
            success: true,
            message,
            response: None,
        })
    }

    fn error(message: String) -> Self {
        Self::Respond(CtlResponse::<serde_json::Value> {
            success: false,
            message,
            response: None,
        })
    }
}

pub(crate) fn parse<T: DeserializeOwned>(op: &'static str, payload: &[u8]) -> Result<T, CtlError> {
    serde_json::from_slice(payload).map_err(|e| CtlError::InvalidPayload {
        op,
        reason: e.to_string(),
    })
}

/// Like [`parse`], but an empty body means the default request.
pub(crate) fn parse_or_default<T: DeserializeOwned + Default>(
    op: &'static str,
    payload: &[u8],
) -> Result<T, CtlError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(op, payload)
    }
}

/// Subscribes to every control subject and spawns the dispatch loops.
pub(crate) async fn serve(host: Arc<HostInner>) -> Result<(), HostError> {
    let subjects = CtlSubjects::with_prefix(&host.config.ctl_prefix, &host.config.lattice);
    let id = host.id.clone();
    let mut plain = vec![
        subjects.registry_put(),
        subjects.host_ping(),
        subjects.component_wildcard(&id),
        subjects.provider_wildcard(&id),
        subjects.label_wildcard(&id),
        subjects.host_wildcard(&id),
    ];
    if host.config.enable_component_auction {
        plain.push(subjects.component_auction());
    }
    if host.config.enable_provider_auction {
        plain.push(subjects.provider_auction());
    }
    let queued = [
        (subjects.link_wildcard(), subjects.link_queue_group()),
        (subjects.claims_get(), subjects.claims_queue_group()),
        (subjects.config_wildcard(), subjects.config_queue_group()),
    ];
    let mut subs = Vec::new();
    for subject in plain {
        let sub = host
            .nats
            .subscribe(subject.clone())
            .await
            .map_err(|e| HostError::Subscribe {
                subject,
                reason: e.to_string(),
            })?;
        subs.push(sub);
    }
    for (subject, group) in queued {
        let sub = host
            .nats
            .queue_subscribe(subject.clone(), group)
            .await
            .map_err(|e| HostError::Subscribe {
                subject,
                reason: e.to_string(),
            })?;
        subs.push(sub);
    }
    let subjects = Arc::new(subjects);
    let mut loops = Vec::new();
    for mut sub in subs {
        let host = host.clone();
        let subjects = subjects.clone();
        let task = tokio::spawn(async move {
            let mut stop = host.stop_tx.subscribe();
            let mut ctl_stop = host.ctl_stop.subscribe();
            loop {
                let msg = tokio::select! {
                    _ = stop.changed() => break,
                    _ = ctl_stop.changed() => break,
                    m = sub.next() => match m { Some(m) => m, None => break },
                };
                let host = host.clone();
                let subjects = subjects.clone();
                tokio::spawn(async move { dispatch(host, &subjects, msg).await });
            }
            let _ = sub.unsubscribe().await;
        });
        loops.push(task);
    }
    if let Ok(mut tasks) = host.ctl_tasks.lock() {
        tasks.extend(loops);
    }
    // Written out before the host announces itself. The server handles one
    // connection's operations in order, so whoever hears the announcement
    // (published on this connection) finds every subscription in place.
    host.nats.flush().await.map_err(|e| HostError::Subscribe {
        subject: "<flush>".into(),
        reason: e.to_string(),
    })?;
    Ok(())
}

async fn dispatch(host: Arc<HostInner>, subjects: &CtlSubjects, msg: async_nats::Message) {
    let subject = msg.subject.to_string();
    let header = |name: &str| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    };
    let trace = TraceContext::from_headers(header("traceparent"), header("tracestate"));
    let span = spans::ctl_request(&subject, trace.as_ref());
    let reply = match subjects.parse(&subject) {
        Ok(op) => {
            tracing::debug!(%subject, "control request");
            match handle(&host, op, &msg.payload)
                .instrument(span.clone())
                .await
            {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::warn!(%subject, error = %e, "control request failed");
                    spans::fail(&span, &e);
                    Reply::error(e.to_string())
                }
            }
        }
        Err(_) => {
            let error = CtlError::UnsupportedSubject(subject.clone());
            spans::fail(&span, &error);
            Reply::error(error.to_string())
        }
    };
    drop(span);
    let (Some(reply_to), Reply::Respond(body)) = (msg.reply, reply) else {
        return;
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => {
            if let Err(e) = host.nats.publish(reply_to, bytes.into()).await {
                tracing::warn!(%subject, error = %e, "cannot send control reply");
            }
        }
        Err(e) => tracing::error!(%subject, error = %e, "cannot encode control reply"),
    }
}

async fn handle(
    host: &Arc<HostInner>,
    op: CtlOperation,
    payload: &[u8],
) -> Result<Reply, CtlError> {
    match op {
        CtlOperation::ComponentAuction => components::auction(host, payload),
        CtlOperation::ComponentScale { host_id } => components::scale(host, &host_id, payload),
        CtlOperation::ComponentUpdate { host_id } => components::update(host, &host_id, payload),
        CtlOperation::ProviderAuction => providers::auction(host, payload),
        CtlOperation::ProviderStart { host_id } => providers::start(host, &host_id, payload),
        CtlOperation::ProviderStop { host_id } => providers::stop(host, &host_id, payload).await,
        CtlOperation::HostGet { .. } => Ok(Reply::with(&host.inventory())),
        CtlOperation::HostPing => Ok(Reply::with(&host_ops::ping(host))),
        CtlOperation::HostStop { host_id } => host_ops::stop(host, &host_id, payload),
        CtlOperation::ClaimsGet => host_ops::claims(host),
        CtlOperation::LinkPut => links::put(host, payload).await,
        CtlOperation::LinkDel => links::delete(host, payload).await,
        CtlOperation::LinkGet => links::get(host),
        CtlOperation::ConfigPut { name } => config::put(host, &name, payload).await,
        CtlOperation::ConfigGet { name } => config::get(host, &name).await,
        CtlOperation::ConfigDel { name } => config::delete(host, &name).await,
        CtlOperation::LabelPut { host_id } => host_ops::put_label(host, &host_id, payload).await,
        CtlOperation::LabelDel { host_id } => host_ops::delete_label(host, &host_id, payload).await,
        CtlOperation::RegistryPut => host_ops::registry_put(host, payload),
        other => Err(CtlError::Rejected(format!(
            "operation {other:?} is not supported by this host"
        ))),
    }
}

/// Refuses a request addressed (in its body) to another host.
pub(crate) fn check_host(host: &HostInner, body_host_id: &str) -> Result<(), CtlError> {
    if body_host_id.is_empty() || body_host_id == host.id {
        Ok(())
    } else {
        Err(CtlError::Rejected(format!(
            "request is addressed to host `{body_host_id}`, but this is host `{}`",
            host.id
        )))
    }
}
