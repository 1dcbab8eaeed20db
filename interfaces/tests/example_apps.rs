//! Every application manifest under `examples/apps/` parses as a wadm 0.21
//! manifest and passes validation, so the examples a user copies are valid.

use trellis_interfaces::manifest::Manifest;
use trellis_interfaces::manifest::validation::validate;

#[test]
fn every_example_app_is_a_valid_manifest() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/apps");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let manifest =
            Manifest::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let failures = validate(&manifest);
        assert!(failures.is_empty(), "{}: {failures:?}", path.display());
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    seen.sort();
    for wanted in ["http-hello.yaml", "pingpong.yaml", "system-info.yaml"] {
        assert!(
            seen.iter().any(|s| s == wanted),
            "{wanted} missing from {seen:?}"
        );
    }
}
