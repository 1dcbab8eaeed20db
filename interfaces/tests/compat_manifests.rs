//! Real wadm 0.21 application manifests (`shared/compat/`): every sample in
//! `manifests/` parses and validates without errors, and every file in `validation/`
//! gets exactly the verdict `shared/compat/README.md` gives it, with messages that name
//! what is wrong and where.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed expectation is a failed test"
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use trellis_interfaces::manifest::{
    Manifest, ValidationFailure, ValidationFailureLevel, ValidationOutput, validate,
};

const COMPAT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/compat/");

fn path(dir: &str, file: &str) -> PathBuf {
    PathBuf::from(COMPAT).join(dir).join(file)
}

fn read(dir: &str, file: &str) -> String {
    let p = path(dir, file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn files_in(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(PathBuf::from(COMPAT).join(dir))
        .expect("compat fixture directory exists")
        .map(|entry| entry.expect("directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

fn parse(dir: &str, file: &str) -> Manifest {
    Manifest::from_yaml(&read(dir, file)).unwrap_or_else(|e| panic!("{dir}/{file}: {e}"))
}

fn show(failures: &[ValidationFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("  {f}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sample manifests and the warnings each one should get (no errors for any).
const SAMPLES: &[(&str, &[&[&str]])] = &[
    ("config.yaml", &[]),
    (
        "custom.yaml",
        &[&[
            "component 'userinfo', trait 'customscaler'",
            "ignored at deploy",
        ]],
    ),
    ("echo.yaml", &[]),
    ("hello.yaml", &[]),
    (
        "kvcounter.yaml",
        &[
            &[
                "component 'kvcounter'",
                "'wasi:keyvalue/atomic' is not a known interface",
            ],
            &[
                "component 'kvcounter'",
                "'wasi:keyvalue/eventual' is not a known interface",
            ],
        ],
    ),
    ("simple1.yaml", &[]),
    ("simple2.yaml", &[]),
    (
        "sqldbpostgres.yaml",
        &[&[
            "component 'querier'",
            "'wasmcloud:postgres' is not a known package",
        ]],
    ),
];

/// Each expected failure is a set of needles that must all occur in one message; the
/// failures must match the expectation one to one (no extra ones).
#[track_caller]
fn assert_failures(file: &str, got: &[&ValidationFailure], expected: &[&[&str]]) {
    assert_eq!(
        got.len(),
        expected.len(),
        "{file}: expected {} failures, got:\n{}",
        expected.len(),
        got.iter().map(|f| format!("  {f}\n")).collect::<String>()
    );
    for needles in expected {
        assert!(
            got.iter()
                .any(|f| needles.iter().all(|needle| f.msg.contains(needle))),
            "{file}: no failure contains all of {needles:?} in:\n{}",
            got.iter().map(|f| format!("  {f}\n")).collect::<String>()
        );
    }
}

#[test]
fn every_sample_manifest_is_covered() {
    let listed: BTreeSet<String> = SAMPLES.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(files_in("manifests"), listed);
}

#[test]
fn sample_manifests_parse_and_have_no_errors() {
    for (file, warnings) in SAMPLES {
        let manifest = parse("manifests", file);
        let failures = validate(&manifest);
        assert!(failures.valid(), "{file}:\n{}", show(&failures));
        assert_failures(file, &failures.warnings(), warnings);
    }
}

#[test]
fn sample_manifests_round_trip_through_json_and_yaml() {
    for (file, _) in SAMPLES {
        let manifest = parse("manifests", file);
        let json = manifest.to_json().expect("encodes as JSON");
        let from_json = Manifest::from_json(&json).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(from_json, manifest, "{file} via JSON");
        let from_sniffed = Manifest::from_yaml_or_json(json.as_bytes()).expect("sniffs JSON");
        assert_eq!(from_sniffed, manifest, "{file} via sniffing");
        let yaml = manifest.to_yaml().expect("encodes as YAML");
        let from_yaml = Manifest::from_yaml(&yaml).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(from_yaml, manifest, "{file} via YAML");
        assert_eq!(validate(&from_json), validate(&manifest), "{file}");
    }
}

#[test]
fn sample_manifest_details() {
    let m = parse("manifests", "sqldbpostgres.yaml");
    assert_eq!(m.name(), "rust-sqldb-postgres-query");
    assert_eq!(m.version(), Some("v0.0.1"));
    assert!(
        m.description()
            .is_some_and(|d| d.starts_with("Demo WebAssembly component"))
    );
    let querier = m.component("querier").expect("querier");
    assert_eq!(
        querier.component_id(m.name()),
        "rust_sqldb_postgres_query-querier"
    );
    let links: Vec<_> = m
        .links()
        .map(|(c, l)| (c.name.as_str(), l.target.name.as_str()))
        .collect();
    assert_eq!(links, [("querier", "sqldb-postgres")]);

    let m = parse("manifests", "simple1.yaml");
    let userinfo = m.component("userinfo").expect("userinfo");
    assert!(!userinfo.is_capability(), "`actor` is a component");
    assert_eq!(userinfo.scalers().count(), 1);
    assert_eq!(m.description(), Some("This is my app"));
    assert_eq!(m.version(), None);
}

/// What `shared/compat/README.md` says about a file of `validation/`.
enum Verdict {
    /// Valid (errors: none; warnings: not specified).
    Valid,
    /// Valid, no warnings either.
    Clean,
    /// Valid with exactly these warnings.
    Warnings(&'static [&'static [&'static str]]),
    /// Invalid: at least these errors (possibly more, and any warnings).
    Invalid(&'static [&'static [&'static str]]),
    /// Invalid with exactly these errors and nothing else.
    ExactErrors(&'static [&'static [&'static str]]),
    /// Refused by the parser, with a message containing this.
    ParseError(&'static str),
}

const VERDICTS: &[(&str, Verdict)] = &[
    ("correct_unique_interface_links.yaml", Verdict::Valid),
    ("custom-interface.wadm.yaml", Verdict::Clean),
    ("policy.wadm.yaml", Verdict::Clean),
    (
        "misnamed-interface.wadm.yaml",
        Verdict::Warnings(&[&[
            "component 'counter', trait 'link'",
            "field 'properties.interfaces'",
            "'wasi:keyvalue/atomic' is not a known interface",
            "did you mean 'atomics'?",
        ]]),
    ),
    (
        "unknown-package.wadm.yaml",
        Verdict::Warnings(&[&[
            "component 'counter', trait 'link'",
            "field 'properties.package'",
            "'wasi:keyvalues' is not a known package",
            "did you mean 'keyvalue'?",
        ]]),
    ),
    (
        "deprecated-source-and-target-config.yaml",
        Verdict::Warnings(&[
            &[
                "component 'http-blobstore', trait 'link'",
                "field 'properties.target_config': deprecated",
            ],
            &[
                "component 'httpserver', trait 'link'",
                "field 'properties.source_config': deprecated",
            ],
        ]),
    ),
    (
        "dangling-link.wadm.yaml",
        Verdict::Invalid(&[&[
            "component 'http-component', trait 'link'",
            "field 'properties.target.name'",
            "link target 'httpclient' is missing",
            "dangling link",
        ]]),
    ),
    (
        "duplicate_component.yaml",
        Verdict::Invalid(&[
            &[
                "component 'ui' (spec.components[1])",
                "duplicate component name",
            ],
            &[
                "component 'vets' (spec.components[3])",
                "duplicate component name",
            ],
        ]),
    ),
    (
        "incorrect_component.yaml",
        Verdict::Invalid(&[&[
            "component 'ui' (spec.components[1])",
            "duplicate component name",
        ]]),
    ),
    (
        "duplicate_id1.yaml",
        Verdict::Invalid(&[&[
            "component 'webcap2'",
            "field 'properties.id'",
            "duplicate component identifier 'httpserver'",
            "'webcap'",
        ]]),
    ),
    (
        "duplicate_id2.yaml",
        Verdict::Invalid(&[&[
            "component 'ui2'",
            "field 'properties.id'",
            "duplicate component identifier 'ui'",
        ]]),
    ),
    (
        "missing_capability_component.yaml",
        Verdict::Invalid(&[&[
            "component 'echo', trait 'linkdef'",
            "field 'properties.target.name'",
            "link target 'httpclyent' is missing",
            "did you mean 'httpclient'?",
        ]]),
    ),
    (
        "duplicate_links.yaml",
        Verdict::Invalid(&[&[
            "component 'httpserver', trait 'link' (spec.components[2].traits[1])",
            "duplicate link inside component 'httpserver'",
            "'wasi:http/incoming-handler'",
        ]]),
    ),
    (
        "incorrect_unique_interface_links.yaml",
        Verdict::Invalid(&[&[
            "component 'my-component', trait 'link' (spec.components[0].traits[2])",
            "duplicate link inside component 'my-component'",
            "'wasi:keyvalue/atomics'",
            "different targets ('redis-1' there, 'redis-2' here)",
        ]]),
    ),
    (
        "duplicate_link_config_names.wadm.yaml",
        Verdict::ExactErrors(&[
            &[
                "component 'userinfo2'",
                "duplicate link config name 'redis-url'",
            ],
            &[
                "component 'webcap1'",
                "duplicate link config name 'alternate-port'",
            ],
            &[
                "component 'webcap2'",
                "duplicate link config name 'default-port'",
            ],
        ]),
    ),
    (
        "made-up-key.wadm.yaml",
        Verdict::ParseError("unknown field `incorrect`"),
    ),
];

#[test]
fn every_validation_fixture_has_a_verdict() {
    let listed: BTreeSet<String> = VERDICTS.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(files_in("validation"), listed);
}

#[test]
fn validation_fixtures_get_the_readme_verdict() {
    for (file, verdict) in VERDICTS {
        let text = read("validation", file);
        let parsed = Manifest::from_yaml(&text);
        if let Verdict::ParseError(needle) = verdict {
            let err = parsed.expect_err(file).to_string();
            assert!(err.contains(needle), "{file}: {err}");
            continue;
        }
        let failures = validate(&parsed.unwrap_or_else(|e| panic!("{file}: {e}")));
        let errors = failures.errors();
        let warnings = failures.warnings();
        match verdict {
            Verdict::Valid => assert!(errors.is_empty(), "{file}:\n{}", show(&failures)),
            Verdict::Clean => assert!(failures.is_empty(), "{file}:\n{}", show(&failures)),
            Verdict::Warnings(expected) => {
                assert!(errors.is_empty(), "{file}:\n{}", show(&failures));
                assert_failures(file, &warnings, expected);
            }
            Verdict::Invalid(expected) => {
                assert!(!failures.valid(), "{file} should be invalid");
                for needles in *expected {
                    assert!(
                        errors
                            .iter()
                            .any(|f| needles.iter().all(|n| f.msg.contains(n))),
                        "{file}: no error contains all of {needles:?} in:\n{}",
                        show(&failures)
                    );
                }
            }
            Verdict::ExactErrors(expected) => {
                assert!(warnings.is_empty(), "{file}:\n{}", show(&failures));
                assert_failures(file, &errors, expected);
            }
            Verdict::ParseError(_) => {}
        }
        assert!(
            failures
                .iter()
                .all(|f| f.level == ValidationFailureLevel::Warning
                    || f.msg.starts_with("component '")
                    || f.msg.starts_with("metadata.")),
            "{file}: every error says where it is:\n{}",
            show(&failures)
        );
    }
}

/// Print every verdict (run with `--nocapture` to see the messages users get).
#[test]
fn validation_messages_are_printable() {
    for (file, _) in VERDICTS {
        match Manifest::from_yaml(&read("validation", file)) {
            Ok(m) => println!("{file}:\n{}", show(&validate(&m))),
            Err(e) => println!("{file}: parse error: {e}"),
        }
    }
}
