//! The token: `base64url(header).base64url(claims).base64url(signature)`, the
//! signature being the issuer's Ed25519 signature over the first two segments
//! as ASCII, exactly as wascap encodes it.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::{KeyPair, KeyPairType};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Claims, ClaimsError, ClaimsMetadata, WASCAP_INTERNAL_REVISION, human_time};

/// `typ` of every wascap token.
const HEADER_TYPE: &str = "jwt";
/// `alg` of every wascap token.
const HEADER_ALGORITHM: &str = "Ed25519";
/// Length of an Ed25519 signature.
const SIGNATURE_LEN: usize = 64;

/// The JOSE header. Field order matches wascap, so the encoded header is
/// byte-for-byte the one wascap writes.
#[derive(Serialize, Deserialize)]
struct Header {
    typ: String,
    alg: String,
}

/// Signs `claims` with `issuer` and returns the JWT.
///
/// `iss` is filled in from `issuer` when empty and must match it otherwise;
/// `wascap_revision` is set to the current revision when absent. The issuer
/// must be an account key with its seed.
pub fn sign<T: ClaimsMetadata>(
    claims: &Claims<T>,
    issuer: &KeyPair,
) -> Result<String, ClaimsError> {
    require_account(&issuer.public_key(), issuer.key_pair_type(), T::KIND)?;
    let mut claims = claims_to_sign(claims, issuer)?;
    claims.wascap_revision = claims.wascap_revision.or(Some(WASCAP_INTERNAL_REVISION));
    let header = Header {
        typ: HEADER_TYPE.into(),
        alg: HEADER_ALGORITHM.into(),
    };
    let head = segment(&header)?;
    let body = segment(&claims)?;
    let signed = format!("{head}.{body}");
    let signature = issuer
        .sign(signed.as_bytes())
        .map_err(|e| ClaimsError::Signing(e.to_string()))?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// A copy of `claims` whose `iss` is `issuer`'s public key.
fn claims_to_sign<T: Clone>(
    claims: &Claims<T>,
    issuer: &KeyPair,
) -> Result<Claims<T>, ClaimsError> {
    let key = issuer.public_key();
    if !claims.issuer.is_empty() && claims.issuer != key {
        return Err(ClaimsError::IssuerMismatch {
            claims_issuer: claims.issuer.clone(),
            signing_key: key,
        });
    }
    let mut claims = claims.clone();
    claims.issuer = key;
    Ok(claims)
}

fn segment<S: Serialize>(value: &S) -> Result<String, ClaimsError> {
    let json = serde_json::to_vec(value).map_err(|e| ClaimsError::Signing(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Decodes `jwt`, checks its header, issuer kind and signature, then its
/// `nbf` and `exp` against `now`.
pub fn decode_and_verify<T: ClaimsMetadata>(
    jwt: &str,
    now: SystemTime,
) -> Result<Claims<T>, ClaimsError> {
    let claims = verify_signature::<T>(jwt)?;
    check_times(&claims, now)?;
    Ok(claims)
}

/// Decodes `jwt` and checks everything but time: header, `iss`/`sub`
/// present, issuer an account key, signature, metadata present. For tools
/// that show expired claims; admission uses [`decode_and_verify`].
pub fn verify_signature<T: ClaimsMetadata>(jwt: &str) -> Result<Claims<T>, ClaimsError> {
    let [head, body, signature] = split(jwt)?;
    let header: Header = decode_segment("header", head)?;
    if header.typ != HEADER_TYPE || header.alg != HEADER_ALGORITHM {
        return Err(ClaimsError::UnsupportedHeader {
            typ: header.typ,
            alg: header.alg,
        });
    }
    let claims: Claims<T> = decode_segment("claims", body)?;
    if claims.issuer.is_empty() {
        return Err(ClaimsError::MissingIssuer);
    }
    if claims.subject.is_empty() {
        return Err(ClaimsError::MissingSubject);
    }
    let key = KeyPair::from_public_key(&claims.issuer).map_err(|e| ClaimsError::InvalidIssuer {
        issuer: claims.issuer.clone(),
        reason: e.to_string(),
    })?;
    require_account(&claims.issuer, key.key_pair_type(), T::KIND)?;
    let signature = decode_signature(signature)?;
    let signed = format!("{head}.{body}");
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| ClaimsError::BadSignature {
            issuer: claims.issuer.clone(),
        })?;
    if claims.metadata.is_none() {
        return Err(ClaimsError::MissingMetadata { kind: T::KIND });
    }
    Ok(claims)
}

/// Decodes the claims of `jwt` without checking anything but its shape. Only
/// for showing a token to a person; never trust what it returns.
pub fn decode_unverified<T: DeserializeOwned>(jwt: &str) -> Result<Claims<T>, ClaimsError> {
    let [_, body, _] = split(jwt)?;
    decode_segment("claims", body)
}

/// Refuses claims outside their `nbf`..`exp` window at `now`. Matches wascap:
/// expired when `exp` < now, too early when now < `nbf` (both in whole seconds).
pub(super) fn check_times<T>(claims: &Claims<T>, now: SystemTime) -> Result<(), ClaimsError> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Some(expires) = claims.expires
        && expires < now
    {
        return Err(ClaimsError::Expired {
            expires,
            expired_at: human_time(expires),
        });
    }
    if let Some(not_before) = claims.not_before
        && now < not_before
    {
        return Err(ClaimsError::NotYetValid {
            not_before,
            valid_from: human_time(not_before),
        });
    }
    Ok(())
}

fn split(jwt: &str) -> Result<[&str; 3], ClaimsError> {
    let parts: Vec<&str> = jwt.trim().split('.').collect();
    match parts.as_slice() {
        [head, body, signature] => Ok([head, body, signature]),
        _ => Err(ClaimsError::MalformedJwt(format!(
            "expected 3 dot-separated segments, found {}",
            parts.len()
        ))),
    }
}

fn decode_segment<T: DeserializeOwned>(what: &str, segment: &str) -> Result<T, ClaimsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|e| ClaimsError::MalformedJwt(format!("{what} segment is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ClaimsError::MalformedJwt(format!("{what} segment is not valid JSON: {e}")))
}

fn decode_signature(segment: &str) -> Result<Vec<u8>, ClaimsError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|e| {
        ClaimsError::MalformedJwt(format!("signature segment is not base64url: {e}"))
    })?;
    if bytes.len() != SIGNATURE_LEN {
        return Err(ClaimsError::MalformedJwt(format!(
            "signature is {} bytes, an Ed25519 signature is {SIGNATURE_LEN}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn require_account(
    key: &str,
    key_type: KeyPairType,
    kind: &'static str,
) -> Result<(), ClaimsError> {
    if key_type == KeyPairType::Account {
        return Ok(());
    }
    Err(ClaimsError::IssuerNotAccount {
        issuer: key.to_string(),
        key_type: describe(&key_type),
        kind,
    })
}

/// The kind of an nkey in words, with its public-key prefix.
fn describe(key_type: &KeyPairType) -> &'static str {
    match key_type {
        KeyPairType::Server => "a server key (N…)",
        KeyPairType::Cluster => "a cluster key (C…)",
        KeyPairType::Operator => "an operator key (O…)",
        KeyPairType::Account => "an account key (A…)",
        KeyPairType::User => "a user key (U…)",
        KeyPairType::Module => "a module key (M…)",
        KeyPairType::Service => "a service key (V…)",
        KeyPairType::Curve => "a curve key (X…)",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::claims::Component;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn claims(account: &KeyPair) -> Claims<Component> {
        Claims::new(
            account.public_key(),
            KeyPair::new_module().public_key(),
            1_000,
            Component::default(),
        )
    }

    #[test]
    fn signs_and_verifies() {
        let account = KeyPair::new_account();
        let jwt = sign(&claims(&account), &account).unwrap();
        let back: Claims<Component> = decode_and_verify(&jwt, at(2_000)).unwrap();
        assert_eq!(back.issuer, account.public_key());
        assert_eq!(back.wascap_revision, Some(3));
    }

    #[test]
    fn time_window_is_inclusive_of_its_bounds() {
        let account = KeyPair::new_account();
        let mut c = claims(&account);
        c.not_before = Some(100);
        c.expires = Some(200);
        let jwt = sign(&c, &account).unwrap();
        assert!(decode_and_verify::<Component>(&jwt, at(100)).is_ok());
        assert!(decode_and_verify::<Component>(&jwt, at(200)).is_ok());
        let early = decode_and_verify::<Component>(&jwt, at(99)).unwrap_err();
        assert!(matches!(early, ClaimsError::NotYetValid { .. }), "{early}");
        let late = decode_and_verify::<Component>(&jwt, at(201)).unwrap_err();
        assert!(late.to_string().contains("1970-01-01T00:03:20Z"), "{late}");
    }

    #[test]
    fn signing_refuses_a_non_account_key_or_another_issuer() {
        let server = KeyPair::new_server();
        let err = sign(&claims(&server), &server).unwrap_err();
        assert!(err.to_string().contains("server key (N…)"), "{err}");
        let account = KeyPair::new_account();
        let other = KeyPair::new_account();
        let err = sign(&claims(&other), &account).unwrap_err();
        assert!(matches!(err, ClaimsError::IssuerMismatch { .. }), "{err}");
    }

    #[test]
    fn wrong_header_and_garbage_are_named() {
        let err = verify_signature::<Component>("a.b").unwrap_err();
        assert!(err.to_string().contains("found 2"), "{err}");
        let head = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256"}"#);
        let err = verify_signature::<Component>(&format!("{head}.e30.AA")).unwrap_err();
        assert!(
            matches!(err, ClaimsError::UnsupportedHeader { .. }),
            "{err}"
        );
        let err = verify_signature::<Component>("!!.e30.AA").unwrap_err();
        assert!(err.to_string().contains("header segment"), "{err}");
    }
}
