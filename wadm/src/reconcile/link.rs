//! The link scaler: put each link of the manifest, replace it when it differs, and
//! never overwrite a conflicting link this application did not put.

use std::collections::BTreeMap;

use trellis_interfaces::link::Link;
use trellis_interfaces::manifest::{Component, LinkProperty, Manifest};

use super::Ctx;
use super::config::{Readiness, config_names, describe_unready, unready};
use crate::annotations::{LINK_SCALER_KIND, LinkIdParts, link_scaler_id};
use crate::command::{Command, DeleteLink, PutLink};
use crate::observed::link_failure_key;
use crate::status::{ScalerStatus, StatusInfo};

/// A link the manifest asks for, with its scaler identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DesiredLink {
    pub link: Link,
    pub scaler_id: String,
    pub name: String,
}

/// Every link of `manifest`; a link whose target is not a component of the manifest
/// yields a failed status instead.
pub(crate) fn desired_links(manifest: &Manifest) -> Vec<Result<DesiredLink, ScalerStatus>> {
    manifest
        .links()
        .map(|(source, property)| desired_link(manifest, source, property))
        .collect()
}

fn desired_link(
    manifest: &Manifest,
    source: &Component,
    property: &LinkProperty,
) -> Result<DesiredLink, ScalerStatus> {
    let app = manifest.name();
    let source_id = source.component_id(app);
    let Some(target) = manifest.component(&property.target.name) else {
        let name = format!(
            "{source_id} -({}:{})-> {}",
            property.namespace, property.package, property.target.name
        );
        return Err(ScalerStatus {
            id: crate::annotations::compute_id_sha256(&[LINK_SCALER_KIND, app, &name]),
            kind: LINK_SCALER_KIND.to_string(),
            info: StatusInfo::failed(format!(
                "link target `{}` is not a component of application `{app}`",
                property.target.name
            )),
            name,
        });
    };
    let link = Link {
        source_id,
        target: target.component_id(app),
        name: property.link_name().to_string(),
        wit_namespace: property.namespace.clone(),
        wit_package: property.package.clone(),
        interfaces: property.interfaces.clone(),
        source_config: property
            .source
            .as_ref()
            .map(|s| config_names(app, &s.config))
            .unwrap_or_default(),
        target_config: config_names(app, &property.target.config),
    };
    let scaler_id = link_scaler_id(&LinkIdParts {
        app,
        name: &link.name,
        source_id: &link.source_id,
        target: &link.target,
        wit_namespace: &link.wit_namespace,
        wit_package: &link.wit_package,
        interfaces: &link.interfaces,
        source_config: &link.source_config,
        target_config: &link.target_config,
    });
    let name = format!(
        "{} -({}:{})-> {}",
        link.source_id, link.wit_namespace, link.wit_package, link.target
    );
    Ok(DesiredLink {
        link,
        scaler_id,
        name,
    })
}

/// The `link.del` command that removes `link`.
pub(crate) fn delete(link: &Link, app: &str) -> Command {
    Command::DeleteLink(DeleteLink {
        source_id: link.source_id.clone(),
        wit_namespace: link.wit_namespace.clone(),
        wit_package: link.wit_package.clone(),
        link_name: link.name.clone(),
        model_name: app.to_string(),
    })
}

/// Commands and status of one link scaler. `previous` are the links earlier versions
/// of the application put: a conflicting one of those is deleted to make room.
pub(crate) fn reconcile_link(
    app: &str,
    desired: &DesiredLink,
    previous: &[Link],
    configs: &BTreeMap<String, Option<BTreeMap<String, String>>>,
    ctx: &Ctx<'_>,
) -> (Vec<Command>, ScalerStatus) {
    let status = |info| ScalerStatus {
        id: desired.scaler_id.clone(),
        kind: LINK_SCALER_KIND.to_string(),
        name: desired.name.clone(),
        info,
    };
    let link = &desired.link;
    let observed = ctx.links_from(&link.source_id);
    if observed.contains(&link) {
        return (Vec::new(), status(StatusInfo::deployed()));
    }
    let needed: Vec<String> = link
        .source_config
        .iter()
        .chain(link.target_config.iter())
        .cloned()
        .collect();
    let waiting: Vec<Readiness> = unready(&needed, configs, ctx.observed);
    if !waiting.is_empty() {
        let (message, missing) = describe_unready(&waiting);
        let info = if missing {
            StatusInfo::failed(message)
        } else {
            StatusInfo::reconciling(message)
        };
        return (Vec::new(), status(info));
    }
    let conflict = observed
        .iter()
        .find(|l| l.conflicts_with(link) && !l.same_key(link));
    if let Some(existing) = conflict {
        if previous.iter().any(|p| p.same_key(existing)) {
            let info = StatusInfo::reconciling(format!(
                "Removing link {existing} left by a previous version"
            ));
            return (vec![delete(existing, app)], status(info));
        }
        let info = StatusInfo::failed(format!(
            "link {link} conflicts with existing link {existing}, which this application did not put"
        ));
        return (Vec::new(), status(info));
    }
    let failure = if ctx.observed.failures.is_empty() {
        None
    } else {
        ctx.observed
            .failures
            .get(&link_failure_key(link))
            .filter(|f| f.reference == link.target)
    };
    let put = Command::PutLink(PutLink {
        link: link.clone(),
        model_name: app.to_string(),
    });
    match failure {
        Some(f) => {
            let retry = !ctx.backing_off(Some(f), &link.target);
            let info = StatusInfo::failed(format!("Failed to put link {link}: {}", f.error));
            (if retry { vec![put] } else { Vec::new() }, status(info))
        }
        None => {
            let info = StatusInfo::reconciling(format!(
                "Putting link definition between {} and {}",
                link.source_id, link.target
            ));
            (vec![put], status(info))
        }
    }
}
