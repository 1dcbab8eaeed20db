//! Capability provider wire types (PROTOCOL.md §4): the `HostData` a host writes
//! to a provider's stdin, the link definitions and health messages it exchanges
//! with the provider, and the `wasmbus.rpc.*` subjects they travel on.
//!
//! The serde shapes are wasmCloud 1.x's (`crates/core/src/{host,link,rpc}.rs`),
//! so a wasmCloud host can run a Trellis provider and the other way round.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// A secret value as delivered to providers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value")]
pub enum SecretValue {
    /// A UTF-8 secret.
    String(String),
    /// A binary secret.
    Bytes(Vec<u8>),
}

/// A link as a provider sees it: configs resolved to maps (PROTOCOL.md §3.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceLinkDefinition {
    /// Source id (component or provider that calls).
    pub source_id: String,
    /// Target id (component or provider that is called).
    pub target: String,
    /// Link name, `default` unless set.
    #[serde(default = "default_link_name")]
    pub name: String,
    /// WIT namespace, e.g. `wasi`.
    pub wit_namespace: String,
    /// WIT package, e.g. `keyvalue`.
    pub wit_package: String,
    /// Interfaces within the package.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Merged source config.
    #[serde(default)]
    pub source_config: HashMap<String, String>,
    /// Merged target config.
    #[serde(default)]
    pub target_config: HashMap<String, String>,
    /// xkey-sealed JSON map of source secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_secrets: Option<Vec<u8>>,
    /// xkey-sealed JSON map of target secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_secrets: Option<Vec<u8>>,
}

fn default_link_name() -> String {
    "default".to_string()
}

impl InterfaceLinkDefinition {
    /// The key the provider SDK tracks links by: `(source, target, ns:pkg, name)`.
    pub fn key(&self) -> (String, String, String, String) {
        (
            self.source_id.clone(),
            self.target.clone(),
            format!("{}:{}", self.wit_namespace, self.wit_package),
            self.name.clone(),
        )
    }
}

/// OpenTelemetry settings passed to providers (accepted and passed through).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OtelConfig {
    /// Master switch.
    pub enable_observability: bool,
    /// Traces override.
    pub enable_traces: Option<bool>,
    /// Metrics override.
    pub enable_metrics: Option<bool>,
    /// Logs override.
    pub enable_logs: Option<bool>,
    /// Shared endpoint.
    pub observability_endpoint: Option<String>,
    /// Traces endpoint.
    pub traces_endpoint: Option<String>,
    /// Metrics endpoint.
    pub metrics_endpoint: Option<String>,
    /// Logs endpoint.
    pub logs_endpoint: Option<String>,
    /// `Http` or `Grpc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Extra CA files.
    pub additional_ca_paths: Vec<String>,
    /// Trace level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_level: Option<String>,
    /// Sampler.
    pub traces_sampler: Option<String>,
    /// Sampler argument.
    pub traces_sampler_arg: Option<String>,
    /// Batch queue size.
    pub max_batch_queue_size: Option<usize>,
    /// Concurrent exports.
    pub concurrent_exports: Option<usize>,
}

/// What a host writes to a provider's stdin: base64 (standard alphabet) of this
/// JSON, then `\r\n` (PROTOCOL.md §4.1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostData {
    /// Id of the host that started the provider.
    pub host_id: String,
    /// Lattice name.
    pub lattice_rpc_prefix: String,
    /// Link name (`default`).
    pub link_name: String,
    /// NATS user JWT, empty when none.
    pub lattice_rpc_user_jwt: String,
    /// NATS user seed, empty when none.
    pub lattice_rpc_user_seed: String,
    /// NATS URL.
    pub lattice_rpc_url: String,
    /// The provider's id.
    pub provider_key: String,
    /// Extra environment values.
    pub env_values: HashMap<String, String>,
    /// Unique id of this process instance.
    pub instance_id: String,
    /// Links that involve this provider at start.
    pub link_definitions: Vec<InterfaceLinkDefinition>,
    /// Accepted claim issuers.
    pub cluster_issuers: Vec<String>,
    /// Merged named config.
    pub config: HashMap<String, String>,
    /// Secrets.
    pub secrets: HashMap<String, SecretValue>,
    /// The host's xkey public key.
    pub host_xkey_public_key: String,
    /// The provider's xkey seed.
    pub provider_xkey_private_key: String,
    /// Default RPC timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_rpc_timeout_ms: Option<u64>,
    /// JSON logs.
    pub structured_logging: bool,
    /// Log level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// OpenTelemetry settings.
    pub otel_config: OtelConfig,
}

impl HostData {
    /// Encode as written to stdin: base64 JSON followed by `\r\n`.
    pub fn to_stdin(&self) -> Result<Vec<u8>, serde_json::Error> {
        use base64::Engine as _;
        let json = serde_json::to_vec(self)?;
        let mut out = base64::engine::general_purpose::STANDARD
            .encode(json)
            .into_bytes();
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }

    /// Decode what a host wrote to stdin (one line, base64 JSON; raw JSON is
    /// accepted too for hand-started providers).
    pub fn from_stdin(line: &[u8]) -> Result<Self, HostDataError> {
        use base64::Engine as _;
        let text = std::str::from_utf8(line)
            .map_err(|_| HostDataError("host data is not UTF-8".into()))?
            .trim();
        if text.is_empty() {
            return Err(HostDataError(
                "no host data on stdin: a provider is started by a Trellis or wasmCloud host, \
                 which writes base64 JSON HostData to its stdin"
                    .into(),
            ));
        }
        let json = if text.starts_with('{') {
            text.as_bytes().to_vec()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| HostDataError(format!("host data is not base64: {e}")))?
        };
        serde_json::from_slice(&json)
            .map_err(|e| HostDataError(format!("host data is not valid HostData JSON: {e}")))
    }
}

/// Host data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HostDataError(pub String);

/// Reply to a health request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckResponse {
    /// Whether the provider is healthy.
    #[serde(default)]
    pub healthy: bool,
    /// Optional explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Body of the shutdown request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownRequest {
    /// Host asking; providers ignore other hosts' requests.
    pub host_id: String,
}

/// Provider ↔ host subjects (PROTOCOL.md §4.2).
#[derive(Clone, Debug)]
pub struct ProviderSubjects {
    base: String,
}

impl ProviderSubjects {
    /// Subjects for `lattice`.
    pub fn new(lattice: &str) -> Self {
        Self {
            base: format!("wasmbus.rpc.{lattice}"),
        }
    }
    /// `wasmbus.rpc.{lattice}.{id}.health`
    pub fn health(&self, provider_id: &str) -> String {
        format!("{}.{provider_id}.health", self.base)
    }
    /// `wasmbus.rpc.{lattice}.{id}.default.shutdown`
    pub fn shutdown(&self, provider_id: &str) -> String {
        format!("{}.{provider_id}.default.shutdown", self.base)
    }
    /// `wasmbus.rpc.{lattice}.{key}.linkdefs.put` (key = xkey public key, or id for 1.0-era providers)
    pub fn link_put(&self, key: &str) -> String {
        format!("{}.{key}.linkdefs.put", self.base)
    }
    /// `wasmbus.rpc.{lattice}.{id}.linkdefs.del`
    pub fn link_del(&self, id: &str) -> String {
        format!("{}.{id}.linkdefs.del", self.base)
    }
    /// `wasmbus.rpc.{lattice}.{id}.config.update`
    pub fn config_update(&self, provider_id: &str) -> String {
        format!("{}.{provider_id}.config.update", self.base)
    }
}

/// Sorted view of a config map, for stable output.
pub fn sorted(config: &HashMap<String, String>) -> BTreeMap<&str, &str> {
    config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_data_round_trips_through_stdin_form() {
        let hd = HostData {
            host_id: "NHOST".into(),
            lattice_rpc_prefix: "default".into(),
            provider_key: "kv".into(),
            link_definitions: vec![InterfaceLinkDefinition {
                source_id: "c".into(),
                target: "kv".into(),
                name: "default".into(),
                wit_namespace: "wasi".into(),
                wit_package: "keyvalue".into(),
                interfaces: vec!["store".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = hd.to_stdin().unwrap();
        assert!(bytes.ends_with(b"\r\n"));
        assert_eq!(HostData::from_stdin(&bytes).unwrap(), hd);
    }

    #[test]
    fn wasmcloud_host_data_json_decodes() {
        // Shape written by a wasmCloud 1.x host (crates/core/src/host.rs).
        let json = r#"{"host_id":"NABC","lattice_rpc_prefix":"default","link_name":"default",
          "lattice_rpc_user_jwt":"","lattice_rpc_user_seed":"","lattice_rpc_url":"nats://127.0.0.1:4222",
          "provider_key":"kvredis","env_values":{},"instance_id":"7b0c","link_definitions":[
          {"source_id":"comp","target":"kvredis","name":"default","wit_namespace":"wasi","wit_package":"keyvalue",
           "interfaces":["atomics","store"],"source_config":{},"target_config":{"URL":"redis://x"}}],
          "cluster_issuers":[],"config":{"a":"b"},"secrets":{"s":{"kind":"String","value":"v"}},
          "host_xkey_public_key":"X","provider_xkey_private_key":"S","structured_logging":false,
          "otel_config":{"enable_observability":false,"protocol":"Http","additional_ca_paths":[],"trace_level":"info"}}"#;
        let hd = HostData::from_stdin(json.as_bytes()).unwrap();
        assert_eq!(hd.link_definitions[0].target_config["URL"], "redis://x");
        assert_eq!(hd.secrets["s"], SecretValue::String("v".into()));
    }

    #[test]
    fn empty_stdin_explains_itself() {
        let err = HostData::from_stdin(b"\r\n").unwrap_err();
        assert!(err.0.contains("started by a Trellis or wasmCloud host"));
    }
}
