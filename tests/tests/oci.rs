//! Components pulled from an OCI registry (a loopback registry speaking the
//! distribution API, serving the CNCF Wasm artifact format).

mod common;

use common::{TestLattice, expose_http, http_until, scale};
use trellis_tests::{HostProcess, OciRegistry, component_path};

#[tokio::test(flavor = "multi_thread")]
async fn components_start_from_oci_with_latest_refused_and_digests_cached() {
    let mut l = TestLattice::start().await.unwrap();
    let wasm = std::fs::read(component_path("http-hello").unwrap()).unwrap();
    let registry = OciRegistry::start("trellis/http-hello", "0.1.0", wasm)
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let host = HostProcess::start(
        l.host_options()
            .arg("--allowed-insecure")
            .arg(registry.host())
            .arg("--cache-dir")
            .arg(cache.path().display().to_string()),
    )
    .await
    .unwrap();
    let tagged = format!("{}/trellis/http-hello:0.1.0", registry.host());
    let ev = scale(&mut l, host.id(), &tagged, "hello", 1).await.unwrap();
    assert!(
        ev["type"].as_str().unwrap().ends_with("component_scaled"),
        "{ev}"
    );
    let port = expose_http(&mut l, host.id(), "hello").await.unwrap();
    assert_eq!(
        http_until(port, "/", 200).await.unwrap(),
        "Hello from Trellis!\n"
    );

    // `latest` and untagged references are refused without --allow-latest.
    for reference in [
        format!("{}/trellis/http-hello:latest", registry.host()),
        format!("{}/trellis/http-hello", registry.host()),
    ] {
        let ev = scale(&mut l, host.id(), &reference, "latest", 1)
            .await
            .unwrap();
        let error = ev["data"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("--allow-latest"), "{ev}");
    }
    // A reference that does not exist fails with the reference in the message.
    let missing = format!("{}/trellis/nope:1.0.0", registry.host());
    let ev = scale(&mut l, host.id(), &missing, "missing", 1)
        .await
        .unwrap();
    let error = ev["data"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot pull") && error.contains("trellis/nope"),
        "{ev}"
    );

    // Digest-pinned references never touch the registry twice.
    let pinned = format!(
        "{}/trellis/http-hello@{}",
        registry.host(),
        registry.manifest_digest()
    );
    scale(&mut l, host.id(), &pinned, "pinned", 1)
        .await
        .unwrap();
    scale(&mut l, host.id(), &pinned, "pinned", 0)
        .await
        .unwrap();
    let before = registry.requests();
    scale(&mut l, host.id(), &pinned, "pinned", 1)
        .await
        .unwrap();
    assert_eq!(
        registry.requests(),
        before,
        "a digest-pinned reference was fetched again"
    );
}
