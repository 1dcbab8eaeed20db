//! `wash config put|get|del`: named configs stored in the lattice.

use std::collections::HashMap;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::ctl::{Lattice, Target};
use crate::output::{Report, Table};
use crate::parse;

/// What `wash config` can do.
#[derive(Subcommand, Debug, Clone)]
pub enum ConfigCommand {
    /// Create or replace a named config
    #[command(
        after_help = "Example:\n  wash config put web-addr address=0.0.0.0:8080 max_body=1048576"
    )]
    Put(ConfigPutArgs),
    /// Show a named config
    #[command(after_help = "Example:\n  wash config get web-addr -o json")]
    Get(ConfigNameArgs),
    /// Delete a named config
    #[command(after_help = "Example:\n  wash config del web-addr")]
    Del(ConfigNameArgs),
}

/// `wash config put`.
#[derive(Args, Debug, Clone)]
pub struct ConfigPutArgs {
    /// Config name (one NATS subject token: no `.`, `*`, `>` or spaces)
    pub name: String,
    /// Values as `key=value`; the config is replaced, not merged
    #[arg(value_parser = parse::key_value)]
    pub values: Vec<(String, String)>,
}

/// `wash config get` and `wash config del`.
#[derive(Args, Debug, Clone)]
pub struct ConfigNameArgs {
    /// Config name
    pub name: String,
}

/// Runs a `wash config` command.
pub async fn run(lattice: &Lattice, command: ConfigCommand) -> anyhow::Result<Report> {
    match command {
        ConfigCommand::Put(args) => {
            let values: HashMap<String, String> = args.values.into_iter().collect();
            let reply = lattice
                .ctl
                .put_config(&args.name, &values)
                .await
                .map_err(|e| lattice.explain(e, Target::Lattice))?;
            let keys = values.len();
            Ok(Report::action(
                format!("Stored config `{}` ({keys} key(s))", args.name),
                json!({"name": args.name, "values": values}),
            )
            .warn(reply.message))
        }
        ConfigCommand::Get(args) => {
            let found = lattice
                .ctl
                .get_config(&args.name)
                .await
                .map_err(|e| lattice.explain(e, Target::Lattice))?;
            let Some(values) = found else {
                anyhow::bail!(
                    "no config named `{name}` on lattice `{lattice}`: create it with \
                     `wash config put {name} KEY=VALUE`",
                    name = args.name,
                    lattice = lattice.name()
                );
            };
            let mut entries: Vec<(&String, &String)> = values.iter().collect();
            entries.sort();
            let mut table = Table::new(&["KEY", "VALUE"]);
            for (key, value) in entries {
                table.row(vec![key.clone(), value.clone()]);
            }
            let text = if table.is_empty() {
                format!("Config `{}` is empty.", args.name)
            } else {
                table.render()
            };
            Report::data(text, &values)
        }
        ConfigCommand::Del(args) => {
            let reply = lattice
                .ctl
                .delete_config(&args.name)
                .await
                .map_err(|e| lattice.explain(e, Target::Lattice))?;
            Ok(Report::action(
                format!("Deleted config `{}`", args.name),
                json!({"name": args.name}),
            )
            .warn(reply.message))
        }
    }
}
