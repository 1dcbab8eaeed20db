//! `wash app put|get|list|deploy|undeploy|delete|status|history|versions|validate`:
//! applications through the wadm API (`wadm.api.{lattice}.model.*`, PROTOCOL.md
//! §6.3). `validate` is offline: it parses and validates a manifest file without
//! NATS. `deploy` and `status --watch` follow the status live ([`crate::progress`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use trellis_interfaces::manifest::{Manifest, ValidationOutput, validate};

use crate::ctl::Lattice;
use crate::output::{OutputKind, Report, Table};
use crate::progress::{self, Outcome, Watch};

/// How long `wash app deploy` waits for `deployed` by default: 60 s, room for
/// a cold image pull and a provider start, short enough for a script to
/// notice an application that never converges.
pub const DEFAULT_DEPLOY_WAIT_MS: u64 = 60_000;

/// What `wash app` can do.
#[derive(Subcommand, Debug, Clone)]
pub enum AppCommand {
    /// List the applications of the lattice
    #[command(after_help = "Example:\n  wash app list")]
    List,
    /// Show an application's manifest (newest version unless given)
    #[command(after_help = "Example:\n  wash app get hello-world v0.0.1")]
    Get(NameVersionArgs),
    /// Show an application's status, or follow it with --watch
    #[command(
        after_help = "Examples:\n  wash app status hello-world\n  wash app status hello-world --watch --wait-timeout-ms 30000"
    )]
    Status(StatusArgs),
    /// Show an application's deployment history (wadm 0.21 answers that it has none)
    #[command(after_help = "Example:\n  wash app history hello-world")]
    History(NameArgs),
    /// List the stored versions of an application
    #[command(after_help = "Example:\n  wash app versions hello-world")]
    Versions(NameArgs),
    /// Store a manifest (YAML or JSON) as a new version
    #[command(after_help = "Example:\n  wash app put wadm.yaml")]
    Put(FileArgs),
    /// Deploy a stored application, or put and deploy a manifest file, and
    /// follow its status until it is deployed or failed
    #[command(
        after_help = "Examples:\n  wash app deploy hello-world\n  wash app deploy wadm.yaml\n  wash app deploy wadm.yaml --skip-wait"
    )]
    Deploy(DeployArgs),
    /// Undeploy an application (its versions stay stored)
    #[command(after_help = "Example:\n  wash app undeploy hello-world")]
    Undeploy(NameArgs),
    /// Delete one version of an application, or all of them
    #[command(after_help = "Example:\n  wash app delete hello-world v0.0.1")]
    Delete(NameVersionArgs),
    /// Check a manifest file offline (no NATS needed)
    #[command(after_help = "Example:\n  wash app validate wadm.yaml")]
    Validate(FileArgs),
}

/// `wash app status|undeploy NAME`.
#[derive(Args, Debug, Clone)]
pub struct NameArgs {
    /// Application name
    pub name: String,
}

/// `wash app status NAME [--watch]`.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// Application name
    pub name: String,
    /// Follow the status live until it is `deployed` or `failed` (exit code
    /// non-zero for `failed` or a timeout)
    #[arg(short = 'w', long = "watch")]
    pub watch: bool,
    /// With --watch: give up after this many milliseconds (default: wait until Ctrl-C)
    #[arg(long = "wait-timeout-ms", requires = "watch")]
    pub wait_timeout_ms: Option<u64>,
}

/// `wash app deploy NAME|FILE [VERSION]`.
#[derive(Args, Debug, Clone)]
pub struct DeployArgs {
    /// Application name, or a manifest file to put first
    pub name: String,
    /// Version (default: the newest)
    pub version: Option<String>,
    /// Return once wadm acknowledged the deploy, without following the status
    #[arg(long = "skip-wait", alias = "no-wait")]
    pub skip_wait: bool,
    /// How long to wait for `deployed` before failing
    #[arg(long = "wait-timeout-ms", default_value_t = DEFAULT_DEPLOY_WAIT_MS)]
    pub wait_timeout_ms: u64,
}

/// `wash app get|delete NAME [VERSION]`.
#[derive(Args, Debug, Clone)]
pub struct NameVersionArgs {
    /// Application name (for deploy, also a manifest file to put first)
    pub name: String,
    /// Version (default: the newest; for delete: every version)
    pub version: Option<String>,
}

/// `wash app put|validate FILE`.
#[derive(Args, Debug, Clone)]
pub struct FileArgs {
    /// Manifest file (`.yaml`, `.yml` or `.json`)
    pub file: PathBuf,
}

/// `wash app validate FILE`: offline.
pub fn validate_file(args: &FileArgs) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let manifest =
        Manifest::from_yaml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let failures = validate(&manifest);
    let errors: Vec<String> = failures.errors().iter().map(|f| f.msg.clone()).collect();
    let warnings: Vec<String> = failures.warnings().iter().map(|f| f.msg.clone()).collect();
    let valid = errors.is_empty();
    let mut text = if valid {
        format!("{} is valid", args.file.display())
    } else {
        format!("{} is invalid:", args.file.display())
    };
    for e in &errors {
        text.push_str(&format!("\n  error: {e}"));
    }
    let report = Report::data(
        text,
        &json!({"valid": valid, "name": manifest.name(), "errors": errors, "warnings": warnings}),
    )?
    .warn_all(warnings);
    Ok(if valid {
        report
    } else {
        report.fail(format!(
            "{} has {} error(s)",
            args.file.display(),
            errors.len()
        ))
    })
}

/// Runs a `wash app` command against the lattice's wadm.
pub async fn run(
    lattice: &Lattice,
    timeout: Duration,
    command: AppCommand,
    output: OutputKind,
) -> anyhow::Result<Report> {
    let api = Api {
        lattice,
        timeout,
        output,
    };
    match command {
        AppCommand::Validate(a) => validate_file(&a),
        AppCommand::List => api.list().await,
        AppCommand::Get(a) => api.get(&a.name, a.version).await,
        AppCommand::Status(a) if a.watch => {
            let deadline = a.wait_timeout_ms.map(Duration::from_millis);
            api.watch(&a.name, deadline, None).await
        }
        AppCommand::Status(a) => api.status(&a.name).await,
        AppCommand::History(a) => api.history(&a.name).await,
        AppCommand::Versions(a) => api.versions(&a.name).await,
        AppCommand::Put(a) => {
            let reply = api.put(&a.file).await?;
            Ok(put_report(&reply))
        }
        AppCommand::Deploy(a) => api.deploy(&a).await,
        AppCommand::Undeploy(a) => {
            let reply = api.call(&format!("undeploy.{}", a.name), json!({})).await?;
            outcome(reply, "acknowledged")
        }
        AppCommand::Delete(a) => {
            let reply = api
                .call(&format!("del.{}", a.name), json!({"version": a.version}))
                .await?;
            outcome(reply, "deleted")
        }
    }
}

struct Api<'a> {
    lattice: &'a Lattice,
    timeout: Duration,
    output: OutputKind,
}

impl Api<'_> {
    async fn request(
        &self,
        op: &str,
        headers: async_nats::HeaderMap,
        body: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let subject = format!("wadm.api.{}.model.{op}", self.lattice.name());
        let request = self
            .lattice
            .nats
            .request_with_headers(subject.clone(), headers, body.into());
        let reply = tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "wadm did not answer on {subject} within {:?}: is wadm running on lattice `{}`? Run `wash up`, or start `wadm --nats-server {}`",
                    self.timeout,
                    self.lattice.name(),
                    self.lattice.url
                )
            })?
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::NoResponders => anyhow::anyhow!(
                    "no wadm is answering on lattice `{}` at {}: run `wash up` (which starts one), or start `wadm --nats-server {}`",
                    self.lattice.name(),
                    self.lattice.url,
                    self.lattice.url
                ),
                _ => anyhow::anyhow!("request on {subject} failed: {e}"),
            })?;
        serde_json::from_slice(&reply.payload)
            .map_err(|e| anyhow::anyhow!("wadm's reply on {subject} is not JSON: {e}"))
    }

    async fn call(&self, op: &str, body: Value) -> anyhow::Result<Value> {
        let body = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body)?
        };
        self.request(op, async_nats::HeaderMap::new(), body).await
    }

    async fn put(&self, file: &Path) -> anyhow::Result<Value> {
        let body = std::fs::read(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        let json = file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Content-Type",
            if json {
                "application/json"
            } else {
                "application/yaml"
            },
        );
        let reply = self.request("put", headers, body).await?;
        if at(&reply, &["result"]) == "error" {
            anyhow::bail!("wadm refused {}: {}", file.display(), message(&reply));
        }
        Ok(reply)
    }

    async fn list(&self) -> anyhow::Result<Report> {
        let reply = self.call("get", Value::Null).await?;
        check(&reply, "success")?;
        let models = at(&reply, &["models"])
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut table = Table::new(&["NAME", "DEPLOYED", "LATEST", "STATUS", "DESCRIPTION"]);
        for m in &models {
            table.row(vec![
                text(at(m, &["name"])),
                at(m, &["deployed_version"])
                    .as_str()
                    .unwrap_or("N/A")
                    .to_string(),
                text(at(m, &["version"])),
                text(at(m, &["detailed_status", "status", "type"])),
                text(at(m, &["description"])).trim().to_string(),
            ]);
        }
        let rendered = if table.is_empty() {
            "No applications.".to_string()
        } else {
            table.render()
        };
        Report::data(rendered, &Value::Array(models))
    }

    async fn get(&self, name: &str, version: Option<String>) -> anyhow::Result<Report> {
        let body = match &version {
            Some(v) => json!({"version": v}),
            None => json!({}),
        };
        let reply = self.call(&format!("get.{name}"), body).await?;
        check(&reply, "success")?;
        let manifest: Manifest = serde_json::from_value(at(&reply, &["manifest"]).clone())
            .map_err(|e| anyhow::anyhow!("wadm returned an unreadable manifest: {e}"))?;
        let yaml = manifest.to_yaml()?;
        Report::data(yaml.trim_end().to_string(), &manifest)
    }

    /// `model.status.{name}`'s status object.
    async fn status_of(&self, name: &str) -> anyhow::Result<Value> {
        let reply = self.call(&format!("status.{name}"), Value::Null).await?;
        check(&reply, "ok")?;
        Ok(at(&reply, &["status"]).clone())
    }

    async fn status(&self, name: &str) -> anyhow::Result<Report> {
        let status = self.status_of(name).await?;
        Report::data(progress::render(name, &status), &status)
    }

    /// Follows `name`'s status (see [`progress`]); the report fails for
    /// `failed` and for a timeout.
    async fn watch(
        &self,
        name: &str,
        deadline: Option<Duration>,
        before: Option<Value>,
    ) -> anyhow::Result<Report> {
        // Fails early, naming the application, when it does not exist.
        self.status_of(name).await?;
        let watched = Watch {
            lattice: self.lattice,
            name,
            request_timeout: self.timeout,
            deadline,
            before,
            output: self.output,
        }
        .run()
        .await?;
        let secs = watched.elapsed.as_secs_f64();
        let final_text = progress::render(name, &watched.status);
        let report = Report::data(final_text, &watched.status)?;
        Ok(match watched.outcome {
            Outcome::Deployed => report.note(format!("{name} is deployed ({secs:.1}s)")),
            Outcome::Failed => report.fail(format!(
                "{name} failed after {secs:.1}s: see the reasons above; fix the manifest and deploy again, or `wash app undeploy {name}`"
            )),
            Outcome::TimedOut => report.fail(format!(
                "{name} is still `{}` after {secs:.1}s; wait longer with --wait-timeout-ms, or look at `wash app status {name}` and the host logs",
                progress::state(&watched.status)
            )),
        })
    }

    async fn history(&self, name: &str) -> anyhow::Result<Report> {
        let reply = self.call(&format!("history.{name}"), Value::Null).await?;
        if at(&reply, &["result"]) == "error" {
            anyhow::bail!(
                "wadm answered for `{name}`: {}; `wash app versions {name}` lists the stored versions",
                message(&reply)
            );
        }
        Report::data(serde_json::to_string_pretty(&reply)?, &reply)
    }

    async fn versions(&self, name: &str) -> anyhow::Result<Report> {
        let reply = self.call(&format!("versions.{name}"), Value::Null).await?;
        check(&reply, "success")?;
        let versions = at(&reply, &["versions"])
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut table = Table::new(&["VERSION", "DEPLOYED"]);
        for v in &versions {
            let deployed = at(v, &["deployed"]).as_bool().unwrap_or(false);
            table.row(vec![
                text(at(v, &["version"])),
                if deployed { "yes" } else { "" }.to_string(),
            ]);
        }
        Report::data(table.render(), &Value::Array(versions))
    }

    /// The version of `name` a deploy of `version` (default: the newest)
    /// would deploy, if that is the one deployed now (`model.versions`).
    async fn deployed_version(&self, name: &str, version: Option<&str>) -> Option<String> {
        let reply = self
            .call(&format!("versions.{name}"), Value::Null)
            .await
            .ok()?;
        let versions = at(&reply, &["versions"]).as_array()?;
        let target = match version {
            Some(v) => v.to_string(),
            None => text(at(versions.last()?, &["version"])),
        };
        versions
            .iter()
            .find(|v| at(v, &["deployed"]).as_bool() == Some(true))
            .map(|v| text(at(v, &["version"])))
            .filter(|deployed| *deployed == target)
    }

    async fn deploy(&self, args: &DeployArgs) -> anyhow::Result<Report> {
        let path = Path::new(&args.name);
        let (name, version, put) = if path.is_file() {
            let reply = self.put(path).await?;
            let name = text(at(&reply, &["name"]));
            let current = text(at(&reply, &["current_version"]));
            (name, args.version.clone().or(Some(current)), Some(reply))
        } else {
            (args.name.clone(), args.version.clone(), None)
        };
        let before = if args.skip_wait {
            None
        } else {
            self.status_of(&name).await.ok()
        };
        let already = match &before {
            Some(status) if progress::state(status) == "deployed" => {
                self.deployed_version(&name, version.as_deref()).await
            }
            _ => None,
        };
        let reply = self
            .call(&format!("deploy.{name}"), json!({"version": version}))
            .await?;
        let noop = at(&reply, &["result"]) == "noop";
        let acknowledged = outcome(reply, "acknowledged")?;
        let acknowledged = match put {
            Some(put) => acknowledged.note(message(&put)),
            None => acknowledged,
        };
        if args.skip_wait {
            return Ok(acknowledged);
        }
        if self.output == OutputKind::Text {
            acknowledged.print(OutputKind::Text);
        }
        // Redeploying the deployed version places nothing new: the status
        // from before is the answer (wadm's own status would sit at
        // `waiting` until something else changes).
        if let (Some(deployed), Some(status)) = (already, before.as_ref()) {
            return Ok(Report::data(progress::render(&name, status), status)?
                .note(format!("{name} {deployed} was already deployed")));
        }
        let deadline = Some(Duration::from_millis(args.wait_timeout_ms));
        // Deploying what is already deployed changes nothing: its status,
        // even `deployed`, is the answer.
        let before = if noop { None } else { before };
        self.watch(&name, deadline, before).await
    }
}

/// `value[path[0]][path[1]]…`, `null` where a key is missing.
fn at<'v>(value: &'v Value, path: &[&str]) -> &'v Value {
    static NULL: Value = Value::Null;
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .unwrap_or(&NULL)
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn message(reply: &Value) -> String {
    text(at(reply, &["message"]))
}

/// An error when `result` is not `expected`.
fn check(reply: &Value, expected: &str) -> anyhow::Result<()> {
    if at(reply, &["result"]) == expected {
        Ok(())
    } else {
        anyhow::bail!("{}", message(reply))
    }
}

/// The reply as an action report, or an error with wadm's message.
fn outcome(reply: Value, expected: &str) -> anyhow::Result<Report> {
    if at(&reply, &["result"]) == "noop" {
        return Ok(Report::action(message(&reply), reply.clone()));
    }
    check(&reply, expected)?;
    Ok(Report::action(message(&reply), reply))
}

/// `model.put`'s reply (either wadm shape of `result`) for people.
fn put_report(reply: &Value) -> Report {
    Report::action(message(reply), reply.clone())
}
