//! The real `wash` binary's offline commands (issue 5): `keys`, `claims sign`
//! and `inspect`, `par create` and `inspect`, `inspect` with a component's
//! world, and a component signed by `wash` admitted by a host that requires
//! its issuer.
//!
//! Build wash first: `cargo build -p trellis-wash` (and `-p trellis-host` for
//! the lattice test).
#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing yields Null on a missing key, it never panics"
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use common::{TestLattice, expose_http, http_until, scale};
use serde_json::Value;
use tempfile::TempDir;
use trellis_interfaces::claims::{self, par};
use trellis_tests::wash::{WashRun as Run, run_wash, wash_binary};
use trellis_tests::{HostProcess, component_path};

/// How long one `wash` run may take: the offline commands take milliseconds,
/// so this only turns a hang into a failure.
const WASH_DEADLINE: Duration = Duration::from_secs(60);

/// How long an expiry of "0 days from now" may take to be in the past: the
/// claims expire in the second they were signed.
const EXPIRY_WAIT: Duration = Duration::from_secs(10);

/// `wash` in a scratch directory with its own keys directory and `$USER`, so
/// nothing of the developer's `~/.wash` is read or written.
struct Wash {
    bin: PathBuf,
    dir: TempDir,
}

impl Wash {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            bin: wash_binary()?,
            dir: tempfile::tempdir()?,
        })
    }

    /// The scratch directory (wash's working directory).
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The keys directory (`$WASH_KEYS`), not created until a key is stored.
    fn keys(&self) -> PathBuf {
        self.path("keys")
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<Run> {
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("WASH_KEYS", self.keys())
            .env("USER", "tester")
            .env("HOME", self.dir.path())
            .env_remove("WASH_ISSUER_KEY")
            .env_remove("WASH_SUBJECT_KEY")
            .env_remove("WASH_JSON_SCHEMA")
            .kill_on_drop(true);
        run_wash(command, args, WASH_DEADLINE).await
    }

    async fn ok(&self, args: &[&str]) -> anyhow::Result<Run> {
        let run = self.run(args).await?;
        anyhow::ensure!(run.success, "wash {args:?} failed:\n{}", run.all());
        Ok(run)
    }

    async fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        self.ok(&args).await?.json()
    }

    /// Runs wash expecting failure; returns stdout and stderr together.
    async fn fails(&self, args: &[&str]) -> anyhow::Result<Run> {
        let run = self.run(args).await?;
        anyhow::ensure!(
            !run.success,
            "wash {args:?} should have failed:\n{}",
            run.all()
        );
        Ok(run)
    }

    /// `wash keys gen account --name NAME`: the account's public key and key file.
    async fn account(&self, name: &str) -> anyhow::Result<(String, PathBuf)> {
        let key = self
            .json(&["keys", "gen", "account", "--name", name])
            .await?;
        let public = key["public_key"].as_str().context("no public_key")?;
        let path = key["path"].as_str().context("no path")?;
        Ok((public.to_string(), PathBuf::from(path)))
    }

    /// Copies `http-hello` into the scratch directory as `app.wasm`.
    fn hello(&self) -> anyhow::Result<PathBuf> {
        let path = self.path("app.wasm");
        std::fs::copy(component_path("http-hello")?, &path)?;
        Ok(path)
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// Flips one byte in the code section of the component's largest core module,
/// leaving every section size (and so the structure) intact.
fn tamper_with_code(path: &Path) -> anyhow::Result<()> {
    let mut wasm = std::fs::read(path)?;
    let offset = {
        let (_, top) = claims::sections(&wasm)?;
        let module = top
            .iter()
            .filter(|s| s.id == 1)
            .max_by_key(|s| s.contents.len())
            .context("no core module in the component")?;
        let (_, inner) = claims::sections(module.contents)?;
        let code = inner
            .iter()
            .find(|s| s.id == 10)
            .context("no code section")?;
        module.offset + code.offset + code.contents.len() / 2
    };
    let byte = wasm.get_mut(offset).context("offset out of range")?;
    *byte ^= 0x01;
    std::fs::write(path, wasm)?;
    Ok(())
}

/// Appends a custom section `name` holding `payload` to a wasm file.
fn append_custom_section(path: &Path, name: &str, payload: &[u8]) -> anyhow::Result<()> {
    let mut contents = vec![u8::try_from(name.len())?];
    contents.extend_from_slice(name.as_bytes());
    contents.extend_from_slice(payload);
    let mut wasm = std::fs::read(path)?;
    wasm.push(0);
    let mut size = u32::try_from(contents.len())?;
    loop {
        let byte = u8::try_from(size & 0x7f)?;
        size >>= 7;
        if size == 0 {
            wasm.push(byte);
            break;
        }
        wasm.push(byte | 0x80);
    }
    wasm.extend_from_slice(&contents);
    std::fs::write(path, wasm)?;
    Ok(())
}

#[cfg(unix)]
fn mode(path: &Path) -> anyhow::Result<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[tokio::test]
async fn keys_gen_list_get_store_private_files() {
    let wash = Wash::new().unwrap();
    let (public, path) = wash.account("me").await.unwrap();
    assert!(public.starts_with('A'), "{public}");
    assert_eq!(path, wash.keys().join("me_account.nk"));
    #[cfg(unix)]
    {
        assert_eq!(mode(&path).unwrap(), 0o600);
        assert_eq!(mode(&wash.keys()).unwrap(), 0o700);
    }
    let seed = std::fs::read_to_string(&path).unwrap();
    assert!(seed.starts_with("SA"), "{seed}");

    // Without --name a key is only printed; aliases name wash 1.x's types.
    let module = wash.json(&["keys", "gen", "component"]).await.unwrap();
    assert!(module["public_key"].as_str().unwrap().starts_with('M'));
    assert!(module["seed"].as_str().unwrap().starts_with("SM"));
    assert!(module.get("path").is_none(), "{module}");
    wash.ok(&["keys", "gen", "provider", "--name", "kv"])
        .await
        .unwrap();
    let curve = wash.json(&["keys", "gen", "curve"]).await.unwrap();
    assert!(curve["public_key"].as_str().unwrap().starts_with('X'));

    let listed = wash.json(&["keys", "list"]).await.unwrap();
    assert_eq!(
        listed["keys"],
        serde_json::json!(["kv_service", "me_account"])
    );
    assert_eq!(listed["details"][1]["public_key"], public.as_str());
    let text = wash.ok(&["keys", "list"]).await.unwrap().stdout;
    assert!(text.contains("me_account  account  A"), "{text}");

    let got = wash.ok(&["keys", "get", "me_account"]).await.unwrap();
    assert_eq!(got.stdout.trim(), seed);
    let got = wash.json(&["keys", "get", "me_account.nk"]).await.unwrap();
    assert_eq!(got["public_key"], public.as_str());

    let err = wash.fails(&["keys", "get", "nobody"]).await.unwrap();
    assert!(err.stderr.contains("no key `nobody`"), "{}", err.all());
    let err = wash
        .fails(&["keys", "gen", "account", "--name", "me"])
        .await
        .unwrap();
    assert!(err.stderr.contains("never overwrites"), "{}", err.all());
    let err = wash.fails(&["keys", "gen", "actor"]).await.unwrap();
    assert!(err.stderr.contains("not a key type"), "{}", err.all());
}

#[tokio::test]
async fn sign_then_inspect_round_trip_and_a_flipped_byte_is_a_hash_mismatch() {
    let wash = Wash::new().unwrap();
    let (account, account_file) = wash.account("me").await.unwrap();
    let app = wash.hello().unwrap();
    let signed = wash
        .json(&[
            "claims",
            "sign",
            s(&app),
            "-n",
            "hello",
            "-v",
            "1.2.0",
            "-r",
            "3",
            "-t",
            "web",
            "-t",
            "prod",
            "-a",
            "acme/hello",
            "-i",
            s(&account_file),
        ])
        .await
        .unwrap();
    let destination = wash.path("app_s.wasm");
    assert_eq!(signed["destination"], s(&destination));
    assert_eq!(signed["issuer"], account.as_str());

    let claims = wash
        .json(&["claims", "inspect", s(&destination)])
        .await
        .unwrap();
    assert_eq!(claims["name"], "hello");
    assert_eq!(claims["version"], "1.2.0");
    assert_eq!(claims["revision"], 3);
    assert_eq!(claims["issuer"], account.as_str());
    assert_eq!(claims["account"], account.as_str());
    assert_eq!(claims["subject"], signed["subject"]);
    assert_eq!(claims["tags"], serde_json::json!(["web", "prod"]));
    assert_eq!(claims["call_alias"], "acme/hello");
    assert_eq!(claims["expires"], "never");
    assert_eq!(claims["valid"], true);
    assert_eq!(claims["status"], "valid");
    assert_eq!(claims["hash"], claims["computed_hash"]);
    let text = wash
        .ok(&["claims", "inspect", s(&destination)])
        .await
        .unwrap()
        .stdout;
    assert!(text.starts_with("hello - Component\n"), "{text}");
    assert!(text.contains("Version      1.2.0 (3)"), "{text}");
    assert!(text.contains("Status       valid"), "{text}");
    let jwt = wash
        .ok(&["claims", "inspect", s(&destination), "--jwt-only"])
        .await
        .unwrap()
        .stdout;
    assert_eq!(jwt.trim().split('.').count(), 3, "{jwt}");

    tamper_with_code(&destination).unwrap();
    let run = wash
        .fails(&["claims", "inspect", s(&destination)])
        .await
        .unwrap();
    assert!(
        run.stdout.contains("Status       hash mismatch"),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("error: "), "{}", run.all());
    assert!(run.stderr.contains("hash mismatch"), "{}", run.all());
    let run = wash
        .fails(&["claims", "inspect", s(&destination), "-o", "json"])
        .await
        .unwrap();
    let json = run.json().unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["status"], "hash mismatch");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("modified after signing")
    );
}

#[tokio::test]
async fn claims_signed_to_expire_now_are_shown_as_expired() {
    let wash = Wash::new().unwrap();
    let (_, account_file) = wash.account("me").await.unwrap();
    let app = wash.hello().unwrap();
    wash.ok(&["claims", "sign", s(&app), "-x", "0", "-i", s(&account_file)])
        .await
        .unwrap();
    let signed = wash.path("app_s.wasm");
    // `-x 0` sets `exp` to the signing second (wash 1.x's meaning); it is
    // expired as soon as that second has passed.
    let json = trellis_tests::eventually(EXPIRY_WAIT, || async {
        let run = wash
            .run(&["claims", "inspect", s(&signed), "-o", "json"])
            .await?;
        let json = run.json()?;
        anyhow::ensure!(json["status"] == "expired", "not expired yet: {json}");
        anyhow::ensure!(!run.success, "an expired component must fail inspect");
        Ok(json)
    })
    .await
    .unwrap();
    assert_eq!(json["valid"], false);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("claims expired at"),
        "{json}"
    );
    assert!(json["expires"].as_str().unwrap().contains("ago"), "{json}");

    // Not valid for another day: shown, and refused the same way.
    wash.ok(&[
        "claims",
        "sign",
        s(&app),
        "-b",
        "1",
        "-d",
        "later.wasm",
        "-i",
        s(&account_file),
    ])
    .await
    .unwrap();
    let run = wash
        .fails(&["claims", "inspect", "later.wasm"])
        .await
        .unwrap();
    assert!(
        run.stdout.contains("Status       not yet valid"),
        "{}",
        run.all()
    );
}

#[tokio::test]
async fn default_keys_are_generated_once_with_a_note() {
    let wash = Wash::new().unwrap();
    let app = wash.hello().unwrap();
    let first = wash.ok(&["claims", "sign", s(&app)]).await.unwrap();
    let account_file = wash.keys().join("tester_account.nk");
    let module_file = wash.keys().join("app_module.nk");
    assert!(
        first
            .stderr
            .contains(&format!("note: no key at {}", account_file.display())),
        "{}",
        first.all()
    );
    assert!(first.stderr.contains("app_module.nk"), "{}", first.all());
    assert!(account_file.is_file() && module_file.is_file());
    let second = wash
        .json(&["claims", "sign", s(&app), "-d", "again.wasm"])
        .await
        .unwrap();
    assert!(second.get("notes").is_none(), "{second}");
    let claims = wash
        .json(&["claims", "inspect", "again.wasm"])
        .await
        .unwrap();
    // The name defaults to the file stem; the keys are the stored ones.
    assert_eq!(claims["name"], "app");
    assert_eq!(claims["issuer"], second["issuer"]);
    let stored = wash.json(&["keys", "get", "tester_account"]).await.unwrap();
    assert_eq!(stored["public_key"], claims["issuer"]);

    let err = wash
        .fails(&[
            "claims",
            "sign",
            s(&app),
            "--disable-keygen",
            "--directory",
            "elsewhere",
        ])
        .await
        .unwrap();
    assert!(err.stderr.contains("--disable-keygen"), "{}", err.all());
}

#[tokio::test]
async fn bad_input_is_refused_with_the_reason() {
    let wash = Wash::new().unwrap();
    let (_, account_file) = wash.account("me").await.unwrap();
    let app = wash.hello().unwrap();

    let err = wash.fails(&["claims", "inspect", s(&app)]).await.unwrap();
    assert!(err.stderr.contains("is not signed"), "{}", err.all());

    // A JWT cut short.
    let truncated = wash.path("truncated.wasm");
    std::fs::copy(&app, &truncated).unwrap();
    append_custom_section(&truncated, "wasmcloud_jwt", b"eyJ0eXAiOiJqd3QiLCJhbGci").unwrap();
    let err = wash
        .fails(&["claims", "inspect", s(&truncated)])
        .await
        .unwrap();
    assert!(
        err.stderr.contains("truncated or malformed JWT"),
        "{}",
        err.all()
    );

    // Two signature sections: refused by inspect, replaced by re-signing.
    wash.ok(&["claims", "sign", s(&app), "-i", s(&account_file)])
        .await
        .unwrap();
    let two = wash.path("app_s.wasm");
    append_custom_section(&two, "jwt", b"a.b.c").unwrap();
    let err = wash.fails(&["inspect", s(&two)]).await.unwrap();
    assert!(
        err.stderr.contains("two signature sections"),
        "{}",
        err.all()
    );
    wash.ok(&[
        "claims",
        "sign",
        s(&two),
        "-d",
        "resigned.wasm",
        "-i",
        s(&account_file),
    ])
    .await
    .unwrap();
    let claims = wash
        .json(&["claims", "inspect", "resigned.wasm"])
        .await
        .unwrap();
    assert_eq!(claims["valid"], true);

    // An issuer that is not an account, and a public key where a seed is needed.
    let server = wash.json(&["keys", "gen", "host"]).await.unwrap();
    let seed = server["seed"].as_str().unwrap();
    let err = wash
        .fails(&["claims", "sign", s(&app), "-i", seed])
        .await
        .unwrap();
    assert!(
        err.stderr
            .contains("--issuer is a server key (N…), but it must be an account key (A…)"),
        "{}",
        err.all()
    );
    let public = server["public_key"].as_str().unwrap();
    let err = wash
        .fails(&["claims", "sign", s(&app), "-i", public])
        .await
        .unwrap();
    assert!(err.stderr.contains("needs the seed"), "{}", err.all());
    let err = wash
        .fails(&["claims", "sign", s(&app), "-a", "Not-An-Alias"])
        .await
        .unwrap();
    assert!(
        err.stderr.contains("call aliases are lowercase"),
        "{}",
        err.all()
    );
}

#[tokio::test]
async fn par_create_inspect_round_trip_and_a_tampered_binary_is_refused() {
    let wash = Wash::new().unwrap();
    let (account, account_file) = wash.account("me").await.unwrap();
    let binary = wash.path("kv-provider");
    let content: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&binary, &content).unwrap();
    let here = par::current_target();

    let created = wash
        .json(&[
            "par",
            "create",
            "--binary",
            s(&binary),
            "--name",
            "kv",
            "--vendor",
            "acme",
            "--version",
            "1.0.0",
            "--revision",
            "2",
            "--issuer",
            s(&account_file),
            "--compress",
        ])
        .await
        .unwrap();
    assert_eq!(created["file"], "kv-provider.par.gz");
    assert_eq!(created["compressed"], true);
    let archive = wash.path("kv-provider.par.gz");
    assert_eq!(
        std::fs::read(&archive).unwrap().get(..2),
        Some(&par::GZIP_MAGIC[..])
    );

    let inspected = wash.json(&["par", "inspect", s(&archive)]).await.unwrap();
    assert_eq!(inspected["name"], "kv");
    assert_eq!(inspected["vendor"], "acme");
    assert_eq!(inspected["version"], "1.0.0");
    assert_eq!(inspected["revision"], 2);
    assert_eq!(inspected["issuer"], account.as_str());
    assert!(inspected["subject"].as_str().unwrap().starts_with('V'));
    assert_eq!(inspected["targets"], serde_json::json!([here]));
    assert_eq!(
        inspected["target_hashes"][&here],
        par::target_hash(&content).as_str()
    );
    assert_eq!(inspected["checks"][0]["status"], "ok");
    assert_eq!(inspected["valid"], true);
    // `wash inspect` reads archives too.
    let same = wash.json(&["inspect", s(&archive)]).await.unwrap();
    assert_eq!(same["target_hashes"], inspected["target_hashes"]);

    // Uncompressed, then one byte of the binary changed inside the tar.
    wash.ok(&[
        "par",
        "create",
        "-b",
        s(&binary),
        "-n",
        "kv",
        "-v",
        "acme",
        "-i",
        s(&account_file),
        "--destination",
        "plain.par",
    ])
    .await
    .unwrap();
    let plain = wash.path("plain.par");
    let mut bytes = std::fs::read(&plain).unwrap();
    let at = bytes
        .windows(content.len())
        .position(|w| w == content.as_slice())
        .unwrap();
    bytes[at + 100] ^= 0x01;
    std::fs::write(&plain, bytes).unwrap();
    let run = wash.fails(&["par", "inspect", s(&plain)]).await.unwrap();
    let message = format!("hash mismatch for target {here}");
    assert!(run.stderr.contains(&message), "{}", run.all());
    let run = wash
        .fails(&["par", "inspect", s(&plain), "-o", "json"])
        .await
        .unwrap();
    let json = run.json().unwrap();
    assert_eq!(json["status"], "hash mismatch");
    assert!(
        json["error"].as_str().unwrap().starts_with(&message),
        "{json}"
    );

    // An archive for another platform is valid, with a warning naming this one.
    let other = wash
        .run(&[
            "par",
            "create",
            "-b",
            s(&binary),
            "-n",
            "kv",
            "-v",
            "acme",
            "-i",
            s(&account_file),
            "-a",
            "riscv64-none",
            "--destination",
            "other.par",
        ])
        .await
        .unwrap();
    assert!(other.success, "{}", other.all());
    let run = wash.ok(&["par", "inspect", "other.par"]).await.unwrap();
    assert!(
        run.stderr.contains(&format!(
            "no binary for target {here} (it has: riscv64-none)"
        )),
        "{}",
        run.all()
    );

    let garbage = wash.path("garbage.par");
    std::fs::write(&garbage, vec![7u8; 2048]).unwrap();
    let err = wash.fails(&["par", "inspect", s(&garbage)]).await.unwrap();
    assert!(
        err.stderr
            .contains("neither a wasm component nor a provider archive"),
        "{}",
        err.all()
    );
}

#[tokio::test]
async fn inspect_lists_the_world_of_a_component() {
    let wash = Wash::new().unwrap();
    let app = wash.hello().unwrap();
    // Unsigned: the world is still shown, and that is not a failure.
    let json = wash.json(&["inspect", s(&app)]).await.unwrap();
    assert_eq!(json["signed"], false);
    let exports: Vec<&str> = json["world"]["exports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@")),
        "{exports:?}"
    );
    let imports = json["world"]["imports"].as_array().unwrap();
    assert!(
        imports.iter().any(|i| i["name"]
            .as_str()
            .unwrap_or_default()
            .starts_with("wasi:http/types@")),
        "{imports:?}"
    );

    let (_, account_file) = wash.account("me").await.unwrap();
    wash.ok(&["claims", "sign", s(&app), "-i", s(&account_file)])
        .await
        .unwrap();
    let text = wash.ok(&["inspect", "app_s.wasm"]).await.unwrap().stdout;
    assert!(text.contains("Status       valid"), "{text}");
    let exports_at = text.find("Exports:").unwrap();
    assert!(
        text[exports_at..].contains("  wasi:http/incoming-handler@"),
        "{text}"
    );
    let wit = wash
        .ok(&["inspect", "app_s.wasm", "--wit"])
        .await
        .unwrap()
        .stdout;
    assert!(wit.starts_with("Imports:\n"), "{wit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_signed_by_wash_runs_on_a_host_that_requires_its_issuer() {
    let wash = Wash::new().unwrap();
    let (account, account_file) = wash.account("ops").await.unwrap();
    let app = wash.hello().unwrap();
    wash.ok(&[
        "claims",
        "sign",
        s(&app),
        "-n",
        "http-hello",
        "-v",
        "0.1.0",
        "-i",
        s(&account_file),
    ])
    .await
    .unwrap();
    // The same component signed by the default (another) account.
    wash.ok(&["claims", "sign", s(&app), "-d", "foreign.wasm"])
        .await
        .unwrap();

    let mut l = TestLattice::start().await.unwrap();
    let host = HostProcess::start(
        l.host_options()
            .arg("--require-signed")
            .arg("--allowed-issuers")
            .arg(&account),
    )
    .await
    .unwrap();

    let signed_ref = format!("file://{}", wash.path("app_s.wasm").display());
    let event = scale(&mut l, host.id(), &signed_ref, "hello", 1)
        .await
        .unwrap();
    assert!(
        event["type"]
            .as_str()
            .unwrap()
            .ends_with("component_scaled"),
        "{event}"
    );
    assert_eq!(event["data"]["claims"]["issuer"], account.as_str());
    assert_eq!(event["data"]["claims"]["name"], "http-hello");
    let port = expose_http(&mut l, host.id(), "hello").await.unwrap();
    assert_eq!(
        http_until(port, "/", 200).await.unwrap(),
        "Hello from Trellis!\n"
    );

    let foreign_ref = format!("file://{}", wash.path("foreign.wasm").display());
    let event = scale(&mut l, host.id(), &foreign_ref, "foreign", 1)
        .await
        .unwrap();
    assert!(
        event["type"]
            .as_str()
            .unwrap()
            .ends_with("component_scale_failed"),
        "{event}"
    );
    let error = event["data"]["error"].as_str().unwrap();
    assert!(error.contains("is not in --allowed-issuers"), "{error}");
}
