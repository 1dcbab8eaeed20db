//! In-process capabilities served to a component written exactly like a
//! wasmCloud 1.x component (`wasmcloud-component` crate): `wasi:config/store`
//! from named config, live; `wasi:logging` into the host's log.

mod common;

use std::collections::HashMap;

use common::{TestLattice, WAIT, expose_http, http_until};
use trellis_interfaces::ctl::ScaleComponentCommand;
use trellis_tests::{component_path, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn named_config_reaches_the_component_and_follows_changes() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let base = HashMap::from([
        ("greeting".to_string(), "hello".to_string()),
        ("colour".to_string(), "blue".to_string()),
    ]);
    l.ctl.put_config("app-base", &base).await.unwrap();
    l.ctl
        .put_config(
            "app-override",
            &HashMap::from([("colour".to_string(), "green".to_string())]),
        )
        .await
        .unwrap();
    let image = format!(
        "file://{}",
        component_path("http-config").unwrap().display()
    );
    let resp = l
        .ctl
        .scale_component(&ScaleComponentCommand {
            component_ref: image,
            component_id: "configured".into(),
            max_instances: 1,
            host_id: host.id().into(),
            config: vec!["app-base".into(), "app-override".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
    l.events
        .wait_for_type(
            "component_scaled",
            |e| e["data"]["component_id"] == "configured",
            WAIT,
        )
        .await
        .unwrap();
    let port = expose_http(&mut l, host.id(), "configured").await.unwrap();
    assert_eq!(http_until(port, "/greeting", 200).await.unwrap(), "hello");
    // Later names override earlier ones.
    assert_eq!(http_until(port, "/colour", 200).await.unwrap(), "green");
    assert_eq!(http_until(port, "/missing", 200).await.unwrap(), "<unset>");
    // Live: a config change is seen by the next invocation, no restart.
    l.ctl
        .put_config(
            "app-base",
            &HashMap::from([("greeting".to_string(), "bonjour".to_string())]),
        )
        .await
        .unwrap();
    eventually(WAIT, || async {
        let (_, body) = common::http_get(port, "/greeting").await?;
        anyhow::ensure!(body == "bonjour", "still {body}");
        Ok(())
    })
    .await
    .unwrap();
    // Deleting a config removes its values.
    l.ctl.delete_config("app-override").await.unwrap();
    eventually(WAIT, || async {
        let (_, body) = common::http_get(port, "/colour").await?;
        anyhow::ensure!(body == "<unset>", "still {body}");
        Ok(())
    })
    .await
    .unwrap();
    // wasi:logging lines land in the host log, tagged with the component id.
    let log = std::fs::read_to_string(host.log_path()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("config lookup for `greeting`"))
        .unwrap_or_else(|| panic!("no guest log line in host log:\n{log}"));
    assert!(line.contains("configured"), "{line}");
}
