//! Artifact references and fetching: `file://` (only when allowed), OCI
//! registries (CNCF Wasm media types), and `builtin://NAME` for in-process
//! capabilities. Digest-pinned OCI references are cached on disk and never
//! fetched twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use trellis_interfaces::ctl::{RegistryCredential, RegistryCredentialMap};

/// OCI layer media types accepted for components (CNCF Wasm and the older
/// wasmCloud types).
pub const COMPONENT_MEDIA_TYPES: &[&str] = &[
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];

/// OCI layer media types accepted for provider archives (PROTOCOL.md §4.1).
pub const PROVIDER_ARCHIVE_MEDIA_TYPES: &[&str] = &[
    "application/vnd.wasmcloud.provider.archive.layer.v1+par",
    "application/vnd.oci.image.layer.v1.tar",
];

/// A parsed artifact reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactRef {
    /// A local file.
    File(PathBuf),
    /// An OCI reference.
    Oci(String),
    /// An in-process capability, by name (`http-server`, …).
    Builtin(String),
}

/// Why an artifact could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// `file://` without `--allow-file-load`.
    #[error(
        "file references are disabled on this host: start it with `--allow-file-load` to load `{0}`"
    )]
    FileLoadDisabled(String),
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The reference does not parse.
    #[error("invalid artifact reference `{reference}`: {reason}")]
    Invalid {
        /// The reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// `latest` (or no tag) without `--allow-latest`.
    #[error(
        "`{0}` uses the `latest` tag, which is refused: pin a version or a digest, or start the host with `--allow-latest`"
    )]
    Latest(String),
    /// The registry failed.
    #[error("cannot pull `{reference}`: {reason}")]
    Pull {
        /// The reference.
        reference: String,
        /// What the registry or client said.
        reason: String,
    },
    /// A builtin reference where an artifact is required.
    #[error("`{0}` names a built-in capability, not a component artifact")]
    Builtin(String),
}

impl ArtifactRef {
    /// Parses a reference string.
    pub fn parse(reference: &str) -> Result<Self, ArtifactError> {
        let reference = reference.trim();
        if let Some(path) = reference.strip_prefix("file://") {
            return Ok(Self::File(PathBuf::from(path)));
        }
        for prefix in ["builtin://", "wasmcloud+builtin://"] {
            if let Some(name) = reference.strip_prefix(prefix) {
                return Ok(Self::Builtin(name.to_string()));
            }
        }
        let bare = reference
            .strip_prefix("oci://")
            .or_else(|| reference.strip_prefix("https://"))
            .or_else(|| reference.strip_prefix("http://"))
            .unwrap_or(reference);
        if bare.is_empty() {
            return Err(ArtifactError::Invalid {
                reference: reference.to_string(),
                reason: "empty reference".into(),
            });
        }
        Ok(Self::Oci(bare.to_string()))
    }
}

/// Fetches artifact bytes according to the host's policy.
pub struct ArtifactFetcher {
    allow_file_load: bool,
    allow_latest: bool,
    client: Client,
    credentials: RwLock<HashMap<String, RegistryCredential>>,
    oci_cache_dir: PathBuf,
}

impl ArtifactFetcher {
    /// A fetcher with the host's policy.
    pub fn new(
        allow_file_load: bool,
        allow_latest: bool,
        allowed_insecure: Vec<String>,
        oci_cache_dir: PathBuf,
    ) -> Self {
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(allowed_insecure),
            ..Default::default()
        });
        Self {
            allow_file_load,
            allow_latest,
            client,
            credentials: RwLock::new(HashMap::new()),
            oci_cache_dir,
        }
    }

    /// Merges registry credentials (from `registry.put`).
    pub fn merge_credentials(&self, creds: RegistryCredentialMap) {
        if let Ok(mut map) = self.credentials.write() {
            map.extend(creds);
        }
    }

    /// Fetches a component artifact.
    pub async fn fetch(&self, reference: &str) -> Result<Vec<u8>, ArtifactError> {
        match ArtifactRef::parse(reference)? {
            ArtifactRef::File(path) => {
                if !self.allow_file_load {
                    return Err(ArtifactError::FileLoadDisabled(reference.to_string()));
                }
                tokio::fs::read(&path)
                    .await
                    .map_err(|source| ArtifactError::Read {
                        path: path.display().to_string(),
                        source,
                    })
            }
            ArtifactRef::Builtin(_) => Err(ArtifactError::Builtin(reference.to_string())),
            ArtifactRef::Oci(oci) => self.fetch_oci(&oci, COMPONENT_MEDIA_TYPES).await,
        }
    }

    /// Fetches a provider archive from an OCI registry (same policy, cache
    /// and credentials as components; PAR layer media types).
    pub async fn fetch_provider_archive(&self, oci: &str) -> Result<Vec<u8>, ArtifactError> {
        self.fetch_oci(oci, PROVIDER_ARCHIVE_MEDIA_TYPES).await
    }

    fn auth_for(&self, registry: &str) -> RegistryAuth {
        let creds = self.credentials.read().ok();
        match creds.as_ref().and_then(|c| c.get(registry)) {
            Some(RegistryCredential {
                token: Some(token), ..
            }) => RegistryAuth::Bearer(token.clone()),
            Some(RegistryCredential {
                username: Some(u),
                password: Some(p),
                ..
            }) => RegistryAuth::Basic(u.clone(), p.clone()),
            _ => RegistryAuth::Anonymous,
        }
    }

    async fn fetch_oci(&self, oci: &str, media_types: &[&str]) -> Result<Vec<u8>, ArtifactError> {
        let reference: Reference = oci.parse().map_err(|e| ArtifactError::Invalid {
            reference: oci.to_string(),
            reason: format!("{e}"),
        })?;
        let pinned = reference.digest().map(str::to_string);
        if pinned.is_none() && !self.allow_latest && reference.tag().is_none_or(|t| t == "latest") {
            return Err(ArtifactError::Latest(oci.to_string()));
        }
        let cached = pinned
            .as_ref()
            .map(|d| self.oci_cache_dir.join(d.replace(':', "_")));
        if let Some(path) = &cached
            && let Ok(bytes) = tokio::fs::read(path).await
        {
            return Ok(bytes);
        }
        let auth = self.auth_for(reference.resolve_registry());
        let image = self
            .client
            .pull(&reference, &auth, media_types.to_vec())
            .await
            .map_err(|e| ArtifactError::Pull {
                reference: oci.to_string(),
                reason: format!("{e}"),
            })?;
        let layer = image
            .layers
            .into_iter()
            .next()
            .ok_or_else(|| ArtifactError::Pull {
                reference: oci.to_string(),
                reason: format!(
                    "the image has no layer of type {}",
                    media_types.join(" or ")
                ),
            })?;
        let bytes = layer.data.to_vec();
        if let Some(path) = cached
            && tokio::fs::create_dir_all(&self.oci_cache_dir).await.is_ok()
        {
            let _ = tokio::fs::write(path, &bytes).await;
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reference_kinds() {
        assert_eq!(
            ArtifactRef::parse("file:///tmp/a.wasm").unwrap(),
            ArtifactRef::File("/tmp/a.wasm".into())
        );
        assert_eq!(
            ArtifactRef::parse("wasmcloud+builtin://http-server").unwrap(),
            ArtifactRef::Builtin("http-server".into())
        );
        assert_eq!(
            ArtifactRef::parse("builtin://http-server").unwrap(),
            ArtifactRef::Builtin("http-server".into())
        );
        assert_eq!(
            ArtifactRef::parse("registry.example/a/b:0.1.0").unwrap(),
            ArtifactRef::Oci("registry.example/a/b:0.1.0".into())
        );
        assert!(ArtifactRef::parse("  ").is_err());
    }

    #[tokio::test]
    async fn policy_refuses_files_and_latest() {
        let dir = tempfile::tempdir().unwrap();
        let f = ArtifactFetcher::new(false, false, vec![], dir.path().into());
        let e = f.fetch("file:///etc/hostname").await.unwrap_err();
        assert!(e.to_string().contains("--allow-file-load"), "{e}");
        let e = f.fetch("registry.example/a/b:latest").await.unwrap_err();
        assert!(e.to_string().contains("--allow-latest"), "{e}");
        let e = f.fetch("registry.example/a/b").await.unwrap_err();
        assert!(matches!(e, ArtifactError::Latest(_)), "{e}");
    }
}
