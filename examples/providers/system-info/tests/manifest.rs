//! `examples/apps/system-info.yaml` parses and validates as a wadm 0.21
//! manifest, and links what the tutorial links.

use trellis_interfaces::manifest::Manifest;
use trellis_interfaces::manifest::validation::validate;

#[test]
fn system_info_manifest_is_valid() {
    let text = include_str!("../../../apps/system-info.yaml");
    let manifest = Manifest::from_yaml(text).unwrap();
    let failures = validate(&manifest);
    assert!(failures.is_empty(), "{failures:?}");
    for wanted in [
        "interfaces: [info]",
        "interfaces: [invoker]",
        "file://./target/release/system-info-provider",
    ] {
        assert!(text.contains(wanted), "{wanted}");
    }
}
