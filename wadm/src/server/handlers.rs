//! One function per `model.*` operation: decode the request, read and write the store,
//! notify, and return the reply body in wadm 0.21's shape (messages follow wadm's
//! where a client might match on them, and say what to do where wadm's did not).

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};
use trellis_interfaces::manifest::{Manifest, VERSION_ANNOTATION_KEY, ValidationOutput, validate};

use super::notify::Notifier;
use super::store::{ManifestStore, StoreError};
use crate::api::{
    DeleteModelRequest, DeleteModelResponse, DeleteResult, DeployModelRequest, DeployModelResponse,
    DeployResult, ErrorReply, GetModelRequest, GetModelResponse, GetResult, ListModelsResponse,
    ModelSummary, PutModelResponse, PutResult, PutResultSuccess, StatusResponse, StatusResult,
    VersionInfo, VersionResponse,
};
use crate::status::{AppStatus, StatusInfo, StatusType};
use crate::stored::{AddVersionError, StoredManifest};

/// A reply body.
pub type Reply = Vec<u8>;

fn reply<T: Serialize>(value: &T) -> Reply {
    // Replies are plain structs of strings, numbers and manifests: encoding cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn error(message: impl Into<String>) -> Reply {
    reply(&ErrorReply::new(message))
}

fn store_error(e: &StoreError) -> Reply {
    error(format!("Internal storage error: {e}"))
}

/// Decodes an optional JSON request body (empty = default).
fn request<T: DeserializeOwned + Default>(payload: &[u8], op: &str) -> Result<T, Reply> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(payload).map_err(|e| {
        error(format!(
            "Unable to parse {op} application request: {e}; send JSON such as {{\"version\": \"v0.0.1\"}} or an empty body"
        ))
    })
}

/// The status of an application when nothing has published one: what the store says.
/// Until the reconcile loop runs in this process nothing is placed, so a deployed
/// application is `waiting`, never `deployed`.
#[must_use]
pub fn stored_status(stored: &StoredManifest) -> AppStatus {
    match stored.deployed_version() {
        Some(version) => AppStatus::bare(StatusInfo::waiting(format!(
            "Version {version} is deployed; waiting for the reconciler to place it"
        ))),
        None => AppStatus::bare(StatusInfo::undeployed("")),
    }
}

/// Parses a `model.put` body by its `Content-Type`, or YAML then JSON without one.
fn parse_manifest(payload: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
    let text = || std::str::from_utf8(payload).map_err(|e| format!("body is not UTF-8: {e}"));
    let parsed = match content_type.map(str::trim) {
        Some(t) if t.eq_ignore_ascii_case("application/json") => {
            Manifest::from_json(text()?).map_err(|e| e.to_string())
        }
        Some(t) if t.to_ascii_lowercase().contains("yaml") => {
            Manifest::from_yaml(text()?).map_err(|e| e.to_string())
        }
        _ => Manifest::from_yaml_or_json(payload).map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| {
        format!(
            "Unable to parse manifest: {e}. Send a core.oam.dev/v1beta1 Application as YAML or JSON"
        )
    })
}

/// The API's state: the manifest store and the notifier.
#[derive(Clone)]
pub struct Handlers {
    pub(super) store: ManifestStore,
    pub(super) notifier: Notifier,
}

impl Handlers {
    /// `model.put`.
    pub async fn put(&self, lattice: &str, payload: &[u8], content_type: Option<&str>) -> Reply {
        let mut manifest = match parse_manifest(payload, content_type) {
            Ok(m) => m,
            Err(message) => return error(message),
        };
        let failures = validate(&manifest);
        let errors = failures.errors();
        if !errors.is_empty() {
            let list: Vec<String> = errors.iter().map(|f| format!("- {}", f.msg)).collect();
            return error(format!(
                "Manifest {} is invalid ({} error{}):\n{}\nFix the manifest and put it again",
                manifest.name(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                list.join("\n")
            ));
        }
        let name = manifest.name().trim().to_string();
        if manifest.version().is_none() {
            manifest.metadata.annotations.insert(
                VERSION_ANNOTATION_KEY.to_string(),
                ulid::Ulid::new().to_string(),
            );
        }
        let (mut stored, revision) = match self.store.get(lattice, &name).await {
            Ok(found) => found.unwrap_or_default(),
            Err(e) => return store_error(&e),
        };
        match stored.add_version(manifest) {
            Ok(()) => {}
            Err(AddVersionError::Exists(version)) => {
                return error(format!(
                    "Manifest version {version} already exists; change metadata.annotations.version (or remove it to get a generated one) and put it again"
                ));
            }
            Err(e) => return error(e.to_string()),
        }
        if let Err(e) = self.store.set(lattice, &stored, revision).await {
            return store_error(&e);
        }
        let version = stored.current_version().to_string();
        let mut message = format!("Successfully put manifest {name} {version}");
        let warnings = failures.warnings();
        if !warnings.is_empty() {
            let list: Vec<&str> = warnings.iter().map(|f| f.msg.as_str()).collect();
            message.push_str(&format!(" (warnings: {})", list.join("; ")));
        }
        info!(lattice, app = %name, %version, "manifest put");
        reply(&PutModelResponse {
            result: PutResult::Success(if stored.count() == 1 {
                PutResultSuccess::Created
            } else {
                PutResultSuccess::NewVersion(version.clone())
            }),
            total_versions: stored.count(),
            current_version: version,
            message,
            name,
        })
    }

    /// `model.get.{name}`.
    pub async fn get(&self, lattice: &str, name: &str, payload: &[u8]) -> Reply {
        let req: GetModelRequest = match request(payload, "get") {
            Ok(r) => r,
            Err(r) => return r,
        };
        let stored = match self.store.get(lattice, name).await {
            Ok(Some((stored, _))) => stored,
            Ok(None) => return not_found_get(name),
            Err(e) => return store_error(&e),
        };
        let (manifest, message) = match req.version.as_deref() {
            Some(version) => match stored.get_version(version) {
                Some(m) => (
                    m,
                    format!("Successfully fetched application {name} {version}"),
                ),
                None => {
                    return reply(&GetModelResponse {
                        result: GetResult::NotFound,
                        message: format!(
                            "Application {name} with version {version} doesn't exist; stored versions: {}",
                            stored.versions().collect::<Vec<_>>().join(", ")
                        ),
                        manifest: None,
                    });
                }
            },
            None => match stored.current() {
                Some(m) => (m, format!("Successfully fetched application {name}")),
                None => return not_found_get(name),
            },
        };
        reply(&GetModelResponse {
            result: GetResult::Success,
            message,
            manifest: Some(manifest.clone()),
        })
    }

    /// `model.get` and the deprecated `model.list`.
    pub async fn list(&self, lattice: &str) -> Reply {
        let stored = match self.store.list(lattice).await {
            Ok(s) => s,
            Err(e) => return store_error(&e),
        };
        let mut models = Vec::with_capacity(stored.len());
        for app in stored {
            let status = self.status_of(lattice, &app).await;
            models.push(summary(&app, status));
        }
        reply(&ListModelsResponse {
            result: GetResult::Success,
            message: "Successfully fetched list of applications".to_string(),
            models,
        })
    }

    /// `model.versions.{name}`.
    pub async fn versions(&self, lattice: &str, name: &str) -> Reply {
        let response = match self.store.get(lattice, name).await {
            Ok(Some((stored, _))) => VersionResponse {
                result: GetResult::Success,
                message: format!("Successfully fetched versions for application {name}"),
                versions: stored
                    .versions()
                    .map(|v| VersionInfo {
                        version: v.to_string(),
                        deployed: stored.is_deployed(v),
                    })
                    .collect(),
            },
            Ok(None) => VersionResponse {
                result: GetResult::NotFound,
                message: format!("Application with the name {name} not found"),
                versions: Vec::new(),
            },
            Err(e) => return store_error(&e),
        };
        reply(&response)
    }

    /// `model.del.{name}`.
    pub async fn delete(&self, lattice: &str, name: &str, payload: &[u8]) -> Reply {
        let req: DeleteModelRequest = match request(payload, "delete") {
            Ok(r) => r,
            Err(r) => return r,
        };
        let (mut stored, revision) = match self.store.get(lattice, name).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                return self
                    .finish_delete(
                        lattice,
                        name,
                        DeleteResult::Noop,
                        false,
                        format!("Application {name} doesn't exist or was already deleted"),
                    )
                    .await;
            }
            Err(e) => return store_error(&e),
        };
        let (result, undeploy, message) = match req.version {
            Some(version) => {
                let was_deployed = stored.is_deployed(&version);
                if !stored.delete_version(&version) {
                    (
                        DeleteResult::Noop,
                        false,
                        format!("Application version {version} doesn't exist"),
                    )
                } else if stored.is_empty() {
                    if let Err(e) = self.store.delete(lattice, name).await {
                        return store_error(&e);
                    }
                    (
                        DeleteResult::Deleted,
                        true,
                        format!("Successfully deleted last version of application {name}"),
                    )
                } else {
                    if let Err(e) = self.store.set(lattice, &stored, revision).await {
                        return store_error(&e);
                    }
                    (
                        DeleteResult::Deleted,
                        was_deployed,
                        format!("Successfully deleted version {version} of application {name}"),
                    )
                }
            }
            None => {
                if let Err(e) = self.store.delete(lattice, name).await {
                    return store_error(&e);
                }
                (
                    DeleteResult::Deleted,
                    true,
                    format!("Successfully deleted application {name}"),
                )
            }
        };
        self.finish_delete(lattice, name, result, undeploy, message)
            .await
    }

    /// Notifies an undeploy caused by a delete (and, as wadm does, on a no-op too, in
    /// case an earlier notification was lost), then replies.
    async fn finish_delete(
        &self,
        lattice: &str,
        name: &str,
        result: DeleteResult,
        undeploy: bool,
        message: String,
    ) -> Reply {
        if (undeploy || result == DeleteResult::Noop)
            && let Err(e) = self.notifier.unpublished(lattice, name).await
        {
            return reply(&DeleteModelResponse {
                result: DeleteResult::Error,
                message: format!(
                    "Error notifying processors of the undeployed application on delete: {e}; retry the request"
                ),
                undeploy: false,
            });
        }
        if undeploy {
            let status = AppStatus::bare(StatusInfo::undeployed(""));
            if let Err(e) = self.notifier.publish_status(lattice, name, &status).await {
                warn!(lattice, app = name, error = %e, "cannot publish status after delete");
            }
        }
        info!(lattice, app = name, ?result, undeploy, "delete");
        reply(&DeleteModelResponse {
            result,
            message,
            undeploy,
        })
    }

    /// `model.deploy.{name}`.
    pub async fn deploy(&self, lattice: &str, name: &str, payload: &[u8]) -> Reply {
        let req: DeployModelRequest = match request(payload, "deploy") {
            Ok(r) => r,
            Err(r) => return r,
        };
        let deploy_reply = |result, message: String, version: Option<String>| {
            reply(&DeployModelResponse {
                result,
                message,
                name: name.to_string(),
                version,
            })
        };
        let (mut stored, revision) = match self.store.get(lattice, name).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                return deploy_reply(
                    DeployResult::NotFound,
                    format!(
                        "Application with the name {name} not found; put it first (`wash app put FILE`)"
                    ),
                    req.version,
                );
            }
            Err(e) => return store_error(&e),
        };
        let Some(version) = stored
            .resolve_version(req.version.as_deref())
            .map(str::to_string)
        else {
            let v = req.version.unwrap_or_default();
            return deploy_reply(
                DeployResult::Error,
                format!(
                    "Application with the name '{name}' does not have a version '{v}' to deploy; stored versions: {}",
                    stored.versions().collect::<Vec<_>>().join(", ")
                ),
                Some(v),
            );
        };
        if let Err(message) = self.check_ids(lattice, name, &stored, &version).await {
            return error(message);
        }
        stored.deploy(Some(&version));
        let Some(manifest) = stored.deployed().cloned() else {
            return error(format!(
                "Version {version} of {name} vanished while deploying; retry"
            ));
        };
        if let Err(e) = self.store.set(lattice, &stored, revision).await {
            return deploy_reply(
                DeployResult::Error,
                format!("Internal storage error: {e}"),
                Some(version),
            );
        }
        if let Err(e) = self.notifier.published(lattice, &manifest).await {
            return deploy_reply(
                DeployResult::Error,
                format!("Error notifying processors of newly deployed manifest: {e}"),
                Some(version),
            );
        }
        if let Err(e) = self
            .notifier
            .publish_status(lattice, name, &stored_status(&stored))
            .await
        {
            warn!(lattice, app = name, error = %e, "cannot publish status after deploy");
        }
        info!(lattice, app = name, %version, "deployed");
        deploy_reply(
            DeployResult::Acknowledged,
            format!("Successfully deployed application {name} {version}"),
            Some(version),
        )
    }

    /// Refuses a deploy whose explicit component ids are deployed by another
    /// application of the lattice, as wadm does.
    async fn check_ids(
        &self,
        lattice: &str,
        name: &str,
        stored: &StoredManifest,
        version: &str,
    ) -> Result<(), String> {
        let Some(staged) = stored.get_version(version) else {
            return Ok(());
        };
        let others = self.store.list(lattice).await.map_err(|e| e.to_string())?;
        for other in others.iter().filter(|o| o.name() != name) {
            let Some(deployed) = other.deployed() else {
                continue;
            };
            for component in staged.components() {
                let Some(id) = component.props().id.as_deref() else {
                    continue;
                };
                if deployed
                    .components()
                    .any(|c| c.props().id.as_deref() == Some(id))
                {
                    return Err(format!(
                        "Component identifier '{id}' is already deployed in a different application '{}'; change properties.id of component '{}' or undeploy '{}'",
                        other.name(),
                        component.name,
                        other.name()
                    ));
                }
            }
        }
        Ok(())
    }

    /// `model.undeploy.{name}`.
    pub async fn undeploy(&self, lattice: &str, name: &str, payload: &[u8]) -> Reply {
        if let Err(r) = request::<DeployModelRequest>(payload, "undeploy") {
            return r;
        }
        let undeploy_reply = |result, message: String| {
            reply(&DeployModelResponse {
                result,
                message,
                name: name.to_string(),
                version: None,
            })
        };
        let (mut stored, revision) = match self.store.get(lattice, name).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                return undeploy_reply(
                    DeployResult::NotFound,
                    format!("Application with the name {name} not found"),
                );
            }
            Err(e) => return store_error(&e),
        };
        let message = if stored.undeploy() {
            if let Err(e) = self.store.set(lattice, &stored, revision).await {
                return undeploy_reply(DeployResult::Error, format!("Internal storage error: {e}"));
            }
            format!("Successfully undeployed application {name}")
        } else {
            format!("Application {name} was already undeployed")
        };
        // Always re-sent, in case an earlier notification was lost (as wadm does).
        if let Err(e) = self.notifier.unpublished(lattice, name).await {
            return undeploy_reply(
                DeployResult::Error,
                format!("Error notifying processors of undeployed manifest: {e}"),
            );
        }
        if let Err(e) = self
            .notifier
            .publish_status(lattice, name, &stored_status(&stored))
            .await
        {
            warn!(lattice, app = name, error = %e, "cannot publish status after undeploy");
        }
        info!(lattice, app = name, "undeployed");
        undeploy_reply(DeployResult::Acknowledged, message)
    }

    /// `model.status.{name}`.
    pub async fn status(&self, lattice: &str, name: &str) -> Reply {
        let stored = match self.store.get(lattice, name).await {
            Ok(Some((stored, _))) => stored,
            Ok(None) => {
                return reply(&StatusResponse {
                    result: StatusResult::NotFound,
                    message: format!("Application with the name {name} not found"),
                    status: None,
                });
            }
            Err(e) => return store_error(&e),
        };
        let status = self.status_of(lattice, &stored).await;
        reply(&StatusResponse {
            result: StatusResult::Ok,
            message: format!("Successfully fetched status for application {name}"),
            status: Some(status),
        })
    }

    /// The last published status, or the store's.
    async fn status_of(&self, lattice: &str, stored: &StoredManifest) -> AppStatus {
        match self.notifier.status(lattice, stored.name()).await {
            Some(status) => status,
            None => stored_status(stored),
        }
    }
}

fn not_found_get(name: &str) -> Reply {
    reply(&GetModelResponse {
        result: GetResult::NotFound,
        message: format!("Application with the name {name} not found"),
        manifest: None,
    })
}

/// A list entry; `status` reads `waiting` as `undeployed` for pre-0.14 clients, as wadm.
fn summary(stored: &StoredManifest, status: AppStatus) -> ModelSummary {
    let legacy = match status.info.status_type {
        StatusType::Waiting => StatusType::Undeployed,
        other => other,
    };
    ModelSummary {
        name: stored.name().to_string(),
        version: stored.current_version().to_string(),
        description: stored
            .current()
            .and_then(Manifest::description)
            .map(str::to_string),
        deployed_version: stored.deployed_version().map(str::to_string),
        status: legacy,
        status_message: Some(status.info.message.clone()),
        detailed_status: status,
    }
}
