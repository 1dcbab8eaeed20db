//! Link secrets: hosts seal each side's secrets (a JSON map of
//! [`SecretValue`]) with the provider's xkey, from the host's xkey
//! (PROTOCOL.md §3.3, §4.1). Only the provider can open them.

use std::collections::HashMap;

use nkeys::XKey;
use trellis_interfaces::provider::{HostData, InterfaceLinkDefinition, SecretValue};

use crate::links::LinkRecord;

/// Why sealed link secrets could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SecretsError {
    /// Host data carries no usable xkey pair.
    #[error(
        "link secrets arrived but host data has no valid xkey pair ({0}); \
         the host must pass provider_xkey_private_key and host_xkey_public_key"
    )]
    NoKeys(String),
    /// The sealed bytes did not open with our key.
    #[error("link secrets could not be decrypted ({0}); they were sealed for another provider key")]
    Open(String),
    /// The plaintext is not a JSON map of secrets.
    #[error("decrypted link secrets are not a JSON map of secret values: {0}")]
    Json(#[from] serde_json::Error),
}

/// The provider's xkey seed and the host's public xkey, as host data gives
/// them.
pub(crate) struct SecretKeys {
    provider: Result<XKey, String>,
    host: Result<XKey, String>,
}

impl SecretKeys {
    /// Keys from host data; invalid or missing keys only fail when a sealed
    /// secret arrives.
    pub fn from_host_data(host_data: &HostData) -> Self {
        let provider = XKey::from_seed(&host_data.provider_xkey_private_key)
            .map_err(|e| format!("provider_xkey_private_key: {e}"));
        let host = XKey::from_public_key(&host_data.host_xkey_public_key)
            .map_err(|e| format!("host_xkey_public_key: {e}"));
        Self { provider, host }
    }

    /// The provider's public xkey: the subject token of `linkdefs.put` for
    /// links with secrets.
    pub fn provider_public_key(&self) -> Option<String> {
        self.provider.as_ref().ok().map(XKey::public_key)
    }

    /// Opens one side's sealed secrets.
    pub fn open(&self, sealed: &[u8]) -> Result<HashMap<String, SecretValue>, SecretsError> {
        let provider = self
            .provider
            .as_ref()
            .map_err(|e| SecretsError::NoKeys(e.clone()))?;
        let host = self
            .host
            .as_ref()
            .map_err(|e| SecretsError::NoKeys(e.clone()))?;
        let plain = provider
            .open(sealed, host)
            .map_err(|e| SecretsError::Open(e.to_string()))?;
        Ok(serde_json::from_slice(&plain)?)
    }

    /// Turns a definition into a record with both sides' secrets opened. A
    /// side that fails to open is logged and left empty: the link still works
    /// for everything that does not need the secret, and the log says why the
    /// secret is missing.
    pub fn record(&self, mut def: InterfaceLinkDefinition) -> LinkRecord {
        let had_secrets = def.source_secrets.is_some() || def.target_secrets.is_some();
        let open_side = |sealed: Option<Vec<u8>>, side: &str| match sealed {
            None => HashMap::new(),
            Some(bytes) if bytes.is_empty() => HashMap::new(),
            Some(bytes) => self.open(&bytes).unwrap_or_else(|error| {
                tracing::error!(
                    source_id = %def.source_id,
                    target = %def.target,
                    link_name = %def.name,
                    side,
                    %error,
                    "link secrets dropped"
                );
                HashMap::new()
            }),
        };
        let source_secrets = open_side(def.source_secrets.take(), "source");
        let target_secrets = open_side(def.target_secrets.take(), "target");
        LinkRecord {
            def,
            source_secrets,
            target_secrets,
            had_secrets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_the_provider_key() {
        let host = XKey::new();
        let provider = XKey::new();
        let host_data = HostData {
            host_xkey_public_key: host.public_key(),
            provider_xkey_private_key: provider.seed().unwrap(),
            ..Default::default()
        };
        let keys = SecretKeys::from_host_data(&host_data);
        assert_eq!(keys.provider_public_key(), Some(provider.public_key()));
        let secrets =
            HashMap::from([("pw".to_string(), SecretValue::String("hunter2".to_string()))]);
        let sealed = host
            .seal(&serde_json::to_vec(&secrets).unwrap(), &provider)
            .unwrap();
        let record = keys.record(InterfaceLinkDefinition {
            source_id: "c".into(),
            target: "p".into(),
            target_secrets: Some(sealed),
            ..Default::default()
        });
        assert!(record.had_secrets);
        assert_eq!(record.target_secrets, secrets);
        assert!(record.source_secrets.is_empty());
        assert_eq!(record.def.target_secrets, None);
    }

    #[test]
    fn secrets_for_another_key_are_dropped_not_fatal() {
        let host = XKey::new();
        let other = XKey::new();
        let host_data = HostData {
            host_xkey_public_key: host.public_key(),
            provider_xkey_private_key: XKey::new().seed().unwrap(),
            ..Default::default()
        };
        let keys = SecretKeys::from_host_data(&host_data);
        let sealed = host.seal(b"{}", &other).unwrap();
        let err = keys.open(&sealed).unwrap_err();
        assert!(
            err.to_string().contains("sealed for another provider key"),
            "{err}"
        );
        let record = keys.record(InterfaceLinkDefinition {
            source_secrets: Some(sealed),
            ..Default::default()
        });
        assert!(record.source_secrets.is_empty());
    }

    #[test]
    fn missing_keys_explain_what_the_host_must_send() {
        let keys = SecretKeys::from_host_data(&HostData::default());
        assert_eq!(keys.provider_public_key(), None);
        let err = keys.open(b"x").unwrap_err();
        assert!(
            err.to_string().contains("provider_xkey_private_key"),
            "{err}"
        );
    }
}
