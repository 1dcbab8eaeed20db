//! How an HTTP server picks the component for a request: the rules of
//! wasmCloud's http-server provider (PROTOCOL.md §4.4), shared by the host's
//! `builtin://http-server` and the `http-server-provider` process.
//!
//! Provider config: `routing_mode` = `address` (default) | `path` | `host`,
//! `default_address` (default [`DEFAULT_ADDRESS`]), `header` (host mode,
//! default `host`), `max_request_body_bytes` (no limit by default; see
//! [`crate::limit`]). Link source config: `address` (address mode), `path`
//! (path mode, default `/`), `host` (host mode, required).

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Listener address when neither the link nor the provider config names one
/// (wasmCloud's default).
pub const DEFAULT_ADDRESS: &str = "0.0.0.0:8000";

/// How a listener picks the component for a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RoutingMode {
    /// One component per listener address.
    #[default]
    Address,
    /// By request path, on the provider's default address.
    Path,
    /// By a header (default `host`), on the provider's default address.
    Host {
        /// Header to read (lower case).
        header: String,
    },
}

/// Routes of one listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerRoutes {
    /// Routing mode.
    pub mode: RoutingMode,
    /// Address mode: the target component.
    pub target: Option<String>,
    /// Path mode: path prefix → component.
    pub paths: BTreeMap<String, String>,
    /// Host mode: header value → component.
    pub hosts: BTreeMap<String, String>,
    /// Largest request body accepted, in bytes (`None`: no limit).
    pub max_request_body: Option<u64>,
}

impl ListenerRoutes {
    /// The component a request goes to.
    pub fn route(&self, path: &str, headers: &http::HeaderMap) -> Option<&str> {
        match &self.mode {
            RoutingMode::Address => self.target.as_deref(),
            RoutingMode::Path => self
                .paths
                .iter()
                .filter(|(prefix, _)| path_matches(prefix, path))
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(_, t)| t.as_str()),
            RoutingMode::Host { header } => {
                let value = headers.get(header.as_str())?.to_str().ok()?;
                let value = value.split(':').next().unwrap_or(value);
                self.hosts.get(value).map(String::as_str)
            }
        }
    }
}

fn path_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// An HTTP server's provider-level settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Routing mode (`routing_mode`, `header`).
    pub mode: RoutingMode,
    /// `default_address`: where path and host modes listen, and address
    /// mode when a link names no `address`.
    pub default_address: String,
    /// `max_request_body_bytes`: largest request body accepted.
    pub max_request_body: Option<u64>,
}

impl ServerSettings {
    /// Reads the settings from the provider config (`get` looks a key up).
    pub fn from_config<'a>(get: impl Fn(&str) -> Option<&'a String>) -> Self {
        let mode = match get("routing_mode").map(String::as_str) {
            Some("path") => RoutingMode::Path,
            Some("host") => RoutingMode::Host {
                header: get("header")
                    .map_or_else(|| "host".to_string(), |h| h.to_ascii_lowercase()),
            },
            _ => RoutingMode::Address,
        };
        let default_address = get("default_address")
            .cloned()
            .unwrap_or_else(|| DEFAULT_ADDRESS.into());
        let max_request_body = get(crate::limit::MAX_REQUEST_BODY_KEY).and_then(|text| {
            let parsed = text.trim().parse::<u64>().ok();
            if parsed.is_none() {
                tracing::error!(
                    key = crate::limit::MAX_REQUEST_BODY_KEY,
                    value = %text,
                    "not a number of bytes: the HTTP server runs without a request body limit; set e.g. 1048576"
                );
            }
            parsed
        });
        Self {
            mode,
            default_address,
            max_request_body,
        }
    }
}

/// A link whose route cannot be added; the link is skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The listen address does not parse.
    #[error(
        "invalid HTTP listen address `{address}` for component `{target}`: use `IP:PORT`, e.g. 127.0.0.1:8080"
    )]
    InvalidAddress {
        /// The linked component.
        target: String,
        /// The address as configured.
        address: String,
    },
    /// Host routing without a `host` key in the link's source config.
    #[error(
        "host routing needs a `host` key in the source config of the link to component `{target}`"
    )]
    MissingHost {
        /// The linked component.
        target: String,
    },
    /// Address mode: another component already has this address.
    #[error(
        "HTTP address {addr} is already linked to component `{existing}`; the link to `{target}` is ignored: give it another `address`"
    )]
    AddressTaken {
        /// The address.
        addr: SocketAddr,
        /// The component that keeps it.
        existing: String,
        /// The component refused.
        target: String,
    },
}

/// Adds the route of one `wasi:http/incoming-handler` link to `target`, with
/// the link's source config looked up by `get`.
pub fn add_route<'a>(
    routes: &mut BTreeMap<SocketAddr, ListenerRoutes>,
    settings: &ServerSettings,
    target: &str,
    get: impl Fn(&str) -> Option<&'a String>,
) -> Result<(), RouteError> {
    let address = match settings.mode {
        RoutingMode::Address => get("address").unwrap_or(&settings.default_address),
        _ => &settings.default_address,
    };
    let addr = parse_address(address).map_err(|_| RouteError::InvalidAddress {
        target: target.to_string(),
        address: address.clone(),
    })?;
    let host = match &settings.mode {
        RoutingMode::Host { .. } => Some(get("host").ok_or_else(|| RouteError::MissingHost {
            target: target.to_string(),
        })?),
        _ => None,
    };
    let listener = routes.entry(addr).or_insert_with(|| ListenerRoutes {
        mode: settings.mode.clone(),
        max_request_body: settings.max_request_body,
        ..Default::default()
    });
    match &settings.mode {
        RoutingMode::Address => match &listener.target {
            Some(existing) if existing != target => {
                return Err(RouteError::AddressTaken {
                    addr,
                    existing: existing.clone(),
                    target: target.to_string(),
                });
            }
            _ => listener.target = Some(target.to_string()),
        },
        RoutingMode::Path => {
            let path = get("path").cloned().unwrap_or_else(|| "/".into());
            listener.paths.insert(path, target.to_string());
        }
        RoutingMode::Host { .. } => {
            if let Some(host) = host {
                listener.hosts.insert(host.clone(), target.to_string());
            }
        }
    }
    Ok(())
}

/// `IP:PORT`, or a bare IP (port 80).
pub fn parse_address(address: &str) -> Result<SocketAddr, std::net::AddrParseError> {
    address.parse().or_else(|_| format!("{address}:80").parse())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn path_routing_prefers_the_longest_prefix_on_segment_boundaries() {
        let routes = ListenerRoutes {
            mode: RoutingMode::Path,
            paths: BTreeMap::from([
                ("/".to_string(), "root".to_string()),
                ("/api".to_string(), "api".to_string()),
                ("/api/v2".to_string(), "v2".to_string()),
            ]),
            ..Default::default()
        };
        let h = http::HeaderMap::new();
        assert_eq!(routes.route("/api/v2/x", &h), Some("v2"));
        assert_eq!(routes.route("/api", &h), Some("api"));
        assert_eq!(routes.route("/apix", &h), Some("root"));
        assert_eq!(routes.route("/other", &h), Some("root"));
    }

    #[test]
    fn host_routing_ignores_the_port() {
        let routes = ListenerRoutes {
            mode: RoutingMode::Host {
                header: "host".into(),
            },
            hosts: BTreeMap::from([("a.example".to_string(), "a".to_string())]),
            ..Default::default()
        };
        let mut h = http::HeaderMap::new();
        h.insert("host", http::HeaderValue::from_static("a.example:8080"));
        assert_eq!(routes.route("/", &h), Some("a"));
        h.insert("host", http::HeaderValue::from_static("b.example"));
        assert_eq!(routes.route("/", &h), None);
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_and_links_make_listeners() {
        let provider = map(&[
            ("routing_mode", "path"),
            ("default_address", "127.0.0.1:9000"),
        ]);
        let settings = ServerSettings::from_config(|k| provider.get(k));
        assert_eq!(settings.mode, RoutingMode::Path);
        let mut routes = BTreeMap::new();
        let a = map(&[("path", "/a")]);
        add_route(&mut routes, &settings, "ca", |k| a.get(k)).unwrap();
        add_route(&mut routes, &settings, "root", |_| None).unwrap();
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let l = &routes[&addr];
        assert_eq!(l.route("/a/x", &http::HeaderMap::new()), Some("ca"));
        assert_eq!(l.route("/b", &http::HeaderMap::new()), Some("root"));
    }

    #[test]
    fn address_mode_refuses_a_second_component_and_bad_addresses() {
        let settings = ServerSettings::from_config(|_| None);
        assert_eq!(settings.default_address, DEFAULT_ADDRESS);
        let mut routes = BTreeMap::new();
        let cfg = map(&[("address", "127.0.0.1:9001")]);
        add_route(&mut routes, &settings, "one", |k| cfg.get(k)).unwrap();
        add_route(&mut routes, &settings, "one", |k| cfg.get(k)).unwrap();
        let err = add_route(&mut routes, &settings, "two", |k| cfg.get(k)).unwrap_err();
        assert!(matches!(err, RouteError::AddressTaken { .. }), "{err}");
        let bad = map(&[("address", "nowhere")]);
        let err = add_route(&mut routes, &settings, "three", |k| bad.get(k)).unwrap_err();
        assert!(err.to_string().contains("`nowhere`"), "{err}");
    }

    #[test]
    fn host_mode_needs_a_host_key() {
        let provider = map(&[("routing_mode", "host"), ("header", "X-Tenant")]);
        let settings = ServerSettings::from_config(|k| provider.get(k));
        assert_eq!(
            settings.mode,
            RoutingMode::Host {
                header: "x-tenant".into()
            }
        );
        let mut routes = BTreeMap::new();
        let err = add_route(&mut routes, &settings, "c", |_| None).unwrap_err();
        assert!(matches!(err, RouteError::MissingHost { .. }));
    }
}
