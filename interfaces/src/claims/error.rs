//! Why claims were refused or could not be made.

/// Why a JWT, or the wasm carrying it, was refused (or could not be signed).
///
/// Each message says which check failed and with which key, date or hash, so
/// a host can put it straight into a `component_scale_failed` event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsError {
    /// Not three base64url segments of JSON, or a segment is cut short.
    #[error("truncated or malformed JWT: {0}")]
    MalformedJwt(String),
    /// The header is not wascap's `{"typ":"jwt","alg":"Ed25519"}`.
    #[error(
        "unsupported JWT header (typ `{typ}`, alg `{alg}`): wascap tokens use typ `jwt` and alg `Ed25519`"
    )]
    UnsupportedHeader {
        /// `typ` found.
        typ: String,
        /// `alg` found.
        alg: String,
    },
    /// `iss` is empty.
    #[error("JWT has no issuer (`iss`)")]
    MissingIssuer,
    /// `sub` is empty.
    #[error("JWT has no subject (`sub`)")]
    MissingSubject,
    /// The token has no `wascap` metadata.
    #[error("{kind} claims carry no `wascap` metadata")]
    MissingMetadata {
        /// `"component"` or `"provider"`.
        kind: &'static str,
    },
    /// `iss` is not an nkey public key at all.
    #[error("issuer `{issuer}` is not a valid nkey public key: {reason}")]
    InvalidIssuer {
        /// The `iss` value.
        issuer: String,
        /// What nkeys said.
        reason: String,
    },
    /// `iss` (or the signing key) is a valid nkey of the wrong kind.
    #[error(
        "issuer {issuer} is {key_type}, not an account key (A…): {kind} claims must be issued by an account"
    )]
    IssuerNotAccount {
        /// The key.
        issuer: String,
        /// Its kind, e.g. `"a server key (N…)"`.
        key_type: &'static str,
        /// `"component"` or `"provider"`.
        kind: &'static str,
    },
    /// The signature does not verify against the issuer's public key.
    #[error(
        "bad signature: the JWT was not signed by its issuer {issuer}, or was altered after signing"
    )]
    BadSignature {
        /// The `iss` value.
        issuer: String,
    },
    /// `exp` is in the past.
    #[error("claims expired at {expired_at} (exp {expires})")]
    Expired {
        /// `exp`, seconds since the Unix epoch.
        expires: u64,
        /// The same, RFC 3339.
        expired_at: String,
    },
    /// `nbf` is in the future.
    #[error("claims are not valid until {valid_from} (nbf {not_before})")]
    NotYetValid {
        /// `nbf`, seconds since the Unix epoch.
        not_before: u64,
        /// The same, RFC 3339.
        valid_from: String,
    },
    /// The module was changed after it was signed.
    #[error(
        "hash mismatch: the claims cover module hash {signed} but the module hashes to {actual}; it was modified after signing"
    )]
    HashMismatch {
        /// `wascap.hash` from the claims.
        signed: String,
        /// Hash of the module as it is.
        actual: String,
    },
    /// Claims older than wascap revision 3 carry a hash computed differently,
    /// which wascap does not check; Trellis does not admit what it cannot check.
    #[error(
        "claims have wascap revision {revision}, older than 3, so their module hash cannot be checked; re-sign the component"
    )]
    UnhashedRevision {
        /// `wascap_revision` (0 when absent).
        revision: u32,
    },
    /// More than one `wasmcloud_jwt` / `jwt` section.
    #[error(
        "two signature sections (`{first}` and `{second}`): a signed module carries exactly one; re-sign it to replace both"
    )]
    DuplicateSignatureSections {
        /// Name of the first.
        first: String,
        /// Name of the second.
        second: String,
    },
    /// The bytes are not a wasm module or component this parser can walk.
    #[error("malformed wasm at byte {offset}: {reason}")]
    MalformedWasm {
        /// Offset in the input where parsing stopped.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
    /// The claims name an issuer other than the key signing them.
    #[error("claims name issuer {claims_issuer} but are being signed by {signing_key}")]
    IssuerMismatch {
        /// `iss` in the claims.
        claims_issuer: String,
        /// Public key of the signing key.
        signing_key: String,
    },
    /// nkeys could not sign (a public-only key) or serde could not encode.
    #[error("cannot sign claims: {0}")]
    Signing(String),
}
