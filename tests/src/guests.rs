//! Guest components, built from `examples/components` once per process.
//!
//! The first call to [`component_path`] runs
//! `cargo build --release --target wasm32-wasip2` on the guest workspace with
//! `--target-dir target/guests`; later calls reuse its outcome. Across
//! processes, cargo's fingerprinting makes a repeated build a no-op and its
//! target-dir lock serializes test binaries that build at the same time.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context as _, bail};

/// The target the guest components are compiled for.
const GUEST_TARGET: &str = "wasm32-wasip2";

/// Environment variables an outer `cargo test` (or the developer's shell)
/// may set that would make the nested guest build use the wrong target
/// directory, target, flags or jobserver. Exact names; prefixes are in
/// [`NESTED_CARGO_ENV_PREFIXES`].
const NESTED_CARGO_ENV_REMOVE: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_DIR",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_TARGET_TMPDIR",
    "RUSTC_WORKSPACE_WRAPPER",
];

/// Prefixes of variables removed for the nested build: per-package metadata
/// of the outer crate and profile overrides meant for the outer build.
const NESTED_CARGO_ENV_PREFIXES: &[&str] = &[
    "CARGO_PKG_",
    "CARGO_PROFILE_",
    "CARGO_BIN_EXE_",
    "CARGO_CFG_",
];

/// The outcome of the one guest build of this process. The error is kept as
/// text because `anyhow::Error` is not `Clone` and every caller needs it.
static GUEST_BUILD: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The path of the built guest component `name` (a crate under
/// `examples/components`, e.g. `"http-hello"`).
///
/// Builds every guest component the first time it is called in a process
/// (a few seconds when nothing changed since the last run, longer on a cold
/// target directory) and blocks concurrent callers until that build is done.
/// It blocks the calling thread: from async code either call it before the
/// runtime work or wrap it in `tokio::task::spawn_blocking`.
pub fn component_path(name: &str) -> anyhow::Result<PathBuf> {
    let release_dir = GUEST_BUILD
        .get_or_init(|| build_guests().map_err(|error| format!("{error:#}")))
        .as_ref()
        .map_err(|error| anyhow::anyhow!("building the guest components failed: {error}"))?;
    let path = release_dir.join(format!("{}.wasm", name.replace('-', "_")));
    if !path.is_file() {
        bail!(
            "no guest component {name:?}: {} does not exist (is {name} a member of {}?)",
            path.display(),
            guest_manifest().display()
        );
    }
    Ok(path)
}

/// The root of the Trellis repository.
pub fn repo_root() -> PathBuf {
    let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| tests_dir.join(".."))
}

fn guest_manifest() -> PathBuf {
    repo_root()
        .join("examples")
        .join("components")
        .join("Cargo.toml")
}

/// Runs the guest build and returns the directory holding the `.wasm` files.
fn build_guests() -> anyhow::Result<PathBuf> {
    let manifest = guest_manifest();
    let target_dir = repo_root().join("target").join("guests");
    // The cargo running the tests when there is one, so the same toolchain
    // builds the guests; `cargo` from PATH otherwise.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--release")
        .args(["--target", GUEST_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(repo_root());
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if NESTED_CARGO_ENV_REMOVE.contains(&key)
            || NESTED_CARGO_ENV_PREFIXES
                .iter()
                .any(|prefix| key.starts_with(prefix))
        {
            command.env_remove(key);
        }
    }
    let started = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("failed to run {} build", cargo.to_string_lossy()))?;
    if !output.status.success() {
        bail!(
            "`cargo build --release --target {GUEST_TARGET} --manifest-path {}` exited with {}:\n{}",
            manifest.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    eprintln!("guest components built in {:?}", started.elapsed());
    Ok(target_dir.join(GUEST_TARGET).join("release"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_hello_is_a_component() {
        let path = component_path("http-hello").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // `\0asm` then version 0x0d and layer 1: a component, not a core module.
        assert_eq!(
            &bytes[..8],
            b"\0asm\x0d\x00\x01\x00",
            "{} is not a component",
            path.display()
        );
        // A second call reuses the build.
        assert_eq!(component_path("http-hello").unwrap(), path);
    }

    #[test]
    fn unknown_component_is_an_error() {
        let error = component_path("no-such-guest").unwrap_err();
        assert!(error.to_string().contains("no_such_guest.wasm"), "{error}");
    }
}
