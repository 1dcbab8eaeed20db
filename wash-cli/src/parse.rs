//! Parsing of command-line values that clap cannot check alone: `key=value`
//! pairs, component and provider ids, and image references given as paths.

use std::collections::BTreeMap;
use std::path::Path;

/// Splits `key=value` at the first `=`; the value may itself contain `=`.
///
/// Used as a clap `value_parser`, so the message is what the user sees.
pub fn key_value(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        Some(_) => Err(format!("`{input}` has an empty key: write it as key=value")),
        None => Err(format!("`{input}` is not of the form key=value")),
    }
}

/// Collects `key=value` pairs into a map; a repeated key keeps its last value.
pub fn into_map(pairs: Vec<(String, String)>) -> BTreeMap<String, String> {
    pairs.into_iter().collect()
}

/// The scale request's `component_limits` for `--max-instance-reuse N`:
/// calls one instance may answer (the host refuses 0). Without the flag the
/// request carries no limits, so a running component keeps its value.
pub fn instance_reuse_limits(reuse: Option<u32>) -> Option<BTreeMap<String, String>> {
    reuse.map(|n| BTreeMap::from([("max_instance_reuse".to_string(), n.to_string())]))
}

/// Checks a component or provider id the way wash 1.x does: `[A-Za-z0-9_-]+`.
/// Such ids are always valid NATS subject tokens and KV keys.
///
/// Used as a clap `value_parser`.
pub fn component_id(input: &str) -> Result<String, String> {
    if input.is_empty() {
        return Err("the id must not be empty".to_string());
    }
    match input
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        Some(bad) => Err(format!(
            "`{input}` contains `{bad}`: ids may only contain ASCII letters, digits, `_` and `-`"
        )),
        None => Ok(input.to_string()),
    }
}

/// Turns an image reference given as a local path into a `file://` URL with an
/// absolute path, so the host (which has its own working directory) finds it.
///
/// - an absolute path `/x/y.wasm` becomes `file:///x/y.wasm`;
/// - an existing relative path, bare or as `file://rel/path`, is made absolute;
/// - `./x` and `../x` are paths even if missing, so the host says "not found"
///   rather than "invalid reference";
/// - anything else (OCI references, `builtin://…`) is kept as is: the host
///   reports what it cannot fetch.
pub fn resolve_ref(input: &str) -> String {
    if input.starts_with('/') {
        return format!("file://{input}");
    }
    let candidate = input.strip_prefix("file://").unwrap_or(input);
    let looks_like_path = input.starts_with("file://") || !input.contains("://");
    if looks_like_path
        && Path::new(candidate).exists()
        && let Ok(absolute) = std::fs::canonicalize(candidate)
    {
        return format!("file://{}", absolute.display());
    }
    let explicit_relative = candidate.starts_with("./") || candidate.starts_with("../");
    if looks_like_path
        && explicit_relative
        && let Ok(cwd) = std::env::current_dir()
    {
        return format!("file://{}", cwd.join(candidate).display());
    }
    input.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_splits_at_first_equals() {
        assert_eq!(
            key_value("address=0.0.0.0:8080").unwrap(),
            ("address".into(), "0.0.0.0:8080".into())
        );
        assert_eq!(key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(
            key_value("empty=").unwrap(),
            ("empty".into(), String::new())
        );
        assert!(key_value("novalue").unwrap_err().contains("key=value"));
        assert!(key_value("=v").unwrap_err().contains("empty key"));
    }

    #[test]
    fn repeated_keys_keep_the_last_value() {
        let map = into_map(vec![("a".into(), "1".into()), ("a".into(), "2".into())]);
        assert_eq!(map.get("a").map(String::as_str), Some("2"));
    }

    #[test]
    fn component_ids_follow_wash_rules() {
        assert_eq!(component_id("http-hello_1").unwrap(), "http-hello_1");
        assert!(component_id("").is_err());
        let err = component_id("a.b").unwrap_err();
        assert!(err.contains("`.`"), "{err}");
        assert!(component_id("a b").is_err());
    }

    #[test]
    fn refs_become_absolute_file_urls() {
        assert_eq!(resolve_ref("/tmp/x.wasm"), "file:///tmp/x.wasm");
        assert_eq!(
            resolve_ref("registry.example/wasmcloud/http-server:0.27.0"),
            "registry.example/wasmcloud/http-server:0.27.0"
        );
        assert_eq!(
            resolve_ref("builtin://http-server"),
            "builtin://http-server"
        );
        let dir = std::env::current_dir().unwrap();
        // Cargo runs unit tests in the crate directory, which has a Cargo.toml.
        let want = format!(
            "file://{}",
            dir.join("Cargo.toml").canonicalize().unwrap().display()
        );
        assert_eq!(resolve_ref("Cargo.toml"), want);
        assert_eq!(resolve_ref("file://Cargo.toml"), want);
        assert_eq!(resolve_ref("no-such-file.wasm"), "no-such-file.wasm");
        assert_eq!(
            resolve_ref("./missing.wasm"),
            format!("file://{}", dir.join("./missing.wasm").display())
        );
    }
}
