//! Links: `link.put|del|get`. A link is stored on its source's
//! `COMPONENT_{source_id}` spec in `LATTICEDATA_{lattice}`; every host learns
//! it from the KV watch. Writes use the KV revision for optimistic
//! concurrency, so two hosts putting links on one source never lose one.

use trellis_interfaces::event::{LatticeEvent, LinkdefDeleted, LinkdefSetFailed};
use trellis_interfaces::link::{
    ComponentSpecification, DeleteInterfaceLinkDefinitionRequest, Link,
};
use trellis_interfaces::subject;

use super::{CtlError, Reply, parse};
use crate::host::HostInner;

/// Attempts at a read-modify-write of a spec before giving up under contention.
pub const SPEC_UPDATE_ATTEMPTS: usize = 10;

pub(super) async fn put(host: &HostInner, payload: &[u8]) -> Result<Reply, CtlError> {
    let link: Link = parse("link put", payload)?;
    match put_link(host, &link).await {
        Ok(()) => {
            host.events
                .publish(LatticeEvent::LinkdefSet(link.clone()))
                .await;
            Ok(Reply::ok())
        }
        Err(e) => {
            host.events
                .publish(LatticeEvent::LinkdefSetFailed(LinkdefSetFailed {
                    link,
                    error: e.to_string(),
                }))
                .await;
            Err(e)
        }
    }
}

async fn put_link(host: &HostInner, link: &Link) -> Result<(), CtlError> {
    for field in [
        ("source_id", &link.source_id),
        ("target", &link.target),
        ("wit_namespace", &link.wit_namespace),
        ("wit_package", &link.wit_package),
    ] {
        if field.1.is_empty() {
            return Err(CtlError::Rejected(format!(
                "link field `{}` must not be empty",
                field.0
            )));
        }
    }
    if link.interfaces.is_empty() {
        return Err(CtlError::Rejected(
            "link must name at least one interface".into(),
        ));
    }
    for name in link.source_config.iter().chain(&link.target_config) {
        let exists = host
            .data
            .config
            .get(name.as_str())
            .await
            .map_err(|e| CtlError::Store(e.to_string()))?
            .is_some();
        if !exists {
            return Err(CtlError::Rejected(format!(
                "link config `{name}` does not exist: create it first with config.put (`wash config put {name} key=value`)"
            )));
        }
    }
    update_spec(host, &link.source_id, |spec| {
        spec.put_link(link.clone())
            .map_err(|e| CtlError::Rejected(e.to_string()))
    })
    .await
    .map(|_| ())
}

pub(super) async fn delete(host: &HostInner, payload: &[u8]) -> Result<Reply, CtlError> {
    let req: DeleteInterfaceLinkDefinitionRequest = parse("link delete", payload)?;
    let mut removed: Option<Link> = None;
    let exists = host
        .data
        .lattice
        .get(subject::component_spec_key(&req.source_id))
        .await
        .map_err(|e| CtlError::Store(e.to_string()))?
        .is_some();
    if exists {
        update_spec(host, &req.source_id, |spec| {
            removed = spec.remove_requested(&req);
            Ok(())
        })
        .await?;
    }
    host.events
        .publish(LatticeEvent::LinkdefDeleted(LinkdefDeleted {
            source_id: req.source_id.clone(),
            name: req.name.clone(),
            wit_namespace: req.wit_namespace.clone(),
            wit_package: req.wit_package.clone(),
            target: removed.as_ref().map(|l| l.target.clone()),
            interfaces: removed.map(|l| l.interfaces),
        }))
        .await;
    Ok(Reply::ok())
}

pub(super) fn get(host: &HostInner) -> Result<Reply, CtlError> {
    let links = host
        .view
        .read()
        .map(|v| v.links())
        .map_err(|_| CtlError::Store("lattice view unavailable".into()))?;
    Ok(Reply::with(&links))
}

/// Read-modify-write of `COMPONENT_{id}` with the KV revision as a guard.
async fn update_spec<F>(
    host: &HostInner,
    id: &str,
    mut change: F,
) -> Result<ComponentSpecification, CtlError>
where
    F: FnMut(&mut ComponentSpecification) -> Result<(), CtlError>,
{
    let key = subject::component_spec_key(id);
    let kv = &host.data.lattice;
    for _ in 0..SPEC_UPDATE_ATTEMPTS {
        let entry = kv
            .entry(key.as_str())
            .await
            .map_err(|e| CtlError::Store(e.to_string()))?;
        let (mut spec, revision) = match &entry {
            Some(e) if !e.value.is_empty() => (
                serde_json::from_slice::<ComponentSpecification>(&e.value).map_err(|err| {
                    CtlError::Store(format!("stored spec `{key}` is malformed: {err}"))
                })?,
                Some(e.revision),
            ),
            Some(e) => (ComponentSpecification::default(), Some(e.revision)),
            None => (ComponentSpecification::default(), None),
        };
        change(&mut spec)?;
        let bytes = serde_json::to_vec(&spec).map_err(|e| CtlError::Store(e.to_string()))?;
        let written = match revision {
            Some(rev) => kv
                .update(key.as_str(), bytes.into(), rev)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => kv
                .create(key.as_str(), bytes.into())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        match written {
            Ok(()) => return Ok(spec),
            Err(e) => tracing::debug!(%key, error = %e, "spec changed concurrently; retrying"),
        }
    }
    Err(CtlError::Store(format!(
        "could not update `{key}` after {SPEC_UPDATE_ATTEMPTS} attempts: too much concurrent change"
    )))
}
