//! Link and provider config: the keys of wasmCloud's keyvalue-redis provider.
//!
//! The provider's own config gives defaults; a link's target config
//! overrides them key by key. Keys match case-insensitively (`URL` and `url`).

use std::collections::HashMap;
use std::time::Duration;

/// Redis URL, e.g. `redis://127.0.0.1:6379/0` (database in the path).
pub const URL: &str = "URL";
/// Reconnection attempts after a lost connection.
pub const RECONNECT_NUM_RETRIES: &str = "BACKEND_RECONNECT_NUM_RETRIES";
/// Connect timeout, milliseconds.
pub const CONNECTION_TIMEOUT_MS: &str = "BACKEND_CONNECTION_TIMEOUT_MS";
/// Response timeout, milliseconds.
pub const RESPONSE_TIMEOUT_MS: &str = "BACKEND_RESPONSE_TIMEOUT_MS";
/// Trellis extension: the `COUNT` hint of each `SCAN` behind `list-keys`.
pub const LIST_KEYS_PAGE_SIZE: &str = "list_keys_page_size";

/// The URL when none is configured (wasmCloud's default).
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// Reconnection attempts when not configured: with the exponential backoff
/// this rides out a Redis restart of several seconds.
pub const DEFAULT_RECONNECT_NUM_RETRIES: usize = 6;
/// Connect timeout when not configured: a reachable Redis answers in
/// milliseconds; a few seconds covers a loaded network without letting a
/// call hang past the caller's own 10 s wRPC budget.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);
/// Response timeout when not configured, under the caller's 10 s budget so
/// the component gets Redis's error rather than a transport timeout.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// `SCAN COUNT` when not configured.
pub const DEFAULT_LIST_KEYS_PAGE_SIZE: usize = 1000;

/// What is wrong with a link's config; the message is returned to the
/// component that calls over the link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL does not parse as a Redis URL.
    #[error("`URL` = `{url}` is not a Redis URL ({reason}); expected redis://HOST:PORT[/DB]")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A number is not one.
    #[error("`{key}` = `{value}` is not a positive integer")]
    InvalidNumber {
        /// The config key.
        key: &'static str,
        /// The value given.
        value: String,
    },
}

/// How one link reaches Redis. Links with equal configs share a connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RedisConfig {
    /// Redis URL.
    pub url: String,
    /// Reconnection attempts.
    pub reconnect_retries: usize,
    /// Connect timeout.
    pub connection_timeout: Duration,
    /// Response timeout.
    pub response_timeout: Duration,
    /// `SCAN COUNT` hint.
    pub page_size: usize,
}

impl RedisConfig {
    /// The config of a link: `link` (its target config) over `defaults`
    /// (the provider's config). Empty values count as unset.
    pub fn resolve(
        defaults: &HashMap<String, String>,
        link: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let get = |key: &str| lookup(link, key).or_else(|| lookup(defaults, key));
        let url = get(URL).unwrap_or_else(|| DEFAULT_URL.to_string());
        if let Err(e) = redis::Client::open(url.as_str()) {
            return Err(ConfigError::InvalidUrl {
                url,
                reason: e.to_string(),
            });
        }
        let number = |key: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(value) => value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(ConfigError::InvalidNumber { key, value }),
            }
        };
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Ok(Self {
            url,
            reconnect_retries: usize::try_from(number(
                RECONNECT_NUM_RETRIES,
                DEFAULT_RECONNECT_NUM_RETRIES as u64,
            )?)
            .unwrap_or(usize::MAX),
            connection_timeout: Duration::from_millis(number(
                CONNECTION_TIMEOUT_MS,
                millis(DEFAULT_CONNECTION_TIMEOUT),
            )?),
            response_timeout: Duration::from_millis(number(
                RESPONSE_TIMEOUT_MS,
                millis(DEFAULT_RESPONSE_TIMEOUT),
            )?),
            page_size: usize::try_from(number(
                LIST_KEYS_PAGE_SIZE,
                DEFAULT_LIST_KEYS_PAGE_SIZE as u64,
            )?)
            .unwrap_or(usize::MAX),
        })
    }

    /// The URL without its password, for logs and error messages.
    pub fn redacted_url(&self) -> String {
        match self.url.split_once('@') {
            Some((scheme_and_user, host)) => match scheme_and_user.split_once("://") {
                Some((scheme, _)) => format!("{scheme}://***@{host}"),
                None => format!("***@{host}"),
            },
            None => self.url.clone(),
        }
    }
}

/// `key` in `map`, matched case-insensitively, non-empty.
fn lookup(map: &HashMap<String, String>, key: &str) -> Option<String> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
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
    fn defaults_and_overrides() {
        let none = RedisConfig::resolve(&map(&[]), &map(&[])).unwrap();
        assert_eq!(none.url, DEFAULT_URL);
        assert_eq!(none.page_size, DEFAULT_LIST_KEYS_PAGE_SIZE);
        let config = RedisConfig::resolve(
            &map(&[
                ("URL", "redis://10.0.0.1:6379"),
                ("BACKEND_RESPONSE_TIMEOUT_MS", "200"),
            ]),
            &map(&[("url", "redis://10.0.0.2:6380/3")]),
        )
        .unwrap();
        assert_eq!(config.url, "redis://10.0.0.2:6380/3");
        assert_eq!(config.response_timeout, Duration::from_millis(200));
    }

    #[test]
    fn bad_values_are_refused() {
        let bad = |pairs: &[(&str, &str)]| RedisConfig::resolve(&map(&[]), &map(pairs));
        assert!(matches!(
            bad(&[("URL", "not a url")]),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            bad(&[("BACKEND_CONNECTION_TIMEOUT_MS", "soon")]),
            Err(ConfigError::InvalidNumber { .. })
        ));
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        let config =
            RedisConfig::resolve(&map(&[]), &map(&[("URL", "redis://:s3cret@db:6379")])).unwrap();
        assert_eq!(config.redacted_url(), "redis://***@db:6379");
    }
}
