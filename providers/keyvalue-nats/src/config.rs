//! Link and provider config: the keys of wasmCloud's keyvalue-nats provider.
//!
//! The provider's own config (from `wash start provider … --config`) gives
//! defaults; a link's target config overrides them key by key. `bucket` must
//! end up set on one of the two.

use std::collections::HashMap;

/// JetStream KV bucket the link's calls go to (required).
pub const BUCKET: &str = "bucket";
/// NATS server(s) holding the bucket; default: the lattice's own NATS.
pub const CLUSTER_URI: &str = "cluster_uri";
/// JetStream domain of the bucket (leaf nodes, hubs).
pub const JS_DOMAIN: &str = "js_domain";
/// User JWT for `cluster_uri` (with `client_seed`).
pub const CLIENT_JWT: &str = "client_jwt";
/// User nkey seed signing the server's nonce (with `client_jwt`).
pub const CLIENT_SEED: &str = "client_seed";
/// `true`: create the bucket when it does not exist.
pub const ENABLE_BUCKET_AUTO_CREATE: &str = "enable_bucket_auto_create";
/// Trellis extension: keys per `list-keys` page.
pub const LIST_KEYS_PAGE_SIZE: &str = "list_keys_page_size";

/// Keys per `list-keys` page when [`LIST_KEYS_PAGE_SIZE`] is not set: a page
/// of 1,000 typical keys stays well under NATS's 1 MiB default payload.
pub const DEFAULT_LIST_KEYS_PAGE_SIZE: usize = 1000;

/// What is wrong with a link's config; the message is returned to the
/// component that calls over the link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Neither the link's target config nor the provider's config names a bucket.
    #[error(
        "no `bucket` in the link's target config nor in the provider's config: \
         put the JetStream KV bucket name in the link's target config (bucket=NAME)"
    )]
    MissingBucket,
    /// The bucket name breaks JetStream's rule.
    #[error("`{0}` is not a valid JetStream KV bucket name (letters, digits, `-` and `_` only)")]
    InvalidBucket(String),
    /// Only one of `client_jwt` / `client_seed` is set.
    #[error("`client_jwt` and `client_seed` must be set together")]
    PartialCredentials,
    /// A value that should be a number or a boolean is not.
    #[error("`{key}` = `{value}` is not valid: {reason}")]
    InvalidValue {
        /// The config key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
}

/// Where and how one link's bucket is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketConfig {
    /// JetStream KV bucket name.
    pub bucket: String,
    /// NATS URL(s), comma separated; `None`: the lattice connection.
    pub cluster_uri: Option<String>,
    /// JetStream domain.
    pub js_domain: Option<String>,
    /// `(jwt, seed)` for `cluster_uri`.
    pub credentials: Option<(String, String)>,
    /// Create the bucket when missing.
    pub auto_create: bool,
    /// Keys per `list-keys` page.
    pub page_size: usize,
}

impl BucketConfig {
    /// The config of a link: `link` (its target config) over `defaults`
    /// (the provider's config). Empty values count as unset.
    pub fn resolve(
        defaults: &HashMap<String, String>,
        link: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            link.get(key)
                .or_else(|| defaults.get(key))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let bucket = get(BUCKET).ok_or(ConfigError::MissingBucket)?;
        if !is_valid_bucket_name(&bucket) {
            return Err(ConfigError::InvalidBucket(bucket));
        }
        let credentials = match (get(CLIENT_JWT), get(CLIENT_SEED)) {
            (Some(jwt), Some(seed)) => Some((jwt, seed)),
            (None, None) => None,
            _ => return Err(ConfigError::PartialCredentials),
        };
        let auto_create = match get(ENABLE_BUCKET_AUTO_CREATE) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(value) => {
                return Err(ConfigError::InvalidValue {
                    key: ENABLE_BUCKET_AUTO_CREATE,
                    value,
                    reason: "expected true or false",
                });
            }
        };
        let page_size = match get(LIST_KEYS_PAGE_SIZE) {
            None => DEFAULT_LIST_KEYS_PAGE_SIZE,
            Some(value) => match value.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ConfigError::InvalidValue {
                        key: LIST_KEYS_PAGE_SIZE,
                        value,
                        reason: "expected a positive integer",
                    });
                }
            },
        };
        Ok(Self {
            bucket,
            cluster_uri: get(CLUSTER_URI),
            js_domain: get(JS_DOMAIN),
            credentials,
            auto_create,
            page_size,
        })
    }

    /// Whether the bucket is reached over the lattice's NATS connection
    /// rather than a connection of its own.
    pub fn uses_lattice_connection(&self) -> bool {
        self.cluster_uri.is_none() && self.credentials.is_none()
    }
}

/// JetStream's rule for bucket names (async-nats keeps its check private).
fn is_valid_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn link_overrides_provider_defaults() {
        let defaults = map(&[("bucket", "shared"), ("js_domain", "hub")]);
        let link = map(&[("bucket", "mine"), ("enable_bucket_auto_create", "TRUE")]);
        let config = BucketConfig::resolve(&defaults, &link).unwrap();
        assert_eq!(config.bucket, "mine");
        assert_eq!(config.js_domain.as_deref(), Some("hub"));
        assert!(config.auto_create);
        assert!(config.uses_lattice_connection());
        assert_eq!(config.page_size, DEFAULT_LIST_KEYS_PAGE_SIZE);
    }

    #[test]
    fn bucket_is_required() {
        let error = BucketConfig::resolve(&map(&[]), &map(&[("bucket", " ")])).unwrap_err();
        assert_eq!(error, ConfigError::MissingBucket);
        assert!(error.to_string().contains("bucket=NAME"));
    }

    #[test]
    fn bad_values_are_refused() {
        let bad = |pairs: &[(&str, &str)]| BucketConfig::resolve(&map(&[]), &map(pairs));
        assert!(matches!(
            bad(&[("bucket", "a.b")]),
            Err(ConfigError::InvalidBucket(_))
        ));
        assert_eq!(
            bad(&[("bucket", "b"), ("client_jwt", "x")]),
            Err(ConfigError::PartialCredentials)
        );
        assert!(matches!(
            bad(&[("bucket", "b"), ("list_keys_page_size", "0")]),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            bad(&[("bucket", "b"), ("enable_bucket_auto_create", "yes")]),
            Err(ConfigError::InvalidValue { .. })
        ));
    }

    #[test]
    fn own_connection_when_uri_or_credentials() {
        let config = BucketConfig::resolve(
            &map(&[]),
            &map(&[("bucket", "b"), ("cluster_uri", "nats://10.0.0.1:4222")]),
        )
        .unwrap();
        assert!(!config.uses_lattice_connection());
    }
}
