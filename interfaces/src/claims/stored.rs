//! The claims a host keeps and reports once it has verified them: the
//! `CLAIMS_{subject}` value in `LATTICEDATA_{lattice}`, the string map
//! `claims.get` answers with, and the summaries inside events (PROTOCOL.md §2.3–2.5).

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CapabilityProvider, Claims, Component};
use crate::ctl::ClaimsMap;
use crate::event::{ComponentClaims, ProviderClaims};

/// A `CLAIMS_{subject}` value, as wasmCloud 1.x hosts write it. Reading accepts
/// the older key names (`iss`, `rev`, `sub`) and `tags` as a comma-joined string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredClaims {
    /// Claims of a component (has `call_alias` and `tags`).
    Component(StoredComponentClaims),
    /// Claims of a provider.
    Provider(StoredProviderClaims),
}

/// Stored claims of a component. Absent metadata is stored as empty strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredComponentClaims {
    /// Call alias, or empty.
    pub call_alias: String,
    /// Issuing account.
    #[serde(alias = "iss")]
    pub issuer: String,
    /// Name, or empty.
    pub name: String,
    /// Revision as a decimal string (`"0"` when absent).
    #[serde(alias = "rev")]
    pub revision: String,
    /// The component's public key.
    #[serde(alias = "sub")]
    pub subject: String,
    /// Tags (a JSON list when written).
    #[serde(deserialize_with = "list_or_csv")]
    pub tags: Vec<String>,
    /// Version, or empty.
    pub version: String,
}

/// Stored claims of a provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredProviderClaims {
    /// Issuing account.
    #[serde(alias = "iss")]
    pub issuer: String,
    /// Name, or empty.
    pub name: String,
    /// Revision as a decimal string (`"0"` when absent).
    #[serde(alias = "rev")]
    pub revision: String,
    /// The provider's public key.
    #[serde(alias = "sub")]
    pub subject: String,
    /// Version, or empty.
    pub version: String,
    /// The link-config JSON schema, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<String>,
}

impl StoredClaims {
    /// Public key of the component or provider: the `CLAIMS_` key suffix.
    pub fn subject(&self) -> &str {
        match self {
            StoredClaims::Component(c) => &c.subject,
            StoredClaims::Provider(p) => &p.subject,
        }
    }

    /// The `claims.get` entry: every value a string, `tags` comma-joined, and
    /// the short names (`iss`, `rev`, `sub`) next to the long ones, as 1.x hosts answer.
    pub fn to_claims_map(&self) -> ClaimsMap {
        let (issuer, name, revision, subject, version) = match self {
            StoredClaims::Component(c) => (&c.issuer, &c.name, &c.revision, &c.subject, &c.version),
            StoredClaims::Provider(p) => (&p.issuer, &p.name, &p.revision, &p.subject, &p.version),
        };
        let mut map = ClaimsMap::from([
            ("iss".to_string(), issuer.clone()),
            ("issuer".to_string(), issuer.clone()),
            ("name".to_string(), name.clone()),
            ("rev".to_string(), revision.clone()),
            ("revision".to_string(), revision.clone()),
            ("sub".to_string(), subject.clone()),
            ("subject".to_string(), subject.clone()),
            ("version".to_string(), version.clone()),
        ]);
        match self {
            StoredClaims::Component(c) => {
                map.insert("call_alias".into(), c.call_alias.clone());
                map.insert("tags".into(), c.tags.join(","));
            }
            StoredClaims::Provider(p) => {
                map.insert(
                    "config_schema".into(),
                    p.config_schema.clone().unwrap_or_default(),
                );
            }
        }
        map
    }
}

impl From<&Claims<Component>> for StoredComponentClaims {
    fn from(claims: &Claims<Component>) -> Self {
        let meta = claims.metadata.clone().unwrap_or_default();
        Self {
            call_alias: meta.call_alias.unwrap_or_default(),
            issuer: claims.issuer.clone(),
            name: meta.name.unwrap_or_default(),
            revision: meta.rev.unwrap_or_default().to_string(),
            subject: claims.subject.clone(),
            tags: meta.tags.unwrap_or_default(),
            version: meta.ver.unwrap_or_default(),
        }
    }
}

impl From<&Claims<CapabilityProvider>> for StoredProviderClaims {
    fn from(claims: &Claims<CapabilityProvider>) -> Self {
        let meta = claims.metadata.clone().unwrap_or_default();
        Self {
            issuer: claims.issuer.clone(),
            name: meta.name.unwrap_or_default(),
            revision: meta.rev.unwrap_or_default().to_string(),
            subject: claims.subject.clone(),
            version: meta.ver.unwrap_or_default(),
            config_schema: meta.config_schema.map(|s| s.to_string()),
        }
    }
}

impl Claims<Component> {
    /// The `claims` object of `component_scaled` and friends.
    pub fn summary(&self) -> ComponentClaims {
        let meta = self.metadata.clone().unwrap_or_default();
        ComponentClaims {
            call_alias: meta.call_alias,
            issuer: self.issuer.clone(),
            tags: meta.tags,
            name: meta.name,
            version: meta.ver,
            revision: meta.rev,
            not_before_human: Some(not_before_human(self.not_before)),
            expires_human: Some(expires_human(self.expires)),
            caps: None,
        }
    }
}

impl Claims<CapabilityProvider> {
    /// The `claims` object of `provider_started`.
    pub fn summary(&self) -> ProviderClaims {
        let meta = self.metadata.clone().unwrap_or_default();
        ProviderClaims {
            issuer: self.issuer.clone(),
            tags: None,
            name: meta.name,
            version: meta.ver,
            not_before_human: Some(not_before_human(self.not_before)),
            expires_human: Some(expires_human(self.expires)),
        }
    }
}

/// Seconds since the Unix epoch as RFC 3339 UTC (`2024-05-01T12:00:00Z`), or
/// `"invalid"` past what a date can hold.
pub fn human_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "invalid".to_string())
}

fn not_before_human(nbf: Option<u64>) -> String {
    nbf.map(human_time)
        .unwrap_or_else(|| "immediately".to_string())
}

fn expires_human(exp: Option<u64>) -> String {
    exp.map(human_time).unwrap_or_else(|| "never".to_string())
}

/// `tags` as a JSON list, or as the comma-joined string older hosts stored.
fn list_or_csv<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Csv(String),
        Null(()),
    }
    Ok(match Tags::deserialize(deserializer)? {
        Tags::List(list) => list,
        Tags::Csv(csv) => csv
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        Tags::Null(()) => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_stored_shapes_and_answers_like_a_1x_host() {
        let new: StoredClaims = serde_json::from_str(
            r#"{"call_alias":"","issuer":"AX","name":"hello","revision":"2","subject":"MX","tags":["a","b"],"version":"1.0"}"#,
        )
        .unwrap();
        let old: StoredClaims = serde_json::from_str(
            r#"{"call_alias":"","iss":"AX","name":"hello","rev":"2","sub":"MX","tags":"a,b","version":"1.0"}"#,
        )
        .unwrap();
        assert_eq!(new, old);
        let map = new.to_claims_map();
        assert_eq!(map.len(), 10);
        assert_eq!(map["tags"], "a,b");
        assert_eq!(map["sub"], "MX");
        assert_eq!(map["rev"], "2");
        let provider: StoredClaims = serde_json::from_str(
            r#"{"issuer":"AX","name":"p","revision":"0","subject":"VX","version":""}"#,
        )
        .unwrap();
        assert!(matches!(provider, StoredClaims::Provider(_)));
        assert_eq!(provider.to_claims_map()["config_schema"], "");
    }

    #[test]
    fn writes_the_1x_key_set() {
        let claims = Claims::new("AX".into(), "MX".into(), 0, Component::default());
        let stored = StoredClaims::Component((&claims).into());
        let json = serde_json::to_value(&stored).unwrap();
        let mut keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "call_alias",
                "issuer",
                "name",
                "revision",
                "subject",
                "tags",
                "version"
            ]
        );
        assert_eq!(json["revision"], "0");
        assert_eq!(json["tags"], serde_json::json!([]));
    }

    #[test]
    fn summary_names_times_for_people() {
        let mut claims = Claims::new("AX".into(), "MX".into(), 0, Component::default());
        assert_eq!(claims.summary().expires_human.as_deref(), Some("never"));
        assert_eq!(
            claims.summary().not_before_human.as_deref(),
            Some("immediately")
        );
        claims.expires = Some(86_400);
        assert_eq!(
            claims.summary().expires_human.as_deref(),
            Some("1970-01-02T00:00:00Z")
        );
    }
}
