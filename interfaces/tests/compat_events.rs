//! Wire compatibility with real wasmCloud 1.x / wadm data: every event in
//! `shared/compat/events.json` and the examples of PROTOCOL.md Appendix A must decode
//! into the typed values and re-encode to the same JSON value.
//!
//! No field is declared legacy-and-ignored: legacy fields (`caps` in component claims,
//! `instance_id`/`public_key`/`link_name` in provider events, `issuer` in heartbeats)
//! are modelled as optional fields, so the comparison below is exact.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed expectation is a failed test"
)]

use serde_json::{Value, json};
use trellis_interfaces::ctl::{CtlResponse, ScaleComponentCommand};
use trellis_interfaces::event::{CloudEvent, LatticeEvent};
use trellis_interfaces::link::{ComponentSpecification, Link};

const EVENTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/compat/events.json"
));

fn corpus() -> Vec<Value> {
    serde_json::from_str(EVENTS).expect("events.json is a JSON array")
}

/// The variant name each event type must decode into.
fn expected_variant(ty: &str) -> &'static str {
    match ty {
        "com.wasmcloud.lattice.component_scaled" => "ComponentScaled",
        "com.wasmcloud.lattice.component_scale_failed" => "ComponentScaleFailed",
        "com.wasmcloud.lattice.provider_started" => "ProviderStarted",
        "com.wasmcloud.lattice.provider_start_failed" => "ProviderStartFailed",
        "com.wasmcloud.lattice.provider_stopped" => "ProviderStopped",
        "com.wasmcloud.lattice.health_check_passed" => "HealthCheckPassed",
        "com.wasmcloud.lattice.health_check_failed" => "HealthCheckFailed",
        "com.wasmcloud.lattice.health_check_status" => "HealthCheckStatus",
        "com.wasmcloud.lattice.host_heartbeat" => "HostHeartbeat",
        "com.wasmcloud.lattice.host_started" => "HostStarted",
        "com.wasmcloud.lattice.host_stopped" => "HostStopped",
        "com.wasmcloud.lattice.linkdef_set" => "LinkdefSet",
        "com.wasmcloud.lattice.linkdef_deleted" => "LinkdefDeleted",
        "com.wasmcloud.lattice.config_set" => "ConfigSet",
        "com.wasmcloud.lattice.config_deleted" => "ConfigDeleted",
        "com.wadm.manifest_published" => "ManifestPublished",
        "com.wadm.manifest_unpublished" => "ManifestUnpublished",
        other => panic!("events.json has an event type this test does not know: {other}"),
    }
}

fn variant_name(event: &LatticeEvent) -> String {
    let debug = format!("{event:?}");
    debug.split('(').next().unwrap_or_default().to_string()
}

#[test]
fn corpus_has_all_seventeen_events() {
    assert_eq!(corpus().len(), 17);
}

#[test]
fn every_event_decodes_into_its_variant_and_round_trips() {
    for (i, input) in corpus().into_iter().enumerate() {
        let envelope: CloudEvent = serde_json::from_value(input.clone())
            .unwrap_or_else(|e| panic!("event #{i}: not a CloudEvent: {e}"));
        let event = envelope
            .decode()
            .unwrap_or_else(|e| panic!("event #{i} ({}): {e}", envelope.ty));

        assert_eq!(
            variant_name(&event),
            expected_variant(&envelope.ty),
            "event #{i}"
        );
        assert_eq!(event.event_type(), envelope.ty, "event #{i}");
        assert_eq!(envelope.name(), Some(event.name()), "event #{i}");

        // Re-encode the typed payload into the same envelope and compare as values.
        let mut reencoded = envelope.clone();
        reencoded.data = event.to_data();
        let output = serde_json::to_value(&reencoded).unwrap();
        assert_eq!(
            output, input,
            "event #{i} ({}) changed in a round trip",
            envelope.ty
        );
    }
}

#[test]
fn fresh_envelopes_decode_to_the_same_event() {
    for input in corpus() {
        let envelope: CloudEvent = serde_json::from_value(input).unwrap();
        let event = envelope.decode().unwrap();
        let fresh = CloudEvent::new(&envelope.source, &event);
        assert_eq!(fresh.specversion, "1.0");
        assert_eq!(fresh.datacontenttype, "application/json");
        assert_eq!(fresh.ty, envelope.ty);
        assert_eq!(fresh.data, envelope.data);
        assert_eq!(fresh.decode().unwrap(), event);
        assert_ne!(fresh.id, envelope.id);
    }
}

#[test]
fn typed_fields_are_read_from_the_corpus() {
    let events: Vec<LatticeEvent> = corpus()
        .into_iter()
        .map(|v| {
            serde_json::from_value::<CloudEvent>(v)
                .unwrap()
                .decode()
                .unwrap()
        })
        .collect();
    let scaled = events
        .iter()
        .find_map(|e| match e {
            LatticeEvent::ComponentScaled(p) => Some(p),
            _ => None,
        })
        .unwrap();
    assert_eq!(scaled.max_instances, 10);
    assert_eq!(scaled.component_id, "wasmcloud_azurecr_io_echo_0_3_4");
    let claims = scaled.claims.as_ref().unwrap();
    assert_eq!(claims.revision, Some(4));
    assert_eq!(claims.tags.as_deref(), Some(&[][..]));
    let heartbeat = events
        .iter()
        .find_map(|e| match e {
            LatticeEvent::HostHeartbeat(p) => Some(p),
            _ => None,
        })
        .unwrap();
    assert_eq!(heartbeat.inventory.components.len(), 1);
    assert_eq!(
        heartbeat.inventory.providers[0].name.as_deref(),
        Some("HTTP Server")
    );
    assert_eq!(heartbeat.inventory.uptime_seconds, 30);
    assert!(heartbeat.issuer.is_some());
    let link = events
        .iter()
        .find_map(|e| match e {
            LatticeEvent::LinkdefSet(l) => Some(l),
            _ => None,
        })
        .unwrap();
    assert_eq!(link.interfaces, vec!["pingpong", "busybox"]);
}

#[test]
fn appendix_a_scale_request_round_trips() {
    let input = json!({
        "component_ref": "ghcr.io/wasmcloud/components/http-hello-world-rust:0.1.0",
        "component_id": "rust_hello_world-http_component",
        "annotations": {
            "wasmcloud.dev/appspec": "rust-hello-world",
            "wasmcloud.dev/managed-by": "wadm",
            "wasmcloud.dev/scaler": "4722b6c5",
            "wasmcloud.dev/spread_name": "default"
        },
        "count": 1,
        "host_id": "NBZ",
        "config": ["rust_hello_world-custom_config"],
        "allow_update": false
    });
    let cmd: ScaleComponentCommand = serde_json::from_value(input.clone()).unwrap();
    assert_eq!(cmd.max_instances, 1);
    assert_eq!(cmd.config, vec!["rust_hello_world-custom_config"]);
    assert_eq!(serde_json::to_value(&cmd).unwrap(), input);
}

#[test]
fn appendix_a_replies_round_trip() {
    let input = json!({"success": true, "message": ""});
    let reply: CtlResponse<()> = serde_json::from_value(input.clone()).unwrap();
    assert!(reply.success);
    assert_eq!(serde_json::to_value(&reply).unwrap(), input);
    assert_eq!(
        serde_json::to_value(CtlResponse::<()>::success()).unwrap(),
        input
    );

    let failure = json!({"success": false, "message": "unsupported subject"});
    let reply: CtlResponse<()> = serde_json::from_value(failure.clone()).unwrap();
    assert_eq!(serde_json::to_value(&reply).unwrap(), failure);
    assert_eq!(
        serde_json::to_value(CtlResponse::error("unsupported subject")).unwrap(),
        failure
    );

    let links = json!({"success": true, "message": "", "response": [{
        "source_id": "a", "target": "b", "name": "default", "wit_namespace": "wasi",
        "wit_package": "http", "interfaces": ["incoming-handler"],
        "source_config": [], "target_config": []}]});
    let reply: CtlResponse<Vec<Link>> = serde_json::from_value(links.clone()).unwrap();
    assert_eq!(reply.response.as_ref().map(Vec::len), Some(1));
    assert_eq!(serde_json::to_value(&reply).unwrap(), links);
}

#[test]
fn appendix_a_link_put_and_spec_round_trip() {
    let link_json = json!({
        "source_id": "rust_hello_world-httpserver",
        "target": "rust_hello_world-http_component",
        "name": "default",
        "wit_namespace": "wasi",
        "wit_package": "http",
        "interfaces": ["incoming-handler"],
        "source_config": ["rust_hello_world-default_http"],
        "target_config": []
    });
    let link: Link = serde_json::from_value(link_json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&link).unwrap(), link_json);

    let mut spec = ComponentSpecification::new("ghcr.io/wasmcloud/http-server:0.27.0");
    spec.put_link(link).unwrap();
    assert_eq!(
        serde_json::to_value(&spec).unwrap(),
        json!({"url": "ghcr.io/wasmcloud/http-server:0.27.0", "links": [link_json]})
    );
}
