//! Signed components on real hosts (issue 5, admission control): a signed
//! `http-hello` runs and its claims are served by `claims.get`; tampered,
//! expired, unsigned-under-`--require-signed` and foreign-issuer artifacts are
//! refused with a `component_scale_failed` event that says why.
#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing yields Null on a missing key, it never panics"
)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{TestLattice, WAIT, expose_http, hello_ref, http_until, scale};
use nkeys::KeyPair;
use tempfile::TempDir;
use trellis_interfaces::claims::{self, Claims, Component};
use trellis_interfaces::ctl::UpdateComponentCommand;
use trellis_tests::{HostProcess, component_path};

/// A signed copy of `http-hello`, written to a temporary directory.
struct SignedHello {
    _dir: TempDir,
    path: PathBuf,
    /// The component's own key (`sub`), `M…`.
    subject: String,
}

impl SignedHello {
    /// Signs `http-hello` with `issuer`, expiring at `expires` (seconds since
    /// the epoch) if given.
    fn new(issuer: &KeyPair, expires: Option<u64>) -> anyhow::Result<Self> {
        let unsigned = std::fs::read(component_path("http-hello")?)?;
        let subject = KeyPair::new_module().public_key();
        let mut claims = Claims::new(
            issuer.public_key(),
            subject.clone(),
            now_secs().saturating_sub(60),
            Component {
                name: Some("http-hello".into()),
                tags: Some(vec!["trellis-test".into(), "signed".into()]),
                rev: Some(7),
                ver: Some("0.1.0".into()),
                ..Default::default()
            },
        );
        claims.expires = expires;
        let signed = claims::embed_component_claims(&unsigned, &claims, issuer)?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("http_hello_s.wasm");
        std::fs::write(&path, signed)?;
        Ok(Self {
            _dir: dir,
            path,
            subject,
        })
    }

    fn image_ref(&self) -> String {
        format!("file://{}", self.path.display())
    }

    /// Flips one byte in the code section of the component's largest core
    /// module, leaving every section size (and so the structure) intact.
    fn tamper_with_code(&self) -> anyhow::Result<()> {
        let mut wasm = std::fs::read(&self.path)?;
        let offset = {
            let (_, top) = claims::sections(&wasm)?;
            let module = top
                .iter()
                .filter(|s| s.id == 1)
                .max_by_key(|s| s.contents.len())
                .ok_or_else(|| anyhow::anyhow!("no core module in http-hello"))?;
            let (_, inner) = claims::sections(module.contents)?;
            let code = inner
                .iter()
                .find(|s| s.id == 10)
                .ok_or_else(|| anyhow::anyhow!("no code section"))?;
            module.offset + code.offset + code.contents.len() / 2
        };
        let byte = wasm
            .get_mut(offset)
            .ok_or_else(|| anyhow::anyhow!("offset {offset} out of range"))?;
        *byte ^= 0x01;
        std::fs::write(&self.path, wasm)?;
        Ok(())
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Scales `image_ref` as `id` on `host` and returns the event's `data.error`,
/// failing if the component started instead.
async fn refusal(
    l: &mut TestLattice,
    host: &HostProcess,
    image_ref: &str,
    id: &str,
) -> anyhow::Result<String> {
    let event = scale(l, host.id(), image_ref, id, 1).await?;
    let ty = event["type"].as_str().unwrap_or_default();
    anyhow::ensure!(
        ty.ends_with("component_scale_failed"),
        "expected a refusal, got {event}"
    );
    let inventory = l.ctl.get_host_inventory(host.id()).await?;
    anyhow::ensure!(
        inventory.components.iter().all(|c| c.id != id),
        "refused component `{id}` is in the inventory"
    );
    Ok(event["data"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_component_runs_and_claims_get_serves_its_claims() {
    let mut l = TestLattice::start().await.unwrap();
    let account = KeyPair::new_account();
    let host = HostProcess::start(
        l.host_options()
            .arg("--require-signed")
            .arg("--allowed-issuers")
            .arg(format!(
                "{},{}",
                KeyPair::new_account().public_key(),
                account.public_key()
            )),
    )
    .await
    .unwrap();
    let signed = SignedHello::new(&account, Some(now_secs() + 3_600)).unwrap();

    let event = scale(&mut l, host.id(), &signed.image_ref(), "hello", 1)
        .await
        .unwrap();
    assert!(
        event["type"]
            .as_str()
            .unwrap()
            .ends_with("component_scaled"),
        "{event}"
    );
    let data = &event["data"];
    assert_eq!(data["public_key"], signed.subject.as_str());
    assert_eq!(data["claims"]["issuer"], account.public_key().as_str());
    assert_eq!(data["claims"]["name"], "http-hello");
    assert_eq!(data["claims"]["revision"], 7);
    assert_eq!(
        data["claims"]["tags"],
        serde_json::json!(["trellis-test", "signed"])
    );
    assert_eq!(data["claims"]["not_before_human"], "immediately");
    let expires = data["claims"]["expires_human"].as_str().unwrap();
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");

    let port = expose_http(&mut l, host.id(), "hello").await.unwrap();
    assert_eq!(
        http_until(port, "/", 200).await.unwrap(),
        "Hello from Trellis!\n"
    );

    let subject = signed.subject.clone();
    let served = trellis_tests::eventually(WAIT, || {
        let ctl = l.ctl.clone();
        let subject = subject.clone();
        async move {
            let all = ctl.get_claims().await?;
            all.into_iter()
                .find(|c| c.get("subject") == Some(&subject))
                .ok_or_else(|| anyhow::anyhow!("claims.get has no entry for {subject}"))
        }
    })
    .await
    .unwrap();
    assert_eq!(served["issuer"], account.public_key());
    assert_eq!(served["iss"], account.public_key());
    assert_eq!(served["sub"], signed.subject);
    assert_eq!(served["name"], "http-hello");
    assert_eq!(served["version"], "0.1.0");
    assert_eq!(served["revision"], "7");
    assert_eq!(served["tags"], "trellis-test,signed");
    assert_eq!(served["call_alias"], "");

    let inventory = l.ctl.get_host_inventory(host.id()).await.unwrap();
    let hello = inventory
        .components
        .iter()
        .find(|c| c.id == "hello")
        .unwrap();
    assert_eq!(hello.name.as_deref(), Some("http-hello"));
    assert_eq!(hello.revision, 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_flipped_code_byte_is_refused_with_hash_mismatch() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let signed = SignedHello::new(&KeyPair::new_account(), None).unwrap();
    signed.tamper_with_code().unwrap();
    let error = refusal(&mut l, &host, &signed.image_ref(), "tampered")
        .await
        .unwrap();
    assert!(
        error.starts_with("component `tampered` refused: hash mismatch"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_claims_are_refused() {
    let mut l = TestLattice::start().await.unwrap();
    let host = l.host().await.unwrap();
    let signed = SignedHello::new(&KeyPair::new_account(), Some(now_secs() - 3_600)).unwrap();
    let error = refusal(&mut l, &host, &signed.image_ref(), "expired")
        .await
        .unwrap();
    assert!(
        error.starts_with("component `expired` refused: claims expired at"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_is_refused_under_require_signed_and_runs_without_it() {
    let mut l = TestLattice::start().await.unwrap();
    let strict = HostProcess::start(l.host_options().arg("--require-signed"))
        .await
        .unwrap();
    let lenient = l.host().await.unwrap();
    let hello = hello_ref().unwrap();
    let error = refusal(&mut l, &strict, &hello, "unsigned").await.unwrap();
    assert_eq!(
        error,
        "component `unsigned` is unsigned and this host requires signed components (--require-signed)"
    );
    let event = scale(&mut l, lenient.id(), &hello, "unsigned", 1)
        .await
        .unwrap();
    assert!(
        event["type"]
            .as_str()
            .unwrap()
            .ends_with("component_scaled"),
        "{event}"
    );
    assert!(event["data"].get("claims").is_none(), "{event}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_issuer_is_refused_under_allowed_issuers() {
    let mut l = TestLattice::start().await.unwrap();
    let trusted = KeyPair::new_account();
    let stranger = KeyPair::new_account();
    let host = HostProcess::start(
        l.host_options()
            .arg("--allowed-issuers")
            .arg(trusted.public_key()),
    )
    .await
    .unwrap();
    let signed = SignedHello::new(&stranger, None).unwrap();
    let error = refusal(&mut l, &host, &signed.image_ref(), "foreign")
        .await
        .unwrap();
    assert_eq!(
        error,
        format!(
            "component `foreign` refused: issuer {} is not in --allowed-issuers",
            stranger.public_key()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_cannot_swap_in_an_unsigned_image() {
    let mut l = TestLattice::start().await.unwrap();
    let host = HostProcess::start(l.host_options().arg("--require-signed"))
        .await
        .unwrap();
    let signed = SignedHello::new(&KeyPair::new_account(), None).unwrap();
    let event = scale(&mut l, host.id(), &signed.image_ref(), "hello", 1)
        .await
        .unwrap();
    assert!(
        event["type"]
            .as_str()
            .unwrap()
            .ends_with("component_scaled"),
        "{event}"
    );
    let unsigned = hello_ref().unwrap();
    let resp = l
        .ctl
        .update_component(&UpdateComponentCommand {
            component_id: "hello".into(),
            host_id: host.id().to_string(),
            new_component_ref: unsigned.clone(),
            annotations: None,
        })
        .await
        .unwrap();
    assert!(resp.success, "{}", resp.message);
    let failed = l
        .events
        .wait_for_type(
            "component_scale_failed",
            |e| e["data"]["component_id"] == "hello",
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(failed["data"]["image_ref"], unsigned.as_str());
    assert!(
        failed["data"]["error"]
            .as_str()
            .unwrap()
            .contains("requires signed components"),
        "{failed}"
    );
    let inventory = l.ctl.get_host_inventory(host.id()).await.unwrap();
    let hello = inventory
        .components
        .iter()
        .find(|c| c.id == "hello")
        .unwrap();
    assert_eq!(hello.image_ref, signed.image_ref());
}
