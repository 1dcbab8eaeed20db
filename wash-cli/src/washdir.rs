//! The wash directory: where wash keeps its state, as wash 1.x does in
//! `~/.wash`. `$WASH_HOME` (or a command's `--wash-dir`) moves all of it, so a
//! test or a second local stack never touches the real home.
//!
//! Layout: `keys/` (nkeys, unless `$WASH_KEYS` points elsewhere), and what
//! `wash up` started: `{nats,wadm,host}.pid`, `{nats,wadm,host}.log`,
//! `nats.conf`, `jetstream/` and `up.json`.

use std::path::PathBuf;

use anyhow::anyhow;

/// Environment variable naming the wash directory.
pub const WASH_HOME_ENV: &str = "WASH_HOME";

/// Name of the wash directory under `$HOME`.
const WASH_DIR_NAME: &str = ".wash";

/// `explicit` (a `--wash-dir` flag), else `$WASH_HOME`, else `~/.wash`.
pub fn resolve(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    if let Some(dir) = std::env::var_os(WASH_HOME_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(WASH_DIR_NAME))
        .ok_or_else(|| {
            anyhow!(
                "cannot find the wash directory: $HOME is not set; set ${WASH_HOME_ENV} or pass --wash-dir"
            )
        })
}
