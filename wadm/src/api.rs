//! Requests and replies of the `wadm.api.{lattice}.model.*` subjects, in wadm 0.21's JSON
//! shapes (`wadm-types/src/api.rs`, PROTOCOL.md §6.3), so wasmCloud's `wash app` and
//! `wadm-client` talk to Trellis unchanged. Pure data: the service that answers them
//! is in [`crate::server`].
//!
//! Every reply has `result` and `message`; an error of any operation is
//! `{"result": "error", "message": "…"}` ([`ErrorReply`]), as wadm sends it.

use serde::{Deserialize, Serialize};
use trellis_interfaces::manifest::Manifest;

use crate::status::{AppStatus, StatusType};

/// Default subject prefix of the API (`--api-prefix`).
pub const DEFAULT_API_PREFIX: &str = "wadm.api";
/// Prefix of the subjects application statuses are published on:
/// `wadm.status.{lattice}.{app}`.
pub const STATUS_PREFIX: &str = "wadm.status";
/// `Content-Type` header a `model.put` may carry (`application/json`,
/// `application/yaml`); without it the body is read as YAML, then as JSON.
pub const CONTENT_TYPE_HEADER: &str = "Content-Type";

/// The reply every operation sends when it fails before producing its own reply type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Always `"error"`.
    pub result: String,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl ErrorReply {
    /// An error reply with this message.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            result: "error".to_string(),
            message: message.into(),
        }
    }
}

/// `model.get.{name}` request body (empty body = latest version).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetModelRequest {
    /// The version to fetch; the newest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Outcome of `model.get.{name}`, `model.get` (list) and `model.versions.{name}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GetResult {
    /// The request failed.
    Error,
    /// Found.
    Success,
    /// No such application or version.
    NotFound,
}

/// Reply to `model.get.{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetModelResponse {
    /// Outcome.
    pub result: GetResult,
    /// For people.
    #[serde(default)]
    pub message: String,
    /// The manifest, when found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
}

/// Reply to `model.get` (and the deprecated `model.list`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListModelsResponse {
    /// Outcome.
    pub result: GetResult,
    /// For people.
    #[serde(default)]
    pub message: String,
    /// One summary per application, sorted by name.
    pub models: Vec<ModelSummary>,
}

/// One application in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Application name.
    pub name: String,
    /// Newest stored version.
    pub version: String,
    /// `description` annotation of the newest version.
    pub description: Option<String>,
    /// Deployed version, if any.
    pub deployed_version: Option<String>,
    /// The application's status.
    #[serde(default)]
    pub detailed_status: AppStatus,
    /// Deprecated in wadm 0.14: `detailed_status.status.type` (`waiting` reads as
    /// `undeployed` for old clients).
    pub status: StatusType,
    /// Deprecated in wadm 0.14: `detailed_status.status.message`.
    pub status_message: Option<String>,
}

/// How a successful `model.put` stored the manifest. wadm 0.21 serializes it with
/// serde's default (externally tagged, variant names as written).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutResultSuccess {
    /// The first version of a new application.
    Created,
    /// Another version of an existing application (the new version).
    NewVersion(String),
}

/// Outcome of `model.put`: `{"success": "Created"}`,
/// `{"success": {"NewVersion": "v2"}}` or `"error"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PutResult {
    /// Stored.
    Success(PutResultSuccess),
    /// Refused; the message says why.
    Error,
}

/// Reply to `model.put`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutModelResponse {
    /// Outcome.
    pub result: PutResult,
    /// How many versions the application now has.
    #[serde(default)]
    pub total_versions: usize,
    /// The version just stored (the newest).
    #[serde(default)]
    pub current_version: String,
    /// For people.
    #[serde(default)]
    pub message: String,
    /// Application name.
    #[serde(default)]
    pub name: String,
}

/// One version of an application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The version.
    pub version: String,
    /// Whether it is the deployed one.
    pub deployed: bool,
}

/// Reply to `model.versions.{name}`: versions oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResponse {
    /// Outcome.
    pub result: GetResult,
    /// For people.
    #[serde(default)]
    pub message: String,
    /// Versions in the order they were put.
    pub versions: Vec<VersionInfo>,
}

/// `model.del.{name}` request body (empty body or no version = every version).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteModelRequest {
    /// The version to delete; all of them when absent.
    #[serde(default)]
    pub version: Option<String>,
}

/// Outcome of `model.del.{name}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteResult {
    /// Deleted.
    Deleted,
    /// The request failed.
    Error,
    /// Nothing to delete.
    Noop,
}

/// Reply to `model.del.{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteModelResponse {
    /// Outcome.
    pub result: DeleteResult,
    /// For people.
    #[serde(default)]
    pub message: String,
    /// Whether the delete also undeployed the application.
    #[serde(default)]
    pub undeploy: bool,
}

/// `model.deploy.{name}` request body (empty body, no version or `latest` = newest).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployModelRequest {
    /// The version to deploy.
    #[serde(default)]
    pub version: Option<String>,
}

/// Outcome of `model.deploy.{name}` and `model.undeploy.{name}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployResult {
    /// The request failed.
    Error,
    /// Recorded; the lattice converges asynchronously.
    Acknowledged,
    /// No such application.
    NotFound,
}

/// Reply to `model.deploy.{name}` and `model.undeploy.{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployModelResponse {
    /// Outcome.
    pub result: DeployResult,
    /// For people.
    #[serde(default)]
    pub message: String,
    /// Application name.
    #[serde(default)]
    pub name: String,
    /// The version deployed (`null` for undeploy).
    #[serde(default)]
    pub version: Option<String>,
}

/// Outcome of `model.status.{name}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusResult {
    /// The request failed.
    Error,
    /// Found.
    Ok,
    /// No such application.
    NotFound,
}

/// Reply to `model.status.{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Outcome.
    pub result: StatusResult,
    /// For people.
    #[serde(default)]
    pub message: String,
    /// The status, when found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AppStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn put_result_has_wadm_shape() {
        let created = PutModelResponse {
            result: PutResult::Success(PutResultSuccess::Created),
            total_versions: 1,
            current_version: "v1".into(),
            message: "m".into(),
            name: "app".into(),
        };
        assert_eq!(
            serde_json::to_value(&created).unwrap(),
            json!({"result": {"success": "Created"}, "total_versions": 1,
                   "current_version": "v1", "message": "m", "name": "app"})
        );
        let newer = PutResult::Success(PutResultSuccess::NewVersion("v2".into()));
        assert_eq!(
            serde_json::to_value(&newer).unwrap(),
            json!({"success": {"NewVersion": "v2"}})
        );
        assert_eq!(
            serde_json::to_value(PutResult::Error).unwrap(),
            json!("error")
        );
    }

    #[test]
    fn empty_requests_read() {
        let r: DeployModelRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(r.version, None);
        let r: DeleteModelRequest = serde_json::from_str(r#"{"version":"v1"}"#).unwrap();
        assert_eq!(r.version.as_deref(), Some("v1"));
    }
}
