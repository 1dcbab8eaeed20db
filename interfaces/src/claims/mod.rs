//! Signed claims in the wascap format (PROTOCOL.md §5.1): the JWT that says who
//! issued a component or provider, what it is called and which bytes it covers.
//!
//! [`jwt`](self::sign) holds signing and verification of the token itself
//! (Ed25519 by an nkey, base64url segments, `exp`/`nbf` checked against a `now`
//! the caller passes in); the wasm functions ([`embed_component_claims`],
//! [`extract_component_claims`], [`verify_component`]) put a token in, and take
//! it out of, the `wasmcloud_jwt` custom section of a component and check the
//! module hash; [`par`] holds provider archives (a signed `claims.jwt` plus one
//! binary per target, each covered by a hash in the claims); [`StoredClaims`]
//! and the summaries are the shapes a host writes to `CLAIMS_{subject}` in the
//! lattice bucket and into events. Nothing here does
//! I/O or reads the clock: time is always an argument, so tests control it.
//!
//! ```
//! use std::time::SystemTime;
//! use trellis_interfaces::claims::{self, Claims, Component};
//!
//! let account = nkeys::KeyPair::new_account();
//! let module = nkeys::KeyPair::new_module();
//! let claims = Claims::new(
//!     account.public_key(),
//!     module.public_key(),
//!     1_700_000_000,
//!     Component { name: Some("hello".into()), ..Default::default() },
//! );
//! let wasm = b"\0asm\x0d\x00\x01\x00".to_vec(); // an empty component
//! let signed = claims::embed_component_claims(&wasm, &claims, &account).unwrap();
//! let verified = claims::verify_component(&signed, SystemTime::now()).unwrap().unwrap();
//! assert_eq!(verified.subject, module.public_key());
//! ```

mod error;
mod jwt;
pub mod par;
mod stored;
mod wasm;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use error::ClaimsError;
pub use jwt::{decode_and_verify, decode_unverified, sign, verify_signature};
pub use stored::{StoredClaims, StoredComponentClaims, StoredProviderClaims, human_time};
pub use wasm::{
    CustomSection, EmbeddedClaims, LEGACY_SIGNATURE_SECTION, MAX_NESTING, SIGNATURE_SECTION,
    WasmEncoding, WasmSection, embed_component_claims, extract_component_claims, module_hash,
    sections, strip_signatures, verify_component,
};

/// The wascap internal revision written into new claims. Revision 3 is the
/// first whose module hash is computed the way [`module_hash`] does; wascap
/// skips the hash check below it, Trellis refuses such claims instead
/// ([`ClaimsError::UnhashedRevision`]).
pub const WASCAP_INTERNAL_REVISION: u32 = 3;

/// Registered and wascap-specific claims of one JWT, field for field as
/// wascap's `Claims<T>` (JSON names in brackets, same order).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Claims<T> {
    /// Expiry, seconds since the Unix epoch (`exp`); never expires if `None`.
    #[serde(rename = "exp", default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Unique token id (`jti`).
    #[serde(rename = "jti")]
    pub id: String,
    /// Issue time, seconds since the Unix epoch (`iat`).
    #[serde(rename = "iat")]
    pub issued_at: u64,
    /// Public key of the account that signed the token (`iss`, `A…`).
    #[serde(rename = "iss")]
    pub issuer: String,
    /// Public key of the thing described (`sub`): `M…` for a component, `V…`
    /// for a provider. Hosts key stored claims by it.
    #[serde(rename = "sub")]
    pub subject: String,
    /// Not valid before, seconds since the Unix epoch (`nbf`); valid at once if `None`.
    #[serde(rename = "nbf", default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    /// What is described (`wascap`).
    #[serde(rename = "wascap", skip_serializing_if = "Option::is_none")]
    pub metadata: Option<T>,
    /// wascap's internal revision (`wascap_revision`); absent in tokens older
    /// than wascap 0.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wascap_revision: Option<u32>,
}

impl<T> Claims<T> {
    /// Claims with a fresh `jti`, the current [`WASCAP_INTERNAL_REVISION`] and
    /// no time bounds. `issued_at` is seconds since the Unix epoch.
    pub fn new(issuer: String, subject: String, issued_at: u64, metadata: T) -> Self {
        Self {
            expires: None,
            id: ulid::Ulid::new().to_string(),
            issued_at,
            issuer,
            subject,
            not_before: None,
            metadata: Some(metadata),
            wascap_revision: Some(WASCAP_INTERNAL_REVISION),
        }
    }
}

/// The kinds of claims metadata this module signs and verifies. Both are
/// issued by an account key (`A…`).
pub trait ClaimsMetadata: Serialize + DeserializeOwned + Clone {
    /// What the claims describe, for messages: `"component"`, `"provider"`.
    const KIND: &'static str;
}

/// Metadata of a signed component (wascap `Component`, formerly `Actor`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Descriptive name, without version or key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// SHA-256 of the module without its signature section, upper-case hex as
    /// wascap writes it (see [`module_hash`]).
    #[serde(default)]
    pub hash: String,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Monotonic revision number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<i32>,
    /// Human-friendly version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<String>,
    /// Code-friendly alias other components may call it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_alias: Option<String>,
    /// Whether the module is a capability provider (always written; legacy).
    #[serde(default)]
    pub prov: bool,
}

impl ClaimsMetadata for Component {
    const KIND: &'static str = "component";
}

/// Metadata of a signed capability provider archive (wascap `CapabilityProvider`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CapabilityProvider {
    /// Descriptive name. Written as `null` when absent, as wascap does.
    #[serde(default)]
    pub name: Option<String>,
    /// Who made it.
    #[serde(default)]
    pub vendor: String,
    /// Monotonic revision number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<i32>,
    /// Human-friendly version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<String>,
    /// SHA-256 of each native binary in the archive, by target (`x86_64-linux`, …).
    #[serde(default)]
    pub target_hashes: BTreeMap<String, String>,
    /// JSON schema of the provider's link configuration, if it publishes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<serde_json::Value>,
}

impl ClaimsMetadata for CapabilityProvider {
    const KIND: &'static str = "provider";
}
