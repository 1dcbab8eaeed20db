//! From a provider reference to something to execute.
//!
//! - `file://` to a provider archive (tar, optionally gzip): verified like an
//!   OCI one.
//! - `file://` to anything else: a native binary, run where it is (its own
//!   mode decides whether it may execute). Only with `--allow-file-load`, and
//!   refused under `--require-signed` since it carries no claims.
//! - OCI: a provider archive layer.
//!
//! An archive's JWT is verified (signature, dates), every binary's hash is
//! checked against `target_hashes`, the host's admission flags apply
//! (`--require-signed`, `--allowed-issuers`), and this machine's target is
//! extracted to `{cache}/providers/{sha256}/{target}.bin`, mode 0755.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use trellis_interfaces::claims::par::{self, ArchiveEntries, GZIP_MAGIC, ParError};
use trellis_interfaces::claims::{CapabilityProvider, Claims};

use crate::artifact::{ArtifactError, ArtifactRef};
use crate::host::HostInner;

/// Most bytes read out of one archive, all entries together, after
/// decompression: a bound on what a hostile archive can make the host
/// allocate. Provider binaries are tens of MiB; 1 GiB leaves room for many
/// targets.
pub const MAX_ARCHIVE_UNPACKED_BYTES: u64 = 1 << 30;

/// Bytes read from a local file to tell an archive from a binary.
const SNIFF_BYTES: usize = 512;

/// An executable provider, verified and admitted.
#[derive(Clone, Debug)]
pub(super) struct ProviderArtifact {
    /// What to execute.
    pub exec: PathBuf,
    /// Verified claims, when the provider came in an archive.
    pub claims: Option<Claims<CapabilityProvider>>,
}

/// Why a provider could not be fetched; the text goes into
/// `provider_start_failed`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(super) enum FetchError {
    /// Reference, policy or registry failure.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// A `builtin://` name this host does not have.
    #[error(
        "`{0}` is not a built-in provider of this host (it has `builtin://http-server`, `builtin://http-client`, `builtin://keyvalue-memory`, `builtin://keyvalue-nats`, `builtin://blobstore-fs`, `builtin://messaging-nats`)"
    )]
    UnknownBuiltin(String),
    /// Not a readable tar archive.
    #[error("`{reference}` is not a readable provider archive: {reason}")]
    Archive { reference: String, reason: String },
    /// The archive is refused (claims, hashes, missing target).
    #[error("provider archive `{reference}` refused: {source}")]
    Par { reference: String, source: ParError },
    /// Admission policy.
    #[error("provider `{provider_id}` refused: {reason}")]
    Admission { provider_id: String, reason: String },
    /// The cache could not be written.
    #[error("cannot write the provider binary to {path}: {source}")]
    Cache {
        path: String,
        source: std::io::Error,
    },
}

/// Resolves `reference` for `provider_id` to a verified executable.
pub(super) async fn resolve(
    host: &HostInner,
    provider_id: &str,
    reference: &str,
) -> Result<ProviderArtifact, FetchError> {
    let bytes = match ArtifactRef::parse(reference)? {
        ArtifactRef::Builtin(_) => return Err(FetchError::UnknownBuiltin(reference.into())),
        ArtifactRef::File(path) => {
            if !host.config.allow_file_load {
                return Err(ArtifactError::FileLoadDisabled(reference.to_string()).into());
            }
            if !is_archive(&sniff(&path).await?) {
                admit_unsigned(host, provider_id)?;
                return Ok(ProviderArtifact {
                    exec: path,
                    claims: None,
                });
            }
            read(&path).await?
        }
        ArtifactRef::Oci(oci) => host.fetcher.fetch_provider_archive(&oci).await?,
    };
    let cache = host.config.cache_dir.join("providers");
    let (reference, provider_id) = (reference.to_string(), provider_id.to_string());
    let allowed = host.config.allowed_issuers.clone();
    let task = tokio::task::spawn_blocking(move || {
        let (claims, target, binary) = open_archive(&reference, &bytes, SystemTime::now())?;
        // An archive always carries verified claims, so `--require-signed`
        // is met; the allow-list still applies.
        admit_issuer(&provider_id, &claims, &allowed)?;
        let exec = extract(&cache, &target, &binary)?;
        Ok(ProviderArtifact {
            exec,
            claims: Some(claims),
        })
    });
    task.await.map_err(|e| FetchError::Archive {
        reference: "archive".into(),
        reason: format!("archive reader failed: {e}"),
    })?
}

async fn sniff(path: &Path) -> Result<Vec<u8>, ArtifactError> {
    use tokio::io::AsyncReadExt as _;
    let read_error = |source| ArtifactError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(read_error)?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    file.take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .await
        .map_err(read_error)?;
    Ok(head)
}

async fn read(path: &Path) -> Result<Vec<u8>, ArtifactError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| ArtifactError::Read {
            path: path.display().to_string(),
            source,
        })
}

/// gzip, or a POSIX tar header (`ustar` at offset 257).
fn is_archive(head: &[u8]) -> bool {
    head.starts_with(&GZIP_MAGIC) || head.get(257..262) == Some(b"ustar".as_slice())
}

fn admit_unsigned(host: &HostInner, provider_id: &str) -> Result<(), FetchError> {
    if host.config.require_signed {
        return Err(FetchError::Admission {
            provider_id: provider_id.into(),
            reason: "a bare binary carries no claims and this host requires signed providers (--require-signed); package it with `wash par create`".into(),
        });
    }
    Ok(())
}

fn admit_issuer(
    provider_id: &str,
    claims: &Claims<CapabilityProvider>,
    allowed: &[String],
) -> Result<(), FetchError> {
    if !allowed.is_empty() && !allowed.contains(&claims.issuer) {
        return Err(FetchError::Admission {
            provider_id: provider_id.into(),
            reason: format!("issuer {} is not in --allowed-issuers", claims.issuer),
        });
    }
    Ok(())
}

/// Reads and verifies an archive; returns its claims, this machine's target
/// and that target's binary.
fn open_archive(
    reference: &str,
    bytes: &[u8],
    now: SystemTime,
) -> Result<(Claims<CapabilityProvider>, String, Vec<u8>), FetchError> {
    let mut entries = read_entries(bytes).map_err(|reason| FetchError::Archive {
        reference: reference.into(),
        reason,
    })?;
    let par_error = |source| FetchError::Par {
        reference: reference.into(),
        source,
    };
    let claims = par::verify_archive(&entries, now).map_err(par_error)?;
    let target = par::current_target();
    par::select_binary(&entries, &target).map_err(par_error)?;
    let binary = entries.binaries.remove(&target).unwrap_or_default();
    Ok((claims, target, binary))
}

fn read_entries(bytes: &[u8]) -> Result<ArchiveEntries, String> {
    let reader: Box<dyn std::io::Read + '_> = if bytes.starts_with(&GZIP_MAGIC) {
        Box::new(GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut archive = tar::Archive::new(reader.take(MAX_ARCHIVE_UNPACKED_BYTES + 1));
    let mut entries = ArchiveEntries::default();
    let mut total: u64 = 0;
    let iter = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in iter {
        let mut entry = entry.map_err(|e| format!("cannot read an entry: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| format!("an entry has an unreadable name: {e}"))?
            .to_string_lossy()
            .into_owned();
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|e| format!("cannot read entry {path}: {e}"))?;
        total = total.saturating_add(content.len() as u64);
        if total > MAX_ARCHIVE_UNPACKED_BYTES {
            return Err(format!(
                "it unpacks to more than {MAX_ARCHIVE_UNPACKED_BYTES} bytes"
            ));
        }
        entries.add(&path, content).map_err(|e| e.to_string())?;
    }
    Ok(entries)
}

/// Writes `binary` to `{cache}/{sha256}/{target}.bin`, mode 0755, unless an
/// identical file is there; atomic (temp file + rename).
fn extract(cache: &Path, target: &str, binary: &[u8]) -> Result<PathBuf, FetchError> {
    use std::os::unix::fs::PermissionsExt as _;
    let digest = hex_lower(&Sha256::digest(binary));
    let dir = cache.join(&digest);
    let path = dir.join(par::binary_file_name(target));
    let cache_error = |source| FetchError::Cache {
        path: path.display().to_string(),
        source,
    };
    if let Ok(existing) = std::fs::read(&path)
        && hex_lower(&Sha256::digest(&existing)) == digest
    {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(cache_error)?;
    let tmp = dir.join(format!(
        ".{}.{}",
        par::binary_file_name(target),
        uuid::Uuid::new_v4()
    ));
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp, binary)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(cache_error(e));
    }
    Ok(path)
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use nkeys::KeyPair;
    use trellis_interfaces::claims;

    use super::*;

    fn archive(binaries: &BTreeMap<String, Vec<u8>>, gzip: bool) -> Vec<u8> {
        let account = KeyPair::new_account();
        let c = par::provider_claims(
            account.public_key(),
            KeyPair::new_service().public_key(),
            1,
            CapabilityProvider::default(),
            binaries,
        );
        let jwt = claims::sign(&c, &account).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in par::archive_layout(&jwt, binaries) {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, bytes).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        if !gzip {
            return tar;
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &tar).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn archives_are_sniffed_and_verified_and_extracted() {
        let bins = BTreeMap::from([(par::current_target(), b"#!/bin/sh\n".to_vec())]);
        for gzip in [false, true] {
            let bytes = archive(&bins, gzip);
            assert!(is_archive(&bytes));
            let (claims, target, binary) =
                open_archive("file:///p.par", &bytes, SystemTime::now()).unwrap();
            assert_eq!(target, par::current_target());
            assert_eq!(binary, b"#!/bin/sh\n");
            assert!(claims.metadata.is_some());
            let dir = tempfile::tempdir().unwrap();
            let path = extract(dir.path(), &target, &binary).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
            assert_eq!(extract(dir.path(), &target, &binary).unwrap(), path);
        }
        assert!(!is_archive(b"\x7fELF\x02\x01"));
    }

    #[test]
    fn a_missing_target_names_the_targets_present() {
        let bins = BTreeMap::from([("riscv64-plan9".to_string(), b"x".to_vec())]);
        let err = open_archive("file:///p.par", &archive(&bins, false), SystemTime::now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no binary for target"), "{err}");
        assert!(err.contains("(it has: riscv64-plan9)"), "{err}");
    }

    #[test]
    fn garbage_is_not_an_archive() {
        let err = read_entries(&[0x1f, 0x8b, 1, 2, 3]).unwrap_err();
        assert!(!err.is_empty());
    }
}
