#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod fs;

pub use fs::{
    FsRoot, UPLOAD_PREFIX, WRITE_BUFFER_BYTES, check_container_name, check_object_name, clear,
    delete, exists, list, open_range, range_len, read_all, spool, stat, store, upload_file,
};

/// Config keys naming the root directory (wasmCloud's provider reads `ROOT`).
pub const ROOT_KEYS: [&str; 2] = ["ROOT", "root"];

/// The root directory named by a config (`ROOT`, else `root`; empty values
/// ignored). `get` looks a key up in whatever map the caller holds.
pub fn configured_root<'a>(get: impl Fn(&str) -> Option<&'a String>) -> Option<String> {
    ROOT_KEYS
        .iter()
        .find_map(|k| get(k).filter(|v| !v.is_empty()).cloned())
}

/// The root when nothing configures one: `$TMPDIR/<component-id>`
/// (wasmCloud's `/tmp/<component-id>`), so components do not share it.
pub fn default_root(component: &str) -> String {
    std::env::temp_dir().join(component).display().to_string()
}

/// Why a blobstore operation failed; its text is what the component sees.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// A container or object name that cannot be a path inside the root.
    #[error("invalid {what} name `{name}`: {reason}")]
    InvalidName {
        /// `container` or `object`.
        what: &'static str,
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The name resolves (through a symlink) to a place outside the root.
    #[error("`{name}` resolves outside the blobstore root (a symlink leaves it); refused")]
    Escape {
        /// The name.
        name: String,
    },
    /// The container does not exist.
    #[error(
        "container `{name}` does not exist under blobstore root `{root}`: create it with `create-container` first"
    )]
    NoSuchContainer {
        /// The container.
        name: String,
        /// The root directory.
        root: String,
    },
    /// `get-data` with `end < start`.
    #[error("invalid range {start}..={end}: `end` is before `start` (offsets are inclusive)")]
    Range {
        /// First byte.
        start: u64,
        /// Last byte.
        end: u64,
    },
    /// The link or provider config is unusable.
    #[error("{0}")]
    Config(String),
    /// A filesystem operation failed.
    #[error("cannot {op} `{path}`: {reason}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The value was used out of order (finish before write-data, …).
    #[error("{0}")]
    Usage(String),
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn root_key_order_and_empty_values() {
        let mut c = BTreeMap::new();
        assert_eq!(configured_root(|k| c.get(k)), None);
        c.insert("root".to_string(), "/r".to_string());
        assert_eq!(configured_root(|k| c.get(k)).as_deref(), Some("/r"));
        c.insert("ROOT".to_string(), "/R".to_string());
        assert_eq!(configured_root(|k| c.get(k)).as_deref(), Some("/R"));
        c.insert("ROOT".to_string(), String::new());
        assert_eq!(configured_root(|k| c.get(k)).as_deref(), Some("/r"));
        assert!(default_root("blobby").ends_with("/blobby"));
    }
}
