//! `wash link put|del|query`: the links of the lattice.

use clap::{Args, Subcommand};
use serde_json::json;
use trellis_interfaces::link::{DEFAULT_LINK_NAME, DeleteInterfaceLinkDefinitionRequest, Link};

use crate::ctl::{Lattice, Target};
use crate::get;
use crate::output::Report;

/// What `wash link` can do.
#[derive(Subcommand, Debug, Clone)]
pub enum LinkCommand {
    /// Link a source to a target on one or more interfaces of a WIT package
    #[command(
        after_help = "Example:\n  wash config put web-addr address=0.0.0.0:8080\n  wash link put web hello wasi http --interface incoming-handler --source-config web-addr"
    )]
    Put(LinkPutArgs),
    /// Delete a source's link on a WIT package
    #[command(after_help = "Example:\n  wash link del web wasi http")]
    Del(LinkDelArgs),
    /// List the links of the lattice (same as `wash get links`)
    #[command(after_help = "Example:\n  wash link query -o json")]
    Query,
}

/// `wash link put`.
#[derive(Args, Debug, Clone)]
pub struct LinkPutArgs {
    /// The caller: component or provider id
    pub source_id: String,
    /// The callee: component or provider id
    pub target: String,
    /// WIT namespace, e.g. `wasi` in wasi:http/incoming-handler
    pub wit_namespace: String,
    /// WIT package, e.g. `http` in wasi:http/incoming-handler
    pub wit_package: String,
    /// WIT interface, e.g. `incoming-handler` (repeatable, at least one)
    #[arg(long = "interface", required = true)]
    pub interfaces: Vec<String>,
    /// Named config handed to the source (repeatable)
    #[arg(long = "source-config")]
    pub source_config: Vec<String>,
    /// Named config handed to the target (repeatable)
    #[arg(long = "target-config")]
    pub target_config: Vec<String>,
    /// Link name, to use several targets for the same interface
    #[arg(short = 'l', long = "link-name", default_value = DEFAULT_LINK_NAME)]
    pub link_name: String,
}

/// `wash link del`.
#[derive(Args, Debug, Clone)]
pub struct LinkDelArgs {
    /// The link's source: component or provider id
    pub source_id: String,
    /// WIT namespace
    pub wit_namespace: String,
    /// WIT package
    pub wit_package: String,
    /// Link name
    #[arg(short = 'l', long = "link-name", default_value = DEFAULT_LINK_NAME)]
    pub link_name: String,
}

/// Runs a `wash link` command.
pub async fn run(lattice: &Lattice, command: LinkCommand) -> anyhow::Result<Report> {
    match command {
        LinkCommand::Put(args) => put(lattice, args).await,
        LinkCommand::Del(args) => del(lattice, args).await,
        LinkCommand::Query => get::links(lattice).await,
    }
}

async fn put(lattice: &Lattice, args: LinkPutArgs) -> anyhow::Result<Report> {
    let link = Link {
        source_id: args.source_id,
        target: args.target,
        name: args.link_name,
        wit_namespace: args.wit_namespace,
        wit_package: args.wit_package,
        interfaces: args.interfaces,
        source_config: args.source_config,
        target_config: args.target_config,
    };
    let reply = lattice
        .ctl
        .put_link(&link)
        .await
        .map_err(|e| lattice.explain(e, Target::Lattice))?;
    let json = serde_json::to_value(&link).unwrap_or_default();
    Ok(
        Report::action(format!("Published link {link}"), json!({ "link": json }))
            .warn(reply.message),
    )
}

async fn del(lattice: &Lattice, args: LinkDelArgs) -> anyhow::Result<Report> {
    let request = DeleteInterfaceLinkDefinitionRequest {
        source_id: args.source_id,
        name: args.link_name,
        wit_namespace: args.wit_namespace,
        wit_package: args.wit_package,
    };
    let reply = lattice
        .ctl
        .delete_link(&request)
        .await
        .map_err(|e| lattice.explain(e, Target::Lattice))?;
    let text = format!(
        "Deleted link of `{}` on {}:{} (link name `{}`)",
        request.source_id, request.wit_namespace, request.wit_package, request.name
    );
    Ok(Report::action(
        text,
        json!({
            "source_id": request.source_id,
            "wit_namespace": request.wit_namespace,
            "wit_package": request.wit_package,
            "link_name": request.name,
        }),
    )
    .warn(reply.message))
}
