//! Control-interface requests and replies (PROTOCOL.md §2.3), in the exact JSON shape
//! of wasmCloud's control-interface 3.x, so `wash` and wadm can talk to Trellis hosts
//! and Trellis tools can talk to wasmCloud hosts.
//!
//! Requests are lenient: every field a 1.x client may leave out has a serde default,
//! and unknown fields are ignored. Optional fields that are absent are also absent when
//! re-serialized, so a request round-trips to the same JSON value.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

/// Free-form annotations attached to a component or provider by whoever started it
/// (wadm puts `wasmcloud.dev/appspec`, `wasmcloud.dev/managed-by`, … here).
pub type Annotations = BTreeMap<String, String>;

/// Auction constraints: host labels that must all match exactly.
pub type Constraints = BTreeMap<String, String>;

/// One entry of a `claims.get` reply: claims flattened to strings
/// (`call_alias, iss, issuer, name, rev, revision, sub, subject, tags, version`, …).
pub type ClaimsMap = HashMap<String, String>;

/// The envelope of every control-interface reply.
///
/// `response` is omitted from the JSON when there is none; a failure is
/// `{"success":false,"message":"<error>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtlResponse<T> {
    /// Whether the host carried out (or accepted) the request.
    #[serde(default)]
    pub success: bool,
    /// Context for the caller: the error on failure, sometimes a warning on success.
    #[serde(default)]
    pub message: String,
    /// The reply payload, for operations that have one (absent means `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<T>,
}

impl<T> CtlResponse<T> {
    /// A successful reply carrying `response`.
    #[must_use]
    pub fn ok(response: T) -> Self {
        Self {
            success: true,
            message: String::new(),
            response: Some(response),
        }
    }

    /// A failed reply of any payload type (the JSON is the same as [`CtlResponse::error`]).
    #[must_use]
    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            success: false,
            message: message.into(),
            response: None,
        }
    }

    /// The same reply with `message` replaced, e.g. to attach a warning to a success.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The payload if the host reported success, else its message.
    pub fn into_result(self) -> Result<Option<T>, String> {
        if self.success {
            Ok(self.response)
        } else {
            Err(self.message)
        }
    }
}

impl CtlResponse<()> {
    /// A successful reply without payload or message: `{"success":true,"message":""}`.
    #[must_use]
    pub fn success() -> Self {
        Self {
            success: true,
            message: String::new(),
            response: None,
        }
    }

    /// A failed reply: `{"success":false,"message":"<message>"}`.
    #[must_use]
    pub fn error(message: impl Into<String>) -> Self {
        Self::failure(message)
    }
}

/// `component.auction`: which hosts could run this component?
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentAuctionRequest {
    /// Image reference (OCI or `file://`).
    #[serde(default)]
    pub component_ref: String,
    /// The id the component would run under; hosts already running it stay silent.
    pub component_id: String,
    /// Labels a bidding host must carry, all matching exactly.
    #[serde(default)]
    pub constraints: Constraints,
}

/// A host's bid in a component auction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentAuctionAck {
    /// The image reference from the request.
    #[serde(default)]
    pub component_ref: String,
    /// The component id from the request.
    #[serde(default)]
    pub component_id: String,
    /// The bidding host.
    #[serde(default)]
    pub host_id: String,
    /// The constraints from the request.
    #[serde(default)]
    pub constraints: Constraints,
}

/// `provider.auction`: which hosts could run this provider?
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderAuctionRequest {
    /// Image reference (OCI, `file://`, or a builtin `wasmcloud+builtin://…`).
    #[serde(default)]
    pub provider_ref: String,
    /// The id the provider would run under; hosts already running it stay silent.
    pub provider_id: String,
    /// Labels a bidding host must carry, all matching exactly.
    #[serde(default)]
    pub constraints: Constraints,
}

/// A host's bid in a provider auction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderAuctionAck {
    /// The bidding host.
    #[serde(default)]
    pub host_id: String,
    /// The image reference from the request.
    #[serde(default)]
    pub provider_ref: String,
    /// The provider id from the request.
    #[serde(default)]
    pub provider_id: String,
    /// The constraints from the request.
    #[serde(default)]
    pub constraints: Constraints,
}

/// `component.scale.{host_id}`: run `count` concurrent instances of a component
/// (`0` stops it). Acknowledged before the work is done; the outcome is a
/// `component_scaled` / `component_scale_failed` event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleComponentCommand {
    /// Image reference of the component.
    #[serde(default)]
    pub component_ref: String,
    /// The component id to scale.
    pub component_id: String,
    /// Annotations recorded with the component (and echoed in events and inventory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// Maximum concurrent instances; `0` stops the component. JSON key `count`, as
    /// wasmCloud sends it; `max_instances` is also accepted on input.
    #[serde(default, rename = "count", alias = "max_instances")]
    pub max_instances: u32,
    /// Resource limits as strings (wasmCloud reads the keys `max_memory_limit` and
    /// `max_execution_time`); absent means the host's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_limits: Option<BTreeMap<String, String>>,
    /// The host that should act (also the last subject token).
    #[serde(default)]
    pub host_id: String,
    /// Named configs merged left to right into the component's config.
    #[serde(default)]
    pub config: Vec<String>,
    /// If the component already runs from another image: `true` updates it to
    /// `component_ref`, `false` keeps the running image (with a warning).
    #[serde(default)]
    pub allow_update: bool,
}

/// `component.update.{host_id}`: swap a running component to a new image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateComponentCommand {
    /// The running component to update.
    #[serde(default)]
    pub component_id: String,
    /// Annotations to record with the updated component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// The host that should act.
    #[serde(default)]
    pub host_id: String,
    /// The image to switch to.
    #[serde(default)]
    pub new_component_ref: String,
}

/// `provider.start.{host_id}`: start a capability provider. Acknowledged before the
/// download; the outcome is a `provider_started` / `provider_start_failed` event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartProviderCommand {
    /// The id the provider will run under.
    pub provider_id: String,
    /// Image reference of the provider.
    #[serde(default)]
    pub provider_ref: String,
    /// The host that should act.
    #[serde(default)]
    pub host_id: String,
    /// Named configs merged left to right into the provider's config.
    #[serde(default)]
    pub config: Vec<String>,
    /// Annotations recorded with the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

/// `provider.stop.{host_id}`: stop a provider (synchronous).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopProviderCommand {
    /// The host that should act.
    #[serde(default)]
    pub host_id: String,
    /// The provider to stop; older clients send it as `provider_ref`.
    #[serde(default, alias = "provider_ref")]
    pub provider_id: String,
}

/// `host.stop.{host_id}`: stop a host. The request body may also be empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopHostCommand {
    /// The host to stop; empty means "the host addressed by the subject".
    #[serde(default)]
    pub host_id: String,
    /// Grace period for the shutdown, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// `label.put.{host_id}`: set one host label.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLabel {
    /// Label key (`hostcore.*` keys are reserved).
    pub key: String,
    /// Label value.
    pub value: String,
}

/// `label.del.{host_id}`: remove one host label.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLabelIdentifier {
    /// Label key to remove.
    pub key: String,
}

/// Credentials for one OCI registry, as pushed on `registry.put`.
///
/// These travel in plaintext on the control subjects (as in wasmCloud 1.x); `Debug`
/// redacts the secrets so they do not end up in logs.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryCredential {
    /// User name for HTTP basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password for HTTP basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Bearer token; used instead of basic authentication when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Registry kind; only `"oci"` exists. JSON key `registryType`.
    #[serde(rename = "registryType", default = "default_registry_type")]
    pub registry_type: String,
}

fn default_registry_type() -> String {
    "oci".to_string()
}

impl fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("RegistryCredential")
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("token", &redact(&self.token))
            .field("registry_type", &self.registry_type)
            .finish()
    }
}

/// Body of `registry.put`: credentials keyed by registry host (`registry.example`, `localhost:5000`).
pub type RegistryCredentialMap = HashMap<String, RegistryCredential>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn responses_serialize_like_wasmcloud() {
        let ok = serde_json::to_value(CtlResponse::<()>::success()).unwrap();
        assert_eq!(ok, json!({"success": true, "message": ""}));
        let err = serde_json::to_value(CtlResponse::error("boom")).unwrap();
        assert_eq!(err, json!({"success": false, "message": "boom"}));
        let typed = serde_json::to_value(CtlResponse::ok(vec![1, 2])).unwrap();
        assert_eq!(
            typed,
            json!({"success": true, "message": "", "response": [1, 2]})
        );
        let warned = CtlResponse::<()>::success().with_message("kept old image");
        assert_eq!(warned.message, "kept old image");
        let failed: CtlResponse<u8> = CtlResponse::failure("nope");
        assert_eq!(failed.into_result(), Err("nope".to_string()));
    }

    #[test]
    fn response_without_payload_parses_for_any_type() {
        let r: CtlResponse<Vec<String>> =
            serde_json::from_str(r#"{"success":true,"message":"Configuration not found"}"#)
                .unwrap();
        assert!(r.success);
        assert_eq!(r.response, None);
    }

    #[test]
    fn scale_command_uses_count_and_defaults() {
        let cmd: ScaleComponentCommand =
            serde_json::from_str(r#"{"component_id":"c","count":3}"#).unwrap();
        assert_eq!(cmd.max_instances, 3);
        assert!(cmd.config.is_empty());
        assert!(!cmd.allow_update);
        let v = serde_json::to_value(&cmd).unwrap();
        assert_eq!(v["count"], 3);
        assert!(v.get("max_instances").is_none());
        assert!(v.get("annotations").is_none());
        assert!(v.get("component_limits").is_none());
    }

    #[test]
    fn stop_provider_accepts_legacy_provider_ref() {
        let cmd: StopProviderCommand =
            serde_json::from_str(r#"{"host_id":"N1","provider_ref":"p"}"#).unwrap();
        assert_eq!(cmd.provider_id, "p");
        let v = serde_json::to_value(&cmd).unwrap();
        assert_eq!(v, json!({"host_id": "N1", "provider_id": "p"}));
    }

    #[test]
    fn registry_credential_defaults_to_oci_and_redacts() {
        let map: RegistryCredentialMap =
            serde_json::from_str(r#"{"registry.example":{"username":"u","password":"secret-pw"}}"#)
                .unwrap();
        let cred = &map["registry.example"];
        assert_eq!(cred.registry_type, "oci");
        let v: Value = serde_json::to_value(cred).unwrap();
        assert_eq!(
            v,
            json!({"username": "u", "password": "secret-pw", "registryType": "oci"})
        );
        let dbg = format!("{cred:?}");
        assert!(!dbg.contains("secret-pw"), "{dbg}");
    }

    #[test]
    fn empty_optional_fields_are_tolerated() {
        let stop: StopHostCommand = serde_json::from_str("{}").unwrap();
        assert_eq!(stop, StopHostCommand::default());
        let start: StartProviderCommand =
            serde_json::from_str(r#"{"provider_id":"p","provider_ref":"r"}"#).unwrap();
        assert!(start.config.is_empty());
        let auction: ComponentAuctionRequest =
            serde_json::from_str(r#"{"component_ref":"r","component_id":"c"}"#).unwrap();
        assert!(auction.constraints.is_empty());
    }
}
