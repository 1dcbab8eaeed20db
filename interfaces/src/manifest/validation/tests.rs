//! One test (or a few) per validation rule, on small manifests written inline.

use super::*;

/// A manifest named `name` with the given `spec` body (YAML, indented two spaces).
fn manifest(name: &str, annotations: &str, spec: &str) -> Manifest {
    let text = format!(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: '{name}'\n  \
         annotations: {annotations}\nspec:\n{spec}"
    );
    Manifest::from_yaml(&text).unwrap_or_else(|e| panic!("test manifest parses: {e}\n{text}"))
}

/// Validate an `app` manifest whose `spec.components` are the given YAML list items.
fn check(components: &str) -> Vec<ValidationFailure> {
    validate(&manifest(
        "app",
        "{}",
        &format!("  components:\n{components}"),
    ))
}

fn messages(failures: &[ValidationFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Exactly one failure, at `level`, whose message contains every `needle`.
#[track_caller]
fn assert_one(failures: &[ValidationFailure], level: ValidationFailureLevel, needles: &[&str]) {
    let [failure] = failures else {
        panic!("expected exactly one failure, got:\n{}", messages(failures));
    };
    assert_eq!(failure.level, level, "{failure}");
    for needle in needles {
        assert!(failure.msg.contains(needle), "{needle:?} not in: {failure}");
    }
}

const KV: &str = "    - {name: kv, type: capability, properties: {image: builtin://kv}}\n";

fn link(props: &str) -> String {
    format!(
        "    - name: c\n      type: component\n      properties: {{image: img}}\n      \
         traits:\n        - type: link\n          properties: {props}\n{KV}"
    )
}

#[test]
fn clean_manifest_has_no_findings() {
    let failures = check(&link(
        "{namespace: wasi, package: keyvalue, interfaces: [store, atomics], target: kv}",
    ));
    assert!(failures.is_empty(), "{}", messages(&failures));
    assert!(failures.valid());
}

#[test]
fn manifest_name_syntax() {
    for good in ["mymanifest", "my-manifest", "my_manifest", "v2-final_3"] {
        assert!(is_valid_manifest_name(good), "{good}");
    }
    for bad in ["my.manifest", "my manifest", "", "café", "a/b"] {
        assert!(!is_valid_manifest_name(bad), "{bad}");
    }
    let failures = validate(&manifest("my.app", "{}", "  components: []\n"));
    assert_one(
        &failures,
        ValidationFailureLevel::Error,
        &["metadata.name 'my.app'"],
    );
}

#[test]
fn oam_label_and_annotation_keys() {
    for good in [
        "foo",
        "app.oam.io/name",
        "dash-period.numb3r/any_v4lue",
        "a.b_c-d",
    ] {
        assert!(is_valid_oam_label_key(good), "{good}");
    }
    let too_long = "a".repeat(64);
    for bad in [
        "my_prefix/app-name",
        "1my_prefix/app-name",
        "my_prefix---/app-name",
        "prefix/app-name...",
        "-leading",
        "",
        too_long.as_str(),
    ] {
        assert!(!is_valid_oam_label_key(bad), "{bad}");
    }
    let mut m = manifest("app", "{'bad key': x}", "  components: []\n");
    m.metadata.labels.insert("-nope".into(), "v".into());
    let failures = validate(&m);
    assert_eq!(failures.errors().len(), 2, "{}", messages(&failures));
    let text = messages(&failures);
    assert!(text.contains("metadata.labels: '-nope'"), "{text}");
    assert!(text.contains("metadata.annotations: 'bad key'"), "{text}");
}

#[test]
fn latest_version_is_reserved() {
    let failures = validate(&manifest("app", "{version: latest}", "  components: []\n"));
    assert_one(
        &failures,
        ValidationFailureLevel::Error,
        &["metadata.annotations.version", "'latest' is reserved"],
    );
    assert!(validate(&manifest("app", "{version: v1}", "  components: []\n")).is_empty());
}

#[test]
fn other_api_version_or_kind_is_a_warning() {
    let mut m = manifest("app", "{}", "  components: []\n");
    m.api_version = "core.oam.dev/v1".into();
    let failures = validate(&m);
    assert_one(
        &failures,
        ValidationFailureLevel::Warning,
        &["apiVersion 'core.oam.dev/v1'"],
    );
    m.api_version = crate::manifest::OAM_VERSION.into();
    m.kind = "Deployment".into();
    assert_one(
        &validate(&m),
        ValidationFailureLevel::Warning,
        &["kind 'Deployment'"],
    );
}

#[test]
fn duplicate_component_names() {
    let failures = check(
        "    - {name: ui, type: component, properties: {image: a}}\n    \
         - {name: ui, type: component, properties: {image: b}}\n",
    );
    // Reported once, as a duplicate name, not again as the duplicate id it derives.
    assert_one(
        &failures,
        ValidationFailureLevel::Error,
        &[
            "component 'ui' (spec.components[1])",
            "duplicate component name",
            "spec.components[0]",
        ],
    );
}

#[test]
fn duplicate_explicit_ids() {
    let failures = check(
        "    - {name: a, type: capability, properties: {image: x, id: srv}}\n    \
         - {name: b, type: capability, properties: {image: y, id: srv}}\n",
    );
    assert_one(
        &failures,
        ValidationFailureLevel::Error,
        &[
            "component 'b'",
            "field 'properties.id'",
            "duplicate component identifier 'srv'",
            "'a'",
        ],
    );
}

#[test]
fn explicit_id_colliding_with_a_derived_one() {
    let failures = check(
        "    - {name: web, type: component, properties: {image: x}}\n    \
         - {name: other, type: component, properties: {image: y, id: app-web}}\n",
    );
    assert_one(
        &failures,
        ValidationFailureLevel::Error,
        &[
            "'app-web' (set in properties.id)",
            "derived from the manifest and component names",
        ],
    );
}

#[test]
fn derived_ids_colliding_after_sanitizing() {
    let failures = check(
        "    - {name: a-b, type: component, properties: {image: x}}\n    \
         - {name: A_B, type: component, properties: {image: y}}\n",
    );
    assert_one(
        &failures,
        ValidationFailureLevel::Error,
        &[
            "component 'A_B'",
            "duplicate component identifier 'app-a_b'",
        ],
    );
}

#[test]
fn image_xor_application() {
    let failures = check(
        "    - {name: both, type: component, properties: {image: x, application: {name: s, component: c}}}\n    \
         - {name: none, type: capability, properties: {}}\n",
    );
    assert_eq!(failures.len(), 2, "{}", messages(&failures));
    let text = messages(&failures);
    assert!(text.contains("component 'both'") && text.contains("both `image` and `application`"));
    assert!(text.contains("component 'none'") && text.contains("'properties.image': missing"));
}

#[test]
fn shared_reference_cannot_add_config_secrets_or_scalers() {
    let spec = "  policies: [{name: p, type: policy.secret.wasmcloud.dev/v1alpha1, properties: {backend: nats-kv}}]\n  \
         components:\n    - name: http\n      type: capability\n      properties:\n        \
         application: {name: shared-http, component: httpserver}\n        config: [{name: c}]\n        \
         secrets: [{name: s, properties: {policy: p, key: k}}]\n      \
         traits: [{type: spreadscaler, properties: {instances: 1}}]\n";
    let failures = validate(&manifest("app", "{}", spec));
    let text = messages(&failures);
    assert_eq!(failures.errors().len(), 3, "{text}");
    for field in ["'properties.config'", "'properties.secrets'", "'traits'"] {
        assert!(text.contains(field), "{field} in {text}");
    }
    assert!(text.contains("shared application 'shared-http'"), "{text}");
}

#[test]
fn shared_references_do_not_count_as_duplicate_ids() {
    let failures = check(
        "    - {name: a, type: capability, properties: {application: {name: s, component: c}}}\n    \
         - {name: b, type: capability, properties: {application: {name: s, component: c}}}\n",
    );
    assert!(failures.is_empty(), "{}", messages(&failures));
}

#[test]
fn dangling_link_target() {
    let failures = check(&link(
        "{namespace: wasi, package: keyvalue, interfaces: [store], target: {name: kvv}}",
    ));
    assert_one(
        &failures,
        ValidationFailureLevel::Error,
        &[
            "component 'c', trait 'link' (spec.components[0].traits[0])",
            "field 'properties.target.name'",
            "link target 'kvv' is missing",
            "did you mean 'kv'?",
        ],
    );
}

#[test]
fn misnamed_interface_is_a_warning_with_a_suggestion() {
    let failures = check(&link(
        "{namespace: wasi, package: keyvalue, interfaces: [atomic, store], target: kv}",
    ));
    assert_one(
        &failures,
        ValidationFailureLevel::Warning,
        &[
            "field 'properties.interfaces'",
            "'wasi:keyvalue/atomic' is not a known interface",
            "did you mean 'atomics'?",
        ],
    );
}

#[test]
fn unknown_package_under_known_namespace_is_a_warning() {
    let failures = check(&link(
        "{namespace: wasi, package: keyvalues, interfaces: [atomics], target: kv}",
    ));
    assert_one(
        &failures,
        ValidationFailureLevel::Warning,
        &[
            "field 'properties.package'",
            "'wasi:keyvalues' is not a known package",
            "did you mean 'keyvalue'?",
        ],
    );
}

#[test]
fn custom_namespace_is_not_checked() {
    let failures = check(&link(
        "{namespace: acme, package: kv, interfaces: [anything], target: kv}",
    ));
    assert!(failures.is_empty(), "{}", messages(&failures));
}

fn two_links(first: &str, second: &str) -> Vec<ValidationFailure> {
    check(&format!(
        "    - name: c\n      type: component\n      properties: {{image: img}}\n      traits:\n        \
         - {{type: link, properties: {first}}}\n        - {{type: link, properties: {second}}}\n{KV}    \
         - {{name: kv2, type: capability, properties: {{image: builtin://kv}}}}\n"
    ))
}

#[test]
fn duplicate_link_to_the_same_target() {
    let l = "{namespace: wasi, package: keyvalue, interfaces: [store], target: kv}";
    assert_one(
        &two_links(l, l),
        ValidationFailureLevel::Error,
        &[
            "traits[1]",
            "duplicate link inside component 'c'",
            "'default' for 'wasi:keyvalue/store'",
            "same target 'kv'",
        ],
    );
}

#[test]
fn overlapping_interface_with_different_targets() {
    let failures = two_links(
        "{namespace: wasi, package: keyvalue, interfaces: [store, atomics], target: kv}",
        "{namespace: wasi, package: keyvalue, interfaces: [atomics], target: kv2}",
    );
    assert_one(
        &failures,
        ValidationFailureLevel::Error,
        &[
            "duplicate link",
            "wasi:keyvalue/atomics",
            "different targets ('kv' there, 'kv2' here)",
            "another `name`",
        ],
    );
}

#[test]
fn disjoint_interfaces_or_other_names_are_fine() {
    let failures = two_links(
        "{namespace: wasi, package: keyvalue, interfaces: [store], target: kv}",
        "{namespace: wasi, package: keyvalue, interfaces: [atomics], target: kv2}",
    );
    assert!(failures.is_empty(), "{}", messages(&failures));
    let failures = two_links(
        "{namespace: wasi, package: keyvalue, interfaces: [store], target: kv}",
        "{namespace: wasi, package: keyvalue, interfaces: [store], target: kv2, name: cache}",
    );
    assert!(failures.is_empty(), "{}", messages(&failures));
}

#[test]
fn duplicate_link_config_names_with_properties() {
    let failures = two_links(
        "{namespace: wasi, package: keyvalue, interfaces: [store], target: {name: kv, config: [{name: url, properties: {u: a}}, {name: shared}]}}",
        "{namespace: wasi, package: keyvalue, interfaces: [atomics], target: {name: kv2, config: [{name: url, properties: {u: b}}, {name: shared}]}}",
    );
    assert_one(
        &failures,
        ValidationFailureLevel::Error,
        &[
            "traits[1]",
            "field 'properties.target.config[0].name'",
            "duplicate link config name 'url'",
            "traits[0]",
        ],
    );
}

#[test]
fn duplicate_config_names_on_the_source_side() {
    let failures = check(&link(
        "{namespace: wasi, package: http, interfaces: [incoming-handler], target: kv, \
         source: {config: [{name: p, properties: {a: '1'}}, {name: p, properties: {a: '1'}}]}}",
    ));
    assert_one(
        &failures,
        ValidationFailureLevel::Error,
        &[
            "field 'properties.source.config[1].name'",
            "duplicate link config name 'p'",
        ],
    );
}

#[test]
fn deprecated_source_and_target_config() {
    let failures = check(&link(
        "{namespace: wasi, package: blobstore, interfaces: [blobstore], target: kv, \
         target_config: [{name: t}], source_config: [{name: s}]}",
    ));
    assert_eq!(failures.len(), 2, "{}", messages(&failures));
    assert!(failures.iter().all(|f| !f.is_error()));
    let text = messages(&failures);
    assert!(
        text.contains("field 'properties.source_config': deprecated"),
        "{text}"
    );
    assert!(
        text.contains("field 'properties.target_config': deprecated"),
        "{text}"
    );
    assert!(!text.contains("ignored"), "{text}");

    let failures = check(&link(
        "{namespace: wasi, package: blobstore, interfaces: [blobstore], target: {name: kv}, \
         target_config: [{name: t}], source: {config: []}, source_config: [{name: s}]}",
    ));
    let text = messages(&failures);
    assert!(
        text.contains("ignored here, because `source` is also given"),
        "{text}"
    );
    assert!(
        text.contains("ignored here, because `target` is a map"),
        "{text}"
    );
}

#[test]
fn unknown_link_key_is_a_warning() {
    let failures = check(&link(
        "{namespace: wasi, package: keyvalue, interfaces: [store], target: kv, sorce: {config: []}}",
    ));
    assert_one(
        &failures,
        ValidationFailureLevel::Warning,
        &[
            "field 'properties.sorce'",
            "not a link property",
            "did you mean 'source'?",
        ],
    );
}

#[test]
fn trait_properties_must_match_the_trait_type() {
    let traits = "    - name: c\n      type: component\n      properties: {image: img}\n      traits:\n        \
         - {type: link, properties: {package: keyvalue, interfaces: [store], target: kv}}\n        \
         - {type: spreadscaler, properties: {spread: [{name: a, requirements: {}}]}}\n        \
         - {type: daemonscaler, properties: {namespace: wasi, package: http, interfaces: [x], target: kv}}\n        \
         - {type: link, properties: {instances: 1}}\n";
    let failures = check(&format!("{traits}{KV}"));
    let errors = failures.errors();
    assert_eq!(errors.len(), 4, "{}", messages(&failures));
    let text = messages(&failures);
    assert!(
        text.contains(
            "traits[0]), field 'properties': not valid link properties: missing field `namespace`"
        ),
        "{text}"
    );
    assert!(
        text.contains("trait 'spreadscaler'") && text.contains("missing field `instances`"),
        "{text}"
    );
    assert!(
        text.contains("trait 'daemonscaler'") && text.contains("these are link properties"),
        "{text}"
    );
    assert!(
        text.contains("traits[3]") && text.contains("these are scaler properties"),
        "{text}"
    );
}

#[test]
fn unknown_trait_types_are_ignored_with_a_warning() {
    let failures = check(
        "    - name: c\n      type: component\n      properties: {image: img}\n      traits:\n        \
         - {type: linkdef, properties: {namespace: wasi, package: http, interfaces: [incoming-handler], target: c}}\n        \
         - {type: customscaler, properties: {instances: 4, clouds: [aws]}}\n",
    );
    assert_eq!(failures.len(), 2, "{}", messages(&failures));
    assert!(failures.valid());
    let text = messages(&failures);
    assert!(
        text.contains("'linkdef' is not a trait type") && text.contains("did you mean 'link'?"),
        "{text}"
    );
    assert!(
        text.contains("'customscaler' is not a trait type"),
        "{text}"
    );
}

fn with_secrets(policies: &str) -> Vec<ValidationFailure> {
    let spec = format!(
        "  policies: {policies}\n  components:\n    - name: c\n      type: component\n      \
         properties:\n        image: img\n        secrets: [{{name: api, properties: {{policy: vault, key: k}}}}]\n      \
         traits:\n        - type: link\n          properties:\n            namespace: wasi\n            \
         package: keyvalue\n            interfaces: [store]\n            \
         target: {{name: c, secrets: [{{name: pw, properties: {{policy: vault, key: p, field: f}}}}]}}\n"
    );
    validate(&manifest("app", "{}", &spec))
}

#[test]
fn secrets_need_a_secret_policy_with_a_backend() {
    let ok = with_secrets(
        "[{name: vault, type: policy.secret.wasmcloud.dev/v1alpha1, properties: {backend: nats-kv}}]",
    );
    assert!(ok.is_empty(), "{}", messages(&ok));

    let unknown = with_secrets(
        "[{name: vaults, type: policy.secret.wasmcloud.dev/v1alpha1, properties: {backend: x}}]",
    );
    assert_eq!(unknown.errors().len(), 2, "{}", messages(&unknown));
    let text = messages(&unknown);
    assert!(text.contains("field 'properties.secrets[0].properties.policy': secret 'api' uses policy 'vault', which is not in spec.policies; did you mean 'vaults'?"), "{text}");
    assert!(
        text.contains("trait 'link'")
            && text.contains("field 'properties.target.secrets[0].properties.policy': secret 'pw'"),
        "{text}"
    );

    let wrong_type =
        with_secrets("[{name: vault, type: policy.other/v1, properties: {backend: x}}]");
    assert_eq!(wrong_type.errors().len(), 2, "{}", messages(&wrong_type));
    assert!(messages(&wrong_type).contains("whose type is 'policy.other/v1'"));

    let no_backend =
        with_secrets("[{name: vault, type: policy.secret.wasmcloud.dev/v1alpha1, properties: {}}]");
    assert_eq!(no_backend.errors().len(), 2, "{}", messages(&no_backend));
    assert!(messages(&no_backend).contains("no 'backend' property"));
}

#[test]
fn output_summaries_and_display() {
    let failures = [
        ValidationFailure::warning("w"),
        ValidationFailure::error("e"),
    ];
    assert!(!failures.valid());
    assert_eq!(failures.errors().len(), 1);
    assert_eq!(failures.warnings().len(), 1);
    assert_eq!(
        failures.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["[warning] w", "[error] e"]
    );
    assert!(failures.get(..1).is_some_and(ValidationOutput::valid));
}

#[test]
fn max_instance_reuse_must_be_positive_and_on_a_component_that_runs_its_image() {
    let ok = check(
        "    - {name: c, type: component, properties: {image: img, max_instance_reuse: 128}}\n",
    );
    assert!(ok.is_empty(), "{}", messages(&ok));
    assert_one(
        &check(
            "    - {name: c, type: component, properties: {image: img, max_instance_reuse: 0}}\n",
        ),
        ValidationFailureLevel::Error,
        &[
            "component 'c'",
            "properties.max_instance_reuse",
            "at least 1",
        ],
    );
    assert_one(
        &check(
            "    - {name: kv, type: capability, properties: {image: builtin://kv, max_instance_reuse: 4}}\n",
        ),
        ValidationFailureLevel::Error,
        &["'kv'", "properties.max_instance_reuse", "components only"],
    );
    assert_one(
        &check(
            "    - {name: s, type: component, properties: {application: {name: shared, component: c}, max_instance_reuse: 4}}\n",
        ),
        ValidationFailureLevel::Error,
        &[
            "'s'",
            "properties.max_instance_reuse",
            "shared component reference",
        ],
    );
    // Not a number: the manifest does not parse; the error names the component
    // and what was expected.
    let text = "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: app\n  annotations: {}\nspec:\n  components:\n    - {name: c, type: component, properties: {image: img, max_instance_reuse: many}}\n";
    let err = Manifest::from_yaml(text).expect_err("not a number");
    let err = err.to_string();
    assert!(
        err.contains("spec.components[0]") && err.contains("expected u32"),
        "{err}"
    );
}
