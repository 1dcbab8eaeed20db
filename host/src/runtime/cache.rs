use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Precompiled components on disk, keyed by the artifact's sha256 and the
/// engine's compatibility hash, so a restart or a second start of the same
/// artifact skips compilation entirely.
pub struct PrecompiledCache {
    dir: PathBuf,
}

/// Outcome of [`PrecompiledCache::load_or_compile`], for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded precompiled code from disk.
    Hit,
    /// Compiled and stored.
    Miss,
}

impl PrecompiledCache {
    /// Opens (creating) the cache directory, readable only by this user.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// sha256 hex of an artifact.
    pub fn digest(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    fn path_for(&self, engine: &Engine, digest: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
    }

    /// Loads the precompiled component for `bytes`, compiling and storing it on
    /// a miss. A corrupt cache file is discarded and recompiled.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let digest = Self::digest(bytes);
        let path = self.path_for(engine, &digest);
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable precompiled cache entry");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Err(e) = write_atomically(&path, &compiled) {
            tracing::warn!(path = %path.display(), error = %e, "cannot store precompiled component");
        }
        // Deserialize what was compiled rather than compiling twice.
        let component = deserialize_bytes(engine, &compiled)?;
        Ok((component, CacheOutcome::Miss))
    }
}

#[allow(
    unsafe_code,
    reason = "wasmtime requires unsafe to load precompiled code; the files are written only by this host into a 0700 directory and checked by wasmtime's header and compatibility hash"
)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: see the function's allow reason.
    unsafe { Component::deserialize_file(engine, path) }
}

#[allow(
    unsafe_code,
    reason = "the bytes were produced by `Engine::precompile_component` on this very engine a moment ago"
)]
fn deserialize_bytes(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: see the function's allow reason.
    unsafe { Component::deserialize(engine, bytes) }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
