//! Named config: `config.put|get|del.{name}`, stored raw in `CONFIGDATA_{lattice}`.

use std::collections::HashMap;

use trellis_interfaces::event::{ConfigEvent, LatticeEvent};
use trellis_interfaces::subject::validate_config_name;

use super::{CtlError, Reply, parse};
use crate::host::HostInner;

pub(super) async fn put(host: &HostInner, name: &str, payload: &[u8]) -> Result<Reply, CtlError> {
    validate_config_name(name).map_err(|e| CtlError::Rejected(e.to_string()))?;
    let values: HashMap<String, String> = parse("config put (a JSON object of strings)", payload)?;
    let bytes = serde_json::to_vec(&values).map_err(|e| CtlError::Store(e.to_string()))?;
    host.data
        .config
        .put(name, bytes.into())
        .await
        .map_err(|e| CtlError::Store(format!("cannot store config `{name}`: {e}")))?;
    host.events
        .publish(LatticeEvent::ConfigSet(ConfigEvent {
            config_name: name.to_string(),
        }))
        .await;
    Ok(Reply::ok())
}

pub(super) async fn get(host: &HostInner, name: &str) -> Result<Reply, CtlError> {
    validate_config_name(name).map_err(|e| CtlError::Rejected(e.to_string()))?;
    let value = host
        .data
        .config
        .get(name)
        .await
        .map_err(|e| CtlError::Store(format!("cannot read config `{name}`: {e}")))?;
    match value {
        None => Ok(Reply::warning("Configuration not found".into())),
        Some(bytes) => {
            let values: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|e| {
                CtlError::Store(format!(
                    "config `{name}` is not a JSON object of strings: {e}"
                ))
            })?;
            Ok(Reply::with(&values))
        }
    }
}

pub(super) async fn delete(host: &HostInner, name: &str) -> Result<Reply, CtlError> {
    validate_config_name(name).map_err(|e| CtlError::Rejected(e.to_string()))?;
    host.data
        .config
        .purge(name)
        .await
        .map_err(|e| CtlError::Store(format!("cannot delete config `{name}`: {e}")))?;
    host.events
        .publish(LatticeEvent::ConfigDeleted(ConfigEvent {
            config_name: name.to_string(),
        }))
        .await;
    Ok(Reply::ok())
}
