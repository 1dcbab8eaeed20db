//! A custom capability provider written with `trellis-provider-sdk`
//! (`examples/providers/system-info`) and a component that uses it
//! (`system-info-caller`), on different hosts, talking both ways over links:
//! component → provider (`request-info`, `call-back`) and provider → component
//! (`invoker.call`, during `call-back`). Then the provider is killed with
//! SIGKILL: the host restarts it and the same links work again.
//!
//! Build first: `cargo build -p trellis-host -p system-info-provider`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test loudly on purpose"
)]

mod common;

use common::{
    TestLattice, WAIT, expose_http, http_get, http_until, scale, start_provider, system_info_link,
    system_info_provider_ref,
};
use trellis_tests::component_path;

#[tokio::test(flavor = "multi_thread")]
async fn component_and_provider_on_different_hosts_call_each_other_and_survive_a_kill() {
    let mut l = TestLattice::start().await.unwrap();
    let a = l.host().await.unwrap();
    let b = l.host().await.unwrap();
    let caller = format!(
        "file://{}",
        component_path("system-info-caller").unwrap().display()
    );
    scale(&mut l, a.id(), &caller, "caller", 4).await.unwrap();
    let provider_ref = system_info_provider_ref().unwrap();
    start_provider(&mut l, b.id(), "system-info", &provider_ref)
        .await
        .unwrap();
    for l2 in [
        system_info_link("caller", "system-info", "info"),
        system_info_link("system-info", "caller", "invoker"),
    ] {
        let resp = l.ctl.put_link(&l2).await.unwrap();
        assert!(resp.success, "{}", resp.message);
    }
    let port = expose_http(&mut l, a.id(), "caller").await.unwrap();

    // component → provider (on the other host)
    let os = http_until(port, "/info/os", 200).await.unwrap();
    assert_eq!(os, format!("os: {}\n", std::env::consts::OS));
    let arch = http_until(port, "/info/arch", 200).await.unwrap();
    assert_eq!(arch, format!("arch: {}\n", std::env::consts::ARCH));
    // component → provider → component (the provider calls our export back)
    let back = http_until(port, "/callback", 200).await.unwrap();
    assert_eq!(back, "callback: hello from system-info-caller\n");

    // SIGKILL the provider: its host restarts it, the links are re-delivered,
    // and calls work again without touching anything.
    let pid = provider_pid(&b);
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    l.events
        .wait_for_type(
            "provider_started",
            |e| e["data"]["provider_id"] == "system-info",
            WAIT,
        )
        .await
        .unwrap();
    trellis_tests::eventually(WAIT, || async {
        let (status, body) = http_get(port, "/callback").await?;
        anyhow::ensure!(status == 200, "{status}: {body}");
        anyhow::ensure!(
            body == "callback: hello from system-info-caller\n",
            "{body}"
        );
        Ok(())
    })
    .await
    .unwrap();
    assert_ne!(provider_pid(&b), pid, "the provider process was replaced");
}

/// Pid of the `system-info-provider` child of `host`.
fn provider_pid(host: &trellis_tests::HostProcess) -> u32 {
    let parent = host.pid().unwrap();
    let out = std::process::Command::new("pgrep")
        .args(["-P", &parent.to_string(), "-f", "system-info-provider"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no system-info-provider child of {parent}"))
}
