//! Interoperability of `trellis_interfaces::claims` with wascap, the claims
//! library of wasmCloud 1.x (`crates/wascap`, PROTOCOL.md §5.1).
//!
//! Two directions:
//! * a token Trellis signs has wascap's exact layout (checked byte for byte,
//!   segment by segment, with fixed seeds: Ed25519 is deterministic) and
//!   passes a re-statement of wascap's `validate_token` rules written here
//!   against nkeys directly, not through the code under test;
//! * tokens signed by wascap/wash, copied from public wasmCloud sources, verify
//!   under ours, and the one whose claims appear in `shared/compat/events.json`
//!   summarizes to the same values the real host put in its event.
//!
//! Then the wasm side: round trip, tampering, expiry, bad input.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a failed test"
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use nkeys::KeyPair;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use trellis_interfaces::claims::{
    self, CapabilityProvider, Claims, ClaimsError, Component, SIGNATURE_SECTION, WasmEncoding,
};

/// Account seed of the test issuer (generated once with nkeys).
const ACCOUNT_SEED: &str = "SAACKI7I5PDG7TXEU355VGCRWF2ZJTLXDYWVVRR63J6FTRRCWYKEULFFFM";
const ACCOUNT_KEY: &str = "ACSDDNDHOX7EAHZCIZWW6ERSENTQ457PXADPCSCCJFATXAMYWF2WTCER";
/// A second account, for re-signing.
const OTHER_ACCOUNT_SEED: &str = "SAAFOV3HISFVVMC45EVQ6UFY6QUBYUW5GUPOYC3OU4D6VY24PM2OTCJ53E";
/// Module key: the component's identity (`sub`).
const MODULE_SEED: &str = "SMAG4SBPFA572LM3EK5I5DQE4EVICYEYVXSO6NYVWS3F4OLXMKNZLTCIXQ";
const MODULE_KEY: &str = "MBU7HMWAAUJ3Z6EST4JTDR6EPBTHDPFRD7KQX6ZMN4BQCF33HJXYN3AI";
/// A server (host) key, which must never be accepted as an issuer.
const SERVER_SEED: &str = "SNAPZMB6E2Z6DSXNOO5BXOWJOCAPF24MU2RXNTDT25F2F3X32GV2SQCGF4";

/// `{"typ":"jwt","alg":"Ed25519"}`, base64url: the first segment of every wascap token.
const WASCAP_HEADER_SEGMENT: &str = "eyJ0eXAiOiJqd3QiLCJhbGciOiJFZDI1NTE5In0";

/// Signed by wash for the `Echo` actor; from wascap's own test
/// `ensure_jwt_valid_segments` (wasmCloud/wasmCloud `crates/wascap/src/jwt.rs`).
/// Its claims are the ones in the `component_scaled` event of
/// `shared/compat/events.json`.
const WASCAP_ECHO_JWT: &str = "eyJ0eXAiOiJqd3QiLCJhbGciOiJFZDI1NTE5In0.eyJqdGkiOiJTakI1Zm05NzRTanU5V01nVFVjaHNiIiwiaWF0IjoxNjQ0ODQzNzQzLCJpc3MiOiJBQ09KSk42V1VQNE9ERDc1WEVCS0tUQ0NVSkpDWTVaS1E1NlhWS1lLNEJFSldHVkFPT1FIWk1DVyIsInN1YiI6Ik1CQ0ZPUE02SlcyQVBKTFhKRDNaNU80Q043Q1BZSjJCNEZUS0xKVVI1WVI1TUlUSVU3SEQzV0Q1Iiwid2FzY2FwIjp7Im5hbWUiOiJFY2hvIiwiaGFzaCI6IjRDRUM2NzNBN0RDQ0VBNkE0MTY1QkIxOTU4MzJDNzkzNjQ3MUNGN0FCNDUwMUY4MzdGOEQ2NzlGNDQwMEJDOTciLCJ0YWdzIjpbXSwiY2FwcyI6WyJ3YXNtY2xvdWQ6aHR0cHNlcnZlciJdLCJyZXYiOjQsInZlciI6IjAuMy40IiwicHJvdiI6ZmFsc2V9fQ.ZWyD6VQqzaYM1beD2x9Fdw4o_Bavy3ZG703Eg4cjhyJwUKLDUiVPVhqHFE6IXdV4cW6j93YbMT6VGq5iBDWmAg";

/// A component JWT written by wasmCloud 1.x tooling (`wascap_revision` 3,
/// `http-hello-world`), the `entity_jwt` of a secrets-protocol test fixture in
/// public wasmCloud sources (a Go secrets-server test).
const WASMCLOUD_1X_COMPONENT_JWT: &str = "eyJ0eXAiOiJqd3QiLCJhbGciOiJFZDI1NTE5In0.eyJqdGkiOiJxdmVOakZjcW51dWhQaVJUMkU1YWJXIiwiaWF0IjoxNzIxODM0ODg5LCJpc3MiOiJBQk9HQjRXNURPWDNVTzNSVldXUUdZU01WWEhSUFFZWFZaUDVVNFZGTUpEQ1lDV0FSN1M1Q1lNTyIsInN1YiI6Ik1DNUNDNFVENUxQRFo0QzdaTkFFQTRPWlEzQkVGTFNWUTc0MlczVEVUM09OS1M0RFJCVk5NNUlDIiwid2FzY2FwIjp7Im5hbWUiOiJodHRwLWhlbGxvLXdvcmxkIiwiaGFzaCI6IkNFOTAxOTJDOTlDMEIyQzYwOEIyRTJDQjYxOUE5MjUxRkI2ODE4NTZDMTU2ODFCMUJDRDYyRUVEQTJENTEyOEUiLCJ0YWdzIjpbIndhc21jbG91ZC5jb20vZXhwZXJpbWVudGFsIl0sInJldiI6MCwidmVyIjoiMC4xLjAiLCJwcm92IjpmYWxzZX0sIndhc2NhcF9yZXZpc2lvbiI6M30.8awbkvrBnRKLpz88s7GXYCW0onpKf_nNfsj7pXhCyvq8pm4y2IotrIPCdBvWqDvDouX4VAM6DQQUHuI-VdKYAA";

/// Another `entity_jwt` fixture (a Rust secrets-types deserialization test)
/// whose signature does not verify: its claims were edited after signing.
/// An independent Ed25519 implementation (Python `cryptography`) refuses it
/// too; it is kept as a real-world negative.
const EDITED_FIXTURE_JWT: &str = "eyJ0eXAiOiJqd3QiLCJhbGciOiJFZDI1NTE5In0.eyJqdGkiOiJsbmNvcG9zdkd0eE5mYWptOFpxQklIIiwiaWF0IjoxNzE0NTA2NTA5LCJpc3MiOiJBRFZJV0Y2WjNCRlpOV1VYSllUNU5FQVpaMllYNFQ2TlJLSTNZT1IzSEtPU1FRTjdJVkRHV1NOTyIsInN1YiI6Ik1CRkZWTkdGSzNJQTJaWFhHNURRWFFOWU02VE5HNDVQSEpNSklKRlZGSTZZS1MzWFRYTDNEUlJLIiwid2FzY2FwIjp7Im5hbWUiOiJodHRwLWhlbGxvLXdvcmxkIiwiaGFzaCI6IjI4NERDMDU3MEFCREVBODk2NjFFMzc5MjFEQ0Y4NkJDQ0RFQzk5RDQwNTBBRTEzMzUyNDNCQUNCODM0NTk3QkIiLCJ0YWdzIjpbIndhc21jbG91ZC5jb20vZXhwZXJpbWVudGFsIl0sInJldiI6MCwidmVyIjoiMC4xLjAiLCJwcm92IjpmYWxzZX0sIndhc2NhcF9yZXZpc2lvbiI6M30.SadmUTbEWISlEiITqIWPVdefBz3BdWq8WerXxW8LwaLBpbQ9eP6nykaEBPAzWYhsLaALoFTGNtxg_MjoLiL4Cg";

/// A capability-provider JWT signed by the same account as Echo (wasmCloud
/// 0.x era: it still has `capid`, which 1.x dropped and we ignore).
const WASCAP_PROVIDER_JWT: &str = "eyJ0eXAiOiJqd3QiLCJhbGciOiJFZDI1NTE5In0.eyJqdGkiOiJncVJBY0ZIb0lKdW55TFpiMXozenNnIiwiaWF0IjoxNjA5OTQzMTkzLCJpc3MiOiJBQ09KSk42V1VQNE9ERDc1WEVCS0tUQ0NVSkpDWTVaS1E1NlhWS1lLNEJFSldHVkFPT1FIWk1DVyIsInN1YiI6IlZBSE5NMzdHNEFSSFozQ1lIQjNMMzRNNlRZUVdRUjZJWjRRVllDNE5ZWldUSkNKMkxXUDdTNloyIiwid2FzY2FwIjp7Im5hbWUiOiJOQVRTIFJlcGxpY2F0ZWQgSW4tTWVtb3J5IEtleS1WYWx1ZSBTdG9yZSIsImNhcGlkIjoid2FzbWNsb3VkOmtleXZhbHVlIiwidmVuZG9yIjoid2FzbUNsb3VkIiwicmV2IjoxLCJ2ZXIiOiIwLjEuMCIsInRhcmdldF9oYXNoZXMiOnt9fX0.NwDUQMl08RRMjcNrvKiTNKYyLahYrYtcIUIQiHzElOq7SJqtYh_YGVKN-64YYGHdSfwK1OK89arS9DGmW7YuCQ";

/// An account JWT issued by an *operator* (`O…`) for the account that signed
/// Echo; from the wasmdome project's wascap test (wasmCloud/wasmdome). Its
/// signature is valid, but as component claims its issuer is the wrong kind.
const WASCAP_OPERATOR_ISSUED_JWT: &str = "eyJ0eXAiOiJqd3QiLCJhbGciOiJFZDI1NTE5In0.eyJqdGkiOiJtdmJ0eDZsU2RpRm9CQjNnWmU3UmR1IiwiaWF0IjoxNTg0OTkyMDAzLCJpc3MiOiJPQVdFVFBCNFE2N01PT0ZNUDVZTlhZQlEzUE0zSzJWWFlEVVZLVUcyQU9MUlI1RTc0SjNDSVhBSiIsInN1YiI6IkFDT0pKTjZXVVA0T0RENzVYRUJLS1RDQ1VKSkNZNVpLUTU2WFZLWUs0QkVKV0dWQU9PUUhaTUNXIiwid2FzY2FwIjp7Im5hbWUiOiJ3YVNDQyBPZmZpY2lhbCIsInZhbGlkX3NpZ25lcnMiOltdfX0.wFQ6_t6wGQ9NmE-uRRgOUAo2b18MlDHUAquHpoXyT5WKDdPNct5uRYhD-1zV4q7Is5bjGjYPRhnf7NCEsmCtBA";

/// The core module of wascap's `claims_roundtrip` tests (base64): an
/// Emscripten side module whose section sizes are padded 5-byte LEB128s, which
/// wascap re-encodes minimally before hashing.
const WASCAP_PADDED_MODULE: &str = concat!(
    "AGFzbQEAAAAADAZkeWxpbmuAgMACAAGKgICAAAJgAn9/AX9gAAACwYCAgAAEA2VudgptZW1vcnlCYXNl",
    "A38AA2VudgZtZW1vcnkCAIACA2VudgV0YWJsZQFwAAADZW52CXRhYmxlQmFzZQN/AAOEgICAAAMAAQEGi",
    "4CAgAACfwFBAAt/AUEACwejgICAAAIKX3RyYW5zZm9ybQAAEl9fcG9zdF9pbnN0YW50aWF0ZQACCYGAgI",
    "AAAArpgICAAAPBgICAAAECfwJ/IABBAEoEQEEAIQIFIAAPCwNAIAEgAmoiAywAAEHpAEYEQCADQfkAOgA",
    "ACyACQQFqIgIgAEcNAAsgAAsLg4CAgAAAAQuVgICAAAACQCMAJAIjAkGAgMACaiQDEAELCw=="
);

/// The token [`fixed_claims`] signed by [`ACCOUNT_SEED`]: Ed25519 is
/// deterministic, so any change to field names, order or encoding shows here.
/// Its signature was also checked once with an independent Ed25519
/// implementation (Python `cryptography`), not only with nkeys.
const GOLDEN_JWT: &str = "eyJ0eXAiOiJqd3QiLCJhbGciOiJFZDI1NTE5In0.eyJleHAiOjE3MDQxNTM2MDAsImp0aSI6IlRSRUxMSVMwSU5URVJPUDBGSVhFRCIsImlhdCI6MTcwNDA2NzIwMCwiaXNzIjoiQUNTREROREhPWDdFQUhaQ0laV1c2RVJTRU5UUTQ1N1BYQURQQ1NDQ0pGQVRYQU1ZV0YyV1RDRVIiLCJzdWIiOiJNQlU3SE1XQUFVSjNaNkVTVDRKVERSNkVQQlRIRFBGUkQ3S1FYNlpNTjRCUUNGMzNISlhZTjNBSSIsIm5iZiI6MTcwNDA2NzE0MCwid2FzY2FwIjp7Im5hbWUiOiJoZWxsbyIsImhhc2giOiIwMEZGIiwidGFncyI6WyJkZW1vIl0sInJldiI6MiwidmVyIjoiMS4yLjAiLCJjYWxsX2FsaWFzIjoiaGVsbG9fYWxpYXMiLCJwcm92IjpmYWxzZX0sIndhc2NhcF9yZXZpc2lvbiI6M30.J81J4u8eyT-VfzVSVQ_6nQuGHSKoyiGv7val_5YGwuc_xi-XaIeiPlojR6gvPFyavBNCvfmUa0cU322kp3vgBw";

fn key(seed: &str) -> KeyPair {
    KeyPair::from_seed(seed).expect("fixed seed")
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// 2024-01-01T00:00:00Z, "now" for the fixed claims.
const NOW: u64 = 1_704_067_200;

fn fixed_claims() -> Claims<Component> {
    Claims {
        expires: Some(NOW + 86_400),
        id: "TRELLIS0INTEROP0FIXED".into(),
        issued_at: NOW,
        issuer: ACCOUNT_KEY.into(),
        subject: MODULE_KEY.into(),
        not_before: Some(NOW - 60),
        metadata: Some(Component {
            name: Some("hello".into()),
            hash: "00FF".into(),
            tags: Some(vec!["demo".into()]),
            rev: Some(2),
            ver: Some("1.2.0".into()),
            call_alias: Some("hello_alias".into()),
            prov: false,
        }),
        wascap_revision: Some(3),
    }
}

fn segment_json(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64url")).expect("JSON")
}

/// wascap's `validate_token` + `Claims::decode`, restated against nkeys:
/// three segments, header typ/alg, non-empty iss and sub, signature by
/// `KeyPair::from_public_key(iss)` over `header.claims`, then exp/nbf.
fn wascap_rules_accept(jwt: &str, now: u64) -> Result<Value, String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("expected 3 segments, found {}", parts.len()));
    }
    let header = segment_json(parts[0]);
    if header != json!({"typ": "jwt", "alg": "Ed25519"}) {
        return Err(format!("header {header}"));
    }
    let claims = segment_json(parts[1]);
    let iss = claims["iss"].as_str().unwrap_or_default();
    if iss.is_empty() || claims["sub"].as_str().unwrap_or_default().is_empty() {
        return Err("missing iss or sub".into());
    }
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|e| e.to_string())?;
    let kp = KeyPair::from_public_key(iss).map_err(|e| e.to_string())?;
    kp.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .map_err(|e| format!("signature: {e}"))?;
    if claims["exp"].as_u64().is_some_and(|exp| exp < now) {
        return Err("expired".into());
    }
    if claims["nbf"].as_u64().is_some_and(|nbf| now < nbf) {
        return Err("not yet valid".into());
    }
    Ok(claims)
}

/// A component by hand: preamble, then one core module with a type, a
/// function and a code section (`i32.const 42; drop`).
fn tiny_component() -> Vec<u8> {
    let module: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm v1
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: func () -> ()
        0x03, 0x02, 0x01, 0x00, // function: one, type 0
        0x0a, 0x07, 0x01, 0x05, 0x00, 0x41, 0x2a, 0x1a, 0x0b, // code
    ];
    let mut component = b"\0asm\x0d\x00\x01\x00".to_vec();
    component.push(0x01); // core module section
    component.push(u8::try_from(module.len()).expect("small"));
    component.extend_from_slice(module);
    component
}

/// Offset of the `i32.const` immediate (42) inside [`tiny_component`]'s code.
fn code_byte(wasm: &[u8]) -> usize {
    let (encoding, top) = claims::sections(wasm).expect("parses");
    assert_eq!(encoding, WasmEncoding::Component);
    let module = top.iter().find(|s| s.id == 1).expect("core module");
    let (_, inner) = claims::sections(module.contents).expect("module parses");
    let code = inner.iter().find(|s| s.id == 10).expect("code section");
    module.offset + code.offset + 4
}

fn append_custom(wasm: &mut Vec<u8>, name: &str, payload: &[u8]) {
    let len = 1 + name.len() + payload.len();
    assert!(
        len < 128 && name.len() < 128,
        "test helper writes 1-byte sizes"
    );
    wasm.push(0);
    wasm.push(u8::try_from(len).expect("small"));
    wasm.push(u8::try_from(name.len()).expect("small"));
    wasm.extend_from_slice(name.as_bytes());
    wasm.extend_from_slice(payload);
}

fn signature_sections(wasm: &[u8]) -> Vec<String> {
    let (_, top) = claims::sections(wasm).expect("parses");
    top.iter()
        .filter_map(|s| s.custom().expect("custom parses"))
        .map(|c| String::from_utf8_lossy(c.name).into_owned())
        .filter(|n| n == "wasmcloud_jwt" || n == "jwt")
        .collect()
}

// ---- Trellis → wascap -------------------------------------------------------

#[test]
fn trellis_jwt_has_wascaps_exact_layout() {
    let jwt = claims::sign(&fixed_claims(), &key(ACCOUNT_SEED)).expect("signs");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], WASCAP_HEADER_SEGMENT);
    let body = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("utf8");
    assert_eq!(
        body,
        concat!(
            r#"{"exp":1704153600,"jti":"TRELLIS0INTEROP0FIXED","iat":1704067200,"#,
            r#""iss":"ACSDDNDHOX7EAHZCIZWW6ERSENTQ457PXADPCSCCJFATXAMYWF2WTCER","#,
            r#""sub":"MBU7HMWAAUJ3Z6EST4JTDR6EPBTHDPFRD7KQX6ZMN4BQCF33HJXYN3AI","nbf":1704067140,"#,
            r#""wascap":{"name":"hello","hash":"00FF","tags":["demo"],"rev":2,"ver":"1.2.0","#,
            r#""call_alias":"hello_alias","prov":false},"wascap_revision":3}"#
        )
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).expect("b64").len(), 64);
    assert!(!jwt.contains('='), "no padding anywhere");
    assert_eq!(jwt, GOLDEN_JWT);
}

#[test]
fn trellis_jwt_passes_wascaps_validation_rules() {
    let jwt = claims::sign(&fixed_claims(), &key(ACCOUNT_SEED)).expect("signs");
    let claims = wascap_rules_accept(&jwt, NOW).expect("wascap rules accept it");
    assert_eq!(claims["wascap"]["call_alias"], "hello_alias");
    assert_eq!(
        wascap_rules_accept(&jwt, NOW + 2 * 86_400),
        Err("expired".into())
    );
    let back: Claims<Component> = claims::decode_and_verify(&jwt, at(NOW)).expect("verifies");
    assert_eq!(back, fixed_claims());
}

#[test]
fn trellis_signed_component_hash_is_over_the_bytes_before_the_section() {
    let signed =
        claims::embed_component_claims(&tiny_component(), &fixed_claims(), &key(ACCOUNT_SEED))
            .expect("embeds");
    // The signed binary is the unsigned one plus exactly one trailing section.
    let unsigned = tiny_component();
    assert_eq!(&signed[..unsigned.len()], &unsigned[..]);
    let (_, top) = claims::sections(&signed).expect("parses");
    let last = top.last().expect("sections");
    let section = last.custom().expect("custom").expect("is custom");
    assert_eq!(section.name, SIGNATURE_SECTION.as_bytes());
    let jwt = std::str::from_utf8(section.payload).expect("utf8");
    let claims = wascap_rules_accept(jwt, NOW).expect("wascap rules accept it");
    let expected = hex::upper(&Sha256::digest(&unsigned));
    assert_eq!(claims["wascap"]["hash"], expected.as_str());
    assert_eq!(claims["wascap_revision"], 3);
}

// ---- wascap → Trellis -------------------------------------------------------

#[test]
fn wascaps_own_test_vector_verifies_and_matches_the_compat_event() {
    let claims: Claims<Component> =
        claims::decode_and_verify(WASCAP_ECHO_JWT, SystemTime::now()).expect("verifies");
    assert_eq!(
        claims.issuer,
        "ACOJJN6WUP4ODD75XEBKKTCCUJJCY5ZKQ56XVKYK4BEJWGVAOOQHZMCW"
    );
    assert_eq!(
        claims.subject,
        "MBCFOPM6JW2APJLXJD3Z5O4CN7CPYJ2B4FTKLJUR5YR5MITIU7HD3WD5"
    );
    let meta = claims.metadata.clone().expect("metadata");
    assert_eq!(
        meta.hash,
        "4CEC673A7DCCEA6A4165BB195832C7936471CF7AB4501F837F8D679F4400BC97"
    );
    assert_eq!(claims.wascap_revision, None, "pre-revision token");

    let events: Vec<Value> = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/compat/events.json"
    )))
    .expect("events.json");
    let echo = events
        .iter()
        .find(|e| e["data"]["claims"]["name"] == "Echo")
        .expect("the Echo event");
    let real = &echo["data"]["claims"];
    let ours = serde_json::to_value(claims.summary()).expect("serializes");
    for field in ["issuer", "name", "version", "revision", "tags"] {
        assert_eq!(ours[field], real[field], "{field}");
    }
    assert_eq!(ours["expires_human"], "never");
}

#[test]
fn wasmcloud_1x_component_jwt_verifies_and_tampering_is_caught() {
    let err =
        claims::decode_and_verify::<Component>(EDITED_FIXTURE_JWT, SystemTime::now()).unwrap_err();
    assert!(matches!(err, ClaimsError::BadSignature { .. }), "{err}");
    {
        let jwt = WASMCLOUD_1X_COMPONENT_JWT;
        let claims: Claims<Component> =
            claims::decode_and_verify(jwt, SystemTime::now()).expect("verifies");
        assert_eq!(claims.wascap_revision, Some(3));
        let meta = claims.metadata.expect("metadata");
        assert_eq!(meta.name.as_deref(), Some("http-hello-world"));
        assert_eq!(
            meta.tags,
            Some(vec!["wasmcloud.com/experimental".to_string()])
        );
        assert_eq!(meta.hash.len(), 64);
        // Re-encode the claims with another name, keep the signature.
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut body = segment_json(parts[1]);
        body["wascap"]["name"] = json!("evil");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(body.to_string()),
            parts[2]
        );
        let err = claims::decode_and_verify::<Component>(&forged, SystemTime::now()).unwrap_err();
        assert!(matches!(err, ClaimsError::BadSignature { .. }), "{err}");
        assert!(err.to_string().starts_with("bad signature"), "{err}");
    }
}

#[test]
fn wascap_provider_jwt_verifies() {
    let claims: Claims<CapabilityProvider> =
        claims::decode_and_verify(WASCAP_PROVIDER_JWT, SystemTime::now()).expect("verifies");
    assert!(claims.subject.starts_with('V'));
    let meta = claims.metadata.expect("metadata");
    assert_eq!(meta.vendor, "wasmCloud");
    assert_eq!(meta.rev, Some(1));
    assert!(meta.target_hashes.is_empty());
}

#[test]
fn an_operator_issued_token_is_refused_as_component_claims() {
    let err = claims::decode_and_verify::<Component>(WASCAP_OPERATOR_ISSUED_JWT, SystemTime::now())
        .unwrap_err();
    assert!(matches!(err, ClaimsError::IssuerNotAccount { .. }), "{err}");
    assert!(err.to_string().contains("operator key (O…)"), "{err}");
    assert!(wascap_rules_accept(WASCAP_OPERATOR_ISSUED_JWT, NOW).is_ok());
}

// ---- wasm round trips and refusals -----------------------------------------

#[test]
fn sign_embed_extract_verify_round_trip() {
    let signed =
        claims::embed_component_claims(&tiny_component(), &fixed_claims(), &key(ACCOUNT_SEED))
            .expect("embeds");
    let embedded = claims::extract_component_claims(&signed)
        .expect("extracts")
        .expect("is signed");
    assert_eq!(embedded.section, "wasmcloud_jwt");
    assert_eq!(
        embedded.computed_hash,
        claims::module_hash(&tiny_component()).expect("hash")
    );
    let verified = claims::verify_component(&signed, at(NOW))
        .expect("verifies")
        .expect("is signed");
    assert_eq!(verified.subject, MODULE_KEY);
    assert_eq!(verified.issuer, ACCOUNT_KEY);
    let meta = verified.metadata.expect("metadata");
    assert_eq!(meta.hash, embedded.computed_hash);
    assert_eq!(meta.ver.as_deref(), Some("1.2.0"));
    assert_eq!(
        claims::verify_component(&tiny_component(), at(NOW)),
        Ok(None)
    );
}

#[test]
fn one_flipped_code_byte_is_a_hash_mismatch() {
    let mut signed =
        claims::embed_component_claims(&tiny_component(), &fixed_claims(), &key(ACCOUNT_SEED))
            .expect("embeds");
    let at_byte = code_byte(&signed);
    assert_eq!(signed[at_byte], 0x2a);
    signed[at_byte] ^= 0x01;
    let err = claims::verify_component(&signed, at(NOW)).unwrap_err();
    assert!(matches!(err, ClaimsError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("hash mismatch"), "{err}");
}

#[test]
fn expired_and_not_yet_valid_claims_are_refused_with_the_date() {
    let signed =
        claims::embed_component_claims(&tiny_component(), &fixed_claims(), &key(ACCOUNT_SEED))
            .expect("embeds");
    let err = claims::verify_component(&signed, at(NOW + 2 * 86_400)).unwrap_err();
    assert!(matches!(err, ClaimsError::Expired { .. }), "{err}");
    assert!(
        err.to_string().contains("expired at 2024-01-02T00:00:00Z"),
        "{err}"
    );
    let err = claims::verify_component(&signed, at(NOW - 3_600)).unwrap_err();
    assert!(
        err.to_string()
            .contains("not valid until 2023-12-31T23:59:00Z"),
        "{err}"
    );
}

#[test]
fn a_truncated_jwt_is_refused_as_such() {
    let jwt = claims::sign(&fixed_claims(), &key(ACCOUNT_SEED)).expect("signs");
    let cut_signature = &jwt[..jwt.len() - 10];
    let err = claims::decode_and_verify::<Component>(cut_signature, at(NOW)).unwrap_err();
    assert!(matches!(err, ClaimsError::MalformedJwt(_)), "{err}");
    assert!(
        err.to_string().starts_with("truncated or malformed JWT"),
        "{err}"
    );
    let cut_claims = &jwt[..jwt.find('.').expect("dot") + 20];
    let err = claims::decode_and_verify::<Component>(cut_claims, at(NOW)).unwrap_err();
    assert!(err.to_string().contains("found 2"), "{err}");
    // The same, embedded in a binary.
    let mut wasm = tiny_component();
    append_custom(
        &mut wasm,
        SIGNATURE_SECTION,
        &cut_signature.as_bytes()[..100],
    );
    let err = claims::verify_component(&wasm, at(NOW)).unwrap_err();
    assert!(
        err.to_string().starts_with("truncated or malformed JWT"),
        "{err}"
    );
}

#[test]
fn a_server_key_issuer_is_refused() {
    // sign() refuses a server key, so forge the token by hand.
    let server = key(SERVER_SEED);
    let mut claims = fixed_claims();
    claims.issuer = server.public_key();
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
    let signed = format!("{WASCAP_HEADER_SEGMENT}.{body}");
    let sig = URL_SAFE_NO_PAD.encode(server.sign(signed.as_bytes()).expect("signs"));
    let jwt = format!("{signed}.{sig}");
    assert!(
        wascap_rules_accept(&jwt, NOW).is_ok(),
        "the signature itself is fine"
    );
    let err = claims::decode_and_verify::<Component>(&jwt, at(NOW)).unwrap_err();
    assert!(matches!(err, ClaimsError::IssuerNotAccount { .. }), "{err}");
    assert!(err.to_string().contains("server key (N…)"), "{err}");
    assert!(err.to_string().contains(&server.public_key()), "{err}");
    let err = claims::sign(&claims, &server).unwrap_err();
    assert!(matches!(err, ClaimsError::IssuerNotAccount { .. }), "{err}");
}

#[test]
fn two_signature_sections_are_refused_by_name() {
    let signed =
        claims::embed_component_claims(&tiny_component(), &fixed_claims(), &key(ACCOUNT_SEED))
            .expect("embeds");
    let mut both = signed.clone();
    append_custom(&mut both, "jwt", b"x.y.z");
    let err = claims::extract_component_claims(&both).unwrap_err();
    assert_eq!(
        err,
        ClaimsError::DuplicateSignatureSections {
            first: "wasmcloud_jwt".into(),
            second: "jwt".into()
        }
    );
    assert!(err.to_string().contains("two signature sections"), "{err}");
    let mut twice = signed;
    append_custom(&mut twice, "wasmcloud_jwt", b"x.y.z");
    let err = claims::verify_component(&twice, at(NOW)).unwrap_err();
    assert!(
        err.to_string()
            .contains("`wasmcloud_jwt` and `wasmcloud_jwt`"),
        "{err}"
    );
}

#[test]
fn re_signing_replaces_the_section() {
    let first =
        claims::embed_component_claims(&tiny_component(), &fixed_claims(), &key(ACCOUNT_SEED))
            .expect("embeds");
    let mut other = fixed_claims();
    other.issuer = String::new();
    other.subject = key(MODULE_SEED).public_key();
    other.metadata.as_mut().expect("meta").name = Some("renamed".into());
    let second =
        claims::embed_component_claims(&first, &other, &key(OTHER_ACCOUNT_SEED)).expect("re-signs");
    assert_eq!(signature_sections(&second), ["wasmcloud_jwt"]);
    let verified = claims::verify_component(&second, at(NOW))
        .expect("verifies")
        .expect("signed");
    assert_eq!(verified.issuer, key(OTHER_ACCOUNT_SEED).public_key());
    assert_eq!(
        verified.metadata.expect("meta").name.as_deref(),
        Some("renamed")
    );
    // A legacy `jwt` section is replaced too.
    let mut legacy = tiny_component();
    append_custom(&mut legacy, "jwt", b"old.token.here");
    let resigned = claims::embed_component_claims(&legacy, &fixed_claims(), &key(ACCOUNT_SEED))
        .expect("re-signs");
    assert_eq!(signature_sections(&resigned), ["wasmcloud_jwt"]);
}

#[test]
fn the_legacy_jwt_section_is_read() {
    let signed =
        claims::embed_component_claims(&tiny_component(), &fixed_claims(), &key(ACCOUNT_SEED))
            .expect("embeds");
    let (_, top) = claims::sections(&signed).expect("parses");
    let jwt = top
        .last()
        .expect("last")
        .custom()
        .expect("ok")
        .expect("custom")
        .payload;
    let mut legacy = tiny_component();
    append_long_custom(&mut legacy, "jwt", jwt);
    let embedded = claims::extract_component_claims(&legacy)
        .expect("extracts")
        .expect("signed");
    assert_eq!(embedded.section, "jwt");
    assert!(
        claims::verify_component(&legacy, at(NOW))
            .expect("verifies")
            .is_some()
    );
}

#[test]
fn claims_without_a_hashed_revision_are_refused() {
    let mut old = fixed_claims();
    old.wascap_revision = Some(2);
    old.metadata.as_mut().expect("meta").hash =
        claims::module_hash(&tiny_component()).expect("hash");
    let jwt = claims::sign(&old, &key(ACCOUNT_SEED)).expect("signs");
    let mut wasm = tiny_component();
    append_long_custom(&mut wasm, SIGNATURE_SECTION, jwt.as_bytes());
    let err = claims::verify_component(&wasm, at(NOW)).unwrap_err();
    assert!(
        matches!(err, ClaimsError::UnhashedRevision { revision: 2 }),
        "{err}"
    );
}

#[test]
fn wascaps_padded_module_is_hashed_after_minimal_re_encoding() {
    let module = STANDARD.decode(WASCAP_PADDED_MODULE).expect("base64");
    let (encoding, sections) = claims::sections(&module).expect("parses");
    assert_eq!(encoding, WasmEncoding::Module);
    // Re-emit by hand with minimal sizes: every section here is < 16 KiB.
    let mut canonical = module[..8].to_vec();
    for s in &sections {
        canonical.push(s.id);
        leb(&mut canonical, s.contents.len());
        canonical.extend_from_slice(s.contents);
    }
    assert!(
        canonical.len() < module.len(),
        "the vector has padded sizes"
    );
    assert_eq!(
        claims::strip_signatures(&module).expect("strips"),
        canonical
    );
    let signed = claims::embed_component_claims(&module, &fixed_claims(), &key(ACCOUNT_SEED))
        .expect("embeds");
    let verified = claims::verify_component(&signed, at(NOW))
        .expect("verifies")
        .expect("signed");
    assert_eq!(
        verified.metadata.expect("meta").hash,
        hex::upper(&Sha256::digest(&canonical))
    );
}

fn leb(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = u8::try_from(value & 0x7f).expect("7 bits");
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// [`append_custom`] for payloads of any length.
fn append_long_custom(wasm: &mut Vec<u8>, name: &str, payload: &[u8]) {
    let mut contents = Vec::new();
    leb(&mut contents, name.len());
    contents.extend_from_slice(name.as_bytes());
    contents.extend_from_slice(payload);
    wasm.push(0);
    leb(wasm, contents.len());
    wasm.extend_from_slice(&contents);
}

mod hex {
    pub fn upper(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }
}
