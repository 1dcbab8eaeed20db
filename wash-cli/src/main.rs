//! `wash`: the Trellis command line, control-interface commands.
//!
//! Arguments and flags follow wasmCloud 1.x `wash` (PROTOCOL.md §7), so scripts
//! written for it work against a Trellis lattice (and this `wash` works against
//! wasmCloud hosts). Each topic lives in its own module: [`get`], [`start`],
//! [`scale`], [`stop`], [`update`], [`link`], [`config`], [`label`]; [`ctl`]
//! holds the connection and error explanations, [`wait`] the event waits that
//! confirm acknowledged requests, [`output`] the text and JSON rendering.

mod config;
mod ctl;
mod get;
mod label;
mod link;
mod output;
mod parse;
mod scale;
mod start;
mod stop;
mod update;
mod wait;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::ctl::{ConnectionOpts, Lattice};
use crate::output::Report;

const ABOUT: &str =
    "wash: manage a Trellis (wasmCloud 1.x compatible) lattice from the command line";

const EXAMPLES: &str = "Examples:
  wash get hosts
  wash start component ghcr.io/acme/hello:0.1.0 hello
  wash start provider builtin://http-server web
  wash config put web-addr address=0.0.0.0:8080
  wash link put web hello wasi http --interface incoming-handler --source-config web-addr
  wash get inventory -o json

Connection flags work with every command and can also be set as WASMCLOUD_CTL_HOST,
WASMCLOUD_CTL_PORT, WASMCLOUD_LATTICE and WASMCLOUD_CTL_TIMEOUT_MS.";

#[derive(Parser, Debug)]
#[command(name = "wash", version, about = ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    connection: ConnectionOpts,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show hosts, inventories, links and claims
    #[command(subcommand, after_help = "Example:\n  wash get inventory")]
    Get(get::GetCommand),
    /// Start a component or provider
    #[command(
        subcommand,
        after_help = "Example:\n  wash start component ./hello.wasm hello"
    )]
    Start(start::StartCommand),
    /// Scale a component on a host
    #[command(
        subcommand,
        after_help = "Example:\n  wash scale component NBQ4…XYZ ./hello.wasm hello -c 8"
    )]
    Scale(scale::ScaleCommand),
    /// Stop a component, provider or host
    #[command(subcommand, after_help = "Example:\n  wash stop component hello")]
    Stop(stop::StopCommand),
    /// Update a running component to a new image
    #[command(
        subcommand,
        after_help = "Example:\n  wash update component hello ghcr.io/acme/hello:0.2.0"
    )]
    Update(update::UpdateCommand),
    /// Put, delete and list links
    #[command(
        subcommand,
        after_help = "Example:\n  wash link put web hello wasi http --interface incoming-handler"
    )]
    Link(link::LinkCommand),
    /// Put, get and delete named configs
    #[command(
        subcommand,
        after_help = "Example:\n  wash config put web-addr address=0.0.0.0:8080"
    )]
    Config(config::ConfigCommand),
    /// Set or remove host labels
    #[command(
        after_help = "Example:\n  wash label NBQ4…XYZ zone=eu-west\n  wash label NBQ4…XYZ zone --delete"
    )]
    Label(label::LabelArgs),
    /// Print a shell completion script
    #[command(
        after_help = "Example:\n  wash completions bash > /etc/bash_completion.d/wash\n  wash completions zsh > \"${fpath[1]}/_wash\""
    )]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = cli.connection.output;
    match run(cli).await {
        Ok(report) => {
            if let Some(report) = report {
                report.print(output);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            output::print_error(output, &error);
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; `None` for commands that print on their own (completions).
async fn run(cli: Cli) -> anyhow::Result<Option<Report>> {
    if let Command::Completions { shell } = cli.command {
        // Generated into memory: clap_complete panics on write errors, and a
        // closed pipe (`wash completions bash | head`) is not worth one.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "wash", &mut script);
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &script);
        return Ok(None);
    }
    let lattice = Lattice::connect(&cli.connection).await?;
    let timeout_ms = cli.connection.timeout_ms;
    let report = match cli.command {
        Command::Get(command) => get::run(&lattice, command).await,
        Command::Start(command) => start::run(&lattice, command, timeout_ms).await,
        Command::Scale(command) => scale::run(&lattice, command).await,
        Command::Stop(command) => stop::run(&lattice, command).await,
        Command::Update(command) => update::run(&lattice, command).await,
        Command::Link(command) => link::run(&lattice, command).await,
        Command::Config(command) => config::run(&lattice, command).await,
        Command::Label(args) => label::run(&lattice, args).await,
        Command::Completions { .. } => return Ok(None),
    };
    report.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "wash",
            "get",
            "hosts",
            "-x",
            "prod",
            "-o",
            "json",
            "--timeout-ms",
            "500",
        ])
        .unwrap();
        assert_eq!(cli.connection.lattice, "prod");
        assert_eq!(cli.connection.output, output::OutputKind::Json);
        assert_eq!(cli.connection.timeout_ms, 500);
    }

    #[test]
    fn start_component_follows_wash_argument_order() {
        let cli = Cli::try_parse_from([
            "wash",
            "start",
            "component",
            "file:///x.wasm",
            "hello",
            "--max-instances",
            "3",
            "-c",
            "zone=eu",
            "--config",
            "a",
            "--config",
            "b",
        ])
        .unwrap();
        let Command::Start(start::StartCommand::Component(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.component_ref, "file:///x.wasm");
        assert_eq!(args.component_id, "hello");
        assert_eq!(args.max_instances, 3);
        assert_eq!(args.constraints, [("zone".to_string(), "eu".to_string())]);
        assert_eq!(args.config, ["a", "b"]);
        assert_eq!(args.wait_timeout_ms, start::DEFAULT_COMPONENT_WAIT_MS);
    }

    #[test]
    fn scale_component_uses_short_flags_of_wash() {
        let cli = Cli::try_parse_from([
            "wash",
            "scale",
            "component",
            "NHOST",
            "file:///x.wasm",
            "hello",
            "-c",
            "0",
            "-a",
            "team=web",
            "--allow-update",
        ])
        .unwrap();
        let Command::Scale(scale::ScaleCommand::Component(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.host_id, "NHOST");
        assert_eq!(args.max_instances, 0);
        assert!(args.allow_update);
    }

    #[test]
    fn link_put_requires_an_interface() {
        let err = Cli::try_parse_from(["wash", "link", "put", "web", "hello", "wasi", "http"])
            .unwrap_err();
        assert!(err.to_string().contains("--interface"), "{err}");
        let cli = Cli::try_parse_from([
            "wash",
            "link",
            "put",
            "web",
            "hello",
            "wasi",
            "http",
            "--interface",
            "incoming-handler",
            "--source-config",
            "web-addr",
            "-l",
            "admin",
        ])
        .unwrap();
        let Command::Link(link::LinkCommand::Put(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.link_name, "admin");
        assert_eq!(args.source_config, ["web-addr"]);
    }

    #[test]
    fn bad_ids_and_pairs_are_usage_errors() {
        assert!(Cli::try_parse_from(["wash", "stop", "component", "a.b"]).is_err());
        assert!(Cli::try_parse_from(["wash", "config", "put", "c", "novalue"]).is_err());
    }
}
