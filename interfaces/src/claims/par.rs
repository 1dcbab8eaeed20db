//! Provider archives (PAR): a tar file (gzip-compressed or not) holding a
//! signed `claims.jwt` and one native binary per target, `{target}.bin`
//! (`x86_64-linux.bin`, `aarch64-macos.bin`, …), as wasmCloud 1.x's
//! `provider-archive` crate writes them.
//!
//! The claims are [`CapabilityProvider`] claims whose `target_hashes` map each
//! target to the SHA-256 of its binary, upper-case hex — the same encoding as a
//! component's module hash — so changing a binary without re-signing is
//! detected. This module holds the format's pure logic: naming, hashing,
//! building the claims, sorting the entries a tar reader found into claims and
//! binaries, and verifying them. Reading and writing the tar itself is left to
//! the caller (`wash par`, a host fetching a provider), which keeps this crate
//! free of I/O.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::SystemTime;
//! use trellis_interfaces::claims::{self, par, CapabilityProvider};
//!
//! let account = nkeys::KeyPair::new_account();
//! let service = nkeys::KeyPair::new_service();
//! let binaries = BTreeMap::from([("x86_64-linux".to_string(), b"\x7fELF".to_vec())]);
//! let metadata = CapabilityProvider { name: Some("kv".into()), vendor: "acme".into(), ..Default::default() };
//! let claims = par::provider_claims(account.public_key(), service.public_key(), 1_700_000_000, metadata, &binaries);
//! let jwt = claims::sign(&claims, &account).unwrap();
//!
//! // What a tar reader hands back, entry by entry:
//! let mut archive = par::ArchiveEntries::default();
//! archive.add(par::CLAIMS_FILE, jwt.into_bytes()).unwrap();
//! archive.add("x86_64-linux.bin", binaries["x86_64-linux"].clone()).unwrap();
//! let verified = par::verify_archive(&archive, SystemTime::now()).unwrap();
//! assert_eq!(verified.subject, service.public_key());
//! assert!(par::select_binary(&archive, "x86_64-linux").is_ok());
//! ```

use std::collections::BTreeMap;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::jwt::decode_and_verify;
use super::wasm::hex_upper;
use super::{CapabilityProvider, Claims, ClaimsError};

/// Name of the archive entry holding the signed claims.
pub const CLAIMS_FILE: &str = "claims.jwt";
/// Extension of the archive entries holding native binaries: `{target}.bin`.
pub const BINARY_EXTENSION: &str = "bin";
/// The two bytes a gzip stream starts with; a PAR is compressed iff it does
/// (the file name is not consulted, as in wasmCloud).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why a provider archive was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParError {
    /// No `claims.jwt` entry.
    #[error("provider archive has no `{CLAIMS_FILE}`: it is unsigned or not a provider archive")]
    MissingClaims,
    /// No `{target}.bin` entry at all.
    #[error("provider archive holds no binary (`{{target}}.{BINARY_EXTENSION}`)")]
    NoBinaries,
    /// The same entry twice.
    #[error("provider archive holds `{name}` twice")]
    DuplicateEntry {
        /// The entry name.
        name: String,
    },
    /// An entry name that cannot name a target (empty, or with a path separator).
    #[error(
        "provider archive entry `{name}` does not name a target (`{{arch}}-{{os}}.{BINARY_EXTENSION}`)"
    )]
    InvalidEntryName {
        /// The entry name.
        name: String,
    },
    /// `claims.jwt` is not UTF-8 text.
    #[error("`{CLAIMS_FILE}` is not UTF-8 text")]
    ClaimsNotText,
    /// The JWT itself is refused (malformed, bad signature, expired, …).
    #[error("provider claims refused: {0}")]
    Claims(#[from] ClaimsError),
    /// A binary whose target the claims do not list.
    #[error("binary for target {target} is not covered by the claims (no `target_hashes` entry)")]
    UnsignedTarget {
        /// The target.
        target: String,
    },
    /// A binary changed after signing.
    #[error(
        "hash mismatch for target {target}: the claims cover {signed} but the binary hashes to {actual}; it was modified after signing"
    )]
    HashMismatch {
        /// The target.
        target: String,
        /// `target_hashes[target]` from the claims.
        signed: String,
        /// Hash of the binary as it is.
        actual: String,
    },
    /// No binary for the platform asked for.
    #[error("provider archive has no binary for target {target} (it has: {})", list(.available))]
    NoBinaryForTarget {
        /// The target asked for.
        target: String,
        /// The targets it has.
        available: Vec<String>,
    },
}

fn list(targets: &[String]) -> String {
    if targets.is_empty() {
        "none".to_string()
    } else {
        targets.join(", ")
    }
}

/// The target of the machine this code runs on, `{arch}-{os}` as Rust names
/// them (`x86_64-linux`, `aarch64-macos`, `x86_64-windows`): the names wash
/// 1.x gives targets by default and hosts look up.
pub fn current_target() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// The archive entry name of `target`'s binary: `{target}.bin`.
pub fn binary_file_name(target: &str) -> String {
    format!("{target}.{BINARY_EXTENSION}")
}

/// SHA-256 of a binary, upper-case hex, as `target_hashes` holds it.
pub fn target_hash(binary: &[u8]) -> String {
    hex_upper(&Sha256::digest(binary))
}

/// Claims for an archive of `binaries` (by target): `metadata` with its
/// `target_hashes` computed here, a fresh `jti`, no time bounds. Sign the
/// result with [`sign`](super::sign) and the issuer's account key.
pub fn provider_claims(
    issuer: String,
    subject: String,
    issued_at: u64,
    mut metadata: CapabilityProvider,
    binaries: &BTreeMap<String, Vec<u8>>,
) -> Claims<CapabilityProvider> {
    metadata.target_hashes = binaries
        .iter()
        .map(|(target, binary)| (target.clone(), target_hash(binary)))
        .collect();
    Claims::new(issuer, subject, issued_at, metadata)
}

/// The entries to write, in order: `claims.jwt` first, then one binary per
/// target in target order (what wasmCloud writes, and what a streaming reader
/// that wants the claims first prefers).
pub fn archive_layout<'a>(
    jwt: &'a str,
    binaries: &'a BTreeMap<String, Vec<u8>>,
) -> Vec<(String, &'a [u8])> {
    std::iter::once((CLAIMS_FILE.to_string(), jwt.as_bytes()))
        .chain(
            binaries
                .iter()
                .map(|(target, binary)| (binary_file_name(target), binary.as_slice())),
        )
        .collect()
}

/// What an archive holds, sorted from the entries a tar reader found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveEntries {
    /// The `claims.jwt` text, if present.
    pub claims_jwt: Option<String>,
    /// Binaries by target.
    pub binaries: BTreeMap<String, Vec<u8>>,
    /// Other entries (e.g. a WIT world written by newer tools), by name; kept
    /// for display, never trusted.
    pub ignored: Vec<String>,
}

impl ArchiveEntries {
    /// Records one regular-file entry. `path` is the entry's path in the tar;
    /// only its last component counts (wasmCloud keys entries by file stem).
    pub fn add(&mut self, path: &str, bytes: Vec<u8>) -> Result<(), ParError> {
        let name = path.rsplit('/').next().unwrap_or(path);
        if name == CLAIMS_FILE {
            if self.claims_jwt.is_some() {
                return Err(ParError::DuplicateEntry { name: name.into() });
            }
            let jwt = String::from_utf8(bytes).map_err(|_| ParError::ClaimsNotText)?;
            self.claims_jwt = Some(jwt);
            return Ok(());
        }
        let Some(target) = name
            .strip_suffix(BINARY_EXTENSION)
            .and_then(|stem| stem.strip_suffix('.'))
        else {
            self.ignored.push(path.to_string());
            return Ok(());
        };
        if target.is_empty() || target.contains('\\') {
            return Err(ParError::InvalidEntryName { name: path.into() });
        }
        if self.binaries.contains_key(target) {
            return Err(ParError::DuplicateEntry { name: name.into() });
        }
        self.binaries.insert(target.to_string(), bytes);
        Ok(())
    }

    /// The targets present, in order.
    pub fn targets(&self) -> Vec<String> {
        self.binaries.keys().cloned().collect()
    }
}

/// One target as checked against the claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetCheck {
    /// The target.
    pub target: String,
    /// `target_hashes[target]`, if the claims list it.
    pub signed: Option<String>,
    /// Hash of the binary in the archive, if it holds one.
    pub actual: Option<String>,
}

impl TargetCheck {
    /// Whether this target is usable: a binary whose hash the claims cover.
    /// A target the claims list but the archive lacks is not an error here
    /// (a host loads only its own target); [`select_binary`] reports it.
    pub fn verdict(&self) -> Result<(), ParError> {
        match (&self.signed, &self.actual) {
            (Some(signed), Some(actual)) if !signed.eq_ignore_ascii_case(actual) => {
                Err(ParError::HashMismatch {
                    target: self.target.clone(),
                    signed: signed.clone(),
                    actual: actual.clone(),
                })
            }
            (None, Some(_)) => Err(ParError::UnsignedTarget {
                target: self.target.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// Every target named by the claims or present in `binaries`, in order, with
/// both hashes. Does not verify the claims; for display and [`verify_archive`].
pub fn check_targets(
    metadata: &CapabilityProvider,
    binaries: &BTreeMap<String, Vec<u8>>,
) -> Vec<TargetCheck> {
    let mut targets: Vec<&String> = metadata
        .target_hashes
        .keys()
        .chain(binaries.keys())
        .collect();
    targets.sort();
    targets.dedup();
    targets
        .into_iter()
        .map(|target| TargetCheck {
            target: target.clone(),
            signed: metadata.target_hashes.get(target).cloned(),
            actual: binaries.get(target).map(|b| target_hash(b)),
        })
        .collect()
}

/// Verifies an archive at `now`: claims present and valid (signature by an
/// account key, `nbf`, `exp`), at least one binary, and every binary's hash
/// equal to the one its claims carry.
pub fn verify_archive(
    entries: &ArchiveEntries,
    now: SystemTime,
) -> Result<Claims<CapabilityProvider>, ParError> {
    let jwt = entries
        .claims_jwt
        .as_deref()
        .ok_or(ParError::MissingClaims)?;
    if entries.binaries.is_empty() {
        return Err(ParError::NoBinaries);
    }
    let claims = decode_and_verify::<CapabilityProvider>(jwt, now)?;
    let metadata = claims
        .metadata
        .as_ref()
        .ok_or(ClaimsError::MissingMetadata { kind: "provider" })?;
    for check in check_targets(metadata, &entries.binaries) {
        check.verdict()?;
    }
    Ok(claims)
}

/// The binary for `target` (usually [`current_target`]); call after
/// [`verify_archive`].
pub fn select_binary<'a>(entries: &'a ArchiveEntries, target: &str) -> Result<&'a [u8], ParError> {
    entries
        .binaries
        .get(target)
        .map(Vec::as_slice)
        .ok_or_else(|| ParError::NoBinaryForTarget {
            target: target.to_string(),
            available: entries.targets(),
        })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use nkeys::KeyPair;

    use super::*;
    use crate::claims::sign;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn signed_archive(binaries: &BTreeMap<String, Vec<u8>>) -> (ArchiveEntries, KeyPair) {
        let account = KeyPair::new_account();
        let claims = provider_claims(
            account.public_key(),
            KeyPair::new_service().public_key(),
            1_000,
            CapabilityProvider {
                name: Some("kv".into()),
                vendor: "acme".into(),
                ver: Some("1.0.0".into()),
                ..Default::default()
            },
            binaries,
        );
        let jwt = sign(&claims, &account).unwrap();
        let mut entries = ArchiveEntries::default();
        for (name, bytes) in archive_layout(&jwt, binaries) {
            entries.add(&name, bytes.to_vec()).unwrap();
        }
        (entries, account)
    }

    fn binaries() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            ("x86_64-linux".to_string(), b"linux binary".to_vec()),
            ("aarch64-macos".to_string(), b"mac binary".to_vec()),
        ])
    }

    #[test]
    fn hashes_are_upper_case_sha256_of_the_raw_binary() {
        assert_eq!(
            target_hash(b"abc"),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
    }

    #[test]
    fn layout_puts_claims_first_and_names_binaries_by_target() {
        let bins = binaries();
        let names: Vec<String> = archive_layout("jwt", &bins)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            ["claims.jwt", "aarch64-macos.bin", "x86_64-linux.bin"]
        );
    }

    #[test]
    fn a_signed_archive_verifies_and_serves_its_targets() {
        let (entries, account) = signed_archive(&binaries());
        let claims = verify_archive(&entries, at(2_000)).unwrap();
        assert_eq!(claims.issuer, account.public_key());
        let meta = claims.metadata.unwrap();
        assert_eq!(meta.target_hashes.len(), 2);
        assert_eq!(
            select_binary(&entries, "x86_64-linux").unwrap(),
            b"linux binary"
        );
    }

    #[test]
    fn a_changed_binary_is_a_hash_mismatch_naming_the_target() {
        let (mut entries, _) = signed_archive(&binaries());
        entries
            .binaries
            .insert("x86_64-linux".into(), b"linux binarY".to_vec());
        let err = verify_archive(&entries, at(2_000)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("hash mismatch for target x86_64-linux"),
            "{err}"
        );
    }

    #[test]
    fn an_extra_binary_is_refused_and_a_missing_platform_is_named() {
        let (mut entries, _) = signed_archive(&binaries());
        entries
            .add("riscv64-linux.bin", b"unsigned".to_vec())
            .unwrap();
        let err = verify_archive(&entries, at(2_000)).unwrap_err();
        assert!(matches!(err, ParError::UnsignedTarget { .. }), "{err}");
        let (entries, _) = signed_archive(&binaries());
        let err = select_binary(&entries, "x86_64-windows").unwrap_err();
        assert_eq!(
            err.to_string(),
            "provider archive has no binary for target x86_64-windows (it has: aarch64-macos, x86_64-linux)"
        );
    }

    #[test]
    fn incomplete_or_odd_archives_are_refused() {
        let mut entries = ArchiveEntries::default();
        assert_eq!(
            verify_archive(&entries, at(0)).unwrap_err(),
            ParError::MissingClaims
        );
        entries.add("claims.jwt", b"a.b".to_vec()).unwrap();
        assert_eq!(
            verify_archive(&entries, at(0)).unwrap_err(),
            ParError::NoBinaries
        );
        entries.add("x86_64-linux.bin", vec![1]).unwrap();
        let err = verify_archive(&entries, at(0)).unwrap_err();
        assert!(
            err.to_string().contains("truncated or malformed JWT"),
            "{err}"
        );
        assert!(matches!(
            entries.add("dir/x86_64-linux.bin", vec![2]),
            Err(ParError::DuplicateEntry { .. })
        ));
        assert!(matches!(
            entries.add(".bin", vec![2]),
            Err(ParError::InvalidEntryName { .. })
        ));
        entries.add("world.wasm", vec![0]).unwrap();
        assert_eq!(entries.ignored, ["world.wasm"]);
    }

    #[test]
    fn the_current_target_is_arch_dash_os() {
        let target = current_target();
        assert!(target.starts_with(std::env::consts::ARCH), "{target}");
        assert!(target.ends_with(std::env::consts::OS), "{target}");
    }
}
