//! Contexts: named, saved connection settings, as wash 1.x keeps them — one
//! JSON file per context in `contexts/` of the wash directory
//! (`contexts/{name}.json`, wash 1.x field names), and the default
//! context's name in `contexts/default`.
//!
//! A context fills in only the connection options given neither on the
//! command line nor in the environment ([`apply`]): flag > environment >
//! context > built-in default. `wash ctx` lists, shows, saves, selects and
//! deletes them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ctl::ConnectionOpts;
use crate::output::{Report, Table};

/// The file naming the default context.
const DEFAULT_FILE: &str = "default";

/// One saved context (the fields wash 1.x's `WashContext` uses for the
/// control connection; others in a wash 1.x file are ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WashContext {
    /// The context's name.
    #[serde(default)]
    pub name: String,
    /// NATS host of the control interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctl_host: Option<String>,
    /// NATS port of the control interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctl_port: Option<u16>,
    /// NATS credentials file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctl_credsfile: Option<PathBuf>,
    /// Request timeout, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctl_timeout: Option<u64>,
    /// Lattice (`lattice_prefix` in older wash 1.x files).
    #[serde(
        default,
        alias = "lattice_prefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub lattice: Option<String>,
}

/// `wash ctx`.
#[derive(Subcommand, Debug, Clone)]
pub enum CtxCommand {
    /// List the saved contexts
    #[command(after_help = "Example:\n  wash ctx list")]
    List,
    /// Show one context
    #[command(after_help = "Example:\n  wash ctx get prod")]
    Get(CtxName),
    /// Save the connection flags given here (or their defaults) as a context
    #[command(after_help = "Example:\n  wash ctx new prod --ctl-host 10.0.0.5 -x prod")]
    New(CtxName),
    /// Make a context the default one (without NAME: show the default)
    #[command(after_help = "Example:\n  wash ctx default prod")]
    Default(CtxMaybeName),
    /// Delete a context
    #[command(after_help = "Example:\n  wash ctx del prod")]
    Del(CtxName),
}

/// A context name.
#[derive(Args, Debug, Clone)]
pub struct CtxName {
    /// Context name
    #[arg(value_parser = crate::parse::component_id)]
    pub name: String,
}

/// An optional context name.
#[derive(Args, Debug, Clone)]
pub struct CtxMaybeName {
    /// Context name
    #[arg(value_parser = crate::parse::component_id)]
    pub name: Option<String>,
}

/// The contexts directory.
fn dir() -> anyhow::Result<PathBuf> {
    Ok(crate::washdir::resolve(None)?.join("contexts"))
}

fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Every saved context's name, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let path = e.path();
                    (path.extension()? == "json")
                        .then(|| path.file_stem()?.to_str().map(str::to_string))?
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn default_name(dir: &Path) -> Option<String> {
    let name = std::fs::read_to_string(dir.join(DEFAULT_FILE)).ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn load(dir: &Path, name: &str) -> anyhow::Result<WashContext> {
    let path = file(dir, name);
    let bytes = std::fs::read(&path).map_err(|_| {
        let known = names(dir);
        let known = if known.is_empty() {
            "there are none; save one with `wash ctx new NAME`".to_string()
        } else {
            format!("the saved ones are: {}", known.join(", "))
        };
        anyhow!("no context `{name}` in {} ({known})", dir.display())
    })?;
    let mut context: WashContext = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a wash context", path.display()))?;
    name.clone_into(&mut context.name);
    Ok(context)
}

/// `opts` with its defaulted options taken from `--context` (or the default
/// context, if one is set).
pub fn apply(opts: &ConnectionOpts) -> anyhow::Result<ConnectionOpts> {
    let dir = dir()?;
    let name = match (&opts.context, default_name(&dir)) {
        (Some(name), _) => name.clone(),
        (None, Some(name)) => name,
        (None, None) => return Ok(opts.clone()),
    };
    let context = load(&dir, &name).map_err(|e| {
        if opts.context.is_none() {
            anyhow!(
                "{e}; the default context is set in {}",
                dir.join(DEFAULT_FILE).display()
            )
        } else {
            e
        }
    })?;
    let mut opts = opts.clone();
    let unset = |id: &str| opts.defaulted.contains(&id);
    let (host, port, lattice, timeout, creds) = (
        unset("ctl_host"),
        unset("ctl_port"),
        unset("lattice"),
        unset("timeout_ms"),
        unset("ctl_credsfile"),
    );
    if let Some(v) = context.ctl_host.filter(|_| host) {
        opts.ctl_host = v;
    }
    if let Some(v) = context.ctl_port.filter(|_| port) {
        opts.ctl_port = v;
    }
    if let Some(v) = context.lattice.filter(|_| lattice) {
        opts.lattice = v;
    }
    if let Some(v) = context.ctl_timeout.filter(|_| timeout) {
        opts.timeout_ms = v;
    }
    if let Some(v) = context.ctl_credsfile.filter(|_| creds) {
        opts.ctl_credsfile = Some(v);
    }
    Ok(opts)
}

/// Runs `wash ctx`.
pub fn run(connection: &ConnectionOpts, command: CtxCommand) -> anyhow::Result<Report> {
    let dir = dir()?;
    match command {
        CtxCommand::List => {
            let default = default_name(&dir);
            let contexts: Vec<WashContext> = names(&dir)
                .iter()
                .filter_map(|n| load(&dir, n).ok())
                .collect();
            let mut table = Table::new(&["NAME", "DEFAULT", "CTL HOST", "CTL PORT", "LATTICE"]);
            for c in &contexts {
                table.row(vec![
                    c.name.clone(),
                    if default.as_deref() == Some(c.name.as_str()) {
                        "*"
                    } else {
                        ""
                    }
                    .to_string(),
                    c.ctl_host.clone().unwrap_or_default(),
                    c.ctl_port.map(|p| p.to_string()).unwrap_or_default(),
                    c.lattice.clone().unwrap_or_default(),
                ]);
            }
            let text = if table.is_empty() {
                format!(
                    "No contexts in {}. Save one with `wash ctx new NAME`.",
                    dir.display()
                )
            } else {
                table.render()
            };
            Report::data(text, &json!({"default": default, "contexts": contexts}))
        }
        CtxCommand::Get(a) => {
            let context = load(&dir, &a.name)?;
            let text = serde_json::to_string_pretty(&context)?;
            Report::data(text, &context)
        }
        CtxCommand::New(a) => {
            let context = WashContext {
                name: a.name.clone(),
                ctl_host: Some(connection.ctl_host.clone()),
                ctl_port: Some(connection.ctl_port),
                ctl_credsfile: connection.ctl_credsfile.clone(),
                ctl_timeout: Some(connection.timeout_ms),
                lattice: Some(connection.lattice.clone()),
            };
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let path = file(&dir, &a.name);
            std::fs::write(&path, serde_json::to_vec_pretty(&context)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(Report::action(
                format!("Saved context `{}` in {}", a.name, path.display()),
                json!({"context": context, "path": path}),
            ))
        }
        CtxCommand::Default(CtxMaybeName { name: None }) => {
            let default = default_name(&dir);
            let text = match &default {
                Some(name) => name.clone(),
                None => "No default context: `wash ctx default NAME` sets one.".to_string(),
            };
            Report::data(text, &json!({"default": default}))
        }
        CtxCommand::Default(CtxMaybeName { name: Some(name) }) => {
            load(&dir, &name)?;
            let path = dir.join(DEFAULT_FILE);
            std::fs::write(&path, format!("{name}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(Report::action(
                format!("`{name}` is now the default context"),
                json!({"default": name}),
            ))
        }
        CtxCommand::Del(a) => {
            load(&dir, &a.name)?;
            let path = file(&dir, &a.name);
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot delete {}", path.display()))?;
            if default_name(&dir).as_deref() == Some(a.name.as_str()) {
                let _ = std::fs::remove_file(dir.join(DEFAULT_FILE));
            }
            Ok(Report::action(
                format!("Deleted context `{}`", a.name),
                json!({"deleted": a.name}),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wash_1x_context_files_are_read() {
        let context: WashContext = serde_json::from_str(
            r#"{"name":"host_config","cluster_seed":null,"ctl_host":"10.0.0.5","ctl_port":4333,
                "ctl_timeout":500,"lattice_prefix":"prod","js_domain":null}"#,
        )
        .unwrap();
        assert_eq!(context.ctl_host.as_deref(), Some("10.0.0.5"));
        assert_eq!(context.ctl_port, Some(4333));
        assert_eq!(context.lattice.as_deref(), Some("prod"));
        assert_eq!(context.ctl_timeout, Some(500));
    }
}
