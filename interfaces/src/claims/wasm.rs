//! Claims inside a wasm binary: the JWT lives in a custom section named
//! `wasmcloud_jwt` (wascap before 0.9 wrote `jwt`), and `wascap.hash` is the
//! SHA-256 of the binary without any such section.
//!
//! The binary format needed here is small, so it is walked by hand: an 8-byte
//! preamble (`\0asm` + version: `01 00 00 00` for a core module, `0d 00 01 00`
//! for a component), then sections of `id: u8, size: LEB128 u32, contents`; a
//! custom section (id 0) starts with its name (LEB128 length + bytes). Inside a
//! component, sections 1 (core module) and 4 (component) hold whole nested
//! binaries, which are walked the same way.
//!
//! The hashed bytes are the ones wascap hashes: every section re-emitted with
//! a minimal LEB128 size (wascap re-encodes through `wasm-encoder`, so a
//! producer's padded sizes do not count), nested modules and components
//! likewise, and every signature section dropped at any depth.

use nkeys::KeyPair;
use sha2::{Digest, Sha256};

use super::jwt::{check_times, decode_unverified, sign, verify_signature};
use super::{Claims, ClaimsError, Component, WASCAP_INTERNAL_REVISION};

/// Custom section the JWT is written to.
pub const SIGNATURE_SECTION: &str = "wasmcloud_jwt";
/// Custom section wascap used before 0.9; still read, never written.
pub const LEGACY_SIGNATURE_SECTION: &str = "jwt";
/// Deepest nesting of modules and components accepted. Real components nest
/// two or three levels; the bound keeps the recursive walk's stack small on
/// hostile input.
pub const MAX_NESTING: usize = 64;

const MAGIC: &[u8; 4] = b"\0asm";
const MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
const PREAMBLE_LEN: usize = 8;
const CUSTOM_SECTION_ID: u8 = 0;
/// Component section holding a core module.
const CORE_MODULE_SECTION_ID: u8 = 1;
/// Component section holding a nested component.
const COMPONENT_SECTION_ID: u8 = 4;

/// Whether a binary is a core module or a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WasmEncoding {
    /// Core wasm module (version 1).
    Module,
    /// Component-model component (version `0d 00`, layer 1).
    Component,
}

/// One top-level section of a binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WasmSection<'a> {
    /// Section id (0 = custom).
    pub id: u8,
    /// Offset of `contents` in the binary.
    pub offset: usize,
    /// The section's contents, after its size.
    pub contents: &'a [u8],
}

/// A custom section split into its name and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomSection<'a> {
    /// The name, as bytes (wasm requires UTF-8; nothing here depends on it).
    pub name: &'a [u8],
    /// Everything after the name.
    pub payload: &'a [u8],
}

impl<'a> WasmSection<'a> {
    /// Name and payload of a custom section; `None` for other sections.
    pub fn custom(&self) -> Result<Option<CustomSection<'a>>, ClaimsError> {
        if self.id != CUSTOM_SECTION_ID {
            return Ok(None);
        }
        let mut pos = 0;
        let len = read_u32(self.contents, &mut pos, self.offset)? as usize;
        let name = pos
            .checked_add(len)
            .and_then(|end| self.contents.get(pos..end))
            .ok_or_else(|| malformed(self.offset, "custom section name runs past the section"))?;
        let payload = self.contents.get(pos + len..).unwrap_or_default();
        Ok(Some(CustomSection { name, payload }))
    }

    /// The signature section name this is, if it is one.
    fn signature_name(&self) -> Result<Option<&'static str>, ClaimsError> {
        Ok(match self.custom()?.map(|c| c.name) {
            Some(name) if name == SIGNATURE_SECTION.as_bytes() => Some(SIGNATURE_SECTION),
            Some(name) if name == LEGACY_SIGNATURE_SECTION.as_bytes() => {
                Some(LEGACY_SIGNATURE_SECTION)
            }
            _ => None,
        })
    }
}

/// The top-level sections of `wasm`, in order.
pub fn sections(wasm: &[u8]) -> Result<(WasmEncoding, Vec<WasmSection<'_>>), ClaimsError> {
    sections_at(wasm, 0)
}

/// [`sections`] for a binary found at `base` in an outer one (for offsets in errors).
fn sections_at(
    wasm: &[u8],
    base: usize,
) -> Result<(WasmEncoding, Vec<WasmSection<'_>>), ClaimsError> {
    let encoding = match (wasm.get(..4), wasm.get(4..PREAMBLE_LEN)) {
        (Some(magic), Some(version)) if magic == MAGIC && version == MODULE_VERSION => {
            WasmEncoding::Module
        }
        (Some(magic), Some(version)) if magic == MAGIC && version == COMPONENT_VERSION => {
            WasmEncoding::Component
        }
        (Some(magic), Some(version)) if magic == MAGIC => {
            return Err(malformed(
                base + 4,
                format!("unsupported wasm version {version:02x?}"),
            ));
        }
        _ => return Err(malformed(base, "not a wasm binary (no `\\0asm` preamble)")),
    };
    let mut list = Vec::new();
    let mut pos = PREAMBLE_LEN;
    while let Some(&id) = wasm.get(pos) {
        pos += 1;
        let size = read_u32(wasm, &mut pos, base)? as usize;
        let end = pos.checked_add(size).filter(|end| *end <= wasm.len());
        let Some(contents) = end.and_then(|end| wasm.get(pos..end)) else {
            return Err(malformed(
                base + pos,
                format!("section {id} claims {size} bytes, more than are left"),
            ));
        };
        list.push(WasmSection {
            id,
            offset: base + pos,
            contents,
        });
        pos += size;
    }
    Ok((encoding, list))
}

/// `wasm` without any signature section, re-encoded the way wascap hashes it
/// (see the module docs). Signing this plus a new section is re-signing.
pub fn strip_signatures(wasm: &[u8]) -> Result<Vec<u8>, ClaimsError> {
    strip_at(wasm, 0, 0)
}

fn strip_at(wasm: &[u8], base: usize, depth: usize) -> Result<Vec<u8>, ClaimsError> {
    if depth > MAX_NESTING {
        return Err(malformed(
            base,
            format!("modules and components nested deeper than {MAX_NESTING} levels"),
        ));
    }
    let (encoding, list) = sections_at(wasm, base)?;
    let mut out = Vec::with_capacity(wasm.len());
    out.extend_from_slice(wasm.get(..PREAMBLE_LEN).unwrap_or_default());
    for section in list {
        if section.signature_name()?.is_some() {
            continue;
        }
        let nested = encoding == WasmEncoding::Component
            && matches!(section.id, CORE_MODULE_SECTION_ID | COMPONENT_SECTION_ID);
        if nested {
            let inner = strip_at(section.contents, section.offset, depth + 1)?;
            push_section(&mut out, section.id, &inner)?;
        } else {
            push_section(&mut out, section.id, section.contents)?;
        }
    }
    Ok(out)
}

/// SHA-256 of [`strip_signatures`]`(wasm)`, upper-case hex as wascap writes it.
pub fn module_hash(wasm: &[u8]) -> Result<String, ClaimsError> {
    Ok(hex_upper(&Sha256::digest(strip_signatures(wasm)?)))
}

/// Signs `claims` for `wasm` and returns the signed binary: the input without
/// its old signature section(s), plus a `wasmcloud_jwt` section. The claims'
/// `hash` and `wascap_revision` are set here; `iss` is the issuer's key.
pub fn embed_component_claims(
    wasm: &[u8],
    claims: &Claims<Component>,
    issuer: &KeyPair,
) -> Result<Vec<u8>, ClaimsError> {
    let mut out = strip_signatures(wasm)?;
    let mut claims = claims.clone();
    claims.metadata.get_or_insert_with(Component::default).hash = hex_upper(&Sha256::digest(&out));
    claims.wascap_revision = Some(WASCAP_INTERNAL_REVISION);
    let jwt = sign(&claims, issuer)?;
    let mut contents = Vec::with_capacity(SIGNATURE_SECTION.len() + 1 + jwt.len());
    write_u32(&mut contents, len_u32(SIGNATURE_SECTION.len())?);
    contents.extend_from_slice(SIGNATURE_SECTION.as_bytes());
    contents.extend_from_slice(jwt.as_bytes());
    push_section(&mut out, CUSTOM_SECTION_ID, &contents)?;
    Ok(out)
}

/// A signature found in a binary, decoded but not verified.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddedClaims {
    /// The JWT as stored.
    pub jwt: String,
    /// Its claims, unverified.
    pub claims: Claims<Component>,
    /// [`module_hash`] of the binary, to compare with `claims.metadata.hash`.
    pub computed_hash: String,
    /// Which section held it: `wasmcloud_jwt` or the legacy `jwt`.
    pub section: &'static str,
}

/// The claims embedded in `wasm`, if any, with the binary's actual hash.
/// Nothing is verified; more than one top-level signature section is an error.
pub fn extract_component_claims(wasm: &[u8]) -> Result<Option<EmbeddedClaims>, ClaimsError> {
    let (_, list) = sections(wasm)?;
    let mut found: Option<(&'static str, &[u8])> = None;
    for section in &list {
        let Some(name) = section.signature_name()? else {
            continue;
        };
        if let Some((first, _)) = found {
            return Err(ClaimsError::DuplicateSignatureSections {
                first: first.to_string(),
                second: name.to_string(),
            });
        }
        let payload = section.custom()?.map(|c| c.payload).unwrap_or_default();
        found = Some((name, payload));
    }
    let Some((section, payload)) = found else {
        return Ok(None);
    };
    let jwt = std::str::from_utf8(payload)
        .map_err(|_| ClaimsError::MalformedJwt(format!("section `{section}` is not UTF-8 text")))?
        .to_string();
    let claims = decode_unverified::<Component>(&jwt)?;
    Ok(Some(EmbeddedClaims {
        jwt,
        claims,
        computed_hash: module_hash(wasm)?,
        section,
    }))
}

/// Verifies the claims embedded in `wasm` at `now`: signature by an account,
/// module hash, `nbf` and `exp`. `Ok(None)` means unsigned.
pub fn verify_component(
    wasm: &[u8],
    now: std::time::SystemTime,
) -> Result<Option<Claims<Component>>, ClaimsError> {
    let Some(embedded) = extract_component_claims(wasm)? else {
        return Ok(None);
    };
    let claims = verify_signature::<Component>(&embedded.jwt)?;
    let revision = claims.wascap_revision.unwrap_or(0);
    if revision < WASCAP_INTERNAL_REVISION {
        return Err(ClaimsError::UnhashedRevision { revision });
    }
    let signed = claims
        .metadata
        .as_ref()
        .map(|m| m.hash.as_str())
        .unwrap_or_default();
    if !signed.eq_ignore_ascii_case(&embedded.computed_hash) {
        return Err(ClaimsError::HashMismatch {
            signed: signed.to_string(),
            actual: embedded.computed_hash,
        });
    }
    check_times(&claims, now)?;
    Ok(Some(claims))
}

fn push_section(out: &mut Vec<u8>, id: u8, contents: &[u8]) -> Result<(), ClaimsError> {
    out.push(id);
    write_u32(out, len_u32(contents.len())?);
    out.extend_from_slice(contents);
    Ok(())
}

fn len_u32(len: usize) -> Result<u32, ClaimsError> {
    u32::try_from(len).map_err(|_| malformed(0, format!("section of {len} bytes exceeds 4 GiB")))
}

/// Reads an unsigned LEB128 number of at most 32 bits at `*pos`.
fn read_u32(bytes: &[u8], pos: &mut usize, base: usize) -> Result<u32, ClaimsError> {
    let mut value: u32 = 0;
    for index in 0..5u32 {
        let Some(&byte) = bytes.get(*pos) else {
            return Err(malformed(base + *pos, "input ends inside a LEB128 number"));
        };
        *pos += 1;
        let bits = u32::from(byte & 0x7f);
        if index == 4 && bits > 0x0f {
            return Err(malformed(base + *pos - 1, "LEB128 number exceeds 32 bits"));
        }
        value |= bits << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed(base + *pos, "LEB128 number longer than 5 bytes"))
}

/// Writes `value` as minimal unsigned LEB128.
fn write_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Bytes as upper-case hex, the encoding wascap uses for every hash.
pub(super) fn hex_upper(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02X}");
            s
        })
}

fn malformed(offset: usize, reason: impl Into<String>) -> ClaimsError {
    ClaimsError::MalformedWasm {
        offset,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_round_trips_and_rejects_overlong() {
        for v in [0, 1, 127, 128, 300, 16_384, u32::MAX] {
            let mut buf = Vec::new();
            write_u32(&mut buf, v);
            let mut pos = 0;
            assert_eq!(read_u32(&buf, &mut pos, 0).unwrap(), v);
            assert_eq!(pos, buf.len());
        }
        let padded = [0x85, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(read_u32(&padded, &mut 0, 0).unwrap(), 5);
        assert!(read_u32(&[0x80, 0x80, 0x80, 0x80, 0x10], &mut 0, 0).is_err());
        assert!(read_u32(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], &mut 0, 0).is_err());
        assert!(read_u32(&[0x80], &mut 0, 0).is_err());
    }

    #[test]
    fn padded_sizes_and_nested_signatures_do_not_change_the_hash() {
        let inner_module = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0".to_vec();
        let mut component = COMPONENT_PREAMBLE.to_vec();
        push_section(&mut component, CORE_MODULE_SECTION_ID, &inner_module).unwrap();
        // The same, with a padded section size and a signature inside the module.
        let mut signed_inner = b"\0asm\x01\0\0\0\x01\x84\x80\x80\x80\0\x01\x60\0\0".to_vec();
        signed_inner.extend_from_slice(b"\0\x06\x03jwtxx");
        let mut padded = COMPONENT_PREAMBLE.to_vec();
        padded.push(CORE_MODULE_SECTION_ID);
        padded.extend_from_slice(&[0x80 | signed_inner.len() as u8, 0x80, 0]);
        padded.extend_from_slice(&signed_inner);
        assert_eq!(strip_signatures(&padded).unwrap(), component);
        assert_eq!(
            module_hash(&padded).unwrap(),
            module_hash(&component).unwrap()
        );
    }

    #[test]
    fn hostile_input_is_refused_not_panicked_on() {
        assert!(sections(b"").is_err());
        assert!(sections(b"\0asm\x02\0\0\0").is_err());
        assert!(sections(b"\0asm\x01\0\0\0\x01\x05\0").is_err());
        assert!(
            sections(b"\0asm\x01\0\0\0\0\x01\x05").unwrap().1[0]
                .custom()
                .is_err()
        );
        let mut deep = COMPONENT_PREAMBLE.to_vec();
        for _ in 0..(MAX_NESTING + 2) {
            let mut outer = COMPONENT_PREAMBLE.to_vec();
            push_section(&mut outer, COMPONENT_SECTION_ID, &deep).unwrap();
            deep = outer;
        }
        let err = strip_signatures(&deep).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }

    const COMPONENT_PREAMBLE: &[u8] = b"\0asm\x0d\0\x01\0";
}
