//! The policy service wire format (PROTOCOL.md §5.2), byte-compatible with
//! wasmCloud 1.x: a host with `--policy-topic` sends a [`PolicyRequest`] as a
//! NATS request before starting a component or provider and before serving an
//! incoming invocation, and the service answers with a [`PolicyResponse`].
//! A `PolicyResponse` published on the changes topic overrides the decision
//! recorded for the request with the same `requestId`.
//!
//! Only types here: the host does the I/O (`host/src/policy.rs`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The only request version wasmCloud 1.x defines.
pub const POLICY_VERSION: &str = "v1";

/// What the host asks permission for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyRequestKind {
    /// Starting (or updating to) a component image.
    StartComponent,
    /// Starting a capability provider.
    StartProvider,
    /// Serving one incoming call to a component.
    PerformInvocation,
}

impl PolicyRequestKind {
    /// The wire name (`startComponent`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StartComponent => "startComponent",
            Self::StartProvider => "startProvider",
            Self::PerformInvocation => "performInvocation",
        }
    }
}

/// The signed claims of an artifact, as the policy service sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyClaims {
    /// The artifact's own key (`sub`).
    pub public_key: String,
    /// The signing account (`iss`).
    pub issuer: String,
    /// Issue time (`iat`), seconds since the Unix epoch, as a decimal string
    /// (wasmCloud sends it as a string).
    pub issued_at: String,
    /// Expiry (`exp`), seconds since the Unix epoch; `null` if it never expires.
    pub expires_at: Option<u64>,
    /// Whether the claims had expired when the request was made.
    pub expired: bool,
}

/// A component being started, or the target of an invocation
/// (wasmCloud's `ComponentInformation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentInformation {
    /// The component id.
    pub component_id: String,
    /// The image reference it runs from.
    pub image_ref: String,
    /// Its maximum concurrent instances.
    pub max_instances: u32,
    /// Annotations of the scale request.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Its claims, when signed.
    #[serde(default)]
    pub claims: Option<PolicyClaims>,
}

/// A provider being started (wasmCloud's `ProviderInformation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInformation {
    /// The provider id.
    pub provider_id: String,
    /// The image reference it runs from.
    pub image_ref: String,
    /// Annotations of the start request.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Its claims, when signed.
    #[serde(default)]
    pub claims: Option<PolicyClaims>,
}

/// One incoming call (wasmCloud's `PerformInvocationRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformInvocationRequest {
    /// The called interface, e.g. `wasi:http/incoming-handler`.
    pub interface: String,
    /// The called function, e.g. `handle`.
    pub function: String,
    /// The component that would run the call.
    pub target: ComponentInformation,
}

/// The body of a request; which one is given by [`PolicyRequest::kind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PolicyRequestBody {
    /// Body of `performInvocation` (tried first: it is the only one with `target`).
    PerformInvocation(PerformInvocationRequest),
    /// Body of `startComponent`.
    StartComponent(ComponentInformation),
    /// Body of `startProvider`.
    StartProvider(ProviderInformation),
}

/// The host making the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyHostInfo {
    /// The host id (server public key).
    pub public_key: String,
    /// The lattice it belongs to.
    pub lattice: String,
    /// Its labels.
    #[serde(default)]
    pub labels: HashMap<String, String>,
}

/// A policy request, sent as a NATS request on the policy topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRequest {
    /// A fresh id (a ULID as a UUID); a change notification names it.
    #[serde(rename = "requestId")]
    pub request_id: String,
    /// What is asked.
    pub kind: PolicyRequestKind,
    /// Always [`POLICY_VERSION`].
    pub version: String,
    /// The details.
    pub request: PolicyRequestBody,
    /// The asking host.
    pub host: PolicyHostInfo,
}

/// The policy service's decision, as a reply or on the changes topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyResponse {
    /// The request decided.
    #[serde(rename = "requestId")]
    pub request_id: String,
    /// Whether the action may go ahead.
    pub permitted: bool,
    /// Why, typically given with a denial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request as a wasmCloud 1.x host writes it.
    const WASMCLOUD_START_COMPONENT: &str = r#"{
        "requestId": "01912c7e-8f2a-7b3c-9d4e-5f6a7b8c9d0e",
        "kind": "startComponent",
        "version": "v1",
        "request": {
            "componentId": "echo",
            "imageRef": "registry.example/components/http-hello-world-rust:0.1.0",
            "maxInstances": 4,
            "annotations": {"wasmcloud.dev/appspec": "hello"},
            "claims": {
                "publicKey": "MBCFOPM6JW2APJLXJD3Z5O4CN7CPYJ2B4FTKLJUR5YR5MITIU7HD3WD5",
                "issuer": "ACOJJN6WUP4ODD75XEBKKTCCUJJCY5ZKQ56XVKYK4BEJWGVAOOQHZMCW",
                "issuedAt": "1700000000",
                "expiresAt": null,
                "expired": false
            }
        },
        "host": {
            "publicKey": "NACDQGN7KF3MJJ7HXFQ6DVD2W3Y6FN2PDQEGI5KJSQ6E4HSOTGGEKJ5G",
            "lattice": "default",
            "labels": {"hostcore.os": "linux"}
        }
    }"#;

    const WASMCLOUD_INVOCATION: &str = r#"{
        "requestId": "01912c7e-8f2a-7b3c-9d4e-5f6a7b8c9d0f",
        "kind": "performInvocation",
        "version": "v1",
        "request": {
            "interface": "wasi:http/incoming-handler",
            "function": "handle",
            "target": {
                "componentId": "echo",
                "imageRef": "file:///echo.wasm",
                "maxInstances": 1,
                "annotations": {},
                "claims": null
            }
        },
        "host": {"publicKey": "NHOST", "lattice": "default", "labels": {}}
    }"#;

    #[test]
    fn wasmcloud_requests_round_trip() {
        for text in [WASMCLOUD_START_COMPONENT, WASMCLOUD_INVOCATION] {
            let parsed: PolicyRequest = serde_json::from_str(text).unwrap();
            let original: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_value(&parsed).unwrap(), original);
        }
        let start: PolicyRequest = serde_json::from_str(WASMCLOUD_START_COMPONENT).unwrap();
        assert_eq!(start.kind, PolicyRequestKind::StartComponent);
        let PolicyRequestBody::StartComponent(info) = &start.request else {
            panic!("wrong body: {:?}", start.request);
        };
        assert_eq!(info.max_instances, 4);
        assert_eq!(info.claims.as_ref().unwrap().issued_at, "1700000000");
        let call: PolicyRequest = serde_json::from_str(WASMCLOUD_INVOCATION).unwrap();
        let PolicyRequestBody::PerformInvocation(call) = &call.request else {
            panic!("wrong body: {:?}", call.request);
        };
        assert_eq!(call.target.component_id, "echo");
    }

    #[test]
    fn provider_body_and_responses_round_trip() {
        let text = r#"{"providerId":"kv","imageRef":"registry.example/x/kv:1","annotations":{},"claims":null}"#;
        let body: PolicyRequestBody = serde_json::from_str(text).unwrap();
        // Untagged: a provider body never parses as a component body.
        assert!(matches!(body, PolicyRequestBody::StartProvider(_)));
        let denied = r#"{"requestId":"r1","permitted":false,"message":"no"}"#;
        let r: PolicyResponse = serde_json::from_str(denied).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), denied);
        let permitted: PolicyResponse =
            serde_json::from_str(r#"{"requestId":"r2","permitted":true}"#).unwrap();
        assert_eq!(permitted.message, None);
        assert_eq!(
            serde_json::to_string(&PolicyRequestKind::PerformInvocation).unwrap(),
            "\"performInvocation\""
        );
    }
}
