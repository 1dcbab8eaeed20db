//! Admission control: what an artifact must show before this host runs it.
//!
//! Claims embedded in a component are verified whenever they are present —
//! signature by an account key, module hash, `nbf` and `exp` — whatever the
//! flags, as wasmCloud 1.x does. On top of that, `--require-signed` refuses
//! unsigned components and `--allowed-issuers` restricts which accounts may
//! sign. The refusal text goes verbatim into `component_scale_failed`, so it
//! names the component and the failed check.

use std::sync::Arc;
use std::time::SystemTime;

use trellis_interfaces::claims::{
    self, Claims, ClaimsError, Component, StoredClaims, StoredComponentClaims,
};
use trellis_interfaces::subject;

use crate::config::HostConfig;
use crate::host::HostInner;

/// Why a component was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// Claims are present but do not verify (hash, signature, dates, format).
    #[error("component `{component_id}` refused: {source}")]
    InvalidClaims {
        /// The component id being started.
        component_id: String,
        /// The failed check.
        source: ClaimsError,
    },
    /// No claims, and the host requires them.
    #[error(
        "component `{component_id}` is unsigned and this host requires signed components (--require-signed)"
    )]
    Unsigned {
        /// The component id being started.
        component_id: String,
    },
    /// Valid claims from an issuer outside the allow-list.
    #[error("component `{component_id}` refused: issuer {issuer} is not in --allowed-issuers")]
    IssuerNotAllowed {
        /// The component id being started.
        component_id: String,
        /// The claims' issuer.
        issuer: String,
    },
}

/// Why an `--allowed-issuers` entry is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerKeyError {
    /// Not an nkey public key.
    #[error("`{key}` is not an nkey public key: {reason}")]
    Invalid {
        /// The entry.
        key: String,
        /// What nkeys said.
        reason: String,
    },
    /// A valid key of another kind (a seed, a server key, …).
    #[error("`{key}` is not an account public key (A…); claims are issued by accounts")]
    NotAccount {
        /// The entry.
        key: String,
    },
}

/// Checks that `key` can appear in `--allowed-issuers`: an account public key.
pub fn check_issuer_key(key: &str) -> Result<(), IssuerKeyError> {
    let pair = nkeys::KeyPair::from_public_key(key).map_err(|e| IssuerKeyError::Invalid {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    if pair.key_pair_type() != nkeys::KeyPairType::Account {
        return Err(IssuerKeyError::NotAccount {
            key: key.to_string(),
        });
    }
    Ok(())
}

/// The admission rules of one host, detached from its config so they can move
/// to a blocking task with the artifact bytes.
#[derive(Debug, Clone, Default)]
pub struct AdmissionPolicy {
    require_signed: bool,
    allowed_issuers: Arc<[String]>,
}

impl AdmissionPolicy {
    /// The rules `config` asks for.
    pub fn from_config(config: &HostConfig) -> Self {
        Self {
            require_signed: config.require_signed,
            allowed_issuers: config.allowed_issuers.clone().into(),
        }
    }

    /// Decides whether component `component_id`, whose artifact is `wasm`, may
    /// start at `now`. Returns its verified claims, or `None` when unsigned
    /// and allowed to run so.
    pub fn admit_component(
        &self,
        component_id: &str,
        wasm: &[u8],
        now: SystemTime,
    ) -> Result<Option<Claims<Component>>, AdmissionError> {
        let verified = claims::verify_component(wasm, now).map_err(|source| {
            AdmissionError::InvalidClaims {
                component_id: component_id.to_string(),
                source,
            }
        })?;
        let Some(claims) = verified else {
            if self.require_signed {
                return Err(AdmissionError::Unsigned {
                    component_id: component_id.to_string(),
                });
            }
            return Ok(None);
        };
        if !self.allowed_issuers.is_empty() && !self.allowed_issuers.contains(&claims.issuer) {
            return Err(AdmissionError::IssuerNotAllowed {
                component_id: component_id.to_string(),
                issuer: claims.issuer,
            });
        }
        Ok(Some(claims))
    }
}

/// Writes `CLAIMS_{subject}` to the lattice bucket in wasmCloud 1.x's stored
/// shape, so every host's `claims.get` serves them. A failure is logged, not
/// fatal: the component is already admitted and running.
pub(crate) async fn record_claims(host: &HostInner, claims: &Claims<Component>) {
    let stored = StoredClaims::Component(StoredComponentClaims::from(claims));
    let key = subject::claims_key(&claims.subject);
    let bytes = match serde_json::to_vec(&stored) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%key, %error, "cannot encode claims");
            return;
        }
    };
    if let Err(error) = host.data.lattice.put(key.as_str(), bytes.into()).await {
        tracing::warn!(%key, %error, "cannot store claims in the lattice bucket");
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use nkeys::KeyPair;

    use super::*;

    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    fn signed(account: &KeyPair, expires: Option<u64>) -> Vec<u8> {
        let mut c = Claims::new(
            String::new(),
            KeyPair::new_module().public_key(),
            0,
            Component::default(),
        );
        c.expires = expires;
        claims::embed_component_claims(EMPTY_COMPONENT, &c, account).unwrap()
    }

    fn policy(require_signed: bool, allowed: &[String]) -> AdmissionPolicy {
        AdmissionPolicy {
            require_signed,
            allowed_issuers: allowed.to_vec().into(),
        }
    }

    #[test]
    fn unsigned_runs_unless_signatures_are_required() {
        let now = SystemTime::now();
        assert_eq!(
            policy(false, &[]).admit_component("c", EMPTY_COMPONENT, now),
            Ok(None)
        );
        let err = policy(true, &[])
            .admit_component("c", EMPTY_COMPONENT, now)
            .unwrap_err();
        assert!(err.to_string().contains("--require-signed"), "{err}");
    }

    #[test]
    fn allow_list_and_claims_checks_apply() {
        let trusted = KeyPair::new_account();
        let other = KeyPair::new_account();
        let allow = [trusted.public_key()];
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let p = policy(true, &allow);
        assert!(
            p.admit_component("c", &signed(&trusted, None), now)
                .unwrap()
                .is_some()
        );
        let err = p
            .admit_component("c", &signed(&other, None), now)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "component `c` refused: issuer {} is not in --allowed-issuers",
                other.public_key()
            )
        );
        let err = p
            .admit_component("c", &signed(&trusted, Some(10)), now)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("component `c` refused: claims expired at"),
            "{err}"
        );
    }

    #[test]
    fn only_account_keys_may_be_allowed() {
        assert!(check_issuer_key(&KeyPair::new_account().public_key()).is_ok());
        let server = KeyPair::new_server().public_key();
        assert!(matches!(
            check_issuer_key(&server),
            Err(IssuerKeyError::NotAccount { .. })
        ));
        assert!(check_issuer_key("ACOJ").is_err());
    }
}
