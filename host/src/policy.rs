//! The policy service client (PROTOCOL.md §5.2): with `--policy-topic` set, the
//! host asks an external service before starting a component or a provider and
//! before serving an incoming lattice call, in wasmCloud 1.x's wire format
//! ([`trellis_interfaces::policy`]).
//!
//! Deny by default: once a topic is set, a request that times out, finds no
//! responder or gets an unreadable reply is refused, and the refusal says
//! which. Decisions the service made are cached forever per
//! `(kind, id_imageRef[_interface_function])`, so a hot call path costs one
//! hash lookup; a [`PolicyResponse`] on `--policy-changes-topic` naming an
//! earlier `requestId` replaces that decision. Transport failures are not
//! cached (unlike wasmCloud, which caches its timeout denial forever): the
//! next attempt asks again, so a policy service that was briefly down does not
//! lock a component out until the host restarts.
//!
//! Without a topic nothing here runs: [`service`] returns `None` after one
//! field check and the data plane sees no policy at all.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use trellis_interfaces::claims::Claims;
use trellis_interfaces::policy::{
    ComponentInformation, POLICY_VERSION, PerformInvocationRequest, PolicyClaims, PolicyHostInfo,
    PolicyRequest, PolicyRequestBody, PolicyRequestKind, PolicyResponse, ProviderInformation,
};

use crate::host::HostInner;
use crate::runtime::RunningComponent;

/// How long the host waits for a policy decision. wasmCloud 1.x's default
/// (1 s): long enough for a service that consults a database, short enough
/// that a dead service fails a start quickly rather than hanging it.
pub const DEFAULT_POLICY_TIMEOUT: Duration = Duration::from_secs(1);

/// Where and how long to ask; part of [`HostConfig`](crate::HostConfig).
#[derive(Debug, Clone)]
pub struct PolicySettings {
    /// Subject of the policy service (`--policy-topic`); `None` permits everything.
    pub topic: Option<String>,
    /// Subject on which the service publishes changed decisions
    /// (`--policy-changes-topic`).
    pub changes_topic: Option<String>,
    /// Wait for one decision (`--policy-timeout-ms`).
    pub timeout: Duration,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            topic: None,
            changes_topic: None,
            timeout: DEFAULT_POLICY_TIMEOUT,
        }
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyDenial {
    /// The service answered `permitted: false`.
    #[error("{subject} denied by the policy service on `{topic}`: {message}")]
    Denied {
        /// What was refused (`component \`x\``, `call to …`).
        subject: String,
        /// The policy topic.
        topic: String,
        /// The service's message, or a note that it gave none.
        message: String,
    },
    /// Nobody answered in time.
    #[error("policy service on `{topic}` did not answer within {timeout_ms} ms: {action} denied")]
    Timeout {
        /// The policy topic.
        topic: String,
        /// The configured timeout.
        timeout_ms: u128,
        /// `start` or `invocation`.
        action: &'static str,
    },
    /// No subscriber on the topic.
    #[error("no policy service listens on `{topic}`: {action} denied")]
    NoResponders {
        /// The policy topic.
        topic: String,
        /// `start` or `invocation`.
        action: &'static str,
    },
    /// A reply that is not a policy response.
    #[error("policy service on `{topic}` sent an unreadable reply ({reason}): {action} denied")]
    BadReply {
        /// The policy topic.
        topic: String,
        /// The decode error.
        reason: String,
        /// `start` or `invocation`.
        action: &'static str,
    },
    /// The request could not be sent or encoded.
    #[error("cannot ask the policy service on `{topic}` ({reason}): {action} denied")]
    Transport {
        /// The policy topic.
        topic: String,
        /// What failed.
        reason: String,
        /// `start` or `invocation`.
        action: &'static str,
    },
}

type DecisionKey = (PolicyRequestKind, String);

/// Decisions per kind, so a lookup borrows the key (`&str`) and costs one
/// hash, no allocation.
#[derive(Debug, Default)]
struct Decisions {
    start_component: HashMap<String, PolicyResponse>,
    start_provider: HashMap<String, PolicyResponse>,
    perform_invocation: HashMap<String, PolicyResponse>,
}

impl Decisions {
    fn of(&self, kind: PolicyRequestKind) -> &HashMap<String, PolicyResponse> {
        match kind {
            PolicyRequestKind::StartComponent => &self.start_component,
            PolicyRequestKind::StartProvider => &self.start_provider,
            PolicyRequestKind::PerformInvocation => &self.perform_invocation,
        }
    }

    fn of_mut(&mut self, kind: PolicyRequestKind) -> &mut HashMap<String, PolicyResponse> {
        match kind {
            PolicyRequestKind::StartComponent => &mut self.start_component,
            PolicyRequestKind::StartProvider => &mut self.start_provider,
            PolicyRequestKind::PerformInvocation => &mut self.perform_invocation,
        }
    }
}

/// One host's policy client and decision cache.
#[derive(Debug)]
pub struct PolicyService {
    nats: async_nats::Client,
    topic: String,
    timeout: Duration,
    host: PolicyHostInfo,
    decisions: RwLock<Decisions>,
    /// `requestId` → the decision it produced, for change notifications.
    requests: Mutex<HashMap<String, DecisionKey>>,
}

/// The host's policy service, created on first use; `None` without
/// `--policy-topic`. First use is always a start (components and providers
/// must start before they are called), so change notifications are watched
/// from before any decision is cached.
pub(crate) fn service(host: &HostInner) -> Option<&Arc<PolicyService>> {
    let topic = host.config.policy.topic.as_ref()?;
    Some(host.dataplane.policy_or_init(|| {
        let service = Arc::new(PolicyService {
            nats: host.nats.clone(),
            topic: topic.clone(),
            timeout: host.config.policy.timeout,
            host: PolicyHostInfo {
                public_key: host.id.clone(),
                lattice: host.config.lattice.clone(),
                labels: host.labels_snapshot().into_iter().collect(),
            },
            decisions: RwLock::new(Decisions::default()),
            requests: Mutex::new(HashMap::new()),
        });
        if let Some(changes) = &host.config.policy.changes_topic {
            tokio::spawn(watch_changes(
                Arc::downgrade(&service),
                host.nats.clone(),
                changes.clone(),
            ));
        }
        service
    }))
}

/// Asks whether component `id` may start from `image_ref`.
pub(crate) async fn check_component_start<T>(
    host: &HostInner,
    id: &str,
    image_ref: &str,
    max_instances: u32,
    annotations: &BTreeMap<String, String>,
    claims: Option<&Claims<T>>,
) -> Result<(), PolicyDenial> {
    let Some(service) = service(host) else {
        return Ok(());
    };
    let info = ComponentInformation {
        component_id: id.to_string(),
        image_ref: image_ref.to_string(),
        max_instances,
        annotations: annotations.clone(),
        claims: claims.map(policy_claims),
    };
    service
        .decide(
            PolicyRequestKind::StartComponent,
            format!("{id}_{image_ref}"),
            PolicyRequestBody::StartComponent(info),
            || format!("component `{id}`"),
        )
        .await
}

/// Asks whether provider `id` may start from `image_ref`.
pub(crate) async fn check_provider_start<T>(
    host: &HostInner,
    id: &str,
    image_ref: &str,
    annotations: &BTreeMap<String, String>,
    claims: Option<&Claims<T>>,
) -> Result<(), PolicyDenial> {
    let Some(service) = service(host) else {
        return Ok(());
    };
    let info = ProviderInformation {
        provider_id: id.to_string(),
        image_ref: image_ref.to_string(),
        annotations: annotations.clone(),
        claims: claims.map(policy_claims),
    };
    service
        .decide(
            PolicyRequestKind::StartProvider,
            format!("{id}_{image_ref}"),
            PolicyRequestBody::StartProvider(info),
            || format!("provider `{id}`"),
        )
        .await
}

impl PolicyService {
    /// Asks whether `target` may serve `interface.function` for a lattice
    /// call. A cached decision costs one hash lookup.
    pub(crate) async fn check_invocation(
        &self,
        target: &RunningComponent,
        interface: &str,
        function: &str,
    ) -> Result<(), PolicyDenial> {
        let key = format!(
            "{}_{}_{interface}_{function}",
            target.id(),
            target.image_ref()
        );
        let body = || {
            PolicyRequestBody::PerformInvocation(PerformInvocationRequest {
                interface: interface.to_string(),
                function: function.to_string(),
                target: ComponentInformation {
                    component_id: target.id().to_string(),
                    image_ref: target.image_ref().to_string(),
                    max_instances: target.max_instances(),
                    annotations: target.annotations().clone(),
                    claims: target.claims().map(|c| policy_claims(c)),
                },
            })
        };
        let kind = PolicyRequestKind::PerformInvocation;
        let subject = || format!("call to `{}` {interface}.{function}", target.id());
        if let Some(cached) = self.cached(kind, &key) {
            return self.verdict(cached, subject);
        }
        self.decide(kind, key, body(), subject).await
    }

    fn cached(&self, kind: PolicyRequestKind, key: &str) -> Option<PolicyResponse> {
        let decisions = self.decisions.read().ok()?;
        decisions.of(kind).get(key).cloned()
    }

    async fn decide(
        &self,
        kind: PolicyRequestKind,
        key: String,
        body: PolicyRequestBody,
        subject: impl FnOnce() -> String,
    ) -> Result<(), PolicyDenial> {
        if let Some(cached) = self.cached(kind, &key) {
            return self.verdict(cached, subject);
        }
        let response = self.ask(kind, body).await?;
        if let Ok(mut requests) = self.requests.lock() {
            requests.insert(response.request_id.clone(), (kind, key.clone()));
        }
        if let Ok(mut decisions) = self.decisions.write() {
            decisions.of_mut(kind).insert(key, response.clone());
        }
        self.verdict(response, subject)
    }

    fn verdict(
        &self,
        response: PolicyResponse,
        subject: impl FnOnce() -> String,
    ) -> Result<(), PolicyDenial> {
        if response.permitted {
            return Ok(());
        }
        Err(PolicyDenial::Denied {
            subject: subject(),
            topic: self.topic.clone(),
            message: response
                .message
                .unwrap_or_else(|| "no reason given".to_string()),
        })
    }

    /// One request; the returned response carries *our* request id, whatever
    /// the service echoed, so change notifications match what we recorded.
    async fn ask(
        &self,
        kind: PolicyRequestKind,
        body: PolicyRequestBody,
    ) -> Result<PolicyResponse, PolicyDenial> {
        let action = match kind {
            PolicyRequestKind::PerformInvocation => "invocation",
            PolicyRequestKind::StartComponent | PolicyRequestKind::StartProvider => "start",
        };
        let topic = self.topic.clone();
        let request = PolicyRequest {
            request_id: trellis_interfaces::event::new_event_id(),
            kind,
            version: POLICY_VERSION.to_string(),
            request: body,
            host: self.host.clone(),
        };
        let payload = serde_json::to_vec(&request).map_err(|e| PolicyDenial::Transport {
            topic: topic.clone(),
            reason: e.to_string(),
            action,
        })?;
        let sent = self
            .nats
            .send_request(
                topic.clone(),
                async_nats::Request::new()
                    .payload(payload.into())
                    .timeout(Some(self.timeout)),
            )
            .await;
        let message = sent.map_err(|e| {
            use async_nats::RequestErrorKind as K;
            match e.kind() {
                K::TimedOut => PolicyDenial::Timeout {
                    topic: topic.clone(),
                    timeout_ms: self.timeout.as_millis(),
                    action,
                },
                K::NoResponders => PolicyDenial::NoResponders {
                    topic: topic.clone(),
                    action,
                },
                _ => PolicyDenial::Transport {
                    topic: topic.clone(),
                    reason: e.to_string(),
                    action,
                },
            }
        })?;
        let mut response: PolicyResponse =
            serde_json::from_slice(&message.payload).map_err(|e| PolicyDenial::BadReply {
                topic: topic.clone(),
                reason: e.to_string(),
                action,
            })?;
        tracing::debug!(kind = kind.as_str(), request_id = %request.request_id, permitted = response.permitted, "policy decision");
        response.request_id = request.request_id;
        Ok(response)
    }

    /// Applies a change notification; returns whether it named a known request.
    fn apply_change(&self, change: PolicyResponse) -> bool {
        let key = self
            .requests
            .lock()
            .ok()
            .and_then(|r| r.get(&change.request_id).cloned());
        let Some(key) = key else {
            return false;
        };
        tracing::info!(kind = key.0.as_str(), key = %key.1, permitted = change.permitted, "policy decision changed");
        if let Ok(mut decisions) = self.decisions.write() {
            decisions.of_mut(key.0).insert(key.1, change);
        }
        true
    }
}

/// Follows the changes topic while the service lives.
async fn watch_changes(
    service: std::sync::Weak<PolicyService>,
    nats: async_nats::Client,
    topic: String,
) {
    let mut sub = match nats.subscribe(topic.clone()).await {
        Ok(sub) => sub,
        Err(error) => {
            tracing::warn!(%topic, %error, "cannot subscribe to policy changes; decisions stay cached until restart");
            return;
        }
    };
    while let Some(msg) = sub.next().await {
        let Some(service) = service.upgrade() else {
            return;
        };
        match serde_json::from_slice::<PolicyResponse>(&msg.payload) {
            Ok(change) => {
                let id = change.request_id.clone();
                if !service.apply_change(change) {
                    tracing::debug!(%topic, request_id = %id, "policy change for an unknown request ignored");
                }
            }
            Err(error) => tracing::warn!(%topic, %error, "unreadable policy change ignored"),
        }
    }
}

fn policy_claims<T>(claims: &Claims<T>) -> PolicyClaims {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PolicyClaims {
        public_key: claims.subject.clone(),
        issuer: claims.issuer.clone(),
        issued_at: claims.issued_at.to_string(),
        expires_at: claims.expires,
        expired: claims.expires.is_some_and(|exp| exp <= now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_messages_say_which_failure() {
        let timeout = PolicyDenial::Timeout {
            topic: "wasmcloud.policy".into(),
            timeout_ms: 1000,
            action: "start",
        };
        assert_eq!(
            timeout.to_string(),
            "policy service on `wasmcloud.policy` did not answer within 1000 ms: start denied"
        );
        let denied = PolicyDenial::Denied {
            subject: "component `forbidden`".into(),
            topic: "p".into(),
            message: "not on my lattice".into(),
        };
        assert_eq!(
            denied.to_string(),
            "component `forbidden` denied by the policy service on `p`: not on my lattice"
        );
        let none = PolicyDenial::NoResponders {
            topic: "p".into(),
            action: "invocation",
        };
        assert_eq!(
            none.to_string(),
            "no policy service listens on `p`: invocation denied"
        );
    }

    #[test]
    fn claims_report_expiry() {
        let mut c = Claims::new("AISS".into(), "MSUB".into(), 5, ());
        c.expires = Some(10);
        let p = policy_claims(&c);
        assert!(p.expired);
        assert_eq!(p.issued_at, "5");
        assert_eq!(p.public_key, "MSUB");
        c.expires = None;
        assert!(!policy_claims(&c).expired);
    }
}
